package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// MaxRebootAttempts is how many reboots a reboot step asks for without
// the host proving it restarted before the engine stops and asks the
// operator. Only reboots asked for count: a crash before the request is
// not the host coming back.
const MaxRebootAttempts = 3

// Keys of a reboot step's saved values: the reboots it asked for, and how
// many of them came before the operator's last retry.
const (
	savedReboots        = "reboots_requested"
	savedRebootsAtRetry = "reboots_at_retry"
)

// Notice tells a watcher what the engine is doing; it is for display only.
type Notice struct {
	// Seq numbers the notices of one process, from 1 (the supervisor
	// assigns it), so a watcher can ask for what it missed.
	Seq   uint64 `json:"seq,omitempty"`
	Kind  string `json:"kind"` // hello, step-start, step-done, step-failed, progress, paused, state, stopped
	Run   string `json:"run,omitempty"`
	Step  string `json:"step,omitempty"`
	Index int    `json:"index,omitempty"` // 0-based step index
	Total int    `json:"total,omitempty"` // number of steps
	Title string `json:"title,omitempty"`
	Text  string `json:"text,omitempty"`
	Done  int64  `json:"done,omitempty"` // progress
	Of    int64  `json:"of,omitempty"`   // progress total, 0 if unknown
}

// Engine carries out persisted runs. It is the thin shell around the pure
// core: it persists, calls steps, and persists again.
type Engine struct {
	Store   Store
	Steps   StepFactory
	Checker ArtifactChecker
	Now     func() time.Time
	Log     zerolog.Logger
	// Notify, if set, receives progress for display.
	Notify func(Notice)
	// Failpoint, if set, is called at every durable boundary of a step so
	// crash tests can stop the process there. Points: before-intent,
	// after-intent, after-effect, after-result. A step's result is durable
	// with the next step's intent (see held), so after-result of one
	// step comes right before after-intent of the next, after the same
	// commit.
	Failpoint func(point, step string)

	held *held // bookkeeping not committed yet
}

// held is bookkeeping waiting for the next commit of the same Execute: a
// finished step's result (as a rule it rides on the next step's intent:
// one durable commit per step instead of two) and the preflight and pass
// transitions before the first step. Nothing is held across anything
// that acts on or waits for the outside world (a guard's re-check, a
// database check, a pause, the end of Execute), and nobody is told of
// held work until the commit that carries it is on disk. Losing it to a
// crash leaves a step started (it is probed again, as every step must
// allow: invariant 2) or a run not yet past preflight (done again).
type held struct {
	run     Run // the run as it was when the last work was held
	steps   []StepRecord
	journal []JournalEntry
	notices []Notice // told once on disk; step-done also passes after-result
}

// hold keeps bookkeeping for the next commit.
func (e *Engine) hold(run Run, steps []StepRecord, j JournalEntry, n Notice) {
	if e.held == nil {
		e.held = &held{}
	}
	e.held.run = run
	e.held.steps = append(e.held.steps, steps...)
	e.held.journal = append(e.held.journal, j)
	e.held.notices = append(e.held.notices, n)
}

// ExecOptions are the operator's choices for one Execute call.
type ExecOptions struct {
	// Actor names who asked (e.g. "uid=0 root"); it goes in the journal.
	Actor string
	// Confirm answers an operator gate: the attestation and true to go on,
	// false to leave the run waiting. Nil leaves every gate waiting.
	Confirm func(spec StepSpec) (map[string]string, bool)
	// Retry tries the step again if the run is failed when Execute is
	// called; a step that fails during this call stays failed.
	Retry bool
	// Role is which server of a two-server procedure this host is
	// (RoleSource, RoleTarget); steps for the other one are not run here.
	Role string
	// Steps and Checker, when set, replace the engine's for this call: the
	// host of the run's own profile.
	Steps   StepFactory
	Checker ArtifactChecker

	resumed bool // the loop is in its first pass
}

// ExecResult is where an Execute call left the run.
type ExecResult struct {
	RunID string
	State State
	Step  string // the failed, waiting or last step
	Error string // why the step failed
	// HandOver names the server the next step runs on when it is not this
	// one: the run must be exported and imported there.
	HandOver string
}

const engineActor = "engine"

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now().UTC()
	}
	return e.Now().UTC()
}

func (e *Engine) notify(n Notice) {
	if e.Notify != nil {
		e.Notify(n)
	}
}

func (e *Engine) failpoint(point, step string) {
	if e.Failpoint != nil {
		e.Failpoint(point, step)
	}
}

// commit writes u, together with held bookkeeping if there is any, and
// only then tells of the held work.
func (e *Engine) commit(u Update) error {
	h := e.held
	if h == nil {
		return e.Store.Commit(u)
	}
	u.Steps = append(slices.Clone(h.steps), u.Steps...)
	u.Journal = append(slices.Clone(h.journal), u.Journal...)
	if err := e.Store.Commit(u); err != nil {
		return err
	}
	e.held = nil
	for _, n := range h.notices {
		if n.Kind == "step-done" {
			e.failpoint("after-result", n.Step)
		}
		e.notify(n)
	}
	return nil
}

// flush commits held bookkeeping on its own.
func (e *Engine) flush() error {
	if e.held == nil {
		return nil
	}
	return e.commit(Update{Run: e.held.run})
}

func (e *Engine) entry(run Run, actor, event, step, text string, fields map[string]string) JournalEntry {
	return JournalEntry{RunID: run.ID, Time: e.now(), Actor: actor, Event: event, Step: step, Text: text, Fields: fields}
}

// Create persists a new run of plan in state planned, with the operator's
// consent (nil: the run will stop before every gate and before its point
// of no return). Plans with nothing to do are refused: there is nothing to
// run.
func (e *Engine) Create(plan Plan, runID, profilePath, actor string, consent *Consent) (Run, error) {
	if plan.NothingToDo {
		return Run{}, errors.New("the plan has nothing to do")
	}
	if err := ValidRunID(runID); err != nil {
		return Run{}, err
	}
	if plan.Fingerprint != Fingerprint(plan) {
		return Run{}, fmt.Errorf("%w: the plan was changed after it was fingerprinted", ErrFingerprintMismatch)
	}
	now := e.now()
	run := Run{ID: runID, Plan: plan, Profile: profilePath, State: StatePlanned, CreatedAt: now, UpdatedAt: now, Consent: consent}
	recs := make([]StepRecord, len(plan.Steps))
	for i, s := range plan.Steps {
		recs[i] = StepRecord{RunID: runID, Index: i, StepID: s.ID, Status: StepPending}
	}
	j := e.entry(run, actor, "run.created", "", fmt.Sprintf("run of %s %s → %s created, %d steps", plan.Procedure, plan.From, plan.To, len(plan.Steps)),
		map[string]string{"fingerprint": plan.Fingerprint, "point_of_no_return": plan.PointOfNoReturn})
	entries := []JournalEntry{j}
	if consent != nil {
		text := "consent via " + consent.Via
		if consent.PointOfNoReturn && plan.PointOfNoReturn != "" {
			text += ", covering the point of no return (" + plan.PointOfNoReturn + ")"
		}
		entries = append(entries, e.entry(run, consent.Actor, "consent.given", "", text,
			map[string]string{"via": consent.Via, "point_of_no_return": strconv.FormatBool(consent.PointOfNoReturn), "yes": strconv.FormatBool(consent.Yes)}))
	}
	for _, id := range slices.Sorted(maps.Keys(plan.Inputs.Overrides)) {
		entries = append(entries, e.entry(run, actor, "finding.overridden", "", id+" overridden: "+plan.Inputs.Overrides[id],
			map[string]string{"finding": id, "reason": plan.Inputs.Overrides[id]}))
	}
	if err := e.Store.CreateRun(Update{Run: run, Steps: recs, Journal: entries}); err != nil {
		return Run{}, err
	}
	return run, nil
}

// transition moves the run through the lifecycle and commits the new state
// together with the records and journal entry that explain it.
// The in-memory recs are updated with the changed records once committed.
func (e *Engine) transition(run *Run, recs []StepRecord, ev Event, actor, text string, changed ...StepRecord) error {
	next, err := Transition(run.State, ev)
	if err != nil {
		return err
	}
	old := run.State
	run.State, run.UpdatedAt = next, e.now()
	j := e.entry(*run, actor, "run."+string(ev), "", text, map[string]string{"from": string(old), "to": string(next)})
	if ev == EventPreflight || ev == EventPass {
		// Nothing is acted on before the next commit: held (see held).
		e.hold(*run, changed, j, Notice{Kind: "state", Run: run.ID, Text: string(next)})
		for _, r := range changed {
			recs[r.Index] = r
		}
		return nil
	}
	if err := e.commit(Update{Run: *run, Steps: changed, Journal: []JournalEntry{j}}); err != nil {
		run.State = old
		return err
	}
	for _, r := range changed {
		recs[r.Index] = r
	}
	e.notify(Notice{Kind: "state", Run: run.ID, Text: string(next)})
	return nil
}

// Execute carries the run forward until it completes, fails, is blocked or
// waits for an operator. A step found started (the process died during it)
// is probed again, never assumed done.
//
// The run is loaded once: this process holds the state's lock, so the
// in-memory copy is kept equal to what each commit wrote (a held result
// included: it is committed before Execute returns).
func (e *Engine) Execute(ctx context.Context, runID string, opts ExecOptions) (ExecResult, error) {
	c := *e // this call's own engine: a held result belongs to it alone
	if opts.Steps != nil {
		c.Steps, c.Checker = opts.Steps, opts.Checker
	}
	out, err := c.execute(ctx, runID, opts)
	if ferr := c.flush(); ferr != nil && err == nil {
		err = ferr
	}
	return out, err
}

func (e *Engine) execute(ctx context.Context, runID string, opts ExecOptions) (ExecResult, error) {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return ExecResult{RunID: runID}, err
	}
	opts.resumed = true
	for {
		if err := ctx.Err(); err != nil {
			return ExecResult{RunID: runID, State: run.State}, err
		}
		out := ExecResult{RunID: run.ID, State: run.State}
		switch run.State {
		case StatePlanned:
			err = e.transition(&run, recs, EventPreflight, engineActor, "preflight")
		case StatePreflight:
			if len(run.Plan.Blockers) > 0 {
				ids := make([]string, len(run.Plan.Blockers))
				for i, b := range run.Plan.Blockers {
					ids[i] = b.ID
				}
				run.Reason = "blocked by " + strings.Join(ids, ", ")
				err = e.transition(&run, recs, EventBlock, engineActor, run.Reason)
			} else {
				err = e.transition(&run, recs, EventPass, engineActor, "preflight passed")
			}
		case StateFailed:
			i := NextStep(recs)
			out.Step, out.Error = stepIDAt(run, i), recordError(recs, i)
			if !opts.Retry {
				return out, nil
			}
			run.Reason = ""
			var changed []StepRecord
			if i := NextStep(recs); run.Plan.Steps[i].Kind == KindReboot {
				// The operator's retry starts the reboot-loop count afresh.
				rec := recs[i]
				rec.Saved = maps.Clone(rec.Saved)
				if rec.Saved == nil {
					rec.Saved = map[string]string{}
				}
				rec.Saved[savedRebootsAtRetry] = rec.Saved[savedReboots]
				changed = append(changed, rec)
			}
			err = e.transition(&run, recs, EventRetry, opts.Actor, "retry "+out.Step, changed...)
		case StateWaitingOperator:
			i := NextStep(recs)
			if i < 0 {
				return out, fmt.Errorf("run %s waits for an operator but has no step left: the state is inconsistent", run.ID)
			}
			out.Step = stepIDAt(run, i)
			spec := run.Plan.Steps[i]
			if att, ok := run.Consent.Covers(spec); ok {
				err = e.confirm(&run, recs, i, run.Consent.Actor, att)
				break
			}
			e.notify(Notice{Kind: "paused", Run: run.ID, Step: spec.ID, Index: i, Total: len(recs), Title: spec.Title, Text: pausedText(spec)})
			if opts.Confirm == nil {
				return out, nil
			}
			att, ok := opts.Confirm(spec)
			if !ok {
				return out, nil
			}
			err = e.confirm(&run, recs, i, opts.Actor, att)
		case StateRebooting:
			// The reboot step stays started: it is probed like any step found
			// started, and proves the host came back. The process that asked
			// for the reboot stops here; the next one carries on.
			if !opts.resumed {
				out.Step = stepIDAt(run, NextStep(recs))
				return out, nil
			}
			err = e.transition(&run, recs, EventRebooted, engineActor, "upgrader started again after the reboot")
		case StateRunning:
			i := NextStep(recs)
			if i < 0 {
				err = e.transition(&run, recs, EventComplete, engineActor, "every step done")
				break
			}
			spec := run.Plan.Steps[i]
			if spec.RunsOn != "" && spec.RunsOn != opts.Role {
				out.Step, out.HandOver = spec.ID, spec.RunsOn
				return out, nil
			}
			if NeedsConsent(run, recs, i) {
				text := "waiting for the operator at " + spec.ID
				if spec.Kind != KindGate {
					text = "waiting for consent before the point of no return (" + spec.ID + ")"
				}
				err = e.transition(&run, recs, EventPause, engineActor, text)
				break
			}
			err = e.runStep(ctx, &run, recs, i)
		default: // completed, aborted, blocked
			i := NextStep(recs)
			out.Step = stepIDAt(run, i)
			out.Error = run.Reason
			return out, nil
		}
		if err != nil {
			return out, err
		}
		// Retry applies to the failure the run had when Execute was
		// called, never to a failure that happens now; likewise a reboot
		// requested now is waited for.
		opts.Retry = false
		opts.resumed = false
	}
}

func stepIDAt(run Run, i int) string {
	if i < 0 || i >= len(run.Plan.Steps) {
		return ""
	}
	return run.Plan.Steps[i].ID
}

func recordError(recs []StepRecord, i int) string {
	if i < 0 || i >= len(recs) {
		return ""
	}
	return recs[i].Error
}

// runStep carries out one step: guards, intent, Probe, Apply, Verify,
// result. A step failure is recorded and returns nil: the run is then in
// state failed. Only persistence errors and cancellation are returned.
func (e *Engine) runStep(ctx context.Context, run *Run, recs []StepRecord, i int) error {
	spec := run.Plan.Steps[i]
	rec := recs[i]
	resumed := rec.Status == StepStarted
	artifacts := artifactsBefore(recs, i)
	if len(spec.Requires) > 0 || (len(spec.Checks) > 0 && !resumed) {
		// Re-checks and checks look at the outside world and may take a
		// while: the step before is on disk, and said done, first.
		if err := e.flush(); err != nil {
			return err
		}
	}

	for _, name := range spec.Requires {
		a, ok := artifacts[name]
		if !ok {
			return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "guard",
				Err: fmt.Errorf("%w: needs %s from an earlier verified step and none is recorded", ErrGuard, name)})
		}
		if err := e.Checker.Recheck(ctx, name, a); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "guard", Err: fmt.Errorf("%w: %s: %w", ErrGuard, name, err)})
		}
	}

	// The checks come before a step starts: one already started (its
	// intent recorded, an installer perhaps half-way) is probed, never
	// held back.
	for _, name := range spec.Checks {
		if resumed {
			break
		}
		if err := e.check(ctx, run, recs, rec, spec, name); err != nil {
			return err
		}
		if run.State == StateFailed {
			return nil
		}
	}

	e.failpoint("before-intent", spec.ID)
	rec.Status, rec.Attempts, rec.StartedAt, rec.Error = StepStarted, rec.Attempts+1, e.now(), ""
	event, text := "step.start", fmt.Sprintf("start %s (attempt %d)", spec.ID, rec.Attempts)
	if resumed {
		event, text = "step.resume", fmt.Sprintf("found %s started by an earlier process: probing it (attempt %d)", spec.ID, rec.Attempts)
	}
	fields := map[string]string{"attempt": fmt.Sprint(rec.Attempts), "fingerprint": run.Plan.Fingerprint}
	if m := materialIDs(spec); m != "" {
		fields["material_id"] = m // the vendor material this step follows, for the record
	}
	j := e.entry(*run, engineActor, event, spec.ID, text, fields)
	run.UpdatedAt = e.now()
	// The intent of an irreversible step is copied to the snapshot: a
	// restored state must never forget that the point of no return passed.
	if err := e.commit(Update{Run: *run, Steps: []StepRecord{rec}, Journal: []JournalEntry{j}, Snapshot: spec.Irreversible}); err != nil {
		return err
	}
	recs[i] = rec
	e.failpoint("after-intent", spec.ID)
	e.notify(Notice{Kind: "step-start", Run: run.ID, Step: spec.ID, Index: i, Total: len(recs), Title: spec.Title, Text: text})

	impl, err := e.Steps.Build(spec)
	if err != nil {
		return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "build", Err: err})
	}
	sc := StepContext{
		RunID: run.ID, Spec: spec, Artifacts: artifacts, Confirmation: rec.Confirmation, Saved: rec.Saved,
		Resumed: resumed, Stopped: ctx.Done(),
		Save: func(values map[string]string) error {
			saved := maps.Clone(rec.Saved)
			if saved == nil {
				saved = map[string]string{}
			}
			maps.Copy(saved, values)
			next := rec
			next.Saved = saved
			j := e.entry(*run, engineActor, "step.saved", spec.ID, "saved "+strings.Join(slices.Sorted(maps.Keys(values)), ", "), values)
			// Saved values (a boot id, a job's key) must survive a restore.
			if err := e.commit(Update{Run: *run, Steps: []StepRecord{next}, Journal: []JournalEntry{j}, Snapshot: true}); err != nil {
				return err
			}
			rec, recs[i] = next, next
			return nil
		},
		Log: e.Log.With().Str("run", run.ID).Str("step", spec.ID).Logger(),
		Progress: func(label string, done, total int64) {
			e.notify(Notice{Kind: "progress", Run: run.ID, Step: spec.ID, Index: i, Total: len(recs), Title: spec.Title, Text: label, Done: done, Of: total})
		},
	}
	// An irreversible step is never interrupted half-way by an operator's
	// Ctrl-C: it finishes, is recorded, and the run stops after it.
	stepCtx := ctx
	if spec.Irreversible {
		stepCtx = context.WithoutCancel(ctx)
	}
	inPlace, err := impl.Probe(stepCtx, sc)
	if err != nil {
		return e.failOrCancel(ctx, stepCtx, run, recs, rec, &StepError{Step: spec.ID, Phase: "probe", Err: err})
	}
	if !inPlace {
		if spec.Kind == KindReboot {
			asked, _ := strconv.Atoi(rec.Saved[savedReboots])
			base, _ := strconv.Atoi(rec.Saved[savedRebootsAtRetry])
			if asked-base >= MaxRebootAttempts {
				return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "reboot",
					Err: fmt.Errorf("the host came back %d times without the reboot being proved (a reboot loop?): check the host and its boot id, then retry", asked-base)})
			}
		}
		err := impl.Apply(stepCtx, sc)
		if errors.Is(err, ErrRebootRequested) {
			// The step stays started; after the host is back it is probed.
			// The request is counted in the same commit.
			rec = recs[i]
			rec.Saved = maps.Clone(rec.Saved)
			if rec.Saved == nil {
				rec.Saved = map[string]string{}
			}
			asked, _ := strconv.Atoi(rec.Saved[savedReboots])
			rec.Saved[savedReboots] = strconv.Itoa(asked + 1)
			return e.transition(run, recs, EventReboot, engineActor, spec.ID+": reboot requested, waiting for the host to come back", rec)
		}
		if err != nil {
			return e.failOrCancel(ctx, stepCtx, run, recs, rec, &StepError{Step: spec.ID, Phase: "apply", Err: err})
		}
	}
	e.failpoint("after-effect", spec.ID)
	out, err := impl.Verify(stepCtx, sc)
	if err != nil {
		return e.failOrCancel(ctx, stepCtx, run, recs, rec, &StepError{Step: spec.ID, Phase: "verify", Err: err})
	}

	rec.Status, rec.FinishedAt, rec.Outputs, rec.AlreadyInPlace = StepDone, e.now(), out, inPlace
	text = "done " + spec.ID
	if inPlace {
		text += " (already in place)"
	}
	fields = map[string]string{"attempt": fmt.Sprint(rec.Attempts)}
	for name, a := range out.Artifacts {
		fields["artifact."+name] = fmt.Sprintf("%s sha256:%s size:%d", a.Path, a.SHA256, a.Size)
	}
	for k, v := range out.Values {
		fields[k] = v
	}
	run.UpdatedAt = e.now()
	j = e.entry(*run, engineActor, "step.done", spec.ID, text, fields)
	// The result goes to disk with the next commit (see held).
	recs[i] = rec
	e.hold(*run, []StepRecord{rec}, j, Notice{Kind: "step-done", Run: run.ID, Step: spec.ID, Index: i, Total: len(recs), Title: spec.Title, Text: text})
	return nil
}

// check runs one of upgrader's own checks before a step and journals what
// it saw; a failed check fails the step before its intent is recorded, so
// nothing of it has started. Only persistence errors and cancellation are
// returned.
func (e *Engine) check(ctx context.Context, run *Run, recs []StepRecord, rec StepRecord, spec StepSpec, name string) error {
	hc, ok := e.Checker.(HealthChecker)
	if !ok {
		return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "check",
			Err: fmt.Errorf("%w: no implementation of the %s check", ErrCheck, name)})
	}
	res, err := hc.Check(ctx, name)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	fields := maps.Clone(res.Figures)
	if fields == nil {
		fields = map[string]string{}
	}
	fields["check"], fields["result"] = name, "ok"
	text := fmt.Sprintf("upgrader's %s check before %s: %s", name, spec.ID, res.Text)
	if err != nil {
		fields["result"], text = "held", fmt.Sprintf("upgrader's %s check before %s: %v", name, spec.ID, err)
	}
	run.UpdatedAt = e.now()
	if cerr := e.commit(Update{Run: *run, Journal: []JournalEntry{e.entry(*run, engineActor, "check."+name, spec.ID, text, fields)}}); cerr != nil {
		return cerr
	}
	if err != nil {
		return e.fail(run, recs, rec, &StepError{Step: spec.ID, Phase: "check", Err: fmt.Errorf("%w: %w", ErrCheck, err)})
	}
	return nil
}

// pausedText is what the operator is asked at a pause: a gate's
// instructions, or the consent before the point of no return.
func pausedText(spec StepSpec) string {
	if spec.Kind == KindGate {
		return spec.Instructions
	}
	return "the point of no return: " + spec.Title + " cannot be undone. Check the verified backup and media, then confirm to go on."
}

// materialIDs lists the material IDs of a step's references, comma
// separated, "" if it has none.
func materialIDs(spec StepSpec) string {
	var ids []string
	for _, r := range spec.Refs {
		if r.MaterialID != "" && !slices.Contains(ids, r.MaterialID) {
			ids = append(ids, r.MaterialID)
		}
	}
	return strings.Join(ids, ",")
}

// failOrCancel leaves a cancelled step as started, to be probed on the next
// Execute, the same as after a crash, and so a step that stopped waiting
// for work going on without upgrader (ErrDetached); any other error fails
// the step.
func (e *Engine) failOrCancel(ctx, stepCtx context.Context, run *Run, recs []StepRecord, rec StepRecord, serr *StepError) error {
	if stepCtx.Err() != nil || errors.Is(serr, ErrDetached) {
		e.Log.Warn().Str("step", serr.Step).Err(serr.Err).Msg("interrupted: the step will be probed when the run resumes")
		if ctx.Err() != nil && errors.Is(serr, ErrDetached) {
			return fmt.Errorf("%w (%w)", ctx.Err(), serr)
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
		return serr
	}
	return e.fail(run, recs, rec, serr)
}

func (e *Engine) fail(run *Run, recs []StepRecord, rec StepRecord, serr *StepError) error {
	rec.Status, rec.FinishedAt, rec.Error = StepFailed, e.now(), serr.Error()
	run.Reason = serr.Error()
	e.notify(Notice{Kind: "step-failed", Run: run.ID, Step: rec.StepID, Index: rec.Index, Title: serr.Phase, Text: serr.Error()})
	return e.transition(run, recs, EventFail, engineActor, "step "+serr.Error(), rec)
}

func (e *Engine) confirm(run *Run, recs []StepRecord, i int, actor string, att map[string]string) error {
	spec := run.Plan.Steps[i]
	var missing []string
	for _, field := range spec.Attest {
		if strings.TrimSpace(att[field]) == "" {
			missing = append(missing, field)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s needs %s (give --attest %s=VALUE); the run still waits", ErrAttestation, spec.ID,
			strings.Join(missing, ", "), missing[0])
	}
	rec := recs[i]
	rec.Confirmation = &Confirmation{Actor: actor, At: e.now(), Attestation: att}
	text := "operator confirmed " + rec.StepID
	if len(att) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(att)) {
			kv = append(kv, k+"="+att[k])
		}
		text += " (" + strings.Join(kv, ", ") + ")"
	}
	return e.transition(run, recs, EventConfirm, actor, text, rec)
}

// Confirm records an operator's confirmation of the gate the run waits at.
func (e *Engine) Confirm(runID, stepID, actor string, att map[string]string) error {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return err
	}
	i := NextStep(recs)
	if run.State != StateWaitingOperator || stepID != stepIDAt(run, i) {
		return fmt.Errorf("%w: run %s is %s, not waiting at %s", ErrTransition, run.ID, run.State, stepID)
	}
	return e.confirm(&run, recs, i, actor, att)
}

// Skip marks the failed or waiting step as skipped, if its policy allows,
// and lets the run go on. The reason is required and journaled.
func (e *Engine) Skip(runID, stepID, actor, reason string) error {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return err
	}
	i := NextStep(recs)
	if i < 0 || run.Plan.Steps[i].ID != stepID || (run.State != StateFailed && run.State != StateWaitingOperator) {
		return fmt.Errorf("%w: only the failed or waiting step can be skipped; run %s is %s", ErrTransition, run.ID, run.State)
	}
	spec := run.Plan.Steps[i]
	if spec.Skip != SkipWithReason {
		return fmt.Errorf("%w: %s is a safety step (skip policy %s)", ErrSkipNotAllowed, spec.ID, spec.Skip)
	}
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: skipping %s needs a reason", ErrSkipNotAllowed, spec.ID)
	}
	rec := recs[i]
	rec.Status, rec.SkipReason, rec.FinishedAt = StepSkipped, reason, e.now()
	run.Reason = ""
	return e.transition(&run, recs, EventSkip, actor, fmt.Sprintf("skipped %s: %s", spec.ID, reason), rec)
}

// Abort stops the run for good. It is refused once an irreversible step has
// started: there is no way back from there but forward.
func (e *Engine) Abort(runID, actor, reason string) error {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return err
	}
	if past, step := PastPointOfNoReturn(run.Plan, recs); past {
		return fmt.Errorf("%w: %s has started and cannot be undone; finish the run (upgrader resume)", ErrPastPointOfNoReturn, step)
	}
	run.Reason = "aborted: " + reason
	return e.transition(&run, recs, EventAbort, actor, run.Reason)
}

// Replan replaces a run's plan after the engineer asked for it explicitly
// (the binary, catalog or profile changed). Steps already started or done
// must stay where they are in the new plan; their records are kept.
func (e *Engine) Replan(runID string, plan Plan, actor string) error {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return err
	}
	if run.State.Terminal() {
		return fmt.Errorf("%w: run %s is %s", ErrTransition, run.ID, run.State)
	}
	if plan.NothingToDo || len(plan.Blockers) > 0 {
		return errors.New("the new plan has blockers or nothing to do: it cannot replace a run in progress")
	}
	if plan.Fingerprint != Fingerprint(plan) {
		return fmt.Errorf("%w: the new plan was changed after it was fingerprinted", ErrFingerprintMismatch)
	}
	next := make([]StepRecord, len(plan.Steps))
	for i, s := range plan.Steps {
		next[i] = StepRecord{RunID: run.ID, Index: i, StepID: s.ID, Status: StepPending}
	}
	for i, r := range recs {
		if r.Status == StepPending {
			continue
		}
		if i >= len(plan.Steps) || plan.Steps[i].ID != r.StepID {
			return fmt.Errorf("step %s is %s but is not step %d of the new plan: finish or abort this run instead", r.StepID, r.Status, i+1)
		}
		next[i] = r
	}
	diff := DiffPlans(run.Plan, plan)
	old := run.Plan.Fingerprint
	run.Plan, run.UpdatedAt = plan, e.now()
	j := e.entry(run, actor, "run.replanned", "", "plan replaced: "+strings.Join(diff, "; "),
		map[string]string{"from": old, "to": plan.Fingerprint})
	return e.Store.Commit(Update{Run: run, Steps: next, Journal: []JournalEntry{j}, ReplaceSteps: true})
}

// Export returns the run as a document to carry to another server. The
// caller writes it durably, then calls MarkExported.
func (e *Engine) Export(runID string) (RunExport, error) {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return RunExport{}, err
	}
	if _, err := Transition(run.State, EventExport); err != nil {
		return RunExport{}, fmt.Errorf("run %s is %s: %w", run.ID, run.State, err)
	}
	journal, err := e.Store.Journal(runID, 0)
	if err != nil {
		return RunExport{}, err
	}
	return RunExport{Format: ExportFormat, ExportedAt: e.now(), Run: run, Steps: recs, Journal: journal}.Sealed(), nil
}

// MarkExported closes the run on this server: it goes on where it was
// imported, never here again.
func (e *Engine) MarkExported(runID, actor, where string) error {
	run, recs, err := e.Store.LoadRun(runID)
	if err != nil {
		return err
	}
	return e.transition(&run, recs, EventExport, actor, "exported to "+where+": the run carries on where it is imported")
}

// Import makes an exported run the active run here, stored as it was
// exported (its seal covers it), then given this server's profile path
// (profilePath, "" to keep the exported one) with the journal entry that
// says where it came from.
func (e *Engine) Import(x RunExport, profilePath, actor, from string) error {
	if err := x.Check(); err != nil {
		return err
	}
	if err := e.Store.ImportRun(x); err != nil {
		return err
	}
	run := x.Run
	run.UpdatedAt = e.now()
	if profilePath != "" {
		run.Profile = profilePath
	}
	text := "imported from " + from
	// --yes and an answers file were given for the other server's gates:
	// this server's are answered by whoever operates it. The consent to
	// the plan (and its point of no return) carries over.
	if c := run.Consent; c != nil && (c.Yes || len(c.Answers) > 0) {
		kept := *c
		kept.Yes, kept.Answers = false, nil
		run.Consent = &kept
		text += "; the gates here are answered here (the other server's --yes and answers file do not carry over)"
	}
	j := e.entry(run, actor, "run.imported", "", text, map[string]string{"fingerprint": run.Plan.Fingerprint})
	return e.Store.Commit(Update{Run: run, Journal: []JournalEntry{j}})
}
