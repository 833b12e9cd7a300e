package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/testdata/pgtest"
	"upgrader/testdata/simhost"
	"upgrader/testdata/sshd"
)

// binary is the upgrader built with failpoints for the tests that drive the
// real process; templates hold one set-up copy of each simulated host that
// every test copies, so that all runs share the same signed media (and host
// tree hashes compare).
var (
	binary    string
	templates = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "upgrader-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "upgrader")
	if other := os.Getenv("UPGRADER_TEST_BINARY"); other != "" {
		// Another build (an older upgrader) put through the same tests, to
		// show what they catch in it.
		binary = other
	} else {
		build := exec.Command("go", "build", "-tags", "failpoints", "-o", binary, ".")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build upgrader:", err)
			os.Exit(1)
		}
	}
	for _, name := range simhost.Hosts {
		sim, err := simhost.SetupHost(name, filepath.Join(dir, "template-"+name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "simulated host:", err)
			os.Exit(1)
		}
		templates[name] = sim.Dir
	}
	code := m.Run()
	if len(canary.places) > 0 {
		fmt.Println(canaryFigure())
	}
	sshd.StopShared()
	pgtest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sim is one copy of the simulated host with its own state directory.
type sim struct {
	t       testing.TB
	dir     string
	root    string
	profile string
	state   string
}

// newSim copies the simulated POM 3.1.1 host.
func newSim(t testing.TB) *sim { return newSimHost(t, "pom") }

// newSimHost copies the named simulated host (see simhost.Hosts).
func newSimHost(t testing.TB, name string) *sim {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(templates[name])); err != nil {
		t.Fatal(err)
	}
	// os.CopyFS drops modes other than the executable bits: restore the
	// pgpass file's 0600 the way an administrator would have it.
	if pgpass := filepath.Join(dir, "root/etc/upgrader/pgpass"); fileExists(pgpass) {
		if err := os.Chmod(pgpass, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &sim{t: t, dir: dir, root: filepath.Join(dir, "root"), profile: filepath.Join(dir, "profile.yaml"), state: filepath.Join(dir, "state")}
	s.control("delay", "0.01")
	return s
}

// control writes a control file of the simulated tools (see simlib.sh).
func (s *sim) control(name, value string) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.root, "sim/control", name), []byte(value), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// cmd prepares the real upgrader binary against this host.
func (s *sim) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--profile", s.profile, "--state-dir", s.state}, args...)
	c := exec.Command(binary, full...)
	c.Env = append(os.Environ(), "UPGRADER_PROFILE=", "UPGRADER_STATE_DIR=")
	return c
}

// run runs upgrader to completion with no standard input.
func (s *sim) run(args ...string) result {
	s.t.Helper()
	c := s.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func (s *sim) mustRun(want int, args ...string) result {
	s.t.Helper()
	r := s.run(args...)
	if r.code != want {
		s.t.Fatalf("upgrader %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// ledger returns the simulated host's record of non-idempotent effects.
func (s *sim) ledger() []string {
	b, err := os.ReadFile(filepath.Join(s.root, "var/log/sim-ledger.log"))
	if err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// effects is the ledger without the tools' "begin" lines: the effects
// completed, in order.
func (s *sim) effects() []string {
	var out []string
	for _, l := range s.ledger() {
		if !strings.Contains(l, "_begin") {
			out = append(out, l)
		}
	}
	return out
}

// finalState is what must be identical between an uninterrupted run and a
// run that was killed and resumed.
type finalState struct {
	Steps    []string // id status outputs, normalised
	Tree     string   // hash of the host tree
	Services []string // service on/off log
	Effects  []string // completed non-idempotent effects
}

func (s *sim) final(runID string) finalState {
	s.t.Helper()
	var st struct {
		Steps []orchestrator.StepRecord `json:"steps"`
	}
	r := s.mustRun(0, "status", "-o", "json", "--run", runID)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		s.t.Fatalf("status json: %v\n%s", err, r.stdout)
	}
	var f finalState
	for _, rec := range st.Steps {
		line := rec.StepID + " " + string(rec.Status)
		names := make([]string, 0, len(rec.Outputs.Artifacts))
		for n := range rec.Outputs.Artifacts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a := rec.Outputs.Artifacts[n]
			line += fmt.Sprintf(" %s=%s:%d", n, a.SHA256, a.Size)
		}
		keys := make([]string, 0, len(rec.Outputs.Values))
		for k := range rec.Outputs.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line += " " + k + "=" + strings.ReplaceAll(rec.Outputs.Values[k], s.dir, "SIM")
		}
		f.Steps = append(f.Steps, line)
	}
	f.Tree = s.treeHash(runID)
	for _, l := range s.ledger() {
		if strings.HasPrefix(l, "service_") {
			f.Services = append(f.Services, l)
		}
		if strings.HasSuffix(l, "done") || strings.Contains(l, "_done_") || strings.HasPrefix(l, "service_") {
			f.Effects = append(f.Effects, l)
		}
	}
	return f
}

// treeHash hashes every file of the host except the simulator's own
// control files and ledger; the run id in backup names is normalised.
func (s *sim) treeHash(runID string) string { return s.treeHashExcept(runID) }

// treeHashExcept is treeHash without the files skip names (relative to
// the host's root).
func (s *sim) treeHashExcept(runID string, skip ...string) string {
	s.t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, path)
		if rel == "sim/control" || rel == "var/log/sim-ledger.log" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || slices.Contains(skip, rel) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", strings.ReplaceAll(rel, runID, "RUN"), sum)
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// runID returns the id of the latest run in this host's state.
func (s *sim) runID() string {
	s.t.Helper()
	var st struct {
		Run string `json:"run"`
	}
	r := s.mustRun(0, "status", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		s.t.Fatal(err)
	}
	return st.Run
}

// waitFile waits for a marker file to appear.
func waitFile(t testing.TB, path string, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tool runs one of the simulator's tools (e.g. the operator's actions).
// It execs bash, which then reads the script: the tool may be on a lossy
// disk served by this very process (testdata/lossyfs), and Go starts a
// child with vfork, whose thread keeps its P until the exec is done — an
// exec that needs the FUSE server here to look the path up hangs for good
// as soon as the garbage collector stops the world meanwhile.
func (s *sim) tool(args ...string) {
	s.t.Helper()
	c := exec.Command("/bin/bash", append([]string{filepath.Join(s.root, "sim/bin", args[0])}, args[1:]...)...)
	if out, err := c.CombinedOutput(); err != nil {
		s.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// reviewed is the fingerprint of this host's plan as `upgrader plan`
// prints it: the operator's consent to exactly that plan.
func (s *sim) reviewed(args ...string) string {
	s.t.Helper()
	var p struct {
		Fingerprint string `json:"fingerprint"`
	}
	r := s.run(append([]string{"plan", "-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || p.Fingerprint == "" {
		s.t.Fatalf("plan -o json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	return orchestrator.ShortFingerprint(p.Fingerprint)
}
