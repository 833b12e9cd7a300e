// Package steps holds every side effect upgrader has: media verification,
// database backup, config edits, services, vendor installers and operator
// gates. Each step honours orchestrator.Step: Probe, Apply, Verify.
package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/steps/durable"
	"upgrader/steps/remote"
)

// Host is the machine the steps act on, as the site profile describes it.
type Host struct {
	Profile profile.Profile
	Run     Runner
	// Jobs is where the long children whose interruption would harm the
	// host run as supervised jobs (package job): upgrader's own
	// bookkeeping, <state-dir>/jobs, never in the host tree.
	Jobs string
	// Role is which server of a migration this host is ("" otherwise).
	Role string
	// Artifacts is where upgrader keeps its own copies of what steps
	// change on other servers (an MPP's original mppconfig.xml), one
	// directory per run: <state-dir>/artifacts. "" keeps none.
	Artifacts string
	// SSH holds the connections to other servers, shared by the run; nil
	// is a pool of this Host's own.
	SSH     *remote.Pool
	sshOnce sync.Once
	// Failpoint stops the process at named points in crash tests; nil in
	// production builds.
	Failpoint func(point, step string)
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
		return &backupDB{h: h}, nil
	case "mpp-config":
		return mppConfig{h}, nil
	case "service-stop":
		return services{h: h, want: serviceStopped}, nil
	case "service-start":
		return services{h: h, want: serviceRunning}, nil
	case "vendor-install":
		return vendorInstall{h}, nil
	case "gate":
		return gate{h}, nil
	case "reboot":
		return reboot{h}, nil
	case "pc-backup":
		return pcBackup{h}, nil
	case "pc-restore":
		return pcRestore{h}, nil
	case "help-library":
		return helpLibrary{h}, nil
	case "backup-command":
		return backupCommand{h}, nil
	}
	return nil, fmt.Errorf("no implementation for action %q (step %s)", spec.Action, spec.ID)
}

// Recheck proves a recorded artifact is unchanged before a guarded step.
// An artifact made on another server (a migration's backup) was copied
// here: its time may differ, its size and hash may not.
func (h *Host) Recheck(_ context.Context, name string, a orchestrator.Artifact) error {
	a.Path = h.Profile.Path(a.Path)
	var err error
	switch {
	case isDir(a.Path):
		// A directory-format database dump: every file against its
		// manifest, whatever the times (recheckDumpDir).
		err = recheckDumpDir(a, nil)
	case h.Role != "" && a.Host != "" && a.Host != h.Role:
		err = recheckContent(a, nil)
	default:
		err = recheckArtifact(a, nil)
	}
	if err != nil {
		return err
	}
	// Proved, it is made durable with the folders above it: a copy from
	// another server may not be yet, and a resumed step checks it again.
	_, err = durable.Make([]string{a.Path}, nil, time.Time{})
	return err
}

// record makes the artifact of a file on this host: its identity, and its
// path as the host sees it (without the profile's root).
func (h *Host) record(path string, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	a, err := artifactOf(path, progress)
	a.Path = h.Profile.Unroot(path)
	a.Host = h.Role
	return a, err
}

// gate is an operator gate: the operator does the work; the engine records
// the confirmation before this step runs, and Verify insists on it. A gate
// with verify_product also checks the host: the operator's word alone does
// not prove Linux ES is installed.
type gate struct{ h *Host }

func (gate) Probe(context.Context, orchestrator.StepContext) (bool, error) { return false, nil }
func (gate) Apply(context.Context, orchestrator.StepContext) error         { return nil }
func (g gate) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	if sc.Confirmation == nil {
		return orchestrator.Outputs{}, fmt.Errorf("%s has not been confirmed by an operator", sc.Spec.ID)
	}
	out := orchestrator.Outputs{Values: map[string]string{"confirmed_by": sc.Confirmation.Actor}}
	if product := sc.Spec.Params["verify_product"]; product != "" {
		want, err := orchestrator.ParseVersion(sc.Spec.Params["verify_version"])
		if err != nil {
			return out, err
		}
		have, err := g.h.ProductVersion(ctx, product)
		if err != nil {
			return out, fmt.Errorf("confirmed, but %s is not found on this host: %w", product, err)
		}
		if have.Compare(want) < 0 {
			return out, fmt.Errorf("confirmed, but this host runs %s %s, not %s", product, have, want)
		}
		out.Values[product] = have.String()
	}
	// A gate that attests a file (an Oracle backup's path) proves it is there
	// and records it, so later guards check it like any verified artifact.
	if name := sc.Spec.Params["artifact"]; name != "" {
		path := sc.Confirmation.Attestation[sc.Spec.Params["artifact_from"]]
		a, err := g.h.attestedFile(path)
		if err != nil {
			return out, err
		}
		out.Artifacts = map[string]orchestrator.Artifact{name: a}
	}
	return out, nil
}

// attestedFile checks a file an operator named exists, is a regular file
// and is not empty, and records it.
func (h *Host) attestedFile(path string) (orchestrator.Artifact, error) {
	if !filepath.IsAbs(path) {
		return orchestrator.Artifact{}, fmt.Errorf("%q is not an absolute path", path)
	}
	full := h.Profile.Path(path)
	st, err := os.Lstat(full)
	switch {
	case err != nil:
		return orchestrator.Artifact{}, fmt.Errorf("the attested backup %s: %w", path, err)
	case !st.Mode().IsRegular():
		return orchestrator.Artifact{}, fmt.Errorf("the attested backup %s is not a regular file", path)
	case st.Size() == 0:
		return orchestrator.Artifact{}, fmt.Errorf("the attested backup %s is empty", path)
	}
	return h.record(full, nil)
}
