package state

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// toSchema2 rewrites a state file in schema 2's layout, as an earlier
// upgrader left it: each run's step records in steps/<id> and its journal
// in journal/<id>, both keyed by the bare number.
func toSchema2(t *testing.T, path string) {
	t.Helper()
	boltUpdate(t, path, func(tx *bolt.Tx) error {
		steps, err := tx.CreateBucket(legacySteps)
		if err != nil {
			return err
		}
		journal, err := tx.CreateBucket(legacyJournal)
		if err != nil {
			return err
		}
		var names [][]byte
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if bytes.HasPrefix(name, []byte(runPrefix)) {
				names = append(names, bytes.Clone(name))
			}
			return nil
		})
		for _, name := range names {
			id := bytes.TrimPrefix(name, []byte(runPrefix))
			rb := tx.Bucket(name)
			sb, err := steps.CreateBucket(id)
			if err != nil {
				return err
			}
			jb, err := journal.CreateBucket(id)
			if err != nil {
				return err
			}
			if err := jb.SetSequence(rb.Sequence()); err != nil {
				return err
			}
			if err := rb.ForEach(func(k, v []byte) error {
				to := sb
				if k[0] == prefixJournal {
					to = jb
				}
				return to.Put(bytes.Clone(k[1:]), bytes.Clone(v))
			}); err != nil {
				return err
			}
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, seal([]byte("2")))
	})
}

func TestSchema2IsConverted(t *testing.T) {
	// An earlier upgrader's state with a run in progress carries on: the
	// first open that may write converts it in one commit, records,
	// journal and sequence unchanged; a read-only open says what to do.
	dir := t.TempDir()
	d := openDB(t, dir)
	withJournal := func(u orchestrator.Update, texts ...string) orchestrator.Update {
		u.Journal = journalEntries("r1", texts...)
		return u
	}
	mustCreate(t, d, withJournal(newUpdate("r1", orchestrator.StateRunning, "a", "b", "c"), "created", "consent"))
	mustCommit(t, d, withJournal(newUpdate("r1", orchestrator.StateRunning, "a", "b", "c"), "a done"))
	run, recs, err := d.LoadRun("r1")
	if err != nil {
		t.Fatal(err)
	}
	journal, err := d.Journal("r1", 0)
	if err != nil || len(journal) != 3 {
		t.Fatalf("journal before: %v (%v)", journal, err)
	}
	d.Close()
	path := filepath.Join(dir, FileName)
	toSchema2(t, path)

	if _, err := open(path, lockTimeout, true); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), "converts it") {
		t.Fatalf("read-only open of schema 2: %v, want ErrSchema saying it is converted when opened to write", err)
	}
	d, err = Open(dir, lockTimeout)
	if err != nil {
		t.Fatalf("Open of a schema-2 file: %v", err)
	}
	defer d.Close()
	gotRun, gotRecs, err := d.LoadRun("r1")
	if err != nil || !reflect.DeepEqual(gotRun, run) || !reflect.DeepEqual(gotRecs, recs) {
		t.Fatalf("after the conversion LoadRun = %+v %+v (%v), want the run as it was", gotRun, gotRecs, err)
	}
	if got, err := d.Journal("r1", 0); err != nil || !reflect.DeepEqual(got, journal) {
		t.Fatalf("after the conversion the journal is %v (%v), want it as it was", got, err)
	}
	if id, err := d.ActiveRun(); err != nil || id != "r1" {
		t.Errorf("ActiveRun after the conversion = %q, %v", id, err)
	}
	// The run goes on: the next entry follows the last.
	mustCommit(t, d, withJournal(newUpdate("r1", orchestrator.StateCompleted, "a", "b", "c"), "complete"))
	got, err := d.Journal("r1", 0)
	if err != nil || len(got) != len(journal)+1 || got[len(got)-1].Seq != uint64(len(journal)+1) {
		t.Fatalf("journal after a commit: %d entries (%v), want %d, the last numbered %d", len(got), err, len(journal)+1, len(journal)+1)
	}
	d.db.View(func(tx *bolt.Tx) error {
		if s := storedSchema(tx); s != SchemaVersion || tx.Bucket(legacySteps) != nil || tx.Bucket(legacyJournal) != nil {
			t.Errorf("after the conversion: schema %d, schema 2's buckets left: %v", s, tx.Bucket(legacySteps) != nil)
		}
		return nil
	})
}

func TestSchema2DamagedIsRefused(t *testing.T) {
	// A schema-2 file with a damaged record is converted as it is and then
	// refused by the whole check, as damage: nothing passes unchecked.
	dir := t.TempDir()
	d := openDB(t, dir)
	mustCreate(t, d, newUpdate("r1", orchestrator.StateRunning, "a", "b"))
	d.Close()
	path := filepath.Join(dir, FileName)
	toSchema2(t, path)
	boltUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(legacySteps).Bucket([]byte("r1")).Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte("{garbage"))
	})
	_, err := Open(dir, lockTimeout)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged schema-2 file: %v, want ErrCorrupt", err)
	}
}
