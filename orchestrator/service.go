package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Service is every operation an operator can ask of upgrader's runs. One
// implementation carries it out in this process (package
// orchestrator/local: the daemon's, and the foreground CLI's when no
// daemon runs); the control socket's client (package orchestrator/api)
// is another, so the CLI behaves the same with and without a daemon.
//
// Operations that let a run go on (Start, Resume, Confirm, Retry, Skip)
// return once the run is executing; Watch follows it until it stops.
// Every request carries the options that shape a plan, so whoever
// executes plans exactly what the operator was shown.
type Service interface {
	Plan(ctx context.Context, req PlanRequest) (Plan, error)
	Start(ctx context.Context, req StartRequest) (Status, error)
	Resume(ctx context.Context, req ResumeRequest) (Status, error)
	Confirm(ctx context.Context, req ConfirmRequest) (Status, error)
	Retry(ctx context.Context, req RetryRequest) (Status, error)
	Skip(ctx context.Context, req SkipRequest) (Status, error)
	Abort(ctx context.Context, req AbortRequest) (Status, error)
	// Export returns the active run, sealed, to carry to another server;
	// the caller writes it durably, then calls MarkExported.
	Export(ctx context.Context) (RunExport, error)
	MarkExported(ctx context.Context, req MarkExportedRequest) (Status, error)
	Import(ctx context.Context, req ImportRequest) (Status, error)
	// Status is the run named (the active one, else the latest, for "").
	Status(ctx context.Context, runID string) (Status, error)
	Journal(ctx context.Context, runID string, after uint64) ([]JournalEntry, error)
	// StepTimes measures the steps of the procedure's completed runs.
	StepTimes(ctx context.Context, procedure string) (StepTimes, error)
	// History lists every run this state holds, archived ones included,
	// oldest first.
	History(ctx context.Context) ([]RunSummary, error)
	// Watch streams notices of the run being carried out from the one
	// after seq `after` (Status's NoticeSeq: from then on); a "stopped"
	// notice says nothing executes the run any more. The channel closes
	// with ctx.
	Watch(ctx context.Context, after uint64) (<-chan Notice, error)
}

// RunSummary is one run as History lists it.
type RunSummary struct {
	ID        string    `json:"id"`
	Procedure string    `json:"procedure"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	State     State     `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Done      int       `json:"steps_done"` // done or skipped
	Steps     int       `json:"steps"`
}

// Summarize is the RunSummary of a run and its step records.
func Summarize(run Run, recs []StepRecord) RunSummary {
	s := RunSummary{ID: run.ID, Procedure: run.Plan.Procedure, From: run.Plan.From, To: run.Plan.To, State: run.State,
		Reason: run.Reason, CreatedAt: run.CreatedAt, UpdatedAt: run.UpdatedAt, Steps: len(run.Plan.Steps)}
	for _, r := range recs {
		if r.Status == StepDone || r.Status == StepSkipped {
			s.Done++
		}
	}
	return s
}

// Status is where a run stands, with its outcome for the operator.
type Status struct {
	Run   Run          `json:"run"`
	Steps []StepRecord `json:"steps"`
	// Busy says a step is being carried out now.
	Busy bool `json:"busy"`
	// Role is this server's role in a two-server procedure.
	Role    string  `json:"role,omitempty"`
	Outcome Outcome `json:"outcome"`
	// NoticeSeq is the sequence number of the last notice published when
	// the status was taken: Watch(after=NoticeSeq) misses nothing since.
	NoticeSeq uint64 `json:"notice_seq"`
	// NothingToDo is set by Start when the plan had nothing to do: no run
	// was made, Plan says why.
	NothingToDo bool  `json:"nothing_to_do,omitempty"`
	Plan        *Plan `json:"plan,omitempty"`
}

// Limits of request text: one line, bounded.
const (
	maxIDText     = 200
	maxReasonText = 4096
)

// PlanRequest is everything that shapes a plan besides the host: the same
// for plan, run, start and the daemon, so each plans exactly alike.
type PlanRequest struct {
	// Profile is the site profile's path; "" is the service's own.
	Profile   string            `json:"profile,omitempty"`
	Procedure string            `json:"procedure,omitempty"`
	With      []string          `json:"with,omitempty"`
	Overrides map[string]string `json:"overrides,omitempty"`
	// Assume overrides facts, key=value: a what-if plan.
	Assume []string `json:"assume,omitempty"`
}

// Check refuses control characters and oversized values.
func (r PlanRequest) Check() error {
	errs := []error{checkText("profile", r.Profile, 4096), checkText("procedure", r.Procedure, maxIDText)}
	if len(r.With) > 32 || len(r.Overrides) > 32 || len(r.Assume) > 64 {
		errs = append(errs, errors.New("too many options: a plan takes a few --with, --override and --assume"))
	}
	for _, w := range r.With {
		errs = append(errs, checkText("with", w, maxIDText))
	}
	for k, v := range r.Overrides {
		errs = append(errs, checkText("override id", k, maxIDText), checkText("override reason", v, maxReasonText))
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			errs = append(errs, errors.New("an override needs its finding id and a reason"))
		}
	}
	for _, a := range r.Assume {
		errs = append(errs, checkText("assume", a, maxReasonText))
	}
	return errors.Join(errs...)
}

// StartRequest starts a run of the plan made now with the request's
// options. The plan must have the fingerprint the operator consented to
// when one is given, and some consent is needed.
type StartRequest struct {
	Plan PlanRequest `json:"plan"`
	// ExpectFingerprint is the fingerprint (or a prefix of its digits) of
	// the plan the operator reviewed: the run starts only if today's plan
	// has it. With Consent.Via fingerprint it is the consent itself.
	ExpectFingerprint string `json:"expect_fingerprint,omitempty"`
	// Consent is the operator's: how given, and which gates it answers.
	Consent Consent `json:"consent"`
	// Continue carries an unfinished run on (as Resume) instead of
	// refusing to start beside it.
	Continue bool `json:"continue,omitempty"`
}

// Check needs a consent, a well-formed fingerprint, and sane values.
func (r StartRequest) Check() error {
	errs := []error{r.Plan.Check(), checkFingerprint(r.ExpectFingerprint), r.Consent.check()}
	switch r.Consent.Via {
	case ConsentTerminal, ConsentYes:
	case ConsentFingerprint:
		if r.ExpectFingerprint == "" {
			errs = append(errs, errors.New("a consent by fingerprint needs expect_fingerprint"))
		}
	case "":
		errs = append(errs, ErrNoConsent)
	default:
		errs = append(errs, fmt.Errorf("consent via %.40q: use %s, %s or %s", r.Consent.Via, ConsentTerminal, ConsentYes, ConsentFingerprint))
	}
	return errors.Join(errs...)
}

// ErrNoConsent means a run was asked to start without the operator's
// consent: on a terminal the operator says yes; unattended, --yes or the
// plan's fingerprint.
var ErrNoConsent = errors.New("no consent: nothing irreversible starts without one (a yes on a terminal, --yes, or --expect-fingerprint FP from 'upgrader plan')")

func (c Consent) check() error {
	if len(c.Answers) > 64 {
		return fmt.Errorf("%d answers: an answers file answers a few gates", len(c.Answers))
	}
	var errs []error
	for id, att := range c.Answers {
		errs = append(errs, checkText("answers: gate id", id, maxIDText), checkAttestation(att))
	}
	return errors.Join(errs...)
}

// ResumeRequest carries the active run on: the plan is checked against
// the one the run started with; a failed step is tried again, a step in
// flight probed. Yes and Answers answer the gates it reaches, this time.
type ResumeRequest struct {
	// Profile is the site profile to carry the run on with; "" is the one
	// it started with.
	Profile string `json:"profile,omitempty"`
	// Replan accepts a plan that changed since the run started.
	Replan  bool                         `json:"replan,omitempty"`
	Yes     bool                         `json:"yes,omitempty"`
	Answers map[string]map[string]string `json:"answers,omitempty"`
}

// Check refuses malformed answers.
func (r ResumeRequest) Check() error {
	return errors.Join(checkText("profile", r.Profile, 4096), Consent{Answers: r.Answers}.check())
}

// ConfirmRequest confirms the gate (or the point of no return) the run
// waits at.
type ConfirmRequest struct {
	Step        string            `json:"step"`
	Attestation map[string]string `json:"attestation"`
	// Profile: as ResumeRequest's.
	Profile string `json:"profile,omitempty"`
}

// Check needs the step, and plain one-line attestations.
func (r ConfirmRequest) Check() error {
	if r.Step == "" {
		return errors.New("confirm needs the step of the gate")
	}
	return errors.Join(checkText("step", r.Step, maxIDText), checkAttestation(r.Attestation), checkText("profile", r.Profile, 4096))
}

func checkAttestation(att map[string]string) error {
	if len(att) > 64 {
		return fmt.Errorf("%d attestation fields: a gate asks for a few", len(att))
	}
	var errs []error
	for k, v := range att {
		if k == "" {
			errs = append(errs, errors.New("an attestation field has no name"))
		}
		errs = append(errs, checkText("attestation field name", k, maxIDText), checkText("attestation "+k, v, maxReasonText))
	}
	return errors.Join(errs...)
}

// RetryRequest tries the failed step again.
type RetryRequest struct {
	// Profile: as ResumeRequest's.
	Profile string `json:"profile,omitempty"`
}

// Check refuses a malformed profile path.
func (r RetryRequest) Check() error { return checkText("profile", r.Profile, 4096) }

// SkipRequest skips the failed or waiting step, if its policy allows; the
// reason is required and journaled.
type SkipRequest struct {
	Step   string `json:"step"`
	Reason string `json:"reason"`
	// Profile: as ResumeRequest's.
	Profile string `json:"profile,omitempty"`
}

// Check needs the step and a one-line reason.
func (r SkipRequest) Check() error {
	if r.Step == "" || strings.TrimSpace(r.Reason) == "" {
		return errors.New("skip needs the step and a reason")
	}
	return errors.Join(checkText("step", r.Step, maxIDText), checkText("reason", r.Reason, maxReasonText), checkText("profile", r.Profile, 4096))
}

// AbortRequest stops the run for good, before the point of no return; the
// reason is required.
type AbortRequest struct {
	Reason string `json:"reason"`
}

// Check needs a one-line reason.
func (r AbortRequest) Check() error {
	if strings.TrimSpace(r.Reason) == "" {
		return errors.New("abort needs a reason")
	}
	return checkText("reason", r.Reason, maxReasonText)
}

// MarkExportedRequest closes a run on this server once its export is
// durable at Where.
type MarkExportedRequest struct {
	Run   string `json:"run"`
	Where string `json:"where"`
}

// Check needs a valid run id and a one-line place.
func (r MarkExportedRequest) Check() error {
	return errors.Join(ValidRunID(r.Run), checkText("where", r.Where, 4096))
}

// ImportRequest takes over a run exported on another server.
type ImportRequest struct {
	Export RunExport `json:"export"`
	// From says where the file came from, for the journal.
	From string `json:"from"`
	// Overrides may accept the migrate-target-model finding.
	Overrides map[string]string `json:"overrides,omitempty"`
	// Profile is this server's site profile; "" is the service's own.
	Profile string `json:"profile,omitempty"`
}

// Check proves the export is whole and sealed, and the rest sane.
func (r ImportRequest) Check() error {
	errs := []error{r.Export.Check(), checkText("from", r.From, 4096), checkText("profile", r.Profile, 4096)}
	for k, v := range r.Overrides {
		errs = append(errs, checkText("override id", k, maxIDText), checkText("override reason", v, maxReasonText))
	}
	return errors.Join(errs...)
}

// checkText refuses a control character in a request's text: it would go
// into the journal and onto operators' terminals as it is.
func checkText(field, s string, most int) error {
	if len(s) > most {
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(s), most)
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == 0x2028 || c == 0x2029 {
			return fmt.Errorf("%s has a control character (%U): send it on one line, without escape sequences", field, c)
		}
	}
	return nil
}

// checkFingerprint accepts no fingerprint, or the plan's ("sha256:" and 64
// hex digits) or a prefix of its digits.
func checkFingerprint(fp string) error {
	d := strings.TrimPrefix(fp, "sha256:")
	if fp != "" && (d == "" || len(d) > 64 || strings.Trim(d, "0123456789abcdef") != "") {
		return fmt.Errorf("expect_fingerprint %.80q is not a plan fingerprint: give the one 'upgrader plan' prints", fp)
	}
	return nil
}

// FingerprintMatches reports whether a plan's fingerprint starts with the
// digits an operator gave (with or without "sha256:").
func FingerprintMatches(fp, want string) bool {
	fp, want = strings.TrimPrefix(fp, "sha256:"), strings.TrimPrefix(want, "sha256:")
	return want != "" && strings.HasPrefix(fp, want)
}

type actorKey struct{}

// WithActor names who asks, for the journal: the operator's uid in this
// process, the socket peer's in the daemon.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom is who asks, "unknown" when nobody said.
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "unknown"
}
