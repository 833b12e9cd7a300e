package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
)

func decodePlan(t *testing.T, out string) orchestrator.Plan {
	t.Helper()
	var p orchestrator.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan JSON: %v\n%s", err, out)
	}
	return p
}

// The three what-if answers the plan must give for the bundled host.
func TestPlanWhatIfPOMVersions(t *testing.T) {
	s := newSim(t)
	t.Run("3.1.0 is blocked: upgrade to 3.1.1 first", func(t *testing.T) {
		r := s.mustRun(exitBlocked, "plan", "--assume", "pom.version=3.1.0", "-o", "json")
		p := decodePlan(t, r.stdout)
		if len(p.Blockers) != 1 || p.Blockers[0].ID != "pom-upgrade-from-3.1.1-only" || !strings.Contains(p.Blockers[0].Message, "upgrade to 3.1.1 first") {
			t.Fatalf("blockers: %+v", p.Blockers)
		}
		if !p.Facts[orchestrator.FactPOMVersion].Assumed {
			t.Error("the assumed version is not marked as assumed")
		}
	})
	t.Run("3.1.1 SP1 has nothing to do", func(t *testing.T) {
		r := s.mustRun(exitOK, "plan", "--assume", "pom.version=3.1.1 SP1", "-o", "json")
		p := decodePlan(t, r.stdout)
		if !p.NothingToDo || len(p.Steps) != 0 || len(p.Blockers) != 0 {
			t.Fatalf("nothing_to_do=%v steps=%d blockers=%v", p.NothingToDo, len(p.Steps), p.Blockers)
		}
	})
	t.Run("3.1.1 lists the steps with the point of no return", func(t *testing.T) {
		r := s.mustRun(exitOK, "plan", "--assume", "pom.version=3.1.1", "-o", "json")
		p := decodePlan(t, r.stdout)
		if p.PointOfNoReturn != "upgrade-pom" || len(p.Steps) < 6 {
			t.Fatalf("point_of_no_return=%q steps=%d", p.PointOfNoReturn, len(p.Steps))
		}
		text := s.mustRun(exitOK, "plan", "--assume", "pom.version=3.1.1").stdout
		line := strings.Index(text, "point of no return: upgrade-pom")
		if line < 0 || line > strings.Index(text, "6  upgrade-pom") || line < strings.Index(text, "5  stop-services") {
			t.Fatalf("text plan does not draw the point of no return between steps 5 and 6:\n%s", text)
		}
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	s := newSim(t)
	for name, args := range map[string][]string{
		"bad output":        {"plan", "-o", "xml"},
		"unknown flag":      {"plan", "--frobnicate"},
		"bad assumption":    {"plan", "--assume", "pom.version=1.2.x"},
		"unknown fact":      {"plan", "--assume", "colour=blue"},
		"bad procedure":     {"plan", "--procedure", "pom-9.9-upgrade"},
		"missing profile":   {"plan", "--profile", filepath.Join(s.dir, "nope.yaml")},
		"nothing to resume": {"resume"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.run(args...)
			if r.code != exitUsage || !strings.Contains(r.stderr, "upgrader:") {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, exitUsage, r.stderr)
			}
		})
	}
}

func TestUnknownProfileKeyNamesTheLine(t *testing.T) {
	s := newSim(t)
	b, _ := os.ReadFile(s.profile)
	os.WriteFile(s.profile, append(b, []byte("colour: blue\n")...), 0o644)
	r := s.mustRun(exitUsage, "plan")
	if !strings.Contains(r.stderr, "colour") || !strings.Contains(r.stderr, "line ") {
		t.Fatalf("stderr does not name the key and line: %s", r.stderr)
	}
}

// A guided run with no terminal, consented to by the reviewed plan's
// fingerprint, stops at the operator gate (exit 5) and says what to type;
// resume --yes finishes it.
func TestGuidedRunPausesAtGateThenCompletes(t *testing.T) {
	s := newSim(t)
	r := s.mustRun(exitPaused, "run", "--expect-fingerprint", s.reviewed())
	if !strings.Contains(r.stdout, "Next: ") || !strings.Contains(r.stdout, "upgrader confirm enable-dnc-import") {
		t.Fatalf("no next command:\n%s", r.stdout)
	}
	st := s.mustRun(exitOK, "status").stdout
	if !strings.Contains(st, "waiting-operator") || !strings.Contains(st, "past the point of no return") {
		t.Fatalf("status:\n%s", st)
	}
	s.mustRun(exitOK, "resume", "--yes")
	v, _ := os.ReadFile(filepath.Join(s.root, "opt/Avaya/avpom/POManager/config/version.properties"))
	if !strings.Contains(string(v), "POM.03.01.01.01.00.003") {
		t.Fatalf("version after upgrade: %s", v)
	}
	j := s.mustRun(exitOK, "journal", "-o", "json").stdout
	var entries []orchestrator.JournalEntry
	if err := json.Unmarshal([]byte(j), &entries); err != nil {
		t.Fatal(err)
	}
	var confirmedBy string
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("journal seq %d at position %d", e.Seq, i)
		}
		if e.Event == "run.confirm" {
			confirmedBy = e.Actor
		}
	}
	if !strings.HasPrefix(confirmedBy, "uid=") {
		t.Fatalf("gate confirmation not journaled with the operator's uid: %q", confirmedBy)
	}
	if last := entries[len(entries)-1]; last.Event != "run.complete" {
		t.Fatalf("last journal event %s", last.Event)
	}
}

// A failing installer stops the run with exit 4; abort is then refused
// (past the point of no return) and resume retries and completes.
func TestFailedInstallerRetriesAndRefusesAbort(t *testing.T) {
	s := newSim(t)
	s.control("fail-at", "installer:3")
	r := s.mustRun(exitFailed, "run", "--yes")
	if !strings.Contains(r.stdout, "simulated failure at installer:3") {
		t.Fatalf("failure not shown:\n%s", r.stdout)
	}
	a := s.mustRun(exitBlocked, "abort", "--reason", "give up")
	if !strings.Contains(a.stderr, "point of no return") {
		t.Fatalf("abort refusal does not say why: %s", a.stderr)
	}
	sk := s.mustRun(exitBlocked, "skip", "upgrade-pom", "--reason", "try")
	if !strings.Contains(sk.stderr, "may not be skipped") {
		t.Fatalf("skip refusal: %s", sk.stderr)
	}
	s.mustRun(exitOK, "resume", "--yes")
	if got := strings.Count(strings.Join(s.ledger(), " "), "installer_done"); got != 1 {
		t.Fatalf("installer completed %d times", got)
	}
}

// Before the point of no return a run can be aborted, and a skippable gate
// can be skipped with a reason.
func TestAbortBeforePointOfNoReturnAndSkipGate(t *testing.T) {
	s := newSim(t)
	s.control("fail-at", "pg_dump:2")
	s.mustRun(exitFailed, "run", "--yes")
	s.mustRun(exitBlocked, "skip", "backup-db", "--reason", "no time")
	s.mustRun(exitOK, "abort", "--reason", "window closed")
	if st := s.mustRun(exitOK, "status").stdout; !strings.Contains(st, "aborted") {
		t.Fatalf("status after abort:\n%s", st)
	}

	// A skip lets the run go on: at the last gate it completes, with
	// nothing left "in flight".
	g := newSim(t)
	g.mustRun(exitPaused, "run", "--expect-fingerprint", g.reviewed())
	g.mustRun(exitUsage, "skip", "enable-dnc-import")
	sk := g.mustRun(exitOK, "skip", "enable-dnc-import", "--reason", "site has no DNC lists")
	if !strings.Contains(sk.stdout, ": completed") || strings.Contains(sk.stdout, "in flight") {
		t.Fatalf("skip at the last gate:\n%s", sk.stdout)
	}
	if st := g.mustRun(exitOK, "status").stdout; !strings.Contains(st, "skipped: site has no DNC lists") || !strings.Contains(st, "completed") {
		t.Fatalf("status:\n%s", st)
	}
}

// Invariant 5: a changed profile is noticed on resume and refused unless
// the engineer re-plans explicitly.
func TestResumeRefusesChangedPlan(t *testing.T) {
	s := newSim(t)
	s.mustRun(exitPaused, "run", "--expect-fingerprint", s.reviewed())
	b, _ := os.ReadFile(s.profile)
	os.WriteFile(s.profile, []byte(strings.Replace(string(b), "site: sim-pom-01", "site: sim-pom-02", 1)), 0o644)
	r := s.mustRun(exitBlocked, "resume", "--yes")
	if !strings.Contains(r.stderr, "plan changed") || !strings.Contains(r.stderr, "--replan") {
		t.Fatalf("refusal does not explain: %s", r.stderr)
	}
	s.mustRun(exitOK, "resume", "--yes", "--replan")
	if j := s.mustRun(exitOK, "journal").stdout; !strings.Contains(j, "run.replanned") {
		t.Fatalf("replan not journaled:\n%s", j)
	}
}

// Nothing irreversible starts without consent: with no terminal, run
// needs --yes or the reviewed fingerprint, else it exits 2 and touches
// nothing (no state, no backup, no service stopped).
func TestRunWithoutConsentTouchesNothing(t *testing.T) {
	s := newSim(t)
	before := s.treeHash("")
	for _, cmd := range []string{"run", "start"} {
		r := s.mustRun(exitUsage, cmd)
		if !strings.Contains(r.stderr, "--expect-fingerprint") || !strings.Contains(r.stderr, "nothing was started") {
			t.Errorf("%s without consent says: %s", cmd, r.stderr)
		}
	}
	if after := s.treeHash(""); after != before {
		t.Error("the host changed")
	}
	if _, err := os.Stat(s.state); !os.IsNotExist(err) {
		t.Errorf("the state directory was made: %v", err)
	}
	if l := s.ledger(); len(l) != 0 {
		t.Errorf("effects: %v", l)
	}
}

func TestRunRefusesUnreviewedFingerprint(t *testing.T) {
	s := newSim(t)
	p := decodePlan(t, s.mustRun(exitOK, "plan", "-o", "json").stdout)
	s.mustRun(exitBlocked, "run", "--yes", "--expect-fingerprint", "0000000000000000")
	s.mustRun(exitOK, "run", "--yes", "--expect-fingerprint", orchestrator.ShortFingerprint(p.Fingerprint))
}

// A second upgrader on the same state fails fast with a clear message.
func TestSecondProcessIsRefused(t *testing.T) {
	s := newSim(t)
	s.control("pause-at", "installer:2")
	first := s.cmd("run", "--yes")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	paused := filepath.Join(s.root, "sim/control/paused")
	defer func() { first.Process.Kill(); first.Wait() }()
	if !waitFile(t, paused, 30*time.Second) {
		t.Fatal("first run never reached the installer")
	}
	defer killToolGroup(t, paused)
	start := time.Now()
	r := s.mustRun(exitError, "status")
	if !strings.Contains(r.stderr, "in use by another upgrader") || time.Since(start) > 10*time.Second {
		t.Fatalf("second process: %s (after %s)", r.stderr, time.Since(start))
	}
}

func TestLifecycleMermaid(t *testing.T) {
	s := newSim(t)
	out := s.mustRun(exitOK, "lifecycle", "--mermaid").stdout
	for _, st := range orchestrator.AllStates() {
		if !strings.Contains(out, string(st)) {
			t.Errorf("diagram lacks state %s", st)
		}
	}
	if !strings.HasPrefix(out, "stateDiagram") {
		t.Errorf("not a mermaid state diagram:\n%s", out)
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	s := newSim(t)
	out := s.mustRun(exitOK, "--help").stdout
	for _, want := range []string{"0  done", "2  usage", "3  blocked", "4  a step failed", "5  paused"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// Ctrl-C during the irreversible installer stops upgrader, not the
// installer: upgrader says it goes on and where its log is, leaves the step
// started, and resume follows it (or reads how it ended), never starting a
// second one.
func TestInterruptLeavesTheInstallerRunning(t *testing.T) {
	s := newSim(t)
	t.Cleanup(func() { killTools(s) }) // a held tool never outlives a failed test
	s.control("hold-at", "installer:2")
	c := s.cmd("run", "--yes")
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(s.root, "sim/control/held")
	if !waitFile(t, held, 30*time.Second) {
		c.Process.Kill()
		t.Fatalf("installer never reached its hold:\n%s", out.String())
	}
	c.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		t.Fatalf("upgrader did not stop on Ctrl-C:\n%s", out.String())
	}
	if c.ProcessState.ExitCode() != exitError || !strings.Contains(out.String(), "the installer goes on") ||
		!strings.Contains(out.String(), filepath.Join(s.state, "jobs")) {
		t.Fatalf("after Ctrl-C: exit %d, want %d naming the installer's log:\n%s", c.ProcessState.ExitCode(), exitError, out.String())
	}
	if !fileExists(held) {
		t.Fatal("the installer did not survive the Ctrl-C")
	}
	st := s.mustRun(exitOK, "status", "-o", "json").stdout
	var doc struct {
		Steps []orchestrator.StepRecord `json:"steps"`
	}
	json.Unmarshal([]byte(st), &doc)
	for _, r := range doc.Steps {
		if r.StepID == "upgrade-pom" && r.Status != orchestrator.StepStarted {
			t.Fatalf("upgrade-pom is %s, want started (to be followed again)", r.Status)
		}
	}
	s.control("release", "")
	r := s.mustRun(exitOK, "resume", "--yes")
	if l := strings.Join(s.ledger(), " "); strings.Count(l, "installer_begin") != 1 || strings.Count(l, "installer_done") != 1 {
		t.Fatalf("ledger %s: the installer must run once\n%s", l, r.stdout)
	}
}

// The stand-alone media check: exit 0 only when everything verifies, and
// every failure named.
func TestVerifyMediaCommand(t *testing.T) {
	s := newSim(t)
	iso := filepath.Join(s.root, "media", "POM.03.01.01.01.00.003-r35434-x86_64.iso")
	const sum = "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193"
	r := s.mustRun(exitOK, "verify-media", iso, "--sha256", sum, "--size", "270336")
	if !strings.Contains(r.stdout, "verifies (origin: unproven)") || !strings.Contains(r.stdout, "WARN origin") {
		t.Fatalf("good media:\n%s", r.stdout)
	}
	r = s.mustRun(exitFailed, "verify-media", iso, "--sha256", strings.Repeat("0", 64), "--size", "1", "-o", "json")
	var doc struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check string `json:"check"`
			OK    bool   `json:"ok"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, c := range doc.Checks {
		if !c.OK {
			failed = append(failed, c.Check)
		}
	}
	if doc.OK || strings.Join(failed, ",") != "size,sha256,signature" {
		t.Fatalf("ok=%v failed=%v", doc.OK, failed)
	}
	s.mustRun(exitUsage, "verify-media")
}
