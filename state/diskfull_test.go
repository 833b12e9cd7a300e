package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/testdata/simhost/smallfs"
)

// A full disk while the state is first written, or at any later commit,
// loses nothing and damages nothing: once space is freed the state opens,
// holds every run that was committed, and takes the next one. Each case
// fills the file system to a few KiB free, then works on a new state
// directory (or one holding a run).
func TestDiskFullAtFirstCommit(t *testing.T) {
	mnt := smallfs.Mount(t, 1024)
	var failedOpen, failedCreate, failedCommit int
	frees := []int64{0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 64, 96, 128}
	if fullFaults() {
		frees = frees[:0]
		for kib := int64(0); kib <= 256; kib += 4 {
			frees = append(frees, kib)
		}
	}
	for _, freeKiB := range frees {
		t.Run(fmt.Sprintf("%dKiB free, new state", freeKiB), func(t *testing.T) {
			dir := filepath.Join(mnt, "new")
			os.Mkdir(dir, 0o700)
			defer os.RemoveAll(dir)
			release := smallfs.Fill(t, mnt, freeKiB<<10)
			created := false
			d, err := Open(dir, lockTimeout)
			if err != nil {
				failedOpen++
				t.Logf("Open on a full disk: %v", err)
			} else {
				if err = d.CreateRun(newUpdate("r1", orchestrator.StatePlanned, "a", "b")); err != nil {
					failedCreate++
					t.Logf("CreateRun on a full disk: %v", err)
				}
				created = err == nil
				d.Close()
			}
			if err != nil && !strings.Contains(err.Error(), "no space left") {
				t.Errorf("the error does not say the disk is full: %v", err)
			}
			release()
			d, err = Open(dir, lockTimeout)
			if err != nil {
				t.Fatalf("Open after space was freed: %v", err)
			}
			defer d.Close()
			if created {
				if _, recs, err := d.LoadRun("r1"); err != nil || len(recs) != 2 {
					t.Fatalf("the run committed on the full disk is lost: %v", err)
				}
				return
			}
			if ids, err := d.Runs(); err != nil || len(ids) != 0 {
				t.Fatalf("runs after a failed first commit: %v %v", ids, err)
			}
			mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b"))
		})
		t.Run(fmt.Sprintf("%dKiB free, state with a run", freeKiB), func(t *testing.T) {
			dir := filepath.Join(mnt, "run")
			defer os.RemoveAll(dir)
			d := openDB(t, dir)
			mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a", "b", "c", "d"))
			release := smallfs.Fill(t, mnt, freeKiB<<10)
			// Commit step after step until the disk refuses one.
			last := -1
			for i := range 4 {
				u := newUpdate("r1", orchestrator.StateRunning, "a", "b", "c", "d")
				u.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: i, StepID: u.Steps[i].StepID, Status: orchestrator.StepDone, Attempts: 1}}
				u.Journal = journalEntries("r1", strings.Repeat("done ", 400))
				if err := d.Commit(u); err != nil {
					failedCommit++
					if !strings.Contains(err.Error(), "no space left") {
						t.Errorf("the error does not say the disk is full: %v", err)
					}
					break
				}
				last = i
			}
			d.Close()
			release()
			d = openDB(t, dir)
			_, recs, err := d.LoadRun("r1")
			if err != nil {
				t.Fatalf("after space was freed: %v", err)
			}
			for i, r := range recs {
				if done := r.Status == orchestrator.StepDone; done != (i <= last) {
					t.Errorf("step %d is %s; %d steps were committed", i, r.Status, last+1)
				}
			}
		})
	}
	if !t.Failed() {
		fmt.Printf("full disk: %d cases (0-%d KiB free, new state and state with a run), %d opens, %d first runs and %d commits refused, 0 files left damaged, 0 runs lost\n",
			2*len(frees), frees[len(frees)-1], failedOpen, failedCreate, failedCommit)
	}
	if failedOpen == 0 || failedCreate+failedCommit == 0 {
		t.Errorf("the disk was never full where it matters: %d opens, %d first runs, %d commits refused", failedOpen, failedCreate, failedCommit)
	}
}
