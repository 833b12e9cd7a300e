package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// ReadCopy never writes the state it reads: a healthy file is copied, one
// a running upgrader holds is read from its snapshot, a damaged one is
// shipped as it is and its runs read from the snapshot.
func TestReadCopy(t *testing.T) {
	dir := t.TempDir()
	c, cleanup := ReadCopy(dir)
	cleanup()
	if len(c.Runs) != 0 || !strings.Contains(strings.Join(c.Notes, "\n"), "no state yet") {
		t.Fatalf("no state: %+v", c)
	}
	d := openDB(t, dir)
	mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b"))
	done := newUpdate("r1", orchestrator.StateRunning, "a", "b")
	done.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1}}
	done.Snapshot = true // a milestone: the snapshot has it
	mustCommit(t, d, done)

	c, cleanup = ReadCopy(dir) // held by d: from the snapshot
	if len(c.Runs) != 1 || c.Runs[0].Steps[0].Status != orchestrator.StepDone || c.Current == nil ||
		!strings.Contains(strings.Join(c.Notes, "\n"), "held by a running upgrader: runs read from its snapshot") {
		t.Fatalf("held: %+v", c)
	}
	cleanup()
	d.Close()
	path := filepath.Join(dir, FileName)
	before := readFile(t, path)

	c, cleanup = ReadCopy(dir)
	if len(c.Runs) != 1 || c.Damaged != "" || len(c.Notes) != 0 {
		t.Fatalf("healthy: %+v", c)
	}
	cleanup()

	damaged := append([]byte(nil), before...)
	damaged[16] ^= 1 // both meta pages: no whole commit to open
	damaged[os.Getpagesize()+16] ^= 1
	os.WriteFile(path, damaged, 0o600)
	c, cleanup = ReadCopy(dir)
	defer cleanup()
	if c.Damaged == "" || string(readFile(t, c.Damaged)) != string(damaged) || len(c.Runs) != 1 {
		t.Fatalf("damaged: %+v", c)
	}
	if got := readFile(t, path); string(got) != string(damaged) {
		t.Fatal("the damaged state file was changed")
	}
}
