package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"upgrader/testdata/simhost"
)

// The fault sweep: every procedure of the catalog is driven to completion
// on its simulated host(s) by a driver that reacts to what upgrader says
// (gates, reboots, the hand-over of a migration), once without faults and
// then once per failpoint the undisturbed run passed, with the process
// killed (SIGKILL, or a panic) at that point. Each interrupted run must end
// exactly like the undisturbed one. `make faults` sets UPGRADER_FAULTS=full
// for every point; `make test` runs a seeded sample.

func fullFaults() bool { return os.Getenv("UPGRADER_FAULTS") == "full" }

// faultSeed is the seed of the sampled and random cases, printed with the
// results; UPGRADER_FAULT_SEED replays one.
func faultSeed() uint64 {
	if s := os.Getenv("UPGRADER_FAULT_SEED"); s != "" {
		var seed uint64
		fmt.Sscan(s, &seed)
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// scenario is one procedure as an engineer carries it out on the
// simulated hosts: the source (and, for a migration, the target), the
// options of the first run, and what the operator does at each gate.
type scenario struct {
	name  string
	hosts []string
	args  []string
	gates map[string][]string // failed gate step → simulator tool to run
	// remote puts the first host's MPPs on their own servers (the test
	// sshd), changed over SSH.
	remote []simhost.RemoteMPP
}

var scenarios = []scenario{
	{name: "pom-upgrade", hosts: []string{"pom"}},
	{name: "pom-upgrade-remote-mpps", hosts: []string{"pom"}, remote: []simhost.RemoteMPP{
		{Name: "mpp1", Host: "127.0.0.5", Patch: "7.2.0.0.1202"}, {Name: "mpp2", Host: "127.0.0.6"}}},
	{name: "pom-install", hosts: []string{"pombare"}, args: []string{"--with", "help-library"}},
	{name: "pc-upgrade", hosts: []string{"pc41"}},
	{name: "pc-install", hosts: []string{"pcbare"}, args: []string{"--with", "supervisor"},
		gates: map[string][]string{"linux-es": {"operator", "install-linux-es", "4.1.2"}}},
	{name: "pc-migrate", hosts: []string{"dl385", "x3650"},
		gates: map[string][]string{"linux-es": {"operator", "install-linux-es", "4.1.2"}}},
}

// crashAt is a fault injected into one invocation of upgrader.
type crashAt struct {
	point  string // "point:step" of UPGRADER_FAILPOINT
	action string // kill or panic
}

// fleet is one copy of a scenario's hosts and the driver's memory.
type fleet struct {
	t        *testing.T
	sc       scenario
	sims     []*sim
	dir      string
	exported string
	// invocations counts upgrader commands that write state; crashes maps
	// some of them to a fault, traces to a trace file.
	invocations int
	crashes     map[int]crashAt
	trace       bool
	fired       []int // invocations whose fault fired
	// second, when set, picks the fault of the invocation that recovers
	// from the first one, from the points that invocation passes.
	second   func(points []string) (crashAt, bool)
	operated map[string]bool
	log      []string
	// took is each invocation's duration; power, when set, cuts the
	// power of the host during one invocation (powercut_test.go).
	took  []time.Duration
	power *powerCase
}

func newFleet(t *testing.T, sc scenario) *fleet {
	f := &fleet{t: t, sc: sc, dir: t.TempDir(), crashes: map[int]crashAt{}, operated: map[string]bool{}}
	for _, h := range sc.hosts {
		f.sims = append(f.sims, newSimHost(t, h))
	}
	if len(sc.remote) > 0 {
		f.sims[0].remoteMPPs(sc.remote...)
	}
	f.exported = filepath.Join(f.dir, "run.json")
	return f
}

type runStatus struct {
	Run   string `json:"run"`
	State string `json:"state"`
	Steps []struct {
		StepID string `json:"step_id"`
		Status string `json:"status"`
	} `json:"steps"`
}

func (f *fleet) status(s *sim) (runStatus, bool) {
	var st runStatus
	r := s.run("status", "-o", "json")
	if r.code != exitOK {
		return st, false
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		f.t.Fatalf("status json: %v\n%s", err, r.stdout)
	}
	return st, st.Run != ""
}

// invoke runs a state-writing upgrader command, with this invocation's
// fault if it has one; crashed says the fault fired.
func (f *fleet) invoke(s *sim, args ...string) (code int, crashed bool) {
	f.t.Helper()
	n := f.invocations
	if f.second != nil && len(f.fired) == 1 && f.fired[0] == n-1 {
		if cr, ok := f.second(f.pointsOf(s, args)); ok {
			f.crashes[n] = cr
		}
	}
	f.invocations++
	c := s.cmd(args...)
	if f.trace {
		c.Env = append(c.Env, "UPGRADER_FAILPOINT_TRACE="+f.traceFile(n))
	}
	if f.power != nil && f.power.invocation == n {
		return f.powerCut(s, args)
	}
	crash, ok := f.crashes[n]
	if ok {
		c.Env = append(c.Env, "UPGRADER_FAILPOINT="+crash.point, "UPGRADER_FAILPOINT_ACTION="+crash.action)
	}
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	began := time.Now()
	err := c.Run()
	f.took = append(f.took, time.Since(began))
	var exit *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.ExitCode()
		if ws, isWS := exit.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
			code = -int(ws.Signal())
		}
	default:
		f.t.Fatal(err)
	}
	line := fmt.Sprintf("#%d %s %s → %d", n, s.dir, strings.Join(args, " "), code)
	if ok {
		line += fmt.Sprintf(" (fault %s, %s)", crash.point, crash.action)
	}
	if f.power != nil && f.power.cut {
		// After a power cut: what upgrader said, for the failure report.
		line += "\n" + out.String()
	}
	f.log = append(f.log, line)
	canaryCheck(f.t, "output", "upgrader "+args[0], []byte(out.String()))
	if ok {
		fired := crash.action == "kill" && code == -int(syscall.SIGKILL) ||
			crash.action == "panic" && code == 2 && strings.Contains(out.String(), "panic: failpoint "+crash.point)
		if fired {
			f.fired = append(f.fired, n)
			return code, true
		}
	}
	if code < 0 || strings.Contains(out.String(), "panic:") {
		f.t.Fatalf("invocation #%d (%s) died without a fault of its own (exit %d):\n%s", n, strings.Join(args, " "), code, out.String())
	}
	return code, false
}

// pointsOf runs args on a copy of s, traced, and returns the failpoints it
// passed: what the same command on s itself will pass.
func (f *fleet) pointsOf(s *sim, args []string) []string {
	f.t.Helper()
	clone := &sim{t: f.t, dir: f.t.TempDir()}
	if err := os.CopyFS(clone.dir, os.DirFS(s.dir)); err != nil {
		f.t.Fatal(err)
	}
	clone.root, clone.profile, clone.state = filepath.Join(clone.dir, "root"), filepath.Join(clone.dir, "profile.yaml"), filepath.Join(clone.dir, "state")
	os.Chmod(filepath.Join(clone.root, "etc/upgrader/pgpass"), 0o600)
	os.Chmod(filepath.Join(clone.root, "etc/upgrader/ssh/id_ed25519"), 0o600)
	// A remote MPP's config is an absolute path of this machine: the
	// clone's profile names the clone's files, never the original's.
	if b, err := os.ReadFile(clone.profile); err == nil {
		os.WriteFile(clone.profile, []byte(strings.ReplaceAll(string(b), s.dir, clone.dir)), 0o644)
	}
	args = slices.Clone(args)
	for i, a := range args {
		if a == f.exported {
			args[i] = filepath.Join(clone.dir, "run.json")
			if args[0] == "import" {
				copyFile(f.t, f.exported, args[i])
			}
		}
	}
	trace := filepath.Join(clone.dir, "trace")
	c := clone.cmd(args...)
	c.Env = append(c.Env, "UPGRADER_FAILPOINT_TRACE="+trace)
	c.Run()
	b, _ := os.ReadFile(trace)
	return strings.Fields(string(b))
}

func (f *fleet) traceFile(n int) string { return filepath.Join(f.dir, fmt.Sprintf("trace-%d", n)) }

// drive carries the scenario to its end, whatever state the hosts are in,
// the way an engineer following upgrader's "Next:" lines would.
func (f *fleet) drive() {
	f.t.Helper()
	runArgs := append([]string{"run", "--yes"}, f.sc.args...)
	host, lastCode := 0, -1
	for range 40 {
		s := f.sims[host]
		if f.power != nil {
			f.afterPowerCut(s)
		}
		st, has := f.status(s)
		switch {
		case !has && host > 0:
			f.importRun(s)
			continue
		case st.State == "completed":
			return
		case st.State == "exported":
			host, lastCode = host+1, -1
			continue
		case host+1 < len(f.sims) && lastCode == exitPaused && st.State == "running":
			// The source stopped at the hand-over: carry the run over.
			if code, crashed := f.invoke(s, "export", "--out", f.exported); !crashed && code != exitOK {
				f.t.Fatalf("export: exit %d\n%s", code, strings.Join(f.log, "\n"))
			}
			f.copyBackups(s, f.sims[host+1])
			lastCode = -1
			continue
		case st.State == "failed":
			if f.power != nil && f.stoppedAtInterrupted(s) {
				return
			}
			if f.power == nil || !f.recopyLostBackup(s) {
				f.operate(s, st)
			}
		}
		if f.power != nil && f.power.resume {
			// The first command after the reboot, as the engineer types it.
			f.power.resume = false
			lastCode, _ = f.invoke(s, "resume", "--yes")
			continue
		}
		lastCode, _ = f.invoke(s, runArgs...)
	}
	f.t.Fatalf("the scenario did not end in 40 commands:\n%s", strings.Join(f.log, "\n"))
}

// operate does the operator's work at a failed gate, once per host.
func (f *fleet) operate(s *sim, st runStatus) {
	f.t.Helper()
	for _, step := range st.Steps {
		if step.Status != "failed" {
			continue
		}
		tool, ok := f.sc.gates[step.StepID]
		key := s.dir + " " + step.StepID
		if f.operated[key] {
			return // done before a crash: the resume re-checks it
		}
		if !ok {
			f.t.Fatalf("step %s failed and no operator action is known for it:\n%s", step.StepID, strings.Join(f.log, "\n"))
		}
		f.operated[key] = true
		s.tool(tool...)
	}
}

func (f *fleet) importRun(s *sim) {
	f.t.Helper()
	if code, crashed := f.invoke(s, "import", f.exported); !crashed && code != exitOK {
		f.t.Fatalf("import: exit %d\n%s", code, strings.Join(f.log, "\n"))
	}
}

// copyBackups copies the source's backups to the same paths on the target.
func (f *fleet) copyBackups(from, to *sim) {
	f.t.Helper()
	backups, _ := filepath.Glob(filepath.Join(from.root, "var/backups/upgrader/*"))
	for _, b := range backups {
		rel, _ := filepath.Rel(from.root, b)
		copyFile(f.t, b, filepath.Join(to.root, rel))
	}
}

// final is the end state of every host.
func (f *fleet) final() []finalState {
	f.t.Helper()
	var out []finalState
	for _, s := range f.sims {
		out = append(out, s.final(s.runID()))
	}
	return out
}

// points returns the failpoints each invocation of a traced run passed.
func (f *fleet) points() [][]string {
	f.t.Helper()
	var out [][]string
	for n := range f.invocations {
		b, err := os.ReadFile(f.traceFile(n))
		if err != nil && !os.IsNotExist(err) {
			f.t.Fatal(err)
		}
		out = append(out, strings.Fields(string(b)))
	}
	return out
}

// baseline is a scenario's undisturbed run and the points it passed.
type baseline struct {
	sc      scenario
	want    []finalState
	ledgers [][]string // per host
	points  [][]string // per invocation
}

var (
	baselinesMu sync.Mutex
	baselines   = map[string]*baseline{}
)

func baselineOf(t *testing.T, sc scenario) *baseline {
	t.Helper()
	baselinesMu.Lock()
	defer baselinesMu.Unlock()
	if b := baselines[sc.name]; b != nil {
		return b
	}
	f := newFleet(t, sc)
	f.trace = true
	f.drive()
	b := &baseline{sc: sc, want: f.final(), points: f.points()}
	for _, s := range f.sims {
		b.ledgers = append(b.ledgers, s.ledger())
	}
	total := 0
	for _, p := range b.points {
		total += len(p)
	}
	if total < 10 {
		t.Fatalf("%s passed %d failpoints: the trace is not working", sc.name, total)
	}
	baselines[sc.name] = b
	return b
}

// faultCase is one crash (or two) injected into a scenario.
type faultCase struct {
	sc      scenario
	crashes map[int]crashAt
	second  func(points []string) (crashAt, bool)
}

func (c faultCase) String() string {
	var parts []string
	for n, cr := range c.crashes {
		parts = append(parts, fmt.Sprintf("#%d@%s/%s", n, cr.point, cr.action))
	}
	slices.Sort(parts)
	return c.sc.name + " " + strings.Join(parts, " ")
}

// runFaultCase drives a case to the end and compares it with the
// baseline; it returns how many of its faults fired and the duplicates.
func runFaultCase(t *testing.T, b *baseline, c faultCase) (fired, duplicates int) {
	f := newFleet(t, c.sc)
	f.crashes = c.crashes
	f.second = c.second
	f.drive()
	got := f.final()
	for i := range got {
		duplicates += compareFinal(t, b.want[i], got[i])
		canaryCheckHost(t, f.sims[i])
	}
	if t.Failed() {
		t.Logf("case %s:\n%s", c, strings.Join(f.log, "\n"))
	}
	return len(f.fired), duplicates
}

// tally is a family's figures, printed once its subtests have ended.
type tally struct {
	mu                                   sync.Mutex
	tried, identical, duplicates, missed int
}

func (ty *tally) add(t *testing.T, fired, want, dups int) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.tried++
	ty.duplicates += dups
	if fired < want {
		ty.missed++
	}
	if !t.Failed() {
		ty.identical++
	}
}

// TestFaultPointsEveryProcedure kills upgrader at every failpoint of every
// procedure (a seeded sample under `make test`), with SIGKILL and with a
// panic, and proves each run resumes to the same end.
func TestFaultPointsEveryProcedure(t *testing.T) {
	seed := faultSeed()
	rng := rand.New(rand.NewPCG(seed, 1))
	var ty tally
	perAction := map[string]int{}
	t.Cleanup(func() {
		fmt.Printf("fault points: %d tried (%d SIGKILL, %d panic; %d procedures; seed %d), %d resumed identically, %d duplicate effects\n",
			ty.tried, perAction["kill"], perAction["panic"], len(scenarios), seed, ty.identical, ty.duplicates)
	})
	for _, sc := range scenarios {
		b := baselineOf(t, sc)
		var cases []faultCase
		for n, pts := range b.points {
			for _, p := range pts {
				for _, action := range []string{"kill", "panic"} {
					cases = append(cases, faultCase{sc: sc, crashes: map[int]crashAt{n: {p, action}}})
				}
			}
		}
		if len(sc.remote) > 0 {
			// The remote writer's own points: the backup and the edit on
			// the MPP, each cut after its temporary file is durable.
			for _, want := range []string{"mpp-backup-before-rename:mpp-config-mpp2", "mpp-config-before-rename:mpp-config-mpp2"} {
				if !slices.ContainsFunc(b.points, func(pts []string) bool { return slices.Contains(pts, want) }) {
					t.Errorf("%s does not pass %s", sc.name, want)
				}
			}
		}
		if !fullFaults() {
			rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
			var sample []faultCase
			for _, c := range cases {
				for _, cr := range c.crashes {
					// Every sample cuts the remote writer once on each side.
					if strings.HasPrefix(cr.point, "mpp-") && strings.HasSuffix(cr.point, ":mpp-config-mpp2") && cr.action == "kill" {
						sample = append(sample, c)
					}
				}
			}
			for _, c := range cases {
				if len(sample) >= 6+2*min(len(sc.remote), 1) {
					break
				}
				if !slices.ContainsFunc(sample, func(o faultCase) bool { return o.String() == c.String() }) {
					sample = append(sample, c)
				}
			}
			cases = sample
		}
		for _, c := range cases {
			t.Run(strings.NewReplacer(":", "@", " ", "_", "#", "").Replace(c.String()), func(t *testing.T) {
				t.Parallel()
				var fired, dups int
				// Counted even when the case stops on a fatal error.
				defer func() {
					ty.add(t, fired, 1, dups)
					ty.mu.Lock()
					for _, cr := range c.crashes {
						perAction[cr.action]++
					}
					ty.mu.Unlock()
				}()
				fired, dups = runFaultCase(t, b, c)
				if fired != 1 {
					t.Errorf("the fault did not fire: the run no longer passes %v", c)
				}
			})
		}
	}
}

// TestFaultDoubleCrash crashes a run, then crashes its recovery too, at
// seeded random pairs of points (200 pairs whose both faults fired under
// `make faults`), and proves the run still ends like an undisturbed one.
func TestFaultDoubleCrash(t *testing.T) {
	seed := faultSeed()
	rng := rand.New(rand.NewPCG(seed, 2))
	want := 12
	if fullFaults() {
		want = 200
	}
	var ty tally
	t.Cleanup(func() {
		fmt.Printf("double crash: %d pairs (seed %d), %d with both faults fired, %d resumed identically, %d duplicate effects\n",
			ty.tried, seed, ty.tried-ty.missed, ty.identical, ty.duplicates)
	})
	var bases []*baseline
	for _, sc := range scenarios {
		bases = append(bases, baselineOf(t, sc))
	}
	// Pairs are drawn in batches until enough have both faults fire (a
	// recovery that passes no failpoint leaves a pair with one crash,
	// counted but not enough).
	var mu sync.Mutex
	bothFired, drawn := 0, 0
	for bothFired < want && drawn < 3*want {
		batch := max(want-bothFired, 2)
		t.Run(fmt.Sprintf("batch-from-%d", drawn), func(t *testing.T) {
			for range batch {
				b := bases[rng.IntN(len(bases))]
				c := pairCase(rng, b)
				drawn++
				t.Run(fmt.Sprintf("%d_%s", drawn, strings.NewReplacer(":", "@", " ", "_", "#", "").Replace(c.String())), func(t *testing.T) {
					t.Parallel()
					var fired, dups int
					defer func() { ty.add(t, fired, 2, dups) }()
					fired, dups = runFaultCase(t, b, c)
					if fired == 0 {
						t.Errorf("the first fault did not fire: the run no longer passes %v", c)
					}
					mu.Lock()
					if fired == 2 {
						bothFired++
					}
					mu.Unlock()
				})
			}
		})
	}
	if bothFired < want {
		t.Errorf("only %d pairs had both faults fire, want %d (seed %d)", bothFired, want, seed)
	}
}

// pairCase picks a first point among those an invocation of the baseline
// passed, and lets the second be picked, when the run gets there, among
// those the recovering invocation passes.
func pairCase(rng *rand.Rand, b *baseline) faultCase {
	var n int
	for {
		n = rng.IntN(len(b.points))
		if len(b.points[n]) > 0 {
			break
		}
	}
	actions := []string{"kill", "panic"}
	first := crashAt{b.points[n][rng.IntN(len(b.points[n]))], actions[rng.IntN(2)]}
	// The pair's own random source: the cases run in parallel.
	pick := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
	return faultCase{sc: b.sc, crashes: map[int]crashAt{n: first}, second: func(points []string) (crashAt, bool) {
		if len(points) == 0 {
			return crashAt{}, false
		}
		return crashAt{points[pick.IntN(len(points))], actions[pick.IntN(2)]}, true
	}}
}
