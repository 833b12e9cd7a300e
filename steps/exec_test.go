package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lineRecorder collects the lines a Runner delivers.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) line(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
}

func (r *lineRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func TestExecRunnerOutput(t *testing.T) {
	var many []string
	for i := 1; i <= 2000; i++ {
		many = append(many, strconv.Itoa(i))
	}
	for _, tc := range []struct {
		name string
		argv []string
		want []string
	}{
		{"stdout lines", []string{"/usr/bin/printf", `one\ntwo\nthree\n`}, []string{"one", "two", "three"}},
		{"last line without newline", []string{"/usr/bin/printf", `a\nb`}, []string{"a", "b"}},
		{"stdout and stderr interleaved", []string{"/bin/sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"},
			[]string{"out1", "err1", "out2", "err2"}},
		{"many lines", []string{"/usr/bin/seq", "1", "2000"}, many},
		{"no output", []string{"/bin/true"}, nil},
		{"arguments are not parsed by a shell", []string{"/usr/bin/printf", `%s\n`, "$HOME; rm -rf /", "a b"},
			[]string{"$HOME; rm -rf /", "a b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &lineRecorder{}
			if err := (ExecRunner{}).Run(context.Background(), tc.argv, nil, rec.line); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := rec.all(); !slices.Equal(got, tc.want) {
				if len(got) > 10 {
					t.Errorf("got %d lines, want %d; first differences matter: %q...", len(got), len(tc.want), got[:10])
				} else {
					t.Errorf("lines = %q, want %q", got, tc.want)
				}
			}
		})
	}
	if err := (ExecRunner{}).Run(context.Background(), []string{"/usr/bin/printf", "x\n"}, nil, nil); err != nil {
		t.Errorf("Run with a nil line func: %v", err)
	}
}

func TestExecRunnerErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		argv     []string
		wantCode int // -1: no exit code (did not start)
		wantTail []string
	}{
		{"exit 7 with output", []string{"/bin/sh", "-c", "echo first; echo oops >&2; exit 7"}, 7, []string{"first", "oops"}},
		{"exit 1 silent", []string{"/bin/false"}, 1, nil},
		{"tail keeps the last 5 lines", []string{"/bin/sh", "-c", "seq 1 9; exit 3"}, 3, []string{"5", "6", "7", "8", "9"}},
		{"not found", []string{"/nonexistent/tool"}, -1, nil},
		{"empty argv", nil, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := (ExecRunner{}).Run(context.Background(), tc.argv, nil, nil)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			var ce *CommandError
			var exit *exec.ExitError
			if tc.wantCode < 0 {
				if errors.As(err, &exit) {
					t.Errorf("error %v unwraps to an exit error for a command that never ran", err)
				}
				return
			}
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *CommandError", err, err)
			}
			if !errors.As(err, &exit) || exit.ExitCode() != tc.wantCode {
				t.Fatalf("error %v does not unwrap to *exec.ExitError with code %d", err, tc.wantCode)
			}
			if ce.Path != tc.argv[0] || !slices.Equal(ce.Tail, tc.wantTail) {
				t.Errorf("CommandError = path %s tail %q, want %s %q", ce.Path, ce.Tail, tc.argv[0], tc.wantTail)
			}
			for _, l := range tc.wantTail {
				if !strings.Contains(err.Error(), l) {
					t.Errorf("message %q lacks output line %q", err, l)
				}
			}
		})
	}
}

// processGone reports whether pid no longer runs (gone or a zombie).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X') {
		return false
	}
	// A killed Go process's leader is a zombie while its other threads
	// still exit holding its files (a job's lock among them): it is gone
	// once the leader is the last task left.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(tasks) <= 1
}

func waitGone(tb testing.TB, pid int, what string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			tb.Errorf("%s (pid %d) still runs after the cancel", what, pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestExecRunnerCancel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // 0: cancel once the child runs
		want    error
	}{
		{"cancel", 0, context.Canceled},
		// Long enough for sh, its sleep and its echo on a loaded machine:
		// the deadline must come after the child has started.
		{"deadline", 2 * time.Second, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tc.timeout > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tc.timeout)
			}
			defer cancel()
			// The child starts a grandchild in the same process group and
			// prints both pids.
			argv := []string{"/bin/sh", "-c", "sleep 60 & echo $$ $!; wait"}
			pids := make(chan [2]int, 1)
			line := func(l string) {
				var p [2]int
				if _, err := fmt.Sscan(l, &p[0], &p[1]); err == nil {
					pids <- p
				}
			}
			errc := make(chan error, 1)
			start := time.Now()
			go func() { errc <- (ExecRunner{}).Run(ctx, argv, nil, line) }()
			var p [2]int
			select {
			case p = <-pids:
			case err := <-errc:
				t.Fatalf("Run returned before the child started: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("child did not start")
			}
			if tc.timeout == 0 {
				cancel()
			}
			select {
			case err := <-errc:
				if !errors.Is(err, tc.want) {
					t.Errorf("Run = %v, want %v", err, tc.want)
				}
				var ce *CommandError
				if errors.As(err, &ce) {
					t.Errorf("a cancelled run returned a CommandError: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return after the cancel (SIGTERM not delivered?)")
			}
			if elapsed := time.Since(start); elapsed > 15*time.Second {
				t.Errorf("Run took %v", elapsed)
			}
			waitGone(t, p[0], "child")
			waitGone(t, p[1], "grandchild in the child's process group")
		})
	}
	// A context cancelled before the start runs nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	marker := t.TempDir() + "/ran"
	if err := (ExecRunner{}).Run(ctx, []string{"/usr/bin/touch", marker}, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran with a cancelled context")
	}
}

func TestExecRunnerEnvironment(t *testing.T) {
	t.Setenv("UPGRADER_TEST_SECRET", "x")
	t.Setenv("PGPASSWORD", "hunter2")
	rec := &lineRecorder{}
	if err := (ExecRunner{}).Run(context.Background(), []string{"/usr/bin/env"}, []string{"PGPASSFILE=/etc/upgrader/pgpass"}, rec.line); err != nil {
		t.Fatal(err)
	}
	env := rec.all()
	for _, tc := range []struct {
		name    string
		varName string
		want    string // "" means absent
	}{
		{"test secret not inherited", "UPGRADER_TEST_SECRET", ""},
		{"PGPASSWORD not inherited", "PGPASSWORD", ""},
		{"HOME not inherited", "HOME", ""},
		{"fixed PATH", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin"},
		{"C locale", "LC_ALL", "C"},
		{"given variable passed", "PGPASSFILE", "/etc/upgrader/pgpass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, kv := range env {
				if k, v, ok := strings.Cut(kv, "="); ok && k == tc.varName {
					got = append(got, v)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("%s is visible to the child: %q", tc.varName, got)
			case tc.want != "" && !slices.Equal(got, []string{tc.want}):
				t.Errorf("%s = %q, want %q", tc.varName, got, tc.want)
			}
		})
	}
	if len(env) > 10 {
		t.Errorf("child environment has %d variables, want a minimal one: %q", len(env), env)
	}
}
