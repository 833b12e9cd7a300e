package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/steps"
	"upgrader/testdata/simhost/smallfs"
)

// The state directory on a full disk: whatever the first run managed to
// record before the disk refused a write, the next command after space is
// freed reads it (no "damaged"), and the run finishes as an undisturbed
// one does, with no effect done twice. A log write that fails is said
// once, not per event. No job (an installer, pg_dump) starts with too
// little room for its log and its end (steps.JobRoom): the step fails
// saying so, and the operator's retry goes on once space is freed.
func TestStateOnFullDisk(t *testing.T) {
	base := newSim(t)
	base.mustRun(exitOK, "run", "--yes")
	want := base.final(base.runID())
	mnt := smallfs.Mount(t, int(2*steps.JobRoom>>10))
	for _, freeKiB := range []int64{0, 8, 12, 24, 48, 96} {
		t.Run(fmt.Sprintf("%dKiB free", freeKiB), func(t *testing.T) {
			s := newSim(t)
			s.state = filepath.Join(mnt, "state")
			defer os.RemoveAll(s.state)
			release := smallfs.Fill(t, mnt, freeKiB<<10)
			r := s.run("run", "--yes")
			release()
			t.Logf("run on a full disk: exit %d: %s", r.code, lastLine(r.stderr))
			if r.code != exitOK && !strings.Contains(r.stderr, "no space left") {
				t.Errorf("exit %d without saying the disk is full:\n%s", r.code, r.stderr)
			}
			checkLogWarning(t, r.stderr)
			if st := s.run("status"); strings.Contains(st.stderr+st.stdout, "damaged") {
				t.Fatalf("after space was freed, status says:\n%s%s", st.stdout, st.stderr)
			}
			if st := s.run("status"); strings.Contains(st.stdout, ": failed") {
				if !strings.Contains(st.stdout, "no space left for its log") {
					t.Fatalf("the run failed on the full disk, not for want of room for a job:\n%s", st.stdout)
				}
				s.mustRun(exitOK, "retry", "--yes")
			} else {
				s.mustRun(exitOK, "run", "--yes")
			}
			compareFinal(t, want, s.final(s.runID()))
		})
	}
}

// upgrader.log on a full disk: the first event that cannot be written is
// said once on stderr, in upgrader's words (not once per event by the
// logging library); once space is freed the log says how many events were
// lost, then goes on.
func TestLogOnFullDisk(t *testing.T) {
	mnt := smallfs.Mount(t, 1024)
	a := &app{stateDir: filepath.Join(mnt, "state")}
	os.Mkdir(a.stateDir, 0o700)
	release := smallfs.Fill(t, mnt, 0)
	stderr := captureStderr(t)
	log, closer, err := openLogger(a.stateDir, os.Stderr)
	if err != nil {
		t.Fatalf("logger on a full disk: %v", err)
	}
	for i := range 50 {
		log.Info().Int("n", i).Msg("an event on a full disk")
	}
	release()
	log.Info().Msg("an event once space is freed")
	closer.Close()
	said := stderr()
	if strings.Count(said, "upgrader.log") != 1 || !strings.Contains(said, "no space left") || strings.Contains(said, "zerolog") {
		t.Errorf("stderr must say once that the log lost events:\n%s", said)
	}
	b, _ := os.ReadFile(filepath.Join(a.stateDir, "upgrader.log"))
	if !strings.Contains(string(b), "50 log events lost") || !strings.Contains(string(b), "once space is freed") {
		t.Errorf("the log after space was freed:\n%s", b)
	}
}

// captureStderr sends os.Stderr to a pipe until the returned function
// gives what was written.
func captureStderr(t *testing.T) func() string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	return func() string {
		os.Stderr = saved
		w.Close()
		return <-done
	}
}

// checkLogWarning: a failed log write is said at most once, in upgrader's
// words, not once per event by the logging library.
func checkLogWarning(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "zerolog") || strings.Count(stderr, "upgrader.log") > 1 {
		t.Errorf("log write failures are not said once:\n%s", stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// asNobody runs argv as uid/gid 65534 with no groups.
func asNobody(argv ...string) (string, error) {
	out, err := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)...).CombinedOutput()
	return string(out), err
}

// The state directory is root's alone. A directory others can write, or
// that another user owns, is refused with what to do; a symlink planted at
// any file name upgrader uses there is refused and what it points at is
// never touched; and a local user cannot plant one where upgrader would
// meet it.
func TestStateDirTrust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root")
	}
	v := func(t *testing.T) (path, ghost string, check func()) {
		dir := t.TempDir()
		path, ghost = filepath.Join(dir, "precious"), filepath.Join(dir, "ghost")
		content := []byte("root's precious file\n")
		os.WriteFile(path, content, 0o600)
		return path, ghost, func() {
			t.Helper()
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Errorf("the file outside the state directory was written: %q", got)
			}
			if _, err := os.Lstat(ghost); err == nil {
				t.Errorf("a dangling symlink's target %s was created", ghost)
			}
		}
	}
	t.Run("world-writable state dir", func(t *testing.T) {
		s := newSim(t)
		os.Mkdir(s.state, 0o700)
		os.Chmod(s.state, 0o777)
		for _, args := range [][]string{{"status"}, {"run", "--yes"}, {"restore-state"}} {
			r := s.run(args...)
			if r.code != exitError || !strings.Contains(r.stderr, "writable by others") || !strings.Contains(r.stderr, "chmod go-w "+s.state) {
				t.Errorf("%v: exit %d\n%s", args, r.code, r.stderr)
			}
		}
		if entries, _ := os.ReadDir(s.state); len(entries) != 0 {
			t.Errorf("files made in the refused directory: %v", entries)
		}
		os.Chmod(s.state, 0o700) // as the message says
		s.mustRun(exitOK, "run", "--yes")
	})
	t.Run("state dir of uid 65534", func(t *testing.T) {
		s := newSim(t)
		os.Mkdir(s.state, 0o700)
		os.Chown(s.state, 65534, 65534)
		r := s.run("run", "--yes")
		if r.code != exitError || !strings.Contains(r.stderr, "uid 65534") {
			t.Errorf("exit %d\n%s", r.code, r.stderr)
		}
	})
	for _, dangling := range []bool{false, true} {
		kind := "to a file outside"
		if dangling {
			kind = "dangling"
		}
		for _, name := range []string{"upgrader.log", "state.db", "state.db.snapshot.tmp"} {
			t.Run(name+" "+kind, func(t *testing.T) {
				s := newSim(t)
				target, ghost, check := v(t)
				if dangling {
					target = ghost
				}
				os.Mkdir(s.state, 0o700)
				os.Symlink(target, filepath.Join(s.state, name))
				r := s.run("run", "--yes")
				check()
				if !strings.Contains(r.stderr, filepath.Join(s.state, name)+" is a symlink") {
					t.Errorf("exit %d; stderr does not say the symlink is refused:\n%s", r.code, r.stderr)
				}
			})
		}
	}
	t.Run("a local user", func(t *testing.T) {
		// pub is a sticky world-writable directory, as /tmp is, reachable
		// by uid 65534.
		base := t.TempDir()
		os.Chmod(filepath.Dir(base), 0o755)
		os.Chmod(base, 0o755)
		pub := filepath.Join(base, "pub")
		os.Mkdir(pub, 0o755)
		os.Chmod(pub, os.ModeSticky|0o777)
		target, _, check := v(t)
		s := newSim(t)

		// A state dir made in advance by the user, private or open.
		for _, mode := range []string{"700", "777"} {
			s.state = filepath.Join(pub, "state-"+mode)
			if out, err := asNobody("mkdir", "-m", mode, s.state); err != nil {
				t.Fatalf("mkdir as uid 65534: %v %s", err, out)
			}
			if r := s.run("run", "--yes"); r.code != exitError || !strings.Contains(r.stderr, "uid 65534") {
				t.Errorf("state dir made by uid 65534 (mode %s): exit %d\n%s", mode, r.code, r.stderr)
			}
		}
		// A symlink where the state dir will be.
		s.state = filepath.Join(pub, "state-link")
		root := filepath.Join(base, "rootdir")
		os.Mkdir(root, 0o700)
		if out, err := asNobody("ln", "-s", root, s.state); err != nil {
			t.Fatalf("ln as uid 65534: %v %s", err, out)
		}
		if r := s.run("run", "--yes"); r.code != exitError || !strings.Contains(r.stderr, "is a symlink") {
			t.Errorf("state dir planted as a symlink: exit %d\n%s", r.code, r.stderr)
		}
		if entries, _ := os.ReadDir(root); len(entries) != 0 {
			t.Errorf("upgrader wrote through the planted symlink: %v", entries)
		}

		// root's own state dir, even one others may read: the user can
		// neither plant a file in it nor move it away.
		s.state = filepath.Join(pub, "state")
		s.mustRun(exitOK, "run", "--yes")
		os.Chmod(s.state, 0o755)
		for _, argv := range [][]string{
			{"ln", "-s", target, filepath.Join(s.state, "upgrader.log.new")},
			{"ln", "-sf", target, filepath.Join(s.state, "upgrader.log")},
			{"ln", "-s", target, filepath.Join(s.state, "state.db.snapshot.tmp")},
			{"touch", filepath.Join(s.state, "state.db.new")},
			{"mv", s.state, filepath.Join(pub, "moved")},
			{"rm", "-f", filepath.Join(s.state, "state.db")},
		} {
			if out, err := asNobody(argv...); err == nil {
				t.Errorf("uid 65534 could %v: %s", argv, out)
			}
		}
		r := s.mustRun(exitOK, "status")
		if strings.Contains(r.stderr, "warning") {
			t.Errorf("status after the attempts: %s", r.stderr)
		}
		check()
		// Told to use a directory others can reach is fine (0755), one
		// they can write is not, even when root owns it.
		os.Chmod(s.state, 0o775)
		if r := s.run("status"); r.code != exitError || !strings.Contains(r.stderr, "writable by others") {
			t.Errorf("group-writable state dir: exit %d\n%s", r.code, r.stderr)
		}
	})
}
