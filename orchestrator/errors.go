package orchestrator

import "errors"

// Sentinel errors callers branch on. Wrap them with %w and context.
var (
	// ErrNoActiveRun means the state holds no run that can be resumed.
	ErrNoActiveRun = errors.New("no active run")
	// ErrActiveRun means a new run was requested while another is active.
	ErrActiveRun = errors.New("another run is active")
	// ErrRunNotFound means the run id is not in the state.
	ErrRunNotFound = errors.New("run not found")
	// ErrFingerprintMismatch means the plan rebuilt today differs from the
	// plan the run was started with.
	ErrFingerprintMismatch = errors.New("plan fingerprint does not match the run")
	// ErrPastPointOfNoReturn means an irreversible step has started.
	ErrPastPointOfNoReturn = errors.New("past the point of no return")
	// ErrSkipNotAllowed means the step's skip policy forbids skipping it.
	ErrSkipNotAllowed = errors.New("step may not be skipped")
	// ErrTransition means the lifecycle does not allow the requested event
	// in the run's current state.
	ErrTransition = errors.New("transition not allowed")
	// ErrUnknownProcedure means the procedure id is not in the catalog.
	ErrUnknownProcedure = errors.New("unknown procedure")
	// ErrCheck means one of upgrader's own checks before a step (Checks)
	// failed: the run holds before the step.
	ErrCheck = errors.New("check before the step failed")
	// ErrGuard means a step's required artifact is missing or changed.
	ErrGuard = errors.New("step guard failed")
	// ErrAttestation means an operator confirmed a gate without the
	// fields it requires.
	ErrAttestation = errors.New("attestation incomplete")
	// ErrInvalidRunID means a run id given from outside is not one upgrader
	// makes (see ValidRunID).
	ErrInvalidRunID = errors.New("invalid run id")
	// ErrBadExport means an exported run file is damaged, edited, or
	// carries progress it may not (see RunExport.Check).
	ErrBadExport = errors.New("exported run refused")
	// ErrInvalidRequest means what was asked is malformed or names
	// something that does not exist (a profile, a procedure, an option):
	// fix the request and ask again.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrBlockedPlan means a run was asked to start from a plan with
	// blockers: nothing starts until they are fixed.
	ErrBlockedPlan = errors.New("the plan has blockers")
	// ErrRebootRequested is returned by a reboot step's Apply once it has
	// asked the host to restart: the run waits for the host to come back.
	ErrRebootRequested = errors.New("reboot requested")
	// ErrDetached is returned by a step that stopped waiting for work
	// going on outside upgrader (a supervised vendor installer) because
	// upgrader was asked to stop: the work goes on, the step stays started
	// and is probed, and the work followed again, when the run resumes.
	ErrDetached = errors.New("stopped waiting: the work goes on without upgrader")
)

// StepError says which step failed and in which phase; the engine records
// it on the step and in the journal.
type StepError struct {
	Step  string // step id
	Phase string // guard, probe, apply, verify
	Err   error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Phase + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }
