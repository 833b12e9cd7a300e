package steps

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/testdata/simhost"
)

// testRunID is the run id the step contexts of these tests carry.
const testRunID = "run-test-1"

// simEnv is a simulated POM 3.1.1 host set up for one test.
type simEnv struct {
	sim  simhost.Sim
	host *Host
}

// newSim copies the simulated host into a temporary directory, makes its
// fake tools fast and returns a Host that drives it with run.
func newSim(tb testing.TB, run Runner) simEnv {
	tb.Helper()
	sim, err := simhost.Setup(tb.TempDir())
	if err != nil {
		tb.Fatalf("simhost.Setup: %v", err)
	}
	data, err := os.ReadFile(sim.Profile)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := profile.Decode(data, sim.Dir)
	if err != nil {
		tb.Fatalf("profile.Decode: %v", err)
	}
	if p.Root != sim.Root {
		tb.Fatalf("profile root %s, want the sim root %s", p.Root, sim.Root)
	}
	if run == nil {
		run = ExecRunner{}
	}
	env := simEnv{sim: sim, host: &Host{Profile: p, Run: run, Jobs: jobsDir(tb)}}
	env.control(tb, "delay", "0.01")
	return env
}

// path maps a host path onto the simulated root.
func (e simEnv) path(p string) string { return filepath.Join(e.sim.Root, p) }

// control writes a control file of the fake tools (see simlib.sh).
func (e simEnv) control(tb testing.TB, name, value string) {
	tb.Helper()
	dir := e.path("sim/control")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// ledger returns the lines of the fake tools' ledger of completed effects.
func (e simEnv) ledger(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(e.path("var/log/sim-ledger.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// started returns every simulated tool started on the host, as the tool
// itself recorded its argv and environment (simlib.sh's exec log).
func (e simEnv) started(tb testing.TB) []recordedCall {
	tb.Helper()
	b, err := os.ReadFile(e.path("sim/control/exec.log"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []recordedCall
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "argv:"):
			out = append(out, recordedCall{argv: strings.Fields(strings.TrimPrefix(l, "argv:"))})
		case strings.HasPrefix(l, "env: ") && len(out) > 0:
			out[len(out)-1].env = append(out[len(out)-1].env, strings.TrimPrefix(l, "env: "))
		}
	}
	return out
}

// countLines counts the lines equal to line.
func countLines(lines []string, line string) int {
	n := 0
	for _, l := range lines {
		if l == line {
			n++
		}
	}
	return n
}

// build returns the step implementation of spec on e's host.
func (e simEnv) build(tb testing.TB, spec orchestrator.StepSpec) orchestrator.Step {
	tb.Helper()
	st, err := e.host.Build(spec)
	if err != nil {
		tb.Fatalf("Build(%s): %v", spec.Action, err)
	}
	return st
}

// progressCall is one call of a Progress callback.
type progressCall struct {
	label       string
	done, total int64
}

// progressRecorder records Progress calls.
type progressRecorder struct {
	mu    sync.Mutex
	calls []progressCall
}

func (p *progressRecorder) progress(label string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, progressCall{label, done, total})
}

// all returns the calls that measure progress; output lines streamed to
// the terminal (total 0) are left out, see lines.
func (p *progressRecorder) all() []progressCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []progressCall
	for _, c := range p.calls {
		if c.total > 0 {
			out = append(out, c)
		}
	}
	return out
}

// lines returns the output lines a step streamed for the terminal.
func (p *progressRecorder) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		if c.total == 0 {
			out = append(out, c.label)
		}
	}
	return out
}

// stepContext returns a StepContext for spec that records progress.
// What a step saves goes into its Saved map at once, as the engine's
// next attempt would see it.
func stepContext(spec orchestrator.StepSpec, pr *progressRecorder) orchestrator.StepContext {
	if pr == nil {
		pr = &progressRecorder{}
	}
	saved := map[string]string{}
	return orchestrator.StepContext{RunID: testRunID, Spec: spec, Artifacts: map[string]orchestrator.Artifact{},
		Progress: pr.progress, Log: zerolog.Nop(), Saved: saved,
		Save: func(v map[string]string) error { maps.Copy(saved, v); return nil }}
}

// jobsDir is a private directory for the supervised jobs of one test.
func jobsDir(tb testing.TB) string { return filepath.Join(tb.TempDir(), "jobs") }

// recordedCall is one command a recordingRunner ran.
type recordedCall struct {
	argv, env []string
}

// recordingRunner records every command before running it with inner.
type recordingRunner struct {
	inner Runner
	mu    sync.Mutex
	calls []recordedCall
}

var _ Runner = (*recordingRunner)(nil)

func (r *recordingRunner) Run(ctx context.Context, argv, env []string, line func(string)) error {
	r.mu.Lock()
	r.calls = append(r.calls, recordedCall{append([]string(nil), argv...), append([]string(nil), env...)})
	r.mu.Unlock()
	return r.inner.Run(ctx, argv, env, line)
}

func (r *recordingRunner) RunInput(ctx context.Context, argv, env []string, in io.Reader, line func(string)) error {
	r.mu.Lock()
	r.calls = append(r.calls, recordedCall{append([]string(nil), argv...), append([]string(nil), env...)})
	r.mu.Unlock()
	return r.inner.(InputRunner).RunInput(ctx, argv, env, in, line)
}

func (r *recordingRunner) recorded() []recordedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedCall(nil), r.calls...)
}
