package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upgrader/state"
	"upgrader/testdata/history"
)

// Finished runs leave the state file when the next run is created, and
// history, status --run and journal --run still show them.
func TestHistoryShowsArchivedRuns(t *testing.T) {
	s := newSim(t)
	db, err := state.Open(s.state, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := history.Fill(db, 3, history.Plan(4)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s.mustRun(exitOK, "run", "--yes")
	id := s.runID()
	h := s.mustRun(exitOK, "history").stdout
	for _, want := range []string{"20260101T090000Z-old00000", "20260101T090000Z-old00002", id, "4/4", "completed", "4 runs"} {
		if !strings.Contains(h, want) {
			t.Errorf("history does not show %q:\n%s", want, h)
		}
	}
	if !strings.Contains(s.mustRun(exitOK, "-o", "json", "history").stdout, `"id": "20260101T090000Z-old00001"`) {
		t.Error("history -o json lacks an archived run")
	}
	old := "20260101T090000Z-old00001"
	if j := s.mustRun(exitOK, "journal", "--run", old).stdout; !strings.Contains(j, "done noop-0003") {
		t.Errorf("journal --run of an archived run:\n%s", j)
	}
	if st := s.mustRun(exitOK, "status", "--run", old).stdout; !strings.Contains(st, "completed") {
		t.Errorf("status --run of an archived run:\n%s", st)
	}
	// The finished runs are files of their own.
	if got, _ := filepath.Glob(filepath.Join(s.state, state.ArchiveDir, "*.run")); len(got) != 3 {
		t.Errorf("archived: %v, want the 3 runs that were over", got)
	}
}
