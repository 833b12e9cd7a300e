package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/state"
	"upgrader/steps"
)

func newRunCmd(a *app) *cobra.Command {
	var expect string
	var replan bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Plan and run the procedure in the foreground",
		Long: `run builds the plan (as 'upgrader plan' prints it), records it, and carries it
out step by step in this terminal. Each step is recorded before it starts and
after it is verified; if the process dies, 'upgrader resume' probes the step
that was in flight and carries on.

At an operator gate the run asks on the terminal, or stops with exit code 5
when there is none; --yes answers every gate.

` + exitCodesHelp,
		Example: `  upgrader run --profile /etc/upgrader/site.yaml
  upgrader run --profile site.yaml --expect-fingerprint 3f2a9c0d1e4b5a6f --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, plan, err := a.planHere()
			if err != nil {
				return err
			}
			out := a.humanOut(cmd)
			db, err := a.openState()
			if err != nil {
				return err
			}
			defer db.Close()
			// An unfinished run comes first: its host may already look
			// upgraded (a step done but not yet recorded), and a fresh
			// plan would wrongly say there is nothing to do.
			if id, err := db.ActiveRun(); err == nil {
				fmt.Fprintf(out, "Run %s has not finished: carrying it on (as upgrader resume).\n", id)
				return a.resume(cmd, db, id, replan)
			}
			if expect != "" && !strings.HasPrefix(strings.TrimPrefix(plan.Fingerprint, "sha256:"), strings.TrimPrefix(expect, "sha256:")) {
				printPlan(out, plan)
				return withCode(exitBlocked, fmt.Errorf("the plan's fingerprint is %s, not the %s you reviewed: the host or profile changed; review the plan again",
					orchestrator.ShortFingerprint(plan.Fingerprint), expect))
			}
			if plan.NothingToDo {
				printPlan(out, plan)
				return a.finishJSON(cmd, map[string]any{"state": "nothing-to-do", "plan": plan})
			}
			printPlanBrief(out, plan)
			fmt.Fprintln(out)
			return a.execute(cmd, db, s.host, plan, "")
		},
	}
	cmd.Flags().StringVar(&expect, "expect-fingerprint", "", "refuse to run unless the plan's fingerprint starts with this (from 'upgrader plan')")
	cmd.Flags().BoolVar(&replan, "replan", false, "when a run is active and its plan changed, accept the new plan (journaled)")
	return cmd
}

func newResumeCmd(a *app) *cobra.Command {
	var replan bool
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Carry on the active run after a crash, a reboot, a failure or a gate",
		Long: `resume continues the active run. A step that was in flight when the process
died is probed: if its effect is in place it is recorded as done, otherwise
it is applied again. A failed step is tried again.

The run's plan is rebuilt from the facts recorded when it started and today's
profile and upgrader; if that plan differs (new binary, edited profile),
resume shows the difference and refuses. --replan accepts the new plan.

` + exitCodesHelp,
		Example: `  upgrader resume
  upgrader resume --yes          # confirm the operator gate the run waits at
  upgrader resume --replan       # after a profile fix, accept the changed plan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := a.openState()
			if err != nil {
				return err
			}
			defer db.Close()
			id, err := db.ActiveRun()
			if errors.Is(err, orchestrator.ErrNoActiveRun) {
				return withCode(exitUsage, errors.New("no run to resume: start one with 'upgrader run' (see 'upgrader status' for the last run)"))
			} else if err != nil {
				return withCode(exitError, err)
			}
			return a.resume(cmd, db, id, replan)
		},
	}
	cmd.Flags().BoolVar(&replan, "replan", false, "accept a plan that changed since the run started (journaled)")
	return cmd
}

// resume carries on the active run after checking that the plan rebuilt
// from its recorded facts and today's profile and binary is still the one
// it started with.
func (a *app) resume(cmd *cobra.Command, db *state.DB, id string, replan bool) error {
	run, _, err := db.LoadRun(id)
	if err != nil {
		return withCode(exitError, err)
	}
	profilePath := a.profilePath
	if !cmd.Flags().Changed("profile") && run.Profile != "" {
		profilePath = run.Profile
	}
	p, err := a.loadProfile(profilePath)
	if err != nil {
		return err
	}
	rebuilt, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: run.Plan.Procedure, Facts: run.Plan.Facts,
		Profile: p, Options: orchestrator.Options{With: run.Plan.Inputs.With, Overrides: run.Plan.Inputs.Overrides}})
	if err != nil {
		return withCode(exitBlocked, err)
	}
	host := &steps.Host{Profile: p, Run: steps.ExecRunner{}, Jobs: a.jobsDir()}
	if rebuilt.Fingerprint != run.Plan.Fingerprint {
		diff := orchestrator.DiffPlans(run.Plan, rebuilt)
		if !replan {
			return withCode(exitBlocked, fmt.Errorf("the plan changed since run %s started (%s → %s):\n  %s\nreview it with 'upgrader plan', then accept it with 'upgrader resume --replan'",
				run.ID, orchestrator.ShortFingerprint(run.Plan.Fingerprint), orchestrator.ShortFingerprint(rebuilt.Fingerprint), strings.Join(diff, "\n  ")))
		}
		log, closer, err := a.logger()
		if err != nil {
			return withCode(exitError, err)
		}
		defer closer.Close()
		if err := a.engine(db, host, log, nil).Replan(run.ID, rebuilt, actor()); err != nil {
			return withCode(exitBlocked, err)
		}
		fmt.Fprintf(a.humanOut(cmd), "Replanned run %s: %s\n", run.ID, strings.Join(diff, "; "))
	}
	fmt.Fprintf(a.humanOut(cmd), "Resuming run %s (%s), state %s\n", run.ID, run.Plan.Procedure, run.State)
	return a.execute(cmd, db, host, rebuilt, run.ID)
}

// jobsDir is where the steps' long children keep their logs and records:
// upgrader's own bookkeeping, in the state directory.
func (a *app) jobsDir() string { return filepath.Join(a.stateDir, "jobs") }

// humanOut is where progress and plans go: stdout for text, stderr when
// stdout carries JSON for a machine.
func (a *app) humanOut(cmd *cobra.Command) io.Writer {
	if a.output == "json" {
		return cmd.ErrOrStderr()
	}
	return cmd.OutOrStdout()
}

func (a *app) finishJSON(cmd *cobra.Command, v any) error {
	if a.output == "json" {
		return writeJSON(cmd.OutOrStdout(), v)
	}
	return nil
}

// execute creates the run if runID is empty, then carries it forward and
// maps where it stopped to an exit code.
func (a *app) execute(cmd *cobra.Command, db *state.DB, host *steps.Host, plan orchestrator.Plan, runID string) error {
	log, closer, err := a.logger()
	if err != nil {
		return withCode(exitError, err)
	}
	defer closer.Close()
	out := a.humanOut(cmd)
	printer := &noticePrinter{w: out, tty: isTerminal(out)}
	eng := a.engine(db, host, log, printer.notify)
	who := actor()
	if runID == "" {
		runID = newRunID()
		if _, err := eng.Create(plan, runID, absPath(a.profilePath), who); err != nil {
			return withCode(exitError, err)
		}
		fmt.Fprintf(out, "Run %s started (state %s)\n", runID, db.Path())
	}
	run, _, err := db.LoadRun(runID)
	if err != nil {
		return withCode(exitError, err)
	}
	if twoServers(run.Plan) {
		host.Role = orchestrator.RoleOf(host.Model())
		fmt.Fprintf(out, "This server is %q: %s\n", host.Model(), roleText(host.Role))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	outcome, err := eng.Execute(ctx, runID, orchestrator.ExecOptions{Actor: who, Retry: true, Confirm: a.confirmer(cmd, out), Role: host.Role})
	printer.endBar()
	if err != nil {
		var serr *orchestrator.StepError
		if ctx.Err() != nil && errors.Is(err, orchestrator.ErrDetached) && errors.As(err, &serr) {
			// The step's work (an installer) goes on: say where.
			return withCode(exitError, fmt.Errorf("interrupted: run %s stopped; %v", runID, serr.Err))
		} else if ctx.Err() != nil {
			return withCode(exitError, fmt.Errorf("interrupted: run %s stopped; 'upgrader resume' carries on", runID))
		}
		if errors.Is(err, orchestrator.ErrAttestation) {
			return withCode(exitPaused, err)
		}
		return withCode(exitError, err)
	}
	run, recs, err := db.LoadRun(runID)
	if err != nil {
		return withCode(exitError, err)
	}
	fmt.Fprintln(out)
	next := nextCommand(run, recs)
	if outcome.HandOver != "" {
		next = handOverText(run, recs, outcome.HandOver)
	}
	printStatus(out, run, recs, next)
	if err := a.finishJSON(cmd, statusJSON(run, recs)); err != nil {
		return err
	}
	if outcome.HandOver != "" {
		return withCode(exitPaused, errSilent)
	}
	switch outcome.State {
	case orchestrator.StateRebooting:
		return withCode(exitPaused, errSilent)
	case orchestrator.StateCompleted:
		return nil
	case orchestrator.StateBlocked:
		return withCode(exitBlocked, errSilent)
	case orchestrator.StateWaitingOperator:
		return withCode(exitPaused, errSilent)
	case orchestrator.StateFailed:
		return withCode(exitFailed, errSilent)
	}
	return withCode(exitError, fmt.Errorf("run stopped in state %s", outcome.State))
}

// confirmer answers operator gates: --yes, or a prompt on a terminal.
func (a *app) confirmer(cmd *cobra.Command, out io.Writer) func(orchestrator.StepSpec) (map[string]string, bool) {
	return func(spec orchestrator.StepSpec) (map[string]string, bool) {
		att := map[string]string{}
		for _, kv := range a.attest {
			if k, v, ok := strings.Cut(kv, "="); ok {
				att[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		if a.yes {
			att["answer"], att["via"] = "yes", "--yes"
			return att, true
		}
		if given, ok := a.answers[spec.ID]; ok {
			for k, v := range given {
				att[k] = v
			}
			att["answer"], att["via"] = "yes", "answers file"
			return att, true
		}
		if !isTerminal(a.stdin) {
			return nil, false
		}
		// The instructions were just shown with the step.
		in := bufio.NewReader(a.stdin)
		for _, field := range spec.Attest {
			for att[field] == "" {
				fmt.Fprintf(out, "      %s: ", field)
				line, err := in.ReadString('\n')
				if err != nil {
					return nil, false
				}
				att[field] = strings.TrimSpace(line)
			}
		}
		fmt.Fprintf(out, "      Type yes when done (ENTER leaves the run waiting): ")
		line, _ := in.ReadString('\n')
		if strings.EqualFold(strings.TrimSpace(line), "yes") {
			att["answer"], att["via"] = "yes", "terminal"
			return att, true
		}
		return nil, false
	}
}

// twoServers reports whether a plan's steps run on two servers.
func twoServers(p orchestrator.Plan) bool {
	for _, s := range p.Steps {
		if s.RunsOn != "" {
			return true
		}
	}
	return false
}

func roleText(role string) string {
	switch role {
	case orchestrator.RoleSource:
		return "the old server of the migration"
	case orchestrator.RoleTarget:
		return "the new server of the migration"
	}
	return "neither server of the migration: no step of it runs here"
}

// handOverText tells the operator how to carry the run to the server the
// next step runs on.
func handOverText(run orchestrator.Run, recs []orchestrator.StepRecord, to string) string {
	var files []string
	for _, r := range recs {
		for _, a := range r.Outputs.Artifacts {
			files = append(files, a.Path)
		}
	}
	file := "/var/tmp/upgrader-" + run.ID + ".json"
	return fmt.Sprintf("the next step runs on %s. Here: upgrader export --out %s; copy it and %s to the same paths there; "+
		"there: upgrader import %s --profile SITE.yaml && upgrader resume", roleServer(to), file, strings.Join(files, ", "), file)
}

func roleServer(role string) string {
	if role == orchestrator.RoleTarget {
		return "the new server (IBM System x3650 M2)"
	}
	return "the old server (HP ProLiant DL385)"
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
