package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
	"upgrader/orchestrator/mop"
	"upgrader/state"
)

func newPlanCmd(a *app) *cobra.Command {
	var explain string
	var pf planFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what the procedure will do on this host (dry run: changes nothing)",
		Long: `plan reads the site profile and the host, and prints every step the procedure
will run, why it is in, what blocks, the point of no return and the service
outage. It changes nothing. 'upgrader run' executes exactly this plan; compare
the fingerprint.

--explain STEP prints one step's full record (by id or number): what it does,
why, the vendor material, its safety properties, parameters and instructions
(-o json: the step as the plan holds it). The exit code is the plan's.

-o markdown and -o html write the plan as a Method of Procedure for the
change advisory board: site, procedure, from → to, the fingerprint and the
command that runs exactly this plan, prerequisites and blockers, warnings,
media, each step with who does it, what the operator types, its source and
its expected duration (the median of earlier completed runs of the
procedure in the state, else unknown), the point of no return and the
downtime window on a timeline, the recovery statement and a sign-off table.
The HTML is one self-contained page: print it to PDF from a browser.

` + exitCodesHelp,
		Example: `  upgrader plan --profile /etc/upgrader/site.yaml
  upgrader plan --profile site.yaml -o json
  upgrader plan --profile site.yaml --assume pom.version=3.1.0      # what if?
  upgrader plan --profile site.yaml --explain upgrade-pom
  upgrader plan --profile site.yaml -o markdown > MOP.md        # Method of Procedure
  upgrader plan --profile site.yaml -o html > MOP.html          # print it to PDF
  chromium --headless --print-to-pdf=MOP.pdf MOP.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := a.plan(cmd, &pf)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cmd.Flags().Changed("explain") {
				if a.output == "markdown" || a.output == "html" {
					return usagef("--explain prints text or json; -o %s writes the whole plan as a Method of Procedure", a.output)
				}
				return a.explainStep(out, plan, explain)
			}
			switch a.output {
			case "markdown", "html":
				if err := a.writeMOP(cmd, &pf, plan); err != nil {
					return err
				}
			case "json":
				if err := writeJSON(out, plan); err != nil {
					return err
				}
			default:
				printPlan(out, plan)
				if len(plan.Blockers) == 0 && !plan.NothingToDo {
					fmt.Fprintln(out)
					for _, l := range a.nextRunLines(cmd, &pf, plan) {
						fmt.Fprintln(out, l)
					}
				}
			}
			if len(plan.Blockers) > 0 {
				return withCode(exitBlocked, errSilent)
			}
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&explain, "explain", "", "print one step's full record: its id or number in the plan")
	return cmd
}

// plan asks the daemon for the plan when one answers (it plans exactly as
// it will run), else plans in this process; neither needs the state.
func (a *app) plan(cmd *cobra.Command, pf *planFlags) (orchestrator.Plan, error) {
	req, err := pf.request(a, cmd)
	if err != nil {
		return orchestrator.Plan{}, err
	}
	up, err := api.Up(a.socket)
	if err != nil {
		return orchestrator.Plan{}, withCode(exitError, err)
	}
	if up {
		plan, err := api.NewClient(a.socket).Plan(orchestrator.WithActor(context.Background(), actor()), req)
		return plan, codeOf(err)
	}
	plan, _, err := a.planner().Plan(context.Background(), req)
	return plan, codeOf(err)
}

// explainStep prints one step of the plan, as text or as its JSON StepSpec.
func (a *app) explainStep(out io.Writer, plan orchestrator.Plan, step string) error {
	i := plan.StepIndex(step)
	if n, err := strconv.Atoi(step); err == nil && i < 0 && n >= 1 && n <= len(plan.Steps) {
		i = n - 1
	}
	if i < 0 {
		if len(plan.Steps) == 0 && len(plan.Blockers) > 0 {
			return withCode(exitBlocked, fmt.Errorf("--explain %q: the plan has no steps: it is blocked (upgrader plan shows why)", step))
		}
		if len(plan.Steps) == 0 {
			return usagef("--explain %q: the plan has no steps (nothing to do)", step)
		}
		ids := make([]string, len(plan.Steps))
		for j, s := range plan.Steps {
			ids[j] = s.ID
		}
		return usagef("--explain %q: no such step in the plan; its steps are: %s", step, strings.Join(ids, ", "))
	}
	if a.output == "json" {
		if err := writeJSON(out, plan.Steps[i]); err != nil {
			return err
		}
	} else {
		printStepExplain(out, plan, i)
		if n := len(plan.Blockers); n > 0 {
			fmt.Fprintln(out)
			hang(out, "", fmt.Sprintf("The plan has %d blocker(s): no step runs until they are fixed (upgrader plan shows them).", n))
		}
	}
	if len(plan.Blockers) > 0 {
		return withCode(exitBlocked, errSilent)
	}
	return nil
}

// nextRunLines is the command that runs exactly this plan, with the
// options that shaped it, wrapped with shell continuations to fit
// lineWidth. A what-if plan (--assume) says so instead.
func (a *app) nextRunLines(cmd *cobra.Command, pf *planFlags, plan orchestrator.Plan) []string {
	for _, f := range plan.Facts {
		if f.Assumed {
			return hanging("Next: ", "this is a what-if plan (--assume): plan again without --assume before running it")
		}
	}
	words := mop.RunArgs(a.invocation(cmd, pf), plan)
	var lines []string
	line := "Next: " + words[0]
	for _, wd := range words[1:] {
		if runeLen(line)+1+runeLen(wd)+2 > lineWidth {
			lines = append(lines, line+" \\")
			line = "        " + wd
			continue
		}
		line += " " + wd
	}
	return append(lines, line)
}

// invocation is how this plan was asked for, for the command that runs it.
func (a *app) invocation(cmd *cobra.Command, pf *planFlags) mop.Invocation {
	inv := mop.Invocation{Profile: a.profilePath, Procedure: pf.procedure != "", Overrides: pf.override, Assume: pf.assume}
	if cmd.Flags().Changed("state-dir") {
		inv.StateDir = a.stateDir
	}
	return inv
}

// writeMOP writes the plan as a Method of Procedure (-o markdown, -o
// html), with the step times of the procedure's earlier runs.
func (a *app) writeMOP(cmd *cobra.Command, pf *planFlags, plan orchestrator.Plan) error {
	in := mop.Input{Plan: plan, Run: a.invocation(cmd, pf), Version: version, Generated: time.Now()}
	in.Times, in.TimesNote = a.stepTimes(cmd, plan.Procedure)
	if a.output == "html" {
		return mop.HTML(cmd.OutOrStdout(), in)
	}
	return mop.Markdown(cmd.OutOrStdout(), in)
}

// stepTimes asks the run service how long the procedure's steps took
// before: the daemon's, else the state in this process when there is
// one. A state that cannot be read leaves the durations unknown, saying
// why: the MOP is still written.
func (a *app) stepTimes(cmd *cobra.Command, procedure string) (orchestrator.StepTimes, string) {
	up, err := api.Up(a.socket)
	if err == nil && !up {
		if _, err := os.Stat(filepath.Join(a.stateDir, state.FileName)); errors.Is(err, fs.ErrNotExist) {
			return orchestrator.StepTimes{}, "no state in " + a.stateDir + ": no earlier run to measure"
		}
	}
	sess, err := a.session(cmd)
	if err != nil {
		return orchestrator.StepTimes{}, "earlier runs not read: " + firstLine(err.Error())
	}
	defer sess.close()
	t, err := sess.svc.StepTimes(sess.ctx, procedure)
	if err != nil {
		return orchestrator.StepTimes{}, "earlier runs not read: " + firstLine(err.Error())
	}
	return t, ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string { return mop.ShellQuote(s) }
