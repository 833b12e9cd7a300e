package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
)

// lockTimeout is how long a second Open waits for the lock in these tests.
const lockTimeout = 300 * time.Millisecond

var t0 = time.Date(2024, 3, 1, 9, 30, 0, 123456789, time.UTC)

// openDB opens a state directory and closes it when the test ends.
func openDB(tb testing.TB, dir string) *DB {
	tb.Helper()
	d, err := Open(dir, lockTimeout)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// newUpdate returns a run in the given state with a plan of the given step
// ids and one pending record per step.
func newUpdate(id string, st orchestrator.State, stepIDs ...string) orchestrator.Update {
	plan := orchestrator.Plan{
		Procedure: "pom-3.1.1-sp1-upgrade", Title: "test plan", From: "POM.03.01.01.00.00.039", To: "POM.03.01.01.01.00.003",
		Facts:       orchestrator.Facts{"pom.version": {Value: "POM.03.01.01.00.00.039", Source: "test"}},
		Fingerprint: "fp-" + id,
	}
	u := orchestrator.Update{Run: orchestrator.Run{ID: id, Profile: "/etc/upgrader/site.yaml", State: st, CreatedAt: t0, UpdatedAt: t0}}
	for i, s := range stepIDs {
		plan.Steps = append(plan.Steps, orchestrator.StepSpec{ID: s, Title: "step " + s, Kind: orchestrator.KindAuto, Action: "gate",
			Skip: orchestrator.SkipNever, Params: map[string]string{"n": fmt.Sprint(i)}})
		u.Steps = append(u.Steps, orchestrator.StepRecord{RunID: id, Index: i, StepID: s, Status: orchestrator.StepPending})
	}
	u.Run.Plan = plan
	return u
}

func journalEntries(runID string, texts ...string) []orchestrator.JournalEntry {
	var out []orchestrator.JournalEntry
	for _, s := range texts {
		out = append(out, orchestrator.JournalEntry{RunID: runID, Time: t0, Actor: "test", Event: "note", Text: s})
	}
	return out
}

func mustCreate(tb testing.TB, d *DB, u orchestrator.Update) {
	tb.Helper()
	if err := d.CreateRun(u); err != nil {
		tb.Fatalf("CreateRun(%s): %v", u.Run.ID, err)
	}
}

func mustCommit(tb testing.TB, d *DB, u orchestrator.Update) {
	tb.Helper()
	if err := d.Commit(u); err != nil {
		tb.Fatalf("Commit(%s): %v", u.Run.ID, err)
	}
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// boltUpdate edits a closed state file with bbolt directly.
func boltUpdate(tb testing.TB, path string, fn func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		tb.Fatalf("bolt update: %v", err)
	}
}

func TestOpenCreatesDirAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "upgrader")
	d := openDB(t, dir)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("state dir mode = %#o, want 0700", got)
	}
	want := filepath.Join(dir, FileName)
	if d.Path() != want {
		t.Errorf("Path() = %q, want %q", d.Path(), want)
	}
	fst, err := os.Stat(want)
	if err != nil {
		t.Fatalf("state file not created: %v", err)
	}
	if got := fst.Mode().Perm(); got != 0o600 {
		t.Errorf("state file mode = %#o, want 0600", got)
	}
	if d.db.NoSync {
		t.Error("state DB is opened with NoSync: every commit must fsync")
	}
	if _, err := d.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("ActiveRun on a new state = %v, want ErrNoActiveRun", err)
	}
	if _, err := d.LatestRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("LatestRun on a new state = %v, want ErrNoActiveRun", err)
	}
	// A fresh state records the schema it was written with.
	if err := d.db.View(func(tx *bolt.Tx) error {
		got, err := unseal(tx.Bucket(bucketMeta).Get(keySchema))
		if err != nil || string(got) != fmt.Sprint(SchemaVersion) {
			return fmt.Errorf("schema = %q (%v), want %d", got, err, SchemaVersion)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// TestHelperHoldLock is not a test: TestOpenLocked runs the test binary
// with STATE_TEST_HOLD_DIR set so that this function holds the state lock
// in another process until its stdin closes.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv("STATE_TEST_HOLD_DIR")
	if dir == "" {
		return // only meaningful as TestOpenLocked's helper process
	}
	d, err := Open(dir, 5*time.Second)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	d.Close()
	os.Exit(0)
}

// holdInOtherProcess opens dir's state in a child process and returns once
// the child holds the lock; the lock is released when the test ends.
func holdInOtherProcess(tb testing.TB, dir string) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STATE_TEST_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("lock helper: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		tb.Fatalf("lock helper said %q (%v), want \"locked\"", line, err)
	}
}

func TestOpenLocked(t *testing.T) {
	for _, tc := range []struct {
		name string
		hold func(tb testing.TB, dir string) (release func())
	}{
		{"same process", func(tb testing.TB, dir string) func() {
			d, err := Open(dir, lockTimeout)
			if err != nil {
				tb.Fatal(err)
			}
			return func() { d.Close() }
		}},
		{"other process", func(tb testing.TB, dir string) func() {
			holdInOtherProcess(tb, dir)
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			release := tc.hold(t, dir)
			start := time.Now()
			d, err := Open(dir, lockTimeout)
			elapsed := time.Since(start)
			if err == nil {
				d.Close()
				t.Fatal("second Open succeeded while the state is held")
			}
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("second Open: %v, want ErrLocked", err)
			}
			if path := filepath.Join(dir, FileName); !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			if elapsed < lockTimeout/2 || elapsed > lockTimeout+3*time.Second {
				t.Errorf("second Open returned after %v, want about the %v timeout", elapsed, lockTimeout)
			}
			if release != nil {
				release()
				// Once the first handle is closed the state opens again.
				openDB(t, dir)
			}
		})
	}
}

func TestOpenSchema(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema []byte // as stored
		want   error
		says   string
	}{
		{"newer", seal([]byte(fmt.Sprint(SchemaVersion + 1))), ErrSchema, fmt.Sprint(SchemaVersion + 1)},
		{"older, not convertible", seal([]byte("1")), ErrSchema, "schema 1"},
		// Schema 2 is converted, but only a file of its layout.
		{"schema 2 on this layout", seal([]byte("2")), ErrCorrupt, "schema 2"},
		{"first layout, no checksum", []byte("1"), ErrSchema, "schema 1"},
		{"not a number", seal([]byte("one")), ErrCorrupt, "one"},
		{"checksum wrong", []byte("2\x00\x00\x00\x00"), ErrCorrupt, "checksum"},
		{"current", seal([]byte(fmt.Sprint(SchemaVersion))), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := openDB(t, dir)
			mustCreate(t, d, newUpdate("r1", orchestrator.StateRunning, "a"))
			d.Close()
			boltUpdate(t, filepath.Join(dir, FileName), func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keySchema, tc.schema)
			})
			d2, err := Open(dir, lockTimeout)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				d2.Close()
				return
			}
			if err == nil {
				d2.Close()
				t.Fatalf("Open succeeded on schema %q", tc.schema)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			// The refused file is left as it was.
			var got []byte
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.View(func(tx *bolt.Tx) error {
				got = bytes.Clone(tx.Bucket(bucketMeta).Get(keySchema))
				if tx.Bucket(bucketRuns).Get([]byte("r1")) == nil {
					t.Error("run r1 is gone after the refused Open")
				}
				return nil
			})
			if !bytes.Equal(got, tc.schema) {
				t.Errorf("schema after refused Open = %q, want %q", got, tc.schema)
			}
		})
	}
}

func TestOpenDamagedFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	valid := func(tb testing.TB) []byte {
		dir := tb.TempDir()
		d, err := Open(dir, lockTimeout)
		if err != nil {
			tb.Fatal(err)
		}
		d.Close()
		return readFile(tb, filepath.Join(dir, FileName))
	}
	for _, tc := range []struct {
		name    string
		content func(tb testing.TB) []byte
	}{
		{"zero length", func(testing.TB) []byte { return []byte{} }},
		{"random 64 KiB", func(testing.TB) []byte { return random(64 << 10) }},
		{"random 3000 bytes", func(testing.TB) []byte { return random(3000) }},
		{"text file", func(testing.TB) []byte { return bytes.Repeat([]byte("not a database\n"), 1000) }},
		{"both meta pages zeroed", func(tb testing.TB) []byte {
			b := valid(tb)
			clear(b[:2*4096])
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			content := tc.content(t)
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Open panicked on a damaged file: %v", r)
					}
				}()
				var d *DB
				d, err = Open(dir, lockTimeout)
				if err == nil {
					d.Close()
				}
			}()
			if err == nil {
				t.Fatal("Open succeeded on a damaged state file: that is a silent fresh start")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Open: %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if got := readFile(t, path); !bytes.Equal(got, content) {
				t.Errorf("the damaged file was changed by Open: %d bytes, had %d", len(got), len(content))
			}
		})
	}
}

func TestRunRoundTrip(t *testing.T) {
	d := openDB(t, t.TempDir())
	u := newUpdate("r1", orchestrator.StatePlanned, "verify-media", "backup-db", "upgrade-pom")
	u.Run.Plan.Steps[2].Irreversible = true
	u.Run.Plan.PointOfNoReturn = "upgrade-pom"
	u.Journal = journalEntries("r1", "planned")
	mustCreate(t, d, u)

	if id, err := d.ActiveRun(); err != nil || id != "r1" {
		t.Errorf("ActiveRun = %q, %v; want r1", id, err)
	}
	if id, err := d.LatestRun(); err != nil || id != "r1" {
		t.Errorf("LatestRun = %q, %v; want r1", id, err)
	}
	run, recs, err := d.LoadRun("r1")
	if err != nil {
		t.Fatalf("LoadRun: %v", err)
	}
	if !reflect.DeepEqual(run, u.Run) {
		t.Errorf("LoadRun run differs:\n got %+v\nwant %+v", run, u.Run)
	}
	if !reflect.DeepEqual(recs, u.Steps) {
		t.Errorf("LoadRun records differ:\n got %+v\nwant %+v", recs, u.Steps)
	}

	// A commit changes the header and one record; the plan stays.
	u2 := u
	u2.Run.State = orchestrator.StateRunning
	u2.Run.UpdatedAt = t0.Add(time.Minute)
	rec := orchestrator.StepRecord{RunID: "r1", Index: 1, StepID: "backup-db", Status: orchestrator.StepDone, Attempts: 1,
		StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(2 * time.Second),
		Outputs: orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"db-backup": {Path: "/var/backups/x.dump",
			SHA256: strings.Repeat("ab", 32), Size: 42, ModTime: t0}}}}
	u2.Steps = []orchestrator.StepRecord{rec}
	u2.Journal = journalEntries("r1", "step done")
	mustCommit(t, d, u2)
	run, recs, err = d.LoadRun("r1")
	if err != nil {
		t.Fatalf("LoadRun after Commit: %v", err)
	}
	if run.State != orchestrator.StateRunning || !run.UpdatedAt.Equal(u2.Run.UpdatedAt) {
		t.Errorf("run after Commit: state %s updated %s", run.State, run.UpdatedAt)
	}
	if !reflect.DeepEqual(run.Plan, u.Run.Plan) {
		t.Error("plan changed by a Commit without ReplaceSteps")
	}
	want := append([]orchestrator.StepRecord(nil), u.Steps...)
	want[1] = rec
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("records after Commit:\n got %+v\nwant %+v", recs, want)
	}
	if ids, err := d.Runs(); err != nil || !reflect.DeepEqual(ids, []string{"r1"}) {
		t.Errorf("Runs = %v, %v", ids, err)
	}
	if _, _, err := d.LoadRun("nope"); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("LoadRun(unknown) = %v, want ErrRunNotFound", err)
	}
	if err := d.Commit(newUpdate("nope", orchestrator.StateRunning, "a")); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("Commit(unknown) = %v, want ErrRunNotFound", err)
	}
}

func TestCreateRunWhileActive(t *testing.T) {
	d := openDB(t, t.TempDir())
	mustCreate(t, d, newUpdate("r1", orchestrator.StateRunning, "a", "b"))
	err := d.CreateRun(newUpdate("r2", orchestrator.StatePlanned, "a"))
	if !errors.Is(err, orchestrator.ErrActiveRun) {
		t.Fatalf("CreateRun while r1 is active = %v, want ErrActiveRun", err)
	}
	if !strings.Contains(err.Error(), "r1") {
		t.Errorf("error %q does not name the active run", err)
	}
	if ids, _ := d.Runs(); !reflect.DeepEqual(ids, []string{"r1"}) {
		t.Errorf("Runs after the refused CreateRun = %v, want [r1]", ids)
	}
	if id, _ := d.LatestRun(); id != "r1" {
		t.Errorf("LatestRun = %q after the refused CreateRun, want r1", id)
	}
	if _, _, err := d.LoadRun("r2"); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("LoadRun(r2) = %v, want ErrRunNotFound", err)
	}

	done := newUpdate("r1", orchestrator.StateCompleted, "a", "b")
	mustCommit(t, d, done)
	mustCreate(t, d, newUpdate("r2", orchestrator.StatePlanned, "a"))
	if id, _ := d.ActiveRun(); id != "r2" {
		t.Errorf("ActiveRun = %q, want r2", id)
	}
	// A finished run's id cannot be reused.
	mustCommit(t, d, newUpdate("r2", orchestrator.StateAborted, "a"))
	if err := d.CreateRun(newUpdate("r1", orchestrator.StatePlanned, "a")); err == nil {
		t.Error("CreateRun reused the id of an existing run")
	}
}

func TestCommitStateAndActiveRun(t *testing.T) {
	for _, tc := range []struct {
		state       orchestrator.State
		stillActive bool
	}{
		{orchestrator.StateCompleted, false},
		{orchestrator.StateAborted, false},
		{orchestrator.StateBlocked, false},
		{orchestrator.StateFailed, true},
		{orchestrator.StateWaitingOperator, true},
		{orchestrator.StateRebooting, true},
	} {
		t.Run(string(tc.state), func(t *testing.T) {
			d := openDB(t, t.TempDir())
			mustCreate(t, d, newUpdate("r1", orchestrator.StateRunning, "a"))
			mustCommit(t, d, newUpdate("r1", tc.state, "a"))
			id, err := d.ActiveRun()
			if tc.stillActive {
				if err != nil || id != "r1" {
					t.Errorf("ActiveRun = %q, %v; want r1", id, err)
				}
			} else if !errors.Is(err, orchestrator.ErrNoActiveRun) {
				t.Errorf("ActiveRun = %q, %v; want ErrNoActiveRun", id, err)
			}
			if id, err := d.LatestRun(); err != nil || id != "r1" {
				t.Errorf("LatestRun = %q, %v; want r1", id, err)
			}
			run, _, err := d.LoadRun("r1")
			if err != nil || run.State != tc.state {
				t.Errorf("LoadRun = %s, %v; want state %s", run.State, err, tc.state)
			}
		})
	}
}

func TestJournal(t *testing.T) {
	d := openDB(t, t.TempDir())
	u := newUpdate("r1", orchestrator.StateRunning, "a")
	u.Journal = journalEntries("r1", "one")
	mustCreate(t, d, u)
	var texts = []string{"one"}
	for i, n := range []int{2, 0, 3, 1} {
		u := newUpdate("r1", orchestrator.StateRunning, "a")
		u.Steps = nil
		for j := 0; j < n; j++ {
			s := fmt.Sprintf("commit %d entry %d", i, j)
			texts = append(texts, s)
			u.Journal = append(u.Journal, journalEntries("r1", s)...)
			u.Journal[len(u.Journal)-1].Seq = 999 // the store assigns Seq
		}
		mustCommit(t, d, u)
	}
	all, err := d.Journal("r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(texts) {
		t.Fatalf("Journal has %d entries, want %d", len(all), len(texts))
	}
	for i, j := range all {
		if j.Seq != uint64(i+1) || j.Text != texts[i] {
			t.Errorf("entry %d = seq %d %q, want seq %d %q", i, j.Seq, j.Text, i+1, texts[i])
		}
	}

	// A second run's journal is numbered on its own.
	mustCommit(t, d, newUpdate("r1", orchestrator.StateCompleted, "a"))
	u2 := newUpdate("r2", orchestrator.StateRunning, "a")
	u2.Journal = journalEntries("r2", "first", "second")
	mustCreate(t, d, u2)
	if got, err := d.Journal("r2", 0); err != nil || len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Errorf("r2 journal = %+v, %v; want seqs 1, 2", got, err)
	}

	n := uint64(len(texts))
	for _, tc := range []struct {
		name  string
		after uint64
		want  []uint64
	}{
		{"all", 0, seqs(1, n)},
		{"after first", 1, seqs(2, n)},
		{"after middle", 3, seqs(4, n)},
		{"after last", n, nil},
		{"beyond", n + 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Journal("r1", tc.after)
			if err != nil {
				t.Fatal(err)
			}
			var gotSeqs []uint64
			for _, j := range got {
				gotSeqs = append(gotSeqs, j.Seq)
			}
			if !reflect.DeepEqual(gotSeqs, tc.want) {
				t.Errorf("Journal(after %d) seqs = %v, want %v", tc.after, gotSeqs, tc.want)
			}
		})
	}
	if _, err := d.Journal("nope", 0); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("Journal(unknown) = %v, want ErrRunNotFound", err)
	}
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestReplaceSteps(t *testing.T) {
	d := openDB(t, t.TempDir())
	old := newUpdate("r1", orchestrator.StateFailed, "a", "b", "c", "d")
	old.Journal = journalEntries("r1", "planned")
	mustCreate(t, d, old)
	done := old
	done.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepDone, Attempts: 1}}
	done.Journal = nil
	mustCommit(t, d, done)

	repl := newUpdate("r1", orchestrator.StateRunning, "a", "x")
	repl.Steps[0] = done.Steps[0]
	repl.ReplaceSteps = true
	repl.Journal = journalEntries("r1", "re-planned")
	mustCommit(t, d, repl)

	run, recs, err := d.LoadRun("r1")
	if err != nil {
		t.Fatalf("LoadRun after ReplaceSteps: %v", err)
	}
	if !reflect.DeepEqual(run.Plan, repl.Run.Plan) {
		t.Errorf("plan after ReplaceSteps:\n got %+v\nwant %+v", run.Plan, repl.Run.Plan)
	}
	if !reflect.DeepEqual(recs, repl.Steps) {
		t.Errorf("records after ReplaceSteps:\n got %+v\nwant %+v", recs, repl.Steps)
	}
	// The journal is append-only: re-planning does not drop it.
	if j, err := d.Journal("r1", 0); err != nil || len(j) != 2 || j[1].Text != "re-planned" || j[1].Seq != 2 {
		t.Errorf("journal after ReplaceSteps = %+v, %v", j, err)
	}
}

func TestLoadRunDetectsMismatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// update returns the run to create; edit, if set, changes the
		// closed file with bbolt before LoadRun.
		update func() orchestrator.Update
		edit   func(tx *bolt.Tx) error
	}{
		{name: "fewer records than steps", update: func() orchestrator.Update {
			u := newUpdate("r1", orchestrator.StateRunning, "a", "b", "c")
			u.Steps = u.Steps[:2]
			return u
		}},
		{name: "more records than steps", update: func() orchestrator.Update {
			u := newUpdate("r1", orchestrator.StateRunning, "a", "b")
			u.Steps = append(u.Steps, orchestrator.StepRecord{RunID: "r1", Index: 2, StepID: "c"})
			return u
		}},
		{name: "record names another step", update: func() orchestrator.Update {
			u := newUpdate("r1", orchestrator.StateRunning, "a", "b", "c")
			u.Steps[1].StepID = "z"
			return u
		}},
		{name: "records out of plan order", update: func() orchestrator.Update {
			u := newUpdate("r1", orchestrator.StateRunning, "a", "b", "c")
			u.Steps[1].StepID, u.Steps[2].StepID = "c", "b"
			return u
		}},
		{name: "record index gap", update: func() orchestrator.Update {
			u := newUpdate("r1", orchestrator.StateRunning, "a", "b", "c")
			u.Steps[2].Index = 5
			return u
		}},
		{name: "record is not JSON", update: func() orchestrator.Update {
			return newUpdate("r1", orchestrator.StateRunning, "a", "b")
		}, edit: func(tx *bolt.Tx) error {
			return runBucket(tx, "r1").Put(stepKey(1), []byte("{garbage"))
		}},
		{name: "plan missing", update: func() orchestrator.Update {
			return newUpdate("r1", orchestrator.StateRunning, "a")
		}, edit: func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPlans).Delete([]byte("r1"))
		}},
		{name: "run header is not JSON", update: func() orchestrator.Update {
			return newUpdate("r1", orchestrator.StateRunning, "a")
		}, edit: func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRuns).Put([]byte("r1"), []byte("\x00\x01"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d, err := Open(dir, lockTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.CreateRun(tc.update()); err != nil {
				d.Close()
				t.Fatalf("CreateRun: %v", err)
			}
			if tc.edit != nil {
				// An edit behind upgrader's back is caught when the file
				// is opened, before anything reads the run.
				d.Close()
				boltUpdate(t, filepath.Join(dir, FileName), tc.edit)
				_, err := Open(dir, lockTimeout)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "r1") {
					t.Fatalf("Open = %v, want ErrCorrupt naming r1", err)
				}
				return
			}
			t.Cleanup(func() { d.Close() })
			_, recs, err := d.LoadRun("r1")
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadRun = %v, want ErrCorrupt", err)
			}
			if recs != nil {
				t.Errorf("LoadRun returned %d records with the error", len(recs))
			}
			if !strings.Contains(err.Error(), "r1") {
				t.Errorf("error %q does not name the run", err)
			}
		})
	}
}

func TestDurableAfterCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reopen returns a new handle on the state written so far.
		reopen func(tb testing.TB, d *DB, dir string) *DB
	}{
		{"close and reopen", func(tb testing.TB, d *DB, dir string) *DB {
			if err := d.Close(); err != nil {
				tb.Fatal(err)
			}
			return openDB(tb, dir)
		}},
		{"copy of the file while open (no Close, as after a crash)", func(tb testing.TB, d *DB, dir string) *DB {
			cp := tb.TempDir()
			if err := os.WriteFile(filepath.Join(cp, FileName), readFile(tb, filepath.Join(dir, FileName)), 0o600); err != nil {
				tb.Fatal(err)
			}
			return openDB(tb, cp)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			d := openDB(t, dir)
			u := newUpdate("r1", orchestrator.StatePlanned, "a", "b")
			u.Journal = journalEntries("r1", "planned")
			mustCreate(t, d, u)
			c := newUpdate("r1", orchestrator.StateRunning, "a", "b")
			c.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: 0, StepID: "a", Status: orchestrator.StepStarted, Attempts: 1, StartedAt: t0}}
			c.Journal = journalEntries("r1", "intent a")
			mustCommit(t, d, c)

			d2 := tc.reopen(t, d, dir)
			run, recs, err := d2.LoadRun("r1")
			if err != nil {
				t.Fatalf("LoadRun on the new handle: %v", err)
			}
			if run.State != orchestrator.StateRunning {
				t.Errorf("state = %s, want running", run.State)
			}
			if len(recs) != 2 || recs[0].Status != orchestrator.StepStarted || recs[0].Attempts != 1 {
				t.Errorf("records = %+v, want step a started, attempt 1", recs)
			}
			if id, err := d2.ActiveRun(); err != nil || id != "r1" {
				t.Errorf("ActiveRun = %q, %v", id, err)
			}
			j, err := d2.Journal("r1", 0)
			if err != nil || len(j) != 2 || j[1].Text != "intent a" {
				b, _ := json.Marshal(j)
				t.Errorf("journal = %s, %v", b, err)
			}
		})
	}
}
