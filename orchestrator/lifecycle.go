package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/looplab/fsm"
)

// State is a run's lifecycle state.
type State string

const (
	StatePlanned         State = "planned"          // persisted, not started
	StatePreflight       State = "preflight"        // checking the host before the first step
	StateRunning         State = "running"          // steps are being carried out
	StateWaitingOperator State = "waiting-operator" // an operator gate waits for confirmation
	StateRebooting       State = "rebooting"        // a reboot step asked the host to restart
	StateFailed          State = "failed"           // a step failed; retry, skip or abort
	StateBlocked         State = "blocked"          // preflight found a blocker; re-plan
	StateCompleted       State = "completed"        // every step done or skipped
	StateAborted         State = "aborted"          // stopped by the operator before the point of no return
	StateExported        State = "exported"         // handed over to another server (upgrader export)
)

// Event is a lifecycle event.
type Event string

const (
	EventPreflight Event = "preflight"
	EventPass      Event = "pass"
	EventBlock     Event = "block"
	EventPause     Event = "pause"
	EventConfirm   Event = "confirm"
	EventReboot    Event = "reboot"
	EventRebooted  Event = "rebooted"
	EventFail      Event = "fail"
	EventRetry     Event = "retry"
	EventSkip      Event = "skip"
	EventComplete  Event = "complete"
	EventAbort     Event = "abort"
	EventExport    Event = "export"
)

// lifecycle is the single table of allowed transitions.
var lifecycle = fsm.Events{
	{Name: string(EventPreflight), Src: []string{string(StatePlanned)}, Dst: string(StatePreflight)},
	{Name: string(EventPass), Src: []string{string(StatePreflight)}, Dst: string(StateRunning)},
	{Name: string(EventBlock), Src: []string{string(StatePreflight)}, Dst: string(StateBlocked)},
	{Name: string(EventPause), Src: []string{string(StateRunning)}, Dst: string(StateWaitingOperator)},
	{Name: string(EventConfirm), Src: []string{string(StateWaitingOperator)}, Dst: string(StateRunning)},
	{Name: string(EventReboot), Src: []string{string(StateRunning)}, Dst: string(StateRebooting)},
	{Name: string(EventRebooted), Src: []string{string(StateRebooting)}, Dst: string(StateRunning)},
	{Name: string(EventFail), Src: []string{string(StateRunning), string(StateRebooting)}, Dst: string(StateFailed)},
	{Name: string(EventRetry), Src: []string{string(StateFailed)}, Dst: string(StateRunning)},
	{Name: string(EventSkip), Src: []string{string(StateFailed), string(StateWaitingOperator)}, Dst: string(StateRunning)},
	{Name: string(EventComplete), Src: []string{string(StateRunning)}, Dst: string(StateCompleted)},
	{Name: string(EventAbort), Src: []string{string(StatePlanned), string(StatePreflight), string(StateRunning),
		string(StateWaitingOperator), string(StateFailed), string(StateRebooting)}, Dst: string(StateAborted)},
	{Name: string(EventExport), Src: []string{string(StateRunning), string(StateWaitingOperator), string(StateFailed)},
		Dst: string(StateExported)},
}

func newLifecycle(current State) *fsm.FSM {
	return fsm.NewFSM(string(current), lifecycle, nil)
}

// Transition returns the state event ev leads to from current, or an error
// wrapping ErrTransition. The FSM is rebuilt from the given state on every
// call, so a failed event never leaves it wedged.
func Transition(current State, ev Event) (State, error) {
	f := newLifecycle(current)
	// WithoutCancel: a cancelled context wedges looplab/fsm v1.0.3 for good.
	err := f.Event(context.WithoutCancel(context.Background()), string(ev))
	var noTransition fsm.NoTransitionError
	if err != nil && !errors.As(err, &noTransition) {
		return current, fmt.Errorf("%w: %s from %s", ErrTransition, ev, current)
	}
	return State(f.Current()), nil
}

// Terminal reports whether a run in state s is over.
func (s State) Terminal() bool {
	return s == StateCompleted || s == StateAborted || s == StateBlocked || s == StateExported
}

// AllStates lists every lifecycle state in display order.
func AllStates() []State {
	return []State{StatePlanned, StatePreflight, StateRunning, StateWaitingOperator, StateRebooting,
		StateFailed, StateBlocked, StateCompleted, StateAborted, StateExported}
}

// LifecycleMermaid draws the lifecycle as a mermaid state diagram from the
// same table the engine uses.
func LifecycleMermaid() (string, error) {
	return fsm.VisualizeForMermaidWithGraphType(newLifecycle(StatePlanned), fsm.StateDiagram)
}

// AllEvents lists every lifecycle event.
func AllEvents() []Event {
	out := make([]Event, len(lifecycle))
	for i, e := range lifecycle {
		out[i] = Event(e.Name)
	}
	return out
}
