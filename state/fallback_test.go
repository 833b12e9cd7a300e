package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// txidOf is the newest txid the meta pages of a whole state file name.
func txidOf(file []byte) uint64 {
	page := os.Getpagesize()
	return max(binary.LittleEndian.Uint64(file[pageHeader+48:]), binary.LittleEndian.Uint64(file[page+pageHeader+48:]))
}

// tear makes the meta page of after's last commit a torn write: its first
// bytes new, the rest as the page was before (before is the file one
// commit earlier): the checksum half written, as a power cut in the
// middle of writing the page leaves it.
func tear(after, before []byte) []byte {
	page := os.Getpagesize()
	torn := bytes.Clone(after)
	at := int(txidOf(after)%2) * page
	copy(torn[at+pageHeader+60:at+page], before[at+pageHeader+60:at+page])
	if readMeta(torn, int64(page), int(txidOf(after)%2)).bad == "" {
		panic("the torn meta page checks whole")
	}
	return torn
}

// lostCommit makes a state in dir with run r1 (steps a, b) running, then
// commits last on it and returns the file before and after that commit.
func lostCommit(t *testing.T, dir string, last orchestrator.Update) (before, after []byte) {
	t.Helper()
	d := openDB(t, dir)
	mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b"))
	mustCommit(t, d, newUpdate("r1", orchestrator.StateRunning, "a", "b"))
	path := filepath.Join(dir, FileName)
	before = readFile(t, path)
	mustCommit(t, d, last)
	after = readFile(t, path)
	d.Close()
	return before, after
}

func intentOf(step string, index int) orchestrator.Update {
	u := newUpdate("r1", orchestrator.StateRunning, "a", "b")
	u.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: index, StepID: step, Status: orchestrator.StepStarted, Attempts: 1, StartedAt: t0}}
	u.Journal = journalEntries("r1", "start "+step)
	return u
}

// A power cut while bbolt wrote the meta page of a commit: that commit was
// never acknowledged, so the state opens at the one before it (as bbolt
// itself would), says so in the journal, and goes on from there.
func TestTornNewestMetaFallsBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	before, after := lostCommit(t, dir, intentOf("a", 0))
	torn := tear(after, before)
	os.WriteFile(path, torn, 0o600)

	d, err := Open(dir, lockTimeout)
	if err != nil {
		t.Fatalf("Open of a state whose last meta page is torn: %v", err)
	}
	_, recs, err := d.LoadRun("r1")
	if err != nil || recs[0].Status != orchestrator.StepPending {
		t.Fatalf("after the fallback step a is %+v (%v), want pending: the intent was never acknowledged", recs, err)
	}
	js, _ := d.Journal("r1", 0)
	last := js[len(js)-1]
	lost, opened := txidOf(after), txidOf(before)
	if last.Event != "state.fallback" || !strings.Contains(last.Text, fmt.Sprintf("txid %d", lost)) ||
		!strings.Contains(last.Text, fmt.Sprintf("txid %d", opened)) || !strings.Contains(last.Text, "power cut") {
		t.Errorf("journal ends with %+v, want a state.fallback naming txid %d (lost) and %d (opened)", last, lost, opened)
	}
	if d.Recovered == "" {
		t.Error("the DB does not say it fell back")
	}
	// The run goes on, and the next open is an ordinary one.
	mustCommit(t, d, intentOf("a", 0))
	d.Close()
	d = openDB(t, dir)
	if d.Recovered != "" {
		t.Errorf("a second open fell back again: %s", d.Recovered)
	}
}

// When the snapshot was taken after the commit the file would fall back
// to, a later commit was acknowledged: its meta page was damaged after it
// was written (the disk, not a power cut). Falling back would undo it, so
// the file is refused as before, with the advice.
func TestFallbackRefusedWhenTheSnapshotIsNewer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	irreversible := intentOf("a", 0)
	irreversible.Snapshot = true // what the engine asks for an irreversible step
	before, after := lostCommit(t, dir, irreversible)
	torn := tear(after, before)
	os.WriteFile(path, torn, 0o600)
	_, err := Open(dir, lockTimeout)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "snapshot") || !strings.Contains(err.Error(), "restore-state") {
		t.Fatalf("Open = %v, want ErrCorrupt saying the snapshot is newer, with the advice", err)
	}
	if !bytes.Equal(readFile(t, path), torn) {
		t.Error("the refused file was changed")
	}
}

// A supervised job the fallback state does not know was started after a
// commit that was acknowledged (its key is saved before it starts): the
// file is refused, not opened without it.
func TestFallbackRefusedForAnUnknownJob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	saved := intentOf("a", 0)
	saved.Steps[0].Saved = map[string]string{"job": "r1-a-1"}
	before, after := lostCommit(t, dir, saved)
	os.Remove(filepath.Join(dir, SnapshotName)) // its rename lost to the same power cut
	jobs := filepath.Join(dir, "jobs")
	os.Mkdir(jobs, 0o700)
	os.WriteFile(filepath.Join(jobs, "r1-a-1.lock"), nil, 0o600)
	torn := tear(after, before)
	os.WriteFile(path, torn, 0o600)
	_, err := Open(dir, lockTimeout)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "r1-a-1") {
		t.Fatalf("Open = %v, want ErrCorrupt naming the job r1-a-1", err)
	}
	if !bytes.Equal(readFile(t, path), torn) {
		t.Error("the refused file was changed")
	}

	// A job the fallback state knows is no evidence of a later commit.
	dir2 := t.TempDir()
	os.MkdirAll(filepath.Join(dir2, "jobs"), 0o700)
	d := openDB(t, dir2)
	mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b"))
	mustCommit(t, d, saved)
	before = readFile(t, filepath.Join(dir2, FileName))
	mustCommit(t, d, intentOf("b", 1))
	after = readFile(t, filepath.Join(dir2, FileName))
	d.Close()
	os.WriteFile(filepath.Join(dir2, "jobs", "r1-a-1.lock"), nil, 0o600)
	os.Remove(filepath.Join(dir2, SnapshotName))
	torn = tear(after, before)
	os.WriteFile(filepath.Join(dir2, FileName), torn, 0o600)
	// Neither is an earlier job of a step run again (its key replaced by
	// a later one), but a later one is.
	os.WriteFile(filepath.Join(dir2, "jobs", "r1-a-0.lock"), nil, 0o600)
	os.WriteFile(filepath.Join(dir2, "jobs", "r1-a-2.lock"), nil, 0o600)
	if _, err := Open(dir2, lockTimeout); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "r1-a-2") {
		t.Fatalf("Open = %v, want ErrCorrupt naming the later job r1-a-2", err)
	}
	os.Remove(filepath.Join(dir2, "jobs", "r1-a-2.lock"))
	d = openDB(t, dir2)
	if d.Recovered == "" {
		t.Error("no fallback said")
	}
}

// Both meta pages damaged: nothing to fall back to.
func TestBothMetaPagesDamagedRefused(t *testing.T) {
	good := realisticState(t)
	page := os.Getpagesize()
	good[pageHeader+30] ^= 1
	good[page+pageHeader+30] ^= 1
	err, _ := openDamaged(t, good)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}
