package steps

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/steps/job"
)

// detachAt starts the installer step and stops following it once the
// installer is held at point, as an upgrader that is asked to stop (or
// dies) would: the installer goes on.
func detachAt(t *testing.T, e simEnv, point string) (orchestrator.Step, orchestrator.StepContext) {
	t.Helper()
	stopVPMS(t, e)
	spec := installSpec()
	st := e.build(t, spec)
	return st, detachStep(t, e, st, stepContext(spec, nil), point)
}

// detachStep applies st and stops following its job once the job is held
// at point; it returns the context of the resumed step.
func detachStep(t *testing.T, e simEnv, st orchestrator.Step, sc orchestrator.StepContext, point string) orchestrator.StepContext {
	t.Helper()
	e.control(t, "hold-at", point)
	stop := make(chan struct{})
	sc.Stopped = stop
	go func() {
		for !fileExists(e.path("sim/control/held")) {
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
	}()
	if err := st.Apply(context.Background(), sc); !errors.Is(err, orchestrator.ErrDetached) {
		t.Fatalf("Apply after the stop: %v, want ErrDetached", err)
	}
	sc.Stopped, sc.Resumed = nil, true
	return sc
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// A resumed step follows the installer an earlier upgrader started: its
// Probe says "not yet" while it runs (the version may already be written),
// and Apply waits for its end instead of starting a second one.
func TestVendorInstallFollowsTheLiveInstaller(t *testing.T) {
	e := newSim(t, nil)
	st, sc := detachAt(t, e, "installer:4")
	mustProbe(t, st, sc, false)
	go func() {
		time.Sleep(200 * time.Millisecond)
		e.control(t, "release", "")
	}()
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	checkOnce(t, e, "installer")
}

// An installer that ended while no upgrader followed it: its recorded end
// is taken, it is not run again.
func TestVendorInstallTakesTheEndOfAnInstallerThatEndedUnseen(t *testing.T) {
	e := newSim(t, nil)
	st, sc := detachAt(t, e, "installer:2")
	e.control(t, "fail-at", "installer:3")
	e.control(t, "release", "")
	dir := job.Dir(e.host.Jobs)
	for info, _ := dir.Look(sc.Saved["job"]); info.State.Live(); info, _ = dir.Look(sc.Saved["job"]) {
		time.Sleep(10 * time.Millisecond)
	}
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "simulated failure at installer:3") || !strings.Contains(err.Error(), "exited with code 1") {
		t.Fatalf("Apply: %v, want the recorded failure with its output", err)
	}
	checkOnce(t, e, "installer")
	// The operator's retry (a new attempt, not a resume) runs it again.
	sc.Resumed = false
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
}

// An installer cut by a power loss (its supervisor and itself killed) is
// not started again without the operator: the failure names its log.
func TestVendorInstallInterruptedIsNotStartedAgain(t *testing.T) {
	e := newSim(t, nil)
	st, sc := detachAt(t, e, "installer:3")
	info, _ := job.Dir(e.host.Jobs).Look(sc.Saved["job"])
	powerLoss(t, info.Pid)
	mustProbe(t, st, sc, false)
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "interrupted before it finished") || !strings.Contains(err.Error(), info.Log) ||
		!strings.Contains(err.Error(), "does not start it again") {
		t.Fatalf("Apply: %v, want the interrupted installer named with its log", err)
	}
	if n := countLines(e.ledger(t), "installer begin"); n != 1 {
		t.Errorf("the installer began %d times", n)
	}
	if fileExists(e.path("var/lib/sim/CORRUPTED")) {
		t.Error("the host was damaged")
	}
}

// An interrupted pg_dump only read the database: it is simply run again.
func TestBackupDBInterruptedRunsAgain(t *testing.T) {
	e := newSim(t, nil)
	e.control(t, "hold-at", "pg_dump:2")
	spec := backupSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	stop := make(chan struct{})
	sc.Stopped = stop
	go func() {
		for !fileExists(e.path("sim/control/held")) {
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
	}()
	if err := st.Apply(context.Background(), sc); !errors.Is(err, orchestrator.ErrDetached) {
		t.Fatalf("Apply: %v", err)
	}
	info, _ := job.Dir(e.host.Jobs).Look(sc.Saved["job"])
	powerLoss(t, info.Pid)
	sc.Stopped, sc.Resumed = nil, true
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	if n := countLines(e.ledger(t), "pg_dump done pom"); n != 1 {
		t.Errorf("pg_dump done %d times", n)
	}
}

// checkOnce proves a tool began once and left nothing half-done.
func checkOnce(t *testing.T, e simEnv, tool string) {
	t.Helper()
	if n := countLines(e.ledger(t), tool+" begin"); n != 1 {
		t.Errorf("%s began %d times: %q", tool, n, e.ledger(t))
	}
	if b, err := os.ReadFile(e.path("var/lib/sim/CORRUPTED")); err == nil {
		t.Errorf("the host was damaged: %s", b)
	}
}

// powerLoss kills a job's command and its supervisor at once.
func powerLoss(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, _ := strconv.Atoi(f[3]) // the supervisor leads the job's session
	syscall.Kill(sid, syscall.SIGKILL)
	syscall.Kill(-pid, syscall.SIGKILL)
	waitGone(t, sid, "the supervisor")
	waitGone(t, pid, "the command")
}

// A power cut inside the installer can keep its version file and lose
// earlier work (the old library's removal): what the host shows of an
// installer whose end was never recorded proves nothing. Probe must not
// take the step as in place; Apply stops at the interrupted installer.
// (The power-cut sweep found a resumed pc-upgrade "completed" this way.)
func TestVendorInstallInterruptedIsNotTakenAsInPlace(t *testing.T) {
	e := newSim(t, nil)
	st, sc := detachAt(t, e, "installer:4")
	info, _ := job.Dir(e.host.Jobs).Look(sc.Saved["job"])
	powerLoss(t, info.Pid)
	// What survived the cut: the version file written, the rest not.
	if err := os.WriteFile(e.path("opt/Avaya/avpom/POManager/config/version.properties"),
		[]byte("POMVersion=POM.03.01.01.01.00.003\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustProbe(t, st, sc, false)
	if err := st.Apply(context.Background(), sc); err == nil || !strings.Contains(err.Error(), "interrupted before it finished") {
		t.Fatalf("Apply: %v, want the interrupted installer", err)
	}
	// The operator's retry (after reading the log, with the host made
	// right) probes the host again, as the failure says.
	sc.Resumed = false
	mustProbe(t, st, sc, true)
}
