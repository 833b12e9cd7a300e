package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
	"upgrader/orchestrator/local"
	"upgrader/state"
)

// app holds the flags every command shares.
type app struct {
	stdin       io.Reader
	profilePath string
	stateDir    string
	socket      string
	output      string
	code        int // exit code for a command that succeeded but must say more
}

// session is the run service a command talks to: the daemon's over its
// socket when one answers, else one in this process (local != nil).
type session struct {
	svc   orchestrator.Service
	local *local.Service
	close func()
	ctx   context.Context
}

// viaDaemon says the run service is the daemon's.
func (s *session) viaDaemon() bool { return s.local == nil }

// localConfig is the in-process service's configuration.
func (a *app) localConfig(log zerolog.Logger) local.Config {
	return local.Config{StateDir: a.stateDir, Profile: a.profilePath, Log: log,
		Warn:      func(err error) { fmt.Fprintln(os.Stderr, "warning:", err) },
		Failpoint: failpoint, StateFailpoint: stateFailpoint}
}

// session connects to the run service: the daemon's when one answers on
// --socket, else the state opened in this process. A socket served by
// someone other than root is an error, never gone around.
func (a *app) session(cmd *cobra.Command) (*session, error) {
	ctx := orchestrator.WithActor(context.Background(), actor())
	up, err := api.Up(a.socket)
	if err != nil {
		return nil, withCode(exitError, err)
	}
	if up {
		return &session{svc: api.NewClient(a.socket), close: func() {}, ctx: ctx}, nil
	}
	log, logf, err := openLogger(a.stateDir, cmd.ErrOrStderr())
	if err != nil {
		return nil, codeOf(err)
	}
	svc, err := local.Open(a.localConfig(log))
	if err != nil {
		logf.Close()
		if errors.Is(err, state.ErrLocked) {
			err = fmt.Errorf("%w\n(a foreground 'upgrader run' or 'resume' in another terminal holds it: follow it there, or wait for it to stop)", err)
		}
		return nil, codeOf(err)
	}
	return &session{svc: svc, local: svc, ctx: ctx, close: func() { svc.Close(); logf.Close() }}, nil
}

// openLogger opens the detailed log, upgrader.log in the state directory;
// a write that fails is said once on warn.
func openLogger(stateDir string, warn io.Writer) (zerolog.Logger, io.Closer, error) {
	f, err := state.OpenLog(stateDir, warn)
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	return zerolog.New(f).With().Timestamp().Logger(), f, nil
}

// planner plans in this process, without the state.
func (a *app) planner() local.Planner { return a.localConfig(zerolog.Nop()).Planner() }

// profileGiven is the site profile to send with a request: the one the
// operator named (--profile, UPGRADER_PROFILE), else "" for the service's
// own (the daemon's --profile).
func (a *app) profileGiven(cmd *cobra.Command) string {
	if cmd.Flags().Changed("profile") || os.Getenv("UPGRADER_PROFILE") != "" {
		return absPath(a.profilePath)
	}
	return ""
}

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

// actor names the operator for the journal.
func actor() string {
	uid := os.Getuid()
	if u, err := user.LookupId(fmt.Sprint(uid)); err == nil {
		return fmt.Sprintf("uid=%d(%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid=%d", uid)
}

// isTerminal reports whether f is an interactive terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	// A character device is not enough: /dev/null is one.
	return ok && term.IsTerminal(int(f.Fd()))
}
