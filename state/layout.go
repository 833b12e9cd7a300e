package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Schema 3 keeps each run's step records and journal together in one
// top-level bucket of its own, run/<id>: 's'+index → StepRecord and
// 'j'+seq → JournalEntry, the bucket's sequence the journal's last. A
// step's commit then rewrites the root page, that bucket's branch page and
// the leaves it changes — four pages — where schema 2's nested
// steps/<id> and journal/<id> buckets made it rewrite seven (their parents
// and branches too); each page is written and fdatasync'd with the commit.

const (
	prefixStep    = 's'
	prefixJournal = 'j'
	runPrefix     = "run/"
)

// errSchema2 marks a file of schema 2, which a writer converts.
var errSchema2 = errors.New("schema 2")

// Schema 2's buckets, read only to convert a file to schema 3.
var (
	legacySteps   = []byte("steps")   // steps/<run id>/<index> → StepRecord
	legacyJournal = []byte("journal") // journal/<run id>/<seq> → JournalEntry
)

func runBucketName(id string) []byte { return append([]byte(runPrefix), id...) }

func runBucket(tx *bolt.Tx, id string) *bolt.Bucket { return tx.Bucket(runBucketName(id)) }

func stepKey(i int) []byte { return prefixed(prefixStep, uint64(i)) }

func journalKey(seq uint64) []byte { return prefixed(prefixJournal, seq) }

func prefixed(p byte, n uint64) []byte {
	k := make([]byte, 9)
	k[0] = p
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

// forEachPrefixed calls fn, in key order, for every value of b under
// prefix p from number from on, with that number.
func forEachPrefixed(b *bolt.Bucket, p byte, from uint64, fn func(n uint64, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefixed(p, from)); k != nil && k[0] == p; k, v = c.Next() {
		if len(k) != 9 || v == nil {
			return fmt.Errorf("%w: a run's bucket holds %x, which is neither a step record nor a journal entry", ErrCorrupt, k)
		}
		if err := fn(binary.BigEndian.Uint64(k[1:]), v); err != nil {
			return err
		}
	}
	return nil
}

// deleteSteps removes every step record of a run's bucket (a replan
// writes them afresh).
func deleteSteps(b *bolt.Bucket) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte{prefixStep}); k != nil && k[0] == prefixStep; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// storedSchema reads the schema a file says it has (0 if none).
func storedSchema(tx *bolt.Tx) int {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0
	}
	body, err := unseal(meta.Get(keySchema))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(string(body))
	return n
}

// convertFromSchema2 rewrites a schema-2 file as schema 3 in one
// transaction: an earlier upgrader's state, even one with a run in
// progress, carries on. The file is checked page by page first, and whole
// (verify) after; values are copied as they are, seals included.
func (d *DB) convertFromSchema2() error {
	schema := 0
	d.db.View(func(tx *bolt.Tx) error { schema = storedSchema(tx); return nil })
	if schema != 2 {
		return nil
	}
	if err := d.checkPages(); err != nil {
		return err
	}
	return d.db.Update(func(tx *bolt.Tx) error {
		steps, journal := tx.Bucket(legacySteps), tx.Bucket(legacyJournal)
		if steps == nil || journal == nil {
			return fmt.Errorf("%w: %s: schema 2 without its steps and journal buckets", ErrCorrupt, d.path)
		}
		copyRun := func(parent *bolt.Bucket, id []byte, p byte) error {
			what := map[byte]string{prefixStep: "steps", prefixJournal: "journal"}[p]
			old := parent.Bucket(id)
			if old == nil {
				return fmt.Errorf("%w: %s: schema 2's %s holds a value %q", ErrCorrupt, d.path, what, id)
			}
			nb, err := tx.CreateBucketIfNotExists(runBucketName(string(id)))
			if err != nil {
				return err
			}
			if p == prefixJournal {
				if err := nb.SetSequence(old.Sequence()); err != nil {
					return err
				}
			}
			return old.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("%w: %s: run %s holds a bucket", ErrCorrupt, d.path, id)
				}
				return nb.Put(append([]byte{p}, k...), bytes.Clone(v))
			})
		}
		for _, from := range []struct {
			b *bolt.Bucket
			p byte
		}{{steps, prefixStep}, {journal, prefixJournal}} {
			var ids [][]byte
			from.b.ForEach(func(k, _ []byte) error { ids = append(ids, bytes.Clone(k)); return nil })
			for _, id := range ids {
				if err := copyRun(from.b, id, from.p); err != nil {
					return err
				}
			}
		}
		for _, name := range [][]byte{legacySteps, legacyJournal} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, seal([]byte(strconv.Itoa(SchemaVersion))))
	})
}
