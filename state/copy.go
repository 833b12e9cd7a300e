package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// RunRecord is one run as a support bundle carries it.
type RunRecord struct {
	Run     orchestrator.Run
	Steps   []orchestrator.StepRecord
	Journal []orchestrator.JournalEntry
}

// Copied is what ReadCopy read of a state directory.
type Copied struct {
	Runs []RunRecord
	// Current is the active run's plan, else the latest run's.
	Current *orchestrator.Plan
	// Notes say where the runs came from and what could not be read.
	Notes []string
	// Damaged is the path of a copy of a state file that does not open,
	// to be shipped as it is; "" when there is none.
	Damaged string
}

// ReadCopy reads every run of the state in dir without ever writing it: a
// copy of the state file is opened, or of its snapshot when a running
// upgrader holds the file or the file is damaged. What cannot be read is
// noted, never fatal. cleanup removes the copies (call it once Damaged has
// been shipped).
func ReadCopy(dir string) (c Copied, cleanup func()) {
	cleanup = func() {}
	note := func(format string, a ...any) { c.Notes = append(c.Notes, fmt.Sprintf(format, a...)) }
	stateFile := filepath.Join(dir, FileName)
	switch _, err := os.Lstat(stateFile); {
	case errors.Is(err, fs.ErrNotExist):
		note("no state yet: %s does not exist (no run was made with this state directory)", stateFile)
		return c, cleanup
	case err != nil:
		note("state %s: %v", stateFile, err)
		return c, cleanup
	}
	tmp, err := os.MkdirTemp("", "upgrader-bundle-state-")
	if err != nil {
		note("state not read: %v", err)
		return c, cleanup
	}
	cleanup = func() { os.RemoveAll(tmp) }
	snapshot := filepath.Join(dir, SnapshotName)
	db, held, err := openCopy(stateFile, filepath.Join(tmp, "state"))
	switch {
	case held && present(snapshot):
		note("the state file is held by a running upgrader: runs read from its snapshot %s, taken at the active run's last milestone (its start, an irreversible step's intent, a saved value): steps finished since show as they were then", snapshot)
		if db != nil {
			db.Close()
		}
		db, _, err = openCopy(snapshot, filepath.Join(tmp, "snapshot"))
	case held:
		note("the state file is held by a running upgrader and has no snapshot: read as it was, its last commit may be missing")
	case err != nil:
		note("state %s cannot be read (left as it is; a copy is upgrader/state.db): %v", stateFile, err)
		c.Damaged = filepath.Join(tmp, "state", FileName)
		if present(snapshot) {
			note("runs read from the snapshot %s, taken at the active run's last milestone", snapshot)
			db, _, err = openCopy(snapshot, filepath.Join(tmp, "snapshot"))
		}
	}
	if err != nil {
		note("no runs read: %v", err)
		return c, cleanup
	}
	defer db.Close()
	if db.Recovered != "" {
		note("state opened at the commit before its last: %s", db.Recovered)
	}
	ids, err := db.Runs()
	if err != nil {
		note("runs not listed: %v", err)
	}
	// Archived runs are read where they are: each is a file of its own,
	// written once and never changed.
	ids = mergeIDs(ids, archivedIDs(dir))
	for _, id := range ids {
		run, recs, err := loadAny(db, dir, id)
		if err != nil {
			note("run %s: %v", id, err)
			continue
		}
		journal, err := db.Journal(id, 0)
		if errors.Is(err, orchestrator.ErrRunNotFound) {
			var r RunRecord
			r, err = readArchived(dir, id)
			journal = r.Journal
		}
		if err != nil {
			note("journal of run %s: %v", id, err)
		}
		c.Runs = append(c.Runs, RunRecord{Run: run, Steps: recs, Journal: journal})
	}
	id, err := db.ActiveRun()
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		id, err = db.LatestRun()
	}
	if err != nil {
		note("no run in the state yet")
	} else if run, _, err := db.LoadRun(id); err == nil {
		c.Current = &run.Plan
	}
	return c, cleanup
}

// openCopy copies a state file into dir and opens the copy: the original
// is never written. The copy is taken under a shared lock, which waits for
// no one and keeps a writer out while it is read; held says a writer (a
// running upgrader) had the file, which is then copied as it is.
func openCopy(from, dir string) (db *DB, held bool, err error) {
	f, err := securefs.OpenFile(from, os.O_RDONLY|syscall.O_NONBLOCK, 0)
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
	out, err := securefs.CreateExclusive(filepath.Join(dir, FileName), 0o600)
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
	db, err = Open(dir, time.Second)
	return db, held, err
}

func present(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// loadAny loads run id from db (a copy of the state file), else from the
// archive of the state directory dir.
func loadAny(db *DB, dir, id string) (orchestrator.Run, []orchestrator.StepRecord, error) {
	run, recs, err := db.LoadRun(id)
	if errors.Is(err, orchestrator.ErrRunNotFound) {
		r, aerr := readArchived(dir, id)
		return r.Run, r.Steps, aerr
	}
	return run, recs, err
}
