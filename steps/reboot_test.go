package steps

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

func rebootSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "linux-es-reboot", Kind: orchestrator.KindReboot, Action: "reboot", Skip: orchestrator.SkipNever}
}

// saveRecorder stands in for the engine's durable Save.
type saveRecorder struct {
	saved map[string]string
	calls int
	err   error // returned by every Save when set
}

func (r *saveRecorder) save(values map[string]string) error {
	r.calls++
	if r.err != nil {
		return r.err
	}
	if r.saved == nil {
		r.saved = map[string]string{}
	}
	maps.Copy(r.saved, values)
	return nil
}

// rebootSim returns a pc41 copy, the reboot step and the boot id it
// starts with.
func rebootSim(t *testing.T) (simEnv, orchestrator.Step, string) {
	t.Helper()
	e := newHostSim(t, "pc41")
	if got, want := e.host.Profile.BootIDFile(), e.path("proc/sys/kernel/random/boot_id"); got != want {
		t.Fatalf("BootIDFile = %s, want %s", got, want)
	}
	if got := e.host.Profile.RebootCommand(); len(got) != 1 || got[0] != e.path("sim/bin/reboot") {
		t.Fatalf("RebootCommand = %q, want the sim's reboot tool", got)
	}
	return e, e.build(t, rebootSpec()), e.bootID(t)
}

func (e simEnv) bootID(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(e.host.Profile.BootIDFile())
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestReboot(t *testing.T) {
	ctx := context.Background()
	e, st, old := rebootSim(t)
	if old == "" {
		t.Fatal("the sim has no boot id")
	}
	rec := &saveRecorder{}
	sc := stepContext(rebootSpec(), nil)
	sc.Save = rec.save

	mustProbe(t, st, sc, false)
	if _, err := st.Verify(ctx, sc); err == nil || !strings.Contains(err.Error(), "has not rebooted") {
		t.Errorf("Verify before Apply = %v, want \"has not rebooted\"", err)
	}

	err := st.Apply(ctx, sc)
	if !errors.Is(err, orchestrator.ErrRebootRequested) {
		t.Fatalf("Apply = %v, want ErrRebootRequested", err)
	}
	if rec.calls != 1 || rec.saved["boot_id"] != old {
		t.Errorf("Save got %v in %d calls, want boot_id %s once", rec.saved, rec.calls, old)
	}
	now := e.bootID(t)
	if now == old || now == "" {
		t.Fatalf("boot id after the reboot = %q, want a new one (was %s)", now, old)
	}
	if n := countLines(e.ledger(t), "reboot"); n != 1 {
		t.Errorf("ledger = %q, want one reboot", e.ledger(t))
	}

	// The engine resumes with what was saved.
	sc.Saved = rec.saved
	mustProbe(t, st, sc, true)
	out := mustVerify(t, st, sc)
	if out.Values["boot_id_before"] != old || out.Values["boot_id_after"] != now {
		t.Errorf("Verify values = %v, want boot_id_before %s, boot_id_after %s", out.Values, old, now)
	}
	// A Probe without the saved id cannot tell, and says not done.
	sc.Saved = nil
	mustProbe(t, st, sc, false)
}

func TestRebootCommandFails(t *testing.T) {
	ctx := context.Background()
	e, st, old := rebootSim(t)
	e.control(t, "fail-at", "reboot:1")
	rec := &saveRecorder{}
	sc := stepContext(rebootSpec(), nil)
	sc.Save = rec.save

	err := st.Apply(ctx, sc)
	if err == nil || errors.Is(err, orchestrator.ErrRebootRequested) {
		t.Fatalf("Apply with a failing reboot command = %v, want its error", err)
	}
	if !strings.Contains(err.Error(), "simulated failure at reboot:1") {
		t.Errorf("error %q does not carry the command's output", err)
	}
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Errorf("error %v is not a *CommandError", err)
	}
	if got := e.bootID(t); got != old {
		t.Errorf("boot id = %s after a failed reboot, want %s", got, old)
	}
	if rec.saved["boot_id"] != old {
		t.Errorf("saved = %v, want boot_id %s (saved before the command)", rec.saved, old)
	}

	sc.Saved = rec.saved
	mustProbe(t, st, sc, false)
	if _, err := st.Verify(ctx, sc); err == nil || !strings.Contains(err.Error(), "has not rebooted") {
		t.Errorf("Verify with the same boot id = %v, want \"has not rebooted\"", err)
	}

	// The retry reboots without saving again: the saved id is the one
	// from before the first attempt.
	if err := st.Apply(ctx, sc); !errors.Is(err, orchestrator.ErrRebootRequested) {
		t.Fatalf("Apply on retry = %v, want ErrRebootRequested", err)
	}
	if rec.calls != 1 {
		t.Errorf("Save called %d times, want once", rec.calls)
	}
	mustProbe(t, st, sc, true)
	if out := mustVerify(t, st, sc); out.Values["boot_id_before"] != old {
		t.Errorf("boot_id_before = %q, want %s", out.Values["boot_id_before"], old)
	}
	if n := countLines(e.ledger(t), "reboot"); n != 1 {
		t.Errorf("ledger = %q, want one reboot", e.ledger(t))
	}
}

func TestRebootSaveFails(t *testing.T) {
	e, st, old := rebootSim(t)
	saveErr := errors.New("state disk full")
	rec := &saveRecorder{err: saveErr}
	sc := stepContext(rebootSpec(), nil)
	sc.Save = rec.save

	err := st.Apply(context.Background(), sc)
	if !errors.Is(err, saveErr) {
		t.Fatalf("Apply with a failing Save = %v, want the Save error", err)
	}
	if errors.Is(err, orchestrator.ErrRebootRequested) {
		t.Error("Apply asked for a reboot although the boot id was not saved")
	}
	if n := countLines(e.ledger(t), "reboot"); n != 0 {
		t.Errorf("ledger = %q: the reboot command ran without a saved boot id", e.ledger(t))
	}
	if got := e.bootID(t); got != old {
		t.Errorf("boot id = %s, want unchanged %s", got, old)
	}
}

func TestRebootNoBootIDFile(t *testing.T) {
	e, st, old := rebootSim(t)
	removeFile(t, e.host.Profile.BootIDFile())
	rec := &saveRecorder{}
	sc := stepContext(rebootSpec(), nil)
	sc.Save = rec.save
	if err := st.Apply(context.Background(), sc); err == nil || errors.Is(err, orchestrator.ErrRebootRequested) {
		t.Errorf("Apply without a boot id = %v, want an error", err)
	}
	if rec.calls != 0 || countLines(e.ledger(t), "reboot") != 0 {
		t.Errorf("Save calls %d, ledger %q: want nothing done", rec.calls, e.ledger(t))
	}
	sc.Saved = map[string]string{"boot_id": old}
	if _, err := st.Probe(context.Background(), sc); err == nil {
		t.Error("Probe with a saved id and no boot id file succeeded")
	}
}
