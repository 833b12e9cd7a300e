package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The "upgrader killed alone" family: only upgrader's own process dies
// while one of its long children runs: SIGKILL to its pid (the OOM killer),
// SIGHUP when the terminal of a foreground run goes away (a dropped SSH
// session), or the daemon killed -9 and started again. The simulated tools
// are not idempotent (simlib.sh, sim_begin): a second one started beside a
// live one, or one started over an interrupted one, damages the host. The
// child must live on, and `upgrader resume --yes` (or the restarted daemon)
// must wait for it and carry on: the end equals an undisturbed run's, no
// tool was interrupted and none ran twice. `make test` runs a seeded
// sample; UPGRADER_FAULTS=full runs every case.

// aloneTool is a tool of a scenario and the checkpoints it is held at.
type aloneTool struct {
	scenario string
	tool     string   // file in sim/bin
	points   []string // checkpoints "name:n", in the order the run reaches them
}

var aloneTools = []aloneTool{
	{"pom-upgrade", "pg_dump", []string{"pg_dump:1", "pg_dump:2", "pg_dump:3"}},
	{"pom-upgrade", "pom-installer", []string{"installer:1", "installer:2", "installer:3", "installer:4"}},
	{"pom-install", "pom-installer", []string{"installer-fresh:1", "installer-fresh:2"}},
	{"pc-upgrade", "pc-install", []string{"pc-install-dialer:1", "pc-install-dialer:2", "pc-install-dialer:3", "pc-install-database:2"}},
}

// aloneCase is one kill of upgrader alone.
type aloneCase struct {
	sc   scenario
	tool string
	hold string // the checkpoint the tool is held at until upgrader is back
	// appear kills upgrader as soon as a process appears, not once the
	// tool is held: "tool" (the tool's own process) or "supervisor" (the
	// supervisor upgrader starts it under, before the tool exists).
	appear string
	how    string // sigkill, sighup, daemon
}

func (c aloneCase) String() string {
	at := c.hold
	if c.appear != "" {
		at = "appear-" + c.appear + "-" + c.tool
	}
	return fmt.Sprintf("%s_%s_%s", c.sc.name, strings.ReplaceAll(at, ":", "@"), c.how)
}

func aloneCases() []aloneCase {
	byName := map[string]scenario{}
	for _, sc := range scenarios {
		byName[sc.name] = sc
	}
	var cases []aloneCase
	for _, how := range []string{"sigkill", "sighup", "daemon"} {
		for _, at := range aloneTools {
			sc := byName[at.scenario]
			for _, appear := range []string{"supervisor", "tool"} {
				cases = append(cases, aloneCase{sc: sc, tool: at.tool, hold: at.points[0], appear: appear, how: how})
			}
			for _, p := range at.points {
				cases = append(cases, aloneCase{sc: sc, tool: at.tool, hold: p, how: how})
			}
		}
	}
	return cases
}

// aloneSample picks, under `make test`, one case of each kind of kill and
// a few more, every scenario and both kinds of kill point among them.
func aloneSample(rng *rand.Rand, all []aloneCase) []aloneCase {
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	var out []aloneCase
	seen := map[string]bool{}
	for _, c := range all {
		keys := []string{c.how, c.sc.name, "appear:" + c.appear}
		fresh := false
		for _, k := range keys {
			fresh = fresh || !seen[k]
		}
		if fresh || len(out) < 6 {
			out = append(out, c)
			for _, k := range keys {
				seen[k] = true
			}
		}
		if len(out) >= 6 && len(seen) >= 3+3+3 {
			break
		}
	}
	return out
}

// TestUpgraderKilledAlone is the family.
func TestUpgraderKilledAlone(t *testing.T) {
	seed := faultSeed()
	cases := aloneCases()
	if !fullFaults() {
		cases = aloneSample(rand.New(rand.NewPCG(seed, 3)), cases)
	}
	var mu sync.Mutex
	var tried, identical, interrupted, twice int
	per := map[string]int{}
	t.Cleanup(func() {
		fmt.Printf("upgrader killed alone: %d tried (%d SIGKILL, %d SIGHUP, %d daemon -9; seed %d), %d resumed identically, %d tools interrupted, %d run twice\n",
			tried, per["sigkill"], per["sighup"], per["daemon"], seed, identical, interrupted, twice)
	})
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			b := baselineOf(t, c.sc)
			var damage hostDamage
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				tried++
				per[c.how]++
				if len(damage.interrupted) > 0 {
					interrupted++
				}
				if len(damage.twice) > 0 {
					twice++
				}
				if !t.Failed() {
					identical++
				}
			}()
			s := killAlone(t, c)
			got := s.final(s.runID())
			if c.how == "daemon" {
				// Who confirmed a gate says how: the same operator.
				for i, l := range got.Steps {
					got.Steps[i] = strings.ReplaceAll(l, " via socket", "")
				}
			}
			compareFinal(t, b.want[0], got)
			damage = damageOf(t, s, b.ledgers[0])
			for _, d := range damage.interrupted {
				t.Errorf("interrupted: %s", d)
			}
			for _, d := range damage.twice {
				t.Errorf("run twice: %s", d)
			}
			if fileExists(filepath.Join(s.root, "var/run/upgrader-installer.pid")) {
				t.Errorf("upgrader left its bookkeeping in the host tree (var/run/upgrader-installer.pid)")
			}
			canaryCheckHost(t, s)
		})
	}
}

// killAlone runs the scenario, kills upgrader alone at the case's point,
// resumes it while the tool is held, releases the tool, and returns the
// host once the run and every tool have ended.
func killAlone(t *testing.T, c aloneCase) *sim {
	t.Helper()
	s := newSimHost(t, c.sc.hosts[0])
	s.control("hold-at", c.hold)
	held := filepath.Join(s.root, "sim/control/held")
	toolPath := filepath.Join(s.root, "sim/bin", c.tool)
	t.Cleanup(func() { killTools(s) })
	args := append([]string{"run", "--yes"}, c.sc.args...)

	// The kill.
	var out syncBuffer
	reached := func() bool {
		switch c.appear {
		case "tool":
			return len(toolPids(s, toolPath)) > 0
		case "supervisor":
			return len(supervisorPids(s, toolPath)) > 0
		}
		return fileExists(held)
	}
	waitReached := func(exited func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !reached() {
			if exited() || time.Now().After(deadline) {
				t.Fatalf("upgrader never reached %s:\n%s", c, out.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	switch c.how {
	case "sigkill":
		cmd := s.cmd(args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		first := watchExit(cmd)
		waitReached(first.done)
		cmd.Process.Signal(syscall.SIGKILL) // its pid only: not its group
		<-first.ch
	case "sighup":
		cmd := s.cmd(args...)
		hangup := startHangupTerminal(t, cmd, &out)
		first := watchExit(cmd)
		waitReached(first.done)
		hangup() // the terminal goes away: the kernel sends SIGHUP
		select {
		case <-first.ch:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("upgrader outlived its terminal")
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
			t.Fatalf("upgrader did not die of the hangup: %v", cmd.ProcessState)
		}
	case "daemon":
		d := s.startDaemonWith(t, nil)
		// The plan's options travel with the request.
		starter := s.cmd(append([]string{"start", "--yes", "--socket", s.socketPath()}, c.sc.args...)...)
		starter.Stdout, starter.Stderr = &out, &out
		if err := starter.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { starter.Process.Kill(); starter.Wait() }()
		waitReached(d.exited.done)
		d.kill()
		os.Remove(s.socketPath()) // left behind, as after a crash
	}

	// upgrader is back: it must wait for the live tool, which is released
	// once upgrader says it follows it (or has given up).
	var back *exec.Cmd
	var backText syncBuffer
	attached := &backText
	var d2 *daemonProc
	if c.how == "daemon" {
		d2 = s.startDaemonWith(t, nil)
		back = s.cmd("watch", "--yes", "--socket", s.socketPath())
		attached = d2.log
	} else {
		back = s.cmd("resume", "--yes")
	}
	back.Stdout, back.Stderr = &backText, &backText
	if err := back.Start(); err != nil {
		t.Fatal(err)
	}
	exited := watchExit(back)
	deadline := time.Now().Add(30 * time.Second)
	for !(fileExists(held) && strings.Contains(attached.String(), "still running")) && !exited.done() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	followed := strings.Contains(attached.String(), "still running")
	if !followed {
		t.Errorf("upgrader, back, did not say it follows the live %s:\n%s", c.tool, attached.String())
	}
	release(t, s, held, deadline)
	select {
	case <-exited.ch:
	case <-time.After(2 * time.Minute):
		back.Process.Kill()
		t.Fatalf("upgrader did not end after the tool was released:\n%s", backText.String())
	}
	code := back.ProcessState.ExitCode()
	if d2 != nil {
		d2.stop(t)
	}
	waitToolsGone(t, s)
	if code != exitOK {
		t.Errorf("upgrader after the kill: exit %d\n%s\nfirst process:\n%s", code, backText.String(), out.String())
		if d2 != nil {
			t.Logf("daemon:\n%s", d2.log)
		}
	}
	return s
}

// startHangupTerminal starts cmd as the controlling process of a new
// pseudo-terminal whose output goes to out, and returns what hangs the
// terminal up (an SSH session dropping). The master is read through the
// poller: a blocking read would keep it open, and no hangup would come.
func startHangupTerminal(t *testing.T, cmd *exec.Cmd, out io.Writer) (hangup func()) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	// Close-on-exec: a copy of the master in any other child would keep
	// the terminal up.
	fd, err := unix.FcntlInt(ptmx.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	ptmx.Close()
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetNonblock(fd, true)
	master := os.NewFile(uintptr(fd), "ptmx")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = cmd.Start()
	tty.Close()
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	go io.Copy(out, master)
	var once sync.Once
	hangup = func() { once.Do(func() { master.Close() }) }
	t.Cleanup(hangup)
	return hangup
}

// release lets a held tool go on: it is released as soon as it is held (a
// tool killed on appearance reaches its hold later, or never if it died).
func release(t *testing.T, s *sim, held string, deadline time.Time) {
	t.Helper()
	for !fileExists(held) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.control("release", "")
}

// exitWatch tells when a started command has exited.
type exitWatch struct{ ch chan struct{} }

func (w *exitWatch) done() bool {
	select {
	case <-w.ch:
		return true
	default:
		return false
	}
}

func watchExit(cmd *exec.Cmd) *exitWatch {
	w := &exitWatch{ch: make(chan struct{})}
	go func() { cmd.Wait(); close(w.ch) }()
	return w
}

// toolPids lists the processes running the tool at path (a script's
// command line is the interpreter, then the script).
func toolPids(s *sim, path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.SplitN(b, []byte{0}, 3)
		for _, a := range args[:min(2, len(args))] {
			if string(a) == path {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// supervisorPids lists the job supervisors of s that run the tool at path
// ("upgrader __job supervise DIR KEY ... -- ARGV").
func supervisorPids(s *sim, path string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 4 && args[1] == "__job" && args[2] == "supervise" && args[3] == filepath.Join(s.state, "jobs") && slices.Contains(args, path) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// simTools lists the processes running any simulated tool of s.
func simTools(s *sim) []int {
	var pids []int
	entries, _ := os.ReadDir(filepath.Join(s.root, "sim/bin"))
	for _, e := range entries {
		pids = append(pids, toolPids(s, filepath.Join(s.root, "sim/bin", e.Name()))...)
	}
	return pids
}

// waitToolsGone waits until no simulated tool of s runs: the final state
// is read once nothing changes the host any more.
func waitToolsGone(t *testing.T, s *sim) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(simTools(s)) > 0 {
		if time.Now().After(deadline) {
			t.Errorf("simulated tools still run after the run ended: %v", simTools(s))
			killTools(s)
			return
		}
		s.control("release", "")
		time.Sleep(10 * time.Millisecond)
	}
}

// killTools kills what is left of the simulated tools of s.
func killTools(s *sim) {
	for _, pid := range simTools(s) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// hostDamage is what the non-idempotent tools left behind.
type hostDamage struct {
	interrupted []string // a tool interrupted half-way, or run over one that was
	twice       []string // a tool started beside a live one, or more often than undisturbed
}

func damageOf(t *testing.T, s *sim, undisturbed []string) hostDamage {
	t.Helper()
	var d hostDamage
	if b, err := os.ReadFile(filepath.Join(s.root, "var/lib/sim/CORRUPTED")); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if strings.Contains(l, "beside") {
				d.twice = append(d.twice, l)
			} else {
				d.interrupted = append(d.interrupted, l)
			}
		}
	}
	stale, _ := filepath.Glob(filepath.Join(s.root, "var/lib/sim/inprogress/*"))
	for _, m := range stale {
		d.interrupted = append(d.interrupted, filepath.Base(m)+" never finished (its in-progress marker is left)")
	}
	count := func(ledger []string) map[string]int {
		n := map[string]int{}
		for _, l := range ledger {
			if strings.Contains(l, "begin") {
				n[l]++
			}
		}
		return n
	}
	want := count(undisturbed)
	for l, n := range count(s.ledger()) {
		if n > want[l] {
			d.twice = append(d.twice, fmt.Sprintf("%s: %d times, %d in the undisturbed run", l, n, want[l]))
		}
	}
	return d
}

// syncBuffer is a bytes.Buffer written by a command and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
