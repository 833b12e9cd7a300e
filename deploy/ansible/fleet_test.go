// Package ansible holds the test of deploy/ansible, the role and sample
// playbook that plan and upgrade a fleet of upgrader hosts.
package ansible

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"upgrader/testdata/testenv"

	"upgrader/testdata/sshd"
)

// host is one simulated POM server: its own root, profile, state
// directory, socket and daemon, reached over the loopback sshd as addr.
type host struct {
	name, addr, dir string
	profile, state  string
	socket, bin     string
}

// build builds a program static, as make build does (without -trimpath:
// the simulated host maker finds its tree by its source path).
func build(t *testing.T, out, pkg string) {
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version=fleet-test", "-o", out, pkg)
	cmd.Dir = testenv.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, res)
	}
}

// daemon starts the host's daemon with the test's build of upgrader, as
// upgrader.service would on a real site, and stops it at the end.
func (h host) daemon(t *testing.T, bin string) {
	if err := os.MkdirAll(filepath.Dir(h.socket), 0o750); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "daemon", "--profile", h.profile, "--state-dir", h.state, "--socket", h.socket)
	log, err := os.Create(filepath.Join(h.dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	for range 600 { // 30 s: several daemons start at once on a loaded machine
		if fi, err := os.Stat(h.socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, _ := os.ReadFile(log.Name())
	t.Fatalf("%s's daemon did not listen on %s:\n%s", h.name, h.socket, data)
}

// status is the host's upgrader status -o json, or "" with no run.
func (h host) status(t *testing.T, bin string) map[string]any {
	out, err := exec.Command(bin, "status", "-o", "json", "--profile", h.profile, "--state-dir", h.state, "--socket", h.socket).Output()
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("%s status -o json: %v\n%s", h.name, err, out)
	}
	return m
}

func (h host) pomVersion(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join(h.dir, "root/opt/Avaya/avpom/POManager/config/version.properties"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`POMVersion=(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s: no POMVersion in version.properties", h.name)
	}
	return string(m[1])
}

// recap is one host's line of the play recap.
type recap struct{ ok, changed, unreachable, failed, skipped int }

var recapLine = regexp.MustCompile(`(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)`)

func recaps(out string) map[string]recap {
	m := map[string]recap{}
	for _, g := range recapLine.FindAllStringSubmatch(out, -1) {
		n := func(i int) int { v, _ := strconv.Atoi(g[i]); return v }
		m[g[1]] = recap{n(2), n(3), n(4), n(5), n(6)}
	}
	return m
}

// TestFleet plays deploy/ansible/fleet.yml against three simulated POM
// hosts over a real sshd on loopback (127.0.0.2-4), each with its own
// profile, state, socket and daemon. pom-c's plan is blocked (its ISO is
// missing). Without answers the fleet stops at pom-a's operator gate and
// pom-b is not started; with answers pom-a is carried on and pom-b
// upgraded, pom-c reported and left alone; a third play changes nothing.
//
// The hosts get the binary, not the package: all three are this machine,
// and one package installed three times over /usr/sbin is one install
// (the package itself is tested in deploy/package).
func TestFleet(t *testing.T) {
	playbook := testenv.NeedTool(t, "ansible-playbook")
	testenv.NeedTool(t, "ssh")
	start := time.Now()
	root := testenv.ModuleRoot(t)
	work := t.TempDir()
	bin := filepath.Join(work, "upgrader")
	build(t, bin, "./cmd/upgrader")
	mksim := filepath.Join(work, "mksim")
	build(t, mksim, "./testdata/simhost/mksim")

	srv, err := sshd.Start(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	known := filepath.Join(work, "known_hosts")
	if err := srv.WriteKnownHosts(known); err != nil {
		t.Fatal(err)
	}

	var hosts []host
	var inv strings.Builder
	fmt.Fprintf(&inv, "upgrader_hosts:\n  vars:\n")
	for k, v := range map[string]string{
		"ansible_user": "root", "ansible_port": strconv.Itoa(srv.Port), "ansible_ssh_private_key_file": srv.UserKey,
		"ansible_ssh_common_args":    "-o UserKnownHostsFile=" + known + " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
		"ansible_python_interpreter": "/usr/bin/python3", "upgrader_install": "binary", "upgrader_binary_src": bin,
		"upgrader_manage_service": "false", "upgrader_poll_interval": "1", "upgrader_run_timeout": "120",
		"upgrader_report_dir": filepath.Join(work, "reports"),
	} {
		fmt.Fprintf(&inv, "    %s: %q\n", k, v)
	}
	fmt.Fprintf(&inv, "  hosts:\n")
	for i, name := range []string{"pom-a", "pom-b", "pom-c"} {
		dir := filepath.Join(work, name)
		mk := exec.Command(mksim, "pom", dir)
		if out, err := mk.CombinedOutput(); err != nil {
			t.Fatalf("mksim: %v\n%s", err, out)
		}
		h := host{name: name, addr: srv.Hosts[i], dir: dir, profile: filepath.Join(dir, "etc/site.yaml"),
			state: filepath.Join(dir, "state"), socket: filepath.Join(dir, "run/upgrader.sock"), bin: filepath.Join(dir, "bin/upgrader")}
		// The controller's copy of the site profile: the simulated root
		// spelled out, as the host's own file would have "/".
		prof, err := os.ReadFile(filepath.Join(dir, "profile.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		prof = []byte(strings.Replace(string(prof), "\nroot: root\n", "\nroot: "+filepath.Join(dir, "root")+"\n", 1))
		src := filepath.Join(work, "profiles", name+".yaml")
		os.MkdirAll(filepath.Dir(src), 0o700)
		if err := os.WriteFile(src, prof, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{filepath.Dir(h.profile), filepath.Dir(h.bin)} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				t.Fatal(err)
			}
		}
		if name == "pom-c" {
			isos, _ := filepath.Glob(filepath.Join(dir, "root/media/*.iso"))
			if len(isos) != 1 {
				t.Fatalf("pom-c: want one ISO in media, found %v", isos)
			}
			os.Remove(isos[0])
		}
		h.daemon(t, bin)
		hosts = append(hosts, h)
		fmt.Fprintf(&inv, "    %s:\n      ansible_host: %s\n      upgrader_profile_src: %q\n      upgrader_profile: %q\n"+
			"      upgrader_state_dir: %q\n      upgrader_socket: %q\n      upgrader_bin: %q\n",
			name, h.addr, src, h.profile, h.state, h.socket, h.bin)
	}
	inventory := filepath.Join(work, "inventory.yml")
	if err := os.WriteFile(inventory, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	answers := filepath.Join(work, "answers.yaml")
	if err := os.WriteFile(answers, []byte("enable-dnc-import: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	from := hosts[0].pomVersion(t)

	// UPGRADER_FLEET_LOGS=DIR keeps each play's output there, with the
	// time of each task.
	callbacks := ""
	if os.Getenv("UPGRADER_FLEET_LOGS") != "" {
		callbacks = "ansible.posix.profile_tasks"
	}
	play := func(extra ...string) (string, map[string]recap, error) {
		args := append([]string{"-i", inventory, filepath.Join(root, "deploy/ansible/fleet.yml")}, extra...)
		cmd := exec.Command(playbook, args...)
		cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_PIPELINING=True", "ANSIBLE_RETRY_FILES_ENABLED=False",
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(work, "ansible-local"), "ANSIBLE_HOME="+filepath.Join(work, "ansible-home"),
			"ANSIBLE_HOST_KEY_CHECKING=True", "HOME="+work, "ANSIBLE_CALLBACKS_ENABLED="+callbacks)
		cmd.Dir = work // no ansible.cfg of the checkout or the user
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("ansible-playbook %s: %v in %s", strings.Join(extra, " "), err, time.Since(t0).Round(time.Millisecond))
		if dir := os.Getenv("UPGRADER_FLEET_LOGS"); dir != "" { // the plays' output, kept for a look
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("play-%d.log", time.Now().UnixNano())), out, 0o644)
		}
		return string(out), recaps(string(out)), err
	}

	// 1. No answers: pom-a runs up to its operator gate and the fleet stops
	// there; pom-b is planned but not started; pom-c is reported blocked.
	out, rc, err := play()
	if err == nil {
		t.Fatalf("play without answers: want the fleet stopped at pom-a's gate, it succeeded:\n%s", out)
	}
	if rc["pom-a"].failed != 1 || !strings.Contains(out, "waits for the operator at enable-dnc-import") {
		t.Fatalf("play without answers: want pom-a stopped at its gate:\n%s", out)
	}
	if st := hosts[0].status(t, bin); st == nil || st["state"] != "waiting-operator" {
		t.Fatalf("pom-a after the first play: %v", st)
	}
	if st := hosts[1].status(t, bin); st != nil {
		t.Fatalf("pom-b was started although the fleet stopped at pom-a: %v", st)
	}
	if !strings.Contains(out, "pom-c is blocked and will not be upgraded") {
		t.Errorf("the play does not report pom-c as blocked:\n%s", out)
	}
	checkReport(t, work, hosts, bin, from)

	// 2. With answers: pom-a carried on, pom-b upgraded, pom-c left alone.
	out, rc, err = play("-e", "upgrader_answers_src="+answers)
	if err != nil {
		t.Fatalf("play with answers: %v\n%s", err, out)
	}
	for _, h := range hosts[:2] {
		if st := h.status(t, bin); st == nil || st["state"] != "completed" {
			t.Errorf("%s after the play with answers: %v", h.name, st)
		}
		if v := h.pomVersion(t); v != "POM.03.01.01.01.00.003" {
			t.Errorf("%s: POM %s after the play, want SP1 POM.03.01.01.01.00.003", h.name, v)
		}
		if rc[h.name].changed == 0 || rc[h.name].failed != 0 {
			t.Errorf("%s: recap %+v, want changes and no failure", h.name, rc[h.name])
		}
	}
	if st := hosts[2].status(t, bin); st != nil {
		t.Errorf("blocked pom-c has a run: %v", st)
	}
	if v := hosts[2].pomVersion(t); v != from {
		t.Errorf("blocked pom-c changed: POM %s", v)
	}
	if rc["pom-c"].changed != 0 || rc["pom-c"].failed != 0 {
		t.Errorf("pom-c: recap %+v, want no change and no failure", rc["pom-c"])
	}

	// 3. Again: nothing changes anywhere.
	out, rc, err = play("-e", "upgrader_answers_src="+answers)
	if err != nil {
		t.Fatalf("second play with answers: %v\n%s", err, out)
	}
	for _, h := range hosts {
		if r, ok := rc[h.name]; !ok || r.changed != 0 || r.failed != 0 {
			t.Errorf("%s: second play recap %+v (found %v), want no change:\n%s", h.name, r, ok, out)
		}
	}
	t.Logf("three plays against three hosts in %s", time.Since(start).Round(time.Millisecond))
}

// checkReport reads the fleet report: every host with its plan's
// procedure, from → to, blockers, warnings and fingerprint.
func checkReport(t *testing.T, work string, hosts []host, bin, from string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(work, "reports/fleet-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Host, Procedure, From, To, Fingerprint string
		Blockers, Warnings                     []string
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		t.Fatalf("fleet-report.json: %v\n%s", err, data)
	}
	if len(rows) != len(hosts) {
		t.Fatalf("fleet report has %d hosts, want %d:\n%s", len(rows), len(hosts), data)
	}
	for i, h := range hosts {
		r := rows[i]
		out, _ := exec.Command(bin, "plan", "-o", "json", "--profile", h.profile, "--state-dir", h.state, "--socket", h.socket).Output()
		var p struct{ Fingerprint string }
		json.Unmarshal(out, &p)
		if r.Host != h.name || r.Procedure != "pom-3.1.1-sp1-upgrade" || r.From != from || r.To != "POM.03.01.01.01.00.003" ||
			r.Fingerprint == "" || (h.name != "pom-a" && r.Fingerprint != p.Fingerprint) || len(r.Warnings) == 0 {
			t.Errorf("fleet report row %d: %+v (plan's fingerprint %s)", i, r, p.Fingerprint)
		}
		if blocked := len(r.Blockers) > 0; blocked != (h.name == "pom-c") {
			t.Errorf("%s: blockers %v", h.name, r.Blockers)
		}
	}
	if rows[2].Blockers[0] != "media-missing" {
		t.Errorf("pom-c's blockers: %v, want media-missing", rows[2].Blockers)
	}
	md, err := os.ReadFile(filepath.Join(work, "reports/fleet-report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| pom-a | sim-pom-01 | pom-3.1.1-sp1-upgrade | " + from + " → POM.03.01.01.01.00.003 | none |", "## pom-c: blocked", "- media-missing: "} {
		if !strings.Contains(string(md), want) {
			t.Errorf("fleet-report.md has no %q:\n%s", want, md)
		}
	}
}

// TestLint runs ansible-lint (Debian's) on the playbook and the role, and
// checks the sample inventory with the playbook.
func TestLint(t *testing.T) {
	lint := testenv.NeedTool(t, "ansible-lint")
	check := exec.Command(testenv.NeedTool(t, "ansible-playbook"), "--syntax-check", "-i", "inventory.example.yml", "fleet.yml")
	check.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", check, err, out)
	}
	cmd := exec.Command(lint, "--offline", "--nocolor", "fleet.yml", "roles/upgrader")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "ANSIBLE_LOCAL_TEMP="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-lint: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
