// Package job runs a long child command (a vendor installer, pg_dump, a
// service start) so that it outlives upgrader, and lets a later upgrader
// follow it to its end instead of starting another.
//
// # How
//
// Start opens KEY.lock in the jobs directory, takes an exclusive flock on
// it, and starts a supervisor (upgrader's own binary again, see Main) in a
// session of its own, with stdin /dev/null and stdout and stderr on KEY.log,
// handing it the locked descriptor. The supervisor holds the lock for its
// whole life, so the proof that a job lives exists before the job does and
// cannot be lost with upgrader. The supervisor starts the command in a
// process group of its own; the command's process first records its pid,
// start time and boot in KEY.pid, then becomes the command (exec), so a
// started command is always on record. The command gets neither the lock
// nor a terminal: a daemon it leaves behind holds nothing of the job, and no
// hangup or broken pipe reaches it when upgrader dies. When the command
// ends, the supervisor writes KEY.status durably and exits.
//
// # Caveats
//
// A job whose supervisor was killed is still seen alive while its command
// runs (pid and start time), but its exit status is lost: it ends
// Interrupted, as one cut by a power loss does.
package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/state/securefs"
)

// Dir is the directory where jobs keep their lock, log, pid and status
// files (upgrader uses <state-dir>/jobs).
type Dir string

// Spec is a command to run as a job.
type Spec struct {
	Key  string   // names its files: letters, digits, '.', '_', '-'
	Argv []string // never through a shell
	Env  []string // the command's whole environment
	// Private makes the files the command creates readable by root only
	// (umask 077): a backup. An installer's files must stay readable by
	// the product's users: it keeps upgrader's umask.
	Private bool
	// Durable are the trees whose changes the supervisor makes durable
	// (durable.Make) before it records the command's end, and SyncFS the
	// paths whose file systems it syncs first: a recorded end then
	// always means the command's work survives a power cut. Without
	// this, a cut after the end was recorded but before anyone synced the
	// tool's work left an end that said done over work partly lost.
	Durable, SyncFS []string
}

// State is where a job stands.
type State int

const (
	NotStarted  State = iota // nothing runs and nothing was started (or it never got to its command)
	Running                  // its supervisor lives
	Orphaned                 // its supervisor died, its command still runs
	Ended                    // its end is recorded in its status
	Interrupted              // its command started, nothing runs, and no end is recorded
)

func (s State) String() string {
	return [...]string{"not started", "running", "running without its supervisor", "ended", "interrupted"}[s]
}

// Live reports whether the job's command may still be at work.
func (s State) Live() bool { return s == Running || s == Orphaned }

// Status is how a job's command ended.
type Status struct {
	Code    int       `json:"exit_code"`        // -1 when killed by a signal or never started
	Signal  string    `json:"signal,omitempty"` // the signal that killed it
	Error   string    `json:"error,omitempty"`  // why the command could not be started, or its work not made durable
	EndedAt time.Time `json:"ended_at"`
}

// Success reports whether the command exited with 0.
func (s Status) Success() bool { return s.Code == 0 && s.Signal == "" && s.Error == "" }

func (s Status) String() string {
	switch {
	case s.Error != "":
		return s.Error
	case s.Signal != "":
		return "killed by signal " + s.Signal
	}
	return fmt.Sprintf("exit status %d", s.Code)
}

// Info is what Look found of a job.
type Info struct {
	Key       string
	State     State
	Pid       int       // the command's pid, 0 if it was not recorded
	StartedAt time.Time // when its command started
	Status    Status    // when Ended
	Log       string    // path of its log
	rec       pidRecord
}

// pidRecord is written by the command's own process before it becomes the
// command.
type pidRecord struct {
	Pid       int       `json:"pid"`
	Start     uint64    `json:"start_ticks"` // /proc/PID/stat field 22: pids are reused, not with the same start
	Boot      string    `json:"boot_id"`     // and not in the same boot
	StartedAt time.Time `json:"started_at"`
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$`)

func (d Dir) path(key, ext string) string { return filepath.Join(string(d), key+ext) }

// Log returns the path of a job's log.
func (d Dir) Log(key string) string { return d.path(key, ".log") }

// NewKey returns prefix-N with the first N from 1 that no job of d has
// used: a new attempt never reuses the files of an earlier one.
func (d Dir) NewKey(prefix string) (string, error) {
	prefix = strings.Map(func(r rune) rune {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, prefix)
	for n := 1; n < 10000; n++ {
		key := fmt.Sprintf("%s-%d", prefix, n)
		if _, err := os.Lstat(d.path(key, ".lock")); errors.Is(err, fs.ErrNotExist) {
			return key, nil
		}
	}
	return "", fmt.Errorf("no free job key for %s in %s", prefix, d)
}

// BusyError is a job refused because another one of the directory still
// runs: upgrader never runs two at once.
type BusyError struct{ Other Info }

func (e *BusyError) Error() string {
	return fmt.Sprintf("another job is still running (%s, pid %d, log %s): it must end first", e.Other.Key, e.Other.Pid, e.Other.Log)
}

// Start starts s as a job and returns once its supervisor runs. It refuses
// while another job of d lives.
func (d Dir) Start(s Spec) error {
	if !keyPattern.MatchString(s.Key) {
		return fmt.Errorf("job key %q: only letters, digits, '.', '_' and '-'", s.Key)
	}
	if len(s.Argv) == 0 {
		return errors.New("job " + s.Key + ": empty command")
	}
	if err := securefs.MkdirPrivate(string(d), "jobs directory"); err != nil {
		return err
	}
	if other, ok, err := d.Busy(); err != nil {
		return err
	} else if ok {
		return &BusyError{Other: other}
	}
	lock, err := securefs.CreateExclusive(d.path(s.Key, ".lock"), 0o600)
	if err != nil {
		return fmt.Errorf("job %s: %w", s.Key, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("job %s: lock: %w", s.Key, err)
	}
	log, err := securefs.OpenFile(d.Log(s.Key), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("job %s: %w", s.Key, err)
	}
	defer log.Close()
	args := []string{Arg, "supervise", string(d), s.Key}
	if s.Private {
		args = append(args, "private")
	}
	for _, p := range s.Durable {
		args = append(args, "durable="+p)
	}
	for _, p := range s.SyncFS {
		args = append(args, "syncfs="+p)
	}
	cmd := exec.Command(self, append(append(args, "--"), s.Argv...)...)
	cmd.Args[0] = "upgrader"
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{lock} // fd 3: the supervisor holds the lock from here on
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("job %s: start its supervisor: %w", s.Key, err)
	}
	done := make(chan struct{})
	ours.Store(d.path(s.Key, ""), done)
	go func() {
		cmd.Wait() // reaped while upgrader lives; after, init does it
		close(done)
	}()
	return nil
}

// ours holds, for the jobs this process started, a channel closed when the
// supervisor exits: their end is seen at once, not at the next poll.
var ours sync.Map

// self is the program the supervisor and the launcher run: this very
// binary, even if its file was replaced or removed since it started.
const self = "/proc/self/exe"

// Look says where a job stands.
func (d Dir) Look(key string) (Info, error) {
	info := Info{Key: key, Log: d.Log(key)}
	if !keyPattern.MatchString(key) {
		return info, fmt.Errorf("job key %q: only letters, digits, '.', '_' and '-'", key)
	}
	held, err := d.held(key)
	if errors.Is(err, fs.ErrNotExist) {
		return info, nil
	} else if err != nil {
		return info, err
	}
	var rec pidRecord
	hasPid, err := readJSON(d.path(key, ".pid"), &rec)
	if err != nil {
		return info, err
	}
	if hasPid {
		info.Pid, info.StartedAt, info.rec = rec.Pid, rec.StartedAt, rec
	}
	if held {
		info.State = Running
		return info, nil
	}
	if ok, err := readJSON(d.path(key, ".status"), &info.Status); err != nil {
		return info, err
	} else if ok {
		info.State = Ended
		return info, nil
	}
	switch {
	case hasPid && alive(rec):
		info.State = Orphaned
	case hasPid:
		info.State = Interrupted
	}
	return info, nil
}

// Busy returns a job of d that lives, if there is one.
func (d Dir) Busy() (Info, bool, error) {
	locks, err := filepath.Glob(filepath.Join(string(d), "*.lock"))
	if err != nil {
		return Info{}, false, err
	}
	for _, l := range locks {
		info, err := d.Look(strings.TrimSuffix(filepath.Base(l), ".lock"))
		if err != nil {
			return info, false, err
		}
		if info.State.Live() {
			return info, true, nil
		}
	}
	return Info{}, false, nil
}

// held reports whether a job's supervisor holds its lock.
func (d Dir) held(key string) (bool, error) {
	f, err := securefs.OpenFile(d.path(key, ".lock"), os.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err // the lock goes with the descriptor
}

// readJSON reads a small record; false if it does not exist.
func readJSON(path string, v any) (bool, error) {
	f, err := securefs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// alive reports whether the process of a record still runs (not a zombie)
// and is the one recorded.
func alive(rec pidRecord) bool {
	if rec.Pid <= 1 || rec.Boot != bootID() {
		return false
	}
	start, state, err := procStat(rec.Pid)
	return err == nil && start == rec.Start && state != 'Z' && state != 'X'
}

// procStat reads a process's start time (clock ticks since boot) and state.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	_, err = fmt.Sscan(fields[19], &start)
	return start, fields[0][0], err
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// ExitError is a job's command that did not exit with status 0.
type ExitError struct{ Status Status }

func (e *ExitError) Error() string { return e.Status.String() }

// ExitCode is the command's exit code, -1 if a signal killed it.
func (e *ExitError) ExitCode() int { return e.Status.Code }

// Err returns nil for a command that exited with 0, else an *ExitError.
func (s Status) Err() error {
	if s.Success() {
		return nil
	}
	return &ExitError{Status: s}
}
