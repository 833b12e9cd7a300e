package main

import (
	"bufio"
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
)

func newRunCmd(a *app) *cobra.Command {
	var pf planFlags
	var ans answerFlags
	var expect string
	cmd := &cobra.Command{
		Use:     "run",
		Aliases: []string{"start"},
		Short:   "Show the plan, ask, and carry it out (in the daemon when one runs)",
		Long: `run builds the plan (as 'upgrader plan' prints it), shows it, asks for consent,
records the run and carries it out step by step, following it in this
terminal. When a daemon answers on --socket the daemon carries it out (and a
lost terminal loses nothing: 'upgrader watch' follows it again); otherwise
this process does. Each step is recorded before it starts and after it is
verified; if the process dies, 'upgrader resume' probes the step that was in
flight and carries on. 'start' is the same command.

Consent: on a terminal run asks before it starts, and once more right before
the point of no return, showing the verified backup and media. Without a
terminal it needs --yes or --expect-fingerprint FP (the fingerprint of the
plan you reviewed with 'upgrader plan': consent to exactly that plan);
otherwise it exits 2 and touches nothing. Operator gates ask on the
terminal, or are answered by --yes or --answers; else the run waits (exit 5)
for 'upgrader confirm STEP'.

` + exitCodesHelp,
		Example: `  upgrader run --profile /etc/upgrader/site.yaml
  upgrader run --profile site.yaml --expect-fingerprint 3f2a9c0d1e4b5a6f
  upgrader run --profile site.yaml --with pdc --expect-fingerprint 3f2a9c0d1e4b5a6f --answers answers.yaml
  upgrader start --yes            # unattended: every gate and the point of no return answered yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ans.load(); err != nil {
				return err
			}
			req, err := pf.request(a, cmd)
			if err != nil {
				return err
			}
			// Consent is settled before anything is opened or written.
			if !ans.yes && expect == "" && !isTerminal(a.stdin) {
				return usagef("no terminal to ask on and no consent: review the plan with 'upgrader plan', then run it with --expect-fingerprint FP (or --yes); nothing was started")
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			out := a.humanOut(cmd)
			// An unfinished run comes first: its host may already look
			// upgraded (a step done but not yet recorded), and a fresh plan
			// would wrongly say there is nothing to do.
			if st, err := sess.svc.Status(sess.ctx, ""); err == nil && !st.Run.State.Terminal() {
				fmt.Fprintf(out, "Run %s has not finished: carrying it on (as upgrader resume).\n", st.Run.ID)
				return a.resume(cmd, sess, orchestrator.ResumeRequest{Profile: a.profileGiven(cmd), Yes: ans.yes, Answers: ans.answers}, &ans)
			}
			plan, err := sess.svc.Plan(sess.ctx, req)
			if err != nil {
				return codeOf(err)
			}
			if expect != "" && !orchestrator.FingerprintMatches(plan.Fingerprint, expect) {
				printPlan(out, plan)
				return withCode(exitBlocked, fmt.Errorf("the plan's fingerprint is %s, not the %s you reviewed: the host or profile changed; review the plan again",
					orchestrator.ShortFingerprint(plan.Fingerprint), expect))
			}
			if plan.NothingToDo || len(plan.Blockers) > 0 {
				printPlan(out, plan)
				if err := a.finishJSON(cmd, map[string]any{"state": "not-started", "plan": plan}); err != nil {
					return err
				}
				if len(plan.Blockers) > 0 {
					return withCode(exitBlocked, errSilent)
				}
				return nil
			}
			consent := orchestrator.Consent{Answers: ans.answers}
			switch {
			case ans.yes:
				printPlanBrief(out, plan)
				consent.Via = orchestrator.ConsentYes
			case expect != "":
				printPlanBrief(out, plan)
				consent.Via = orchestrator.ConsentFingerprint
			default:
				printPlan(out, plan)
				if !a.ask(out, fmt.Sprintf("\nStart this plan (%s)? [y/N] ", orchestrator.ShortFingerprint(plan.Fingerprint))) {
					return withCode(exitUsage, errors.New("not started"))
				}
				consent.Via = orchestrator.ConsentTerminal
			}
			st, err := sess.svc.Start(sess.ctx, orchestrator.StartRequest{Plan: req, ExpectFingerprint: plan.Fingerprint, Consent: consent})
			if err != nil {
				return codeOf(err)
			}
			where := "in this process (state " + filepath.Join(a.stateDir, "state.db") + ")"
			if sess.viaDaemon() {
				where = "in the daemon: a lost terminal loses nothing (upgrader watch)"
			}
			fmt.Fprintf(out, "\nRun %s started %s\n", st.Run.ID, where)
			a.sayRole(out, st)
			return a.follow(cmd, sess, st, &ans)
		},
	}
	pf.register(cmd)
	ans.register(cmd)
	cmd.Flags().StringVar(&expect, "expect-fingerprint", "", "run only the plan with this fingerprint (from 'upgrader plan'): consent to exactly that plan")
	return cmd
}

// ask asks a yes/no question on the terminal.
func (a *app) ask(out io.Writer, question string) bool {
	if !isTerminal(a.stdin) {
		return false
	}
	fmt.Fprint(out, question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	line = strings.TrimSpace(line)
	return strings.EqualFold(line, "y") || strings.EqualFold(line, "yes")
}

// sayRole says which server of a migration this one is.
func (a *app) sayRole(out io.Writer, st orchestrator.Status) {
	for _, s := range st.Run.Plan.Steps {
		if s.RunsOn != "" {
			fmt.Fprintf(out, "This server is %s\n", roleText(st.Role))
			return
		}
	}
}

func newResumeCmd(a *app) *cobra.Command {
	var ans answerFlags
	var replan bool
	cmd := &cobra.Command{
		Use:   "resume",
		Short: "Carry on the active run after a crash, a reboot, a failure or a gate",
		Long: `resume continues the active run. A step that was in flight when upgrader died
is probed: if its effect is in place it is recorded as done; a vendor
installer still running is followed, never started twice. A failed step is
tried again. At a gate, --yes or --answers confirm it.

The run's plan is rebuilt from the facts recorded when it started and today's
profile and upgrader; if that plan differs (new binary, edited profile),
resume shows the difference and refuses. --replan accepts the new plan.

` + exitCodesHelp,
		Example: `  upgrader resume
  upgrader resume --yes          # confirm the operator gate the run waits at
  upgrader resume --replan       # after a profile fix, accept the changed plan`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ans.load(); err != nil {
				return err
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			return a.resume(cmd, sess, orchestrator.ResumeRequest{Profile: a.profileGiven(cmd), Replan: replan, Yes: ans.yes, Answers: ans.answers}, &ans)
		},
	}
	ans.register(cmd)
	cmd.Flags().BoolVar(&replan, "replan", false, "accept a plan that changed since the run started (journaled)")
	return cmd
}

func (a *app) resume(cmd *cobra.Command, sess *session, req orchestrator.ResumeRequest, ans *answerFlags) error {
	st, err := sess.svc.Resume(sess.ctx, req)
	if err != nil {
		return codeOf(err)
	}
	out := a.humanOut(cmd)
	switch {
	case st.Run.State.Terminal():
		fmt.Fprintf(out, "Run %s (%s) has ended: nothing to resume.\n", st.Run.ID, st.Run.Plan.Procedure)
	case st.Busy:
		fmt.Fprintf(out, "Run %s (%s) is already being carried out: following it.\n", st.Run.ID, st.Run.Plan.Procedure)
	default:
		fmt.Fprintf(out, "Resuming run %s (%s), state %s\n", st.Run.ID, st.Run.Plan.Procedure, st.Run.State)
	}
	a.sayRole(out, st)
	return a.follow(cmd, sess, st, ans)
}

func newRetryCmd(a *app) *cobra.Command {
	var ans answerFlags
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Try the failed step again, then carry the run on",
		Long: `retry tries the step the run failed at again, once the cause is fixed, and
follows the run as it goes on.

` + exitCodesHelp,
		Example: `  upgrader retry`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.operate(cmd, &ans, func(sess *session) (orchestrator.Status, error) {
				return sess.svc.Retry(sess.ctx, orchestrator.RetryRequest{Profile: a.profileGiven(cmd)})
			})
		},
	}
	ans.register(cmd)
	return cmd
}

func newConfirmCmd(a *app) *cobra.Command {
	var attest []string
	cmd := &cobra.Command{
		Use:   "confirm STEP",
		Short: "Confirm the operator gate (or the point of no return) the run waits at",
		Long: `confirm records that the operator did what the gate asks (or consents to the
point of no return) and follows the run as it goes on. A gate that asks for
fields needs each as --attest KEY=VALUE; who confirmed, and what, is in the
journal.

` + exitCodesHelp,
		Example: `  upgrader confirm enable-dnc-import
  upgrader confirm backup-db --attest backup_path=/backup/pom.dmp
  upgrader confirm upgrade-pom        # the point of no return, after checking the backup`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ans := answerFlags{attest: attest}
			att := ans.attestation()
			att["answer"], att["via"] = "yes", "upgrader confirm"
			return a.operate(cmd, &answerFlags{}, func(sess *session) (orchestrator.Status, error) {
				return sess.svc.Confirm(sess.ctx, orchestrator.ConfirmRequest{Step: args[0], Attestation: att, Profile: a.profileGiven(cmd)})
			})
		},
	}
	cmd.Flags().StringArrayVar(&attest, "attest", nil, "a field the gate asks for, KEY=VALUE (repeatable)")
	return cmd
}

func newSkipCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "skip STEP --reason TEXT",
		Short: "Skip the failed or waiting step, if its skip policy allows (journaled)",
		Long: `skip marks the step the run stopped at as skipped, with the reason in the
journal, and follows the run as it goes on. Only steps whose skip policy is
with-reason can be skipped; safety steps (media verification, database
backup, the upgrade itself) never.

` + exitCodesHelp,
		Example: `  upgrader skip enable-dnc-import --reason "site does not use DNC lists"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("skip needs --reason: it is journaled for whoever reviews the run")
			}
			return a.operate(cmd, &answerFlags{}, func(sess *session) (orchestrator.Status, error) {
				return sess.svc.Skip(sess.ctx, orchestrator.SkipRequest{Step: args[0], Reason: reason, Profile: a.profileGiven(cmd)})
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the step is skipped (required, journaled)")
	return cmd
}

// operate carries out one operator request on the active run and follows
// the run as it goes on.
func (a *app) operate(cmd *cobra.Command, ans *answerFlags, do func(*session) (orchestrator.Status, error)) error {
	if err := ans.load(); err != nil {
		return err
	}
	sess, err := a.session(cmd)
	if err != nil {
		return err
	}
	defer sess.close()
	st, err := do(sess)
	if err != nil {
		return codeOf(err)
	}
	return a.follow(cmd, sess, st, ans)
}

func newAbortCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "abort --reason TEXT",
		Short: "Stop the active run for good (refused past the point of no return)",
		Long: `abort ends the active run, with the reason in the journal. A step in flight
is stopped first. Once an irreversible step has started, abort is refused:
there is no way back but forward (upgrader resume).

` + exitCodesHelp,
		Example: `  upgrader abort --reason "maintenance window closed"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("abort needs --reason: it is journaled")
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			st, err := sess.svc.Abort(sess.ctx, orchestrator.AbortRequest{Reason: reason})
			if err != nil {
				return codeOf(err)
			}
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), statusJSON(st))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Run %s: aborted.\n", st.Run.ID)
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the run is aborted (required, journaled)")
	return cmd
}

func newWatchCmd(a *app) *cobra.Command {
	var ans answerFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow the run: progress, gates, and the next command",
		Long: `watch follows the run the daemon carries out, prompts at operator gates (or
answers them with --yes or --answers), and ends when the run stops:
completed, failed, waiting, or rebooting. Leaving it (Ctrl-C, exit 1) does
not stop the run. Without a daemon nothing carries a run out between commands: watch
shows where it stands.

` + exitCodesHelp,
		Example: `  upgrader watch
  upgrader watch --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ans.load(); err != nil {
				return err
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			st, err := sess.svc.Status(sess.ctx, "")
			if err != nil {
				return codeOf(err)
			}
			return a.follow(cmd, sess, st, &ans)
		},
	}
	ans.register(cmd)
	return cmd
}

// follow shows the run as it goes on until it stops, answering the gates
// it reaches when it can (--yes, --answers, the terminal), then prints
// where it stands and returns its exit code.
func (a *app) follow(cmd *cobra.Command, sess *session, st orchestrator.Status, ans *answerFlags) error {
	out := a.humanOut(cmd)
	printer := &noticePrinter{w: out, tty: isTerminal(out)}
	ctx, stop := signal.NotifyContext(sess.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	runID, after := st.Run.ID, st.NoticeSeq
	why := "" // why the last execution stopped short (a full disk), if it did
	for {
		ch, err := sess.svc.Watch(ctx, after)
		if err != nil {
			return codeOf(err)
		}
		stopped := false
		for n := range ch {
			after = max(after, n.Seq)
			if n.Kind == "stopped" {
				stopped, why = true, n.Text
				break
			}
			printer.notify(n)
		}
		printer.endBar()
		if ctx.Err() != nil {
			return a.interrupted(cmd, sess, runID)
		}
		if !stopped {
			return withCode(exitError, fmt.Errorf("the daemon stopped answering while run %s went on (restarted?): 'upgrader watch' follows it again", runID))
		}
		if st, err = sess.svc.Status(sess.ctx, runID); err != nil {
			return codeOf(err)
		}
		if st.Busy {
			continue // stopped and started again by someone else: follow on
		}
		if st.Outcome.Class != orchestrator.OutcomeGate {
			break
		}
		att, ok := a.answer(out, st, ans)
		if !ok {
			break
		}
		next, err := sess.svc.Confirm(sess.ctx, orchestrator.ConfirmRequest{Step: st.Outcome.Step, Attestation: att, Profile: a.profileGiven(cmd)})
		if err != nil {
			return codeOf(err)
		}
		after = next.NoticeSeq
	}
	fmt.Fprintln(out)
	printStatus(out, st)
	if why != "" && why != st.Outcome.Error && why != st.Run.Reason {
		// Not a step's failure (the status says those): the run stopped on
		// an error of its own, e.g. a commit the full disk refused.
		fmt.Fprintf(cmd.ErrOrStderr(), "upgrader: the run stopped: %s\n", why)
	}
	if err := a.finishJSON(cmd, statusJSON(st)); err != nil {
		return err
	}
	if code := outcomeCode(st.Outcome); code != exitOK {
		return withCode(code, errSilent)
	}
	return nil
}

// interrupted handles Ctrl-C (or SIGTERM) while following: a run carried
// out in this process stops (the step in flight is left to be probed, a
// supervised installer goes on); the daemon's goes on without us. Either
// way the command ends before the run did: exit 1, never 0 (done).
func (a *app) interrupted(cmd *cobra.Command, sess *session, runID string) error {
	if sess.viaDaemon() {
		fmt.Fprintf(a.humanOut(cmd), "\nStopped following run %s; it goes on in the daemon.\nNext: upgrader watch\n", runID)
		return withCode(exitError, errSilent)
	}
	err := sess.local.Interrupt()
	var serr *orchestrator.StepError
	if errors.Is(err, orchestrator.ErrDetached) && errors.As(err, &serr) {
		// The step's work (an installer) goes on: say where.
		return withCode(exitError, fmt.Errorf("interrupted: run %s stopped; %v\nNext: upgrader resume", runID, serr.Err))
	}
	return withCode(exitError, fmt.Errorf("interrupted: run %s stopped; the step in flight is probed when it resumes\nNext: upgrader resume", runID))
}

// answer answers the gate (or the point of no return) the run waits at:
// --yes, the answers file, or the operator on the terminal.
func (a *app) answer(out io.Writer, st orchestrator.Status, ans *answerFlags) (map[string]string, bool) {
	i := st.Run.Plan.StepIndex(st.Outcome.Step)
	if i < 0 {
		return nil, false
	}
	spec := st.Run.Plan.Steps[i]
	att := ans.attestation()
	if given, ok := ans.answers[spec.ID]; ok {
		for k, v := range given {
			att[k] = v
		}
		att["answer"], att["via"] = "yes", "answers file"
		return att, true
	}
	if ans.yes {
		att["answer"], att["via"] = "yes", "--yes"
		return att, true
	}
	if !isTerminal(a.stdin) {
		return nil, false
	}
	in := bufio.NewReader(a.stdin)
	if st.Outcome.PointOfNoReturn {
		printPointOfNoReturn(out, st, i)
		fmt.Fprintf(out, "      Type yes to start %s (ENTER leaves the run waiting): ", spec.ID)
	} else {
		// The instructions were just shown with the gate.
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
	}
	line, _ := in.ReadString('\n')
	if strings.EqualFold(strings.TrimSpace(line), "yes") {
		att["answer"], att["via"] = "yes", "terminal"
		return att, true
	}
	return nil, false
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

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
