package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/state"
)

// fakeSteps is a StepFactory whose steps record every call and keep their
// effect in memory: Probe reports whether Apply has already run, so the
// fakes are idempotent the way real steps must be.
type fakeSteps struct {
	mu      sync.Mutex
	calls   []string                               // "probe a", "apply a", "verify a"
	applied map[string]bool                        // the effect of each step, as Probe sees it
	seen    map[string]orchestrator.StepContext    // the last context each step got
	probe   map[string]func() (bool, error)        // overrides Probe
	apply   map[string]func(context.Context) error // runs inside Apply; an error fails it
}

var _ orchestrator.StepFactory = (*fakeSteps)(nil)

func newFakeSteps() *fakeSteps {
	return &fakeSteps{applied: map[string]bool{}, seen: map[string]orchestrator.StepContext{},
		probe: map[string]func() (bool, error){}, apply: map[string]func(context.Context) error{}}
}

func (f *fakeSteps) Build(spec orchestrator.StepSpec) (orchestrator.Step, error) {
	return &fakeStep{f: f, id: spec.ID}, nil
}

func (f *fakeSteps) record(call, id string, sc orchestrator.StepContext) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call+" "+id)
	f.seen[id] = sc
}

// callsFor returns the calls made to one step, e.g. [probe apply verify].
func (f *fakeSteps) callsFor(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if call, step, _ := strings.Cut(c, " "); step == id {
			out = append(out, call)
		}
	}
	return out
}

func (f *fakeSteps) allCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

type fakeStep struct {
	f  *fakeSteps
	id string
}

func (s *fakeStep) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	s.f.record("probe", s.id, sc)
	if p := s.f.probe[s.id]; p != nil {
		return p()
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.applied[s.id], nil
}

func (s *fakeStep) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	s.f.record("apply", s.id, sc)
	if a := s.f.apply[s.id]; a != nil {
		if err := a(ctx); err != nil {
			return err
		}
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.applied[s.id] = true
	return nil
}

// Verify proves the effect and returns one artifact per name the step
// declares it produces.
func (s *fakeStep) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	s.f.record("verify", s.id, sc)
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.f.applied[s.id] {
		return orchestrator.Outputs{}, fmt.Errorf("%s: effect not in place", s.id)
	}
	out := orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{}, Values: map[string]string{"by": s.id}}
	for _, name := range sc.Spec.Produces {
		out.Artifacts[name] = orchestrator.Artifact{Path: "/fake/" + name, SHA256: strings.Repeat("ab", 32), Size: 42}
	}
	return out, nil
}

// fakeChecker records rechecks and fails the artifacts it is told to.
type fakeChecker struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error
}

func (c *fakeChecker) Recheck(_ context.Context, name string, a orchestrator.Artifact) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, name+"="+a.Path)
	return c.fail[name]
}

// harness is an engine on a real bbolt state in a temporary directory.
type harness struct {
	dir     string
	db      *state.DB
	eng     *orchestrator.Engine
	steps   *fakeSteps
	checker *fakeChecker
	points  []string // failpoints passed, "point step"
	crashAt string   // "point step": panic there once, like kill -9
}

// crash is what a failpoint panics with to stop Execute mid-step.
type crash struct{ at string }

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	h := &harness{dir: tb.TempDir(), steps: newFakeSteps(), checker: &fakeChecker{fail: map[string]error{}}}
	h.open(tb)
	tb.Cleanup(func() { h.db.Close() })
	return h
}

// open opens the state and builds an engine on it, as a fresh process would.
func (h *harness) open(tb testing.TB) {
	tb.Helper()
	db, err := state.Open(h.dir, time.Second)
	if err != nil {
		tb.Fatalf("state.Open: %v", err)
	}
	h.db = db
	var mu sync.Mutex
	clock := time.Date(2026, 11, 3, 22, 0, 0, 0, time.UTC)
	h.eng = &orchestrator.Engine{
		Store: db, Steps: h.steps, Checker: h.checker,
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		},
		Failpoint: func(point, step string) {
			h.points = append(h.points, point+" "+step)
			if h.crashAt == point+" "+step {
				h.crashAt = ""
				panic(crash{at: point + " " + step})
			}
		},
	}
}

// restart closes the state and opens it again: what a new process sees.
func (h *harness) restart(tb testing.TB) {
	tb.Helper()
	if err := h.db.Close(); err != nil {
		tb.Fatal(err)
	}
	h.open(tb)
}

const runID = "run-1"

func (h *harness) create(tb testing.TB, p orchestrator.Plan) {
	tb.Helper()
	if _, err := h.eng.Create(p, runID, "/etc/upgrader/site.yaml", "tester", testConsent); err != nil {
		tb.Fatalf("Create: %v", err)
	}
}

func (h *harness) exec(tb testing.TB, opts orchestrator.ExecOptions) orchestrator.ExecResult {
	tb.Helper()
	out, err := h.eng.Execute(context.Background(), runID, opts)
	if err != nil {
		tb.Fatalf("Execute: %v", err)
	}
	return out
}

// execCrash runs Execute until the armed failpoint panics.
func (h *harness) execCrash(tb testing.TB) {
	tb.Helper()
	defer func() {
		if r := recover(); r == nil {
			tb.Fatal("Execute did not reach the crash point")
		} else if _, ok := r.(crash); !ok {
			panic(r)
		}
	}()
	h.eng.Execute(context.Background(), runID, orchestrator.ExecOptions{Actor: "tester"})
}

func (h *harness) load(tb testing.TB) (orchestrator.Run, []orchestrator.StepRecord) {
	tb.Helper()
	run, recs, err := h.db.LoadRun(runID)
	if err != nil {
		tb.Fatalf("LoadRun: %v", err)
	}
	return run, recs
}

func (h *harness) rec(tb testing.TB, id string) orchestrator.StepRecord {
	tb.Helper()
	_, recs := h.load(tb)
	for _, r := range recs {
		if r.StepID == id {
			return r
		}
	}
	tb.Fatalf("no record for step %s", id)
	return orchestrator.StepRecord{}
}

func (h *harness) journal(tb testing.TB) []orchestrator.JournalEntry {
	tb.Helper()
	j, err := h.db.Journal(runID, 0)
	if err != nil {
		tb.Fatalf("Journal: %v", err)
	}
	return j
}

// events lists the journal as "event step" strings ("run.pass ", "step.start a").
func (h *harness) events(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, j := range h.journal(tb) {
		out = append(out, j.Event+" "+j.Step)
	}
	return out
}

// setState commits the run in state s with the given records, the way an
// earlier process would have left it.
func (h *harness) setState(tb testing.TB, s orchestrator.State, recs ...orchestrator.StepRecord) {
	tb.Helper()
	run, _ := h.load(tb)
	run.State = s
	if err := h.db.Commit(orchestrator.Update{Run: run, Steps: recs}); err != nil {
		tb.Fatalf("Commit: %v", err)
	}
}

func step(id string, opts ...func(*orchestrator.StepSpec)) orchestrator.StepSpec {
	s := orchestrator.StepSpec{ID: id, Title: "step " + id, Kind: orchestrator.KindAuto, Action: "fake",
		Skip: orchestrator.SkipNever, Reason: "test"}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func produces(names ...string) func(*orchestrator.StepSpec) {
	return func(s *orchestrator.StepSpec) { s.Produces = names }
}
func requires(names ...string) func(*orchestrator.StepSpec) {
	return func(s *orchestrator.StepSpec) { s.Requires = names }
}
func skippable(s *orchestrator.StepSpec)    { s.Skip = orchestrator.SkipWithReason }
func irreversible(s *orchestrator.StepSpec) { s.Irreversible = true }
func gate(s *orchestrator.StepSpec) {
	s.Kind, s.Skip, s.Instructions = orchestrator.KindGate, orchestrator.SkipWithReason, "tick the box, then confirm"
}

func newPlan(steps ...orchestrator.StepSpec) orchestrator.Plan {
	p := orchestrator.Plan{Procedure: "test-procedure", From: "1.0", To: "2.0", Steps: steps}
	for _, s := range steps {
		if s.Irreversible && p.PointOfNoReturn == "" {
			p.PointOfNoReturn = s.ID
		}
	}
	p.Fingerprint = orchestrator.Fingerprint(p)
	return p
}

func failWith(msg string) func(context.Context) error {
	return func(context.Context) error { return errors.New(msg) }
}

func TestEngineHappyPath(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(
		step("verify-media", produces("media")),
		step("backup-db", produces("db-backup")),
		step("upgrade", requires("media", "db-backup"), irreversible),
		step("start"),
	))
	if run, recs := h.load(t); run.State != orchestrator.StatePlanned || slices.ContainsFunc(recs, func(r orchestrator.StepRecord) bool {
		return r.Status != orchestrator.StepPending || r.Attempts != 0
	}) {
		t.Fatalf("new run %s with records %+v, want planned and all pending", run.State, recs)
	}

	out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"})
	if out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v, want completed", out)
	}
	var want []string
	for _, id := range []string{"verify-media", "backup-db", "upgrade", "start"} {
		want = append(want, "probe "+id, "apply "+id, "verify "+id)
	}
	if got := h.steps.allCalls(); !slices.Equal(got, want) {
		t.Errorf("calls\n got %v\nwant %v", got, want)
	}
	if want := []string{"media=/fake/media", "db-backup=/fake/db-backup"}; !slices.Equal(h.checker.calls, want) {
		t.Errorf("rechecks %v, want %v (before the step that needs them)", h.checker.calls, want)
	}
	if got := slices.Sorted(maps.Keys(h.steps.seen["upgrade"].Artifacts)); !slices.Equal(got, []string{"db-backup", "media"}) {
		t.Errorf("upgrade saw artifacts %v, want db-backup and media", got)
	}

	run, recs := h.load(t)
	if run.State != orchestrator.StateCompleted {
		t.Errorf("stored state %s, want completed", run.State)
	}
	for _, r := range recs {
		if r.Status != orchestrator.StepDone || r.Attempts != 1 || r.AlreadyInPlace || r.StartedAt.IsZero() || r.FinishedAt.IsZero() {
			t.Errorf("record %+v, want done once with times", r)
		}
	}
	if a := recs[0].Outputs.Artifacts["media"]; a.Path != "/fake/media" {
		t.Errorf("verify-media outputs %+v, want the media artifact recorded", recs[0].Outputs)
	}

	wantEvents := []string{"run.created ", "consent.given ", "run.preflight ", "run.pass "}
	for _, id := range []string{"verify-media", "backup-db", "upgrade", "start"} {
		if id == "upgrade" {
			// The point of no return: the consent given at the start
			// answers it, on the record.
			wantEvents = append(wantEvents, "run.pause ", "run.confirm ")
		}
		wantEvents = append(wantEvents, "step.start "+id, "step.done "+id)
	}
	wantEvents = append(wantEvents, "run.complete ")
	if got := h.events(t); !slices.Equal(got, wantEvents) {
		t.Errorf("journal\n got %v\nwant %v", got, wantEvents)
	}
	for i, j := range h.journal(t) {
		if j.Seq != uint64(i+1) || j.RunID != runID || j.Time.IsZero() {
			t.Errorf("journal entry %d: seq %d run %q time %v", i, j.Seq, j.RunID, j.Time)
		}
	}

	// One commit per step: a step's result is durable with the next
	// step's intent, so its after-result point comes after the next
	// before-intent; the pause before the point of no return (upgrade)
	// commits backup-db's result on its own.
	wantPoints := []string{
		"before-intent verify-media", "after-intent verify-media", "after-effect verify-media",
		"before-intent backup-db", "after-result verify-media", "after-intent backup-db", "after-effect backup-db", "after-result backup-db",
		"before-intent upgrade", "after-intent upgrade", "after-effect upgrade",
		"before-intent start", "after-result upgrade", "after-intent start", "after-effect start", "after-result start",
	}
	if !slices.Equal(h.points, wantPoints) {
		t.Errorf("failpoints\n got %v\nwant %v", h.points, wantPoints)
	}
	if _, err := h.db.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("ActiveRun after completion: %v, want ErrNoActiveRun", err)
	}
	// A completed run stays completed and runs nothing.
	calls := len(h.steps.allCalls())
	if out := h.exec(t, orchestrator.ExecOptions{Retry: true}); out.State != orchestrator.StateCompleted || len(h.steps.allCalls()) != calls {
		t.Errorf("Execute on a completed run: %+v, %d new calls", out, len(h.steps.allCalls())-calls)
	}
}

func TestEnginePersistBeforeAct(t *testing.T) {
	// Inside Probe and Apply, the intent must already be on disk: a
	// second reader of the state sees the step started, attempt 1, and the
	// step.start entry as the newest journal line.
	h := newHarness(t)
	ids := []string{"a", "b", "c"}
	h.create(t, newPlan(step(ids[0]), step(ids[1]), step(ids[2])))
	checkIntent := func(id, phase string) {
		run, recs, err := h.db.LoadRun(runID)
		if err != nil {
			t.Errorf("%s %s: LoadRun: %v", phase, id, err)
			return
		}
		i := slices.Index(ids, id)
		if r := recs[i]; r.Status != orchestrator.StepStarted || r.Attempts != 1 {
			t.Errorf("in %s of %s the stored record is %s attempt %d, want started attempt 1", phase, id, r.Status, r.Attempts)
		}
		for _, r := range recs[:i] {
			if r.Status != orchestrator.StepDone {
				t.Errorf("in %s of %s the earlier step %s is %s, want its result committed", phase, id, r.StepID, r.Status)
			}
		}
		if run.State != orchestrator.StateRunning {
			t.Errorf("in %s of %s the run is %s", phase, id, run.State)
		}
		j, _ := h.db.Journal(runID, 0)
		last := j[len(j)-1]
		if last.Event != "step.start" || last.Step != id || last.Fields["fingerprint"] != run.Plan.Fingerprint || last.Fields["attempt"] != "1" {
			t.Errorf("in %s of %s the newest journal entry is %+v, want step.start with attempt and fingerprint", phase, id, last)
		}
	}
	for _, id := range ids {
		h.steps.probe[id] = func() (bool, error) { checkIntent(id, "probe"); return false, nil }
		h.steps.apply[id] = func(context.Context) error { checkIntent(id, "apply"); return nil }
	}
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if n := len(h.steps.callsFor("b")); n != 3 {
		t.Fatalf("b got %d calls, the checks did not run", n)
	}
}

// countingStore counts the commits that reach the state.
type countingStore struct {
	orchestrator.Store
	commits int
}

func (c *countingStore) Commit(u orchestrator.Update) error {
	c.commits++
	return c.Store.Commit(u)
}

func TestEngineOneCommitPerStep(t *testing.T) {
	// A step's result rides on the next step's intent, and the preflight
	// and pass transitions on the first step's: ten plain steps cost ten
	// commits, plus the one that completes the run.
	h := newHarness(t)
	var specs []orchestrator.StepSpec
	for i := range 10 {
		specs = append(specs, step(fmt.Sprintf("s%d", i)))
	}
	h.create(t, newPlan(specs...))
	store := &countingStore{Store: h.db}
	h.eng.Store = store
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if store.commits != len(specs)+1 {
		t.Errorf("%d commits for %d steps, want %d", store.commits, len(specs), len(specs)+1)
	}
	// Nothing was lost on the way: every record and journal entry is there.
	_, recs := h.load(t)
	for _, r := range recs {
		if r.Status != orchestrator.StepDone {
			t.Errorf("step %s is %s, want done", r.StepID, r.Status)
		}
	}
	if got := h.events(t); len(got) != 4+2*len(specs)+1 {
		t.Errorf("journal %v: want created, consent, preflight, pass, a start and a done per step, complete", got)
	}
}

func TestEngineDoneToldOnlyOnDisk(t *testing.T) {
	// A step is said done only once its result is committed: a second
	// reader of the state, asked when the notice arrives, sees it done.
	// And held work never waits on the outside world: while c's guard
	// re-checks a's artifact, b's result is already on disk.
	h := newHarness(t)
	h.create(t, newPlan(step("a", produces("x")), step("b"), step("c", requires("x")), step("d")))
	stored := func(i int) orchestrator.StepStatus {
		_, recs, err := h.db.LoadRun(runID)
		if err != nil {
			t.Fatalf("LoadRun: %v", err)
		}
		return recs[i].Status
	}
	told := 0
	h.eng.Notify = func(n orchestrator.Notice) {
		if n.Kind == "step-done" {
			told++
			if got := stored(n.Index); got != orchestrator.StepDone {
				t.Errorf("told %s is done while the state says %s", n.Step, got)
			}
		}
	}
	checked := false
	h.eng.Checker = recheckFunc(func(string) error {
		checked = true
		if got := stored(1); got != orchestrator.StepDone {
			t.Errorf("during c's guard re-check b is %s on disk, want done", got)
		}
		return nil
	})
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if told != 4 || !checked {
		t.Errorf("%d steps told done (want 4), guard re-checked: %v", told, checked)
	}
}

// recheckFunc is an ArtifactChecker made of a function.
type recheckFunc func(name string) error

func (f recheckFunc) Recheck(_ context.Context, name string, _ orchestrator.Artifact) error {
	return f(name)
}

func TestEngineHeldResultLostToACrashIsProbed(t *testing.T) {
	// A crash after b's effect and Verify, before the commit that would
	// carry its result (c's intent), loses only bookkeeping: b is found
	// started and probed (its effect in place, not applied again).
	h := newHarness(t)
	h.create(t, newPlan(step("a"), step("b"), step("c")))
	h.crashAt = "before-intent c"
	h.execCrash(t)
	h.restart(t)
	if r := h.rec(t, "b"); r.Status != orchestrator.StepStarted {
		t.Fatalf("after the crash b is %s on disk, want started (its result was held)", r.Status)
	}
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if got := h.steps.callsFor("b"); !slices.Equal(got, []string{"probe", "apply", "verify", "probe", "verify"}) {
		t.Errorf("b's calls %v: want it applied once and probed after the crash", got)
	}
	if r := h.rec(t, "b"); r.Status != orchestrator.StepDone || !r.AlreadyInPlace {
		t.Errorf("b after resume: %+v, want done, found in place", r)
	}
}

func TestEngineResumeProbesStartedStep(t *testing.T) {
	// A step found started is probed: Probe, not the record, decides
	// whether Apply runs again.
	tests := []struct {
		name      string
		leave     func(*testing.T, *harness) // leaves step b started
		wantApply bool
	}{
		{"started, effect not in place", func(t *testing.T, h *harness) {
			h.setState(t, orchestrator.StateRunning,
				orchestrator.StepRecord{RunID: runID, Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1},
				orchestrator.StepRecord{RunID: runID, Index: 1, StepID: "b", Status: orchestrator.StepStarted, Attempts: 1})
		}, true},
		{"started, effect in place", func(t *testing.T, h *harness) {
			h.setState(t, orchestrator.StateRunning,
				orchestrator.StepRecord{RunID: runID, Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1},
				orchestrator.StepRecord{RunID: runID, Index: 1, StepID: "b", Status: orchestrator.StepStarted, Attempts: 1})
			h.steps.applied["b"] = true
		}, false},
		{"crash right after the intent", func(t *testing.T, h *harness) {
			h.crashAt = "after-intent b"
			h.execCrash(t)
			h.restart(t)
		}, true},
		{"crash after the effect, before the result", func(t *testing.T, h *harness) {
			h.crashAt = "after-effect b"
			h.execCrash(t)
			h.restart(t)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, newPlan(step("a"), step("b"), step("c")))
			tt.leave(t, h)
			if r := h.rec(t, "b"); r.Status != orchestrator.StepStarted || r.Attempts != 1 {
				t.Fatalf("setup left b %s attempt %d, want started", r.Status, r.Attempts)
			}
			applyBefore := slices.Contains(h.steps.callsFor("b"), "apply")
			h.steps.calls = nil

			if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
				t.Fatalf("outcome %+v, want completed", out)
			}
			wantCalls := []string{"probe", "verify"}
			if tt.wantApply {
				wantCalls = []string{"probe", "apply", "verify"}
			}
			if got := h.steps.callsFor("b"); !slices.Equal(got, wantCalls) {
				t.Errorf("b calls on resume %v, want %v (applied before the crash: %v)", got, wantCalls, applyBefore)
			}
			if got := h.steps.callsFor("a"); len(got) != 0 {
				t.Errorf("done step a was called again: %v", got)
			}
			r := h.rec(t, "b")
			if r.Status != orchestrator.StepDone || r.Attempts != 2 || r.AlreadyInPlace == tt.wantApply {
				t.Errorf("b record %s attempts %d already-in-place %v; want done, 2, %v", r.Status, r.Attempts, r.AlreadyInPlace, !tt.wantApply)
			}
			ev := h.events(t)
			if !slices.Contains(ev, "step.resume b") {
				t.Errorf("journal %v has no step.resume b", ev)
			}
		})
	}
}

func TestEngineProbeDoneSkipsApply(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(step("a"), step("b", produces("media")), step("c")))
	h.steps.applied["b"] = true // already in place before the run
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v", out)
	}
	if got := h.steps.callsFor("b"); !slices.Equal(got, []string{"probe", "verify"}) {
		t.Errorf("b calls %v, want probe and verify only", got)
	}
	r := h.rec(t, "b")
	if !r.AlreadyInPlace || r.Outputs.Artifacts["media"].Path == "" {
		t.Errorf("b record %+v, want already in place with its outputs", r)
	}
	for _, j := range h.journal(t) {
		if j.Event == "step.done" && j.Step == "b" && !strings.Contains(j.Text, "already in place") {
			t.Errorf("journal %q does not say already in place", j.Text)
		}
	}
}

func TestEngineSecondRunChangesNothing(t *testing.T) {
	// Idempotence end to end: the same plan run again on the same host
	// finds every effect in place and applies nothing.
	h := newHarness(t)
	p := newPlan(step("a", produces("media")), step("b", requires("media")), step("c"))
	h.create(t, p)
	h.exec(t, orchestrator.ExecOptions{})
	h.steps.calls = nil
	if _, err := h.eng.Create(p, "run-2", "", "tester", testConsent); err != nil {
		t.Fatal(err)
	}
	out, err := h.eng.Execute(context.Background(), "run-2", orchestrator.ExecOptions{})
	if err != nil || out.State != orchestrator.StateCompleted {
		t.Fatalf("second run: %+v, %v", out, err)
	}
	for _, c := range h.steps.allCalls() {
		if strings.HasPrefix(c, "apply ") {
			t.Errorf("second run applied again: %s", c)
		}
	}
}

func TestEngineFailingApply(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(step("a"), step("b"), step("c")))
	h.steps.apply["b"] = failWith("disk full")

	out := h.exec(t, orchestrator.ExecOptions{})
	if out.State != orchestrator.StateFailed || out.Step != "b" || !strings.Contains(out.Error, "disk full") {
		t.Fatalf("outcome %+v, want failed at b with the error", out)
	}
	r := h.rec(t, "b")
	if r.Status != orchestrator.StepFailed || r.Error != "b: apply: disk full" || r.Attempts != 1 {
		t.Errorf("b record %s %q attempts %d", r.Status, r.Error, r.Attempts)
	}
	if run, _ := h.load(t); !strings.Contains(run.Reason, "disk full") {
		t.Errorf("run reason %q", run.Reason)
	}
	if !slices.Contains(h.events(t), "run.fail ") || len(h.steps.callsFor("c")) != 0 {
		t.Errorf("journal %v / c calls %v: want run.fail and c untouched", h.events(t), h.steps.callsFor("c"))
	}

	// Without Retry nothing runs.
	calls := len(h.steps.allCalls())
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateFailed || out.Step != "b" {
		t.Errorf("Execute without retry: %+v", out)
	}
	if n := len(h.steps.allCalls()); n != calls {
		t.Errorf("Execute without retry made %d calls", n-calls)
	}

	// Retry tries once; a failure during this call is not retried again.
	out = h.exec(t, orchestrator.ExecOptions{Retry: true, Actor: "alice"})
	if out.State != orchestrator.StateFailed || h.rec(t, "b").Attempts != 2 {
		t.Errorf("retry while still broken: %+v, attempts %d; want failed after exactly one more attempt", out, h.rec(t, "b").Attempts)
	}

	delete(h.steps.apply, "b")
	if out := h.exec(t, orchestrator.ExecOptions{Retry: true, Actor: "alice"}); out.State != orchestrator.StateCompleted {
		t.Fatalf("retry after the fix: %+v", out)
	}
	if r := h.rec(t, "b"); r.Status != orchestrator.StepDone || r.Attempts != 3 || r.Error != "" {
		t.Errorf("b after retry: %s attempts %d error %q", r.Status, r.Attempts, r.Error)
	}
	var retries []string
	for _, j := range h.journal(t) {
		if j.Event == "run.retry" {
			retries = append(retries, j.Actor)
		}
	}
	if !slices.Equal(retries, []string{"alice", "alice"}) {
		t.Errorf("run.retry actors %v, want alice twice", retries)
	}
}

func TestEngineGuards(t *testing.T) {
	tests := []struct {
		name  string
		plan  orchestrator.Plan
		setup func(*testing.T, *harness) // brings the run to step b
		want  string                     // in b's error
	}{
		{"producer skipped",
			newPlan(step("a", produces("media"), skippable), step("b", requires("media"))),
			func(t *testing.T, h *harness) {
				h.steps.apply["a"] = failWith("ISO unreadable")
				h.exec(t, orchestrator.ExecOptions{})
				if err := h.eng.Skip(runID, "a", "alice", "verified by hand"); err != nil {
					t.Fatal(err)
				}
			}, "needs media"},
		{"nobody produces it",
			newPlan(step("a"), step("b", requires("db-backup"))),
			func(*testing.T, *harness) {}, "needs db-backup"},
		{"checker rejects the artifact",
			newPlan(step("a", produces("db-backup")), step("b", requires("db-backup"))),
			func(_ *testing.T, h *harness) {
				h.checker.fail["db-backup"] = errors.New("size changed since it was verified")
			},
			"size changed since it was verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, tt.plan)
			tt.setup(t, h)
			out := h.exec(t, orchestrator.ExecOptions{})
			if out.State != orchestrator.StateFailed || out.Step != "b" {
				t.Fatalf("outcome %+v, want failed at b", out)
			}
			r := h.rec(t, "b")
			for _, s := range []string{"b: guard:", orchestrator.ErrGuard.Error(), tt.want} {
				if !strings.Contains(r.Error, s) {
					t.Errorf("b error %q lacks %q", r.Error, s)
				}
			}
			// The guard runs before the intent: nothing of b was started.
			if r.Attempts != 0 || !r.StartedAt.IsZero() {
				t.Errorf("b attempts %d started %v; a guard failure must not record an attempt", r.Attempts, r.StartedAt)
			}
			if ev := h.events(t); slices.Contains(ev, "step.start b") || slices.Contains(ev, "step.resume b") {
				t.Errorf("journal %v starts b despite the guard", ev)
			}
			if got := h.steps.callsFor("b"); len(got) != 0 {
				t.Errorf("b was called: %v", got)
			}
		})
	}
}

func TestEngineSkip(t *testing.T) {
	tests := []struct {
		name    string
		plan    orchestrator.Plan
		skip    string // step to skip
		reason  string
		wantErr error
	}{
		{"never step refused", newPlan(step("a"), step("b")), "a", "the DBA says it is fine", orchestrator.ErrSkipNotAllowed},
		{"with-reason step needs a reason", newPlan(step("a", skippable), step("b")), "a", "  ", orchestrator.ErrSkipNotAllowed},
		{"with-reason step with a reason", newPlan(step("a", skippable), step("b")), "a", "done by hand on 3 Nov", nil},
		{"only the failed step", newPlan(step("a", skippable), step("b", skippable)), "b", "not needed", orchestrator.ErrTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, tt.plan)
			h.steps.apply["a"] = failWith("boom")
			h.exec(t, orchestrator.ExecOptions{})
			before := h.journal(t)

			err := h.eng.Skip(runID, tt.skip, "alice", tt.reason)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Skip: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				run, _ := h.load(t)
				if run.State != orchestrator.StateFailed || h.rec(t, "a").Status != orchestrator.StepFailed || len(h.journal(t)) != len(before) {
					t.Errorf("a refused skip changed the run: %s, a %s", run.State, h.rec(t, "a").Status)
				}
				return
			}
			r := h.rec(t, "a")
			if r.Status != orchestrator.StepSkipped || r.SkipReason != tt.reason {
				t.Errorf("a record %s reason %q", r.Status, r.SkipReason)
			}
			last := h.journal(t)[len(before)]
			if last.Event != "run.skip" || last.Actor != "alice" || !strings.Contains(last.Text, tt.reason) {
				t.Errorf("journal entry %+v, want run.skip by alice with the reason", last)
			}
			if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
				t.Errorf("after skip: %+v", out)
			}
			if slices.Contains(h.steps.callsFor("a"), "verify") {
				t.Error("the skipped step was verified")
			}
		})
	}
}

func TestEngineSkipRefusedWhenNothingWaits(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(step("a", skippable)))
	if err := h.eng.Skip(runID, "a", "alice", "why not"); !errors.Is(err, orchestrator.ErrTransition) {
		t.Errorf("Skip of a planned run: %v, want ErrTransition", err)
	}
}

func TestEngineAbort(t *testing.T) {
	plan := func() orchestrator.Plan {
		return newPlan(step("backup"), step("upgrade", irreversible), step("start"))
	}
	tests := []struct {
		name     string
		setup    func(*testing.T, *harness)
		wantErr  error
		wantStep string // named in the refusal
	}{
		{"planned", func(*testing.T, *harness) {}, nil, ""},
		{"failed before the point of no return", func(t *testing.T, h *harness) {
			h.steps.apply["backup"] = failWith("no space")
			h.exec(t, orchestrator.ExecOptions{})
		}, nil, ""},
		{"irreversible step started", func(t *testing.T, h *harness) {
			h.setState(t, orchestrator.StateRunning,
				orchestrator.StepRecord{RunID: runID, Index: 0, StepID: "backup", Status: orchestrator.StepDone, Attempts: 1},
				orchestrator.StepRecord{RunID: runID, Index: 1, StepID: "upgrade", Status: orchestrator.StepStarted, Attempts: 1})
		}, orchestrator.ErrPastPointOfNoReturn, "upgrade"},
		{"irreversible step refused by its guard (never started)", func(t *testing.T, h *harness) {
			h.setState(t, orchestrator.StateFailed,
				orchestrator.StepRecord{RunID: runID, Index: 0, StepID: "backup", Status: orchestrator.StepDone, Attempts: 1},
				orchestrator.StepRecord{RunID: runID, Index: 1, StepID: "upgrade", Status: orchestrator.StepFailed, Error: "guard: backup changed"})
		}, nil, ""},
		{"irreversible step failed", func(t *testing.T, h *harness) {
			h.steps.apply["upgrade"] = failWith("installer exit 3")
			h.exec(t, orchestrator.ExecOptions{})
		}, orchestrator.ErrPastPointOfNoReturn, "upgrade"},
		{"later step failed", func(t *testing.T, h *harness) {
			h.steps.apply["start"] = failWith("vpms did not start")
			h.exec(t, orchestrator.ExecOptions{})
		}, orchestrator.ErrPastPointOfNoReturn, "upgrade"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, plan())
			tt.setup(t, h)
			before, _ := h.load(t)

			err := h.eng.Abort(runID, "alice", "window closed")
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Abort: %v, want %v", err, tt.wantErr)
			}
			run, _ := h.load(t)
			if tt.wantErr != nil {
				if !strings.Contains(err.Error(), tt.wantStep) {
					t.Errorf("refusal %q does not name %s", err, tt.wantStep)
				}
				if run.State != before.State || slices.Contains(h.events(t), "run.abort ") {
					t.Errorf("refused abort moved the run %s → %s", before.State, run.State)
				}
				return
			}
			if run.State != orchestrator.StateAborted || !strings.Contains(run.Reason, "window closed") {
				t.Errorf("run %s reason %q, want aborted with the reason", run.State, run.Reason)
			}
			if _, err := h.db.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
				t.Errorf("an aborted run is still active: %v", err)
			}
			calls := len(h.steps.allCalls())
			if out := h.exec(t, orchestrator.ExecOptions{Retry: true}); out.State != orchestrator.StateAborted || len(h.steps.allCalls()) != calls {
				t.Errorf("Execute after abort: %+v", out)
			}
		})
	}
}

func TestEngineGate(t *testing.T) {
	att := map[string]string{"dnc_checkbox": "ticked"}
	tests := []struct {
		name    string
		confirm func(*testing.T, *harness) orchestrator.ExecOptions // returns the options of the final Execute
	}{
		{"confirmed through ExecOptions", func(t *testing.T, _ *harness) orchestrator.ExecOptions {
			asked := 0
			return orchestrator.ExecOptions{Actor: "alice", Confirm: func(s orchestrator.StepSpec) (map[string]string, bool) {
				if asked++; s.ID != "gate" || asked > 1 {
					// Asked again: the first answer was lost. Decline so the test ends.
					t.Errorf("asked to confirm %s (time %d)", s.ID, asked)
					return nil, false
				}
				return att, true
			}}
		}},
		{"confirmed through Engine.Confirm", func(t *testing.T, h *harness) orchestrator.ExecOptions {
			if err := h.eng.Confirm(runID, "b", "alice", att); !errors.Is(err, orchestrator.ErrTransition) {
				t.Errorf("Confirm of a step nobody waits at: %v, want ErrTransition", err)
			}
			if err := h.eng.Confirm(runID, "gate", "alice", att); err != nil {
				t.Fatalf("Confirm: %v", err)
			}
			return orchestrator.ExecOptions{Actor: "engine-loop"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, newPlan(step("a"), step("gate", gate), step("b")))

			out := h.exec(t, orchestrator.ExecOptions{})
			if out.State != orchestrator.StateWaitingOperator || out.Step != "gate" {
				t.Fatalf("without Confirm: %+v, want waiting at gate", out)
			}
			declined := orchestrator.ExecOptions{Confirm: func(orchestrator.StepSpec) (map[string]string, bool) { return nil, false }}
			if out := h.exec(t, declined); out.State != orchestrator.StateWaitingOperator {
				t.Fatalf("declined: %+v, want still waiting", out)
			}
			if len(h.steps.callsFor("gate"))+len(h.steps.callsFor("b")) != 0 {
				t.Fatal("steps ran while the gate waited")
			}

			if out := h.exec(t, tt.confirm(t, h)); out.State != orchestrator.StateCompleted {
				t.Fatalf("after confirmation: %+v", out)
			}
			c := h.rec(t, "gate").Confirmation
			if c == nil || c.Actor != "alice" || !maps.Equal(c.Attestation, att) || c.At.IsZero() {
				t.Fatalf("recorded confirmation %+v, want alice's attestation", c)
			}
			if sc := h.steps.seen["gate"]; sc.Confirmation == nil || sc.Confirmation.Actor != "alice" {
				t.Errorf("the gate step did not get the confirmation: %+v", sc.Confirmation)
			}
			var confirms []string
			for _, j := range h.journal(t) {
				if j.Event == "run.confirm" {
					confirms = append(confirms, j.Actor)
				}
			}
			if !slices.Equal(confirms, []string{"alice"}) || !slices.Contains(h.events(t), "run.pause ") {
				t.Errorf("journal %v: want run.pause and one run.confirm by alice (got %v)", h.events(t), confirms)
			}
		})
	}
}

func TestEngineGateSkipped(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(step("a"), step("gate", gate)))
	h.exec(t, orchestrator.ExecOptions{})
	if err := h.eng.Skip(runID, "gate", "alice", "site does not import DNC lists"); err != nil {
		t.Fatal(err)
	}
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("%+v", out)
	}
	if got := h.steps.callsFor("gate"); len(got) != 0 {
		t.Errorf("skipped gate was called: %v", got)
	}
}

func TestEngineBlockedPlan(t *testing.T) {
	h := newHarness(t)
	p := orchestrator.Plan{Procedure: "test-procedure", Steps: []orchestrator.StepSpec{step("a"), step("b")},
		Blockers: []orchestrator.Finding{{ID: "media-missing", Severity: orchestrator.SeverityBlocker, Skip: orchestrator.SkipNever}}}
	p.Fingerprint = orchestrator.Fingerprint(p)
	h.create(t, p)
	for i := 0; i < 2; i++ { // and it stays blocked
		out := h.exec(t, orchestrator.ExecOptions{Retry: true})
		if out.State != orchestrator.StateBlocked || !strings.Contains(out.Error, "media-missing") {
			t.Fatalf("Execute #%d: %+v, want blocked by media-missing", i+1, out)
		}
	}
	if calls := h.steps.allCalls(); len(calls) != 0 {
		t.Errorf("steps ran in a blocked run: %v", calls)
	}
	if _, err := h.db.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("a blocked run is still active: %v", err)
	}
	if err := h.eng.Abort(runID, "alice", "x"); !errors.Is(err, orchestrator.ErrTransition) {
		t.Errorf("Abort of a blocked run: %v, want ErrTransition", err)
	}
}

func TestEngineCreateRefusesTamperedPlan(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(*orchestrator.Plan)
	}{
		{"fingerprint field edited", func(p *orchestrator.Plan) { p.Fingerprint = "sha256:" + strings.Repeat("0", 64) }},
		{"fingerprint removed", func(p *orchestrator.Plan) { p.Fingerprint = "" }},
		{"step made skippable after printing", func(p *orchestrator.Plan) { p.Steps[0].Skip = orchestrator.SkipWithReason }},
		{"blocker removed after printing", func(p *orchestrator.Plan) { p.Blockers = nil }},
		{"nothing to do", func(p *orchestrator.Plan) { p.NothingToDo = true; p.Fingerprint = orchestrator.Fingerprint(*p) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			p := orchestrator.Plan{Procedure: "test-procedure", Steps: []orchestrator.StepSpec{step("a")},
				Blockers: []orchestrator.Finding{{ID: "x", Severity: orchestrator.SeverityBlocker}}}
			p.Fingerprint = orchestrator.Fingerprint(p)
			tt.tamper(&p)
			if _, err := h.eng.Create(p, runID, "", "tester", testConsent); err == nil {
				t.Fatal("Create accepted the plan")
			}
			if _, err := h.db.LatestRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
				t.Errorf("a refused plan was stored: %v", err)
			}
		})
	}
}

func TestEngineCreateWhileActive(t *testing.T) {
	h := newHarness(t)
	p := newPlan(step("a"))
	h.create(t, p)
	if _, err := h.eng.Create(p, "run-2", "", "tester", testConsent); !errors.Is(err, orchestrator.ErrActiveRun) {
		t.Fatalf("second Create: %v, want ErrActiveRun", err)
	}
	if _, _, err := h.db.LoadRun("run-2"); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("the refused run was stored: %v", err)
	}
	h.exec(t, orchestrator.ExecOptions{})
	if _, err := h.eng.Create(p, "run-2", "", "tester", testConsent); err != nil {
		t.Errorf("Create after the first run completed: %v", err)
	}
	if id, err := h.db.ActiveRun(); err != nil || id != "run-2" {
		t.Errorf("ActiveRun = %q, %v; want run-2", id, err)
	}
}

func TestEngineReplan(t *testing.T) {
	started := func(t *testing.T, h *harness) {
		h.setState(t, orchestrator.StateRunning,
			orchestrator.StepRecord{RunID: runID, Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1},
			orchestrator.StepRecord{RunID: runID, Index: 1, StepID: "b", Status: orchestrator.StepStarted, Attempts: 1})
	}
	failedAtB := func(t *testing.T, h *harness) {
		h.steps.apply["b"] = failWith("boom")
		h.exec(t, orchestrator.ExecOptions{})
		delete(h.steps.apply, "b")
	}
	tests := []struct {
		name    string
		setup   func(*testing.T, *harness)
		next    orchestrator.Plan
		wantErr string // "" means accepted
	}{
		{"step added after the failed one", failedAtB,
			newPlan(step("a", produces("media")), step("b"), step("c"), step("d")), ""},
		{"started step stays in place", started,
			newPlan(step("a", produces("media")), step("b"), step("c", skippable)), ""},
		{"started step moved", started,
			newPlan(step("a", produces("media")), step("x"), step("b"), step("c")), "is not step 2"},
		{"done step dropped", failedAtB,
			newPlan(step("b"), step("c")), "is not step 1"},
		{"new plan has blockers", failedAtB, func() orchestrator.Plan {
			p := newPlan(step("a", produces("media")), step("b"), step("c"))
			p.Blockers = []orchestrator.Finding{{ID: "media-missing"}}
			return p
		}(), "blockers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			old := newPlan(step("a", produces("media")), step("b"), step("c"))
			h.create(t, old)
			tt.setup(t, h)
			_, recsBefore := h.load(t)

			err := h.eng.Replan(runID, tt.next, "alice")
			run, recs := h.load(t)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Replan: %v, want an error with %q", err, tt.wantErr)
				}
				if run.Plan.Fingerprint != old.Fingerprint || !slices.EqualFunc(recs, recsBefore, sameRecord) {
					t.Error("a refused replan changed the stored run")
				}
				return
			}
			if err != nil {
				t.Fatalf("Replan: %v", err)
			}
			if run.Plan.Fingerprint != tt.next.Fingerprint || len(recs) != len(tt.next.Steps) {
				t.Fatalf("stored plan %s with %d records, want the new one", run.Plan.Fingerprint, len(recs))
			}
			// Records of steps that had begun are kept, the rest are new.
			for i, r := range recs {
				if i < len(recsBefore) && recsBefore[i].Status != orchestrator.StepPending {
					if !sameRecord(r, recsBefore[i]) {
						t.Errorf("record %d %+v changed to %+v", i, recsBefore[i], r)
					}
				} else if r.Status != orchestrator.StepPending || r.StepID != tt.next.Steps[i].ID {
					t.Errorf("record %d = %+v, want pending %s", i, r, tt.next.Steps[i].ID)
				}
			}
			j := h.journal(t)
			last := j[len(j)-1]
			if last.Event != "run.replanned" || last.Actor != "alice" || last.Fields["from"] != old.Fingerprint || last.Fields["to"] != tt.next.Fingerprint {
				t.Errorf("journal %+v, want run.replanned from the old to the new fingerprint", last)
			}
			// The run goes on from where it stood; done steps are not redone.
			h.steps.calls = nil
			if out := h.exec(t, orchestrator.ExecOptions{Retry: true}); out.State != orchestrator.StateCompleted {
				t.Fatalf("after replan: %+v", out)
			}
			if got := h.steps.callsFor("a"); len(got) != 0 {
				t.Errorf("done step a ran again: %v", got)
			}
		})
	}
}

func TestEngineReplanRefusedWhenOver(t *testing.T) {
	h := newHarness(t)
	p := newPlan(step("a"))
	h.create(t, p)
	h.exec(t, orchestrator.ExecOptions{})
	if err := h.eng.Replan(runID, newPlan(step("a"), step("b")), "alice"); !errors.Is(err, orchestrator.ErrTransition) {
		t.Errorf("Replan of a completed run: %v, want ErrTransition", err)
	}
}

func sameRecord(a, b orchestrator.StepRecord) bool {
	return a.StepID == b.StepID && a.Index == b.Index && a.Status == b.Status && a.Attempts == b.Attempts &&
		a.Error == b.Error && a.StartedAt.Equal(b.StartedAt) && maps.Equal(a.Outputs.Artifacts, b.Outputs.Artifacts)
}

func TestEngineCancelInsideApply(t *testing.T) {
	// Cancelling (SIGTERM, lost daemon) is not a failure: the step stays
	// started and is probed on the next Execute, as after a crash.
	tests := []struct {
		name string
		err  func(ctx context.Context) error // what Apply returns once cancelled
	}{
		{"apply returns the context error", func(ctx context.Context) error { return ctx.Err() }},
		{"apply returns its own error", func(context.Context) error { return errors.New("signal: killed") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.create(t, newPlan(step("a"), step("b"), step("c")))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h.steps.apply["b"] = func(context.Context) error { cancel(); return tt.err(ctx) }

			_, err := h.eng.Execute(ctx, runID, orchestrator.ExecOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Execute: %v, want context.Canceled", err)
			}
			run, _ := h.load(t)
			r := h.rec(t, "b")
			if r.Status != orchestrator.StepStarted || r.Error != "" || run.State != orchestrator.StateRunning {
				t.Fatalf("after cancel: run %s, b %s %q; want running and b started", run.State, r.Status, r.Error)
			}
			if slices.Contains(h.events(t), "run.fail ") {
				t.Error("a cancellation was journaled as a failure")
			}

			delete(h.steps.apply, "b")
			h.steps.calls = nil
			if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
				t.Fatalf("resume: %+v", out)
			}
			if got := h.steps.callsFor("b"); !slices.Equal(got, []string{"probe", "apply", "verify"}) {
				t.Errorf("b on resume: %v, want probed then applied", got)
			}
			if !slices.Contains(h.events(t), "step.resume b") {
				t.Errorf("journal %v lacks step.resume b", h.events(t))
			}
		})
	}
}

func TestEngineCancelLetsIrreversibleStepFinish(t *testing.T) {
	// Ctrl-C during the point of no return must not leave the installer
	// half-run: the step sees no cancellation, finishes and is recorded,
	// and the run stops before the next step.
	h := newHarness(t)
	h.create(t, newPlan(step("backup"), step("upgrade", irreversible), step("start")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.steps.apply["upgrade"] = func(stepCtx context.Context) error {
		cancel()
		if stepCtx.Err() != nil {
			t.Error("the irreversible step's context was cancelled")
		}
		return stepCtx.Err()
	}

	if _, err := h.eng.Execute(ctx, runID, orchestrator.ExecOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled once the step is recorded", err)
	}
	if r := h.rec(t, "upgrade"); r.Status != orchestrator.StepDone {
		t.Errorf("upgrade is %s %q, want done", r.Status, r.Error)
	}
	if r := h.rec(t, "start"); r.Status != orchestrator.StepPending || len(h.steps.callsFor("start")) != 0 {
		t.Errorf("start is %s with calls %v, want untouched after the cancel", r.Status, h.steps.callsFor("start"))
	}
	if run, _ := h.load(t); run.State != orchestrator.StateRunning {
		t.Errorf("run %s, want running (resumable)", run.State)
	}
}

// Ctrl-C while an irreversible step waits for work that goes on without
// upgrader (a supervised installer): the step sees Stopped closed (never its
// context cancelled), stops waiting with ErrDetached and stays started; the
// next Execute gives it Resumed, so it follows the work instead of starting
// it again.
func TestEngineCancelDetachesFromOutsideWork(t *testing.T) {
	h := newHarness(t)
	h.create(t, newPlan(step("backup"), step("upgrade", irreversible), step("start")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.steps.apply["upgrade"] = func(stepCtx context.Context) error {
		h.steps.mu.Lock()
		sc := h.steps.seen["upgrade"]
		h.steps.mu.Unlock()
		if sc.Resumed {
			t.Error("a first attempt is marked resumed")
		}
		cancel()
		select {
		case <-sc.Stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("Stopped was not closed by the cancel")
		}
		if stepCtx.Err() != nil {
			t.Error("the irreversible step's context was cancelled")
		}
		return fmt.Errorf("%w: the installer goes on", orchestrator.ErrDetached)
	}
	if _, err := h.eng.Execute(ctx, runID, orchestrator.ExecOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute: %v, want context.Canceled", err)
	}
	if r := h.rec(t, "upgrade"); r.Status != orchestrator.StepStarted {
		t.Fatalf("upgrade is %s %q, want started (to be followed again)", r.Status, r.Error)
	}
	if run, _ := h.load(t); run.State != orchestrator.StateRunning {
		t.Errorf("run %s, want running", run.State)
	}
	h.restart(t)
	h.steps.apply["upgrade"] = nil
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("after resuming: %s", out.State)
	}
	h.steps.mu.Lock()
	defer h.steps.mu.Unlock()
	if !h.steps.seen["upgrade"].Resumed {
		t.Error("the step found started was not marked resumed")
	}
}

// The reboot-loop guard counts the reboots a step asked for, not its
// attempts: crashes before the request do not use it up (the fault sweep
// found a run that rebooted once, after two crashes, and was failed as a
// loop), while a host that never proves the reboot stops the run after
// MaxRebootAttempts requests, until the operator retries.
func TestEngineRebootLoopGuard(t *testing.T) {
	rebootStep := func(s *orchestrator.StepSpec) { s.Kind = orchestrator.KindReboot }
	t.Run("crashes before the request do not count", func(t *testing.T) {
		h := newHarness(t)
		h.create(t, newPlan(step("r", rebootStep), step("after")))
		proved := false
		h.steps.probe["r"] = func() (bool, error) { return proved, nil }
		h.steps.apply["r"] = func(context.Context) error { return orchestrator.ErrRebootRequested }
		for range 2 {
			h.crashAt = "after-intent r"
			h.execCrash(t)
			h.restart(t)
		}
		if out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"}); out.State != orchestrator.StateRebooting {
			t.Fatalf("state %s, want rebooting", out.State)
		}
		proved = true // the host came back under a new boot id
		h.steps.applied["r"] = true
		h.restart(t)
		if out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"}); out.State != orchestrator.StateCompleted {
			t.Fatalf("state %s after the proved reboot (attempts %d), want completed: %s", out.State, h.rec(t, "r").Attempts, h.rec(t, "r").Error)
		}
	})
	t.Run("a reboot never proved stops the run", func(t *testing.T) {
		h := newHarness(t)
		h.create(t, newPlan(step("r", rebootStep), step("after")))
		h.steps.probe["r"] = func() (bool, error) { return false, nil }
		h.steps.apply["r"] = func(context.Context) error { return orchestrator.ErrRebootRequested }
		for n := range orchestrator.MaxRebootAttempts {
			if out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"}); out.State != orchestrator.StateRebooting {
				t.Fatalf("request %d: state %s, want rebooting", n+1, out.State)
			}
			h.restart(t)
		}
		out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"})
		if out.State != orchestrator.StateFailed || !strings.Contains(h.rec(t, "r").Error, "came back 3 times") {
			t.Fatalf("after %d unproved reboots: state %s, error %q", orchestrator.MaxRebootAttempts, out.State, h.rec(t, "r").Error)
		}
		if n := len(slices.DeleteFunc(h.steps.callsFor("r"), func(c string) bool { return c != "apply" })); n != orchestrator.MaxRebootAttempts {
			t.Errorf("%d reboots asked for, want %d", n, orchestrator.MaxRebootAttempts)
		}
		// The operator's retry asks for the reboot again.
		if out := h.exec(t, orchestrator.ExecOptions{Actor: "tester", Retry: true}); out.State != orchestrator.StateRebooting {
			t.Fatalf("retry: state %s, want rebooting", out.State)
		}
	})
}

// testConsent is the operator's consent to the point of no return, for
// tests about something else: such a run does not stop before its
// irreversible step (TestConsent* test that it does without it).
var testConsent = &orchestrator.Consent{Actor: "tester", Via: orchestrator.ConsentFingerprint, PointOfNoReturn: true}
