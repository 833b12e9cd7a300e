package state

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// exportOf returns a run export as the source server's upgrader writes it:
// a running migration whose first step is done, with a journal of n
// entries numbered 1..n.
func exportOf(id string, n int) orchestrator.RunExport {
	u := newUpdate(id, orchestrator.StateRunning, "backup-source", "linux-es", "linux-es-reboot", "restore-backup")
	u.Run.Plan.Procedure = "pc-4.1.2-migrate"
	u.Run.Plan.Steps[0].Action = "pc-backup"
	u.Run.Plan.Steps[0].Produces = []string{"pc-backup"}
	u.Run.Plan.Steps[3].Action = "pc-restore"
	u.Run.Plan.Steps[3].Requires = []string{"pc-backup"}
	u.Run.Plan.Steps[0].RunsOn = orchestrator.RoleSource
	for i := 1; i < len(u.Run.Plan.Steps); i++ {
		u.Run.Plan.Steps[i].RunsOn = orchestrator.RoleTarget
	}
	u.Run.Plan.Fingerprint = orchestrator.Fingerprint(u.Run.Plan)
	u.Steps[0] = orchestrator.StepRecord{RunID: id, Index: 0, StepID: "backup-source", Status: orchestrator.StepDone, Attempts: 1,
		StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second),
		Outputs: orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"pc-backup": {
			Path: "/var/backups/upgrader/pc-data-" + id + ".tar.gz", SHA256: strings.Repeat("cd", 32), Size: 4096, ModTime: t0, Host: "source"}}}}
	u.Steps[0].Saved = map[string]string{"tool_pid": "4242"}
	x := orchestrator.RunExport{Format: orchestrator.ExportFormat, ExportedAt: t0.Add(time.Hour), Run: u.Run, Steps: u.Steps}
	for i := range n {
		j := journalEntries(id, "source entry "+string(rune('a'+i)))[0]
		j.Seq = uint64(i + 1)
		j.Time = t0.Add(time.Duration(i) * time.Minute)
		x.Journal = append(x.Journal, j)
	}
	return x.Sealed()
}

func mustImport(tb testing.TB, d *DB, x orchestrator.RunExport) {
	tb.Helper()
	if err := d.ImportRun(x); err != nil {
		tb.Fatalf("ImportRun(%s): %v", x.Run.ID, err)
	}
}

// checkImported asserts the state holds x as it was exported, followed by
// the journal texts in extra.
func checkImported(tb testing.TB, d *DB, x orchestrator.RunExport, extra ...string) {
	tb.Helper()
	run, recs, err := d.LoadRun(x.Run.ID)
	if err != nil {
		tb.Fatalf("LoadRun(%s): %v", x.Run.ID, err)
	}
	if !reflect.DeepEqual(run, x.Run) {
		tb.Errorf("imported run differs:\n got %+v\nwant %+v", run, x.Run)
	}
	if !reflect.DeepEqual(recs, x.Steps) {
		tb.Errorf("imported step records differ:\n got %+v\nwant %+v", recs, x.Steps)
	}
	j, err := d.Journal(x.Run.ID, 0)
	if err != nil {
		tb.Fatalf("Journal: %v", err)
	}
	if len(j) != len(x.Journal)+len(extra) {
		tb.Fatalf("journal has %d entries, want %d + %d", len(j), len(x.Journal), len(extra))
	}
	if len(x.Journal) > 0 && !reflect.DeepEqual(j[:len(x.Journal)], x.Journal) {
		tb.Errorf("imported journal differs:\n got %+v\nwant %+v", j[:len(x.Journal)], x.Journal)
	}
	for i, text := range extra {
		e := j[len(x.Journal)+i]
		if want := uint64(len(x.Journal) + i + 1); e.Seq != want || e.Text != text {
			tb.Errorf("entry after the import = seq %d %q, want seq %d %q", e.Seq, e.Text, want, text)
		}
	}
}

func TestImportRun(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, dir)
	x := exportOf("m1", 5)
	if err := x.Check(); err != nil {
		t.Fatalf("the test's export does not pass Check: %v", err)
	}
	mustImport(t, d, x)
	checkImported(t, d, x)
	if id, err := d.ActiveRun(); err != nil || id != "m1" {
		t.Errorf("ActiveRun = %q, %v; want m1", id, err)
	}
	if id, err := d.LatestRun(); err != nil || id != "m1" {
		t.Errorf("LatestRun = %q, %v; want m1", id, err)
	}

	for _, tc := range []struct {
		after uint64
		want  []uint64
	}{{0, seqs(1, 5)}, {2, seqs(3, 5)}, {5, nil}, {9, nil}} {
		got, err := d.Journal("m1", tc.after)
		if err != nil {
			t.Fatalf("Journal(after %d): %v", tc.after, err)
		}
		var gotSeqs []uint64
		for _, j := range got {
			gotSeqs = append(gotSeqs, j.Seq)
		}
		if !reflect.DeepEqual(gotSeqs, tc.want) {
			t.Errorf("Journal(after %d) seqs = %v, want %v", tc.after, gotSeqs, tc.want)
		}
	}

	// The target carries on: its commits follow the source's numbering.
	c := orchestrator.Update{Run: x.Run, Journal: journalEntries("m1", "imported here", "linux-es waits")}
	c.Run.State = orchestrator.StateWaitingOperator
	c.Run.UpdatedAt = t0.Add(2 * time.Hour)
	c.Journal[0].Seq = 1 // the store assigns Seq
	mustCommit(t, d, c)
	got, err := d.Journal("m1", 5)
	if err != nil || len(got) != 2 || got[0].Seq != 6 || got[1].Seq != 7 || got[0].Text != "imported here" {
		t.Errorf("Journal after the import's last entry = %+v, %v; want seqs 6, 7", got, err)
	}
	want := x
	want.Run = c.Run
	checkImported(t, d, want, "imported here", "linux-es waits")

	// It all survives a close and reopen.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := openDB(t, dir)
	checkImported(t, d2, want, "imported here", "linux-es waits")
	if id, err := d2.ActiveRun(); err != nil || id != "m1" {
		t.Errorf("ActiveRun after reopen = %q, %v; want m1", id, err)
	}
	mustCommit(t, d2, orchestrator.Update{Run: c.Run, Journal: journalEntries("m1", "after reopen")})
	if got, err := d2.Journal("m1", 7); err != nil || len(got) != 1 || got[0].Seq != 8 {
		t.Errorf("Journal after reopen = %+v, %v; want seq 8", got, err)
	}
}

func TestImportRunEmptyJournal(t *testing.T) {
	d := openDB(t, t.TempDir())
	x := exportOf("m1", 0)
	mustImport(t, d, x)
	checkImported(t, d, x)
	mustCommit(t, d, orchestrator.Update{Run: x.Run, Journal: journalEntries("m1", "first")})
	checkImported(t, d, x, "first")
}

func TestImportRunWhileActive(t *testing.T) {
	d := openDB(t, t.TempDir())
	mustCreate(t, d, newUpdate("r1", orchestrator.StateRunning, "a"))
	err := d.ImportRun(exportOf("m1", 3))
	if !errors.Is(err, orchestrator.ErrActiveRun) {
		t.Fatalf("ImportRun while r1 is active = %v, want ErrActiveRun", err)
	}
	if !strings.Contains(err.Error(), "r1") {
		t.Errorf("error %q does not name the active run", err)
	}
	if ids, _ := d.Runs(); !reflect.DeepEqual(ids, []string{"r1"}) {
		t.Errorf("Runs after the refused import = %v, want [r1]", ids)
	}
	if _, _, err := d.LoadRun("m1"); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("LoadRun(m1) = %v, want ErrRunNotFound", err)
	}
	if _, err := d.Journal("m1", 0); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("Journal(m1) = %v, want ErrRunNotFound (nothing half-imported)", err)
	}
	if id, _ := d.LatestRun(); id != "r1" {
		t.Errorf("LatestRun = %q, want r1", id)
	}

	// Once r1 is over, the import goes through.
	mustCommit(t, d, newUpdate("r1", orchestrator.StateCompleted, "a"))
	x := exportOf("m1", 3)
	mustImport(t, d, x)
	checkImported(t, d, x)
}

func TestImportRunExistingID(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(tb testing.TB, d *DB) // leaves a finished run m1
	}{
		{"created here", func(tb testing.TB, d *DB) {
			mustCreate(tb, d, newUpdate("m1", orchestrator.StateRunning, "a"))
			mustCommit(tb, d, newUpdate("m1", orchestrator.StateAborted, "a"))
		}},
		{"imported before", func(tb testing.TB, d *DB) {
			x := exportOf("m1", 2)
			mustImport(tb, d, x)
			x.Run.State = orchestrator.StateCompleted
			mustCommit(tb, d, orchestrator.Update{Run: x.Run})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openDB(t, t.TempDir())
			tc.setup(t, d)
			before, recsBefore, err := d.LoadRun("m1")
			if err != nil {
				t.Fatal(err)
			}
			journalBefore, _ := d.Journal("m1", 0)

			err = d.ImportRun(exportOf("m1", 4))
			if err == nil {
				t.Fatal("ImportRun accepted a run id already in the state")
			}
			if !strings.Contains(err.Error(), "m1") {
				t.Errorf("error %q does not name the run", err)
			}
			after, recsAfter, err := d.LoadRun("m1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(recsAfter, recsBefore) {
				t.Error("the refused import changed the existing run")
			}
			if j, _ := d.Journal("m1", 0); !reflect.DeepEqual(j, journalBefore) {
				t.Errorf("the refused import changed the journal: %+v", j)
			}
			if _, err := d.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
				t.Errorf("ActiveRun = %v, want ErrNoActiveRun", err)
			}
		})
	}
}

// The store refuses what RunExport.Check refuses, and stores nothing of
// it: an edited file (the seal), a run id that would name files outside
// their folder, the importing server's steps carried as done.
func TestImportRunRefusesForgedExports(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		forge      func(x *orchestrator.RunExport)
	}{
		{"journal edited", "seal does not match", func(x *orchestrator.RunExport) { x.Journal[1].Text = "all fine" }},
		{"step record edited", "seal does not match", func(x *orchestrator.RunExport) { x.Steps[0].Attempts = 9 }},
		{"run id climbs out", "invalid run id", func(x *orchestrator.RunExport) {
			x.Run.ID = "m1/../../../escaped"
			for i := range x.Steps {
				x.Steps[i].RunID = x.Run.ID
			}
			for i := range x.Journal {
				x.Journal[i].RunID = x.Run.ID
			}
			*x = x.Sealed()
		}},
		{"target steps done", "linux-es is done in the file, but it runs on the target server", func(x *orchestrator.RunExport) {
			for i := 1; i < len(x.Steps); i++ {
				x.Steps[i].Status, x.Steps[i].Attempts = orchestrator.StepDone, 1
			}
			*x = x.Sealed()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openDB(t, t.TempDir())
			x := exportOf("m1", 3)
			x.Steps = append([]orchestrator.StepRecord(nil), x.Steps...)
			x.Journal = append([]orchestrator.JournalEntry(nil), x.Journal...)
			tc.forge(&x)
			err := d.ImportRun(x)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportRun: %v, want %q", err, tc.want)
			}
			if ids, _ := d.Runs(); len(ids) != 0 {
				t.Errorf("runs after the refused import: %v", ids)
			}
			if _, err := d.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
				t.Errorf("ActiveRun = %v, want none", err)
			}
		})
	}
}

// Run ids from outside (a --run flag, a caller of the store) are checked
// before they reach the file or a message.
func TestRunIDsChecked(t *testing.T) {
	d := openDB(t, t.TempDir())
	if err := d.CreateRun(newUpdate("../r1", orchestrator.StatePlanned, "a")); !errors.Is(err, orchestrator.ErrInvalidRunID) {
		t.Errorf("CreateRun(../r1) = %v, want ErrInvalidRunID", err)
	}
	if _, _, err := d.LoadRun("r1\x1b[2J"); !errors.Is(err, orchestrator.ErrInvalidRunID) || strings.ContainsRune(err.Error(), 0x1b) {
		t.Errorf("LoadRun with an escape sequence = %q, want ErrInvalidRunID without the raw escape", err)
	}
	mustCreate(t, d, newUpdate("20261129T160000Z-a1b2c3", orchestrator.StatePlanned, "a"))
}
