package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"slices"
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

// bbolt page and element layout (go.etcd.io/bbolt/internal/common).
const (
	pageBranch   = 0x01
	pageLeaf     = 0x02
	pageFreelist = 0x10
	elemSize     = 16 // a leaf element (flags, pos, ksize, vsize) or a branch one (pos, ksize, pgid)
	leafBucket   = 0x01
)

// checkPages proves, on the file's bytes, that the tree of the current
// meta page (root) is one bbolt can walk without leaving the file: every
// page it reaches carries its own number and a tree type, is reached once
// (no cycle), and holds its elements' keys and values; every page a branch
// or bucket points to exists; the freelist fits its page. bbolt trusts all
// of these and, given a damaged one, reads outside its memory map or
// recurses forever, which kills the process: in its page check too, which
// runs on a goroutine of its own where no fault becomes an error.
func checkPages(data []byte, pageSize int, root, freelist uint64) error {
	w := pageWalk{data: data, size: uint64(pageSize), pages: uint64(len(data) / pageSize), seen: map[uint64]bool{}}
	if freelist != ^uint64(0) {
		p, err := w.page(freelist, pageFreelist)
		if err != nil {
			return err
		}
		if err := w.elements(p, pageFreelist, 0); err != nil {
			return fmt.Errorf("freelist page %d: %v", freelist, err)
		}
	}
	return w.tree(root, 0)
}

type pageWalk struct {
	data        []byte
	size, pages uint64
	seen        map[uint64]bool
}

// page returns page id and its overflow pages, checking it is one of want.
func (w *pageWalk) page(id uint64, want uint16) ([]byte, error) {
	le := binary.LittleEndian
	if id < 2 || id >= w.pages {
		return nil, fmt.Errorf("page %d is outside the file", id)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("page %d is reached twice", id)
	}
	w.seen[id] = true
	p := w.data[id*w.size:]
	if got := le.Uint64(p); got != id {
		return nil, fmt.Errorf("page %d calls itself %d", id, got)
	}
	if le.Uint16(p[8:])&want == 0 {
		return nil, fmt.Errorf("page %d has type %#x", id, le.Uint16(p[8:]))
	}
	overflow := uint64(le.Uint32(p[12:]))
	if id+1+overflow > w.pages {
		return nil, fmt.Errorf("page %d runs past the end of the file", id)
	}
	return p[:(1+overflow)*w.size], nil
}

// tree walks the branch or leaf page id and everything below it.
func (w *pageWalk) tree(id uint64, depth int) error {
	if depth > 64 {
		return errors.New("the page tree is deeper than 64 levels")
	}
	p, err := w.page(id, pageBranch|pageLeaf)
	if err != nil {
		return err
	}
	if err := w.elements(p, binary.LittleEndian.Uint16(p[8:]), depth); err != nil {
		return fmt.Errorf("page %d: %v", id, err)
	}
	return nil
}

// elements checks a page's elements (or those of a bucket's inline page,
// inside its parent's value) and walks what they point to.
func (w *pageWalk) elements(p []byte, flags uint16, depth int) error {
	le := binary.LittleEndian
	count := int(le.Uint16(p[10:]))
	if flags&pageFreelist != 0 {
		n, start := uint64(count), uint64(pageHeader)
		if count == 0xFFFF {
			if len(p) < pageHeader+8 {
				return errors.New("freelist count outside its page")
			}
			n, start = le.Uint64(p[pageHeader:]), pageHeader+8
		}
		if n > uint64(len(p)) || start+8*n > uint64(len(p)) {
			return errors.New("freelist longer than its page")
		}
		return nil
	}
	if pageHeader+count*elemSize > len(p) {
		return errors.New("more elements than the page holds")
	}
	for e := range count {
		at := pageHeader + e*elemSize
		el := p[at:]
		var pos, ksize, vsize uint64
		if flags&pageBranch != 0 {
			pos, ksize = uint64(le.Uint32(el)), uint64(le.Uint32(el[4:]))
		} else {
			pos, ksize, vsize = uint64(le.Uint32(el[4:])), uint64(le.Uint32(el[8:])), uint64(le.Uint32(el[12:]))
		}
		end := uint64(at) + pos + ksize + vsize
		if end > uint64(len(p)) {
			return fmt.Errorf("element %d lies outside its page", e)
		}
		if flags&pageBranch != 0 {
			if err := w.tree(le.Uint64(el[8:]), depth+1); err != nil {
				return err
			}
			continue
		}
		if le.Uint32(el)&leafBucket == 0 {
			continue
		}
		// A bucket: its header (root page, sequence), then, for a small
		// bucket, its own page inline.
		v := p[uint64(at)+pos+ksize : end]
		if len(v) < 16 {
			return fmt.Errorf("element %d is a bucket too short for its header", e)
		}
		if root := le.Uint64(v); root != 0 {
			if err := w.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[16:]
		if len(inline) < pageHeader || le.Uint16(inline[8:]) != pageLeaf {
			return fmt.Errorf("element %d is a bucket without a leaf page", e)
		}
		if err := w.elements(inline, pageLeaf, depth+1); err != nil {
			return fmt.Errorf("element %d's bucket: %v", e, err)
		}
	}
	return nil
}

// verify proves the whole file is readable and consistent before anything
// trusts it: bbolt's own page check, then every record's checksum and the
// links between runs, plans, step records, journals and the meta keys. A
// panic inside bbolt on a damaged page is reported as damage.
func (d *DB) verify() error { return d.verifyWith(true) }

// checkPages is verify's first half, bbolt's own page check alone.
func (d *DB) checkPages() error { return d.verifyWith(false) }

func (d *DB) verifyWith(records bool) (err error) {
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
		if err != nil || !records {
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

var topBuckets = [][]byte{bucketMeta, bucketRuns, bucketPlans}

func (d *DB) verifyRecords(tx *bolt.Tx) error {
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, d.path, fmt.Sprintf(format, args...))
	}
	// A file with no buckets is new; one with some must have all of them,
	// or a lost bucket would be re-created empty: a silent fresh start.
	// Besides them there is one bucket per run (run/<id>), checked below.
	var names [][]byte
	if err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		if b.Sequence() != 0 && !bytes.HasPrefix(name, []byte(runPrefix)) { // only the runs' journals count
			return corrupt("bucket %q has a sequence", name)
		}
		return nil
	}); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	if meta := tx.Bucket(bucketMeta); meta != nil && storedSchema(tx) == 2 && tx.Bucket(legacySteps) != nil {
		return d.checkSchema(meta) // converted by a writer (convertFromSchema2)
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
	// Every plan and run bucket belongs to a run (and every run has both:
	// loadRun and checkJournal); no other bucket is there.
	if err := tx.Bucket(bucketPlans).ForEach(func(k, _ []byte) error {
		if _, ok := runs[string(k)]; !ok {
			return corrupt("%s holds %q, which is not a run", bucketPlans, k)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, name := range names {
		id, isRun := bytes.CutPrefix(name, []byte(runPrefix))
		if _, ok := runs[string(id)]; isRun && !ok {
			return corrupt("bucket %q belongs to no run", name)
		} else if !isRun && !slices.ContainsFunc(topBuckets, func(b []byte) bool { return bytes.Equal(b, name) }) {
			return corrupt("unknown bucket %q", name)
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
	if n == 2 {
		return fmt.Errorf("%w: %w: %s has schema 2, an earlier upgrader's: this upgrader converts it to schema %d when it opens it to write (any command as root), or use the upgrader that wrote it", ErrSchema, errSchema2, d.path, SchemaVersion)
	}
	if n != SchemaVersion {
		return fmt.Errorf("%w: %s has schema %d, this upgrader reads %d; use the upgrader that wrote it", ErrSchema, d.path, n, SchemaVersion)
	}
	return nil
}

// checkJournal proves a run's bucket holds only step records and journal
// entries, the entries filed under their own sequence numbers, in order,
// and that the bucket's sequence is the last.
func checkJournal(tx *bolt.Tx, id string) error {
	b := runBucket(tx, id)
	if b == nil {
		return fmt.Errorf("%w: run %s has no journal", ErrCorrupt, id)
	}
	var last uint64
	err := b.ForEach(func(k, v []byte) error {
		if v == nil || len(k) != 9 || (k[0] != prefixStep && k[0] != prefixJournal) {
			return fmt.Errorf("%w: run %s's bucket holds %x, which is neither a step record nor a journal entry", ErrCorrupt, id, k)
		}
		if k[0] == prefixStep {
			return nil // loadRun reads them
		}
		var j orchestrator.JournalEntry
		if err := getJSON(v, &j, fmt.Sprintf("journal %s entry %x", id, k[1:])); err != nil {
			return err
		}
		if !bytes.Equal(k, journalKey(j.Seq)) || j.Seq <= last || j.RunID != id {
			return fmt.Errorf("%w: journal %s entry %d is filed under %x", ErrCorrupt, id, j.Seq, k[1:])
		}
		last = j.Seq
		return nil
	})
	if err == nil && b.Sequence() != last {
		err = fmt.Errorf("%w: journal %s ends at %d, its sequence says %d", ErrCorrupt, id, last, b.Sequence())
	}
	return err
}
