package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// daemonProc is a running `upgrader daemon` on a simulated host.
type daemonProc struct {
	cmd    *exec.Cmd
	socket string
	log    *syncBuffer
	exited *exitWatch
}

func (s *sim) socketPath() string { return filepath.Join(s.dir, "run", "upgrader.sock") }

// startDaemon starts the daemon and waits for its socket to answer.
func (s *sim) startDaemon(t *testing.T, env ...string) *daemonProc {
	t.Helper()
	return s.startDaemonWith(t, nil, env...)
}

// startDaemonWith starts the daemon with more arguments (--with, which it
// plans with).
func (s *sim) startDaemonWith(t *testing.T, args []string, env ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{socket: s.socketPath(), log: &syncBuffer{}}
	d.cmd = s.cmd(append([]string{"daemon", "--socket", d.socket}, args...)...)
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = watchExit(d.cmd)
	t.Cleanup(func() { d.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the daemon never listened:\n%s", d.log)
	return nil
}

// kill sends SIGKILL to the daemon's process group, as a crash would
// (the jobs it started have sessions of their own).
func (d *daemonProc) kill() {
	if !d.exited.done() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-d.exited.ch
}

// stop asks the daemon to stop (SIGTERM, as systemctl stop does) and waits
// for a clean exit.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited.ch:
		if !d.cmd.ProcessState.Success() {
			t.Errorf("the daemon did not exit cleanly: %v\n%s", d.cmd.ProcessState, d.log)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the daemon did not stop on SIGTERM:\n%s", d.log)
		d.kill()
	}
}

func (s *sim) client(t *testing.T) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) {
		return net.Dial("unix", s.socketPath())
	}}}
}

// A run in the daemon survives the daemon's SIGKILL in the middle of the
// installer, and so does the installer: started again, the daemon finds
// the step started, follows the installer still running to its end, and
// `watch` sees the run finish. The installer runs once.
func TestDaemonKilledMidStepResumesOnRestart(t *testing.T) {
	s := newSim(t)
	t.Cleanup(func() { killTools(s) }) // a held tool never outlives a failed test
	s.control("hold-at", "installer:3")
	d := s.startDaemon(t)
	// start watches the run; it loses the daemon below, as an SSH session
	// would lose it.
	starter := s.cmd("start", "--yes", "--socket", s.socketPath())
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { starter.Process.Kill(); starter.Wait() }()
	if !waitFile(t, filepath.Join(s.root, "sim/control/held"), 30*time.Second) {
		t.Fatalf("never reached the installer:\n%s", d.log)
	}
	d.kill()
	os.Remove(s.socketPath()) // a stale socket is left behind, as after a crash
	d = s.startDaemon(t)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.log.String(), "still running") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(d.log.String(), "still running") {
		t.Fatalf("the restarted daemon did not follow the live installer:\n%s", d.log)
	}
	s.control("release", "")
	w := s.run("watch", "--yes", "--socket", s.socketPath())
	if w.code != exitOK || !strings.Contains(w.stdout, "completed") {
		t.Fatalf("watch after the restart: exit %d\n%s\n%s", w.code, w.stdout, w.stderr)
	}
	l := strings.Join(s.ledger(), " ")
	if strings.Count(l, "installer_begin") != 1 || strings.Count(l, "installer_done") != 1 {
		t.Fatalf("ledger %s: the installer must run once", l)
	}
}

// A client with another uid is refused (403), root is served.
func TestDaemonRefusesOtherUsers(t *testing.T) {
	s := newSim(t)
	s.startDaemon(t)
	// The socket's directory is 0700: open it so "nobody" reaches the
	// socket itself and meets the uid check, not the file mode.
	for _, dir := range []string{filepath.Dir(s.dir), s.dir, filepath.Dir(s.socketPath())} {
		os.Chmod(dir, 0o755)
	}
	os.Chmod(s.socketPath(), 0o777)
	out, _ := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"curl", "-s", "--unix-socket", s.socketPath(), "http://x/v1/status").CombinedOutput()
	if !strings.Contains(string(out), "may not use upgrader's control socket") {
		t.Fatalf("uid 65534 got: %s", out)
	}
	resp, err := s.client(t).Post("http://x/v1/plan", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("root: %v %v", resp, err)
	}
}

// 50 concurrent starts make exactly one run; the others are clear
// conflicts. An oversized request is refused without stalling others.
func TestDaemonConcurrentStartsAndLimits(t *testing.T) {
	s := newSim(t)
	s.control("delay", "0.2")
	s.startDaemon(t)
	c := s.client(t)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Post("http://x/v1/start", "application/json", strings.NewReader(`{"consent": {"via": "--yes"}}`))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusCreated] != 1 || codes[http.StatusConflict] != 49 {
		t.Fatalf("status codes %v, want 1 created and 49 conflicts", codes)
	}
	big := fmt.Sprintf(`{"step": "x", "attestation": {"a": %q}}`, strings.Repeat("x", 100<<10))
	resp, err := c.Post("http://x/v1/confirm", "application/json", strings.NewReader(big))
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized request: %v %v", resp, err)
	}
	// A slow client holding a half-sent request does not stall others.
	slow, err := net.Dial("unix", s.socketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("POST /v1/confirm HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"))
	start := time.Now()
	resp, err = c.Get("http://x/v1/status")
	if err != nil || resp.StatusCode != http.StatusOK || time.Since(start) > 5*time.Second {
		t.Fatalf("status beside a slow client: %v %v after %s", resp, err, time.Since(start))
	}
	var st struct {
		Run struct {
			ID string `json:"id"`
		} `json:"run"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	if st.Run.ID == "" {
		t.Fatal("no run in the status")
	}
}

// A symlink at the socket path is refused; a second daemon exits naming
// the socket of the first.
func TestDaemonSocketSafety(t *testing.T) {
	s := newSim(t)
	os.MkdirAll(filepath.Dir(s.socketPath()), 0o700)
	os.Symlink("/tmp/elsewhere", s.socketPath())
	r := s.run("daemon", "--socket", s.socketPath())
	if r.code == 0 || !strings.Contains(r.stderr, "symlink") {
		t.Fatalf("symlink socket: exit %d %s", r.code, r.stderr)
	}
	os.Remove(s.socketPath())
	s.startDaemon(t)
	r = s.run("daemon", "--socket", s.socketPath())
	if r.code != exitError || !strings.Contains(r.stderr, s.socketPath()) {
		t.Fatalf("second daemon: exit %d %s", r.code, r.stderr)
	}
}

// A reboot step: the daemon asks for the reboot and stops there; started
// again under a new boot id (the host came back), it proves the reboot
// and carries the run on to the end.
func TestDaemonContinuesAfterReboot(t *testing.T) {
	s := newSimHost(t, "pcbare")
	s.tool("operator", "install-linux-es", "4.1.2")
	d := s.startDaemon(t)
	r := s.run("start", "--yes", "--socket", s.socketPath())
	if r.code != exitPaused || !strings.Contains(r.stdout, "rebooting") {
		t.Fatalf("start: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	d.kill() // the host goes down
	os.Remove(s.socketPath())
	s.startDaemon(t) // and systemd starts the daemon at boot
	w := s.run("watch", "--yes", "--socket", s.socketPath())
	if w.code != exitOK || !strings.Contains(w.stdout, "completed") {
		t.Fatalf("watch after the reboot: exit %d\n%s\n%s", w.code, w.stdout, w.stderr)
	}
	if got := strings.Join(s.ledger(), " "); !strings.Contains(got, "reboot pc-install_dialer_4.1_begin pc-install_dialer_4.1_done") {
		t.Fatalf("effects: %s", got)
	}
}

// SIGTERM stops the daemon cleanly and at once, even while pg_dump runs:
// the journal is whole, the step in flight is left started and pg_dump
// goes on; the next daemon probes the step, follows pg_dump and finishes.
func TestDaemonSIGTERMLeavesStepToProbe(t *testing.T) {
	s := newSim(t)
	t.Cleanup(func() { killTools(s) }) // a held tool never outlives a failed test
	s.control("hold-at", "pg_dump:2")
	d := s.startDaemon(t)
	starter := s.cmd("start", "--yes", "--socket", s.socketPath())
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { starter.Process.Kill(); starter.Wait() }()
	held := filepath.Join(s.root, "sim/control/held")
	if !waitFile(t, held, 30*time.Second) {
		t.Fatalf("never reached pg_dump:\n%s", d.log)
	}
	d.stop(t)
	if t.Failed() {
		t.FailNow()
	}
	if _, err := os.Stat(s.socketPath()); !os.IsNotExist(err) {
		t.Errorf("the socket was left behind: %v", err)
	}
	if !fileExists(held) {
		t.Fatal("pg_dump did not outlive the daemon")
	}
	s.startDaemon(t)
	s.control("release", "")
	w := s.run("watch", "--yes", "--socket", s.socketPath())
	if w.code != exitOK {
		t.Fatalf("watch: exit %d\n%s\n%s", w.code, w.stdout, w.stderr)
	}
	j := s.run("journal", "--socket", s.socketPath()).stdout
	if !strings.Contains(j, "found backup-db started by an earlier process") {
		t.Fatalf("the interrupted step was not probed:\n%s", j)
	}
	if n := strings.Count(strings.Join(s.ledger(), " "), "pg_dump_begin"); n != 1 {
		t.Fatalf("pg_dump began %d times", n)
	}
}

// A damaged state file is reported as "needs operator", never replaced by
// a fresh one.
func TestDaemonDamagedStateNeedsOperator(t *testing.T) {
	s := newSim(t)
	os.MkdirAll(s.state, 0o700)
	junk := bytes.Repeat([]byte("not a bbolt file "), 1000)
	os.WriteFile(filepath.Join(s.state, "state.db"), junk, 0o600)
	s.startDaemon(t)
	resp, err := s.client(t).Get("http://x/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(e.Error, "needs operator") || !strings.Contains(e.Error, "state.db") {
		t.Fatalf("status %d: %s", resp.StatusCode, e.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(s.state, "state.db")); !bytes.Equal(b, junk) {
		t.Fatal("the damaged state file was changed")
	}
}

// A local user who can write the socket's folder puts their own server
// where the daemon's socket was: root's client refuses to talk to it,
// names its uid, and sends it nothing (no request, no attestation).
func TestClientRefusesSocketOfAnotherUser(t *testing.T) {
	s := newSim(t)
	for _, dir := range []string{filepath.Dir(s.dir), s.dir} {
		os.Chmod(dir, 0o755) // so that uid 65534 reaches its folder
	}
	bin := filepath.Join(s.dir, "bin")
	os.Mkdir(bin, 0o755)
	impostor := filepath.Join(bin, "impostor")
	if out, err := exec.Command("go", "build", "-o", impostor, "./testdata/impostor").CombinedOutput(); err != nil {
		t.Fatalf("build the impostor: %v\n%s", err, out)
	}
	run := filepath.Dir(s.socketPath())
	os.Mkdir(run, 0o755)
	os.Chown(run, 65534, 65534)
	// The daemon itself refuses that folder.
	if r := s.run("daemon", "--socket", s.socketPath()); r.code != exitError || !strings.Contains(r.stderr, "belongs to uid 65534") {
		t.Fatalf("daemon with its socket in a folder of uid 65534: exit %d\n%s", r.code, r.stderr)
	}
	record := filepath.Join(s.dir, "impostor.out")
	out, err := os.Create(record)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", impostor, s.socketPath())
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(record); !bytes.Contains(b, []byte("listening as uid 65534")); b, _ = os.ReadFile(record) {
		if time.Now().After(deadline) {
			t.Fatalf("the impostor never listened: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"status"},
		{"journal"},
		{"watch"},
		{"confirm", "backup-db", "--attest", "backup_path=/backup/pom.dmp"},
		{"start", "--yes"},
	} {
		r := s.run(append(args, "--socket", s.socketPath())...)
		if args[0] == "status" {
			t.Logf("upgrader status beside the impostor: %s", r.stderr)
		}
		if r.code != exitError || !strings.Contains(r.stderr, "uid 65534") || !strings.Contains(r.stderr, s.socketPath()) {
			t.Errorf("upgrader %s beside the impostor: exit %d, want %d naming uid 65534 and the socket\nstdout: %s\nstderr: %s",
				args[0], r.code, exitError, r.stdout, r.stderr)
		}
	}
	time.Sleep(1500 * time.Millisecond) // the impostor waits 1 s for more
	c.Process.Kill()
	c.Wait()
	b, _ := os.ReadFile(record)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
	if len(lines) == 0 {
		t.Fatal("no client connected to the impostor: the test proves nothing")
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `received 0 bytes`) {
			t.Errorf("the impostor got something: %s", l)
		}
	}
}

// A power loss in the middle of the installer while the daemon carries the
// run (the daemon, the installer and its supervisor all die), with the
// installer's last mark, the new version, on disk: the daemon started
// again finds the installer's job interrupted, does not take the version
// as the product in place, and stops the run with the step failed, naming
// the installer's log, without starting the installer again — as `upgrader
// resume` does in the foreground (TestCrashResumeEveryPoint).
func TestDaemonPowerLossMidInstallerStops(t *testing.T) {
	s := newSim(t)
	t.Cleanup(func() { killTools(s) })
	s.control("pause-at", "installer:4")
	d := s.startDaemon(t)
	starter := s.cmd("start", "--yes", "--socket", s.socketPath())
	if err := starter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { starter.Process.Kill(); starter.Wait() }()
	mark := filepath.Join(s.root, "sim/control/paused")
	if !waitFile(t, mark, 30*time.Second) {
		t.Fatalf("never reached the installer:\n%s", d.log)
	}
	d.kill()
	killToolGroup(t, mark)
	os.Remove(mark)
	// What a power cut can leave (the sweep of TestPowerCut found it): the
	// version the installer writes last is on disk, earlier work is not.
	version := filepath.Join(s.root, "opt/Avaya/avpom/POManager/config/version.properties")
	if err := os.WriteFile(version, []byte("# Proactive Outreach Manager build information\nPOMVersion=POM.03.01.01.01.00.003\nPOMBuildDate=2018-09-25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(s.socketPath()) // a stale socket is left behind, as after a power loss
	d = s.startDaemon(t)
	w := s.run("watch", "--yes", "--socket", s.socketPath())
	if !checkInterruptedInstaller(t, s, w, "--socket", s.socketPath()) {
		t.Logf("daemon log:\n%s", d.log)
	}
}
