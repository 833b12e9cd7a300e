package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Kind says how a step is carried out.
type Kind string

const (
	KindAuto   Kind = "auto"   // the engine runs it
	KindGate   Kind = "gate"   // an operator does it and confirms
	KindReboot Kind = "reboot" // the host restarts; the step verifies after boot
)

// SkipPolicy says whether an operator may skip a step that failed or waits.
type SkipPolicy string

const (
	SkipNever      SkipPolicy = "never"       // safety rule: no override
	SkipWithReason SkipPolicy = "with-reason" // allowed, the reason is journaled
)

// Source says whose rule a step or finding is (DESIGN.md invariant 13):
// the vendor's (a release note says it: its Refs cite the document and
// the section) or upgrader's own judgement (its Rationale says why; it
// cites no release note).
type Source string

const (
	SourceVendor   Source = "vendor"
	SourceUpgrader Source = "upgrader"
)

// Ref points an engineer at the vendor material behind a step or finding:
// the source document and its section, the material ID and release notes
// a PC step follows, the guide a POM section sends the reader to.
type Ref struct {
	// Document is the source document cited (a seed of DOMAIN.md).
	Document string `json:"document,omitempty"`
	Section  string `json:"section,omitempty"`
	// MaterialID and ReleaseNotes are what a PC step installs and the
	// release notes it follows, as the sequence document lists them.
	MaterialID   string `json:"material_id,omitempty"`
	ReleaseNotes string `json:"release_notes,omitempty"`
	// Guide is the guide the section refers to, with its document number.
	Guide string `json:"guide,omitempty"`
}

// Cite is the reference in words, its parts joined by sep: the document,
// its section in quotes, the material ID and release notes a PC step
// follows, the guide the section sends the reader to.
func (r Ref) Cite(sep string) string {
	var parts []string
	if r.Document != "" {
		parts = append(parts, r.Document)
	}
	if r.Section != "" {
		parts = append(parts, "\""+r.Section+"\"")
	}
	if r.MaterialID != "" {
		parts = append(parts, "material "+r.MaterialID)
	}
	if r.ReleaseNotes != "" {
		parts = append(parts, r.ReleaseNotes)
	}
	if r.Guide != "" {
		parts = append(parts, "guide: "+r.Guide)
	}
	return strings.Join(parts, sep)
}

// StepSpec is a step as the plan declares it: what it is, why it is in, and
// the safety properties the engine enforces. It is pure data and part of
// the plan fingerprint.
type StepSpec struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Kind  Kind   `json:"kind"`
	// Action names the implementation in package steps; several steps may
	// share one (every service stop, every vendor installer).
	Action string     `json:"action"`
	Skip   SkipPolicy `json:"skip"`
	// Source is whose rule the step is; Rationale says why upgrader adds
	// it when the source is upgrader's own.
	Source       Source `json:"source"`
	Rationale    string `json:"rationale,omitempty"`
	Irreversible bool   `json:"irreversible"`
	Downtime     bool   `json:"downtime"`
	Reason       string `json:"reason"`
	RunsOn       string `json:"runs_on,omitempty"`
	Refs         []Ref  `json:"refs,omitempty"`
	// Requires lists artifacts an earlier verified step must have
	// produced; the engine re-checks them before this step starts.
	Requires []string `json:"requires,omitempty"`
	// Produces lists the artifacts this step's Verify returns.
	Produces []string `json:"produces,omitempty"`
	// Checks names upgrader's own checks of the world outside the host
	// ("db": the database answers and has connections to spare) that the
	// engine runs right before the step starts; each is journaled, and one
	// that fails holds the run before the step.
	Checks []string `json:"checks,omitempty"`
	// Params are the step's inputs (paths, service names, values).
	Params       map[string]string `json:"params,omitempty"`
	Instructions string            `json:"instructions,omitempty"`
	// Attest names the fields an operator must give to confirm a gate.
	Attest []string `json:"attest,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// Artifact is a file a step produced and proved, recorded with its hash so
// later guards can tell whether it changed.
type Artifact struct {
	Path    string    `json:"path"`
	SHA256  string    `json:"sha256"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	// Host is the role of the server it was made on, "" if the procedure
	// runs on one server.
	Host string `json:"host,omitempty"`
	// Dir says the artifact is a directory (a directory-format dump):
	// SHA256 is then its manifest's and Size the sum of its files'.
	Dir bool `json:"dir,omitempty"`
}

// Describe is how the artifact reads to an operator: its path (a
// directory's with a trailing slash), size and SHA-256.
func (a Artifact) Describe() string {
	if a.Dir {
		return fmt.Sprintf("%s/ (a directory), %s, sha256 of its manifest %s", a.Path, BytesText(a.Size), a.SHA256)
	}
	return fmt.Sprintf("%s, %s, sha256 %s", a.Path, BytesText(a.Size), a.SHA256)
}

// Outputs are what a step's Verify returns and the engine records with the
// step's result.
type Outputs struct {
	Artifacts map[string]Artifact `json:"artifacts,omitempty"`
	Values    map[string]string   `json:"values,omitempty"`
}

// Progress reports work done on a long step; total is 0 when unknown.
type Progress func(label string, done, total int64)

// StepContext is everything a step may see of the run.
type StepContext struct {
	RunID string
	Spec  StepSpec
	// Artifacts holds the artifacts of every earlier verified step.
	Artifacts map[string]Artifact
	// Confirmation is the operator's answer for a gate, nil otherwise.
	Confirmation *Confirmation
	// Saved holds what the step saved with Save in an earlier attempt.
	Saved map[string]string
	// Resumed says the step was found started by an earlier process that
	// died in it (or stopped waiting): its work may still be going on, or
	// have ended unseen. False on a first attempt and on an operator's
	// retry after a recorded failure.
	Resumed bool
	// Stopped is closed when upgrader is asked to stop (Ctrl-C, the
	// daemon's SIGTERM), even during an irreversible step, whose context
	// is never cancelled. Only a step waiting for work that goes on without
	// upgrader may stop waiting then, returning ErrDetached.
	Stopped <-chan struct{}
	// Save records values on the step durably before the step goes on
	// (e.g. the boot id before asking for a reboot).
	Save     func(values map[string]string) error
	Progress Progress
	Log      zerolog.Logger
}

// Step is the contract every step implementation honours.
//
// Probe reports whether the step's effect is already in place and must not
// change anything. Apply converges the host to the effect; it may be called
// again after a crash and must then finish or redo the work safely. Verify
// proves the effect and returns the outputs to record.
type Step interface {
	Probe(ctx context.Context, sc StepContext) (done bool, err error)
	Apply(ctx context.Context, sc StepContext) error
	Verify(ctx context.Context, sc StepContext) (Outputs, error)
}

// StepFactory builds the implementation of a planned step.
type StepFactory interface {
	Build(spec StepSpec) (Step, error)
}

// HealthChecker runs a step's Checks. The result's text and figures go to
// the journal whether or not the check passes; an error holds the run
// before the step (it fails, nothing of it started: retry once the cause
// is gone).
type HealthChecker interface {
	Check(ctx context.Context, name string) (CheckResult, error)
}

// CheckResult is what a check saw: a sentence, and its figures.
type CheckResult struct {
	Text    string
	Figures map[string]string
}

// ArtifactChecker re-checks a recorded artifact against the file on disk
// (size, mtime and hash) right before a step that depends on it.
type ArtifactChecker interface {
	Recheck(ctx context.Context, name string, a Artifact) error
}
