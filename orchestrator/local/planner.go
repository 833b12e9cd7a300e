package local

import (
	"context"
	"fmt"
	"path/filepath"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/state/securefs"
	"upgrader/steps"
	"upgrader/steps/remote"
)

// Planner reads a site profile and the host it describes and plans a
// procedure. It needs no state: a plan can be printed while another
// upgrader holds the state, or before there is any.
type Planner struct {
	// Profile is the site profile used when a request names none.
	Profile string
	Runner  steps.Runner
	// Jobs is where the host's supervised children keep their records.
	Jobs string
	// Artifacts is where upgrader keeps its copies of what it changes on
	// other servers.
	Artifacts string
	// SSH holds the connections to other servers (the MPPs), reused by
	// every plan and run of this process.
	SSH *remote.Pool
	// Failpoint stops the process at named points in crash tests.
	Failpoint func(point, step string)
}

// Planner is the configuration's planner.
func (c Config) Planner() Planner {
	r := c.Runner
	if r == nil {
		r = steps.ExecRunner{}
	}
	return Planner{Profile: c.Profile, Runner: r, Jobs: filepath.Join(c.StateDir, "jobs"),
		Artifacts: filepath.Join(c.StateDir, "artifacts"), SSH: remote.NewPool(), Failpoint: c.Failpoint}
}

// Host is the host a profile describes, for the commands that act on it
// outside a run (verify-backup).
func (pl Planner) Host(p profile.Profile) *steps.Host { return pl.host(p, "") }

func (pl Planner) host(p profile.Profile, role string) *steps.Host {
	return &steps.Host{Profile: p, Run: pl.Runner, Jobs: pl.Jobs, Role: role, Artifacts: pl.Artifacts, SSH: pl.SSH, Failpoint: pl.Failpoint}
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", orchestrator.ErrInvalidRequest, fmt.Sprintf(format, a...))
}

// LoadProfile reads a site profile ("" for the planner's own): untrusted
// input, a regular file of at most profile.MaxProfileSize bytes, decoded
// strictly. It returns the profile and its absolute path.
func (pl Planner) LoadProfile(path string) (profile.Profile, string, error) {
	if path == "" {
		path = pl.Profile
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return profile.Profile{}, path, invalid("site profile %s: %v", path, err)
	}
	data, err := securefs.ReadRegular(abs, profile.MaxProfileSize)
	if err != nil {
		return profile.Profile{}, abs, invalid("site profile: %v (give the site's profile with --profile)", err)
	}
	p, err := profile.Decode(data, filepath.Dir(abs))
	if err != nil {
		return p, abs, invalid("%s: %v", path, err)
	}
	return p, abs, nil
}

// Facts reads what the catalog needs to know of the host the profile
// describes, with the operator's assumptions over it.
func (pl Planner) Facts(ctx context.Context, p profile.Profile, assume []string) (orchestrator.Facts, error) {
	assumed, err := orchestrator.ParseAssumptions(assume)
	if err != nil {
		return nil, invalid("%v", err)
	}
	return steps.GatherFacts(ctx, pl.host(p, "")).WithAssumptions(assumed), nil
}

// Plan plans the request's procedure (the profile's when it names none)
// for the host; it returns the plan and the profile's absolute path.
func (pl Planner) Plan(ctx context.Context, req orchestrator.PlanRequest) (orchestrator.Plan, string, error) {
	if err := req.Check(); err != nil {
		return orchestrator.Plan{}, "", invalid("%v", err)
	}
	p, path, err := pl.LoadProfile(req.Profile)
	if err != nil {
		return orchestrator.Plan{}, path, err
	}
	id := req.Procedure
	if id == "" {
		id = p.Procedure
	}
	if id == "" {
		return orchestrator.Plan{}, path, invalid("no procedure: give --procedure or set procedure in the profile")
	}
	if _, err := orchestrator.LookupProcedure(id); err != nil {
		return orchestrator.Plan{}, path, invalid("%v", err)
	}
	facts, err := pl.Facts(ctx, p, req.Assume)
	if err != nil {
		return orchestrator.Plan{}, path, err
	}
	plan, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: id, Facts: facts, Profile: p,
		Options: orchestrator.Options{With: req.With, Overrides: req.Overrides}})
	if err != nil {
		return plan, path, invalid("%v", err)
	}
	return plan, path, nil
}
