package orchestrator

import (
	"fmt"
	"time"
)

// Run is a persisted execution of one plan.
type Run struct {
	ID   string `json:"id"`
	Plan Plan   `json:"plan"`
	// Profile is the site profile's path, so resume can find it again.
	Profile   string    `json:"profile"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Reason says why the run is blocked, failed or aborted.
	Reason string `json:"reason,omitempty"`
}

// StepStatus is where one step of a run stands.
type StepStatus string

const (
	StepPending StepStatus = "pending" // not reached
	StepStarted StepStatus = "started" // intent recorded; effect may be partial
	StepDone    StepStatus = "done"    // verified
	StepFailed  StepStatus = "failed"  // last attempt failed
	StepSkipped StepStatus = "skipped" // skipped by an operator, with a reason
)

// StepRecord is the persisted progress of one step of a run.
type StepRecord struct {
	RunID      string     `json:"run_id"`
	Index      int        `json:"index"`
	StepID     string     `json:"step_id"`
	Status     StepStatus `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  time.Time  `json:"started_at,omitzero"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	// AlreadyInPlace is true when Probe found the effect done and Apply
	// did not run on the last attempt.
	AlreadyInPlace bool          `json:"already_in_place,omitempty"`
	Outputs        Outputs       `json:"outputs"`
	Error          string        `json:"error,omitempty"`
	SkipReason     string        `json:"skip_reason,omitempty"`
	Confirmation   *Confirmation `json:"confirmation,omitempty"`
	// Saved is what the step recorded with StepContext.Save.
	Saved map[string]string `json:"saved,omitempty"`
}

// Confirmation is an operator's answer at a gate.
type Confirmation struct {
	Actor       string            `json:"actor"`
	At          time.Time         `json:"at"`
	Attestation map[string]string `json:"attestation,omitempty"`
}

// JournalEntry is one line of a run's append-only journal.
type JournalEntry struct {
	Seq    uint64            `json:"seq"`
	RunID  string            `json:"run_id"`
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`
	Event  string            `json:"event"`
	Step   string            `json:"step,omitempty"`
	Text   string            `json:"text"`
	Fields map[string]string `json:"fields,omitempty"`
}

// Update is one atomic change to the state: the run, any step records and
// the journal entries that explain them are committed together or not at
// all. The store assigns journal sequence numbers.
type Update struct {
	Run     Run
	Steps   []StepRecord
	Journal []JournalEntry
	// ReplaceSteps says the run's plan was replaced: the store writes the
	// new plan and drops the old step records before writing Steps.
	ReplaceSteps bool
}

// Store persists runs. Every method is durable when it returns nil: the
// data is on disk (fsync). Package state implements it with bbolt.
type Store interface {
	// CreateRun stores a new run with its pending step records and makes it
	// the active run; it fails with ErrActiveRun if another is active.
	CreateRun(u Update) error
	// Commit applies an update to an existing run in one transaction.
	Commit(u Update) error
	// ActiveRun returns the id of the run that is not yet over, or
	// ErrNoActiveRun.
	ActiveRun() (string, error)
	// LatestRun returns the id of the newest run, or ErrNoActiveRun.
	LatestRun() (string, error)
	// LoadRun returns a run and its step records in plan order.
	LoadRun(id string) (Run, []StepRecord, error)
	// Journal returns a run's journal entries with Seq > after.
	Journal(runID string, after uint64) ([]JournalEntry, error)
	// ImportRun stores a run exported elsewhere, its journal with the
	// sequence numbers it had, and makes it the active run.
	ImportRun(x RunExport) error
}

// PastPointOfNoReturn reports whether an irreversible step of the run has
// started (or finished), and which one. A step whose guard refused it (a
// changed backup) failed without an attempt: its effect never began.
func PastPointOfNoReturn(plan Plan, recs []StepRecord) (bool, string) {
	for i, s := range plan.Steps {
		if s.Irreversible && i < len(recs) && recs[i].Status != StepPending && recs[i].Attempts > 0 {
			return true, s.ID
		}
	}
	return false, ""
}

// NextStep returns the index of the first step that is neither done nor
// skipped, or -1 when the run has nothing left to do.
func NextStep(recs []StepRecord) int {
	for i, r := range recs {
		if r.Status != StepDone && r.Status != StepSkipped {
			return i
		}
	}
	return -1
}

// artifactsBefore collects the artifacts of verified steps before index i.
func artifactsBefore(recs []StepRecord, i int) map[string]Artifact {
	out := map[string]Artifact{}
	for _, r := range recs[:i] {
		if r.Status != StepDone {
			continue
		}
		for name, a := range r.Outputs.Artifacts {
			out[name] = a
		}
	}
	return out
}

// ExportFormat names the layout of an exported run.
const ExportFormat = "upgrader-run/1"

// RunExport is a run carried from one server to another (migration): the
// plan, the step records and the journal, as upgrader export writes them.
type RunExport struct {
	Format     string         `json:"format"`
	ExportedAt time.Time      `json:"exported_at"`
	Run        Run            `json:"run"`
	Steps      []StepRecord   `json:"steps"`
	Journal    []JournalEntry `json:"journal"`
}

// Check proves an export is whole and consistent before it is imported.
func (x RunExport) Check() error {
	if x.Format != ExportFormat {
		return fmt.Errorf("not an exported run (format %q, want %q)", x.Format, ExportFormat)
	}
	if x.Run.ID == "" || x.Run.Plan.Fingerprint != Fingerprint(x.Run.Plan) {
		return fmt.Errorf("%w: the exported plan was changed after it was fingerprinted", ErrFingerprintMismatch)
	}
	if len(x.Steps) != len(x.Run.Plan.Steps) {
		return fmt.Errorf("the export has %d step records for %d planned steps", len(x.Steps), len(x.Run.Plan.Steps))
	}
	for i, r := range x.Steps {
		if r.Index != i || r.StepID != x.Run.Plan.Steps[i].ID || r.RunID != x.Run.ID {
			return fmt.Errorf("step record %d (%s) does not match the plan's %s", i, r.StepID, x.Run.Plan.Steps[i].ID)
		}
	}
	for i, j := range x.Journal {
		if j.Seq != uint64(i+1) || j.RunID != x.Run.ID {
			return fmt.Errorf("journal entry %d is out of sequence (seq %d)", i+1, j.Seq)
		}
	}
	if x.Run.State.Terminal() {
		return fmt.Errorf("run %s is %s: nothing to carry on", x.Run.ID, x.Run.State)
	}
	return nil
}
