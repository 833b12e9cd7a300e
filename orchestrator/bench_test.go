package orchestrator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state"
	"upgrader/testdata/history"
)

// noopStep does nothing, so the benchmark measures the engine alone:
// two durable commits (intent, result), the snapshot after the step, and
// the bookkeeping around them.
type noopStep struct{}

func (noopStep) Probe(context.Context, orchestrator.StepContext) (bool, error) { return false, nil }
func (noopStep) Apply(context.Context, orchestrator.StepContext) error         { return nil }
func (noopStep) Verify(context.Context, orchestrator.StepContext) (orchestrator.Outputs, error) {
	return orchestrator.Outputs{}, nil
}

type noopFactory struct{}

func (noopFactory) Build(orchestrator.StepSpec) (orchestrator.Step, error) { return noopStep{}, nil }

type noChecks struct{}

func (noChecks) Recheck(context.Context, string, orchestrator.Artifact) error { return nil }

// benchSteps is longer than any real procedure: the snapshot after each
// step copies the whole state, so its cost grows with the run.
const benchSteps = 50

func noopPlan(n int) orchestrator.Plan { return history.Plan(n) }

// BenchmarkEngineNoopSteps runs a persisted plan of 50 no-op steps and
// reports the engine's cost per step (ns/step), fsync included.
func BenchmarkEngineNoopSteps(b *testing.B) {
	plan := noopPlan(benchSteps)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		db, err := state.Open(b.TempDir(), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		eng := &orchestrator.Engine{Store: db, Steps: noopFactory{}, Checker: noChecks{}}
		if _, err := eng.Create(plan, "bench", "", "bench", testConsent); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := eng.Execute(context.Background(), "bench", orchestrator.ExecOptions{Actor: "bench"})
		total += time.Since(start)
		if err != nil || out.State != orchestrator.StateCompleted {
			b.Fatalf("state %s: %v", out.State, err)
		}
		db.Close()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*benchSteps), "ns/step")
}

// BenchmarkFsyncFloor is the cost of the smallest durable write on the same
// disk: 200 bytes written and fdatasync'd.
func BenchmarkFsyncFloor(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "floor"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i%64)*200); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
}

// finishedRuns is how many finished runs BenchmarkEngineNoopStepsAfterRuns
// finds in the state before it starts.
const finishedRuns = 1000

// historyDir is a state directory holding finishedRuns finished runs, made
// once per process (the benchmark function runs more than once): in
// TMPDIR, which make bench removes.
var historyDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "upgrader-bench-history-")
	if err != nil {
		return "", err
	}
	db, err := state.Open(dir, time.Second)
	if err != nil {
		return "", err
	}
	defer db.Close()
	return dir, history.Fill(db, finishedRuns, noopPlan(benchSteps))
})

// BenchmarkEngineNoopStepsAfterRuns is BenchmarkEngineNoopSteps on a state
// that already holds 1,000 finished runs: the engine's cost per step must
// not grow with the history. Creating each run (which archives the one
// before) is timed apart, as ns/create.
func BenchmarkEngineNoopStepsAfterRuns(b *testing.B) {
	dir, err := historyDir()
	if err != nil {
		b.Fatal(err)
	}
	db, err := state.Open(dir, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if ids, _ := db.Runs(); len(ids) < finishedRuns {
		b.Fatalf("%d runs in the state, want %d", len(ids), finishedRuns)
	}
	plan := noopPlan(benchSteps)
	eng := &orchestrator.Engine{Store: db, Steps: noopFactory{}, Checker: noChecks{}}
	var total, create time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("20270101T090000Z-new%d-%05d", b.N, i)
		start := time.Now()
		if _, err := eng.Create(plan, id, "", "bench", testConsent); err != nil {
			b.Fatal(err)
		}
		create += time.Since(start)
		start = time.Now()
		out, err := eng.Execute(context.Background(), id, orchestrator.ExecOptions{Actor: "bench"})
		total += time.Since(start)
		if err != nil || out.State != orchestrator.StateCompleted {
			b.Fatalf("state %s: %v", out.State, err)
		}
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*benchSteps), "ns/step")
	b.ReportMetric(float64(create.Nanoseconds())/float64(b.N), "ns/create")
}

// BenchmarkEngineSideBySide takes turns, within each iteration, between a
// run of the 50 no-op steps on a new state, one on the state holding 1,000
// finished runs, and 50 writes of the fsync floor, so that all three meet
// the same load on a shared disk. It reports each one's cost per step (or
// per floor write).
func BenchmarkEngineSideBySide(b *testing.B) {
	dir, err := historyDir()
	if err != nil {
		b.Fatal(err)
	}
	full, err := state.Open(dir, time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer full.Close()
	floorFile, err := os.OpenFile(filepath.Join(b.TempDir(), "floor"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer floorFile.Close()
	plan := noopPlan(benchSteps)
	execute := func(db *state.DB, id string) time.Duration {
		eng := &orchestrator.Engine{Store: db, Steps: noopFactory{}, Checker: noChecks{}}
		if _, err := eng.Create(plan, id, "", "bench", testConsent); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		out, err := eng.Execute(context.Background(), id, orchestrator.ExecOptions{Actor: "bench"})
		if err != nil || out.State != orchestrator.StateCompleted {
			b.Fatalf("state %s: %v", out.State, err)
		}
		return time.Since(start)
	}
	buf := make([]byte, 200)
	var empty, history, floor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db, err := state.Open(b.TempDir(), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		empty += execute(db, "bench")
		db.Close()
		history += execute(full, fmt.Sprintf("20270101T090000Z-side%d-%05d", b.N, i))
		start := time.Now()
		for j := range benchSteps {
			if _, err := floorFile.WriteAt(buf, int64(j%64)*200); err != nil {
				b.Fatal(err)
			}
			if err := unix.Fdatasync(int(floorFile.Fd())); err != nil {
				b.Fatal(err)
			}
		}
		floor += time.Since(start)
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*benchSteps) }
	b.ReportMetric(per(empty), "ns/step-empty")
	b.ReportMetric(per(history), "ns/step-1000runs")
	b.ReportMetric(per(floor), "ns/fsync-floor")
}
