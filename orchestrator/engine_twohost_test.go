package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"upgrader/orchestrator"
)

func runsOn(role string) func(*orchestrator.StepSpec) {
	return func(s *orchestrator.StepSpec) { s.RunsOn = role }
}

// twoHostPlan is a migration in miniature: a backup on the source, then a
// restore that needs it and one more step on the target.
func twoHostPlan() orchestrator.Plan {
	return newPlan(
		step("backup", runsOn(orchestrator.RoleSource), produces("pc-backup")),
		step("restore", runsOn(orchestrator.RoleTarget), requires("pc-backup")),
		step("upgrade", runsOn(orchestrator.RoleTarget), irreversible),
	)
}

// handedOver runs the source's share of twoHostPlan on a new harness and
// returns it with the run still active there.
func handedOver(t *testing.T) *harness {
	t.Helper()
	src := newHarness(t)
	src.create(t, twoHostPlan())
	out := src.exec(t, orchestrator.ExecOptions{Actor: "tester", Role: orchestrator.RoleSource})
	if out.State != orchestrator.StateRunning || out.HandOver != orchestrator.RoleTarget || out.Step != "restore" {
		t.Fatalf("outcome on the source %+v, want running, hand over to target at restore", out)
	}
	return src
}

func TestEngineHandOverToTarget(t *testing.T) {
	src := handedOver(t)
	if got := src.steps.allCalls(); !slices.Equal(got, []string{"probe backup", "apply backup", "verify backup"}) {
		t.Fatalf("calls on the source %v, want only the backup", got)
	}
	run, recs := src.load(t)
	if run.State != orchestrator.StateRunning || recs[0].Status != orchestrator.StepDone || recs[1].Status != orchestrator.StepPending {
		t.Fatalf("stored %s with records %+v", run.State, recs)
	}
	// Asking again changes nothing: the source never runs the target's steps.
	for _, role := range []string{orchestrator.RoleSource, ""} {
		if out := src.exec(t, orchestrator.ExecOptions{Role: role}); out.HandOver != orchestrator.RoleTarget || out.State != orchestrator.StateRunning {
			t.Errorf("Execute as %q again: %+v", role, out)
		}
	}
	if n := len(src.steps.allCalls()); n != 3 {
		t.Errorf("%d calls after asking again, want still 3", n)
	}

	x, err := src.eng.Export(runID)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if err := x.Check(); err != nil {
		t.Fatalf("Check of a fresh export: %v", err)
	}
	if x.Format != orchestrator.ExportFormat || x.Run.State != orchestrator.StateRunning || len(x.Steps) != 3 || x.ExportedAt.IsZero() {
		t.Errorf("export format %q state %s, %d steps, at %v", x.Format, x.Run.State, len(x.Steps), x.ExportedAt)
	}
	if a := x.Steps[0].Outputs.Artifacts["pc-backup"]; a.Path != "/fake/pc-backup" {
		t.Errorf("the export lost the backup artifact: %+v", x.Steps[0].Outputs)
	}
	if !reflect.DeepEqual(x.Journal, src.journal(t)) {
		t.Error("the export's journal is not the run's journal")
	}
	// The export travels as a file: it survives JSON.
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var carried orchestrator.RunExport
	if err := json.Unmarshal(b, &carried); err != nil {
		t.Fatal(err)
	}
	if err := carried.Check(); err != nil {
		t.Fatalf("Check after a JSON round trip: %v", err)
	}

	if err := src.eng.MarkExported(runID, "alice", "x3650"); err != nil {
		t.Fatalf("MarkExported: %v", err)
	}
	run, _ = src.load(t)
	if run.State != orchestrator.StateExported || !run.State.Terminal() {
		t.Errorf("source state %s, want exported (terminal)", run.State)
	}
	if _, err := src.db.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("ActiveRun on the source after export: %v, want ErrNoActiveRun", err)
	}
	for _, role := range []string{orchestrator.RoleSource, orchestrator.RoleTarget} {
		if out := src.exec(t, orchestrator.ExecOptions{Role: role, Retry: true}); out.State != orchestrator.StateExported || out.HandOver != "" {
			t.Errorf("Execute as %s on the exported run: %+v", role, out)
		}
	}
	if n := len(src.steps.allCalls()); n != 3 {
		t.Errorf("the exported run ran steps on the source: %v", src.steps.allCalls())
	}
	if _, err := src.eng.Export(runID); err == nil {
		t.Error("an exported run was exported again")
	}
	if err := src.eng.MarkExported(runID, "alice", "x3650"); !errors.Is(err, orchestrator.ErrTransition) {
		t.Errorf("MarkExported twice: %v, want ErrTransition", err)
	}

	// On the target.
	dst := newHarness(t)
	if err := dst.eng.Import(carried, "", "bob", "dl385:/var/backups/upgrader/run.json"); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if id, err := dst.db.ActiveRun(); err != nil || id != runID {
		t.Fatalf("ActiveRun on the target = %q, %v; want %s", id, err, runID)
	}
	j := dst.journal(t)
	if len(j) != len(x.Journal)+1 {
		t.Fatalf("journal on the target has %d entries, want the %d exported and run.imported", len(j), len(x.Journal))
	}
	if !slices.EqualFunc(j[:len(x.Journal)], x.Journal, func(a, b orchestrator.JournalEntry) bool {
		return a.Seq == b.Seq && a.Event == b.Event && a.Step == b.Step && a.Text == b.Text && a.Time.Equal(b.Time)
	}) {
		t.Error("the imported journal differs from the exported one")
	}
	last := j[len(j)-1]
	if last.Event != "run.imported" || last.Seq != x.Journal[len(x.Journal)-1].Seq+1 || last.Actor != "bob" ||
		!strings.Contains(last.Text, "dl385:/var/backups/upgrader/run.json") || last.Fields["fingerprint"] != x.Run.Plan.Fingerprint {
		t.Errorf("last journal entry %+v, want run.imported with seq %d", last, x.Journal[len(x.Journal)-1].Seq+1)
	}
	run, recs = dst.load(t)
	if run.State != orchestrator.StateRunning || run.Plan.Fingerprint != x.Run.Plan.Fingerprint || !slices.EqualFunc(recs, x.Steps, sameRecord) {
		t.Errorf("imported run %s %s with %+v", run.State, run.Plan.Fingerprint, recs)
	}

	// The target without its role hands over to itself: nothing runs.
	if out := dst.exec(t, orchestrator.ExecOptions{}); out.HandOver != orchestrator.RoleTarget || len(dst.steps.allCalls()) != 0 {
		t.Errorf("Execute without a role on the target: %+v, calls %v", out, dst.steps.allCalls())
	}
	out := dst.exec(t, orchestrator.ExecOptions{Actor: "bob", Role: orchestrator.RoleTarget})
	if out.State != orchestrator.StateCompleted || out.HandOver != "" {
		t.Fatalf("outcome on the target %+v, want completed", out)
	}
	want := []string{"probe restore", "apply restore", "verify restore", "probe upgrade", "apply upgrade", "verify upgrade"}
	if got := dst.steps.allCalls(); !slices.Equal(got, want) {
		t.Errorf("calls on the target\n got %v\nwant %v", got, want)
	}
	if got := dst.checker.calls; !slices.Equal(got, []string{"pc-backup=/fake/pc-backup"}) {
		t.Errorf("rechecks on the target %v, want the backup made on the source", got)
	}
	if a := dst.steps.seen["restore"].Artifacts["pc-backup"]; a.Path != "/fake/pc-backup" {
		t.Errorf("restore saw artifacts %v, want the source's pc-backup", dst.steps.seen["restore"].Artifacts)
	}
	for i, e := range dst.journal(t) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("journal entry %d has seq %d: the sequence must continue without a gap", i, e.Seq)
		}
	}
	if _, err := dst.db.ActiveRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Errorf("ActiveRun after completion: %v", err)
	}
	// The same export cannot be imported a second time, not even after the
	// run completed.
	if err := dst.eng.Import(carried, "", "bob", "again"); err == nil {
		t.Error("a run was imported twice")
	}
}

func TestEngineImportTwiceRefused(t *testing.T) {
	src := handedOver(t)
	x, err := src.eng.Export(runID)
	if err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if err := dst.eng.Import(x, "", "bob", "a"); err != nil {
		t.Fatalf("Import: %v", err)
	}
	before := dst.journal(t)
	if err := dst.eng.Import(x, "", "bob", "b"); err == nil {
		t.Fatal("the second Import was accepted")
	}
	if after := dst.journal(t); len(after) != len(before) {
		t.Errorf("a refused import wrote %d journal entries", len(after)-len(before))
	}
}

func TestEngineImportWhileActive(t *testing.T) {
	src := handedOver(t)
	x, err := src.eng.Export(runID)
	if err != nil {
		t.Fatal(err)
	}
	dst := newHarness(t)
	if _, err := dst.eng.Create(newPlan(step("local")), "run-local", "", "bob", testConsent); err != nil {
		t.Fatal(err)
	}
	if err := dst.eng.Import(x, "", "bob", "a"); !errors.Is(err, orchestrator.ErrActiveRun) {
		t.Fatalf("Import while run-local is active: %v, want ErrActiveRun", err)
	}
	if _, _, err := dst.db.LoadRun(runID); !errors.Is(err, orchestrator.ErrRunNotFound) {
		t.Errorf("the refused import was stored: %v", err)
	}
	if id, err := dst.db.ActiveRun(); err != nil || id != "run-local" {
		t.Errorf("ActiveRun = %q, %v; want run-local still", id, err)
	}
}

// setRunID gives the export another run id everywhere it appears.
func setRunID(x *orchestrator.RunExport, id string) {
	x.Run.ID = id
	for i := range x.Steps {
		x.Steps[i].RunID = id
	}
	for i := range x.Journal {
		x.Journal[i].RunID = id
	}
}

func TestRunExportCheck(t *testing.T) {
	src := handedOver(t)
	good, err := src.eng.Export(runID)
	if err != nil {
		t.Fatal(err)
	}
	if len(good.Journal) < 3 {
		t.Fatalf("journal %d entries, want several", len(good.Journal))
	}
	// clone deep-copies the parts the cases change.
	clone := func(x orchestrator.RunExport) orchestrator.RunExport {
		x.Run.Plan.Steps = slices.Clone(x.Run.Plan.Steps)
		x.Steps = slices.Clone(x.Steps)
		x.Journal = slices.Clone(x.Journal)
		return x
	}
	// Each case is tried twice: as a hand edit, which the seal catches,
	// and resealed, as a forger who read the code would do it, which the
	// structural rules must catch.
	tests := []struct {
		name   string
		tamper func(*orchestrator.RunExport)
		want   string // in the error of the resealed file; "" means accepted
	}{
		{"as exported", func(*orchestrator.RunExport) {}, ""},
		{"format missing", func(x *orchestrator.RunExport) { x.Format = "" }, "not an exported run"},
		{"other format", func(x *orchestrator.RunExport) { x.Format = "upgrader-run/3" }, "not an exported run"},
		{"format 1", func(x *orchestrator.RunExport) { x.Format = "upgrader-run/1" }, "older upgrader"},
		{"plan step made skippable", func(x *orchestrator.RunExport) { x.Run.Plan.Steps[2].Skip = orchestrator.SkipWithReason }, "fingerprint"},
		{"plan step's host changed", func(x *orchestrator.RunExport) { x.Run.Plan.Steps[1].RunsOn = orchestrator.RoleSource }, "fingerprint"},
		{"plan fingerprint replaced", func(x *orchestrator.RunExport) { x.Run.Plan.Fingerprint = "sha256:" + strings.Repeat("0", 64) }, "fingerprint"},
		{"run id missing", func(x *orchestrator.RunExport) { setRunID(x, "") }, "run id"},
		{"run id climbs out of a folder", func(x *orchestrator.RunExport) { setRunID(x, "x/../../../../../tmp/escaped") }, "run id"},
		{"run id with an escape sequence", func(x *orchestrator.RunExport) { setRunID(x, "r1\x1b[2J") }, `run id "r1\x1b[2J"`},
		{"run id of 65 characters", func(x *orchestrator.RunExport) { setRunID(x, strings.Repeat("r", 65)) }, "run id"},
		{"step record missing", func(x *orchestrator.RunExport) { x.Steps = x.Steps[:2] }, "2 step records for 3"},
		{"step record of another step", func(x *orchestrator.RunExport) { x.Steps[1].StepID = "upgrade" }, "does not match"},
		{"step records swapped", func(x *orchestrator.RunExport) { x.Steps[1], x.Steps[2] = x.Steps[2], x.Steps[1] }, "does not match"},
		{"step record of another run", func(x *orchestrator.RunExport) { x.Steps[0].RunID = "run-9" }, "does not match"},
		{"step status unknown", func(x *orchestrator.RunExport) { x.Steps[0].Status = "finished" }, `status "finished"`},
		{"target steps flipped to done", func(x *orchestrator.RunExport) {
			for i := 1; i < 3; i++ {
				x.Steps[i].Status, x.Steps[i].Attempts = orchestrator.StepDone, 1
			}
		}, "restore is done in the file, but it runs on the target server"},
		{"target step skipped", func(x *orchestrator.RunExport) {
			x.Steps[2].Status, x.Steps[2].SkipReason = orchestrator.StepSkipped, "no need"
		}, "upgrade is skipped in the file"},
		{"target step pending with a saved value", func(x *orchestrator.RunExport) {
			x.Steps[1].Saved = map[string]string{"boot_id": "forged"}
		}, "restore is pending in the file, but it runs on the target server"},
		{"target step pending with a confirmation", func(x *orchestrator.RunExport) {
			x.Steps[1].Confirmation = &orchestrator.Confirmation{Actor: "uid=0(root)"}
		}, "restore is pending in the file"},
		{"artifact path climbs out", func(x *orchestrator.RunExport) {
			a := x.Steps[0].Outputs.Artifacts["pc-backup"]
			a.Path = "/var/backups/../../etc/shadow"
			x.Steps[0].Outputs.Artifacts = map[string]orchestrator.Artifact{"pc-backup": a}
		}, `artifact pc-backup of step backup has the path "/var/backups/../../etc/shadow"`},
		{"artifact path relative", func(x *orchestrator.RunExport) {
			a := x.Steps[0].Outputs.Artifacts["pc-backup"]
			a.Path = "backups/pc.tar.gz"
			x.Steps[0].Outputs.Artifacts = map[string]orchestrator.Artifact{"pc-backup": a}
		}, "want an absolute path"},
		{"source step's record edited", func(x *orchestrator.RunExport) { x.Steps[0].Attempts = 7 }, ""},
		{"journal entry removed", func(x *orchestrator.RunExport) { x.Journal = slices.Delete(x.Journal, 1, 2) }, "out of sequence"},
		{"journal entries swapped", func(x *orchestrator.RunExport) { x.Journal[0], x.Journal[1] = x.Journal[1], x.Journal[0] }, "out of sequence"},
		{"journal entry of another run", func(x *orchestrator.RunExport) { x.Journal[2].RunID = "run-9" }, "out of sequence"},
		{"journal line edited", func(x *orchestrator.RunExport) { x.Journal[0].Actor = "uid=1000(mallory)" }, ""},
		{"run already over", func(x *orchestrator.RunExport) { x.Run.State = orchestrator.StateExported }, "nothing to carry on"},
		{"run completed", func(x *orchestrator.RunExport) { x.Run.State = orchestrator.StateCompleted }, "nothing to carry on"},
	}
	refused := func(t *testing.T, x orchestrator.RunExport, want string) {
		t.Helper()
		err := x.Check()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Check: %v, want an error with %q", err, want)
		}
		if strings.ContainsRune(err.Error(), 0x1b) {
			t.Errorf("the message holds a raw escape: %q", err)
		}
		// Import checks first: nothing is stored.
		dst := newHarness(t)
		if err := dst.eng.Import(x, "", "bob", "a"); err == nil {
			t.Error("Import accepted the tampered export")
		}
		if _, err := dst.db.LatestRun(); !errors.Is(err, orchestrator.ErrNoActiveRun) {
			t.Errorf("a refused import was stored: %v", err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := clone(good)
			tt.tamper(&x)
			if tt.name == "as exported" {
				if err := x.Check(); err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if strings.HasPrefix(tt.name, "format") || strings.HasSuffix(tt.name, "format") {
				refused(t, x, tt.want) // the format is read before the seal
				return
			}
			refused(t, x, "seal does not match")
			x = x.Sealed()
			if tt.want == "" {
				// Within what the exporting server may change: the
				// seal is all that stands against this edit.
				if err := x.Check(); err != nil {
					t.Fatalf("Check of the resealed file: %v", err)
				}
				return
			}
			refused(t, x, tt.want)
		})
	}
	// A one-server run carries no progress to another server.
	one := newHarness(t)
	one.create(t, newPlan(step("backup"), step("confirm", gate), step("upgrade", irreversible)))
	if out := one.exec(t, orchestrator.ExecOptions{Actor: "tester"}); out.State != orchestrator.StateWaitingOperator {
		t.Fatalf("one-server run: %+v, want waiting at the gate", out)
	}
	x, err := one.eng.Export(runID)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, x, "backup is done in the file, but it runs on the server the run was planned on")
	if err := good.Check(); err != nil {
		t.Errorf("the cases changed the original export: %v", err)
	}
}

// bootSteps is fakeSteps with reboot steps that behave like the real one:
// Apply saves the boot id and asks for a reboot; Probe says the step is
// done once the host runs with another boot id.
type bootSteps struct {
	*fakeSteps
	mu      sync.Mutex
	boot    string // the host's current boot id
	applies int
	probed  []map[string]string // Saved as each Probe saw it
	// onSave, if set, runs in Apply right after Save returned.
	onSave func()
}

func (b *bootSteps) Build(spec orchestrator.StepSpec) (orchestrator.Step, error) {
	if spec.Kind == orchestrator.KindReboot {
		return &bootStep{b: b}, nil
	}
	return b.fakeSteps.Build(spec)
}

func (b *bootSteps) setBoot(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.boot = id
}

type bootStep struct{ b *bootSteps }

func (s *bootStep) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	s.b.record("probe", sc.Spec.ID, sc)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.probed = append(s.b.probed, maps.Clone(sc.Saved))
	before := sc.Saved["boot_id"]
	return before != "" && before != s.b.boot, nil
}

func (s *bootStep) Apply(_ context.Context, sc orchestrator.StepContext) error {
	s.b.record("apply", sc.Spec.ID, sc)
	s.b.mu.Lock()
	s.b.applies++
	boot := s.b.boot
	s.b.mu.Unlock()
	if err := sc.Save(map[string]string{"boot_id": boot}); err != nil {
		return err
	}
	if s.b.onSave != nil {
		s.b.onSave()
	}
	return orchestrator.ErrRebootRequested
}

func (s *bootStep) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	s.b.record("verify", sc.Spec.ID, sc)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if sc.Saved["boot_id"] == s.b.boot {
		return orchestrator.Outputs{}, errors.New("the host has not rebooted")
	}
	return orchestrator.Outputs{Values: map[string]string{"boot_id": s.b.boot}}, nil
}

func reboot(s *orchestrator.StepSpec) { s.Kind, s.Action = orchestrator.KindReboot, "reboot" }

// rebootHarness is a harness whose reboot steps are bootSteps, on a host
// that booted as "A".
func rebootHarness(t *testing.T) (*harness, *bootSteps) {
	h := newHarness(t)
	bs := &bootSteps{fakeSteps: h.steps, boot: "A"}
	h.eng.Steps = bs
	return h, bs
}

// newBoot is what a reboot looks like to upgrader: a new process, on a
// host with a new boot id (or the same one, if the reboot did not happen).
func newBoot(t *testing.T, h *harness, bs *bootSteps, id string) {
	t.Helper()
	h.restart(t)
	h.eng.Steps = bs
	bs.setBoot(id)
}

func TestEngineRebootStep(t *testing.T) {
	h, bs := rebootHarness(t)
	h.create(t, newPlan(step("install"), step("restart", reboot), step("after")))

	out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"})
	if out.State != orchestrator.StateRebooting || out.Step != "restart" {
		t.Fatalf("outcome %+v, want rebooting at restart", out)
	}
	// The same call does not go on: the host is about to go down.
	if got := h.steps.callsFor("after"); len(got) != 0 {
		t.Fatalf("after ran before the reboot: %v", got)
	}
	check := func(t *testing.T) {
		t.Helper()
		run, _ := h.load(t)
		r := h.rec(t, "restart")
		if run.State != orchestrator.StateRebooting || r.Status != orchestrator.StepStarted || r.Attempts != 1 ||
			!maps.Equal(r.Saved, map[string]string{"boot_id": "A", "reboots_requested": "1"}) {
			t.Fatalf("stored %s, restart %+v; want rebooting, restart started once with boot_id A saved and one reboot asked for", run.State, r)
		}
	}
	check(t)
	if len(bs.probed) != 1 || len(bs.probed[0]) != 0 {
		t.Errorf("probes saw %v, want one with nothing saved yet", bs.probed)
	}
	bs.probed = nil

	newBoot(t, h, bs, "B")
	check(t) // durable across the restart
	out = h.exec(t, orchestrator.ExecOptions{Actor: "tester"})
	if out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome after the reboot %+v, want completed", out)
	}
	if len(bs.probed) != 1 || bs.probed[0]["boot_id"] != "A" {
		t.Errorf("Probe saw Saved %v, want boot_id A", bs.probed)
	}
	if bs.applies != 1 {
		t.Errorf("Apply ran %d times, want once: Probe said the reboot happened", bs.applies)
	}
	if got := h.steps.callsFor("restart"); !slices.Equal(got, []string{"probe", "apply", "probe", "verify"}) {
		t.Errorf("calls to restart %v", got)
	}
	if got := h.steps.callsFor("after"); !slices.Equal(got, []string{"probe", "apply", "verify"}) {
		t.Errorf("calls to after %v, want it run once after the reboot", got)
	}
	r := h.rec(t, "restart")
	if r.Status != orchestrator.StepDone || !r.AlreadyInPlace || r.Attempts != 2 || r.Outputs.Values["boot_id"] != "B" {
		t.Errorf("restart record %+v, want done on attempt 2, found in place, boot B", r)
	}
	want := []string{"run.created ", "consent.given ", "run.preflight ", "run.pass ", "step.start install", "step.done install",
		"step.start restart", "step.saved restart", "run.reboot ", "run.rebooted ", "step.resume restart", "step.done restart",
		"step.start after", "step.done after", "run.complete "}
	if got := h.events(t); !slices.Equal(got, want) {
		t.Errorf("journal\n got %v\nwant %v", got, want)
	}
	for _, j := range h.journal(t) {
		if j.Event == "step.saved" && j.Fields["boot_id"] != "A" {
			t.Errorf("step.saved fields %v, want boot_id A", j.Fields)
		}
	}
}

func TestEngineRebootDidNotHappen(t *testing.T) {
	h, bs := rebootHarness(t)
	h.create(t, newPlan(step("restart", reboot), step("after")))
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateRebooting {
		t.Fatalf("outcome %+v, want rebooting", out)
	}
	bs.probed = nil
	// upgrader starts again, but the host kept its boot id: Probe says
	// not done, and the step asks for the reboot again.
	newBoot(t, h, bs, "A")
	out := h.exec(t, orchestrator.ExecOptions{})
	if out.State != orchestrator.StateRebooting || out.Step != "restart" {
		t.Fatalf("outcome %+v, want rebooting again", out)
	}
	if bs.applies != 2 || len(bs.probed) != 1 || bs.probed[0]["boot_id"] != "A" {
		t.Errorf("applies %d, probes saw %v; want Apply again after a probe with boot_id A", bs.applies, bs.probed)
	}
	if r := h.rec(t, "restart"); r.Status != orchestrator.StepStarted || r.Attempts != 2 || r.Saved["boot_id"] != "A" {
		t.Errorf("restart record %+v, want started, attempt 2", r)
	}
	if got := h.steps.callsFor("after"); len(got) != 0 {
		t.Errorf("after ran: %v", got)
	}

	newBoot(t, h, bs, "C")
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v, want completed", out)
	}
	if bs.applies != 2 {
		t.Errorf("Apply ran %d times, want 2", bs.applies)
	}
	if r := h.rec(t, "restart"); r.Attempts != 3 || r.Outputs.Values["boot_id"] != "C" {
		t.Errorf("restart record %+v", r)
	}
}

func TestEngineSaveIsDurable(t *testing.T) {
	// Save returns only once the value is on disk: a crash right after it
	// (kill -9, power loss) keeps it for the next process.
	h, bs := rebootHarness(t)
	h.create(t, newPlan(step("restart", reboot)))
	crashed := false
	bs.onSave = func() {
		if !crashed {
			crashed = true
			panic(crash{at: "after-save restart"})
		}
	}
	h.execCrash(t)
	newBoot(t, h, bs, "A") // the process died; the host did not reboot
	run, _ := h.load(t)
	r := h.rec(t, "restart")
	if run.State != orchestrator.StateRunning || r.Status != orchestrator.StepStarted || !maps.Equal(r.Saved, map[string]string{"boot_id": "A"}) {
		t.Fatalf("after the crash: state %s, record %+v; want running and restart started with boot_id A saved", run.State, r)
	}
	if j := h.journal(t); j[len(j)-1].Event != "step.saved" {
		t.Errorf("last journal entry %+v, want step.saved", j[len(j)-1])
	}
	// The next process probes the step with what was saved.
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateRebooting {
		t.Fatalf("outcome %+v, want rebooting", out)
	}
	if len(bs.probed) != 2 || bs.probed[1]["boot_id"] != "A" {
		t.Errorf("probes saw %v, want the saved boot_id A on the resume", bs.probed)
	}
}

func TestEngineSaveMerges(t *testing.T) {
	// Save adds to what was saved before; the step sees it on the next attempt.
	h := newHarness(t)
	h.create(t, newPlan(step("a")))
	calls := 0
	h.steps.apply["a"] = func(context.Context) error {
		calls++
		sc := h.steps.seen["a"]
		if err := sc.Save(map[string]string{"k" + string(rune('0'+calls)): "v"}); err != nil {
			return err
		}
		if calls == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}
	if out := h.exec(t, orchestrator.ExecOptions{}); out.State != orchestrator.StateFailed {
		t.Fatalf("outcome %+v, want failed", out)
	}
	h.restart(t)
	if out := h.exec(t, orchestrator.ExecOptions{Retry: true}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v, want completed", out)
	}
	if got := h.steps.seen["a"].Saved; !maps.Equal(got, map[string]string{"k1": "v"}) {
		t.Errorf("second attempt saw Saved %v, want k1 from the first", got)
	}
	if r := h.rec(t, "a"); !maps.Equal(r.Saved, map[string]string{"k1": "v", "k2": "v"}) {
		t.Errorf("record Saved %v, want k1 and k2", r.Saved)
	}
}

func TestEngineOverridesJournaledAtCreate(t *testing.T) {
	h := newHarness(t)
	p := newPlan(step("a"))
	p.Inputs.Overrides = map[string]string{
		"migrate-source-model": "disks moved to a new chassis",
		"media-name":           "site renames ISOs",
	}
	p.Fingerprint = orchestrator.Fingerprint(p)
	h.create(t, p)
	var got [][3]string
	for _, j := range h.journal(t) {
		if j.Event == "finding.overridden" {
			got = append(got, [3]string{j.Fields["finding"], j.Fields["reason"], j.Actor})
			if !strings.Contains(j.Text, j.Fields["finding"]) || !strings.Contains(j.Text, j.Fields["reason"]) {
				t.Errorf("entry text %q does not name the finding and the reason", j.Text)
			}
		}
	}
	want := [][3]string{
		{"media-name", "site renames ISOs", "tester"},
		{"migrate-source-model", "disks moved to a new chassis", "tester"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("finding.overridden entries %v, want %v", got, want)
	}
	if ev := h.events(t); len(ev) != 4 || ev[0] != "run.created " || ev[1] != "consent.given " {
		t.Errorf("journal %v, want run.created, consent.given, then one entry per override", ev)
	}

	// A real plan with an override journals it the same way.
	h2 := newHarness(t)
	plan := buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactHostModel, "System x3650 M2"),
		orchestrator.Options{Overrides: map[string]string{"migrate-source-model": "source disk moved"}})
	h2.create(t, plan)
	j := h2.journal(t)
	if len(j) != 3 || j[2].Event != "finding.overridden" || j[2].Fields["reason"] != "source disk moved" {
		t.Errorf("journal %+v, want run.created, consent.given and finding.overridden", j)
	}
	// Without overrides there is no such entry.
	h3 := newHarness(t)
	h3.create(t, newPlan(step("a")))
	if ev := h3.events(t); !slices.Equal(ev, []string{"run.created ", "consent.given "}) {
		t.Errorf("journal %v, want run.created and the consent only", ev)
	}
}
