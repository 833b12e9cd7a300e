package main

import (
	"context"
	"errors"
	"fmt"
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
	"upgrader/orchestrator/local"
	"upgrader/state"
)

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
	cfg := a.localConfig(log)
	cfg.Warn = func(err error) { log.Warn().Err(err).Msg("state") }
	svc, err := local.Open(cfg)
	switch {
	case errors.Is(err, state.ErrLocked):
		return withCode(exitError, fmt.Errorf("%w\nanother upgrader daemon (socket %s) or a foreground run holds it", err, a.socket))
	case err != nil:
		// Never a fresh start over a damaged state: serve the reason.
		srv.Degraded = err
		log.Error().Err(err).Msg("needs operator")
	default:
		defer svc.Close()
		srv.Service = svc
	}
	l, err := api.Listen(a.socket, gid)
	if err != nil {
		return withCode(exitError, err)
	}
	if svc != nil {
		// The active run first: its re-plan reads the profile and the
		// host's facts once, and its next step starts without waiting for
		// anything else.
		ctx := orchestrator.WithActor(context.Background(), "daemon")
		id, err := svc.ResumeActive(ctx)
		switch {
		case err != nil:
			// A plan that changed waits for the operator's resume --replan;
			// status says so.
			log.Error().Err(err).Str("run", id).Msg("the active run is not carried on")
		case id != "":
			log.Info().Str("run", id).Msg("carrying on the active run")
		default:
			if _, perr := svc.Plan(context.Background(), orchestrator.PlanRequest{}); errors.Is(perr, orchestrator.ErrInvalidRequest) {
				log.Warn().Err(perr).Msg("no usable site profile: runs cannot be planned until it is fixed")
			}
		}
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
