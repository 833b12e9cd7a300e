package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
	"upgrader/steps/job"
	"upgrader/testdata/simhost"
)

func TestMain(m *testing.M) {
	// The supervised jobs the steps start run this binary again.
	if len(os.Args) > 1 && os.Args[1] == job.Arg {
		os.Exit(job.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// host sets up a simulated host and opens a service on it.
func host(t *testing.T, name string) (*Service, simhost.Sim) {
	t.Helper()
	sim, err := simhost.SetupHost(name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sim.Root, "sim/control/delay"), []byte("0.01"), 0o644)
	svc, err := Open(Config{StateDir: filepath.Join(sim.Dir, "state"), Profile: sim.Profile, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc, sim
}

var ctx = orchestrator.WithActor(context.Background(), "uid=0(tester)")

// wait follows the run until nothing executes it, and returns its status.
func wait(t *testing.T, svc *Service, st orchestrator.Status) orchestrator.Status {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ch, err := svc.Watch(wctx, st.NoticeSeq)
	if err != nil {
		t.Fatal(err)
	}
	for n := range ch {
		if n.Kind == "stopped" {
			break
		}
	}
	st, err = svc.Status(ctx, st.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The planner needs no state: a plan is made while another upgrader holds
// it; a profile that is not a regular file, or names no procedure, is an
// invalid request.
func TestPlannerNeedsNoState(t *testing.T) {
	_, sim := host(t, "pom") // the open service holds the state
	pl := Config{StateDir: filepath.Join(sim.Dir, "state"), Profile: sim.Profile}.Planner()
	plan, path, err := pl.Plan(ctx, orchestrator.PlanRequest{})
	if err != nil || plan.Procedure != "pom-3.1.1-sp1-upgrade" || path != sim.Profile {
		t.Fatalf("plan beside the service: %s %s %v", plan.Procedure, path, err)
	}
	for _, bad := range []orchestrator.PlanRequest{{Profile: "/dev/zero"}, {Procedure: "pom-9"}, {Assume: []string{"nonsense"}}} {
		if _, _, err := pl.Plan(ctx, bad); !errors.Is(err, orchestrator.ErrInvalidRequest) {
			t.Errorf("%+v: %v, want an invalid request", bad, err)
		}
	}
}

// Start needs consent, plans with the request's options, checks the
// fingerprint the operator reviewed, and makes no run of a blocked plan.
func TestStartRules(t *testing.T) {
	svc, sim := host(t, "pc41")
	if _, err := svc.Start(ctx, orchestrator.StartRequest{}); !errors.Is(err, orchestrator.ErrNoConsent) {
		t.Fatalf("start without consent: %v", err)
	}
	yes := orchestrator.Consent{Via: orchestrator.ConsentYes}
	if _, err := svc.Start(ctx, orchestrator.StartRequest{Consent: yes, ExpectFingerprint: "0000"}); !errors.Is(err, orchestrator.ErrFingerprintMismatch) {
		t.Fatalf("start of another plan than the one reviewed: %v", err)
	}
	blocked := orchestrator.PlanRequest{Assume: []string{"pc.version=4.0"}}
	if _, err := svc.Start(ctx, orchestrator.StartRequest{Plan: blocked, Consent: yes}); !errors.Is(err, orchestrator.ErrBlockedPlan) {
		t.Fatalf("start of a blocked plan: %v", err)
	}
	if _, err := svc.Status(ctx, ""); !errors.Is(err, orchestrator.ErrNoActiveRun) {
		t.Fatalf("a refused start made a run: %v", err)
	}
	// The options travel with the request: --with supervisor is planned.
	req := orchestrator.PlanRequest{With: []string{"supervisor"}}
	plan, err := svc.Plan(ctx, req)
	if err != nil || plan.StepIndex("supervisor") < 0 {
		t.Fatalf("plan --with supervisor: %v %v", plan.Steps, err)
	}
	st, err := svc.Start(ctx, orchestrator.StartRequest{Plan: req, Consent: yes, ExpectFingerprint: plan.Fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if st.Run.Plan.Fingerprint != plan.Fingerprint || st.Run.Consent == nil || st.Run.Consent.Actor != "uid=0(tester)" || !st.Run.Consent.PointOfNoReturn {
		t.Fatalf("started run: fingerprint %s consent %+v", st.Run.Plan.Fingerprint, st.Run.Consent)
	}
	st = wait(t, svc, st)
	if st.Outcome.Class != orchestrator.OutcomeDone || st.Run.Plan.StepIndex("supervisor") < 0 {
		t.Fatalf("outcome %+v", st.Outcome)
	}
	if _, err := os.Stat(filepath.Join(sim.Root, "opt/avaya/pds/etc/supervisor.version")); err != nil {
		t.Fatalf("supervisor not installed: %v", err)
	}
}

// A typed yes on a terminal does not cover the point of no return: the
// run waits there, and the outcome says so.
func TestStartOnTerminalAsksAgainAtThePointOfNoReturn(t *testing.T) {
	svc, _ := host(t, "pc41")
	st, err := svc.Start(ctx, orchestrator.StartRequest{Consent: orchestrator.Consent{Via: orchestrator.ConsentTerminal}})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, svc, st)
	if st.Outcome.Class != orchestrator.OutcomeGate || !st.Outcome.PointOfNoReturn || st.Outcome.Step != "dialer-4.1.2" {
		t.Fatalf("outcome %+v, want waiting for consent at dialer-4.1.2", st.Outcome)
	}
	if !strings.Contains(st.Outcome.Next.Command, "upgrader confirm dialer-4.1.2") {
		t.Errorf("next: %q", st.Outcome.Next.Command)
	}
	st, err = svc.Confirm(ctx, orchestrator.ConfirmRequest{Step: "dialer-4.1.2"})
	if err != nil {
		t.Fatal(err)
	}
	if st = wait(t, svc, st); st.Outcome.Class != orchestrator.OutcomeDone {
		t.Fatalf("after the consent: %+v", st.Outcome)
	}
}

// Resume re-checks the plan against today's profile: a change is refused
// with the difference until the operator accepts it.
func TestResumeRechecksThePlan(t *testing.T) {
	svc, sim := host(t, "pom")
	st, err := svc.Start(ctx, orchestrator.StartRequest{Consent: orchestrator.Consent{Via: orchestrator.ConsentTerminal}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, svc, st) // at the point of no return
	b, _ := os.ReadFile(sim.Profile)
	os.WriteFile(sim.Profile, []byte(strings.Replace(string(b), "site: sim-pom-01", "site: sim-pom-02", 1)), 0o644)
	_, err = svc.Resume(ctx, orchestrator.ResumeRequest{})
	if !errors.Is(err, orchestrator.ErrFingerprintMismatch) || !strings.Contains(err.Error(), "--replan") {
		t.Fatalf("resume over a changed profile: %v", err)
	}
	st, err = svc.Resume(ctx, orchestrator.ResumeRequest{Replan: true, Yes: true})
	if err != nil {
		t.Fatal(err)
	}
	if st = wait(t, svc, st); st.Outcome.Class != orchestrator.OutcomeDone {
		t.Fatalf("after the replan: %+v", st.Outcome)
	}
}

// Import takes a migration's run on the server its next step is for, and
// refuses another model unless overridden; the export goes through the
// same rules whatever the transport.
func TestImportTargetRule(t *testing.T) {
	src, srcSim := host(t, "dl385")
	st, err := src.Start(ctx, orchestrator.StartRequest{Consent: orchestrator.Consent{Via: orchestrator.ConsentYes}})
	if err != nil {
		t.Fatal(err)
	}
	st = wait(t, src, st)
	if st.Outcome.Class != orchestrator.OutcomeHandOver || st.Outcome.HandOverTo != orchestrator.RoleTarget ||
		!strings.Contains(st.Outcome.Next.Command, "upgrader export --out") {
		t.Fatalf("source outcome %+v", st.Outcome)
	}
	x, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.MarkExported(ctx, orchestrator.MarkExportedRequest{Run: x.Run.ID, Where: "/tmp/run.json"}); err != nil {
		t.Fatal(err)
	}
	// Another server model (the POM host is a DL380) is refused;
	// overridden, accepted.
	other, _ := host(t, "pom")
	if _, err := other.Import(ctx, orchestrator.ImportRequest{Export: x, From: "run.json"}); !errors.Is(err, orchestrator.ErrTransition) ||
		!strings.Contains(err.Error(), "migrate-target-model") {
		t.Fatalf("import on another model: %v", err)
	}
	st, err = other.Import(ctx, orchestrator.ImportRequest{Export: x, From: "run.json", Overrides: map[string]string{"migrate-target-model": "lab box"}})
	if err != nil {
		t.Fatalf("overridden import: %v", err)
	}
	// The old server's --yes answered its gates, not the new server's.
	if c := st.Run.Consent; c == nil || c.Yes || !c.PointOfNoReturn {
		t.Errorf("consent after the import: %+v, want the plan's consent without the old server's --yes", c)
	}
	j, _ := other.Journal(ctx, st.Run.ID, 0)
	if last := j[len(j)-1]; last.Event != "run.imported" || !strings.Contains(last.Text, "lab box") {
		t.Errorf("import journal: %+v", last)
	}
	_ = srcSim
}

// Resume is what the operator types after any interruption, and the run
// may have gone on without them: a run being carried out is reported as
// it stands (not "busy"), a completed run is reported, and a run that
// cannot go on (aborted) is an error naming it.
func TestResumeOfARunThatWentOnWithoutTheOperator(t *testing.T) {
	svc, sim := host(t, "pom")
	control := filepath.Join(sim.Root, "sim/control")
	os.WriteFile(filepath.Join(control, "hold-at"), []byte("installer:2"), 0o644)
	st, err := svc.Start(ctx, orchestrator.StartRequest{Consent: orchestrator.Consent{Via: orchestrator.ConsentYes}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, err := os.Stat(filepath.Join(control, "held")); err != nil; _, err = os.Stat(filepath.Join(control, "held")) {
		if time.Now().After(deadline) {
			t.Fatal("the installer never reached its hold")
		}
		time.Sleep(5 * time.Millisecond)
	}
	busy, err := svc.Resume(ctx, orchestrator.ResumeRequest{})
	os.WriteFile(filepath.Join(control, "release"), nil, 0o644)
	if err != nil || !busy.Busy || busy.Run.ID != st.Run.ID || busy.Outcome.Step != "upgrade-pom" {
		t.Fatalf("resume while the run is carried out: %v, busy %v at %q", err, busy.Busy, busy.Outcome.Step)
	}
	if st = wait(t, svc, busy); st.Outcome.Class != orchestrator.OutcomeDone {
		t.Fatalf("outcome %+v", st.Outcome)
	}
	done, err := svc.Resume(ctx, orchestrator.ResumeRequest{})
	if err != nil || done.Run.ID != st.Run.ID || done.Outcome.Class != orchestrator.OutcomeDone {
		t.Fatalf("resume of the completed run: %v, %+v", err, done.Outcome)
	}

	other, _ := host(t, "pc41")
	st, err = other.Start(ctx, orchestrator.StartRequest{Consent: orchestrator.Consent{Via: orchestrator.ConsentTerminal}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, other, st) // at the point of no return
	if _, err := other.Abort(ctx, orchestrator.AbortRequest{Reason: "window closed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Resume(ctx, orchestrator.ResumeRequest{}); !errors.Is(err, orchestrator.ErrNoActiveRun) || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("resume of an aborted run: %v", err)
	}
}
