// Package state persists runs, step records and the journal in a bbolt file
// with fsync on every commit. Nothing else in upgrader imports bbolt. It
// keeps every file of the state directory (the state file, its snapshot,
// upgrader.log) in a directory only root can change, and opens none of
// them through a symlink (file.go).
package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// SchemaVersion is the layout this binary reads and writes. Schema 2
// seals every value with a checksum (integrity.go); schema 3 keeps each
// run's step records and journal in one bucket (layout.go) and converts a
// schema-2 file when it opens it to write.
const SchemaVersion = 3

// FileName is the state file inside the state directory.
const FileName = "state.db"

var (
	// ErrLocked means another upgrader process holds the state file.
	ErrLocked = errors.New("state is in use by another upgrader process")
	// ErrCorrupt means the state file cannot be read safely.
	ErrCorrupt = errors.New("state file is damaged")
	// ErrSchema means the file was written by a newer upgrader.
	ErrSchema = errors.New("state file has an unknown schema")
)

var (
	bucketMeta  = []byte("meta")
	bucketRuns  = []byte("runs")  // runs/<run id> → Run without its plan
	bucketPlans = []byte("plans") // plans/<run id> → Plan, written when it changes
	// run/<run id> → its step records and journal (layout.go)
	keySchema = []byte("schema")
	keyActive = []byte("active")
	keyLatest = []byte("latest")
)

// DB is the persisted state of one upgrader instance.
type DB struct {
	db   *bolt.DB
	path string
	// Failpoint, when set (crash tests only), is called before and after
	// every durable write: before-commit, after-commit, before-snapshot,
	// after-snapshot.
	Failpoint func(point string)
	// Warn, when set, hears about a snapshot that could not be written:
	// the state itself is committed, so the run goes on.
	Warn func(error)
	// Recovered says, when Open fell back to the older meta page (a torn
	// last commit) or found the older one damaged, what happened; "" for
	// an ordinary open. The journal of the latest run says it too.
	Recovered string
}

var _ orchestrator.Store = (*DB)(nil)

// Open opens (creating if needed) the state in dir. The directory must be
// root's alone (securefs.CheckDir): every file upgrader keeps there is
// trusted. It waits at most timeout for the file lock so that a second
// process fails fast. An existing file is checked whole, under the lock,
// before it is used: a damaged one is refused with ErrCorrupt, never
// started afresh.
func Open(dir string, timeout time.Duration) (*DB, error) {
	if err := checkDir(dir, true); err != nil {
		return nil, err
	}
	d, err := open(filepath.Join(dir, FileName), timeout, false)
	if errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w; %s", err, whatToDo(dir))
	}
	return d, err
}

// Path is the state file's path.
func (d *DB) Path() string { return d.path }

// Close releases the file and its lock.
func (d *DB) Close() error { return d.db.Close() }

// init writes the schema and buckets of a new file; verify has already
// proved an existing one has them all.
func (d *DB) init() error {
	fresh := false
	d.db.View(func(tx *bolt.Tx) error {
		fresh = tx.Bucket(bucketMeta) == nil
		return nil
	})
	if !fresh {
		return nil
	}
	// Not a step's commit: no failpoints, and the caller (create) says
	// what a full disk means here.
	return d.db.Update(func(tx *bolt.Tx) error {
		for _, b := range topBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, seal([]byte(strconv.Itoa(SchemaVersion))))
	})
}

// update commits fn in one fsynced transaction, between the failpoints of
// a durable write. bbolt rolls back a commit it could not write whole.
func (d *DB) update(fn func(tx *bolt.Tx) error) error {
	d.failpoint("before-commit")
	if err := d.db.Update(fn); err != nil {
		return fmt.Errorf("%w%s", err, spaceAdvice(err, filepath.Dir(d.path)))
	}
	d.failpoint("after-commit")
	return nil
}

func (d *DB) failpoint(point string) {
	if d.Failpoint != nil {
		d.Failpoint(point)
	}
}

// CreateRun stores a new run and makes it the active one.
func (d *DB) CreateRun(u orchestrator.Update) error {
	if err := orchestrator.ValidRunID(u.Run.ID); err != nil {
		return err
	}
	if _, err := readArchived(filepath.Dir(d.path), u.Run.ID); err == nil {
		return fmt.Errorf("run %s already exists (archived)", u.Run.ID)
	}
	finished := d.archiveFinished()
	return d.snapshotAfter(d.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if active := meta.Get(keyActive); active != nil {
			return fmt.Errorf("%w: run %s has not finished", orchestrator.ErrActiveRun, active)
		}
		if tx.Bucket(bucketRuns).Get([]byte(u.Run.ID)) != nil {
			return fmt.Errorf("run %s already exists", u.Run.ID)
		}
		if err := forget(tx, finished); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(runBucketName(u.Run.ID)); err != nil {
			return err
		}
		if err := meta.Put(keyLatest, []byte(u.Run.ID)); err != nil {
			return err
		}
		if err := putPlan(tx, u.Run); err != nil {
			return err
		}
		return apply(tx, u)
	}))
}

// ImportRun stores a run exported by another upgrader, keeping its
// journal's sequence numbers, and makes it the active run. The export is
// checked first (seal, run id, progress only on the exporting server's
// steps: RunExport.Check): the store never holds a file it would refuse.
func (d *DB) ImportRun(x orchestrator.RunExport) error {
	if err := x.Check(); err != nil {
		return err
	}
	if _, err := readArchived(filepath.Dir(d.path), x.Run.ID); err == nil {
		return fmt.Errorf("run %s is already in this state (archived)", x.Run.ID)
	}
	finished := d.archiveFinished()
	return d.snapshotAfter(d.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if active := meta.Get(keyActive); active != nil {
			return fmt.Errorf("%w: run %s has not finished here", orchestrator.ErrActiveRun, active)
		}
		id := []byte(x.Run.ID)
		if tx.Bucket(bucketRuns).Get(id) != nil {
			return fmt.Errorf("run %s is already in this state", x.Run.ID)
		}
		if err := forget(tx, finished); err != nil {
			return err
		}
		journal, err := tx.CreateBucket(runBucketName(x.Run.ID))
		if err != nil {
			return err
		}
		var last uint64
		for _, j := range x.Journal {
			last = max(last, j.Seq)
			if err := putJSON(journal, journalKey(j.Seq), j); err != nil {
				return err
			}
		}
		if err := journal.SetSequence(last); err != nil {
			return err
		}
		if err := meta.Put(keyLatest, id); err != nil {
			return err
		}
		if err := putPlan(tx, x.Run); err != nil {
			return err
		}
		return apply(tx, orchestrator.Update{Run: x.Run, Steps: x.Steps})
	}))
}

// Commit applies an update to an existing run in one transaction. An
// update that ends the run, or asks for it (worthSnapshot), is followed by a snapshot.
func (d *DB) Commit(u orchestrator.Update) error {
	err := d.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRuns).Get([]byte(u.Run.ID)) == nil {
			return fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, u.Run.ID)
		}
		return apply(tx, u)
	})
	if err != nil || !worthSnapshot(u) {
		return err
	}
	return d.snapshotAfter(nil)
}

// putPlan stores a run's plan. It is kept apart from the run record so
// that the commits of every step do not rewrite it.
func putPlan(tx *bolt.Tx, run orchestrator.Run) error {
	return putJSON(tx.Bucket(bucketPlans), []byte(run.ID), run.Plan)
}

func apply(tx *bolt.Tx, u orchestrator.Update) error {
	id := []byte(u.Run.ID)
	header := u.Run
	header.Plan = orchestrator.Plan{}
	if err := putJSON(tx.Bucket(bucketRuns), id, header); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if u.Run.State.Terminal() {
		if string(meta.Get(keyActive)) == u.Run.ID {
			if err := meta.Delete(keyActive); err != nil {
				return err
			}
		}
	} else if err := meta.Put(keyActive, id); err != nil {
		return err
	}
	b := runBucket(tx, u.Run.ID)
	if b == nil {
		return fmt.Errorf("%w: run %s has no bucket", ErrCorrupt, u.Run.ID)
	}
	if u.ReplaceSteps {
		if err := putPlan(tx, u.Run); err != nil {
			return err
		}
		if err := deleteSteps(b); err != nil {
			return err
		}
	}
	for _, r := range u.Steps {
		if err := putJSON(b, stepKey(r.Index), r); err != nil {
			return err
		}
	}
	for _, j := range u.Journal {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.Seq = seq
		if err := putJSON(b, journalKey(seq), j); err != nil {
			return err
		}
	}
	return nil
}

// ActiveRun returns the id of the run that is not over yet.
func (d *DB) ActiveRun() (string, error) { return d.metaRun(keyActive) }

// LatestRun returns the id of the newest run, over or not.
func (d *DB) LatestRun() (string, error) { return d.metaRun(keyLatest) }

func (d *DB) metaRun(key []byte) (string, error) {
	var id string
	err := d.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketMeta).Get(key))
		return nil
	})
	if err == nil && id == "" {
		err = orchestrator.ErrNoActiveRun
	}
	return id, err
}

// LoadRun returns a run and its step records in plan order.
func (d *DB) LoadRun(id string) (orchestrator.Run, []orchestrator.StepRecord, error) {
	var run orchestrator.Run
	var recs []orchestrator.StepRecord
	if err := orchestrator.ValidRunID(id); err != nil {
		return run, nil, err
	}
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		run, recs, err = loadRun(tx, id)
		return err
	})
	if errors.Is(err, orchestrator.ErrRunNotFound) {
		r, aerr := readArchived(filepath.Dir(d.path), id)
		if aerr == nil || !errors.Is(aerr, orchestrator.ErrRunNotFound) {
			return r.Run, r.Steps, aerr
		}
	}
	if err != nil {
		return run, nil, err
	}
	return run, recs, nil
}

func loadRun(tx *bolt.Tx, id string) (orchestrator.Run, []orchestrator.StepRecord, error) {
	var run orchestrator.Run
	var recs []orchestrator.StepRecord
	b := tx.Bucket(bucketRuns).Get([]byte(id))
	if b == nil {
		return run, nil, fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, id)
	}
	if err := getJSON(b, &run, "run "+id); err != nil {
		return run, nil, err
	}
	pb := tx.Bucket(bucketPlans).Get([]byte(id))
	if pb == nil {
		return run, nil, fmt.Errorf("%w: run %s has no plan", ErrCorrupt, id)
	}
	if err := getJSON(pb, &run.Plan, "plan of run "+id); err != nil {
		return run, nil, err
	}
	steps := runBucket(tx, id)
	if steps == nil {
		return run, nil, fmt.Errorf("%w: run %s has no step records", ErrCorrupt, id)
	}
	err := forEachPrefixed(steps, prefixStep, 0, func(n uint64, v []byte) error {
		var r orchestrator.StepRecord
		if err := getJSON(v, &r, fmt.Sprintf("run %s step %x", id, n)); err != nil {
			return err
		}
		if n != uint64(r.Index) {
			return fmt.Errorf("%w: run %s step record %d is filed under %x", ErrCorrupt, id, r.Index, n)
		}
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return run, nil, err
	}
	if len(recs) != len(run.Plan.Steps) {
		return run, nil, fmt.Errorf("%w: run %s has %d step records for %d planned steps", ErrCorrupt, id, len(recs), len(run.Plan.Steps))
	}
	for i, r := range recs {
		if r.Index != i || r.StepID != run.Plan.Steps[i].ID || r.RunID != id {
			return run, nil, fmt.Errorf("%w: run %s step record %d is %q, the plan says %q", ErrCorrupt, id, i, r.StepID, run.Plan.Steps[i].ID)
		}
	}
	return run, recs, nil
}

// Journal returns the run's journal entries with Seq > after, in order.
func (d *DB) Journal(runID string, after uint64) ([]orchestrator.JournalEntry, error) {
	var out []orchestrator.JournalEntry
	err := d.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = journalOf(tx, runID, after)
		return err
	})
	if errors.Is(err, orchestrator.ErrRunNotFound) && orchestrator.ValidRunID(runID) == nil {
		r, aerr := readArchived(filepath.Dir(d.path), runID)
		if aerr == nil || !errors.Is(aerr, orchestrator.ErrRunNotFound) {
			out = nil
			for _, j := range r.Journal {
				if j.Seq > after {
					out = append(out, j)
				}
			}
			return out, aerr
		}
	}
	return out, err
}

func journalOf(tx *bolt.Tx, runID string, after uint64) ([]orchestrator.JournalEntry, error) {
	var out []orchestrator.JournalEntry
	b := runBucket(tx, runID)
	if b == nil {
		return nil, fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, runID)
	}
	err := forEachPrefixed(b, prefixJournal, after+1, func(n uint64, v []byte) error {
		var j orchestrator.JournalEntry
		if err := getJSON(v, &j, fmt.Sprintf("journal %s entry %x", runID, n)); err != nil {
			return err
		}
		out = append(out, j)
		return nil
	})
	return out, err
}

// Runs lists every run id, archived ones included, oldest first (a run
// id begins with its creation time).
func (d *DB) Runs() ([]string, error) {
	var ids []string
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return mergeIDs(ids, archivedIDs(filepath.Dir(d.path))), err
}
