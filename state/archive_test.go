package state

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// A finished run leaves the state file when the next run is created: it is
// then read from its archive file, whole, and the state file holds only the
// runs that are not over plus the new one.
func TestFinishedRunsAreArchived(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, dir)
	var ids []string
	want := map[string][]orchestrator.JournalEntry{}
	for _, id := range []string{"20261101T090000Z-aaaaaa", "20261102T090000Z-bbbbbb", "20261103T090000Z-cccccc"} {
		u := newUpdate(id, orchestrator.StatePlanned, "a", "b")
		u.Journal = journalEntries(id, "created")
		mustCreate(t, d, u)
		end := newUpdate(id, orchestrator.StateCompleted, "a", "b")
		end.Steps[0].Status, end.Steps[1].Status = orchestrator.StepDone, orchestrator.StepDone
		end.Journal = journalEntries(id, "done")
		mustCommit(t, d, end)
		ids = append(ids, id)
		want[id], _ = d.Journal(id, 0)
	}
	got, err := d.Runs()
	if err != nil || !reflect.DeepEqual(got, ids) {
		t.Fatalf("Runs = %v %v, want %v", got, err, ids)
	}
	for _, id := range ids {
		run, recs, err := d.LoadRun(id)
		if err != nil || run.ID != id || run.State != orchestrator.StateCompleted || len(recs) != 2 || recs[1].Status != orchestrator.StepDone {
			t.Errorf("LoadRun(%s) = %+v %+v %v", id, run, recs, err)
		}
		j, err := d.Journal(id, 1)
		if err != nil || !reflect.DeepEqual(j, want[id][1:]) {
			t.Errorf("Journal(%s, 1) = %+v %v, want %+v", id, j, err, want[id][1:])
		}
	}
	// Only the latest run is left in the state file.
	var live []string
	d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, _ []byte) error { live = append(live, string(k)); return nil })
	})
	if !reflect.DeepEqual(live, ids[2:]) {
		t.Errorf("state file holds %v, want only %v", live, ids[2:])
	}
	// An archived id is not reused.
	if err := d.CreateRun(newUpdate(ids[0], orchestrator.StatePlanned, "a")); err == nil {
		t.Error("CreateRun reused an archived run's id")
	}
	// A crash between the archive file and the commit that forgets the
	// run leaves an archive file for a run still in the state file: the
	// next creation replaces it with the run as it is then.
	stale := readFile(t, filepath.Join(dir, ArchiveDir, ids[0]+archiveExt))
	os.WriteFile(filepath.Join(dir, ArchiveDir, ids[2]+archiveExt), stale, 0o600)
	mustCreate(t, d, newUpdate("20261104T090000Z-dddddd", orchestrator.StatePlanned, "a"))
	if _, _, err := d.LoadRun(ids[2]); err != nil {
		t.Errorf("the run archived again: %v", err)
	}
	d.Close()
	// The files of the state dir open and list the same after a restart.
	d = openDB(t, dir)
	if got, _ := d.Runs(); len(got) != 4 {
		t.Errorf("after reopen: %v", got)
	}
	// A damaged archive file is said, never read as another run.
	path := filepath.Join(dir, ArchiveDir, ids[0]+archiveExt)
	b := readFile(t, path)
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o600)
	if _, _, err := d.LoadRun(ids[0]); err == nil {
		t.Error("a damaged archived run was read")
	}
}
