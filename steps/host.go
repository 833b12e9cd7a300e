// Package steps holds every side effect upgrader has: media verification,
// database backup, config edits, services, vendor installers and operator
// gates. Each step honours orchestrator.Step: Probe, Apply, Verify.
package steps

import (
	"context"
	"fmt"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// Host is the machine the steps act on, as the site profile describes it.
type Host struct {
	Profile profile.Profile
	Run     Runner
}

var (
	_ orchestrator.StepFactory     = (*Host)(nil)
	_ orchestrator.ArtifactChecker = (*Host)(nil)
)

// Build returns the implementation of a planned step.
func (h *Host) Build(spec orchestrator.StepSpec) (orchestrator.Step, error) {
	switch spec.Action {
	case "verify-media":
		return verifyMedia{h}, nil
	case "backup-db":
		return backupDB{h}, nil
	case "mpp-config":
		return mppConfig{h}, nil
	case "service-stop":
		return services{h: h, want: serviceStopped}, nil
	case "service-start":
		return services{h: h, want: serviceRunning}, nil
	case "vendor-install":
		return vendorInstall{h}, nil
	case "gate":
		return gate{}, nil
	}
	return nil, fmt.Errorf("no implementation for action %q (step %s)", spec.Action, spec.ID)
}

// Recheck proves a recorded artifact is unchanged before a guarded step.
func (h *Host) Recheck(_ context.Context, name string, a orchestrator.Artifact) error {
	return recheckArtifact(a, nil)
}

// gate is an operator gate: the operator does the work; the engine records
// the confirmation before this step runs, and Verify insists on it.
type gate struct{}

func (gate) Probe(context.Context, orchestrator.StepContext) (bool, error) { return false, nil }
func (gate) Apply(context.Context, orchestrator.StepContext) error         { return nil }
func (gate) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	if sc.Confirmation == nil {
		return orchestrator.Outputs{}, fmt.Errorf("%s has not been confirmed by an operator", sc.Spec.ID)
	}
	return orchestrator.Outputs{Values: map[string]string{"confirmed_by": sc.Confirmation.Actor}}, nil
}
