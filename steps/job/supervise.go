package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/state/securefs"
	"upgrader/steps/durable"
)

// Arg is the hidden first argument that makes upgrader's binary a job's
// supervisor or launcher: main (and the TestMain of a package whose tests
// start jobs) hands the rest of the arguments to Main before anything else.
const Arg = "__job"

// Main runs the supervisor ("supervise DIR KEY [private] [durable=PATH]...
// [syncfs=PATH]... -- ARGV...") or the launcher ("launch PIDFILE --
// ARGV...") and returns the exit code.
func Main(args []string) int {
	switch {
	case len(args) >= 5 && args[0] == "supervise":
		if o, argv, ok := superviseArgs(args[3:]); ok {
			if o.private {
				syscall.Umask(0o077)
			}
			return supervise(Dir(args[1]), args[2], argv, o)
		}
	case len(args) >= 4 && args[0] == "launch" && args[2] == "--":
		return launch(args[1], args[3:])
	}
	fmt.Fprintln(os.Stderr, "upgrader: "+Arg+" is upgrader's own way of running a long command; it is not for people")
	return 2
}

// superviseOptions are the supervisor's options, before "--".
type superviseOptions struct {
	private         bool
	durable, syncfs []string
}

// superviseArgs splits "[private] [durable=P]... [syncfs=P]... -- ARGV...".
func superviseArgs(args []string) (o superviseOptions, argv []string, ok bool) {
	for i, a := range args {
		switch {
		case a == "--":
			return o, args[i+1:], i+1 < len(args)
		case a == "private":
			o.private = true
		case strings.HasPrefix(a, "durable="):
			o.durable = append(o.durable, strings.TrimPrefix(a, "durable="))
		case strings.HasPrefix(a, "syncfs="):
			o.syncfs = append(o.syncfs, strings.TrimPrefix(a, "syncfs="))
		default:
			return o, nil, false
		}
	}
	return o, nil, false
}

// supervise runs the command, holding the job's lock (fd 3) until the
// command's end is recorded — and, first, made what it changed under
// o.durable survive a power cut.
func supervise(d Dir, key string, argv []string, o superviseOptions) int {
	// Caught, never ignored: an ignored signal would stay ignored in the
	// command. No terminal can send them here (no controlling terminal);
	// SIGTERM is passed on to the command's process group.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTERM)
	lock := os.NewFile(3, "job lock")
	defer runtime.KeepAlive(lock)
	// fd 3 must be the job's lock, locked: without it nobody could tell the
	// job runs, so nothing is started.
	var held, file unix.Stat_t
	if unix.Fstat(3, &held) != nil || unix.Lstat(d.path(key, ".lock"), &file) != nil || held.Dev != file.Dev || held.Ino != file.Ino ||
		unix.Flock(3, unix.LOCK_EX|unix.LOCK_NB) != nil {
		fmt.Fprintf(os.Stderr, "upgrader: job %s not started: it does not hold its lock\n", key)
		return 2
	}
	// The command gets stdin, stdout and stderr only: never the lock (what
	// it leaves behind, a daemon, would hold the job "alive" for good), nor
	// a descriptor upgrader inherited from its own parent.
	closeOnExecAbove(2)

	cmd := exec.Command(self, append([]string{Arg, "launch", d.path(key, ".pid"), "--"}, argv...)...)
	cmd.Args[0] = "upgrader"
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr // the job's log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	st := Status{Code: -1}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		st.Error = "cannot start its launcher: " + err.Error()
	} else {
		go func() {
			for s := range sigs {
				if s == syscall.SIGTERM {
					syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				}
			}
		}()
		cmd.Wait()
		st = statusOf(cmd.ProcessState)
	}
	if len(o.durable)+len(o.syncfs) > 0 {
		// Nothing is written to the log on success: its last lines are
		// the tool's, shown when it fails.
		if _, err := durable.Make(o.durable, o.syncfs, began.Add(-durable.Slack)); err != nil {
			st.Error = "its end is known but what it changed could not be made durable: " + err.Error()
		}
	}
	st.EndedAt = time.Now().UTC()
	b, _ := json.Marshal(st)
	if err := securefs.WriteFile(d.path(key, ".status"), append(b, '\n'), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "upgrader: the end of this job (%s) cannot be recorded: %v\n", st, err)
		return 1
	}
	return 0
}

func statusOf(ps *os.ProcessState) Status {
	st := Status{Code: ps.ExitCode()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Signal = unix.SignalName(ws.Signal())
	}
	return st
}

// launch records this process (pid, start time, boot) durably, then
// becomes the command: a command that runs is always on record, and one
// that could not be recorded never runs.
func launch(pidFile string, argv []string) int {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "upgrader: cannot start %s: %v\n", argv[0], err)
		return 127
	}
	pid := os.Getpid()
	start, _, err := procStat(pid)
	if err == nil {
		rec := pidRecord{Pid: pid, Start: start, Boot: bootID(), StartedAt: time.Now().UTC()}
		b, _ := json.Marshal(rec)
		err = securefs.WriteFile(pidFile, append(b, '\n'), 0o600)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "upgrader: %s not started: its start cannot be recorded: %v\n", argv[0], err)
		return 126
	}
	err = syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "upgrader: cannot start %s: %v\n", path, err)
	if errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

// closeOnExecAbove marks every descriptor above fd close-on-exec.
func closeOnExecAbove(fd int) {
	entries, _ := os.ReadDir("/proc/self/fd")
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > fd {
			syscall.CloseOnExec(n)
		}
	}
}
