package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
	"upgrader/state"
	"upgrader/steps"
)

// daemonBackend is what the control API drives in the daemon.
type daemonBackend struct {
	a    *app
	db   *state.DB
	sup  *orchestrator.Supervisor
	host *steps.Host
}

func (b *daemonBackend) Plan() (orchestrator.Plan, error) {
	_, plan, err := b.a.planHere()
	return plan, err
}
func (b *daemonBackend) Supervisor() *orchestrator.Supervisor { return b.sup }
func (b *daemonBackend) Store() orchestrator.Store            { return b.db }
func (b *daemonBackend) NewRunID() string                     { return newRunID() }
func (b *daemonBackend) ProfilePath() string                  { return absPath(b.a.profilePath) }

func newDaemonCmd(a *app) *cobra.Command {
	var group string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the upgrade daemon: it carries runs on across lost sessions and reboots",
		Long: `daemon hosts the engine behind a control socket. On start it opens the state
(a damaged one is reported as "needs operator", never replaced), finds the
active run and carries it on; clients (upgrader start, watch, confirm, status)
talk to it through --socket. One daemon per state directory. systemd starts it
at boot (deploy/upgrader.service), so a run goes on after a reboot.`,
		Example: `  upgrader daemon --state-dir /var/lib/upgrader --socket /run/upgrader/upgrader.sock --profile /etc/upgrader/site.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runDaemon(cmd, group)
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "group whose members may use the socket besides root")
	return cmd
}

func (a *app) runDaemon(cmd *cobra.Command, group string) error {
	log := zerolog.New(cmd.ErrOrStderr()).With().Timestamp().Str("daemon", a.socket).Logger()
	gid := -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return usagef("--group %s: %v", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	srv := &api.Server{Group: gid, Log: log}
	db, err := state.Open(a.stateDir, time.Second)
	switch {
	case errors.Is(err, state.ErrLocked):
		return withCode(exitError, fmt.Errorf("%w\nanother upgrader daemon (socket %s) or a foreground run holds it", err, a.socket))
	case err != nil:
		// Never a fresh start over a damaged state: serve the reason.
		srv.Degraded = err
		log.Error().Err(err).Msg("needs operator")
	default:
		defer db.Close()
		db.Failpoint = stateFailpoint
		db.Warn = func(err error) { log.Warn().Err(err).Msg("snapshot") }
	}
	l, err := api.Listen(a.socket, gid)
	if err != nil {
		return withCode(exitError, err)
	}
	if srv.Degraded == nil {
		p, perr := a.loadProfile(a.profilePath)
		host := &steps.Host{Profile: p, Run: steps.ExecRunner{}, Jobs: a.jobsDir()}
		host.Role = orchestrator.RoleOf(host.Model())
		eng := a.engine(db, host, log, nil)
		sup := orchestrator.NewSupervisor(eng, host.Role)
		srv.Backend = &daemonBackend{a: a, db: db, sup: sup, host: host}
		if perr != nil {
			log.Warn().Err(perr).Msg("no site profile: runs cannot be planned until it is fixed")
		}
		if err := a.checkActivePlan(db, log); err != nil {
			srv.Degraded = err
		} else if id, err := sup.ResumeActive("daemon"); err != nil {
			log.Error().Err(err).Msg("resume")
		} else if id != "" {
			log.Info().Str("run", id).Msg("carrying on the active run")
		}
		defer sup.Shutdown()
	}
	httpSrv := srv.HTTPServer()
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(l) }()
	daemon.SdNotify(false, daemon.SdNotifyReady)
	log.Info().Str("socket", a.socket).Msg("ready")
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sigs:
		log.Info().Str("signal", s.String()).Msg("stopping")
	case err := <-errc:
		log.Error().Err(err).Msg("control socket")
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(ctx); err != nil {
		httpSrv.Close() // watchers' streams
	}
	os.Remove(a.socket)
	return nil
}

// checkActivePlan refuses to carry on a run whose plan no longer matches
// what this binary and profile make of its recorded facts.
func (a *app) checkActivePlan(db *state.DB, log zerolog.Logger) error {
	id, err := db.ActiveRun()
	if err != nil {
		return nil
	}
	run, _, err := db.LoadRun(id)
	if err != nil {
		return err
	}
	path := run.Profile
	if path == "" {
		path = a.profilePath
	}
	p, err := a.loadProfile(path)
	if err != nil {
		return fmt.Errorf("run %s: %w", id, err)
	}
	rebuilt, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: run.Plan.Procedure, Facts: run.Plan.Facts,
		Profile: p, Options: orchestrator.Options{With: run.Plan.Inputs.With, Overrides: run.Plan.Inputs.Overrides}})
	if err != nil {
		return err
	}
	if rebuilt.Fingerprint != run.Plan.Fingerprint {
		return fmt.Errorf("run %s: the plan changed since it started (%v): stop the daemon and review it with 'upgrader resume --replan'",
			id, orchestrator.DiffPlans(run.Plan, rebuilt))
	}
	return nil
}

var _ http.Handler = (*api.Server)(nil)
