package orchestrator_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

type transitionCase struct {
	from orchestrator.State
	ev   orchestrator.Event
	to   orchestrator.State
}

// allowed is the lifecycle of DESIGN.md, written out by hand so that a
// change to the table in lifecycle.go has to be made here too.
var allowed = []transitionCase{
	{orchestrator.StatePlanned, orchestrator.EventPreflight, orchestrator.StatePreflight},
	{orchestrator.StatePlanned, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StatePreflight, orchestrator.EventPass, orchestrator.StateRunning},
	{orchestrator.StatePreflight, orchestrator.EventBlock, orchestrator.StateBlocked},
	{orchestrator.StatePreflight, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StateRunning, orchestrator.EventPause, orchestrator.StateWaitingOperator},
	{orchestrator.StateRunning, orchestrator.EventReboot, orchestrator.StateRebooting},
	{orchestrator.StateRunning, orchestrator.EventFail, orchestrator.StateFailed},
	{orchestrator.StateRunning, orchestrator.EventComplete, orchestrator.StateCompleted},
	{orchestrator.StateRunning, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StateWaitingOperator, orchestrator.EventConfirm, orchestrator.StateRunning},
	{orchestrator.StateWaitingOperator, orchestrator.EventSkip, orchestrator.StateRunning},
	{orchestrator.StateWaitingOperator, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StateRebooting, orchestrator.EventRebooted, orchestrator.StateRunning},
	{orchestrator.StateRebooting, orchestrator.EventFail, orchestrator.StateFailed},
	{orchestrator.StateRebooting, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StateFailed, orchestrator.EventRetry, orchestrator.StateRunning},
	{orchestrator.StateFailed, orchestrator.EventSkip, orchestrator.StateRunning},
	{orchestrator.StateFailed, orchestrator.EventAbort, orchestrator.StateAborted},
	{orchestrator.StateRunning, orchestrator.EventExport, orchestrator.StateExported},
	{orchestrator.StateWaitingOperator, orchestrator.EventExport, orchestrator.StateExported},
	{orchestrator.StateFailed, orchestrator.EventExport, orchestrator.StateExported},
}

func TestTransitionAllowed(t *testing.T) {
	for _, tt := range allowed {
		t.Run(string(tt.from)+"/"+string(tt.ev), func(t *testing.T) {
			got, err := orchestrator.Transition(tt.from, tt.ev)
			if err != nil || got != tt.to {
				t.Fatalf("Transition(%s, %s) = %s, %v; want %s", tt.from, tt.ev, got, err, tt.to)
			}
		})
	}
}

func TestTransitionDisallowed(t *testing.T) {
	// The ones that would hurt: leaving a terminal state, skipping
	// preflight, confirming a gate nobody waits at.
	tests := []struct {
		name string
		from orchestrator.State
		ev   orchestrator.Event
	}{
		{"completed cannot retry", orchestrator.StateCompleted, orchestrator.EventRetry},
		{"completed cannot abort", orchestrator.StateCompleted, orchestrator.EventAbort},
		{"aborted cannot abort again", orchestrator.StateAborted, orchestrator.EventAbort},
		{"aborted cannot retry", orchestrator.StateAborted, orchestrator.EventRetry},
		{"blocked cannot pass", orchestrator.StateBlocked, orchestrator.EventPass},
		{"blocked cannot retry", orchestrator.StateBlocked, orchestrator.EventRetry},
		{"planned cannot skip preflight", orchestrator.StatePlanned, orchestrator.EventPass},
		{"planned cannot complete", orchestrator.StatePlanned, orchestrator.EventComplete},
		{"running cannot confirm", orchestrator.StateRunning, orchestrator.EventConfirm},
		{"running cannot retry", orchestrator.StateRunning, orchestrator.EventRetry},
		{"waiting cannot complete", orchestrator.StateWaitingOperator, orchestrator.EventComplete},
		{"failed cannot complete", orchestrator.StateFailed, orchestrator.EventComplete},
		{"rebooting cannot pause", orchestrator.StateRebooting, orchestrator.EventPause},
		{"unknown event", orchestrator.StateRunning, orchestrator.Event("explode")},
		{"unknown state", orchestrator.State("bogus"), orchestrator.EventRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := orchestrator.Transition(tt.from, tt.ev)
			if !errors.Is(err, orchestrator.ErrTransition) {
				t.Fatalf("Transition(%s, %s) = %s, %v; want ErrTransition", tt.from, tt.ev, got, err)
			}
			if got != tt.from {
				t.Errorf("state after a refused event = %s, want it left at %s", got, tt.from)
			}
		})
	}
}

func TestTransitionExhaustive(t *testing.T) {
	// Every (state, event) pair not in the allowed table is refused.
	for _, s := range orchestrator.AllStates() {
		for _, ev := range orchestrator.AllEvents() {
			i := slices.IndexFunc(allowed, func(a transitionCase) bool { return a.from == s && a.ev == ev })
			got, err := orchestrator.Transition(s, ev)
			switch {
			case i >= 0 && (err != nil || got != allowed[i].to):
				t.Errorf("Transition(%s, %s) = %s, %v; want %s", s, ev, got, err, allowed[i].to)
			case i < 0 && (!errors.Is(err, orchestrator.ErrTransition) || got != s):
				t.Errorf("Transition(%s, %s) = %s, %v; want ErrTransition and %s", s, ev, got, err, s)
			}
		}
	}
}

func TestTransitionAfterErrorStillWorks(t *testing.T) {
	// The FSM is rebuilt from the given state each call: a refused event
	// must not wedge the next one.
	for i := 0; i < 3; i++ {
		_, err := orchestrator.Transition(orchestrator.StateCompleted, orchestrator.EventRetry)
		if !errors.Is(err, orchestrator.ErrTransition) {
			t.Fatalf("round %d: refused event returned %v", i, err)
		}
		got, err := orchestrator.Transition(orchestrator.StateFailed, orchestrator.EventRetry)
		if err != nil || got != orchestrator.StateRunning {
			t.Fatalf("round %d: after a refused event, failed/retry = %s, %v", i, got, err)
		}
	}
}

func TestStateTerminal(t *testing.T) {
	terminal := map[orchestrator.State]bool{
		orchestrator.StateCompleted: true, orchestrator.StateAborted: true, orchestrator.StateBlocked: true,
		orchestrator.StateExported: true,
	}
	states := orchestrator.AllStates()
	if len(states) != 10 {
		t.Errorf("AllStates has %d states, want 10: %v", len(states), states)
	}
	for _, s := range states {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s.Terminal() = %v, want %v", s, s.Terminal(), terminal[s])
		}
		// A terminal state has no way out; a live one has one at least.
		var out int
		for _, ev := range orchestrator.AllEvents() {
			if _, err := orchestrator.Transition(s, ev); err == nil {
				out++
			}
		}
		if terminal[s] != (out == 0) {
			t.Errorf("%s: terminal %v but %d events lead out", s, terminal[s], out)
		}
	}
}

func TestAllEvents(t *testing.T) {
	evs := orchestrator.AllEvents()
	want := []orchestrator.Event{
		orchestrator.EventPreflight, orchestrator.EventPass, orchestrator.EventBlock, orchestrator.EventPause,
		orchestrator.EventConfirm, orchestrator.EventReboot, orchestrator.EventRebooted, orchestrator.EventFail,
		orchestrator.EventRetry, orchestrator.EventSkip, orchestrator.EventComplete, orchestrator.EventAbort,
		orchestrator.EventExport,
	}
	if !slices.Equal(evs, want) {
		t.Errorf("AllEvents = %v, want %v", evs, want)
	}
}

func TestLifecycleMermaid(t *testing.T) {
	out, err := orchestrator.LifecycleMermaid()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "stateDiagram") {
		t.Errorf("output does not start with stateDiagram:\n%s", out)
	}
	for _, s := range orchestrator.AllStates() {
		if !strings.Contains(out, string(s)) {
			t.Errorf("diagram lacks state %s", s)
		}
	}
	// Drawn from the same table: every allowed transition is an edge.
	for _, a := range allowed {
		edge := string(a.from) + " --> " + string(a.to) + ": " + string(a.ev)
		if !strings.Contains(out, edge) {
			t.Errorf("diagram lacks edge %q", edge)
		}
	}
}
