package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
)

// Exit codes, documented in --help.
const (
	exitOK      = 0 // done, or a plan with no blockers
	exitError   = 1 // an error not covered below (state, I/O)
	exitUsage   = 2 // bad flags or arguments, or no consent to start
	exitBlocked = 3 // a preflight finding blocks the run
	exitFailed  = 4 // a step failed
	exitPaused  = 5 // paused: a gate, the point of no return, a reboot, a hand-over
)

const exitCodesHelp = `Exit codes:
  0  done, or the plan has no blockers
  1  error (state file, I/O, another upgrader running, the run interrupted),
     or Ctrl-C while following a run the daemon carries on
  2  usage error (bad flag, argument or value; no terminal to ask and no --yes
     or --expect-fingerprint)
  3  blocked: a preflight finding, a plan that changed since it was reviewed,
     or an action the run's state does not allow (abort past the point of no
     return, skip of a safety step)
  4  a step failed
  5  paused: at an operator gate or the point of no return, waiting for a
     reboot, or handing over to the other server of a migration`

// codeOf gives an error of the run service its exit code (the same
// whether the daemon or this process answered).
func codeOf(err error) error {
	var ce *codeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, orchestrator.ErrInvalidRequest), errors.Is(err, orchestrator.ErrNoConsent), errors.Is(err, orchestrator.ErrNoActiveRun),
		errors.Is(err, orchestrator.ErrInvalidRunID), errors.Is(err, orchestrator.ErrBadExport):
		return withCode(exitUsage, err)
	case errors.Is(err, orchestrator.ErrAttestation):
		return withCode(exitPaused, err)
	case errors.Is(err, orchestrator.ErrFingerprintMismatch), errors.Is(err, orchestrator.ErrBlockedPlan),
		errors.Is(err, orchestrator.ErrPastPointOfNoReturn), errors.Is(err, orchestrator.ErrSkipNotAllowed),
		errors.Is(err, orchestrator.ErrTransition), errors.Is(err, orchestrator.ErrActiveRun):
		return withCode(exitBlocked, err)
	}
	return withCode(exitError, err)
}

// outcomeCode is the exit code of a run that stopped where o says.
func outcomeCode(o orchestrator.Outcome) int {
	switch o.Class {
	case orchestrator.OutcomeDone, orchestrator.OutcomeRunning, orchestrator.OutcomeExported:
		return exitOK
	case orchestrator.OutcomeGate, orchestrator.OutcomeReboot, orchestrator.OutcomeHandOver:
		return exitPaused
	case orchestrator.OutcomeFailed:
		return exitFailed
	case orchestrator.OutcomeBlocked:
		return exitBlocked
	}
	return exitError // aborted, interrupted
}

// codeError carries an exit code to Main.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codeError{code: code, err: err} }

func usagef(format string, a ...any) error { return withCode(exitUsage, fmt.Errorf(format, a...)) }

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &app{stdin: stdin}
	root := newRootCmd(app)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return app.code
	}
	var ce *codeError
	if errors.As(err, &ce) {
		if ce.err != errSilent {
			fmt.Fprintln(stderr, "upgrader:", ce.err)
		}
		return ce.code
	}
	fmt.Fprintln(stderr, "upgrader:", err)
	// cobra reports flag and argument problems as plain errors.
	if isUsageError(err) {
		return exitUsage
	}
	return exitError
}

// errSilent marks an exit code whose message was already printed.
var errSilent = errors.New("")

func isUsageError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown flag", "unknown command", "unknown shorthand", "flag needs an argument",
		"invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "upgrader",
		Short: "Plan, run and resume Avaya POM and Proactive Contact upgrades",
		Long: `upgrader plans, runs and resumes installs, upgrades and migrations of Avaya
Proactive Outreach Manager and Proactive Contact servers. Every step is
recorded before it starts, so a run survives a crash, a reboot or a lost
terminal: 'upgrader resume' carries on where it stopped.

Every command works the same with and without the daemon: when one answers
on --socket, the command asks it; otherwise it does the work in this
process.

` + exitCodesHelp,
		Example: `  upgrader plan --profile /etc/upgrader/site.yaml
  upgrader plan --profile site.yaml --assume pom.version=3.1.0 -o json
  upgrader run --profile site.yaml
  upgrader status
  upgrader resume --yes
  upgrader journal`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = version + " (catalog " + orchestrator.CatalogVersion + ")"
	root.CompletionOptions.DisableDefaultCmd = true
	f := root.PersistentFlags()
	f.StringVar(&a.profilePath, "profile", envOr("UPGRADER_PROFILE", "/etc/upgrader/site.yaml"), "site profile (YAML)")
	f.StringVar(&a.socket, "socket", envOr("UPGRADER_SOCKET", "/run/upgrader/upgrader.sock"), "the daemon's control socket")
	f.StringVar(&a.stateDir, "state-dir", envOr("UPGRADER_STATE_DIR", "/var/lib/upgrader"), "state directory")
	f.StringVarP(&a.output, "output", "o", "text", "output format: text or json (plan: also markdown or html, a Method of Procedure)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Name() == "plan" && (a.output == "markdown" || a.output == "html") {
			return nil
		}
		if cmd.Name() == "plan" && a.output != "text" && a.output != "json" {
			return usagef("-o %q: use text, json, markdown or html", a.output)
		}
		if a.output != "text" && a.output != "json" {
			return usagef("-o %q: use text or json", a.output)
		}
		return nil
	}
	root.AddCommand(newBundleCmd(a), newPlanCmd(a), newRunCmd(a), newResumeCmd(a), newRetryCmd(a), newConfirmCmd(a),
		newSkipCmd(a), newAbortCmd(a), newWatchCmd(a), newStatusCmd(a), newJournalCmd(a), newHistoryCmd(a), newExportCmd(a), newImportCmd(a),
		newLifecycleCmd(a), newProceduresCmd(a), newVerifyMediaCmd(a), newVerifyBackupCmd(a), newDaemonCmd(a), newRestoreStateCmd(a))
	root.AddCommand(newDocsCmd(root))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
