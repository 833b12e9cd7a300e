package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
	"upgrader/orchestrator/profile"
	"upgrader/state"
	"upgrader/steps/bundle"
)

// evidence gathers upgrader's own record for a support bundle.
type evidence struct {
	bundle.Evidence
}

func (e *evidence) note(format string, args ...any) {
	e.Notes = append(e.Notes, fmt.Sprintf(format, args...))
}

func (e *evidence) doc(name string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		e.note("upgrader/%s: %v", name, err)
		return
	}
	e.Docs = append(e.Docs, bundle.Doc{Name: name, Data: append(b, '\n')})
}

// bundleEvidence collects the site profile (redacted), the host's facts
// and plan now, every run with its step records and journal, and
// upgrader's log. It never changes the state: the daemon is asked when it
// holds it, otherwise a copy is read. What cannot be had is noted, never
// fatal. cleanup removes the copy once the archive is written.
func (a *app) bundleEvidence(p profile.Profile) (ev bundle.Evidence, cleanup func()) {
	var e evidence
	cleanup = func() {}
	e.doc("version.json", map[string]string{"upgrader": version, "catalog": orchestrator.CatalogVersion})
	profilePath, _ := filepath.Abs(a.profilePath)
	if b, err := bundle.RedactedProfile(p, profilePath); err == nil {
		e.Docs = append(e.Docs, bundle.Doc{Name: "profile.yaml", Data: b})
	} else {
		e.note("upgrader/profile.yaml: %v", err)
	}
	pl := a.planner()
	if facts, err := pl.Facts(context.Background(), p, nil); err == nil {
		e.doc("facts.json", facts)
	}
	if plan, _, err := pl.Plan(context.Background(), orchestrator.PlanRequest{Profile: profilePath}); err == nil {
		e.doc("plan-now.json", plan)
	} else {
		e.note("no plan for this host now: %v", err)
	}
	if log := filepath.Join(a.stateDir, "upgrader.log"); present(log) {
		e.Files = append(e.Files, bundle.FileRef{Name: "upgrader.log", Path: log})
	}
	// The output of every long child (installers, pg_dump) it ran.
	jobLogs, _ := filepath.Glob(filepath.Join(a.stateDir, "jobs", "*.log"))
	for _, l := range jobLogs {
		e.Files = append(e.Files, bundle.FileRef{Name: "jobs/" + filepath.Base(l), Path: l})
	}
	if !(e.daemonHolds(a) && e.fromDaemon(a)) {
		c, done := state.ReadCopy(a.stateDir)
		cleanup = done
		e.Notes = append(e.Notes, c.Notes...)
		if c.Damaged != "" {
			e.Files = append(e.Files, bundle.FileRef{Name: "state.db", Path: c.Damaged})
		}
		for _, r := range c.Runs {
			e.run(r.Run, r.Steps, r.Journal)
		}
		if c.Current != nil {
			e.doc("plan.json", *c.Current)
		}
	}
	return e.Evidence, cleanup
}

// daemonHolds reports whether upgrader's daemon answers on the socket; a
// socket served by another user is noted, and never asked.
func (e *evidence) daemonHolds(a *app) bool {
	up, err := api.Up(a.socket)
	if err != nil {
		e.note("%v", err)
	}
	return up
}

// fromDaemon asks the daemon that holds the state for its run.
func (e *evidence) fromDaemon(a *app) bool {
	c := api.NewClient(a.socket)
	ctx := orchestrator.WithActor(context.Background(), actor())
	st, err := c.Status(ctx, "")
	if err != nil {
		e.note("the daemon on %s did not give its run: %v", a.socket, err)
		return false
	}
	journal, err := c.Journal(ctx, st.Run.ID, 0)
	if err != nil {
		e.note("the daemon on %s did not give its journal: %v", a.socket, err)
	}
	e.run(st.Run, st.Steps, journal)
	e.doc("plan.json", st.Run.Plan)
	e.note("run %s from the daemon on %s, which holds the state (other runs are in the state file)", st.Run.ID, a.socket)
	return true
}

func (e *evidence) run(run orchestrator.Run, recs []orchestrator.StepRecord, journal []orchestrator.JournalEntry) {
	e.doc("runs/"+run.ID+"/run.json", run)
	e.doc("runs/"+run.ID+"/steps.json", recs)
	e.doc("runs/"+run.ID+"/journal.json", journal)
}

func present(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
