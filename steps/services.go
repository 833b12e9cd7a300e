package steps

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"upgrader/orchestrator"
)

type serviceState string

const (
	serviceRunning serviceState = "running"
	serviceStopped serviceState = "stopped"
)

// services stops or starts the services named in the step's params with
// the profile's service command (LSB: status exits 0 running, 3 stopped).
type services struct {
	h    *Host
	want serviceState
}

func (s services) names(sc orchestrator.StepContext) []string {
	var out []string
	for _, n := range strings.Split(sc.Spec.Params["services"], ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// serviceArgv is the service manager's command line for one verb.
func (s services) serviceArgv(name, verb string) []string {
	cmd := s.h.Profile.ServiceCommand
	if s.h.Profile.ServiceManager == "systemctl" {
		if len(cmd) == 0 {
			cmd = []string{"/usr/bin/systemctl"}
		}
		if verb == "status" {
			return s.h.Profile.Command(append(append([]string(nil), cmd...), "is-active", "--quiet", name))
		}
		return s.h.Profile.Command(append(append([]string(nil), cmd...), verb, name))
	}
	if len(cmd) == 0 {
		cmd = []string{"/usr/sbin/service"}
	}
	return s.h.Profile.Command(append(append([]string(nil), cmd...), name, verb))
}

func (s services) status(ctx context.Context, name string) (serviceState, error) {
	argv := s.serviceArgv(name, "status")
	err := s.h.Run.Run(ctx, argv, nil, nil)
	if err == nil {
		return serviceRunning, nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		return serviceStopped, nil
	}
	return "", fmt.Errorf("status of %s: %w", name, err)
}

func (s services) Probe(ctx context.Context, sc orchestrator.StepContext) (bool, error) {
	// A start or stop still at work has not finished its effect. One cut
	// short proves nothing either way, but the service manager's status
	// is the truth of a service (its jobs converge): it is asked below.
	if live, err := s.h.jobLive(sc, "*"); live || err != nil {
		return false, err
	}
	for _, n := range s.names(sc) {
		st, err := s.status(ctx, n)
		if err != nil || st != s.want {
			return false, err
		}
	}
	return true, nil
}

func (s services) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	verb := "start"
	if s.want == serviceStopped {
		verb = "stop"
	}
	for _, n := range s.names(sc) {
		// A start or stop an earlier upgrader left running is followed to
		// its end, never run again beside it.
		name := verb + "-" + n
		live, err := s.h.jobLive(sc, name)
		if err != nil {
			return err
		}
		if !live {
			st, err := s.status(ctx, n)
			if err != nil {
				return err
			}
			if st == s.want {
				continue // converge: touch only what is not there yet
			}
		}
		sc.Log.Info().Str("service", n).Msg(verb)
		err = s.h.runJob(ctx, sc, jobRun{name: name, what: verb + " " + n, argv: s.serviceArgv(n, verb), rerun: true, converges: true,
			line: func(l string) { sc.Log.Info().Str("service", n).Str("output", l).Send() }})
		if err != nil {
			return fmt.Errorf("%s %s: %w", verb, n, err)
		}
	}
	return nil
}

func (s services) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	vals := map[string]string{}
	for _, n := range s.names(sc) {
		st, err := s.status(ctx, n)
		if err != nil {
			return orchestrator.Outputs{}, err
		}
		if st != s.want {
			return orchestrator.Outputs{}, fmt.Errorf("service %s is %s, expected %s", n, st, s.want)
		}
		vals["service."+n] = string(st)
	}
	return orchestrator.Outputs{Values: vals}, nil
}
