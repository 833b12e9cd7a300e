package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// fullFaults says whether `make faults` runs this (the full counts) or
// `make test` (a sample).
func fullFaults() bool { return os.Getenv("UPGRADER_FAULTS") == "full" }

// realisticState writes a state like a real one: a completed run and an
// active run halfway through, with journals, and returns the file.
func realisticState(tb testing.TB) []byte {
	file, _ := realisticStates(tb)
	return file
}

// realisticStates is realisticState and the file as it was one commit
// before (prev): what a fallback to the older meta page must show.
func realisticStates(tb testing.TB) (file, prev []byte) {
	tb.Helper()
	dir := tb.TempDir()
	d := openDB(tb, dir)
	ids := []string{"verify-media", "backup-db", "mpp-config-mpp1", "mpp-config-mpp2", "stop-services", "upgrade-pom", "start-services", "dnc-import"}
	for n, runID := range []string{"20261101T090000Z-aaaaaa", "20261123T090000Z-bbbbbb"} {
		u := newUpdate(runID, orchestrator.StatePlanned, ids...)
		u.Journal = journalEntries(runID, "run.created")
		mustCreate(tb, d, u)
		last := len(ids)
		if n == 1 {
			last = 5
		}
		for i := 0; i < last; i++ {
			c := newUpdate(runID, orchestrator.StateRunning, ids...)
			c.Steps = []orchestrator.StepRecord{{RunID: runID, Index: i, StepID: ids[i], Status: orchestrator.StepStarted, Attempts: 1, StartedAt: t0}}
			c.Journal = journalEntries(runID, "intent "+ids[i])
			mustCommit(tb, d, c)
			c.Steps[0].Status = orchestrator.StepDone
			c.Steps[0].Outputs.Values = map[string]string{"sha256": strings.Repeat("ab", 32), "path": "/var/backups/upgrader/pom-" + runID + ".dump"}
			c.Journal = journalEntries(runID, "done "+ids[i])
			if i == len(ids)-1 {
				c.Run.State = orchestrator.StateCompleted
			}
			prev = readFile(tb, filepath.Join(dir, FileName))
			mustCommit(tb, d, c)
		}
	}
	d.Close()
	return readFile(tb, filepath.Join(dir, FileName)), prev
}

// logicalDump is everything a state file says: every bucket, key, value
// and sequence, in order. ok is false when bbolt cannot read it.
func logicalDump(path string) (dump string, ok bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return "", false
	}
	defer db.Close()
	var b strings.Builder
	var walk func(prefix string, bk *bolt.Bucket) error
	walk = func(prefix string, bk *bolt.Bucket) error {
		fmt.Fprintf(&b, "%s seq=%d\n", prefix, bk.Sequence())
		return bk.ForEach(func(k, v []byte) error {
			if v == nil {
				return walk(prefix+"/"+string(k), bk.Bucket(k))
			}
			fmt.Fprintf(&b, "%s/%x=%x\n", prefix, k, v)
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error { return walk(string(name), bk) })
	})
	return b.String(), err == nil
}

// openDamaged opens a state directory whose file is content; it reports
// a panic as a test failure and checks the file is left as it was.
func openDamaged(t *testing.T, content []byte) (err error, dir string) {
	t.Helper()
	dir = t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("Open panicked: %v", r)
			}
		}()
		var d *DB
		d, err = Open(dir, lockTimeout)
		if err == nil {
			d.Close()
		}
	}()
	if err != nil && !bytes.Equal(readFile(t, path), content) {
		t.Errorf("the refused file was changed by Open")
	}
	return err, dir
}

// TestCorruptStateDetectedAtOpen damages a realistic state file every way
// the issue names and proves each is refused at Open with ErrCorrupt (or
// ErrSchema), a message naming the file and what to do, no panic and no
// fresh start. A flipped bit that Open accepts must be in bytes that mean
// nothing (slack in a page, a free page): the file must still say exactly
// what it said.
func TestCorruptStateDetectedAtOpen(t *testing.T) {
	good, prev := realisticStates(t)
	goodPath := filepath.Join(t.TempDir(), "good.db")
	os.WriteFile(goodPath, good, 0o600)
	want, ok := logicalDump(goodPath)
	if !ok {
		t.Fatal("the undamaged file does not read")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("UPGRADER_FAULT_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	flips := 400
	if fullFaults() {
		flips = 4000
	}
	page := os.Getpagesize()
	var tried, detected, harmless, wrong, fellBack, olderDamaged int
	counts := map[string]int{}
	check := func(kind string, content []byte) {
		t.Helper()
		tried++
		counts[kind]++
		err, dir := openDamaged(t, content)
		switch {
		case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrSchema):
			detected++
			if !strings.Contains(err.Error(), filepath.Join(dir, FileName)) || !strings.Contains(err.Error(), "do not delete it") && err != nil && !errors.Is(err, ErrSchema) {
				t.Errorf("%s: error %q does not name the file and what to do", kind, err)
			}
		case err != nil:
			t.Errorf("%s: Open = %v, want ErrCorrupt", kind, err)
		default:
			got, ok := logicalDump(filepath.Join(dir, FileName))
			if !ok || got != want {
				wrong++
				t.Errorf("%s: Open accepted a file that says something else (seed %d):\n%s", kind, seed, dumpDiff(want, got))
				return
			}
			harmless++
		}
	}
	t.Cleanup(func() {
		fmt.Printf("corrupt state: %d damaged files (%d zero-length, %d truncated, %d meta-page flips, %d data-page flips, %d newer schema; seed %d), %d refused at open, %d flips in unused bytes read back unchanged, %d newest-meta flips opened at the commit before (journaled), %d older-meta flips opened at the last commit (journaled), %d opened wrongly\n",
			tried, counts["zero-length"], counts["truncated"], counts["meta flip"], counts["data flip"], counts["schema"], seed, detected, harmless, fellBack, olderDamaged, wrong)
	})

	check("zero-length", nil)
	for _, n := range []int{1, 100, page - 1, page, 2 * page, len(good) / 2, len(good) - page, len(good) - 1} {
		check("truncated", good[:n])
	}
	for range 20 {
		check("truncated", good[:1+rng.IntN(len(good)-1)])
	}
	// A flip in a meta page: the newest one (a torn write of the last
	// commit) opens at the commit before it, exactly; the older one opens
	// at the last commit. Either is journaled, and nothing else changes.
	// Every bit of the meta fields (64 bytes after the page header) under
	// `make faults`, a sample of each page under `make test`.
	newest := 0
	if binary.LittleEndian.Uint64(good[page+pageHeader+48:]) > binary.LittleEndian.Uint64(good[pageHeader+48:]) {
		newest = 1
	}
	bits := rng.Perm(64 * 8)
	if !fullFaults() {
		bits = bits[:48]
	}
	for meta := range 2 {
		for _, bit := range bits {
			b := bytes.Clone(good)
			b[meta*page+pageHeader+bit/8] ^= 1 << (bit % 8)
			tried++
			counts["meta flip"]++
			base := good
			if meta == newest {
				base = prev
			}
			if checkOpensAs(t, fmt.Sprintf("meta page %d bit %d", meta, bit), b, base, "state.fallback") {
				if meta == newest {
					fellBack++
				} else {
					olderDamaged++
				}
			}
		}
	}
	// Seven flips in eight land on a byte that is not zero, which is
	// likelier to be in use: bbolt writes pages from zeroed buffers.
	for i := range flips {
		b := bytes.Clone(good)
		off := 2*page + rng.IntN(len(good)-2*page)
		for i%8 != 0 && b[off] == 0 {
			off = 2*page + rng.IntN(len(good)-2*page)
		}
		b[off] ^= 1 << rng.IntN(8)
		check("data flip", b)
	}
	// A newer upgrader's file.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, FileName), good, 0o600)
	boltUpdate(t, filepath.Join(dir, FileName), func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, seal([]byte(fmt.Sprint(SchemaVersion+1))))
	})
	check("schema", readFile(t, filepath.Join(dir, FileName)))
	// Copy-on-write leaves stale copies of pages in the file's free
	// pages, where a flip is harmless; schema 3 rewrites fewer pages per
	// commit but frees them as often, so about half the data flips land
	// there (48% at full size). Three in five would mean the flips miss
	// the data; what must never happen is a damaged file opened wrongly.
	if harmless > (tried-counts["meta flip"])*3/5 {
		t.Errorf("%d of %d damaged files opened: the flips miss the data", harmless, tried)
	}
}

// The state is copied beside the state file when a run is created and when
// it ends (not after each completed step), and a damaged state file is
// replaced by it on request, the damaged one kept.
func TestSnapshotAtTheRunsMilestones(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, SnapshotName)
	d := openDB(t, dir)
	u := newUpdate("r1", orchestrator.StatePlanned, "a", "b")
	mustCreate(t, d, u)
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("no snapshot after the run was created: %v", err)
	}
	started := newUpdate("r1", orchestrator.StateRunning, "a", "b")
	started.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepStarted, Attempts: 1}}
	before := readFile(t, snap)
	mustCommit(t, d, started)
	if !bytes.Equal(readFile(t, snap), before) {
		t.Error("an intent (nothing finished) rewrote the snapshot")
	}
	done := started
	done.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1}}
	mustCommit(t, d, done)
	if !bytes.Equal(readFile(t, snap), before) {
		t.Error("a completed step rewrote the snapshot")
	}
	ended := done
	ended.Run.State = orchestrator.StateAborted
	ended.Steps = nil
	mustCommit(t, d, ended)
	// The snapshot opens on its own and holds step a done.
	cp := t.TempDir()
	os.WriteFile(filepath.Join(cp, FileName), readFile(t, snap), 0o600)
	s := openDB(t, cp)
	_, recs, err := s.LoadRun("r1")
	if err != nil || recs[0].Status != orchestrator.StepDone {
		t.Fatalf("snapshot after step a: %+v %v", recs, err)
	}
	s.Close()

	// Healthy: nothing to restore.
	if _, err := RestoreSnapshot(dir, t0); !errors.Is(err, ErrLocked) {
		t.Fatalf("restore while upgrader holds the state: %v, want ErrLocked", err)
	}
	d.Close()
	if _, err := RestoreSnapshot(dir, t0); !errors.Is(err, ErrHealthy) {
		t.Fatalf("restore over a healthy state: %v, want ErrHealthy", err)
	}

	// Damaged: refused at Open with the advice, restored, kept.
	path := filepath.Join(dir, FileName)
	damaged := readFile(t, path)
	damaged[len(damaged)/2] ^= 0xff
	os.WriteFile(path, damaged, 0o600)
	if d, err := Open(dir, lockTimeout); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "restore-state") {
		if err == nil {
			d.Close()
		}
		// The flip may have hit slack: damage both meta pages as well (one
		// alone is a torn commit, opened at the one before).
		damaged[pageHeader] ^= 1
		damaged[os.Getpagesize()+pageHeader] ^= 1
		os.WriteFile(path, damaged, 0o600)
		if _, err := Open(dir, lockTimeout); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "restore-state") {
			t.Fatalf("Open of a damaged state: %v, want ErrCorrupt advising restore-state", err)
		}
	}
	res, err := RestoreSnapshot(dir, t0)
	if err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	if res.Run != "r1" || res.LastStep != "a" || !bytes.Equal(readFile(t, res.Damaged), damaged) {
		t.Errorf("restored %+v; the damaged file must be kept as it was", res)
	}
	d = openDB(t, dir)
	_, recs, err = d.LoadRun("r1")
	if run, _, _ := d.LoadRun("r1"); err != nil || recs[0].Status != orchestrator.StepDone || recs[1].Status != orchestrator.StepPending || run.State != orchestrator.StateAborted {
		t.Fatalf("after restore: %+v %v", recs, err)
	}
	d.Close()

	// A damaged snapshot is refused, and the damaged state stays.
	os.WriteFile(path, damaged, 0o600)
	snapBytes := readFile(t, snap)
	snapBytes[pageHeader] ^= 1
	snapBytes[os.Getpagesize()+pageHeader] ^= 1
	os.WriteFile(snap, snapBytes, 0o600)
	if _, err := RestoreSnapshot(dir, t0.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "snapshot is damaged") {
		t.Fatalf("restore from a damaged snapshot: %v", err)
	}
	if !bytes.Equal(readFile(t, path), damaged) {
		t.Error("a refused restore changed the state file")
	}
}

// checkOpensAs opens a state directory whose file is content and proves it
// opens as base (a whole state file) plus exactly one journal entry of
// event, in the latest run, and nothing else.
func checkOpensAs(t *testing.T, what string, content, base []byte, event string) bool {
	t.Helper()
	err, dir := openDamaged(t, content)
	if err != nil {
		t.Errorf("%s: Open = %v, want it opened", what, err)
		return false
	}
	got, ok := logicalDump(filepath.Join(dir, FileName))
	if !ok {
		t.Errorf("%s: the opened file does not read", what)
		return false
	}
	// base plus the last journal entry of the opened file, put by bbolt.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var key, val []byte
	var seq uint64
	var run []byte
	db.View(func(tx *bolt.Tx) error {
		run = bytes.Clone(tx.Bucket(bucketMeta).Get(keyLatest))
		j := runBucket(tx, string(run))
		c := j.Cursor()
		k, v := c.Last()
		for k != nil && k[0] != prefixJournal { // step records sort after the journal
			k, v = c.Prev()
		}

		key, val, seq = bytes.Clone(k), bytes.Clone(v), j.Sequence()
		return nil
	})
	db.Close()
	var entry orchestrator.JournalEntry
	if err := getJSON(val, &entry, "entry"); err != nil || entry.Event != event || entry.Seq != seq {
		t.Errorf("%s: the last journal entry is %+v (%v), want a %s", what, entry, err, event)
		return false
	}
	wantPath := filepath.Join(t.TempDir(), "want.db")
	os.WriteFile(wantPath, base, 0o600)
	boltUpdate(t, wantPath, func(tx *bolt.Tx) error {
		j := runBucket(tx, string(run))
		if err := j.SetSequence(seq); err != nil {
			return err
		}
		return j.Put(key, val)
	})
	want, _ := logicalDump(wantPath)
	if got != want {
		t.Errorf("%s: opened as something else than the commit it names:\n%s", what, dumpDiff(want, got))
		return false
	}
	return true
}

// dumpDiff shows the lines of two dumps that differ.
func dumpDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "- "+a, "+ "+b)
		}
	}
	return strings.Join(out[:min(len(out), 6)], "\n")
}

// An update that asks for it (the intent of an irreversible step, values a
// step saved: a boot id before a reboot) is copied to the snapshot too: a
// restored state must not forget it.
func TestSnapshotOnRequest(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, SnapshotName)
	d := openDB(t, dir)
	defer d.Close()
	mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b"))
	saved := newUpdate("r1", orchestrator.StateRunning, "a", "b")
	saved.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepStarted, Attempts: 1,
		Saved: map[string]string{"boot_id": "before-the-reboot"}}}
	saved.Snapshot = true
	mustCommit(t, d, saved)
	cp := t.TempDir()
	os.WriteFile(filepath.Join(cp, FileName), readFile(t, snap), 0o600)
	s := openDB(t, cp)
	defer s.Close()
	_, recs, err := s.LoadRun("r1")
	if err != nil || recs[0].Status != orchestrator.StepStarted || recs[0].Saved["boot_id"] != "before-the-reboot" {
		t.Fatalf("snapshot after a saved value: %+v %v", recs, err)
	}
}
