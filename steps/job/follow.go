package job

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"upgrader/state/securefs"
)

// FollowOptions say what Follow does while the job runs.
type FollowOptions struct {
	// Line gets every line of the job's log, from its first, as it comes;
	// nil reads the log only for its last lines.
	Line func(string)
	// Timeout, if not 0, is how long the command may run from its start;
	// past it its process group gets SIGTERM, and SIGKILL Grace later.
	Timeout time.Duration
	Grace   time.Duration // 10 s if 0
	// Stop, when closed, ends the following, as cancelling ctx does: the
	// job goes on.
	Stop <-chan struct{}
}

// Result is a job as Follow left it.
type Result struct {
	Info
	Tail     []string // its last lines of output
	TimedOut bool     // it ran past the timeout and was stopped
}

var (
	// ErrDetached means Follow stopped following because it was asked
	// to (ctx or Stop); the job goes on without it.
	ErrDetached = errors.New("stopped following the job, which goes on")
	// ErrInterrupted means the job's command started, nothing of it runs
	// any more, and its end is not recorded: a power loss, or the command
	// killed with its supervisor. Whether it finished its work is unknown.
	ErrInterrupted = errors.New("the job was interrupted: its command started and its end was never recorded")
	// ErrNotStarted means the job never got to its command.
	ErrNotStarted = errors.New("the job never started its command")
)

// poll is how often Follow looks at a job it did not start itself (those
// it did wake it up as soon as their supervisor exits).
const poll = 50 * time.Millisecond

const tailLines = 5

// Follow reads a job's log as it grows until the job ends, and returns how
// it ended. A job interrupted (see ErrInterrupted) or never started is an
// error with the Result filled in as far as known.
func (d Dir) Follow(ctx context.Context, key string, o FollowOptions) (Result, error) {
	res := Result{Info: Info{Key: key, Log: d.Log(key)}}
	f, err := securefs.OpenFile(res.Log, os.O_RDONLY, 0)
	if err != nil {
		return res, err
	}
	defer f.Close()
	lr := &lineReader{r: bufio.NewReaderSize(f, 64<<10), line: o.Line}
	var exited <-chan struct{}
	if c, ok := ours.Load(d.path(key, "")); ok {
		exited = c.(chan struct{})
	}
	grace := o.Grace
	if grace == 0 {
		grace = 10 * time.Second
	}
	var killAt time.Time
	killed := false
	for {
		if err := lr.drain(); err != nil {
			return res, err
		}
		info, err := d.Look(key)
		if err != nil {
			return res, err
		}
		res.Info = info
		if !info.State.Live() {
			// Everything the command wrote is in the file by now.
			if err := lr.drain(); err != nil {
				return res, err
			}
			lr.flush()
			res.Tail = lr.tail
			switch info.State {
			case Ended:
				return res, nil
			case Interrupted:
				return res, ErrInterrupted
			}
			return res, ErrNotStarted
		}
		if o.Timeout > 0 && !info.StartedAt.IsZero() && time.Since(info.StartedAt) > o.Timeout {
			switch {
			case !res.TimedOut:
				res.TimedOut = true
				signalGroup(info, syscall.SIGTERM)
				killAt = time.Now().Add(grace)
			case !killed && time.Now().After(killAt):
				killed = true
				signalGroup(info, syscall.SIGKILL)
			}
		}
		select {
		case <-ctx.Done():
			return res, ErrDetached
		case <-o.Stop:
			return res, ErrDetached
		case <-exited:
			exited = nil // closed: look now, then poll
		case <-time.After(poll):
		}
	}
}

// signalGroup signals the process group of a job's command, once it is
// proved to be the recorded process (pids are reused).
func signalGroup(info Info, sig syscall.Signal) {
	if alive(info.rec) {
		syscall.Kill(-info.rec.Pid, sig)
	}
}

// lineReader splits a growing log into lines, keeping the last few.
type lineReader struct {
	r       *bufio.Reader
	line    func(string)
	partial []byte
	tail    []string
}

// drain reads what the log holds now; a last line without its newline is
// kept until it is complete (or the job ends).
func (lr *lineReader) drain() error {
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.partial = append(lr.partial, chunk...)
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull) && len(lr.partial) >= 64<<10:
			lr.flush()
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}

func (lr *lineReader) flush() {
	if len(lr.partial) == 0 {
		return
	}
	l := string(bytes.TrimRight(lr.partial, "\r\n"))
	lr.partial = lr.partial[:0]
	if lr.tail = append(lr.tail, l); len(lr.tail) > tailLines {
		lr.tail = lr.tail[1:]
	}
	if lr.line != nil {
		lr.line(l)
	}
}
