package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
// process and kills it, the vendor tool it is running and the tool's
// supervisor, all with SIGKILL, as a power loss would, at every checkpoint
// inside the tools: in the middle of a side effect. (The step boundaries
// are TestFaultPointsEveryProcedure's; upgrader killed alone, its child
// living on, is TestUpgraderKilledAlone.) Each run is resumed with
// `upgrader resume`:
//   - a tool that only reads the product or converges (pg_dump, service)
//     is run again, and the run must equal an uninterrupted one: step
//     records, host tree, service on/off log, no effect done twice;
//   - the vendor installer, cut half-way, is exactly what no upgrader can
//     repair: the simulated one, like a real one with no rollback, damages
//     the product if run over its half-finished self. resume must stop with
//     the step failed, naming the installer's log, without starting it
//     again and without touching the host.
func TestCrashResumeEveryPoint(t *testing.T) {
	base := newSim(t)
	base.mustRun(0, "run", "--yes")
	want := base.final(base.runID())
	var mu sync.Mutex
	var tried, identical, stopped, duplicates int
	// Subtests run in parallel; the figure is printed once they all ended.
	t.Cleanup(func() {
		fmt.Printf("mid-effect kills: %d tried (power loss: upgrader, the tool and its supervisor), %d resumed identically, "+
			"%d stopped at the interrupted installer without running it again, %d duplicate effects\n", tried, identical, stopped, duplicates)
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
			if strings.HasPrefix(kp, "installer:") {
				stop := checkInterruptedInstaller(t, s, r)
				mu.Lock()
				defer mu.Unlock()
				if stop && !t.Failed() {
					stopped++
				}
				return
			}
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

// checkInterruptedInstaller proves resume stopped at an installer cut by a
// power loss: the step failed naming the installer's log, the installer was
// not started again, the host was not damaged, and status keeps saying so
// (asked with statusArgs: the daemon's socket when it holds the state).
func checkInterruptedInstaller(t *testing.T, s *sim, r result, statusArgs ...string) bool {
	t.Helper()
	if r.code != exitFailed || !strings.Contains(r.stdout, "interrupted before it finished") || !strings.Contains(r.stdout, filepath.Join(s.state, "jobs")) {
		t.Errorf("resume after a power loss mid-installer: exit %d, want %d naming the installer's log\n%s\n%s", r.code, exitFailed, r.stdout, r.stderr)
		return false
	}
	if n := strings.Count(strings.Join(s.ledger(), " "), "installer_begin"); n != 1 {
		t.Errorf("the installer began %d times", n)
	}
	if b, err := os.ReadFile(filepath.Join(s.root, "var/lib/sim/CORRUPTED")); err == nil {
		t.Errorf("the host was damaged: %s", b)
	}
	st := s.mustRun(exitOK, append([]string{"status"}, statusArgs...)...).stdout
	if !strings.Contains(st, "interrupted before it finished") {
		t.Errorf("status does not say why the run stopped:\n%s", st)
	}
	canaryCheckHost(t, s)
	return true
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

// killToolGroup kills, as a power loss would, the paused simulated tool
// whose pid is in the marker file ("tool:n pid"): first the supervisor
// upgrader runs it under (the leader of its session), so that no end is
// recorded, then the tool's process group.
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
	if sid := sessionOf(pid); sid > 1 && sid != pid && sid != sessionOf(os.Getpid()) {
		syscall.Kill(sid, syscall.SIGKILL)
		waitDead(sid)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	waitDead(pid)
}

// sessionOf returns a process's session id, 0 if it is gone.
func sessionOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// waitDead waits until pid is gone or a zombie whose threads are all gone
// too (a killed Go process's leader is a zombie while its other threads
// still exit, holding its files: a job's lock, the state file's flock).
func waitDead(pid int) {
	for i := 0; i < 500; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); f[0] == "Z" || f[0] == "X" {
			if tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); len(tasks) <= 1 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// When upgrader alone dies (not its process group, as after an OOM kill),
// the installer it started lives on: resume waits for it (it says so),
// follows it to its end and carries on; the installer runs once.
func TestResumeFollowsTheInstallerLeftRunning(t *testing.T) {
	s := newSim(t)
	t.Cleanup(func() { killTools(s) }) // a held tool never outlives a failed test
	s.control("hold-at", "installer:2")
	c := s.cmd("run", "--yes")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(s.root, "sim/control/held")
	if !waitFile(t, held, 30*time.Second) {
		c.Process.Kill()
		t.Fatal("never reached the installer")
	}
	c.Process.Kill() // upgrader only: the installer lives on, held
	c.Wait()
	r := s.cmd("resume", "--yes")
	var out syncBuffer
	r.Stdout, r.Stderr = &out, &out
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	exited := watchExit(r)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "still running") && !exited.done() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if exited.done() || !strings.Contains(out.String(), "still running") {
		t.Fatalf("resume did not wait for the live installer:\n%s", out.String())
	}
	s.control("release", "")
	<-exited.ch
	if r.ProcessState.ExitCode() != exitOK {
		t.Fatalf("resume: exit %d\n%s", r.ProcessState.ExitCode(), out.String())
	}
	l := strings.Join(s.ledger(), " ")
	if strings.Count(l, "installer_begin") != 1 || strings.Count(l, "installer_done") != 1 {
		t.Fatalf("ledger %s: the installer must run once", l)
	}
	if fileExists(filepath.Join(s.root, "var/run/upgrader-installer.pid")) {
		t.Error("bookkeeping left in the host tree")
	}
}
