package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// SnapshotName is the copy of the state taken at the moments a restored
// state must not forget, beside the state file. It is what an operator
// restores when the state file is damaged (RestoreSnapshot).
const SnapshotName = FileName + ".snapshot"

// worthSnapshot says whether an update is one of those moments: the run's
// end, or a copy asked for (the intent of an irreversible step, values a
// step saved such as a job's key or a boot id); CreateRun and ImportRun
// take one too. A completed step is not: after a restore it is probed
// again and found in place (every step is idempotent), which costs a
// probe once, where a copy of the whole state after each step cost every
// run a third durable write per step.
func worthSnapshot(u orchestrator.Update) bool {
	return u.Snapshot || u.Run.State.Terminal()
}

// snapshotAfter writes a snapshot once a commit has succeeded (err is
// its result). A snapshot that cannot be written is a warning, not a
// failure: the commit it copies is already durable.
func (d *DB) snapshotAfter(err error) error {
	if err != nil {
		return err
	}
	if serr := d.snapshot(); serr != nil && d.Warn != nil {
		d.Warn(fmt.Errorf("state snapshot not written (the state itself is saved): %w", serr))
	}
	return nil
}

// snapshot copies the committed state to SnapshotName: written whole to
// a temporary file, fsynced, then renamed.
func (d *DB) snapshot() error {
	dir := filepath.Dir(d.path)
	final := filepath.Join(dir, SnapshotName)
	tmp := final + ".tmp"
	f, err := createFresh(tmp)
	if err != nil {
		return err
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	// A rename replaces whatever is at final (a symlink included) without
	// following it. The directory is fsynced: the snapshot is the durable
	// evidence that a commit (an irreversible step's intent) was
	// acknowledged, which keeps Open from falling back past it
	// (fallback.go).
	d.failpoint("before-snapshot")
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	d.failpoint("after-snapshot")
	return syncDir(dir)
}

// whatToDo is the advice given with a damaged state file.
func whatToDo(dir string) string {
	snap := filepath.Join(dir, SnapshotName)
	if st, err := os.Lstat(snap); err == nil && st.Mode().IsRegular() {
		return fmt.Sprintf("a copy taken at the run's last milestone (its start, an irreversible step's intent, a value a step saved, its end) is in %s: 'upgrader restore-state' puts it in place (the damaged file is kept beside it), then 'upgrader resume' re-checks every step after it", snap)
	}
	return "do not delete it: move it aside for support, and tell support the run was in progress"
}

// Restored says what RestoreSnapshot put back.
type Restored struct {
	Damaged  string    // where the damaged file was moved
	Taken    time.Time // when the snapshot was written
	Run      string    // the latest run in it, if any
	LastStep string    // that run's last completed step, if any
}

// ErrHealthy means there is nothing to restore: the state file opens.
var ErrHealthy = errors.New("the state file is not damaged")

// RestoreSnapshot replaces a damaged state file in dir with the snapshot
// beside it. It refuses when the state file is healthy, locked, of
// another schema, or when the snapshot is damaged too. The damaged file
// is renamed, never deleted. Nothing is opened through a symlink.
func RestoreSnapshot(dir string, now time.Time) (Restored, error) {
	var res Restored
	if err := checkDir(dir, false); err != nil {
		return res, err
	}
	path := filepath.Join(dir, FileName)
	snap, err := securefs.OpenFile(filepath.Join(dir, SnapshotName), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return res, fmt.Errorf("no snapshot to restore: %w", err)
	}
	defer snap.Close()
	st, err := snap.Stat()
	if err != nil {
		return res, err
	}
	res.Taken = st.ModTime().UTC()
	// Hold the damaged file's lock (bbolt's own flock) so that no upgrader
	// opens it while it is checked and replaced.
	lockFile, err := securefs.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return res, err
	default:
		defer lockFile.Close()
		if err := unix.Flock(int(lockFile.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			return res, fmt.Errorf("%w: %s is locked; stop the other upgrader first", ErrLocked, path)
		}
		switch err := probeFile(lockFile, path); {
		case err == nil:
			return res, fmt.Errorf("%w: %s opens and checks whole; nothing to restore", ErrHealthy, path)
		case !errors.Is(err, ErrCorrupt):
			return res, err
		}
	}
	// The snapshot is checked as a copy, so that what is checked is what
	// is put in place.
	tmp := path + ".restore"
	if err := copyDurably(snap, tmp); err != nil {
		return res, err
	}
	check, err := open(tmp, time.Second, true)
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("the snapshot is damaged too: %w", err)
	}
	res.Run, res.LastStep = check.lastCompleted()
	check.Close()
	if lockFile != nil {
		res.Damaged = freeName(fmt.Sprintf("%s.damaged-%s", path, now.UTC().Format("20060102T150405Z")))
		if err := os.Rename(path, res.Damaged); err != nil {
			os.Remove(tmp)
			return res, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return res, err
	}
	return res, syncDir(dir)
}

// freeName returns name, or name-2, name-3, … if something is there: a
// damaged file kept earlier is never replaced.
func freeName(name string) string {
	for i, n := 2, name; ; i, n = i+1, fmt.Sprintf("%s-%d", name, i) {
		if _, err := os.Lstat(n); errors.Is(err, fs.ErrNotExist) {
			return n
		}
	}
}

// probeFile checks whether the state file f (at path, locked by the
// caller) is whole, on a copy: bbolt's shared lock on f itself would
// replace the caller's exclusive one.
func probeFile(f *os.File, path string) error {
	cp := path + ".probe"
	if err := copyDurably(f, cp); err != nil {
		return err
	}
	defer os.Remove(cp)
	d, err := open(cp, time.Second, true)
	if err != nil {
		return err
	}
	return d.Close()
}

// lastCompleted names the latest run and its last completed step.
func (d *DB) lastCompleted() (run, step string) {
	id, err := d.LatestRun()
	if err != nil {
		return "", ""
	}
	_, recs, err := d.LoadRun(id)
	if err != nil {
		return id, ""
	}
	for _, r := range recs {
		if r.Status == orchestrator.StepDone || r.Status == orchestrator.StepSkipped {
			step = r.StepID
		}
	}
	return id, step
}

// copyDurably copies the whole of from into a new file to and fsyncs it.
func copyDurably(from *os.File, to string) error {
	f, err := createFresh(to)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.NewSectionReader(from, 0, math.MaxInt64))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(to)
	}
	return err
}
