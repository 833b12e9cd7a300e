package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

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
	stateFile := filepath.Join(a.stateDir, state.FileName)
	switch _, err := os.Lstat(stateFile); {
	case errors.Is(err, fs.ErrNotExist):
		e.note("no state yet: %s does not exist (no run was made with this state directory)", stateFile)
	case err != nil:
		e.note("state %s: %v", stateFile, err)
	case e.daemonHolds(a) && e.fromDaemon(a):
	default:
		cleanup = e.fromCopy(stateFile)
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

// fromCopy reads every run from a copy of the state file, or of its
// snapshot (see package state) when a running upgrader holds the file or
// the file is damaged.
func (e *evidence) fromCopy(stateFile string) (cleanup func()) {
	tmp, err := os.MkdirTemp("", "upgrader-bundle-state-")
	if err != nil {
		e.note("state not read: %v", err)
		return func() {}
	}
	cleanup = func() { os.RemoveAll(tmp) }
	snapshot := filepath.Join(filepath.Dir(stateFile), state.SnapshotName)
	db, held, err := openCopy(stateFile, filepath.Join(tmp, "state"))
	switch {
	case held && present(snapshot):
		e.note("the state file is held by a running upgrader: runs read from its snapshot %s", snapshot)
		if db != nil {
			db.Close()
		}
		db, _, err = openCopy(snapshot, filepath.Join(tmp, "snapshot"))
	case held:
		e.note("the state file is held by a running upgrader and has no snapshot: read as it was, its last commit may be missing")
	case err != nil:
		e.note("state %s cannot be read (left as it is; a copy is upgrader/state.db): %v", stateFile, err)
		e.Files = append(e.Files, bundle.FileRef{Name: "state.db", Path: filepath.Join(tmp, "state", state.FileName)})
		if present(snapshot) {
			e.note("runs read from the snapshot %s, taken after the last completed step", snapshot)
			db, _, err = openCopy(snapshot, filepath.Join(tmp, "snapshot"))
		}
	}
	if err != nil {
		e.note("no runs read: %v", err)
		return cleanup
	}
	defer db.Close()
	ids, err := db.Runs()
	if err != nil {
		e.note("runs not listed: %v", err)
	}
	for _, id := range ids {
		run, recs, err := db.LoadRun(id)
		if err != nil {
			e.note("run %s: %v", id, err)
			continue
		}
		journal, err := db.Journal(id, 0)
		if err != nil {
			e.note("journal of run %s: %v", id, err)
		}
		e.run(run, recs, journal)
	}
	id, err := db.ActiveRun()
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		id, err = db.LatestRun()
	}
	if err != nil {
		e.note("no run in the state yet")
	} else if run, _, err := db.LoadRun(id); err == nil {
		e.doc("plan.json", run.Plan)
	}
	return cleanup
}

func (e *evidence) run(run orchestrator.Run, recs []orchestrator.StepRecord, journal []orchestrator.JournalEntry) {
	e.doc("runs/"+run.ID+"/run.json", run)
	e.doc("runs/"+run.ID+"/steps.json", recs)
	e.doc("runs/"+run.ID+"/journal.json", journal)
}

// openCopy copies a state file into dir and opens the copy: the original
// is never written. The copy is taken under a shared lock, which waits for
// no one and keeps a writer out while it is read; held says a writer (a
// running upgrader) had the file, which is then copied as it is.
func openCopy(from, dir string) (db *state.DB, held bool, err error) {
	f, err := os.Open(from)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		held = true
	} else {
		defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, held, err
	}
	out, err := os.OpenFile(filepath.Join(dir, state.FileName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, held, err
	}
	_, err = io.Copy(out, f)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, held, err
	}
	db, err = state.Open(dir, time.Second)
	return db, held, err
}

func present(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
