// Command mppbench serves make bench's MPP section. It starts one real
// sshd on loopback (testdata/sshd) answering on 127.0.0.2 to 127.0.0.21,
// each address an MPP's server, and measures side by side, taking turns:
//
//   - `upgrader plan` (the real binary) of the simulated POM host whose
//     profile lists 20 MPPs on other servers, against the same with 1: the
//     MPPs' facts (reachable, mppconfig.xml values, patch level) are read
//     over SSH on every MPP at once, so 20 should cost little more than 1;
//   - the mpp-config step that the plan for one remote MPP holds (probe,
//     apply: backup on the MPP, upgrader's own copy, durable replace, read
//     back; verify), on a new connection each time as a run's first use,
//     against the least an edit over SSH takes: `ssh host cat FILE` then
//     `ssh host 'cat > FILE.tmp && mv FILE.tmp FILE'` with the OpenSSH
//     client, the same key and known_hosts, a new connection each.
//
// Usage: mppbench UPGRADER_BINARY RUNS
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/steps"
	"upgrader/testdata/simhost"
	"upgrader/testdata/sshd"
)

// manyMPPs is the large site; the small one has 1.
const manyMPPs = 20

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: mppbench UPGRADER_BINARY RUNS")
		os.Exit(2)
	}
	runs, err := strconv.Atoi(os.Args[2])
	if err == nil {
		err = bench(os.Args[1], runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mppbench:", err)
		os.Exit(1)
	}
}

// site is the simulated POM host with a profile listing n remote MPPs.
type site struct {
	sim     simhost.Sim
	srv     *sshd.Server
	work    string
	key     string // the login key, under the host's root
	known   string // known_hosts, under the host's root
	configs []string
}

func bench(bin string, runs int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "upgrader-mppbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	srv, err := sshd.Start(manyMPPs + 1)
	if err != nil {
		return err
	}
	defer srv.Close()
	s, err := newSite(work, srv)
	if err != nil {
		return err
	}
	one, err := s.profile("one.yaml", 1)
	if err != nil {
		return err
	}
	many, err := s.profile("many.yaml", manyMPPs)
	if err != nil {
		return err
	}
	if os.Getenv("KEEP") != "" {
		fmt.Println(work, many)
		time.Sleep(120 * time.Second)
	}
	if err := planBench(bin, s, one, many, runs); err != nil {
		return err
	}
	return editBench(bin, s, one, runs)
}

func newSite(work string, srv *sshd.Server) (*site, error) {
	sim, err := simhost.Setup(filepath.Join(work, "pom"))
	if err != nil {
		return nil, err
	}
	s := &site{sim: sim, srv: srv, work: work, key: "/etc/upgrader/id_ed25519", known: "/etc/upgrader/known_hosts"}
	key, err := os.ReadFile(srv.UserKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(sim.Root, s.key), key, 0o600); err != nil {
		return nil, err
	}
	if err := srv.WriteKnownHosts(filepath.Join(sim.Root, s.known)); err != nil {
		return nil, err
	}
	// Each MPP's files on its "server": a directory of its own here.
	xml, err := os.ReadFile(filepath.Join(sim.Root, "opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml"))
	if err != nil {
		return nil, err
	}
	for i := range srv.Hosts {
		dir := filepath.Join(work, "mpps", fmt.Sprintf("mpp%02d", i+1), "config")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		config := filepath.Join(dir, "mppconfig.xml")
		if err := os.WriteFile(config, xml, 0o640); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "mpp.version"), []byte("7.2.0.0.1202\n"), 0o644); err != nil {
			return nil, err
		}
		s.configs = append(s.configs, config)
	}
	return s, nil
}

// profile writes the simulated host's profile with n MPPs, each on its
// own server (127.0.0.2 up), its version read there.
func (s *site) profile(name string, n int) (string, error) {
	b, err := os.ReadFile(s.sim.Profile)
	if err != nil {
		return "", err
	}
	text := string(b)
	start, end := strings.Index(text, "mpps:\n"), strings.Index(text, "media:\n")
	if start < 0 || end < start {
		return "", fmt.Errorf("%s: no mpps section before media", s.sim.Profile)
	}
	var mpps strings.Builder
	mpps.WriteString("mpps:\n")
	for i := range n {
		fmt.Fprintf(&mpps, "  - name: mpp%02d\n    host: %s\n    config: %s\n    version:\n      file: %s\n      pattern: '(\\S+)'\n",
			i+1, s.srv.Hosts[i], s.configs[i], filepath.Join(filepath.Dir(s.configs[i]), "mpp.version"))
	}
	ssh := fmt.Sprintf("ssh:\n  key_file: %s\n  known_hosts: %s\n  port: %d\n", s.key, s.known, s.srv.Port)
	text = text[:start] + mpps.String() + text[end:] + ssh
	path := filepath.Join(s.sim.Dir, name)
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// plan runs `upgrader plan -o json` and returns the plan, refusing one in
// which an MPP was not read over SSH.
func plan(bin, prof, state string) (orchestrator.Plan, error) {
	var p orchestrator.Plan
	c := exec.Command(bin, "plan", "--profile", prof, "--state-dir", state, "-o", "json")
	c.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "UPGRADER_PROFILE=", "UPGRADER_STATE_DIR=")
	out, err := c.Output()
	if len(out) == 0 {
		return p, fmt.Errorf("upgrader plan --profile %s: %v", prof, err)
	}
	if err := json.Unmarshal(out, &p); err != nil {
		return p, fmt.Errorf("upgrader plan --profile %s: %v", prof, err)
	}
	for _, b := range p.Blockers {
		if strings.HasPrefix(b.ID, "mpp-") {
			return p, fmt.Errorf("upgrader plan --profile %s: %s: %s", prof, b.ID, b.Message)
		}
	}
	return p, nil
}

func planBench(bin string, s *site, one, many string, runs int) error {
	// The MPPs' facts must have been read there: a plan that did not reach
	// them measures nothing.
	for _, prof := range []string{one, many} {
		p, err := plan(bin, prof, filepath.Join(s.work, "state-check"))
		if err != nil {
			return err
		}
		for i := range strings.Count(readText(prof), "  - name: mpp") {
			key := orchestrator.MPPFact(fmt.Sprintf("mpp%02d", i+1), orchestrator.MPPFactRuntimeSize)
			if v, ok := p.Facts.Get(key); !ok || v != "16777216" {
				return fmt.Errorf("upgrader plan --profile %s did not read %s over SSH (got %q): the MPP facts are not read remotely yet", prof, key, v)
			}
		}
	}
	// Wall time, upgrader's CPU time and the sshd processes' (the MPPs'
	// servers, on this same machine) of each run.
	type sample struct{ wall, cpu, server []time.Duration }
	var none, one1, many1 sample
	for range runs {
		for _, c := range []struct {
			prof string
			into *sample
		}{{s.sim.Profile, &none}, {one, &one1}, {many, &many1}} {
			cmd := exec.Command(bin, "plan", "--profile", c.prof, "--state-dir", filepath.Join(s.work, "state"))
			cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=", "UPGRADER_PROFILE=", "UPGRADER_STATE_DIR=")
			server0, err := s.srv.CPU()
			if err != nil {
				return err
			}
			start := time.Now()
			out, err := cmd.CombinedOutput()
			wall := time.Since(start)
			if err != nil && !bytes.Contains(out, []byte("Plan:")) {
				return fmt.Errorf("upgrader plan --profile %s: %v\n%s", c.prof, err, out)
			}
			if err := s.srv.WaitIdle(5 * time.Second); err != nil {
				return err
			}
			server1, err := s.srv.CPU()
			if err != nil {
				return err
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			c.into.wall = append(c.into.wall, wall)
			c.into.cpu = append(c.into.cpu, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
			c.into.server = append(c.into.server, server1-server0)
		}
	}
	w0, w1, wn := median(none.wall), median(one1.wall), median(many1.wall)
	fmt.Printf("\nupgrader plan (whole process) with %d MPPs on other servers (one sshd on 127.0.0.2-%d): %s; with 1: %s; ratio %.2fx (target at most 2x; median of %d runs each, taking turns)\n",
		manyMPPs, manyMPPs+1, ms(wn), ms(w1), float64(wn)/float64(w1), runs)
	fmt.Printf("  with its 2 MPPs on this server (no SSH): %s; one MPP after the other would take about %s\n",
		ms(w0), ms(w0+manyMPPs*(w1-w0)))
	fmt.Printf("  CPU time: upgrader %s with %d, %s with 1; the sshd processes standing for the MPPs' servers, on the same %d CPUs: %s with %d, %s with 1\n",
		ms(median(many1.cpu)), manyMPPs, ms(median(one1.cpu)), runtime.NumCPU(), ms(median(many1.server)), manyMPPs, ms(median(one1.server)))
	// On a site each MPP is its own machine; here the 20 "servers" share
	// this machine's CPUs with upgrader, which bounds any parallel client.
	floor := (median(many1.cpu) + median(many1.server)) / time.Duration(runtime.NumCPU())
	fmt.Printf("  this machine's floor for the 20-MPP plan (all that CPU time spread over %d CPUs): %s; the plan took %.2fx that floor\n",
		runtime.NumCPU(), ms(floor), float64(wn)/float64(floor))
	return nil
}

func editBench(bin string, s *site, one string, runs int) error {
	p, err := plan(bin, one, filepath.Join(s.work, "state-check"))
	if err != nil {
		return err
	}
	i := slices.IndexFunc(p.Steps, func(st orchestrator.StepSpec) bool { return st.Action == "mpp-config" })
	if i < 0 {
		return fmt.Errorf("the plan for %s has no mpp-config step", one)
	}
	spec := p.Steps[i]
	if spec.Params["host"] == "" {
		return fmt.Errorf("the plan's %s is not over SSH: %v", spec.ID, spec.Params)
	}
	prof, err := profile.Decode([]byte(readText(one)), s.sim.Dir)
	if err != nil {
		return err
	}
	config := s.configs[0]
	original, err := os.ReadFile(config)
	if err != nil {
		return err
	}
	want, _, err := steps.SetMPPParams(original, spec.Params)
	if err != nil {
		return err
	}
	reset := func() error {
		os.Remove(config + steps.OriginalSuffix)
		os.RemoveAll(filepath.Join(s.work, "artifacts"))
		return os.WriteFile(config, original, 0o640)
	}
	check := func(who string) error {
		if got, _ := os.ReadFile(config); !bytes.Equal(got, want) {
			return fmt.Errorf("%s left %s without the new values", who, config)
		}
		return nil
	}
	// The key exchange upgrader's client settles on with this sshd
	// (OpenSSH 9.2 offers ML-KEM to no one; its own client would choose
	// sntrup761x25519, several times the CPU): like for like.
	sshArgs := []string{"-F", "none", "-o", "KexAlgorithms=curve25519-sha256", "-i", filepath.Join(s.sim.Root, s.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + filepath.Join(s.sim.Root, s.known),
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ControlMaster=no", "-o", "ControlPath=none",
		"-p", strconv.Itoa(s.srv.Port), "root@" + s.srv.Hosts[0]}
	reference := func() error {
		get := exec.Command("ssh", append(sshArgs, "cat "+config)...)
		get.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
		data, err := get.Output()
		if err != nil {
			return fmt.Errorf("ssh cat: %v", err)
		}
		out, _, err := steps.SetMPPParams(data, spec.Params)
		if err != nil {
			return err
		}
		put := exec.Command("ssh", append(sshArgs, "cat > "+config+".tmp && mv "+config+".tmp "+config)...)
		put.Env, put.Stdin = get.Env, bytes.NewReader(out)
		if b, err := put.CombinedOutput(); err != nil {
			return fmt.Errorf("ssh cat > tmp && mv: %v: %s", err, b)
		}
		return nil
	}
	os.Setenv("SSH_AUTH_SOCK", "")
	upgrader := func() error {
		h := &steps.Host{Profile: prof, Run: steps.ExecRunner{}, Jobs: filepath.Join(s.work, "jobs"), Artifacts: filepath.Join(s.work, "artifacts")}
		defer func() {
			if h.SSH != nil {
				h.SSH.Close()
			}
		}()
		st, err := h.Build(spec)
		if err != nil {
			return err
		}
		saved := map[string]string{}
		sc := orchestrator.StepContext{RunID: "bench", Spec: spec, Artifacts: map[string]orchestrator.Artifact{}, Saved: saved,
			Save: func(v map[string]string) error { maps.Copy(saved, v); return nil }, Progress: func(string, int64, int64) {}, Log: zerolog.Nop()}
		ctx := context.Background()
		done, err := st.Probe(ctx, sc)
		if err != nil {
			return fmt.Errorf("probe: %v", err)
		}
		if done {
			return fmt.Errorf("probe: the change is already in place before the edit")
		}
		if err := st.Apply(ctx, sc); err != nil {
			return fmt.Errorf("apply: %v", err)
		}
		if _, err := st.Verify(ctx, sc); err != nil {
			return fmt.Errorf("verify: %v", err)
		}
		return nil
	}
	var tu, tr []time.Duration
	for range runs {
		for _, c := range []struct {
			who  string
			fn   func() error
			into *[]time.Duration
		}{{"upgrader's mpp-config step", upgrader, &tu}, {"ssh cat + ssh cat > tmp && mv", reference, &tr}} {
			if err := reset(); err != nil {
				return err
			}
			start := time.Now()
			err := c.fn()
			d := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %v", c.who, err)
			}
			if err := check(c.who); err != nil {
				return err
			}
			*c.into = append(*c.into, d)
		}
	}
	mu, mr := median(tu), median(tr)
	fmt.Printf("\nremote edit of one MPP's mppconfig.xml: upgrader's mpp-config step (probe; backup on the MPP, its own copy, durable replace, read back; verify; new connection) %s; "+
		"ssh cat + ssh 'cat > tmp && mv tmp file' (OpenSSH client, curve25519-sha256, new connection each) %s; ratio %.2fx (target at most 3x; median of %d runs each, taking turns)\n",
		ms(mu), ms(mr), float64(mu)/float64(mr), runs)
	return nil
}

func readText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
