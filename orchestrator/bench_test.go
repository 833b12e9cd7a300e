package orchestrator_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state"
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

func noopPlan(n int) orchestrator.Plan {
	p := orchestrator.Plan{Procedure: "bench", Steps: make([]orchestrator.StepSpec, n)}
	for i := range p.Steps {
		p.Steps[i] = orchestrator.StepSpec{ID: fmt.Sprintf("noop-%04d", i), Title: "no-op", Kind: orchestrator.KindAuto,
			Action: "noop", Skip: orchestrator.SkipNever, Reason: "benchmark"}
	}
	p.Fingerprint = orchestrator.Fingerprint(p)
	return p
}

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
