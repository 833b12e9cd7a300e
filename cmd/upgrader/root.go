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
	exitUsage   = 2 // bad flags or arguments
	exitBlocked = 3 // a preflight finding blocks the run
	exitFailed  = 4 // a step failed
	exitPaused  = 5 // paused at an operator gate
)

const exitCodesHelp = `Exit codes:
  0  done, or the plan has no blockers
  1  error (state file, I/O, another upgrader running)
  2  usage error (bad flag, argument or value)
  3  blocked by a preflight finding (or the plan changed since the run started)
  4  a step failed
  5  paused at an operator gate`

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
	f.StringVar(&a.procedure, "procedure", "", "procedure id (default: the profile's)")
	f.StringVar(&a.socket, "socket", envOr("UPGRADER_SOCKET", "/run/upgrader/upgrader.sock"), "the daemon's control socket")
	f.StringVar(&a.stateDir, "state-dir", envOr("UPGRADER_STATE_DIR", "/var/lib/upgrader"), "state directory")
	f.StringArrayVar(&a.assume, "assume", nil, "override a fact, key=value (repeatable), e.g. pom.version=3.1.0")
	f.StringSliceVar(&a.with, "with", nil, "optional components to include, comma list (supervisor,agent,agent-api; pdc,help-library)")
	f.StringArrayVar(&a.override, "override", nil, "accept a blocker whose policy allows it: ID=REASON (repeatable, journaled)")
	f.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	f.BoolVarP(&a.yes, "yes", "y", false, "answer yes at operator gates")
	f.StringArrayVar(&a.attest, "attest", nil, "a field an operator gate asks for, KEY=VALUE (repeatable), e.g. backup_path=/backup/pom.dmp")
	f.StringVar(&a.answersPath, "answers", "", "answers file (YAML: gate id → attestation fields) for unattended runs")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.output != "text" && a.output != "json" {
			return usagef("-o %q: use text or json", a.output)
		}
		return a.loadAnswers()
	}
	root.AddCommand(newBundleCmd(a), newPlanCmd(a), newRunCmd(a), newResumeCmd(a), newStatusCmd(a), newJournalCmd(a),
		newSkipCmd(a), newAbortCmd(a), newLifecycleCmd(a), newExportCmd(a), newImportCmd(a), newProceduresCmd(a),
		newVerifyMediaCmd(a), newDaemonCmd(a), newStartCmd(a), newWatchCmd(a), newConfirmCmd(a), newRestoreStateCmd(a))
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
