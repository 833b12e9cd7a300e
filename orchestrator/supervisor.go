package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrBusy means the run is carrying out a step; the request can be made
// again once it stops (at a gate, a failure or the end).
var ErrBusy = errors.New("the run is carrying out a step")

// backlog is how many recent notices a late watcher can ask for.
const backlog = 512

// Supervisor carries runs out in the background: one goroutine executes
// the active run at a time, and operator requests are applied only while
// it is not executing, so the engine's view of the run is never stale.
// Watchers get the engine's notices, numbered, and can ask for the recent
// ones they missed.
type Supervisor struct {
	Engine *Engine
	// Role is this server's role in a two-server procedure.
	Role string

	mu      sync.Mutex // guards the run: busy, cancel, done, lastErr
	busy    bool
	cancel  context.CancelFunc
	done    chan struct{}
	lastErr error // why the last execution stopped short, nil if it did not

	// subMu guards the watchers and the numbering alone: the engine
	// notifies while an operator request holds mu.
	subMu  sync.Mutex
	subs   map[chan Notice]struct{}
	seq    uint64
	recent []Notice
}

// NewSupervisor wires the engine's notices to the supervisor's watchers.
func NewSupervisor(e *Engine, role string) *Supervisor {
	s := &Supervisor{Engine: e, Role: role, subs: map[chan Notice]struct{}{}}
	e.Notify = s.publish
	return s
}

func (s *Supervisor) publish(n Notice) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	s.seq++
	n.Seq = s.seq
	if s.recent = append(s.recent, n); len(s.recent) > backlog {
		s.recent = s.recent[len(s.recent)-backlog:]
	}
	for ch := range s.subs {
		select {
		case ch <- n:
		default: // a slow watcher misses progress, never blocks the run
		}
	}
}

// Seq is the number of the last notice published.
func (s *Supervisor) Seq() uint64 {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return s.seq
}

// Subscribe returns a channel of the notices after seq `after` (the recent
// ones still kept at once, then every new one; Seq() for only new ones),
// and a function to stop them. When nothing executes the run, a "stopped" notice follows
// the recent ones, so a watcher never waits for an execution that ended.
func (s *Supervisor) Subscribe(after uint64) (<-chan Notice, func()) {
	ch := make(chan Notice, backlog+256)
	s.subMu.Lock()
	for _, n := range s.recent {
		if n.Seq > after {
			ch <- n
		}
	}
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
	// Subscribed first, then asked: an execution that stops from now on
	// publishes its own "stopped".
	if !s.Busy() {
		ch <- Notice{Kind: "stopped", Seq: s.Seq()}
	}
	return ch, func() {
		s.subMu.Lock()
		delete(s.subs, ch)
		s.subMu.Unlock()
	}
}

// Busy reports whether a step is being carried out.
func (s *Supervisor) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

// goExecute starts executing the run; the caller holds s.mu.
func (s *Supervisor) goExecute(runID string, opts ExecOptions) {
	ctx, cancel := context.WithCancel(context.Background())
	s.busy, s.cancel, s.done = true, cancel, make(chan struct{})
	done := s.done
	opts.Role = s.Role
	go func() {
		defer close(done)
		out, err := s.Engine.Execute(ctx, runID, opts)
		if err != nil {
			if ctx.Err() == nil {
				s.Engine.Log.Error().Err(err).Str("run", runID).Msg("run stopped on an error")
			}
			out.Error = err.Error()
		}
		s.mu.Lock()
		s.busy, s.lastErr = false, err
		s.mu.Unlock()
		s.publish(Notice{Kind: "stopped", Run: runID, Step: out.Step, Text: out.Error})
	}()
}

// Execute carries the active run on with opts (a retry, gates answered),
// while nothing else executes it.
func (s *Supervisor) Execute(opts ExecOptions) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return "", ErrBusy
	}
	id, err := s.Engine.Store.ActiveRun()
	if err != nil {
		return "", err
	}
	s.goExecute(id, opts)
	return id, nil
}

// Start creates a run of plan with the operator's consent and executes it
// with opts (opts.Actor is who asked).
func (s *Supervisor) Start(plan Plan, runID, profilePath string, consent *Consent, opts ExecOptions) (Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return Run{}, fmt.Errorf("%w: %w", ErrActiveRun, ErrBusy)
	}
	run, err := s.Engine.Create(plan, runID, profilePath, opts.Actor, consent)
	if err != nil {
		return Run{}, err
	}
	s.goExecute(run.ID, opts)
	return run, nil
}

// act applies an operator request to the active run while it is not
// executing, then lets the run go on with opts.
func (s *Supervisor) act(opts ExecOptions, do func(runID string) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return ErrBusy
	}
	id, err := s.Engine.Store.ActiveRun()
	if err != nil {
		return err
	}
	if err := do(id); err != nil {
		return err
	}
	if run, _, err := s.Engine.Store.LoadRun(id); err == nil && !run.State.Terminal() {
		s.goExecute(id, opts)
	}
	return nil
}

// Confirm records an operator's confirmation of the gate the run waits at
// and lets the run go on.
func (s *Supervisor) Confirm(stepID string, att map[string]string, opts ExecOptions) error {
	return s.act(opts, func(id string) error { return s.Engine.Confirm(id, stepID, opts.Actor, att) })
}

// Skip skips the failed or waiting step, if its policy allows, and lets
// the run go on.
func (s *Supervisor) Skip(stepID, reason string, opts ExecOptions) error {
	return s.act(opts, func(id string) error { return s.Engine.Skip(id, stepID, opts.Actor, reason) })
}

// Retry tries the failed step again.
func (s *Supervisor) Retry(opts ExecOptions) error {
	opts.Retry = true
	return s.act(opts, func(id string) error {
		run, _, err := s.Engine.Store.LoadRun(id)
		if err != nil {
			return err
		}
		if run.State != StateFailed {
			return fmt.Errorf("%w: run %s is %s, not failed: nothing to retry", ErrTransition, id, run.State)
		}
		return nil
	})
}

// Abort stops the run for good, before the point of no return only. A
// step in flight is interrupted first and left to be probed, as after a
// crash.
func (s *Supervisor) Abort(actor, reason string) error {
	s.mu.Lock()
	id, err := s.Engine.Store.ActiveRun()
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if run, recs, err := s.Engine.Store.LoadRun(id); err == nil {
		if past, step := PastPointOfNoReturn(run.Plan, recs); past {
			s.mu.Unlock()
			return fmt.Errorf("%w: %s has started and cannot be undone; finish the run", ErrPastPointOfNoReturn, step)
		}
	}
	busy, cancel, done := s.busy, s.cancel, s.done
	s.mu.Unlock()
	if busy {
		cancel()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Engine.Abort(id, actor, reason)
}

// Locked runs fn while nothing executes the run (an export, a replan);
// ErrBusy if something does.
func (s *Supervisor) Locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return ErrBusy
	}
	return fn()
}

// Shutdown interrupts the step in flight (left started, to be probed on
// the next start), waits for the executing goroutine, and says why the
// last execution stopped short (nil if it did not): a step that left its
// work going on without upgrader says where (ErrDetached).
func (s *Supervisor) Shutdown() error {
	s.mu.Lock()
	busy, cancel, done := s.busy, s.cancel, s.done
	s.mu.Unlock()
	if busy {
		cancel()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}
