package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"upgrader/testdata/lossyfs"
)

// The power-cut sweep: the fault sweep's procedures, each host on a lossy
// disk (testdata/lossyfs: its state directory, backups and every file the
// procedure changes), the power cut at one instant of one invocation: at
// a failpoint (upgrader held there, then it and every process of the run
// killed) or at a random moment. The disk then loses what was not synced
// (all of it, a random prefix, or a torn page), the host "reboots" (the
// durable image mounted again, a new boot id) and the engineer types
// `upgrader resume` and follows the Next: lines. The run must end like an
// undisturbed one, lose no step it reported done unless it re-ran it
// without a second effect, do no irreversible effect twice, never say
// "completed" wrongly. Cases that need `upgrader restore-state` are counted
// with their reason; an installer cut half-way, where upgrader stops
// without running it again, is counted apart (as mid-effect kills do).
//
//	go test ./cmd/upgrader -run TestPowerCut -v                    # the sample
//	UPGRADER_FAULTS=full go test ./cmd/upgrader -run TestPowerCut -v
//	UPGRADER_FAULT_SEED=N ...                                       # replays one

// bootIDFile is the simulated hosts' host.boot_id_file, under root.
const bootIDFile = "proc/sys/kernel/random/boot_id"

// powerCase is one power cut and what came of it.
type powerCase struct {
	sc         scenario
	invocation int           // the invocation cut (-1: none)
	point      string        // the failpoint it is cut at, or
	delay      time.Duration // the moment after its start
	mode       lossyfs.Mode
	seed       uint64

	disks map[*sim]*lossyfs.FS
	host  *sim // whose power was cut
	// Outcome.
	cut, fired, resume bool
	what               string
	acked              []string // steps reported done before the cut
	lostAcked          []string // of those, not done after it
	operator           []string // why restore-state was needed
	stopped            bool     // at an installer cut half-way
	backupsAgain       int      // backups made again (madeAgain)
}

func (pc *powerCase) String() string {
	at := pc.point
	if at == "" {
		at = "t+" + pc.delay.Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%s #%d@%s/%s", pc.sc.name, pc.invocation, at, pc.mode)
}

// newLossySim copies a simulated host onto a lossy disk of its own.
func newLossySim(t *testing.T, name string) (*sim, *lossyfs.FS) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	if err := os.CopyFS(backing, os.DirFS(templates[name])); err != nil {
		t.Fatal(err)
	}
	if pgpass := filepath.Join(backing, "root/etc/upgrader/pgpass"); fileExists(pgpass) {
		os.Chmod(pgpass, 0o600)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	disk, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		powerOff(0, mnt) // whatever a failed case left running
		disk.Unmount()
	})
	s := &sim{t: t, dir: mnt, root: filepath.Join(mnt, "root"), profile: filepath.Join(mnt, "profile.yaml"), state: filepath.Join(mnt, "state")}
	s.control("delay", "0.01")
	disk.Sync() // the host as set up is on disk
	return s, disk
}

func newPowerFleet(t *testing.T, pc *powerCase) *fleet {
	f := &fleet{t: t, sc: pc.sc, dir: t.TempDir(), crashes: map[int]crashAt{}, operated: map[string]bool{}, power: pc}
	pc.disks = map[*sim]*lossyfs.FS{}
	for _, h := range pc.sc.hosts {
		s, disk := newLossySim(t, h)
		f.sims = append(f.sims, s)
		pc.disks[s] = disk
	}
	// The exported migration is written on the source's disk.
	f.exported = filepath.Join(f.sims[0].dir, "run.json")
	return f
}

// powerCut runs invocation c and cuts the power of host s at the case's
// instant: every process of the run is killed, the disk loses what it
// loses, the host comes back with a new boot id.
func (f *fleet) powerCut(s *sim, args []string) (int, bool) {
	f.t.Helper()
	pc := f.power
	// What the run had reported done when the power went: the steps done
	// in the state before this command, and those it printed "ok" for.
	pc.acked = f.doneSteps(s)
	cmd := s.cmd(args...)
	mark := filepath.Join(f.dir, "cut-mark")
	if pc.point != "" {
		cmd.Env = append(cmd.Env, "UPGRADER_FAILPOINT="+pc.point, "UPGRADER_FAILPOINT_ACTION=pause", "UPGRADER_FAILPOINT_MARK="+mark)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	done := false
	if pc.point != "" {
		deadline := time.Now().Add(60 * time.Second)
		for !pc.fired && !done && time.Now().Before(deadline) {
			select {
			case <-exited:
				done = true
			case <-time.After(5 * time.Millisecond):
				pc.fired = fileExists(mark)
			}
		}
	} else {
		select {
		case <-exited:
			done = true
		case <-time.After(pc.delay):
			pc.fired = true
		}
	}
	// A command already reaped no longer owns its pid: another test's
	// process may have it by now. Then the mount alone says who dies.
	victim := cmd.Process.Pid
	if done {
		victim = -1
	}
	powerOff(victim, s.dir)
	if !done {
		<-exited
	}
	pc.acked = append(pc.acked, okSteps(out.String())...)
	what, err := pc.disks[s].PowerCut(pc.mode, rand.New(rand.NewPCG(pc.seed, 3)))
	if err != nil {
		f.t.Fatalf("power cut: %v", err)
	}
	newBootID(f.t, s)
	pc.disks[s].Sync()
	pc.cut, pc.resume, pc.what, pc.host = true, true, what, s
	f.log = append(f.log, fmt.Sprintf("#%d %s %s → power cut (%s; fired %v): %s\n%s", f.invocations-1, s.dir, strings.Join(args, " "), pc, pc.fired, what, out.String()))
	// Right after the reboot: every step reported done is still done.
	after := f.doneSteps(s)
	for _, st := range pc.acked {
		if !slices.Contains(after, st) && !slices.Contains(pc.lostAcked, st) {
			pc.lostAcked = append(pc.lostAcked, st)
		}
	}
	return -int(syscall.SIGKILL), true
}

var stepLine = regexp.MustCompile(`^\[\d+/\d+\] ([a-z0-9-]+): `)

// okSteps reads the steps a run printed "ok" for.
func okSteps(out string) []string {
	var steps []string
	cur := ""
	for _, l := range strings.Split(out, "\n") {
		if m := stepLine.FindStringSubmatch(l); m != nil {
			cur = m[1]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "ok") && cur != "" {
			steps = append(steps, cur)
		}
	}
	return steps
}

// doneSteps is the steps the state on s says are done (none if it cannot
// be read).
func (f *fleet) doneSteps(s *sim) []string {
	st, has := f.status(s)
	if !has {
		return nil
	}
	var done []string
	for _, step := range st.Steps {
		if step.Status == "done" {
			done = append(done, step.StepID)
		}
	}
	return done
}

// newBootID writes a new boot id, durably: the host restarted.
func newBootID(t *testing.T, s *sim) {
	p := filepath.Join(s.root, bootIDFile)
	old, _ := os.ReadFile(p)
	id := fmt.Sprintf("%08x-0000-4000-8000-%012x", len(old), time.Now().UnixNano()&0xffffffffffff)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// afterPowerCut does the operator's part when the state is refused as
// damaged: restore-state, with the reason kept.
func (f *fleet) afterPowerCut(s *sim) {
	pc := f.power
	if !pc.cut {
		return
	}
	r := s.run("status")
	if r.code == exitOK || !strings.Contains(r.stderr+r.stdout, "damaged") {
		return
	}
	reason := strings.TrimSpace(strings.SplitN(strings.TrimSpace(r.stderr), "\n", 2)[0])
	pc.operator = append(pc.operator, reason)
	rs := s.run("restore-state")
	f.log = append(f.log, fmt.Sprintf("status: %s\nrestore-state → %d\n%s%s", reason, rs.code, rs.stdout, rs.stderr))
	if rs.code != exitOK {
		f.t.Fatalf("restore-state could not repair the state (exit %d): %s%s\n%s", rs.code, rs.stdout, rs.stderr, strings.Join(f.log, "\n"))
	}
}

// stoppedAtInterrupted says the run stopped at a tool the power cut
// interrupted half-way (the installer), which resume must not run again.
func (f *fleet) stoppedAtInterrupted(s *sim) bool {
	r := s.run("status")
	if !strings.Contains(r.stdout, "interrupted before it finished") {
		return false
	}
	f.power.stopped = true
	return true
}

// recopyLostBackup is the engineer's part when the power cut lost, on a
// migration's new server, the copy of the source's backup made there
// before upgrader ever read it (a copy syncs nothing; a guard that proved
// it makes it durable): the run stops saying the backup is not here, the
// engineer copies it again and the run goes on. Counted as operator
// needed, once.
func (f *fleet) recopyLostBackup(s *sim) bool {
	pc := f.power
	if len(f.sims) < 2 || pc.host != s || s == f.sims[0] || f.operated["recopy"] {
		return false
	}
	// Lost whole, or kept in part (its create durable, its data not).
	r := s.run("status")
	if !strings.Contains(r.stdout, "was verified on the other server and is not readable here") &&
		!strings.Contains(r.stdout, "is not the file verified on the other server") {
		return false
	}
	// A step whose guard passed once has been attempted: upgrader had
	// read the copy, and losing it then is upgrader's fault.
	var st struct {
		Steps []struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"steps"`
	}
	json.Unmarshal([]byte(s.run("status", "-o", "json").stdout), &st)
	for _, step := range st.Steps {
		if step.Status == "failed" && step.Attempts > 0 {
			return false
		}
	}
	f.operated["recopy"] = true
	pc.operator = append(pc.operator, "the engineer's copy of the source's backup, made before the cut and not synced, was lost (whole or in part) before upgrader read it: copied again")
	f.copyBackups(f.sims[0], s)
	return true
}

// powerOff kills, as a power cut does, process pid with every process
// descended from it and every process using the mount: each is stopped
// first (so none forks or exits unseen), then all are killed.
func powerOff(pid int, mount string) {
	victims := map[int]bool{}
	for range 50 {
		procs := listProcs()
		more := false
		for p, ppid := range procs {
			if victims[p] || p == os.Getpid() {
				continue
			}
			if p == pid || victims[ppid] || usesMount(p, mount) {
				syscall.Kill(p, syscall.SIGSTOP)
				victims[p] = true
				more = true
			}
		}
		if !more {
			break
		}
	}
	for p := range victims {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for p := range victims {
		waitDead(p)
	}
}

// listProcs maps every pid to its parent's.
func listProcs() map[int]int {
	out := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if f[0] == "Z" || f[0] == "X" {
			continue
		}
		out[pid], _ = strconv.Atoi(f[1])
	}
	return out
}

// usesMount says process pid has its directory, program or an open file
// on the mount.
func usesMount(pid int, mount string) bool {
	under := func(p string) bool { return p == mount || strings.HasPrefix(p, mount+"/") }
	for _, l := range []string{"cwd", "exe"} {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/%s", pid, l)); err == nil && under(p) {
			return true
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && under(p) {
			return true
		}
	}
	return false
}

// treeFiles lists the host's files with their SHA-256 (run ids and the
// boot id as in powerFinal).
func treeFiles(t *testing.T, s *sim) []string {
	id := s.runID()
	var out []string
	filepath.WalkDir(s.root, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(s.root, p)
		if err != nil || d.IsDir() || rel == bootIDFile || strings.HasPrefix(rel, "sim/control") || rel == "var/log/sim-ledger.log" {
			return nil
		}
		b, _ := os.ReadFile(p)
		out = append(out, fmt.Sprintf("%s %x", strings.ReplaceAll(rel, id, "RUN"), sha256.Sum256(b)))
		return nil
	})
	return out
}

// powerFinal is the end state of every host, the boot id left out (a
// power cut is a reboot more).
func powerFinal(f *fleet) []finalState {
	f.t.Helper()
	var out []finalState
	for _, s := range f.sims {
		id := s.runID()
		st := s.final(id)
		st.Tree = s.treeHashExcept(id, bootIDFile)
		for i, l := range st.Steps {
			st.Steps[i] = bootIDValue.ReplaceAllString(l, "${1}=BOOT")
		}
		out = append(out, st)
	}
	return out
}

var bootIDValue = regexp.MustCompile(`(boot_id_(?:before|after))=\S+`)

// powerBaseline is a scenario's undisturbed run on lossy disks: its end,
// the points each invocation passed and how long each took.
type powerBaseline struct {
	want   []finalState
	files  [][]string // per host: "path sha256" of every file, for the report of a difference
	points [][]string
	took   []time.Duration
}

var (
	powerBasesMu sync.Mutex
	powerBases   = map[string]*powerBaseline{}
)

func powerBaselineOf(t *testing.T, sc scenario) *powerBaseline {
	t.Helper()
	powerBasesMu.Lock()
	defer powerBasesMu.Unlock()
	if b := powerBases[sc.name]; b != nil {
		return b
	}
	f := newPowerFleet(t, &powerCase{sc: sc, invocation: -1})
	f.trace = true
	f.drive()
	b := &powerBaseline{want: powerFinal(f), points: f.points(), took: f.took}
	for _, s := range f.sims {
		b.files = append(b.files, treeFiles(t, s))
	}
	powerBases[sc.name] = b
	return b
}

// powerTally is the family's figures.
type powerTally struct {
	mu                                                  sync.Mutex
	tried, converged, stopped, wrong, ack, backupsAgain int
	modes                                               map[string]int
	operator                                            []string
}

// TestPowerCut cuts the power at every failpoint of every local procedure
// (each with one of the three loss modes, in turn) and at random moments,
// under `make faults`; `make test` runs a seeded sample.
func TestPowerCut(t *testing.T) {
	seed := faultSeed()
	rng := rand.New(rand.NewPCG(seed, 4))
	ty := powerTally{modes: map[string]int{}}
	t.Cleanup(func() {
		var modes []string
		for _, m := range []lossyfs.Mode{lossyfs.LoseAll, lossyfs.KeepPrefix, lossyfs.TearPage} {
			modes = append(modes, fmt.Sprintf("%d %s", ty.modes[m.String()], m))
		}
		fmt.Printf("power cuts: %d tried (%s; seed %d), %d converged, %d stopped at the interrupted installer without running it again, %d operator needed, %d acknowledged steps re-run without a second effect, %d backups made again (cut before their end was on record), %d wrong\n",
			ty.tried, strings.Join(modes, ", "), seed, ty.converged, ty.stopped, len(ty.operator), ty.ack, ty.backupsAgain, ty.wrong)
		for _, o := range ty.operator {
			fmt.Println("  operator needed:", o)
		}
	})
	modes := []lossyfs.Mode{lossyfs.LoseAll, lossyfs.KeepPrefix, lossyfs.TearPage}
	var cases []*powerCase
	for _, sc := range scenarios {
		if len(sc.remote) > 0 {
			continue // an MPP server's disk is not this host's
		}
		b := powerBaselineOf(t, sc)
		var mine []*powerCase
		for n, pts := range b.points {
			for _, p := range pts {
				mine = append(mine, &powerCase{sc: sc, invocation: n, point: p})
			}
		}
		random := 2
		if !fullFaults() {
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			mine, random = mine[:min(len(mine), 2)], 0
		}
		for range random {
			n := rng.IntN(len(b.took))
			mine = append(mine, &powerCase{sc: sc, invocation: n, delay: time.Duration(rng.Int64N(int64(b.took[n]) + 1))})
		}
		cases = append(cases, mine...)
	}
	if !fullFaults() {
		// Random moments in the sample too.
		for range 2 {
			c := cases[rng.IntN(len(cases))]
			b := powerBases[c.sc.name]
			n := rng.IntN(len(b.took))
			cases = append(cases, &powerCase{sc: c.sc, invocation: n, delay: time.Duration(rng.Int64N(int64(b.took[n]) + 1))})
		}
	}
	for i, c := range cases {
		c.mode, c.seed = modes[i%len(modes)], rng.Uint64()
		t.Run(strings.NewReplacer(":", "@", " ", "_", "#", "", "/", "-").Replace(c.String()), func(t *testing.T) {
			t.Parallel()
			defer func() {
				ty.mu.Lock()
				defer ty.mu.Unlock()
				ty.tried++
				ty.modes[c.mode.String()]++
				for _, o := range c.operator {
					ty.operator = append(ty.operator, fmt.Sprintf("%s: %s", c, o))
				}
				switch {
				case t.Failed():
					ty.wrong++
				case c.stopped:
					ty.stopped++
				case len(c.operator) == 0:
					ty.converged++
				}
				if !t.Failed() {
					ty.ack += len(c.lostAcked)
					ty.backupsAgain += c.backupsAgain
				}
			}()
			runPowerCase(t, powerBases[c.sc.name], c)
		})
	}
}

// madeAgain drops the repeats of a backup's completion from effects and
// counts them. A backup only reads, and one whose end was not on record
// when the power went (the tool done, its supervisor still making its
// work durable) is made again by design (steps: "one interrupted is made
// again") — not an effect done twice. Any other repeat stays, and a second
// backup beside a live one still damages the simulated host.
func madeAgain(effects []string) ([]string, int) {
	var out []string
	n := 0
	for _, e := range effects {
		if (strings.HasPrefix(e, "pg_dump_done") || e == "pc-backup_done") && slices.Contains(out, e) {
			n++
			continue
		}
		out = append(out, e)
	}
	return out, n
}

func runPowerCase(t *testing.T, b *powerBaseline, c *powerCase) {
	f := newPowerFleet(t, c)
	f.drive()
	defer func() {
		if t.Failed() {
			t.Logf("case %s:\n%s", c, strings.Join(f.log, "\n"))
		}
	}()
	if !c.cut {
		t.Fatalf("the run never reached invocation %d", c.invocation)
	}
	if c.point != "" && !c.fired {
		t.Errorf("the failpoint did not fire: the run no longer passes %s", c.point)
	}
	if c.stopped {
		for _, s := range f.sims {
			if n := strings.Count(strings.Join(s.ledger(), " "), "installer_begin"); n > 1 {
				t.Errorf("the installer began %d times", n)
			}
			if b, err := os.ReadFile(filepath.Join(s.root, "var/lib/sim/CORRUPTED")); err == nil {
				t.Errorf("the host was damaged: %s", b)
			}
		}
		return
	}
	got := powerFinal(f)
	for i := range got {
		var again int
		got[i].Effects, again = madeAgain(got[i].Effects)
		c.backupsAgain += again
		if dups := compareFinal(t, b.want[i], got[i]); dups > 0 {
			t.Errorf("%d effects done twice", dups)
		}
		if got[i].Tree != b.want[i].Tree {
			files := treeFiles(t, f.sims[i])
			for _, l := range files {
				if !slices.Contains(b.files[i], l) {
					t.Errorf("differs from the undisturbed run: %s", l)
				}
			}
			for _, l := range b.files[i] {
				if !slices.Contains(files, l) {
					t.Errorf("the undisturbed run has: %s", l)
				}
			}
		}
	}
	// A wrong "completed": the run says so and the host is not the
	// undisturbed one's.
	if t.Failed() {
		for _, s := range f.sims {
			var st runStatus
			if r := s.run("status", "-o", "json"); json.Unmarshal([]byte(r.stdout), &st) == nil && st.State == "completed" {
				t.Errorf("%s: the run says completed, and it is not the undisturbed run's end", s.dir)
			}
		}
	}
}
