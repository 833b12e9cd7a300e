package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// TestLifecycleModel drives random sequences of operator operations and
// crashes against a run on a real bbolt state and checks, after every
// operation, invariants that must hold whatever the sequence.
//
// Replay a failure with UPGRADER_MODEL_SEED=<seed> (and UPGRADER_MODEL_SEQ=<n>
// to run only sequence n); UPGRADER_MODEL_RUNS sets how many sequences run.
func TestLifecycleModel(t *testing.T) {
	// A new seed every run (printed, replayable): `make faults` runs the
	// 10,000 sequences, `make test` a sample of 2,000.
	seed := uint64(time.Now().UnixNano())
	runs := 2000
	if os.Getenv("UPGRADER_FAULTS") == "full" {
		runs = 10000
	}
	only := -1
	if v := os.Getenv("UPGRADER_MODEL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("UPGRADER_MODEL_SEED=%q: %v", v, err)
		}
		seed = n
	}
	if v := os.Getenv("UPGRADER_MODEL_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("UPGRADER_MODEL_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	if v := os.Getenv("UPGRADER_MODEL_SEQ"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("UPGRADER_MODEL_SEQ=%q: want a sequence number", v)
		}
		only = n
	}
	if testing.Short() && os.Getenv("UPGRADER_MODEL_RUNS") == "" {
		runs = 500
	}
	t.Logf("seed %d (UPGRADER_MODEL_SEED), %d sequences (UPGRADER_MODEL_RUNS)", seed, runs)

	// tmpfs keeps the fsync of every commit cheap.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "upgrader-model-"); err == nil {
			base = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	if base == "" {
		base = t.TempDir()
	}

	// Sequences are independent (each its own state, steps and random
	// source derived from seed and sequence number): workers share them out.
	var (
		mu     sync.Mutex
		total  modelStats
		failed int
	)
	start := time.Now()
	workers := min(runtime.GOMAXPROCS(0), 4)
	t.Run("workers", func(t *testing.T) {
		for w := range workers {
			t.Run(strconv.Itoa(w), func(t *testing.T) {
				t.Parallel()
				for n := w; n < runs; n += workers {
					if only >= 0 && n != only {
						continue
					}
					m := newModel(t, base, seed, n)
					m.run()
					if err := os.RemoveAll(m.h.dir); err != nil {
						t.Fatal(err)
					}
					mu.Lock()
					stop := total.add(m, t, seed, n, &failed)
					mu.Unlock()
					if stop {
						return
					}
				}
			})
		}
	})
	fmt.Printf("lifecycle model: %d sequences (seed %d), %d operations, %d crashes (%d mid-step), %d runs aborted, %d completed, %d violations, in %v\n",
		total.sequences, seed, total.ops, total.crashes, total.midStep, total.aborted, total.completed, total.violations, time.Since(start).Round(time.Millisecond))
	if total.violations > 0 {
		t.Errorf("%d violations in %d sequences (seed %d)", total.violations, failed, seed)
	}
}

type modelStats struct {
	sequences, ops, crashes, midStep, aborted, completed, violations int
}

// add counts a finished sequence and reports its violations; it says
// whether to stop (too many failing sequences already).
func (total *modelStats) add(m *model, t *testing.T, seed uint64, n int, failed *int) bool {
	total.sequences++
	total.ops += m.stats.ops
	total.crashes += m.stats.crashes
	total.midStep += m.stats.midStep
	total.aborted += m.stats.aborted
	total.completed += m.stats.completed
	if len(m.violations) > 0 {
		*failed++
		total.violations += len(m.violations)
		t.Errorf("seed %d sequence %d (replay: UPGRADER_MODEL_SEED=%d UPGRADER_MODEL_SEQ=%d):\nplan:\n%s\nviolations:\n  %s\nhistory:\n  %s",
			seed, n, seed, n, m.planText(), strings.Join(m.violations, "\n  "), strings.Join(m.history, "\n  "))
	}
	return *failed >= 5
}

// midStepPanic is what a fake step's Apply panics with to model a process
// killed in the middle of a step.
type midStepPanic struct{}

type model struct {
	t         *testing.T
	rng       *rand.Rand
	h         *harness
	plan      orchestrator.Plan
	fail      []bool // per step: Apply may fail
	attempts  map[string]int
	panicNext bool
	// What the last check read: the operation after it starts from there.
	lastRun    orchestrator.Run
	lastRecs   []orchestrator.StepRecord
	seen       uint64             // journal entries checked so far
	jstate     orchestrator.State // the state the checked journal leaves the run in
	history    []string
	violations []string
	stats      modelStats
	seed       uint64
	seq        int
}

func newModel(t *testing.T, base string, seed uint64, seq int) *model {
	dir, err := os.MkdirTemp(base, "seq-")
	if err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, rng: rand.New(rand.NewPCG(seed, uint64(seq))), attempts: map[string]int{}, seed: seed, seq: seq}
	m.h = &harness{dir: dir, steps: newFakeSteps(), checker: &fakeChecker{fail: map[string]error{}}}

	// A plan of 3–6 steps: at most one irreversible (the point of no
	// return), some gates, skip policies never or with-reason, some
	// whose Apply fails now and then.
	nsteps := 3 + m.rng.IntN(4)
	irr := -1
	if m.rng.IntN(3) > 0 {
		irr = m.rng.IntN(nsteps)
	}
	var specs []orchestrator.StepSpec
	m.fail = make([]bool, nsteps)
	for i := range nsteps {
		s := step(fmt.Sprintf("s%d", i))
		if i == irr {
			s.Irreversible = true
		} else if m.rng.IntN(4) == 0 {
			s.Kind, s.Instructions = orchestrator.KindGate, "do it, then confirm"
		}
		if m.rng.IntN(2) == 0 {
			s.Skip = orchestrator.SkipWithReason
		}
		m.fail[i] = s.Kind != orchestrator.KindGate && m.rng.IntN(3) == 0
		specs = append(specs, s)
	}
	m.plan = newPlan(specs...)
	for i, s := range specs {
		id := s.ID
		m.h.steps.apply[id] = func(context.Context) error {
			if m.panicNext {
				m.panicNext = false
				panic(midStepPanic{})
			}
			m.attempts[id]++
			if m.fail[i] && m.failAt(i, m.attempts[id]) {
				return fmt.Errorf("%s: apply failed (attempt %d)", id, m.attempts[id])
			}
			return nil
		}
	}
	m.h.open(t)
	m.h.create(t, m.plan)
	m.jstate = orchestrator.StatePlanned
	m.check()
	return m
}

// failAt decides, from the seed alone, whether step i fails on attempt a.
func (m *model) failAt(i, a int) bool {
	x := m.seed ^ uint64(m.seq)*0x9e3779b97f4a7c15 ^ uint64(i)<<32 ^ uint64(a)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x%2 == 0
}

func (m *model) planText() string {
	var b strings.Builder
	for i, s := range m.plan.Steps {
		fmt.Fprintf(&b, "  %s kind=%s skip=%s irreversible=%v may-fail=%v\n", s.ID, s.Kind, s.Skip, s.Irreversible, m.fail[i])
	}
	return b.String()
}

func (m *model) violate(format string, args ...any) {
	m.violations = append(m.violations, fmt.Sprintf("after op %d: ", len(m.history))+fmt.Sprintf(format, args...))
}

func (m *model) load() (orchestrator.Run, []orchestrator.StepRecord) {
	run, recs, err := m.h.db.LoadRun(runID)
	if err != nil {
		m.t.Fatalf("seed %d sequence %d: LoadRun: %v", m.seed, m.seq, err)
	}
	return run, recs
}

func (m *model) run() {
	defer m.h.db.Close()
	turns := 8 + m.rng.IntN(13)
	for range turns {
		m.step()
		m.stats.ops++
		m.check()
		if len(m.violations) > 0 {
			return
		}
	}
	// The journal was checked as it grew; check it whole once more.
	m.seen, m.jstate = 0, orchestrator.StatePlanned
	m.check()
	switch m.lastRun.State {
	case orchestrator.StateAborted:
		m.stats.aborted++
	case orchestrator.StateCompleted:
		m.stats.completed++
	}
}

// step carries out one random operation and records it in the history.
func (m *model) step() {
	ctx := context.Background()
	run, recs := m.lastRun, m.lastRecs
	cur := ""
	if i := orchestrator.NextStep(recs); i >= 0 {
		cur = run.Plan.Steps[i].ID
	}
	switch k := m.rng.IntN(100); {
	case k < 40: // Execute
		opts := orchestrator.ExecOptions{Actor: "model", Retry: m.rng.IntN(2) == 0}
		confirm := m.rng.IntN(2) == 0
		if confirm {
			opts.Confirm = func(orchestrator.StepSpec) (map[string]string, bool) { return nil, true }
		}
		out, err := m.h.eng.Execute(ctx, runID, opts)
		m.history = append(m.history, fmt.Sprintf("execute(confirm=%v retry=%v) from %s -> %s step=%s err=%v", confirm, opts.Retry, run.State, out.State, out.Step, err))
		if err != nil {
			m.violate("Execute returned an error (only persistence errors are expected): %v", err)
		}
	case k < 50: // Confirm the current step
		err := m.h.eng.Confirm(runID, cur, "model", nil)
		m.history = append(m.history, fmt.Sprintf("confirm(%s) from %s -> err=%v", cur, run.State, err))
	case k < 62: // Skip the current step, with or without a reason
		reason := ""
		if m.rng.IntN(4) > 0 {
			reason = "model says so"
		}
		err := m.h.eng.Skip(runID, cur, "model", reason)
		m.history = append(m.history, fmt.Sprintf("skip(%s, %q) from %s -> err=%v", cur, reason, run.State, err))
	case k < 70: // Abort
		past, _ := orchestrator.PastPointOfNoReturn(run.Plan, recs)
		err := m.h.eng.Abort(runID, "model", "model aborts")
		m.history = append(m.history, fmt.Sprintf("abort from %s (past point of no return %v) -> err=%v", run.State, past, err))
		if err == nil && past {
			m.violate("Abort succeeded past the point of no return")
		}
		if past && err != nil && !errors.Is(err, orchestrator.ErrPastPointOfNoReturn) {
			m.violate("Abort past the point of no return refused with %v, want ErrPastPointOfNoReturn", err)
		}
	case k < 78: // status
		m.history = append(m.history, fmt.Sprintf("status: %s next=%s", run.State, cur))
	case k < 89: // crash between operations
		m.h.restart(m.t)
		m.stats.crashes++
		m.history = append(m.history, fmt.Sprintf("crash (restart) in %s", run.State))
	default: // crash in the middle of a step's Apply
		m.panicNext = true
		panicked := m.execPanicking(ctx)
		m.panicNext = false
		m.h.restart(m.t)
		m.stats.crashes++
		if panicked {
			m.stats.midStep++
		}
		m.history = append(m.history, fmt.Sprintf("crash mid-step (apply panicked %v) from %s", panicked, run.State))
	}
}

// execPanicking runs Execute with confirmations and reports whether a
// step's Apply panicked (the process died mid-step).
func (m *model) execPanicking(ctx context.Context) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(midStepPanic); !ok {
				panic(r)
			}
			panicked = true
		}
	}()
	_, err := m.h.eng.Execute(ctx, runID, orchestrator.ExecOptions{Actor: "model",
		Confirm: func(orchestrator.StepSpec) (map[string]string, bool) { return nil, true }})
	if err != nil {
		m.violate("Execute before the crash returned an error: %v", err)
	}
	return false
}

// check verifies the invariants against the persisted state.
func (m *model) check() {
	run, recs := m.load()
	m.lastRun, m.lastRecs = run, recs
	if n := len(m.history); n > 0 {
		m.history[n-1] += " => " + string(run.State)
	}

	// 5. The plan fingerprint never changes.
	if run.Plan.Fingerprint != m.plan.Fingerprint {
		m.violate("plan fingerprint %s, created with %s", run.Plan.Fingerprint, m.plan.Fingerprint)
	}

	// 2. At most one record started; steps go in order.
	started := 0
	open := -1 // first record neither done nor skipped
	for i, r := range recs {
		if r.Status == orchestrator.StepStarted {
			started++
		}
		switch r.Status {
		case orchestrator.StepPending, orchestrator.StepStarted, orchestrator.StepFailed:
			if open < 0 {
				open = i
			}
		case orchestrator.StepDone, orchestrator.StepSkipped:
			if open >= 0 {
				m.violate("step %s is %s after %s which is %s", r.StepID, r.Status, recs[open].StepID, recs[open].Status)
			}
		default:
			m.violate("step %s has unknown status %q", r.StepID, r.Status)
		}
		// 4. A step that may never be skipped is never skipped.
		if r.Status == orchestrator.StepSkipped && run.Plan.Steps[i].Skip == orchestrator.SkipNever {
			m.violate("step %s with skip policy never is skipped", r.StepID)
		}
	}
	if started > 1 {
		m.violate("%d step records are started", started)
	}

	// 6. Journal sequence numbers are 1..N; 1. every run.* transition is
	// one the lifecycle allows, from the state the previous one left.
	// Entries already checked are not read again until the end.
	j, err := m.h.db.Journal(runID, m.seen)
	if err != nil {
		m.t.Fatalf("seed %d sequence %d: Journal: %v", m.seed, m.seq, err)
	}
	state := m.jstate
	for _, e := range j {
		m.seen++
		if e.Seq != m.seen {
			m.violate("journal entry %d has seq %d", m.seen, e.Seq)
			m.seen = e.Seq
		}
		ev, ok := strings.CutPrefix(e.Event, "run.")
		if !ok || ev == "created" {
			continue
		}
		from, to := orchestrator.State(e.Fields["from"]), orchestrator.State(e.Fields["to"])
		if from != state {
			m.violate("journal %d %s from %s, but the run was %s", e.Seq, e.Event, from, state)
		}
		next, err := orchestrator.Transition(from, orchestrator.Event(ev))
		if err != nil || next != to {
			m.violate("journal %d %s: %s → %s is not allowed (Transition gives %s, %v)", e.Seq, e.Event, from, to, next, err)
		}
		state = to
	}
	m.jstate = state
	if run.State != state {
		m.violate("run is %s, the journal's last transition left it %s", run.State, state)
	}
}
