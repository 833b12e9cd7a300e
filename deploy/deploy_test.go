package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"upgrader/testdata/testenv"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// The daemon's command line and directories: the unit, the tmpfiles entry
// and the Makefile must agree on them.
const (
	binPath     = "/usr/local/sbin/upgrader"
	stateDir    = "/var/lib/upgrader"
	runtimeDir  = "/run/upgrader"
	socketPath  = runtimeDir + "/upgrader.sock"
	profilePath = "/etc/upgrader/site.yaml"
	execStart   = binPath + " daemon --state-dir " + stateDir + " --socket " + socketPath + " --profile " + profilePath
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unit is a parsed unit file: section → key → every value, in order.
type unit map[string]map[string][]string

// parseUnit reads the systemd unit syntax this package uses: [sections],
// key=value lines, # and ; comments, backslash continuations.
func parseUnit(t testing.TB, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("unit line %d: %q is not key=value inside a [section]", n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is a key's effective value (systemd: the last assignment wins).
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// list is a list-valued key (After=, Wants=) split into its items.
func (u unit) list(section, key string) []string {
	var out []string
	for _, v := range u[section][key] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

func TestUnitKeys(t *testing.T) {
	u := parseUnit(t, readFile(t, "upgrader.service"))
	for _, c := range []struct{ section, key, want string }{
		{"Service", "Type", "notify"},
		{"Service", "ExecStart", execStart},
		{"Service", "StateDirectory", "upgrader"},
		{"Service", "StateDirectoryMode", "0700"},
		{"Service", "RuntimeDirectory", "upgrader"},
		{"Service", "RuntimeDirectoryMode", "0750"},
		{"Service", "RuntimeDirectoryPreserve", "no"},
		{"Service", "Restart", "on-failure"},
		{"Service", "RestartSec", "5s"},
		{"Service", "TimeoutStopSec", "5min"},
		{"Service", "KillMode", "process"},
		{"Service", "NoNewPrivileges", "no"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		t.Run(c.section+"/"+c.key, func(t *testing.T) {
			got, ok := u.last(c.section, c.key)
			if !ok {
				t.Fatalf("[%s] has no %s=; want %s=%s", c.section, c.key, c.key, c.want)
			}
			if got != c.want {
				t.Errorf("[%s] %s=%s, want %s", c.section, c.key, got, c.want)
			}
		})
	}
	for _, c := range []struct{ section, key, want string }{
		{"Unit", "Wants", "network-online.target"},
		{"Unit", "After", "network-online.target"},
		{"Unit", "After", "postgresql.service"},
	} {
		if !slices.Contains(u.list(c.section, c.key), c.want) {
			t.Errorf("[%s] %s= does not name %s: %v", c.section, c.key, c.want, u[c.section][c.key])
		}
	}
	// PostgreSQL orders the stop but is never pulled in: a PC server has none.
	for _, key := range []string{"Wants", "Requires", "BindsTo", "Requisite"} {
		if slices.Contains(u.list("Unit", key), "postgresql.service") {
			t.Errorf("[Unit] %s= names postgresql.service: a PC server has no PostgreSQL; order with After= only", key)
		}
	}
	for _, key := range []string{"Description", "Documentation"} {
		if v, _ := u.last("Unit", key); v == "" {
			t.Errorf("[Unit] %s= is missing", key)
		}
	}
	// Sandboxing that breaks vendor installers (see the comments in the
	// unit): writing /opt and /usr, loop devices, setuid files, 32-bit tools,
	// a shared /tmp, an installer outliving the daemon.
	for _, key := range []string{
		"ProtectSystem", "ProtectHome", "ReadOnlyPaths", "PrivateTmp", "PrivateDevices", "DevicePolicy",
		"ProtectClock", "ProtectKernelTunables", "ProtectKernelModules", "RestrictSUIDSGID",
		"CapabilityBoundingSet", "MemoryDenyWriteExecute", "SystemCallArchitectures", "LockPersonality",
		"ProtectProc", "PrivateNetwork", "IPAddressDeny", "DynamicUser", "OOMScoreAdjust",
	} {
		if v, ok := u.last("Service", key); ok {
			t.Errorf("[Service] %s=%s would break a vendor installer run by the daemon; see the unit's comments", key, v)
		}
	}
	if v, ok := u.last("Service", "User"); ok && v != "root" {
		t.Errorf("[Service] User=%s: installers need root", v)
	}
}

// TestUnitVerifies runs systemd's own checker on the unit. It insists that
// ExecStart's binary exists, so a copy points at this test binary instead
// of /usr/local/sbin/upgrader; everything else is the shipped file.
func TestUnitVerifies(t *testing.T) {
	analyze := testenv.NeedTool(t, "systemd-analyze")
	data := readFile(t, "upgrader.service")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	replaced := 0
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="+binPath+" "); ok {
			line = "ExecStart=" + self + " " + rest
			replaced++
		}
		out = append(out, line)
	}
	if replaced != 1 {
		t.Fatalf("want one ExecStart=%s line in the unit, found %d", binPath, replaced)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "upgrader.service")
	if err := os.WriteFile(file, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// --man=no: the Documentation= is a file, not a man page to look up.
	// --recursive-errors=no (systemd >= 250): judge this unit, not the
	// host's units it refers to.
	cmd := exec.Command(analyze, "verify", "--man=no", "--recursive-errors=no", file)
	res, err := cmd.CombinedOutput()
	t.Logf("%s\n%s", cmd, orNone(res))
	if err != nil {
		t.Fatalf("systemd-analyze verify failed (%v):\n%s", err, res)
	}
	// Exit 0 with a complaint about the unit itself is still a defect.
	for _, l := range strings.Split(string(res), "\n") {
		if strings.Contains(l, "upgrader.service") {
			t.Errorf("systemd-analyze verify complains about the unit: %s", l)
		}
	}
}

func orNone(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return "(no output)"
	}
	return string(b)
}

func TestTmpfiles(t *testing.T) {
	data := readFile(t, "upgrader.tmpfiles")
	var got []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && l[0] != '#' {
			got = append(got, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{"d " + runtimeDir + " 0750 root root -", "d " + stateDir + " 0700 root root -"}
	if !slices.Equal(got, want) {
		t.Fatalf("tmpfiles entries:\n got %q\nwant %q", got, want)
	}

	// systemd-tmpfiles itself creates them under a scratch root. Not as
	// root, it cannot chown to root: the owners are checked above.
	tmpfiles := testenv.NeedTool(t, "systemd-tmpfiles")
	conf := filepath.Join(t.TempDir(), "upgrader.conf")
	if os.Geteuid() != 0 {
		data = bytes.ReplaceAll(data, []byte(" root root "), []byte(" - - "))
	}
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	cmd := exec.Command(tmpfiles, "--root="+root, "--create", conf)
	if res, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(res)) > 0 {
		t.Fatalf("%s: %v\n%s", cmd, err, res)
	}
	for dir, mode := range map[string]fs.FileMode{runtimeDir: 0o750, stateDir: 0o700} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want a directory %v", dir, fi.Mode(), mode)
		}
	}
}

// The unit's ExecStart and directories agree with the tmpfiles entries.
func TestUnitAgreesWithTmpfiles(t *testing.T) {
	u := parseUnit(t, readFile(t, "upgrader.service"))
	for key, dir := range map[string]string{"StateDirectory": stateDir, "RuntimeDirectory": runtimeDir} {
		v, _ := u.last("Service", key)
		base := "/var/lib/"
		if key == "RuntimeDirectory" {
			base = "/run/"
		}
		if base+v != dir {
			t.Errorf("%s=%s is %s%s, the daemon is told %s", key, v, base, v, dir)
		}
	}
	if path.Dir(socketPath) != runtimeDir {
		t.Errorf("socket %s is not in the runtime directory %s", socketPath, runtimeDir)
	}
}

type entry struct {
	mode fs.FileMode
	sum  string // content hash; "" for directories and the binary
}

// snapshot lists every file and directory under root.
func snapshot(t testing.TB, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e := entry{mode: fi.Mode()}
		// The binary is rebuilt by each install: sources edited meanwhile
		// would change it; its presence and mode are what install owns.
		if fi.Mode().IsRegular() && "/"+rel != binPath {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			e.sum = hex.EncodeToString(s[:])
		}
		out["/"+rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// makeEnv is the environment without a calling make's settings: run from
// `make test`, MAKEFLAGS would carry its command-line variables and
// jobserver into the sub-make.
func makeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "BIN":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func TestMakeInstall(t *testing.T) {
	mk := testenv.NeedTool(t, "make")
	testenv.NeedTool(t, "install")
	root := testenv.ModuleRoot(t)
	dest := t.TempDir()
	// The binary is built outside the checkout: the test leaves bin/ alone.
	bin := filepath.Join(t.TempDir(), "upgrader")
	run := func(target string) string {
		t.Helper()
		cmd := exec.Command(mk, "--no-print-directory", target, "DESTDIR="+dest, "BIN="+bin)
		cmd.Dir = root
		cmd.Env = makeEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s DESTDIR=%s: %v\n%s", target, dest, err, out)
		}
		return string(out)
	}

	out := run("install")
	if !strings.Contains(out, "systemctl daemon-reload") {
		t.Errorf("install with DESTDIR must say to run systemctl daemon-reload on the server; said:\n%s", out)
	}
	installed := []struct {
		path, src string
		mode      fs.FileMode
	}{
		{binPath, "", 0o755},
		{"/etc/systemd/system/upgrader.service", "deploy/upgrader.service", 0o644},
		{"/usr/lib/tmpfiles.d/upgrader.conf", "deploy/upgrader.tmpfiles", 0o644},
		{"/etc/upgrader/site.yaml.example", "deploy/site.yaml.example", 0o644},
		{"/etc/upgrader/site-pc.yaml.example", "deploy/site-pc.yaml.example", 0o644},
		{"/usr/local/share/doc/upgrader/README.md", "README.md", 0o644},
	}
	check := func() {
		t.Helper()
		for _, f := range installed {
			fi, err := os.Stat(filepath.Join(dest, f.path))
			if err != nil {
				t.Errorf("not installed: %v", err)
				continue
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.mode {
				t.Errorf("%s: mode %v, want a regular file %v", f.path, fi.Mode(), f.mode)
			}
			if f.src != "" && !bytes.Equal(readFile(t, filepath.Join(dest, f.path)), readFile(t, filepath.Join(root, f.src))) {
				t.Errorf("%s differs from %s", f.path, f.src)
			}
			if f.src == "" && fi.Size() == 0 {
				t.Errorf("%s is empty", f.path)
			}
		}
		if fi, err := os.Stat(filepath.Join(dest, "/etc/upgrader")); err != nil {
			t.Error(err)
		} else if !fi.IsDir() || fi.Mode().Perm() != 0o750 {
			t.Errorf("/etc/upgrader: %v, want a directory 0750", fi.Mode())
		}
	}
	check()

	// The unit's references resolve in what install laid out.
	u := parseUnit(t, readFile(t, filepath.Join(dest, "/etc/systemd/system/upgrader.service")))
	doc, _ := u.last("Unit", "Documentation")
	if p, ok := strings.CutPrefix(doc, "file:"); ok {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("Documentation=%s is not installed: %v", doc, err)
		}
	}
	es, _ := u.last("Service", "ExecStart")
	if fi, err := os.Stat(filepath.Join(dest, strings.Fields(es)[0])); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("ExecStart=%s: the binary is not installed there as an executable (%v)", es, err)
	}

	// Install again over the site's own profile and a drifted directory
	// mode: same files, site.yaml untouched, the mode put back.
	first := snapshot(t, dest)
	site := filepath.Join(dest, profilePath)
	siteData := []byte("# the site's own profile\nsite: acme-pom-01\n")
	if err := os.WriteFile(site, siteData, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dest, "/etc/upgrader"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("install")
	check()
	if got := readFile(t, site); !bytes.Equal(got, siteData) {
		t.Errorf("install overwrote %s:\n%s", profilePath, got)
	}
	if fi, _ := os.Stat(site); fi.Mode().Perm() != 0o600 {
		t.Errorf("install changed %s's mode to %v", profilePath, fi.Mode())
	}
	second := snapshot(t, dest)
	delete(second, profilePath)
	for p, e := range first {
		if second[p] != e {
			t.Errorf("second install changed %s: %+v, then %+v", p, e, second[p])
		}
	}
	for p := range second {
		if _, ok := first[p]; !ok {
			t.Errorf("second install added %s", p)
		}
	}

	// Uninstall removes what install put there, keeps the site's profile
	// and the state (the record of every run), and can run twice.
	state := filepath.Join(dest, stateDir, "upgrader.db")
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("runs"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("uninstall")
	run("uninstall")
	for _, f := range installed {
		if _, err := os.Lstat(filepath.Join(dest, f.path)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("uninstall left %s (%v)", f.path, err)
		}
	}
	for _, keep := range []string{site, state} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("uninstall removed %s: %v", keep, err)
		}
	}
}

// The sample profiles decode with the daemon's own strict decoder, as they
// will once copied to /etc/upgrader/site.yaml.
func TestExampleProfilesDecode(t *testing.T) {
	for _, c := range []struct {
		file, procedure string
		check           func(t *testing.T, p profile.Profile)
	}{
		{"site.yaml.example", "pom-3.1.1-sp1-upgrade", func(t *testing.T, p profile.Profile) {
			if p.ServiceManager != "service" || p.DB.Kind != "postgres" || p.DB.PasswordFile != "/etc/upgrader/pgpass" ||
				p.Media.Dir == "" || p.Media.ISO == "" || len(p.MPPs) != 2 || len(p.POM.Installer) == 0 {
				t.Errorf("the POM sample should show service_manager, db with password_file, media and two MPPs: %+v", p)
			}
		}},
		{"site-pc.yaml.example", "pc-4.1.2-upgrade", func(t *testing.T, p profile.Profile) {
			for _, name := range profile.PCProducts {
				if _, ok := p.PC.Products[name]; !ok {
					t.Errorf("pc.products.%s missing", name)
				}
			}
			if p.PC.Home == "" || len(p.PC.Installers) == 0 || len(p.PC.Backup) == 0 || len(p.PC.Restore) == 0 {
				t.Errorf("the PC sample should show home, installers, backup and restore: %+v", p.PC)
			}
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			p, err := profile.Decode(readFile(t, c.file), "/etc/upgrader")
			if err != nil {
				t.Fatalf("%s does not decode: %v", c.file, err)
			}
			if p.Root != "/" {
				t.Errorf("root %q: a real server's is /", p.Root)
			}
			if p.Procedure != c.procedure {
				t.Errorf("procedure %q, want %q", p.Procedure, c.procedure)
			}
			if _, err := orchestrator.LookupProcedure(p.Procedure); err != nil {
				t.Error(err)
			}
			c.check(t, p)
		})
	}
}
