// Package state persists runs, step records and the journal in a bbolt file
// with fsync on every commit. Nothing else in upgrader imports bbolt.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"upgrader/orchestrator"
)

// SchemaVersion is the layout this binary reads and writes.
const SchemaVersion = 1

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
	bucketMeta    = []byte("meta")
	bucketRuns    = []byte("runs")    // runs/<run id> → Run without its plan
	bucketPlans   = []byte("plans")   // plans/<run id> → Plan, written when it changes
	bucketSteps   = []byte("steps")   // steps/<run id>/<index> → StepRecord
	bucketJournal = []byte("journal") // journal/<run id>/<seq> → JournalEntry
	keySchema     = []byte("schema")
	keyActive     = []byte("active")
	keyLatest     = []byte("latest")
)

// DB is the persisted state of one upgrader instance.
type DB struct {
	db   *bolt.DB
	path string
}

var _ orchestrator.Store = (*DB)(nil)

// Open opens (creating if needed) the state in dir. It waits at most
// timeout for the file lock so that a second process fails fast.
func Open(dir string, timeout time.Duration) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	const keep = "do not delete it: move it aside for support, and tell support the run was in progress"
	// bbolt initialises an empty file as a new database: an existing state
	// file that lost its content must stop here, not start afresh.
	existed := false
	if st, err := os.Stat(path); err == nil {
		if st.Size() == 0 {
			return nil, fmt.Errorf("%w: %s is empty; %s", ErrCorrupt, path, keep)
		}
		existed = true
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		var pathErr *fs.PathError
		var errno syscall.Errno
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s is locked; stop the other upgrader (or wait for it to finish) and try again", ErrLocked, path)
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch),
			// Any other refusal of an existing file that is not an OS
			// error is about its content (e.g. "file size too small").
			existed && !errors.As(err, &pathErr) && !errors.As(err, &errno):
			return nil, fmt.Errorf("%w: %s: %v; %s", ErrCorrupt, path, err, keep)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	d := &DB{db: db, path: path}
	if err := d.init(); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// Path is the state file's path.
func (d *DB) Path() string { return d.path }

// Close releases the file and its lock.
func (d *DB) Close() error { return d.db.Close() }

func (d *DB) init() error {
	return d.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keySchema); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("%w: %s: schema %q is not a number", ErrCorrupt, d.path, v)
			}
			if n != SchemaVersion {
				return fmt.Errorf("%w: %s has schema %d, this upgrader reads %d; use the upgrader that wrote it", ErrSchema, d.path, n, SchemaVersion)
			}
		} else if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketRuns, bucketPlans, bucketSteps, bucketJournal} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func indexKey(i uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, i)
	return k
}

// CreateRun stores a new run and makes it the active one.
func (d *DB) CreateRun(u orchestrator.Update) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if active := meta.Get(keyActive); active != nil {
			return fmt.Errorf("%w: run %s has not finished", orchestrator.ErrActiveRun, active)
		}
		if tx.Bucket(bucketRuns).Get([]byte(u.Run.ID)) != nil {
			return fmt.Errorf("run %s already exists", u.Run.ID)
		}
		if _, err := tx.Bucket(bucketSteps).CreateBucket([]byte(u.Run.ID)); err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketJournal).CreateBucket([]byte(u.Run.ID)); err != nil {
			return err
		}
		if err := meta.Put(keyLatest, []byte(u.Run.ID)); err != nil {
			return err
		}
		if err := putPlan(tx, u.Run); err != nil {
			return err
		}
		return apply(tx, u)
	})
}

// ImportRun stores a run exported by another upgrader, keeping its
// journal's sequence numbers, and makes it the active run.
func (d *DB) ImportRun(x orchestrator.RunExport) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if active := meta.Get(keyActive); active != nil {
			return fmt.Errorf("%w: run %s has not finished here", orchestrator.ErrActiveRun, active)
		}
		id := []byte(x.Run.ID)
		if tx.Bucket(bucketRuns).Get(id) != nil {
			return fmt.Errorf("run %s is already in this state", x.Run.ID)
		}
		if _, err := tx.Bucket(bucketSteps).CreateBucket(id); err != nil {
			return err
		}
		journal, err := tx.Bucket(bucketJournal).CreateBucket(id)
		if err != nil {
			return err
		}
		var last uint64
		for _, j := range x.Journal {
			last = max(last, j.Seq)
			b, err := json.Marshal(j)
			if err != nil {
				return err
			}
			if err := journal.Put(indexKey(j.Seq), b); err != nil {
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
	})
}

// Commit applies an update to an existing run in one transaction.
func (d *DB) Commit(u orchestrator.Update) error {
	return d.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRuns).Get([]byte(u.Run.ID)) == nil {
			return fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, u.Run.ID)
		}
		return apply(tx, u)
	})
}

// putPlan stores a run's plan. It is kept apart from the run record so
// that the commits of every step do not rewrite it.
func putPlan(tx *bolt.Tx, run orchestrator.Run) error {
	b, err := json.Marshal(run.Plan)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketPlans).Put([]byte(run.ID), b)
}

func apply(tx *bolt.Tx, u orchestrator.Update) error {
	id := []byte(u.Run.ID)
	header := u.Run
	header.Plan = orchestrator.Plan{}
	b, err := json.Marshal(header)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketRuns).Put(id, b); err != nil {
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
	if u.ReplaceSteps {
		if err := putPlan(tx, u.Run); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSteps).DeleteBucket(id); err != nil {
			return err
		}
		if _, err := tx.Bucket(bucketSteps).CreateBucket(id); err != nil {
			return err
		}
	}
	steps := tx.Bucket(bucketSteps).Bucket(id)
	for _, r := range u.Steps {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := steps.Put(indexKey(uint64(r.Index)), b); err != nil {
			return err
		}
	}
	journal := tx.Bucket(bucketJournal).Bucket(id)
	for _, j := range u.Journal {
		seq, err := journal.NextSequence()
		if err != nil {
			return err
		}
		j.Seq = seq
		b, err := json.Marshal(j)
		if err != nil {
			return err
		}
		if err := journal.Put(indexKey(seq), b); err != nil {
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
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Get([]byte(id))
		if b == nil {
			return fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, id)
		}
		if err := json.Unmarshal(b, &run); err != nil {
			return fmt.Errorf("%w: run %s: %v", ErrCorrupt, id, err)
		}
		pb := tx.Bucket(bucketPlans).Get([]byte(id))
		if pb == nil {
			return fmt.Errorf("%w: run %s has no plan", ErrCorrupt, id)
		}
		if err := json.Unmarshal(pb, &run.Plan); err != nil {
			return fmt.Errorf("%w: plan of run %s: %v", ErrCorrupt, id, err)
		}
		steps := tx.Bucket(bucketSteps).Bucket([]byte(id))
		if steps == nil {
			return fmt.Errorf("%w: run %s has no step records", ErrCorrupt, id)
		}
		return steps.ForEach(func(k, v []byte) error {
			var r orchestrator.StepRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: run %s step %x: %v", ErrCorrupt, id, k, err)
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		return run, nil, err
	}
	if len(recs) != len(run.Plan.Steps) {
		return run, nil, fmt.Errorf("%w: run %s has %d step records for %d planned steps", ErrCorrupt, id, len(recs), len(run.Plan.Steps))
	}
	for i, r := range recs {
		if r.Index != i || r.StepID != run.Plan.Steps[i].ID {
			return run, nil, fmt.Errorf("%w: run %s step record %d is %q, the plan says %q", ErrCorrupt, id, i, r.StepID, run.Plan.Steps[i].ID)
		}
	}
	return run, recs, nil
}

// Journal returns the run's journal entries with Seq > after, in order.
func (d *DB) Journal(runID string, after uint64) ([]orchestrator.JournalEntry, error) {
	var out []orchestrator.JournalEntry
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJournal).Bucket([]byte(runID))
		if b == nil {
			return fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, runID)
		}
		c := b.Cursor()
		for k, v := c.Seek(indexKey(after + 1)); k != nil; k, v = c.Next() {
			var j orchestrator.JournalEntry
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("%w: journal %s entry %x: %v", ErrCorrupt, runID, k, err)
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// Runs lists every run id, oldest first.
func (d *DB) Runs() ([]string, error) {
	var ids []string
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	return ids, err
}
