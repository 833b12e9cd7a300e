package main

import (
	bin "encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Torn artifacts: a verified file that changes between its verification
// and the step that relies on it is caught before the point of no return,
// whatever the change: the DB backup cut short at a random offset, or a
// byte of the verified ISO flipped with its size and time kept.

// stopAfter runs the upgrade until step's result is recorded and kills it
// there (SIGKILL), as if the engineer's session died.
func stopAfter(t *testing.T, s *sim, step string) {
	t.Helper()
	c := s.cmd("run", "--yes")
	c.Env = append(c.Env, "UPGRADER_FAILPOINT=after-result:"+step, "UPGRADER_FAILPOINT_ACTION=kill")
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run did not stop after %s: %v\n%s", step, err, out)
	}
}

// tamper changes a file in place: truncated to size, or one byte flipped
// at offset with its size and modification time kept.
func tamper(t *testing.T, path string, truncate bool, offset int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if truncate {
		if err := os.Truncate(path, offset); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, offset)
	b[0] ^= 0x20
	f.WriteAt(b, offset)
	f.Close()
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func TestTornArtifactsCaughtBeforePointOfNoReturn(t *testing.T) {
	seed := faultSeed()
	rng := rand.New(rand.NewPCG(seed, 3))
	type tornCase struct {
		name     string
		after    string // step whose result is recorded before the change
		file     func(s *sim) string
		truncate bool
	}
	backup := func(s *sim) string {
		m, _ := filepath.Glob(filepath.Join(s.root, "var/backups/upgrader/*.dump"))
		if len(m) != 1 {
			t.Fatalf("backups: %v", m)
		}
		return m[0]
	}
	iso := func(s *sim) string {
		return filepath.Join(s.root, "media/POM.03.01.01.01.00.003-r35434-x86_64.iso")
	}
	n := 3
	if fullFaults() {
		n = 12
	}
	var cases []tornCase
	for range n {
		cases = append(cases,
			tornCase{"backup cut short", "backup-db", backup, true},
			tornCase{"backup byte flipped", "backup-db", backup, false},
			tornCase{"ISO byte flipped", "verify-media", iso, false})
	}
	var mu sync.Mutex
	caught := map[string]int{}
	t.Cleanup(func() {
		total := 0
		for _, c := range caught {
			total += c
		}
		fmt.Printf("torn artifacts: %d tried (%d backups cut short, %d backup bytes flipped, %d ISO bytes flipped; seed %d), %d caught before the point of no return\n",
			len(cases), n, n, n, seed, total)
	})
	for i, tc := range cases {
		offset := rng.Float64()
		t.Run(fmt.Sprintf("%d %s", i, tc.name), func(t *testing.T) {
			t.Parallel()
			s := newSim(t)
			stopAfter(t, s, tc.after)
			path := tc.file(s)
			st, _ := os.Stat(path)
			at := int64(offset * float64(st.Size()))
			tamper(t, path, tc.truncate, at)
			r := s.run("resume", "--yes")
			if r.code != exitFailed || !strings.Contains(r.stdout+r.stderr, "changed since it was verified") {
				t.Fatalf("%s at offset %d of %d: resume exit %d\n%s\n%s", tc.name, at, st.Size(), r.code, r.stdout, r.stderr)
			}
			for _, e := range s.ledger() {
				if strings.HasPrefix(e, "installer_") {
					t.Fatalf("the installer ran on a changed %s: %v", tc.name, s.ledger())
				}
			}
			var status struct {
				Past bool `json:"past_point_of_no_return"`
			}
			json.Unmarshal([]byte(s.mustRun(exitOK, "status", "-o", "json").stdout), &status)
			if status.Past {
				t.Fatal("the run went past the point of no return")
			}
			canaryCheckHost(t, s)
			mu.Lock()
			caught[tc.name]++
			mu.Unlock()
		})
	}
}

// A damaged state file stops every command with what to do; restore-state
// puts the snapshot of the last completed step back (keeping the damaged
// file), and resume finishes the run exactly like an undisturbed one.
func TestRestoreStateAfterDamage(t *testing.T) {
	base := newSim(t)
	base.mustRun(exitOK, "run", "--yes")
	want := base.final(base.runID())

	s := newSim(t)
	stopAfter(t, s, "mpp-config-mpp1")
	id := s.runID()
	db := filepath.Join(s.state, "state.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// Both meta pages: no whole commit to open (one alone is a torn
	// commit, opened at the one before it: TestTornMetaPageOpensAtTheCommitBefore).
	b[16] ^= 0x01
	b[os.Getpagesize()+16] ^= 0x01
	os.WriteFile(db, b, 0o600)
	for _, args := range [][]string{{"status"}, {"resume", "--yes"}, {"run", "--yes"}} {
		r := s.run(args...)
		if r.code != exitError || !strings.Contains(r.stderr, "damaged") || !strings.Contains(r.stderr, "restore-state") {
			t.Fatalf("%v on a damaged state: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	r := s.mustRun(exitOK, "restore-state")
	// The copy is of the run's last milestone (its start, a saved job key or
	// boot id, an irreversible intent), not of the last completed step: the
	// steps done after it are probed again and found in place.
	if !strings.Contains(r.stdout, "after step ") || !strings.Contains(r.stdout, "upgrader resume") {
		t.Errorf("restore-state does not say what it restored and what next:\n%s", r.stdout)
	}
	kept, _ := filepath.Glob(db + ".damaged-*")
	if len(kept) != 1 {
		t.Fatalf("damaged file kept as %v", kept)
	}
	s.mustRun(exitUsage, "restore-state") // healthy now: nothing to restore
	s.mustRun(exitOK, "resume", "--yes")
	compareFinal(t, want, s.final(id))
}

// A restored state never forgets that the point of no return passed: the
// intent of the irreversible step is in the snapshot, so after the state
// is damaged and restored, abort is still refused and resume follows the
// installer's step instead of treating the run as undecided.
func TestRestoreStateKeepsThePointOfNoReturn(t *testing.T) {
	s := newSim(t)
	c := s.cmd("run", "--yes")
	c.Env = append(c.Env, "UPGRADER_FAILPOINT=after-intent:upgrade-pom", "UPGRADER_FAILPOINT_ACTION=kill")
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run did not stop at the upgrade's intent: %v\n%s", err, out)
	}
	db := filepath.Join(s.state, "state.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	// The newest meta page, the upgrade's intent: damaged after that commit
	// was acknowledged. Falling back one commit would forget the intent;
	// the snapshot, taken at that commit, says so and the file is refused.
	newest := 16
	if bin.LittleEndian.Uint64(b[os.Getpagesize()+16+48:]) > bin.LittleEndian.Uint64(b[16+48:]) {
		newest += os.Getpagesize()
	}
	b[newest] ^= 0x01
	os.WriteFile(db, b, 0o600)
	if r := s.run("status"); r.code != exitError || !strings.Contains(r.stderr, "snapshot") {
		t.Fatalf("status on a state whose acknowledged last commit is damaged: exit %d\n%s", r.code, r.stderr)
	}
	s.mustRun(exitOK, "restore-state")
	a := s.mustRun(exitBlocked, "abort", "--reason", "after the restore")
	if !strings.Contains(a.stderr, "point of no return") || !strings.Contains(a.stderr, "upgrade-pom") {
		t.Fatalf("abort after the restore: %s", a.stderr)
	}
	if st := s.mustRun(exitOK, "status").stdout; !strings.Contains(st, "past the point of no return (upgrade-pom)") {
		t.Fatalf("status after the restore does not know the upgrade began:\n%s", st)
	}
	s.mustRun(exitOK, "resume", "--yes")
}

// A power cut while the last commit's meta page was written (the intent of
// a step, killed right after it): the state opens at the commit before,
// says so in the journal, and resume finishes the run exactly like an
// undisturbed one, the step started as if for the first time.
func TestTornMetaPageOpensAtTheCommitBefore(t *testing.T) {
	base := newSim(t)
	base.mustRun(exitOK, "run", "--yes")
	want := base.final(base.runID())

	s := newSim(t)
	c := s.cmd("run", "--yes")
	c.Env = append(c.Env, "UPGRADER_FAILPOINT=after-intent:mpp-config-mpp1", "UPGRADER_FAILPOINT_ACTION=kill")
	if out, err := c.CombinedOutput(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run did not stop at the intent: %v\n%s", err, out)
	}
	id := s.runID()
	db := filepath.Join(s.state, "state.db")
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	newest := 16
	if bin.LittleEndian.Uint64(b[page+16+48:]) > bin.LittleEndian.Uint64(b[16+48:]) {
		newest += page
	}
	for i := newest + 44; i < newest+64; i++ { // txid and checksum half written
		b[i] = 0
	}
	os.WriteFile(db, b, 0o600)
	s.mustRun(exitOK, "status")
	s.mustRun(exitOK, "resume", "--yes")
	compareFinal(t, want, s.final(id))
	j := s.mustRun(exitOK, "journal", "--run", id).stdout
	if !strings.Contains(j, "was incomplete, a power cut during a write") {
		t.Errorf("the journal does not say the state fell back:\n%s", j)
	}
}
