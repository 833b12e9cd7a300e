package orchestrator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"regexp"
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
	// Consent is the operator's agreement to the run (see Consent).
	Consent *Consent `json:"consent,omitempty"`
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
	// Snapshot asks the store to copy the state after this commit, which
	// must survive a restore: the intent of an irreversible step, values a
	// step saved. (A finished step or run is always copied.)
	Snapshot bool
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

// runIDPattern is what a run id may be: upgrader makes them as
// 20261129T160000Z-a1b2c3. A run id names files (the backups) and is
// printed on terminals, so nothing else is accepted from outside: no path
// separator, no dot, no control character.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// ValidRunID says what is wrong with a run id given from outside (an
// imported file, a --run flag, the state), nil if nothing. The id is
// quoted in the message, so an escape sequence in it is shown, not
// played.
func ValidRunID(id string) error {
	if runIDPattern.MatchString(id) {
		return nil
	}
	return fmt.Errorf("%w %.80q: a run id is 1 to 64 letters, digits, '_' and '-', starting with a letter or digit (as upgrader makes them: 20261129T160000Z-a1b2c3)",
		ErrInvalidRunID, id)
}

// ExportFormat names the layout of an exported run. Version 2 added the
// seal; version 1 files are refused with a message.
const ExportFormat = "upgrader-run/2"

// MaxExportSize bounds an exported run file: a plan, its step records and
// a journal of a few hundred lines take a few hundred kB.
const MaxExportSize = 16 << 20

// RunExport is a run carried from one server to another (migration): the
// plan, the step records and the journal, as upgrader export writes them,
// sealed.
type RunExport struct {
	Format     string         `json:"format"`
	ExportedAt time.Time      `json:"exported_at"`
	Run        Run            `json:"run"`
	Steps      []StepRecord   `json:"steps"`
	Journal    []JournalEntry `json:"journal"`
	// Seal is "sha256:" and the SHA-256 of the export's JSON encoding
	// with Seal empty (see Sealed).
	Seal string `json:"seal"`
}

// Sealed returns the export with its seal: a checksum over its whole
// content (plan, step records, journal). The seal catches a file damaged
// on the way (cut short, a byte changed) and a hand edit made without
// reading this code. It is not a signature: anyone can recompute it after
// an edit, so it proves nothing against a determined forger. What a forger
// gains is bounded by Check's structural rules instead: only the steps of
// the server that exported the run may carry progress, and every step of
// the importing server starts pending and is done there, by its own
// probes and guards (the carried backup is re-checked, size and SHA-256,
// before the restore).
func (x RunExport) Sealed() RunExport {
	x.Seal = x.seal()
	return x
}

func (x RunExport) seal() string {
	x.Seal = ""
	b, err := json.Marshal(x)
	if err != nil {
		panic(fmt.Sprintf("run export cannot be encoded: %v", err)) // programmer error
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DecodeExport reads an exported run strictly (one JSON object of known
// fields and nothing after it) and checks it (see Check).
func DecodeExport(data []byte) (RunExport, error) {
	var x RunExport
	if len(data) > MaxExportSize {
		return x, fmt.Errorf("%d bytes, more than the %d an exported run may have: is it the right file?", len(data), MaxExportSize)
	}
	// The format first: an older or newer layout gets its own message,
	// not an unknown field's.
	var head struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return x, fmt.Errorf("not a run exported by upgrader: %v", err)
	}
	if err := checkFormat(head.Format); err != nil {
		return x, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return x, fmt.Errorf("not a run exported by upgrader: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return x, errors.New("not a run exported by upgrader: more after the JSON object")
	}
	return x, x.Check()
}

func checkFormat(format string) error {
	switch format {
	case ExportFormat:
		return nil
	case "upgrader-run/1":
		return fmt.Errorf("exported by an older upgrader (format %q, not sealed): import it with the upgrader that exported it, "+
			"or use this upgrader on both servers", format)
	}
	return fmt.Errorf("not an exported run this upgrader reads (format %.40q, want %q)", format, ExportFormat)
}

// Check proves an export is whole and may be carried on here: the format,
// the seal, the run id, the plan's fingerprint, records and journal that
// match the plan and the run, and progress only where the exporting server
// made it. In a two-server procedure the exporting server is the source:
// its steps may be done, skipped, started or failed; every other step must
// be pending and untouched (no attempt, output, confirmation or saved
// value), or a forged file could pass this server's steps as done. A
// one-server run carries no progress to another server at all.
func (x RunExport) Check() error {
	if err := checkFormat(x.Format); err != nil {
		return err
	}
	if x.Seal != x.seal() {
		return fmt.Errorf("%w: the file was changed after upgrader exported it (its seal does not match its content): "+
			"export the run again on the other server, or copy the file again", ErrBadExport)
	}
	if err := ValidRunID(x.Run.ID); err != nil {
		return err
	}
	if x.Run.Plan.Fingerprint != Fingerprint(x.Run.Plan) {
		return fmt.Errorf("%w: the exported plan was changed after it was fingerprinted", ErrFingerprintMismatch)
	}
	if x.Run.State.Terminal() {
		return fmt.Errorf("run %s is %s: nothing to carry on", x.Run.ID, x.Run.State)
	}
	if len(x.Steps) != len(x.Run.Plan.Steps) {
		return fmt.Errorf("%w: %d step records for %d planned steps", ErrBadExport, len(x.Steps), len(x.Run.Plan.Steps))
	}
	for i, r := range x.Steps {
		spec := x.Run.Plan.Steps[i]
		if r.Index != i || r.StepID != spec.ID || r.RunID != x.Run.ID {
			return fmt.Errorf("%w: step record %d (%.80q) does not match the plan's %s", ErrBadExport, i, r.StepID, spec.ID)
		}
		switch r.Status {
		case StepPending, StepStarted, StepDone, StepFailed, StepSkipped:
		default:
			return fmt.Errorf("%w: step %s has status %.40q", ErrBadExport, spec.ID, r.Status)
		}
		for name, a := range r.Outputs.Artifacts {
			// An artifact is re-checked and used here by its path: it
			// names a file, never a way out of the host's root.
			if !path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path {
				return fmt.Errorf("%w: artifact %s of step %s has the path %.200q: want an absolute path without . or .. parts",
					ErrBadExport, name, spec.ID, a.Path)
			}
		}
		pristine := StepRecord{RunID: r.RunID, Index: r.Index, StepID: r.StepID, Status: StepPending}
		if spec.RunsOn != RoleSource && !reflect.DeepEqual(r, pristine) {
			return fmt.Errorf("%w: step %s is %s in the file, but it runs on %s: only the steps of the server that exported the run "+
				"may carry progress; export the run again on the other server", ErrBadExport, spec.ID, r.Status, serverOf(spec.RunsOn))
		}
	}
	for i, j := range x.Journal {
		if j.Seq != uint64(i+1) || j.RunID != x.Run.ID {
			return fmt.Errorf("%w: journal entry %d is out of sequence (seq %d)", ErrBadExport, i+1, j.Seq)
		}
	}
	return nil
}

// serverOf names the server a step runs on, for messages.
func serverOf(role string) string {
	if role == "" {
		return "the server the run was planned on (a one-server procedure)"
	}
	return "the " + role + " server"
}
