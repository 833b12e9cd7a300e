package orchestrator

import (
	"slices"
	"time"
)

// StepTimes say how long each step of a procedure took in the earlier
// runs of it recorded in the state: the median over the completed runs,
// for a Method of Procedure's "expected duration". A step with no
// measurement has no entry (its duration is unknown).
type StepTimes struct {
	Procedure string `json:"procedure"`
	// Runs is how many completed runs of the procedure were measured.
	Runs int `json:"runs"`
	// Median maps a step id to its median duration over the runs in
	// which the step did its work.
	Median map[string]time.Duration `json:"median"`
	// Samples maps a step id to how many runs measured it.
	Samples map[string]int `json:"samples"`
}

// MeasureStepTimes computes StepTimes from recorded runs: only completed
// runs of the procedure count, and in them only steps that were done by
// their own work (a step found already in place, or skipped, took no
// time worth expecting). Pure.
func MeasureStepTimes(procedure string, runs []Run, steps [][]StepRecord) StepTimes {
	t := StepTimes{Procedure: procedure, Median: map[string]time.Duration{}, Samples: map[string]int{}}
	samples := map[string][]time.Duration{}
	for i, run := range runs {
		if run.Plan.Procedure != procedure || run.State != StateCompleted || i >= len(steps) {
			continue
		}
		t.Runs++
		for _, rec := range steps[i] {
			if rec.Status != StepDone || rec.AlreadyInPlace || rec.StartedAt.IsZero() || rec.FinishedAt.Before(rec.StartedAt) {
				continue
			}
			samples[rec.StepID] = append(samples[rec.StepID], rec.FinishedAt.Sub(rec.StartedAt))
		}
	}
	for id, d := range samples {
		slices.Sort(d)
		m := d[len(d)/2]
		if len(d)%2 == 0 {
			m = (d[len(d)/2-1] + d[len(d)/2]) / 2
		}
		t.Median[id], t.Samples[id] = m, len(d)
	}
	return t
}
