package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// toolPoints are the checkpoints inside the simulated tools, in the order
// the upgrade reaches them.
var toolPoints = []string{"pg_dump:1", "pg_dump:2", "pg_dump:3", "service-stop:1",
	"installer:1", "installer:2", "installer:3", "installer:4", "service-start:1"}

// TestCrashResumeEveryPoint runs the POM 3.1.1 → SP1 upgrade as a real
// process and SIGKILLs it, and the vendor tool it is running (as a power
// loss would), at every checkpoint inside the tools: in the middle of a
// side effect. (The step boundaries are TestFaultPointsEveryProcedure's.)
// Each run is resumed with `upgrader resume` and must equal an
// uninterrupted run: step records, host tree, service on/off log, and no
// non-idempotent effect done twice.
func TestCrashResumeEveryPoint(t *testing.T) {
	base := newSim(t)
	base.mustRun(0, "run", "--yes")
	want := base.final(base.runID())
	var mu sync.Mutex
	var tried, identical, duplicates int
	// Subtests run in parallel; the figure is printed once they all ended.
	t.Cleanup(func() {
		fmt.Printf("mid-effect kills: %d tried, %d resumed identically, %d duplicate effects\n", tried, identical, duplicates)
	})
	for _, kp := range toolPoints {
		t.Run(strings.NewReplacer(":", "@").Replace(kp), func(t *testing.T) {
			t.Parallel()
			mu.Lock()
			tried++
			mu.Unlock()
			s := newSim(t)
			killAt(t, s, kp)
			r := s.run("resume", "--yes")
			if r.code != 0 {
				t.Fatalf("resume after kill at %s: exit %d\n%s\n%s", kp, r.code, r.stdout, r.stderr)
			}
			got := s.final(s.runID())
			dups := compareFinal(t, want, got)
			canaryCheckHost(t, s)
			mu.Lock()
			defer mu.Unlock()
			duplicates += dups
			if !t.Failed() {
				identical++
			}
		})
	}
}

// killAt starts `upgrader run --yes`, waits until it stops at kp, and
// kills its whole process group and the tool's with SIGKILL.
func killAt(t *testing.T, s *sim, kp string) {
	t.Helper()
	c := s.cmd("run", "--yes")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.control("pause-at", kp)
	mark := filepath.Join(s.root, "sim/control/paused")
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	stopped := false
	deadline := time.After(60 * time.Second)
	for !stopped {
		select {
		case err := <-exited:
			t.Fatalf("upgrader exited (%v) before reaching %s:\n%s", err, kp, out.String())
		case <-deadline:
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			t.Fatalf("upgrader never reached %s:\n%s", kp, out.String())
		case <-time.After(5 * time.Millisecond):
			_, err := os.Stat(mark)
			stopped = err == nil
		}
	}
	if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A vendor tool runs in a process group of its own; a power loss takes
	// it down too.
	killToolGroup(t, mark)
	<-exited
	// The pause file was consumed when it fired; nothing of the crash
	// harness may steer the resumed run.
	os.Remove(mark)
}

// compareFinal reports every difference and returns how many effects
// happened more than once.
func compareFinal(t *testing.T, want, got finalState) (duplicates int) {
	t.Helper()
	if strings.Join(got.Steps, "\n") != strings.Join(want.Steps, "\n") {
		t.Errorf("step records differ:\n got:\n  %s\nwant:\n  %s", strings.Join(got.Steps, "\n  "), strings.Join(want.Steps, "\n  "))
	}
	if got.Tree != want.Tree {
		t.Errorf("host tree differs from the uninterrupted run")
	}
	if strings.Join(got.Services, " ") != strings.Join(want.Services, " ") {
		t.Errorf("service log: got %v, want %v", got.Services, want.Services)
	}
	seen := map[string]int{}
	for _, e := range got.Effects {
		seen[e]++
	}
	for e, n := range seen {
		if n > 1 {
			t.Errorf("effect %q happened %d times", e, n)
			duplicates += n - 1
		}
	}
	if fmt.Sprint(got.Effects) != fmt.Sprint(want.Effects) {
		t.Errorf("effects: got %v, want %v", got.Effects, want.Effects)
	}
	return duplicates
}

// killToolGroup kills the process group of the paused simulated tool whose
// pid is in the marker file ("tool:n pid").
func killToolGroup(t *testing.T, mark string) {
	t.Helper()
	b, err := os.ReadFile(mark)
	if err != nil {
		t.Fatal(err)
	}
	var where string
	var pid int
	if _, err := fmt.Sscan(string(b), &where, &pid); err != nil || pid <= 1 {
		t.Fatalf("marker %q: %v", b, err)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 500 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// When upgrader alone dies (not its process group, as after an OOM kill),
// the installer it started keeps running: resume refuses to start a second
// one beside it, and carries on once it is gone.
func TestResumeRefusesSecondInstallerBesideOrphan(t *testing.T) {
	s := newSim(t)
	s.control("pause-at", "installer:2")
	c := s.cmd("run", "--yes")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	paused := filepath.Join(s.root, "sim/control/paused")
	if !waitFile(t, paused, 30*time.Second) {
		c.Process.Kill()
		t.Fatal("never reached the installer")
	}
	c.Process.Kill() // upgrader only: the installer lives on, paused
	c.Wait()
	defer killToolGroup(t, paused)
	r := s.run("resume", "--yes")
	if r.code != exitFailed || !strings.Contains(r.stdout, "still running") {
		t.Fatalf("resume beside a live installer: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	killToolGroup(t, paused)
	s.mustRun(exitOK, "resume", "--yes")
	if n := strings.Count(strings.Join(s.ledger(), " "), "installer_begin"); n != 2 {
		t.Fatalf("installer began %d times, want the orphan's and one more", n)
	}
}
