package orchestrator_test

import (
	"context"
	"errors"
	"testing"

	"upgrader/orchestrator"
)

// createWith makes the harness's run with the given consent.
func (h *harness) createWith(tb testing.TB, p orchestrator.Plan, c *orchestrator.Consent) {
	tb.Helper()
	if _, err := h.eng.Create(p, runID, "", "alice", c); err != nil {
		tb.Fatalf("Create: %v", err)
	}
}

// Nothing irreversible starts without consent (DESIGN.md invariant 10): a
// run whose consent does not cover the point of no return (none, or a yes
// typed on a terminal before the run) stops before its first irreversible
// step; abort is still allowed there; a confirmation lets it go on.
func TestConsentPointOfNoReturnAsked(t *testing.T) {
	for name, c := range map[string]*orchestrator.Consent{
		"none":     nil,
		"terminal": {Actor: "alice", Via: orchestrator.ConsentTerminal},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.createWith(t, newPlan(step("backup"), step("upgrade", irreversible), step("after")), c)
			out := h.exec(t, orchestrator.ExecOptions{Actor: "alice"})
			if out.State != orchestrator.StateWaitingOperator || out.Step != "upgrade" {
				t.Fatalf("stopped %+v, want waiting at upgrade", out)
			}
			if got := h.steps.callsFor("upgrade"); len(got) != 0 {
				t.Fatalf("the irreversible step was touched before consent: %v", got)
			}
			run, recs := h.load(t)
			if past, _ := orchestrator.PastPointOfNoReturn(run.Plan, recs); past {
				t.Fatal("waiting for consent counts as past the point of no return")
			}
			o := orchestrator.Classify(run, recs, "", false)
			if o.Class != orchestrator.OutcomeGate || !o.PointOfNoReturn || o.Step != "upgrade" {
				t.Errorf("outcome %+v, want a gate at the point of no return", o)
			}
			if err := h.eng.Confirm(runID, "upgrade", "bob", map[string]string{"answer": "yes"}); err != nil {
				t.Fatal(err)
			}
			if out := h.exec(t, orchestrator.ExecOptions{Actor: "bob"}); out.State != orchestrator.StateCompleted {
				t.Fatalf("after the confirmation: %+v", out)
			}
			if r := h.rec(t, "upgrade"); r.Confirmation == nil || r.Confirmation.Actor != "bob" {
				t.Errorf("upgrade record %+v, want bob's confirmation", r)
			}
		})
	}
}

// Before the point of no return the run can still be aborted.
func TestConsentAbortWhileAsked(t *testing.T) {
	h := newHarness(t)
	h.createWith(t, newPlan(step("upgrade", irreversible)), nil)
	h.exec(t, orchestrator.ExecOptions{Actor: "alice"})
	if err := h.eng.Abort(runID, "alice", "window closed"); err != nil {
		t.Fatalf("abort while asked for consent: %v", err)
	}
}

// --yes and the reviewed fingerprint cover the point of no return: the run
// goes on, and the journal says whose consent answered it and how.
func TestConsentPointOfNoReturnCovered(t *testing.T) {
	for _, via := range []string{orchestrator.ConsentYes, orchestrator.ConsentFingerprint} {
		t.Run(via, func(t *testing.T) {
			h := newHarness(t)
			h.createWith(t, newPlan(step("upgrade", irreversible)), &orchestrator.Consent{Actor: "alice", Via: via, PointOfNoReturn: true})
			if out := h.exec(t, orchestrator.ExecOptions{Actor: "engine-caller"}); out.State != orchestrator.StateCompleted {
				t.Fatalf("%+v, want completed", out)
			}
			r := h.rec(t, "upgrade")
			if r.Confirmation == nil || r.Confirmation.Actor != "alice" || r.Confirmation.Attestation["via"] != via {
				t.Errorf("confirmation %+v, want alice's consent via %s", r.Confirmation, via)
			}
		})
	}
}

// A consent to the point of no return does not answer operator gates;
// --yes does, and so does the answers file, gate by gate.
func TestConsentGates(t *testing.T) {
	plan := newPlan(step("g1", gate), step("upgrade", irreversible), step("g2", gate))
	h := newHarness(t)
	h.createWith(t, plan, &orchestrator.Consent{Actor: "alice", Via: orchestrator.ConsentFingerprint, PointOfNoReturn: true})
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateWaitingOperator || out.Step != "g1" {
		t.Fatalf("fingerprint consent: %+v, want waiting at g1", out)
	}

	h = newHarness(t)
	h.createWith(t, plan, &orchestrator.Consent{Actor: "alice", Via: orchestrator.ConsentYes, PointOfNoReturn: true, Yes: true})
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("--yes: %+v, want completed", out)
	}

	h = newHarness(t)
	h.createWith(t, plan, &orchestrator.Consent{Actor: "alice", Via: orchestrator.ConsentTerminal,
		Answers: map[string]map[string]string{"g1": {}, "upgrade": {}}})
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateWaitingOperator || out.Step != "g2" {
		t.Fatalf("answers for g1 and upgrade: %+v, want waiting at g2", out)
	}
	if r := h.rec(t, "upgrade"); r.Confirmation == nil || r.Confirmation.Attestation["via"] != "answers file" {
		t.Errorf("upgrade confirmation %+v, want the answers file's", r.Confirmation)
	}
}

// An irreversible step that already began (its earlier process died in
// it) is past the point of no return: resume does not ask again, it
// probes the step.
func TestConsentNotAskedAgainAfterTheStepBegan(t *testing.T) {
	h := newHarness(t)
	h.createWith(t, newPlan(step("upgrade", irreversible)), nil)
	h.exec(t, orchestrator.ExecOptions{})
	if err := h.eng.Confirm(runID, "upgrade", "bob", nil); err != nil {
		t.Fatal(err)
	}
	h.crashAt = "after-intent upgrade"
	h.execCrash(t)
	h.restart(t)
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("resume after the step began: %+v, want completed without asking", out)
	}
}

// Confirming the point of no return needs the run to wait there.
func TestConsentConfirmOnlyWhereTheRunWaits(t *testing.T) {
	h := newHarness(t)
	h.createWith(t, newPlan(step("a"), step("upgrade", irreversible)), nil)
	if err := h.eng.Confirm(runID, "upgrade", "bob", nil); !errors.Is(err, orchestrator.ErrTransition) {
		t.Fatalf("confirm before the run got there: %v", err)
	}
	if _, err := h.eng.Execute(context.Background(), runID, orchestrator.ExecOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Confirm(runID, "a", "bob", nil); !errors.Is(err, orchestrator.ErrTransition) {
		t.Fatalf("confirm of another step: %v", err)
	}
}
