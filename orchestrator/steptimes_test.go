package orchestrator

import (
	"testing"
	"time"
)

// Only completed runs of the procedure count, and only steps that did
// their work; the median of an even count is the mean of the middle two.
func TestMeasureStepTimes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	rec := func(id string, secs int, status StepStatus, inPlace bool) StepRecord {
		return StepRecord{StepID: id, Status: status, AlreadyInPlace: inPlace, StartedAt: t0, FinishedAt: t0.Add(time.Duration(secs) * time.Second)}
	}
	run := func(proc string, state State) Run { return Run{Plan: Plan{Procedure: proc}, State: state} }
	runs := []Run{run("p", StateCompleted), run("p", StateCompleted), run("p", StateFailed), run("q", StateCompleted), run("p", StateCompleted)}
	steps := [][]StepRecord{
		{rec("a", 10, StepDone, false), rec("b", 5, StepDone, false)},
		{rec("a", 20, StepDone, false), rec("b", 1, StepDone, true)},
		{rec("a", 999, StepDone, false)},
		{rec("a", 999, StepDone, false)},
		{rec("a", 40, StepDone, false), rec("b", 7, StepSkipped, false)},
	}
	got := MeasureStepTimes("p", runs, steps)
	if got.Runs != 3 || got.Median["a"] != 20*time.Second || got.Samples["a"] != 3 {
		t.Errorf("a: runs %d, median %v of %d; want 3 runs, 20s of 3", got.Runs, got.Median["a"], got.Samples["a"])
	}
	if got.Median["b"] != 5*time.Second || got.Samples["b"] != 1 {
		t.Errorf("b: median %v of %d, want 5s of 1 (in place and skipped do not count)", got.Median["b"], got.Samples["b"])
	}
	steps[4] = []StepRecord{rec("a", 30, StepDone, false)}
	runs = runs[:2]
	if got := MeasureStepTimes("p", runs, steps); got.Median["a"] != 15*time.Second {
		t.Errorf("median of 10s and 20s = %v, want 15s", got.Median["a"])
	}
}
