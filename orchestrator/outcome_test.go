package orchestrator_test

import (
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// Classify gives every way a run can stand its class and the command the
// operator types next; cmd/ maps the class to the exit code.
func TestClassify(t *testing.T) {
	plan := newPlan(step("backup"), step("g", gate), step("upgrade", irreversible), step("after"))
	withSkip := func(spec orchestrator.StepSpec) orchestrator.StepSpec {
		spec.Skip = orchestrator.SkipWithReason
		return spec
	}
	plan.Steps[1] = withSkip(plan.Steps[1])
	recs := func(statuses ...orchestrator.StepStatus) []orchestrator.StepRecord {
		out := make([]orchestrator.StepRecord, len(plan.Steps))
		for i := range out {
			out[i] = orchestrator.StepRecord{Index: i, StepID: plan.Steps[i].ID, Status: orchestrator.StepPending}
			if i < len(statuses) {
				out[i].Status = statuses[i]
				if statuses[i] != orchestrator.StepPending {
					out[i].Attempts = 1
				}
			}
		}
		return out
	}
	d, p, st, f := orchestrator.StepDone, orchestrator.StepPending, orchestrator.StepStarted, orchestrator.StepFailed
	for _, tc := range []struct {
		name  string
		state orchestrator.State
		recs  []orchestrator.StepRecord
		busy  bool
		class orchestrator.OutcomeClass
		step  string
		next  string // in the Next command
		or    string // in an alternative, "" for none expected
	}{
		{"busy", orchestrator.StateRunning, recs(st), true, orchestrator.OutcomeRunning, "backup", "upgrader watch", ""},
		{"gate", orchestrator.StateWaitingOperator, recs(d), false, orchestrator.OutcomeGate, "g", "upgrader confirm g", "upgrader skip g"},
		{"point of no return", orchestrator.StateWaitingOperator, recs(d, d), false, orchestrator.OutcomeGate, "upgrade", "consent to the point of no return: upgrader confirm upgrade", "upgrader abort"},
		{"failed before", orchestrator.StateFailed, recs(f), false, orchestrator.OutcomeFailed, "backup", "upgrader retry", "upgrader abort"},
		{"failed after", orchestrator.StateFailed, recs(d, d, f), false, orchestrator.OutcomeFailed, "upgrade", "upgrader retry", ""},
		{"crashed mid-step", orchestrator.StateRunning, recs(st), false, orchestrator.OutcomeInterrupted, "backup", "upgrader resume", ""},
		{"crashed between steps", orchestrator.StateRunning, recs(d, p), false, orchestrator.OutcomeInterrupted, "g", "upgrader resume", ""},
		{"reboot", orchestrator.StateRebooting, recs(d, d, d, st), false, orchestrator.OutcomeReboot, "after", "upgrader resume", ""},
		{"completed", orchestrator.StateCompleted, recs(d, d, d, d), false, orchestrator.OutcomeDone, "", "nothing", ""},
		{"aborted", orchestrator.StateAborted, recs(f), false, orchestrator.OutcomeAborted, "backup", "upgrader plan", ""},
		{"blocked", orchestrator.StateBlocked, recs(), false, orchestrator.OutcomeBlocked, "", "upgrader plan", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := orchestrator.Run{ID: "r1", Plan: plan, State: tc.state}
			o := orchestrator.Classify(run, tc.recs, "", tc.busy)
			if o.Class != tc.class || o.Step != tc.step || !strings.Contains(o.Next.Command, tc.next) {
				t.Errorf("%+v, want class %s at %q, next containing %q", o, tc.class, tc.step, tc.next)
			}
			if tc.or != "" && !strings.Contains(o.Next.Text(), tc.or) {
				t.Errorf("next %q lacks %q", o.Next.Text(), tc.or)
			}
			if tc.name == "failed after" && strings.Contains(o.Next.Text(), "abort") {
				t.Errorf("abort offered past the point of no return: %q", o.Next.Text())
			}
		})
	}
}

// A migration's run on the old server, once its own steps are done, hands
// over: the outcome names the new server and the export command.
func TestClassifyHandOver(t *testing.T) {
	plan := newPlan(step("backup"), step("install"))
	plan.Steps[0].RunsOn, plan.Steps[1].RunsOn = orchestrator.RoleSource, orchestrator.RoleTarget
	recs := []orchestrator.StepRecord{{Index: 0, StepID: "backup", Status: orchestrator.StepDone,
		Outputs: orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"pc-backup": {Path: "/var/backups/pc.tar.gz"}}}},
		{Index: 1, StepID: "install", Status: orchestrator.StepPending}}
	run := orchestrator.Run{ID: "r1", Plan: plan, State: orchestrator.StateRunning}
	o := orchestrator.Classify(run, recs, orchestrator.RoleSource, false)
	if o.Class != orchestrator.OutcomeHandOver || o.HandOverTo != orchestrator.RoleTarget ||
		!strings.Contains(o.Next.Command, "upgrader export --out /var/tmp/upgrader-r1.json") ||
		!strings.Contains(o.Next.Command, "/var/backups/pc.tar.gz") || !strings.Contains(o.Next.Command, "x3650") {
		t.Fatalf("%+v", o)
	}
	// On the new server the same run is simply to carry on.
	if o := orchestrator.Classify(run, recs, orchestrator.RoleTarget, false); o.Class != orchestrator.OutcomeInterrupted {
		t.Fatalf("on the target: %+v", o)
	}
	// A directory artifact (a directory-format dump) is copied whole.
	recs[0].Outputs.Artifacts["db-backup"] = orchestrator.Artifact{Path: "/var/backups/pom.dump", Dir: true}
	if o := orchestrator.Classify(run, recs, orchestrator.RoleSource, false); !strings.Contains(o.Next.Command, "/var/backups/pom.dump/ (the whole directory)") {
		t.Fatalf("a directory artifact: %s", o.Next.Command)
	}
}
