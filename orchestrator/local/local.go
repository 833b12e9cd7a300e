// Package local is the run service inside this process: it owns the state
// file, the engine and the host's steps, carries runs out in the
// background, and keeps the rules every operation follows — the plan
// re-check on resume, consent before anything irreversible, the migration's
// target model. The daemon serves it on its control socket; the CLI calls
// it directly when no daemon runs.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/state"
	"upgrader/steps"
)

// Config says where the service keeps its state and what it defaults to.
type Config struct {
	StateDir string
	// Profile is the site profile used when a request names none.
	Profile string
	Log     zerolog.Logger
	// Warn hears about what goes wrong beside the run (a snapshot not
	// written, finished runs not archived); nil drops it.
	Warn func(error)
	// Failpoint and StateFailpoint stop the process at named points in
	// crash tests; nil in production builds.
	Failpoint      func(point, step string)
	StateFailpoint func(point string)
	// Runner runs the host's commands; nil is steps.ExecRunner.
	Runner steps.Runner
}

// Service is the in-process run service.
type Service struct {
	cfg     Config
	planner Planner
	db      *state.DB
	eng     *orchestrator.Engine
	sup     *orchestrator.Supervisor
	role    string
}

var _ orchestrator.Service = (*Service)(nil)

// Open opens the state (waiting at most a second for another upgrader to
// let it go) and readies the engine. This server's role in a migration
// comes from the default profile's host model.
func Open(cfg Config) (*Service, error) {
	if cfg.Runner == nil {
		cfg.Runner = steps.ExecRunner{}
	}
	db, err := state.Open(cfg.StateDir, time.Second)
	if err != nil {
		return nil, err
	}
	db.Failpoint, db.Warn = cfg.StateFailpoint, cfg.Warn
	if db.Recovered != "" {
		cfg.Log.Warn().Str("state", db.Path()).Msg(db.Recovered)
	}
	s := &Service{cfg: cfg, db: db, planner: cfg.Planner()}
	s.eng = &orchestrator.Engine{Store: db, Log: cfg.Log, Failpoint: cfg.Failpoint}
	if p, err := s.loadProfile(cfg.Profile); err == nil {
		s.role = orchestrator.RoleOf(s.host(p).Model())
	}
	s.sup = orchestrator.NewSupervisor(s.eng, s.role)
	return s, nil
}

// Close interrupts the step in flight (left to be probed when the run
// resumes) and closes the state.
func (s *Service) Close() error {
	s.sup.Shutdown()
	s.planner.SSH.Close()
	return s.db.Close()
}

// since is the status of a run after an operation that began when the
// last notice was seq: a watcher from seq misses none of its notices.
func (s *Service) since(ctx context.Context, runID string, seq uint64) (orchestrator.Status, error) {
	st, err := s.Status(ctx, runID)
	st.NoticeSeq = seq
	return st, err
}

// Interrupt stops carrying the run out, as Ctrl-C does: the step in
// flight is left started (a supervised job goes on), and the run resumes
// from there. It says why the execution stopped short, if it did.
func (s *Service) Interrupt() error { return s.sup.Shutdown() }

// Busy reports whether a step is being carried out.
func (s *Service) Busy() bool { return s.sup.Busy() }

// StatePath is the state file, for messages.
func (s *Service) StatePath() string { return s.db.Path() }

// Store is the state, for the support bundle's copy.
func (s *Service) Store() *state.DB { return s.db }

func (s *Service) host(p profile.Profile) *steps.Host { return s.planner.host(p, s.role) }

func (s *Service) loadProfile(path string) (profile.Profile, error) {
	p, _, err := s.planner.LoadProfile(path)
	return p, err
}

// Plan reads the profile and the host and plans the procedure.
func (s *Service) Plan(ctx context.Context, req orchestrator.PlanRequest) (orchestrator.Plan, error) {
	plan, _, err := s.planner.Plan(ctx, req)
	return plan, err
}

// Start plans with the request's options and, when the plan is the one the
// operator consented to, creates the run and carries it out.
func (s *Service) Start(ctx context.Context, req orchestrator.StartRequest) (orchestrator.Status, error) {
	if err := req.Check(); err != nil {
		if errors.Is(err, orchestrator.ErrNoConsent) {
			return orchestrator.Status{}, err
		}
		return orchestrator.Status{}, invalid("%v", err)
	}
	// An unfinished run comes first: its host may already look upgraded
	// (a step done but not yet recorded), and a fresh plan would wrongly
	// say there is nothing to do.
	if id, err := s.db.ActiveRun(); err == nil {
		if !req.Continue {
			return orchestrator.Status{}, fmt.Errorf("%w: run %s has not finished (upgrader status; upgrader resume carries it on)", orchestrator.ErrActiveRun, id)
		}
		return s.Resume(ctx, orchestrator.ResumeRequest{Yes: req.Consent.Yes, Answers: req.Consent.Answers})
	}
	plan, path, err := s.planner.Plan(ctx, req.Plan)
	if err != nil {
		return orchestrator.Status{}, err
	}
	if req.ExpectFingerprint != "" && !orchestrator.FingerprintMatches(plan.Fingerprint, req.ExpectFingerprint) {
		return orchestrator.Status{Plan: &plan}, fmt.Errorf("%w: the plan's fingerprint is %s, not the %s you reviewed: the host or profile changed; review the plan again",
			orchestrator.ErrFingerprintMismatch, orchestrator.ShortFingerprint(plan.Fingerprint), req.ExpectFingerprint)
	}
	if plan.NothingToDo {
		return orchestrator.Status{NothingToDo: true, Plan: &plan, Outcome: orchestrator.Outcome{Class: orchestrator.OutcomeDone,
			Next: orchestrator.Next{Action: "none", Command: "nothing: the host is already at the target"}}}, nil
	}
	if len(plan.Blockers) > 0 {
		ids := make([]string, len(plan.Blockers))
		for i, b := range plan.Blockers {
			ids[i] = b.ID
		}
		return orchestrator.Status{Plan: &plan}, fmt.Errorf("%w (%s): nothing was started; fix them, then plan again", orchestrator.ErrBlockedPlan, strings.Join(ids, ", "))
	}
	consent := req.Consent
	consent.Actor, consent.At = orchestrator.ActorFrom(ctx), time.Now().UTC()
	// A yes typed on a terminal is asked again before the point of no
	// return; --yes and the reviewed fingerprint cover it.
	consent.PointOfNoReturn = consent.Via == orchestrator.ConsentYes || consent.Via == orchestrator.ConsentFingerprint
	consent.Yes = consent.Via == orchestrator.ConsentYes
	p, err := s.loadProfile(path)
	if err != nil {
		return orchestrator.Status{}, err
	}
	opts := execOptions(ctx, false, nil, s.host(p))
	seq := s.sup.Seq()
	run, err := s.sup.Start(plan, newRunID(), path, &consent, opts)
	if err != nil {
		return orchestrator.Status{}, err
	}
	return s.since(ctx, run.ID, seq)
}

// recheck rebuilds the run's plan from the facts it recorded and today's
// profile, catalog and binary; it must match the plan the run started
// with, or be accepted explicitly (replan).
func (s *Service) recheck(ctx context.Context, run orchestrator.Run, profilePath string, replan bool) (profile.Profile, error) {
	if profilePath == "" {
		profilePath = run.Profile
	}
	p, err := s.loadProfile(profilePath)
	if err != nil {
		return p, err
	}
	rebuilt, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: run.Plan.Procedure, Facts: run.Plan.Facts,
		Profile: p, Options: orchestrator.Options{With: run.Plan.Inputs.With, Overrides: run.Plan.Inputs.Overrides}})
	if err != nil {
		return p, invalid("%v", err)
	}
	if rebuilt.Fingerprint == run.Plan.Fingerprint {
		return p, nil
	}
	diff := orchestrator.DiffPlans(run.Plan, rebuilt)
	if !replan {
		return p, fmt.Errorf("%w: the plan changed since run %s started (%s → %s):\n  %s\nreview it with 'upgrader plan', then accept it with 'upgrader resume --replan'",
			orchestrator.ErrFingerprintMismatch, run.ID, orchestrator.ShortFingerprint(run.Plan.Fingerprint),
			orchestrator.ShortFingerprint(rebuilt.Fingerprint), strings.Join(diff, "\n  "))
	}
	return p, s.eng.Replan(run.ID, rebuilt, orchestrator.ActorFrom(ctx))
}

// execOptions are the answers of one request for the gates the run
// reaches while it goes on: --yes, the answers file.
func execOptions(ctx context.Context, yes bool, answers map[string]map[string]string, h *steps.Host) orchestrator.ExecOptions {
	opts := orchestrator.ExecOptions{Actor: orchestrator.ActorFrom(ctx), Steps: h, Checker: h}
	if yes || len(answers) > 0 {
		c := &orchestrator.Consent{Yes: yes, Answers: answers}
		opts.Confirm = func(spec orchestrator.StepSpec) (map[string]string, bool) { return c.Covers(spec) }
	}
	return opts
}

// prepare readies the active run to go on: its plan re-checked, and the
// host of its profile to carry out its steps.
// profilePath is the operator's profile, "" for the run's own.
func (s *Service) prepare(ctx context.Context, profilePath string, replan bool) (orchestrator.Run, *steps.Host, error) {
	id, err := s.db.ActiveRun()
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		return orchestrator.Run{}, nil, fmt.Errorf("%w: start one with 'upgrader run' (upgrader status shows the last run)", err)
	}
	if err != nil {
		return orchestrator.Run{}, nil, err
	}
	run, _, err := s.db.LoadRun(id)
	if err != nil {
		return run, nil, err
	}
	var p profile.Profile
	if err := s.sup.Locked(func() error {
		p, err = s.recheck(ctx, run, profilePath, replan)
		return err
	}); err != nil {
		return run, nil, err
	}
	return run, s.host(p), nil
}

// Resume carries the active run on: a step in flight is probed, a failed
// one tried again, a reboot proved. Resume is what the operator types
// after any interruption, and the run may have gone on without them (the
// daemon, started at boot, carries a run on by itself): a run already
// being carried out is followed as it stands, and a run that completed is
// reported; only a run that cannot go on here (aborted, exported, none)
// is an error.
func (s *Service) Resume(ctx context.Context, req orchestrator.ResumeRequest) (orchestrator.Status, error) {
	if err := req.Check(); err != nil {
		return orchestrator.Status{}, invalid("%v", err)
	}
	seq := s.sup.Seq()
	run, h, err := s.prepare(ctx, req.Profile, req.Replan)
	switch {
	case errors.Is(err, orchestrator.ErrNoActiveRun):
		return s.ended(ctx, err)
	case errors.Is(err, orchestrator.ErrBusy):
		return s.since(ctx, run.ID, seq)
	case err != nil:
		return orchestrator.Status{}, err
	}
	opts := execOptions(ctx, req.Yes, req.Answers, h)
	opts.Retry = true
	if _, err := s.sup.Execute(opts); errors.Is(err, orchestrator.ErrBusy) {
		return s.since(ctx, run.ID, seq)
	} else if err != nil {
		return orchestrator.Status{}, err
	}
	return s.since(ctx, run.ID, seq)
}

// ended is Resume's answer when no run is active: the latest run if it
// completed, else noActive naming why nothing can go on.
func (s *Service) ended(ctx context.Context, noActive error) (orchestrator.Status, error) {
	st, err := s.Status(ctx, "")
	switch {
	case err != nil:
		return orchestrator.Status{}, noActive
	case st.Run.State == orchestrator.StateCompleted:
		return st, nil
	}
	return orchestrator.Status{}, fmt.Errorf("%w: run %s is %s; %s", orchestrator.ErrNoActiveRun, st.Run.ID, st.Run.State, st.Outcome.Next.Command)
}

// ResumeActive carries the active run on as the daemon starts, if its plan
// still holds: a failed run stays failed (retrying is the operator's call).
func (s *Service) ResumeActive(ctx context.Context) (string, error) {
	run, h, err := s.prepare(ctx, "", false)
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		return "", nil
	}
	if err != nil {
		return run.ID, err
	}
	_, err = s.sup.Execute(execOptions(ctx, false, nil, h))
	return run.ID, err
}

// goOn applies an operator's request (checked by check) to the active
// run, whose plan is re-checked, and lets the run go on with the host of
// the profile named (or the run's own).
func (s *Service) goOn(ctx context.Context, check error, profilePath string, act func(orchestrator.ExecOptions) error) (orchestrator.Status, error) {
	if check != nil {
		return orchestrator.Status{}, invalid("%v", check)
	}
	run, h, err := s.prepare(ctx, profilePath, false)
	if err != nil {
		return orchestrator.Status{}, err
	}
	seq := s.sup.Seq()
	if err := act(execOptions(ctx, false, nil, h)); err != nil {
		return orchestrator.Status{}, err
	}
	return s.since(ctx, run.ID, seq)
}

// Confirm confirms the gate the run waits at and lets it go on.
func (s *Service) Confirm(ctx context.Context, req orchestrator.ConfirmRequest) (orchestrator.Status, error) {
	return s.goOn(ctx, req.Check(), req.Profile, func(opts orchestrator.ExecOptions) error {
		return s.sup.Confirm(req.Step, req.Attestation, opts)
	})
}

// Retry tries the failed step again.
func (s *Service) Retry(ctx context.Context, req orchestrator.RetryRequest) (orchestrator.Status, error) {
	return s.goOn(ctx, req.Check(), req.Profile, s.sup.Retry)
}

// Skip skips the failed or waiting step, if its policy allows, and lets
// the run go on.
func (s *Service) Skip(ctx context.Context, req orchestrator.SkipRequest) (orchestrator.Status, error) {
	return s.goOn(ctx, req.Check(), req.Profile, func(opts orchestrator.ExecOptions) error {
		return s.sup.Skip(req.Step, req.Reason, opts)
	})
}

// Abort stops the run for good, before the point of no return only.
func (s *Service) Abort(ctx context.Context, req orchestrator.AbortRequest) (orchestrator.Status, error) {
	if err := req.Check(); err != nil {
		return orchestrator.Status{}, invalid("%v", err)
	}
	id, err := s.db.ActiveRun()
	if err != nil {
		return orchestrator.Status{}, fmt.Errorf("nothing to abort: %w", err)
	}
	if err := s.sup.Abort(orchestrator.ActorFrom(ctx), req.Reason); err != nil {
		return orchestrator.Status{}, err
	}
	return s.Status(ctx, id)
}

// Export returns the active run, sealed, to carry to another server.
func (s *Service) Export(ctx context.Context) (orchestrator.RunExport, error) {
	id, err := s.db.ActiveRun()
	if err != nil {
		return orchestrator.RunExport{}, fmt.Errorf("no active run to export: %w", err)
	}
	var x orchestrator.RunExport
	err = s.sup.Locked(func() error {
		x, err = s.eng.Export(id)
		return err
	})
	return x, err
}

// MarkExported closes the run here once its export is durable.
func (s *Service) MarkExported(ctx context.Context, req orchestrator.MarkExportedRequest) (orchestrator.Status, error) {
	if err := req.Check(); err != nil {
		return orchestrator.Status{}, invalid("%v", err)
	}
	err := s.sup.Locked(func() error { return s.eng.MarkExported(req.Run, orchestrator.ActorFrom(ctx), req.Where) })
	if err != nil {
		return orchestrator.Status{}, err
	}
	return s.Status(ctx, req.Run)
}

// Import makes a run exported on the other server of a migration the
// active run here, if this server is the one its next step is for.
func (s *Service) Import(ctx context.Context, req orchestrator.ImportRequest) (orchestrator.Status, error) {
	if err := req.Check(); err != nil {
		if errors.Is(err, orchestrator.ErrBadExport) || errors.Is(err, orchestrator.ErrFingerprintMismatch) || errors.Is(err, orchestrator.ErrInvalidRunID) {
			return orchestrator.Status{}, err
		}
		return orchestrator.Status{}, invalid("%v", err)
	}
	p, path, err := s.planner.LoadProfile(req.Profile)
	if err != nil {
		return orchestrator.Status{}, err
	}
	model := s.host(p).Model()
	if err := orchestrator.CheckImportTarget(req.Export, model, req.Overrides); err != nil {
		return orchestrator.Status{}, err
	}
	from := fmt.Sprintf("%s (%s)", req.From, model)
	if reason, ok := req.Overrides["migrate-target-model"]; ok {
		from += "; target model overridden: " + reason
	}
	err = s.sup.Locked(func() error { return s.eng.Import(req.Export, path, orchestrator.ActorFrom(ctx), from) })
	if err != nil {
		return orchestrator.Status{}, err
	}
	return s.Status(ctx, req.Export.Run.ID)
}

// Status is the run named, else the active one, else the latest.
func (s *Service) Status(ctx context.Context, runID string) (orchestrator.Status, error) {
	run, recs, err := s.load(runID)
	if err != nil {
		return orchestrator.Status{}, err
	}
	seq := s.sup.Seq()
	busy := s.sup.Busy() && !run.State.Terminal()
	if active, err := s.db.ActiveRun(); err != nil || active != run.ID {
		busy = false
	}
	return orchestrator.Status{Run: run, Steps: recs, Busy: busy, Role: s.role, NoticeSeq: seq,
		Outcome: orchestrator.Classify(run, recs, s.role, busy)}, nil
}

func (s *Service) load(runID string) (orchestrator.Run, []orchestrator.StepRecord, error) {
	if runID != "" {
		if err := orchestrator.ValidRunID(runID); err != nil {
			return orchestrator.Run{}, nil, err
		}
		return s.db.LoadRun(runID)
	}
	id, err := s.db.ActiveRun()
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		id, err = s.db.LatestRun()
	}
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		return orchestrator.Run{}, nil, fmt.Errorf("%w: no runs in %s yet: start one with 'upgrader run'", orchestrator.ErrNoActiveRun, s.cfg.StateDir)
	}
	if err != nil {
		return orchestrator.Run{}, nil, err
	}
	return s.db.LoadRun(id)
}

// Journal returns the run's journal entries after seq `after`.
func (s *Service) Journal(ctx context.Context, runID string, after uint64) ([]orchestrator.JournalEntry, error) {
	run, _, err := s.load(runID)
	if err != nil {
		return nil, err
	}
	entries, err := s.db.Journal(run.ID, after)
	if entries == nil {
		entries = []orchestrator.JournalEntry{}
	}
	return entries, err
}

// StepTimes measures how long each step took in the completed runs of
// the procedure kept in the state.
func (s *Service) StepTimes(ctx context.Context, procedure string) (orchestrator.StepTimes, error) {
	if _, err := orchestrator.LookupProcedure(procedure); err != nil {
		return orchestrator.StepTimes{}, err
	}
	ids, err := s.db.Runs()
	if err != nil {
		return orchestrator.StepTimes{}, err
	}
	var runs []orchestrator.Run
	var recs [][]orchestrator.StepRecord
	for _, id := range ids {
		run, r, err := s.db.LoadRun(id)
		if err != nil {
			return orchestrator.StepTimes{}, err
		}
		runs, recs = append(runs, run), append(recs, r)
	}
	return orchestrator.MeasureStepTimes(procedure, runs, recs), nil
}

// History lists every run of the state, archived ones included, oldest
// first. A run that cannot be read is listed with its id and why.
func (s *Service) History(ctx context.Context) ([]orchestrator.RunSummary, error) {
	ids, err := s.db.Runs()
	if err != nil {
		return nil, err
	}
	out := make([]orchestrator.RunSummary, 0, len(ids))
	for _, id := range ids {
		run, recs, err := s.db.LoadRun(id)
		if err != nil {
			out = append(out, orchestrator.RunSummary{ID: id, Reason: err.Error()})
			continue
		}
		out = append(out, orchestrator.Summarize(run, recs))
	}
	return out, nil
}

// Watch streams the notices of the run being carried out.
func (s *Service) Watch(ctx context.Context, after uint64) (<-chan orchestrator.Notice, error) {
	in, stop := s.sup.Subscribe(after)
	out := make(chan orchestrator.Notice)
	go func() {
		defer close(out)
		defer stop()
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-in:
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func newRunID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}
