package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// Every value upgrader stores ends with a CRC-32C of the bytes before it:
// bbolt checksums its meta pages only, so a flipped bit in a step record
// would otherwise be read back as a different, valid-looking record.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

func seal(v []byte) []byte {
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, crcTable))
}

func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, errors.New("record too short")
	}
	body, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errors.New("record checksum mismatch")
	}
	return body, nil
}

// putJSON stores v as sealed JSON.
func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, seal(data))
}

// getJSON reads a sealed JSON value into v; what names it in errors.
func getJSON(raw []byte, v any, what string) error {
	body, err := unseal(raw)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
	}
	return nil
}

// The layout of a bbolt meta page (go.etcd.io/bbolt/internal/common.Meta
// after the 16-byte page header), read here because bbolt silently falls
// back to the older meta page when the newer one fails its checksum: that
// would quietly undo the last recorded step.
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	pageHeader    = 16
	metaSumOffset = 56 // magic, version, pageSize, flags (4 each), root (16), freelist, pgid, txid (8 each)
)

// checkMetaPages proves both meta pages of the file at path are intact and
// that the file holds every page they count. A file too short to hold
// them is damaged unless it is empty (a brand new file is handled by the
// caller).
func checkMetaPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pageSize := int64(os.Getpagesize())
	buf := make([]byte, 2*pageSize)
	if _, err := io.ReadFull(f, buf); err != nil {
		return fmt.Errorf("%w: %s is %d bytes, too short for a state file", ErrCorrupt, path, st.Size())
	}
	var highWater uint64
	for i := range 2 {
		m := buf[int64(i)*pageSize+pageHeader:]
		le := binary.LittleEndian
		magic, version, size := le.Uint32(m[0:]), le.Uint32(m[4:]), le.Uint32(m[8:])
		pgid, sum := le.Uint64(m[40:]), le.Uint64(m[metaSumOffset:])
		h := fnv.New64a()
		h.Write(m[:metaSumOffset])
		switch {
		case magic != boltMagic || version != boltVersion:
			return fmt.Errorf("%w: %s: meta page %d is not a bbolt meta page", ErrCorrupt, path, i)
		case h.Sum64() != sum:
			return fmt.Errorf("%w: %s: meta page %d fails its checksum", ErrCorrupt, path, i)
		case int64(size) != pageSize:
			return fmt.Errorf("%w: %s: meta page %d says pages are %d bytes, not %d", ErrCorrupt, path, i, size, pageSize)
		}
		highWater = max(highWater, pgid)
	}
	if need := int64(highWater) * pageSize; st.Size() < need {
		return fmt.Errorf("%w: %s is %d bytes, its pages need %d: the file was cut short", ErrCorrupt, path, st.Size(), need)
	}
	return nil
}

// verify proves the whole file is readable and consistent before anything
// trusts it: bbolt's own page check, then every record's checksum and the
// links between runs, plans, step records, journals and the meta keys. A
// panic inside bbolt on a damaged page is reported as damage.
func (d *DB) verify() (err error) {
	// A damaged page can point bbolt outside the mapped file.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: unreadable page: %v", ErrCorrupt, d.path, r)
		}
	}()
	err = d.db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			if err == nil {
				err = fmt.Errorf("%w: %s: %v", ErrCorrupt, d.path, cerr)
			}
		}
		if err != nil {
			return err
		}
		return d.verifyRecords(tx)
	})
	switch {
	case err == nil, errors.Is(err, ErrSchema):
	case !errors.Is(err, ErrCorrupt):
		err = fmt.Errorf("%w: %s: %v", ErrCorrupt, d.path, err)
	case !strings.Contains(err.Error(), d.path):
		err = fmt.Errorf("%w (%s)", err, d.path)
	}
	return err
}

var topBuckets = [][]byte{bucketMeta, bucketRuns, bucketPlans, bucketSteps, bucketJournal}

func (d *DB) verifyRecords(tx *bolt.Tx) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, d.path, fmt.Sprintf(format, args...))
	}
	// A file with no buckets is new; one with some must have all of them,
	// or a lost bucket would be re-created empty: a silent fresh start.
	var names [][]byte
	if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		if b.Sequence() != 0 && !bytes.Equal(name, bucketJournal) {
			return corrupt("bucket %q has a sequence", name)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	if len(names) != len(topBuckets) {
		return corrupt("%d top-level buckets, want %d", len(names), len(topBuckets))
	}
	for _, want := range topBuckets {
		if tx.Bucket(want) == nil {
			return corrupt("bucket %q is missing", want)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.ForEach(func(k, v []byte) error {
		switch {
		case v == nil:
			return corrupt("meta holds a bucket %q", k)
		case bytes.Equal(k, keySchema), bytes.Equal(k, keyActive), bytes.Equal(k, keyLatest):
			return nil
		}
		return corrupt("meta holds an unknown key %q", k)
	}); err != nil {
		return err
	}
	if err := d.checkSchema(meta); err != nil {
		return err
	}

	runs := map[string]orchestrator.Run{}
	if err := tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
		var run orchestrator.Run
		if v == nil {
			return corrupt("runs holds a bucket %q", k)
		}
		if err := getJSON(v, &run, "run "+string(k)); err != nil {
			return err
		}
		if run.ID != string(k) {
			return corrupt("run record %q is filed under %q", run.ID, k)
		}
		runs[run.ID] = run
		return nil
	}); err != nil {
		return err
	}
	var open []string
	for id, run := range runs {
		if _, _, err := loadRun(tx, id); err != nil {
			return err
		}
		if err := checkJournal(tx, id); err != nil {
			return err
		}
		if !run.State.Terminal() {
			open = append(open, id)
		}
	}
	// Every plan, step bucket and journal belongs to a run (and every run
	// has all three: loadRun and checkJournal).
	for _, name := range [][]byte{bucketPlans, bucketSteps, bucketJournal} {
		if err := tx.Bucket(name).ForEach(func(k, _ []byte) error {
			if _, ok := runs[string(k)]; !ok {
				return corrupt("%s holds %q, which is not a run", name, k)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	active, latest := string(meta.Get(keyActive)), string(meta.Get(keyLatest))
	switch {
	case len(open) > 1:
		return corrupt("runs %v are all unfinished", open)
	case len(open) == 1 && active != open[0]:
		return corrupt("run %s is unfinished but not the active run (%q)", open[0], active)
	case len(open) == 0 && active != "":
		return corrupt("the active run %q is not an unfinished run", active)
	case len(runs) > 0 && runs[latest].ID == "":
		return corrupt("the latest run %q is not in the file", latest)
	case len(runs) == 0 && latest != "":
		return corrupt("the latest run %q is not in the file", latest)
	}
	return nil
}

// checkSchema refuses a file of another layout. A schema stored without a
// checksum is from upgrader's first layout.
func (d *DB) checkSchema(meta *bolt.Bucket) error {
	v := meta.Get(keySchema)
	if v == nil {
		return fmt.Errorf("%w: %s has no schema version", ErrCorrupt, d.path)
	}
	body, err := unseal(v)
	if err != nil {
		if n, nerr := strconv.Atoi(string(v)); nerr == nil {
			return fmt.Errorf("%w: %s has schema %d, this upgrader reads %d; use the upgrader that wrote it", ErrSchema, d.path, n, SchemaVersion)
		}
		return fmt.Errorf("%w: %s: schema: %v", ErrCorrupt, d.path, err)
	}
	n, err := strconv.Atoi(string(body))
	if err != nil {
		return fmt.Errorf("%w: %s: schema %q is not a number", ErrCorrupt, d.path, body)
	}
	if n != SchemaVersion {
		return fmt.Errorf("%w: %s has schema %d, this upgrader reads %d; use the upgrader that wrote it", ErrSchema, d.path, n, SchemaVersion)
	}
	return nil
}

// checkJournal proves a run's journal entries are filed under their own
// sequence numbers, in order, and that the bucket's sequence is the last.
func checkJournal(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketJournal).Bucket([]byte(id))
	if b == nil {
		return fmt.Errorf("%w: run %s has no journal", ErrCorrupt, id)
	}
	var last uint64
	err := b.ForEach(func(k, v []byte) error {
		var j orchestrator.JournalEntry
		if v == nil {
			return fmt.Errorf("%w: journal %s holds a bucket", ErrCorrupt, id)
		}
		if err := getJSON(v, &j, fmt.Sprintf("journal %s entry %x", id, k)); err != nil {
			return err
		}
		if !bytes.Equal(k, indexKey(j.Seq)) || j.Seq <= last || j.RunID != id {
			return fmt.Errorf("%w: journal %s entry %d is filed under %x", ErrCorrupt, id, j.Seq, k)
		}
		last = j.Seq
		return nil
	})
	if err == nil && b.Sequence() != last {
		err = fmt.Errorf("%w: journal %s ends at %d, its sequence says %d", ErrCorrupt, id, last, b.Sequence())
	}
	return err
}
