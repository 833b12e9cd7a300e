package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain makes this test binary a job's supervisor and launcher when
// started as one, as upgrader's main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		os.Exit(Main(os.Args[2:]))
	}
	if os.Getenv("JOB_TEST_STARTER") != "" {
		os.Exit(starter())
	}
	os.Exit(m.Run())
}

// starter is a stand-in for upgrader: it starts the job its environment
// names, says so, and waits to be killed.
func starter() int {
	d := Dir(os.Getenv("JOB_TEST_DIR"))
	argv := strings.Split(os.Getenv("JOB_TEST_ARGV"), "\x1f")
	if err := d.Start(Spec{Key: os.Getenv("JOB_TEST_STARTER"), Argv: argv, Env: env}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("started")
	time.Sleep(time.Minute)
	return 0
}

var env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}

func newDir(t *testing.T) Dir { return Dir(filepath.Join(t.TempDir(), "jobs")) }

func follow(t *testing.T, d Dir, key string, o FollowOptions) (Result, []string, error) {
	t.Helper()
	var lines []string
	o.Line = func(l string) { lines = append(lines, l) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := d.Follow(ctx, key, o)
	return res, lines, err
}

func TestJobRunsAndRecordsItsEnd(t *testing.T) {
	d := newDir(t)
	argv := []string{"/bin/sh", "-c", "echo one; echo two >&2; readlink /proc/self/fd/0; ls /proc/self/fd; printf last; exit 3"}
	if err := d.Start(Spec{Key: "run-a-1", Argv: argv, Env: env}); err != nil {
		t.Fatal(err)
	}
	res, lines, err := follow(t, d, "run-a-1", FollowOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != Ended || res.Status.Code != 3 || res.Status.Success() {
		t.Errorf("result %+v, want ended with exit status 3", res)
	}
	if !slices.Equal(lines[:3], []string{"one", "two", "/dev/null"}) || lines[len(lines)-1] != "last" {
		t.Errorf("lines %q: want stdout and stderr in order, stdin /dev/null, and the last line without its newline", lines)
	}
	// ls lists 0, 1, 2 and its own directory descriptor: not the lock.
	if fds := lines[3 : len(lines)-1]; !slices.Equal(fds, []string{"0", "1", "2", "3"}) {
		t.Errorf("the command's descriptors: %q, want 0 1 2 and ls's own", fds)
	}
	if !slices.Equal(res.Tail, lines[len(lines)-5:]) {
		t.Errorf("tail %q", res.Tail)
	}
	for _, ext := range []string{".lock", ".log", ".pid", ".status"} {
		st, err := os.Stat(d.path("run-a-1", ext))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", ext, st.Mode(), err)
		}
	}
	if st, _ := os.Stat(string(d)); st.Mode().Perm() != 0o700 {
		t.Errorf("jobs directory mode %v, want 0700", st.Mode().Perm())
	}
	if err := d.Start(Spec{Key: "run-a-1", Argv: argv, Env: env}); err == nil {
		t.Error("a key used before was started again")
	}
	if k, _ := d.NewKey("run-a"); k != "run-a-2" {
		t.Errorf("NewKey = %s, want run-a-2", k)
	}
	if k, _ := d.NewKey("run/../b c"); k != "run_.._b_c-1" {
		t.Errorf("NewKey = %s", k)
	}
	for _, bad := range []string{"../x", ".hidden", "a/b", "", strings.Repeat("x", 300)} {
		if err := d.Start(Spec{Key: bad, Argv: argv, Env: env}); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

// The job lives on when the process that started it is killed at once
// (before it could record anything): the lock its supervisor holds says
// so, and the job runs to its end.
func TestJobOutlivesItsStarter(t *testing.T) {
	d := newDir(t)
	c := exec.Command("/proc/self/exe")
	c.Env = append(os.Environ(), "JOB_TEST_STARTER=run-b-1", "JOB_TEST_DIR="+string(d),
		"JOB_TEST_ARGV=/bin/sh\x1f-c\x1fsleep 3; echo after; ps -o sid= -p $$")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "started") {
		t.Fatalf("starter: %q", buf[:n])
	}
	// The command sleeps 3 s: long enough to be seen running after the
	// starter's death on a loaded machine (0.5 s could end first).
	syscall.Kill(-c.Process.Pid, syscall.SIGKILL) // the starter and its session
	c.Wait()
	if info, err := d.Look("run-b-1"); err != nil || info.State != Running {
		t.Fatalf("after the starter died: %+v %v, want running", info, err)
	}
	res, lines, err := follow(t, d, "run-b-1", FollowOptions{})
	if err != nil || !res.Status.Success() || len(lines) != 2 || lines[0] != "after" {
		t.Fatalf("%+v %q %v: want the job to finish on its own", res, lines, err)
	}
	if sid, _ := strconv.Atoi(strings.TrimSpace(lines[1])); sid == c.Process.Pid || sid == os.Getpid() || sid <= 1 {
		t.Errorf("the command's session is %d: not a session of its own", sid)
	}
}

// A daemon the command leaves behind (a service start) holds nothing of
// the job: the job ends when its command does.
func TestJobEndsWhateverItLeavesBehind(t *testing.T) {
	d := newDir(t)
	if err := d.Start(Spec{Key: "svc-1", Argv: []string{"/bin/sh", "-c", "sleep 30 & echo $!"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	res, lines, err := follow(t, d, "svc-1", FollowOptions{})
	if len(lines) == 1 {
		pid, _ := strconv.Atoi(lines[0])
		defer syscall.Kill(pid, syscall.SIGKILL)
	}
	if err != nil || res.State != Ended || !res.Status.Success() {
		t.Fatalf("%+v %v: the job did not end with its command", res, err)
	}
}

// A job whose supervisor was killed is still seen while its command runs;
// its end is then unknown: interrupted.
func TestJobSupervisorKilled(t *testing.T) {
	d := newDir(t)
	// A long command, ended by the test once it has been seen orphaned: a
	// short one could end first on a loaded machine.
	if err := d.Start(Spec{Key: "k-1", Argv: []string{"/bin/sleep", "60"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	info := waitPid(t, d, "k-1")
	pid := info.Pid // waitPid returns only a recorded one (> 0)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	sup := sessionOf(t, info.Pid) // the supervisor leads the job's session
	syscall.Kill(sup, syscall.SIGKILL)
	for i := 0; i < 4000; i++ {
		if info, _ = d.Look("k-1"); info.State != Running {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if info.State != Orphaned {
		t.Fatalf("state %s, want running without its supervisor", info.State)
	}
	if _, ok, _ := d.Busy(); !ok {
		t.Error("Busy does not see the orphaned command")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	_, _, err := follow(t, d, "k-1", FollowOptions{})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Follow: %v, want interrupted", err)
	}
}

func TestJobTimeout(t *testing.T) {
	for _, tc := range []struct {
		name, script, signal string
	}{
		{"stops on SIGTERM", "echo begun; sleep 30", "SIGTERM"},
		{"ignores SIGTERM: killed", "trap '' TERM; echo begun; while :; do sleep 0.05; done", "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDir(t)
			if err := d.Start(Spec{Key: "t-1", Argv: []string{"/bin/sh", "-c", tc.script}, Env: env}); err != nil {
				t.Fatal(err)
			}
			// The 300 ms count from the job's start: on a loaded machine
			// they can pass before sh has set its trap. Signals are sent
			// once the script has said it has begun.
			waitLog(t, d, "t-1", "begun")
			start := time.Now()
			res, _, err := follow(t, d, "t-1", FollowOptions{Timeout: 300 * time.Millisecond, Grace: 300 * time.Millisecond})
			if err != nil || !res.TimedOut || res.Status.Signal != tc.signal {
				t.Fatalf("%+v %v: want timed out, %s", res, err, tc.signal)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
		})
	}
}

// Never two jobs at once in one directory.
func TestJobRefusesASecondBesideALiveOne(t *testing.T) {
	d := newDir(t)
	if err := d.Start(Spec{Key: "a-1", Argv: []string{"/bin/sleep", "0.5"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	err := d.Start(Spec{Key: "b-1", Argv: []string{"/bin/true"}, Env: env})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Other.Key != "a-1" {
		t.Fatalf("second start: %v", err)
	}
	if _, err := os.Stat(d.Log("b-1")); !os.IsNotExist(err) {
		t.Error("the refused job left files")
	}
	follow(t, d, "a-1", FollowOptions{})
	if err := d.Start(Spec{Key: "b-1", Argv: []string{"/bin/true"}, Env: env}); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
}

func TestJobCommandNotFound(t *testing.T) {
	d := newDir(t)
	if err := d.Start(Spec{Key: "n-1", Argv: []string{"/nonexistent/installer"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	res, lines, err := follow(t, d, "n-1", FollowOptions{})
	if err != nil || res.Status.Code != 127 || len(lines) != 1 || !strings.Contains(lines[0], "/nonexistent/installer") {
		t.Fatalf("%+v %q %v", res, lines, err)
	}
}

// Cancelling the follower leaves the job running; following it again
// sees its end.
func TestJobDetach(t *testing.T) {
	d := newDir(t)
	if err := d.Start(Spec{Key: "d-1", Argv: []string{"/bin/sh", "-c", "sleep 0.3; echo done"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := d.Follow(context.Background(), "d-1", FollowOptions{Stop: stop}); !errors.Is(err, ErrDetached) {
		t.Fatalf("Follow with Stop closed: %v", err)
	}
	res, lines, err := follow(t, d, "d-1", FollowOptions{})
	if err != nil || !res.Status.Success() || !slices.Equal(lines, []string{"done"}) {
		t.Fatalf("%+v %q %v", res, lines, err)
	}
	if info, _ := d.Look("nothing-1"); info.State != NotStarted {
		t.Errorf("an unknown job is %s", info.State)
	}
}

func waitPid(t *testing.T, d Dir, key string) Info {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if info, err := d.Look(key); err == nil && info.Pid > 0 {
			return info
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the job's command was never recorded")
	return Info{}
}

// waitLog waits until the job's log holds text.
func waitLog(t *testing.T, d Dir, key, text string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(d.Log(key)); strings.Contains(string(b), text) {
			return
		}
	}
	t.Fatalf("the job's log never said %q", text)
}

func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// A private job's files are root's only; another keeps the umask.
func TestJobPrivateUmask(t *testing.T) {
	d := newDir(t)
	dir := t.TempDir()
	for i, private := range []bool{true, false} {
		key := fmt.Sprintf("u-%d", i)
		out := filepath.Join(dir, key)
		if err := d.Start(Spec{Key: key, Argv: []string{"/bin/sh", "-c", "echo x > " + out}, Env: env, Private: private}); err != nil {
			t.Fatal(err)
		}
		follow(t, d, key, FollowOptions{})
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm()&0o077 == 0; got != private {
			t.Errorf("private %v: the file is mode %04o", private, st.Mode().Perm())
		}
	}
}

// The supervisor refuses to run a command without the job's lock: run by
// hand, it would be a job nobody can see.
func TestSupervisorNeedsItsLock(t *testing.T) {
	d := newDir(t)
	os.MkdirAll(string(d), 0o700)
	os.WriteFile(d.path("x-1", ".lock"), nil, 0o600)
	c := exec.Command("/proc/self/exe", Arg, "supervise", string(d), "x-1", "--", "/usr/bin/touch", filepath.Join(string(d), "ran"))
	out, err := c.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not hold its lock") {
		t.Fatalf("supervisor without its lock: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(string(d), "ran")); err == nil {
		t.Error("the command ran")
	}
}
