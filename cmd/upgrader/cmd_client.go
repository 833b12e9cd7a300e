package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
)

// client talks to the daemon over its control socket.
type client struct {
	http *http.Client
	path string
}

func (a *app) client() *client {
	// Every connection proves who listens before a byte is sent.
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return api.Dial(ctx, a.socket) }
	return &client{http: &http.Client{Transport: &http.Transport{DialContext: dial}}, path: a.socket}
}

// daemonUp reports whether upgrader's daemon answers on the socket. A
// socket served by another user is an error, never "no daemon": the
// command stops there instead of quietly reading the state itself.
func (a *app) daemonUp() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := api.Dial(ctx, a.socket)
	if imp := (*api.ImpostorError)(nil); errors.As(err, &imp) {
		return false, withCode(exitError, imp)
	}
	if err != nil {
		return false, nil
	}
	c.Close()
	return true, nil
}

// unreachable is the error of a request that got no answer.
func (c *client) unreachable(err error) error {
	if imp := (*api.ImpostorError)(nil); errors.As(err, &imp) {
		return withCode(exitError, imp)
	}
	return withCode(exitError, fmt.Errorf("no upgrader daemon answers on %s: %v (start it: systemctl start upgrader)", c.path, err))
}

// call sends a request and decodes the answer; a refusal becomes an error
// with the daemon's message and an exit code.
func (c *client) call(method, route string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://upgrader"+route, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		code := exitError
		switch resp.StatusCode {
		case http.StatusConflict:
			code = exitBlocked
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
			code = exitUsage
		case http.StatusUnprocessableEntity:
			code = exitBlocked
		}
		return withCode(code, errors.New(e.Error))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func newStartCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Show the plan, ask, and start it in the daemon; then watch it",
		Long: `start asks the daemon for the plan of this host, shows it, asks for
confirmation (--yes to skip), starts the run and attaches as 'upgrader watch'
does. The run goes on in the daemon if this terminal goes away.

` + exitCodesHelp,
		Example: `  upgrader start
  upgrader start --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := a.client()
			out := a.humanOut(cmd)
			var plan orchestrator.Plan
			if err := c.call("GET", "/v1/plan", nil, &plan); err != nil {
				return err
			}
			printPlan(out, plan)
			if len(plan.Blockers) > 0 {
				return withCode(exitBlocked, errSilent)
			}
			if plan.NothingToDo {
				return nil
			}
			if !a.yes {
				if !isTerminal(a.stdin) {
					return usagef("no terminal to ask on: add --yes to start the plan above")
				}
				fmt.Fprintf(out, "\nStart this plan (%s)? [y/N] ", orchestrator.ShortFingerprint(plan.Fingerprint))
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if !strings.EqualFold(strings.TrimSpace(line), "y") && !strings.EqualFold(strings.TrimSpace(line), "yes") {
					return withCode(exitUsage, errors.New("not started"))
				}
			}
			var run orchestrator.Run
			if err := c.call("POST", "/v1/start", api.StartRequest{ExpectFingerprint: plan.Fingerprint}, &run); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nRun %s started in the daemon.\n", run.ID)
			return a.watch(cmd, c)
		},
	}
}

func newWatchCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "watch",
		Short: "Attach to the daemon's run: progress, gates, and the next command",
		Long: `watch shows the daemon's run as it goes, prompts at operator gates (or confirms
them with --yes), and ends when the run stops: completed, failed, waiting,
or rebooting. Leaving it (Ctrl-C) does not stop the run.

` + exitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.watch(cmd, a.client()) },
	}
}

// watch follows the run until it stops, confirming gates when told to.
func (a *app) watch(cmd *cobra.Command, c *client) error {
	out := a.humanOut(cmd)
	printer := &noticePrinter{w: out, tty: isTerminal(out)}
	for {
		if err := a.follow(c, printer); err != nil {
			return err
		}
		var st api.Status
		if err := c.call("GET", "/v1/status", nil, &st); err != nil {
			return err
		}
		if st.Busy {
			continue // stopped and started again (a confirmation): follow on
		}
		if st.Run.State == orchestrator.StateWaitingOperator {
			i := orchestrator.NextStep(st.Steps)
			spec := st.Run.Plan.Steps[i]
			if att, ok := a.confirmer(cmd, out)(spec); ok {
				if err := c.call("POST", "/v1/confirm", api.ConfirmRequest{Step: spec.ID, Attestation: att}, nil); err != nil {
					return err
				}
				continue
			}
		}
		printer.endBar()
		fmt.Fprintln(out)
		printStatus(out, st.Run, st.Steps, nextCommand(st.Run, st.Steps))
		switch st.Run.State {
		case orchestrator.StateCompleted:
			return nil
		case orchestrator.StateWaitingOperator, orchestrator.StateRebooting:
			return withCode(exitPaused, errSilent)
		case orchestrator.StateFailed:
			return withCode(exitFailed, errSilent)
		case orchestrator.StateBlocked:
			return withCode(exitBlocked, errSilent)
		}
		return withCode(exitError, fmt.Errorf("run %s is %s", st.Run.ID, st.Run.State))
	}
}

// follow prints notices until the daemon says the run stopped.
func (a *app) follow(c *client, printer *noticePrinter) error {
	resp, err := c.http.Get("http://upgrader/v1/watch")
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return withCode(exitError, errors.New(e.Error))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var n orchestrator.Notice
		if err := dec.Decode(&n); err != nil {
			return withCode(exitError, fmt.Errorf("the daemon closed the watch: %v", err))
		}
		if n.Kind == "stopped" {
			return nil
		}
		printer.notify(n)
	}
}

func newConfirmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "confirm STEP",
		Short: "Confirm the operator gate the daemon's run waits at",
		Example: `  upgrader confirm enable-dnc-import
  upgrader confirm backup-db --attest backup_path=/backup/pom.dmp`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			att := map[string]string{"answer": "yes", "via": "upgrader confirm"}
			for _, kv := range a.attest {
				if k, v, ok := strings.Cut(kv, "="); ok {
					att[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			if err := a.client().call("POST", "/v1/confirm", api.ConfirmRequest{Step: args[0], Attestation: att}, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Confirmed %s; the run goes on (upgrader watch).\n", args[0])
			return nil
		},
	}
}
