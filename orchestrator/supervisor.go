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

// Supervisor owns the engine in a long-lived process (the daemon): one
// goroutine executes the active run at a time, and operator requests are
// applied only while it is not executing, so the engine's view of the run
// is never stale. Watchers get the engine's notices.
type Supervisor struct {
	Engine *Engine
	// Role is this server's role in a two-server procedure.
	Role string

	mu     sync.Mutex // guards the run: busy, cancel, done
	busy   bool
	cancel context.CancelFunc
	done   chan struct{}

	// subMu guards the watchers alone: the engine notifies while an
	// operator request holds mu.
	subMu sync.Mutex
	subs  map[chan Notice]struct{}
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
	for ch := range s.subs {
		select {
		case ch <- n:
		default: // a slow watcher misses progress, never blocks the run
		}
	}
}

// Subscribe returns a channel of notices and a function to stop them.
func (s *Supervisor) Subscribe() (<-chan Notice, func()) {
	ch := make(chan Notice, 256)
	s.subMu.Lock()
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
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
		if err != nil && ctx.Err() == nil {
			s.Engine.Log.Error().Err(err).Str("run", runID).Msg("run stopped on an error")
			out.Error = err.Error()
		}
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
		s.publish(Notice{Kind: "stopped", Run: runID, Step: out.Step, Text: string(out.State)})
	}()
}

// ResumeActive carries on the active run, if any, as the daemon starts.
// A failed run stays failed: retrying is the operator's call.
func (s *Supervisor) ResumeActive(actor string) (string, error) {
	id, err := s.Engine.Store.ActiveRun()
	if errors.Is(err, ErrNoActiveRun) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goExecute(id, ExecOptions{Actor: actor})
	return id, nil
}

// Start creates a run of plan and executes it.
func (s *Supervisor) Start(plan Plan, runID, profilePath, actor string) (Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return Run{}, fmt.Errorf("%w: %w", ErrActiveRun, ErrBusy)
	}
	run, err := s.Engine.Create(plan, runID, profilePath, actor)
	if err != nil {
		return Run{}, err
	}
	s.goExecute(run.ID, ExecOptions{Actor: actor})
	return run, nil
}

// act applies an operator request to the active run while it is not
// executing, then lets the run go on.
func (s *Supervisor) act(actor string, retry bool, do func(runID string) error) error {
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
		s.goExecute(id, ExecOptions{Actor: actor, Retry: retry})
	}
	return nil
}

// Confirm records an operator's confirmation of the gate the run waits at.
func (s *Supervisor) Confirm(stepID, actor string, att map[string]string) error {
	return s.act(actor, false, func(id string) error { return s.Engine.Confirm(id, stepID, actor, att) })
}

// Skip skips the failed or waiting step, if its policy allows.
func (s *Supervisor) Skip(stepID, actor, reason string) error {
	return s.act(actor, false, func(id string) error { return s.Engine.Skip(id, stepID, actor, reason) })
}

// Retry tries the failed step again.
func (s *Supervisor) Retry(actor string) error {
	return s.act(actor, true, func(id string) error {
		run, _, err := s.Engine.Store.LoadRun(id)
		if err != nil {
			return err
		}
		if run.State != StateFailed {
			return fmt.Errorf("%w: run %s is %s, not failed", ErrTransition, id, run.State)
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

// Shutdown interrupts the step in flight (left started, to be probed on
// the next start) and waits for the executing goroutine.
func (s *Supervisor) Shutdown() {
	s.mu.Lock()
	busy, cancel, done := s.busy, s.cancel, s.done
	s.mu.Unlock()
	if busy {
		cancel()
		<-done
	}
}
