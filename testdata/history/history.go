// Package history fills a state with finished runs, as the engine leaves
// them, for the benchmarks that prove the state's cost does not grow with
// its history (orchestrator's BenchmarkEngineNoopStepsAfterRuns and
// testdata/resumebench).
package history

import (
	"fmt"
	"time"

	"upgrader/orchestrator"
	"upgrader/state"
)

// Plan is a plan of n no-op steps.
func Plan(n int) orchestrator.Plan {
	p := orchestrator.Plan{Procedure: "bench", Steps: make([]orchestrator.StepSpec, n)}
	for i := range p.Steps {
		p.Steps[i] = orchestrator.StepSpec{ID: fmt.Sprintf("noop-%04d", i), Title: "no-op", Kind: orchestrator.KindAuto,
			Action: "noop", Skip: orchestrator.SkipNever, Reason: "benchmark"}
	}
	p.Fingerprint = orchestrator.Fingerprint(p)
	return p
}

// Fill stores runs finished runs of plan in db, each with its step records
// done and a start and a result in its journal for every step, through
// the store's own CreateRun and Commit (so the runs are archived as the
// engine's are).
func Fill(db *state.DB, runs int, plan orchestrator.Plan) error {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for r := range runs {
		id := fmt.Sprintf("20260101T090000Z-old%05d", r)
		run := orchestrator.Run{ID: id, Plan: plan, State: orchestrator.StatePlanned, CreatedAt: t0, UpdatedAt: t0}
		recs := make([]orchestrator.StepRecord, len(plan.Steps))
		for i := range recs {
			recs[i] = orchestrator.StepRecord{RunID: id, Index: i, StepID: plan.Steps[i].ID, Status: orchestrator.StepPending}
		}
		created := orchestrator.JournalEntry{RunID: id, Time: t0, Actor: "bench", Event: "run.created", Text: "run created"}
		if err := db.CreateRun(orchestrator.Update{Run: run, Steps: recs, Journal: []orchestrator.JournalEntry{created}}); err != nil {
			return err
		}
		var journal []orchestrator.JournalEntry
		for i := range recs {
			recs[i].Status, recs[i].Attempts, recs[i].StartedAt, recs[i].FinishedAt = orchestrator.StepDone, 1, t0, t0
			journal = append(journal,
				orchestrator.JournalEntry{RunID: id, Time: t0, Actor: "engine", Event: "step.start", Step: recs[i].StepID, Text: "start " + recs[i].StepID + " (attempt 1)"},
				orchestrator.JournalEntry{RunID: id, Time: t0, Actor: "engine", Event: "step.done", Step: recs[i].StepID, Text: "done " + recs[i].StepID})
		}
		run.State = orchestrator.StateCompleted
		if err := db.Commit(orchestrator.Update{Run: run, Steps: recs, Journal: journal}); err != nil {
			return err
		}
	}
	return nil
}
