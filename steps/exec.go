package steps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Runner runs a short external command from an argv list: never through a
// shell. Output lines go to line as they come. A long command whose
// interruption would harm the host runs as a job instead (Host.runJob).
type Runner interface {
	Run(ctx context.Context, argv, env []string, line func(string)) error
}

// InputRunner is a Runner that can also feed a command's standard input
// (the backup's check reads the dump once, hashing it as pg_restore reads).
type InputRunner interface {
	RunInput(ctx context.Context, argv, env []string, in io.Reader, line func(string)) error
}

// ExecRunner runs commands as child processes with a minimal environment,
// so nothing from the operator's shell (and no secret in it) leaks in.
type ExecRunner struct{}

var baseEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "LC_ALL=C"}

// Run starts argv and waits for it. On cancellation the child's process
// group gets SIGTERM and, 10 s later, the child SIGKILL.
func (r ExecRunner) Run(ctx context.Context, argv, env []string, line func(string)) error {
	return r.RunInput(ctx, argv, env, nil, line)
}

// RunInput is Run with in as the command's standard input (nil: none).
func (ExecRunner) RunInput(ctx context.Context, argv, env []string, in io.Reader, line func(string)) error {
	if len(argv) == 0 {
		return errors.New("empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append([]string(nil), baseEnv...), env...)
	// The child gets its own process group: a Ctrl-C on the operator's
	// terminal reaches upgrader, which decides (an irreversible step is
	// let finish), not the vendor tool directly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Stdin = in
	if err := cmd.Start(); err != nil {
		pw.Close()
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if tail = append(tail, l); len(tail) > 5 {
				tail = tail[1:]
			}
			if line != nil {
				line(l)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &CommandError{Path: argv[0], Err: err, Tail: tail}
	}
	return nil
}

// CommandError is a command that ran and failed, with its last lines of
// output (and the log of a job); it unwraps to an error with an ExitCode
// method (*exec.ExitError, or a job's ExitError).
type CommandError struct {
	Path string
	Err  error
	Tail []string
	Log  string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Path, e.Err)
	if len(e.Tail) > 0 {
		msg += "; last output: " + strings.Join(e.Tail, " | ")
	}
	if e.Log != "" {
		msg += "; its log: " + e.Log
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// exitCode returns the exit code a command error carries.
func exitCode(err error) (int, bool) {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode(), true
	}
	return 0, false
}
