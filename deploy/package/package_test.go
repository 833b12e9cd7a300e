package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"upgrader/testdata/testenv"
)

// The tests install the .deb into a scratch root (dpkg --root with
// --force-script-chrootless: the maintainer scripts run for real, on that
// root through DPKG_ROOT), not onto this machine: other test binaries run
// beside this one, dpkg's lock is shared with apt, and a test that dies
// half-way must not leave a package installed on the machine CI runs on.

// makeEnv drops a calling make's settings (see deploy/deploy_test.go).
func makeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "BIN", "DIST", "PKGVERSION":
			continue
		}
		env = append(env, kv)
	}
	return env
}

var (
	pkgOnce        sync.Once
	pkgDir         string
	debFile        string
	rpmFile        string
	pkgErr, pkgOut string
)

// packages runs `make package` once for the test binary, outside the
// checkout (bin/ and dist/ are left alone).
func packages(t *testing.T) (deb, rpm string) {
	t.Helper()
	pkgOnce.Do(func() {
		mk, err := exec.LookPath("make")
		if err != nil {
			pkgErr = err.Error()
			return
		}
		pkgDir, err = os.MkdirTemp("", "upgrader-pkgtest-")
		if err != nil {
			pkgErr = err.Error()
			return
		}
		cmd := exec.Command(mk, "--no-print-directory", "package", "BIN="+filepath.Join(pkgDir, "upgrader"),
			"DIST="+filepath.Join(pkgDir, "dist"), "PKGVERSION=1.2")
		cmd.Dir = testenv.ModuleRoot(t)
		cmd.Env = makeEnv()
		out, err := cmd.CombinedOutput()
		pkgOut = string(out)
		if err != nil {
			pkgErr = "make package: " + err.Error()
			return
		}
		debFile = filepath.Join(pkgDir, "dist", "upgrader_1.2-1_amd64.deb")
		rpmFile = filepath.Join(pkgDir, "dist", "upgrader-1.2-1.x86_64.rpm")
	})
	if pkgErr != "" {
		t.Fatalf("%s\n%s", pkgErr, pkgOut)
	}
	return debFile, rpmFile
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pkgDir != "" {
		os.RemoveAll(pkgDir)
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// shipped is every file a package holds: path → mode, and the source whose
// bytes it must carry ("" when generated).
type shippedFile struct {
	mode fs.FileMode
	src  string
}

func shipped(t *testing.T, zshDir string) map[string]shippedFile {
	m := map[string]shippedFile{
		pkgBin:                               {0o755, ""},
		pkgUnit:                              {0o644, ""},
		"/usr/lib/tmpfiles.d/upgrader.conf":  {0o644, "deploy/upgrader.tmpfiles"},
		"/etc/upgrader/site.yaml.example":    {0o644, "deploy/site.yaml.example"},
		"/etc/upgrader/site-pc.yaml.example": {0o644, "deploy/site-pc.yaml.example"},
		pkgDocDir + "/README.md":             {0o644, "README.md"},
		"/usr/share/bash-completion/completions/upgrader": {0o644, ""},
		zshDir + "/_upgrader":                             {0o644, ""},
	}
	// One man page per command operators type, and the root's.
	for _, c := range []string{"", "-abort", "-bundle", "-confirm", "-daemon", "-export", "-history", "-import", "-journal",
		"-lifecycle", "-plan", "-procedures", "-restore-state", "-resume", "-retry", "-run", "-skip", "-status",
		"-verify-backup", "-verify-media", "-watch"} {
		m["/usr/share/man/man8/upgrader"+c+".8.gz"] = shippedFile{0o644, ""}
	}
	return m
}

func TestPackagedUnit(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "deploy/upgrader.service"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := packagedUnit(src)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("/usr/local/")) {
		t.Errorf("the packaged unit still names /usr/local:\n%s", got)
	}
	for _, want := range []string{"\nExecStart=" + pkgBin + " daemon ", "\nDocumentation=file:" + pkgDocDir + "/README.md\n"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("the packaged unit has no %q", want)
		}
	}
	// Only the paths change: every other line is the shipped unit's.
	a, b := strings.Split(string(src), "\n"), strings.Split(string(got), "\n")
	if len(a) != len(b) {
		t.Fatalf("line count %d, want %d", len(b), len(a))
	}
	// A unit whose ExecStart moved elsewhere is refused, not shipped as is.
	if _, err := packagedUnit(bytes.ReplaceAll(src, []byte("ExecStart=/usr/local/sbin/upgrader"), []byte("ExecStart=/opt/upgrader"))); err == nil {
		t.Error("a unit without ExecStart=/usr/local/sbin/upgrader was accepted")
	}
}

// dpkgRoot is an empty system root with a dpkg database.
func dpkgRoot(t *testing.T) string {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// dpkg runs dpkg on root; the maintainer scripts run here with DPKG_ROOT.
func dpkg(root string, args ...string) (string, error) {
	cmd := exec.Command("dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-not-root"}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestDebInstall(t *testing.T) {
	testenv.NeedTool(t, "dpkg")
	analyze := testenv.NeedTool(t, "systemd-analyze")
	deb, _ := packages(t)
	srcRoot := testenv.ModuleRoot(t)
	root := dpkgRoot(t)
	if out, err := dpkg(root, "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}

	// Every file the package holds, with its mode and bytes; nothing else.
	want := shipped(t, "/usr/share/zsh/vendor-completions")
	listed := run(t, "dpkg", "--root="+root, "-L", "upgrader")
	var got []string
	for _, p := range strings.Split(strings.TrimSpace(listed), "\n") {
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && !fi.IsDir() {
			got = append(got, p)
		}
	}
	var wantPaths []string
	for p := range want {
		wantPaths = append(wantPaths, p)
	}
	slices.Sort(got)
	slices.Sort(wantPaths)
	if !slices.Equal(got, wantPaths) {
		t.Errorf("files installed:\n got %q\nwant %q", got, wantPaths)
	}
	for p, f := range want {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.mode || fi.Size() == 0 {
			t.Errorf("%s: %v size %d, want a non-empty regular file %v", p, fi.Mode(), fi.Size(), f.mode)
		}
		data, _ := os.ReadFile(filepath.Join(root, p))
		if f.src != "" {
			if src, _ := os.ReadFile(filepath.Join(srcRoot, f.src)); !bytes.Equal(data, src) {
				t.Errorf("%s differs from %s", p, f.src)
			}
		}
		if strings.HasSuffix(p, ".8.gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			page, err := io.ReadAll(zr)
			name := strings.TrimSuffix(filepath.Base(p), ".8.gz")
			if err != nil || !bytes.Contains(page, []byte(".TH \"UPGRADER\" \"8\"")) || !bytes.Contains(page, []byte(name)) {
				t.Errorf("%s is not the man page of %s (%v):\n%.300s", p, name, err, page)
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "etc/upgrader")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("/etc/upgrader: %v, want a directory 0750 (%v)", fi.Mode(), err)
	}
	// The completions come from the binary's own command tree.
	for p, words := range map[string][]string{
		"/usr/share/bash-completion/completions/upgrader": {"complete -o default -F __start_upgrader upgrader", "__complete"},
		"/usr/share/zsh/vendor-completions/_upgrader":     {"#compdef upgrader", "__complete"},
	} {
		data, _ := os.ReadFile(filepath.Join(root, p))
		for _, w := range words {
			if !bytes.Contains(data, []byte(w)) {
				t.Errorf("%s has no %q", p, w)
			}
		}
	}
	// The binary completes its own commands (what the scripts above call).
	if out := run(t, filepath.Join(root, pkgBin), "__complete", "re"); !strings.Contains(out, "resume") || !strings.Contains(out, "retry") {
		t.Errorf("upgrader __complete re: %s", out)
	}

	// The unit as installed: /usr/sbin and /usr/share/doc, verified by
	// systemd against this root (it checks ExecStart's binary is there).
	unit, _ := os.ReadFile(filepath.Join(root, pkgUnit))
	src, _ := os.ReadFile(filepath.Join(srcRoot, "deploy/upgrader.service"))
	if wantUnit, _ := packagedUnit(src); !bytes.Equal(unit, wantUnit) {
		t.Errorf("installed unit differs from deploy/upgrader.service rewritten for the package")
	}
	cmd := exec.Command(analyze, "verify", "--root="+root, "--man=no", "--recursive-errors=no", "upgrader.service")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Contains(string(out), "upgrader.service") {
		t.Errorf("%s: %v\n%s", cmd, err, out)
	}
	if out := run(t, filepath.Join(root, pkgBin), "--version"); !strings.HasPrefix(out, "upgrader version ") {
		t.Errorf("upgrader --version: %q", out)
	}
	// postinst made the directories as tmpfiles says.
	for d, mode := range map[string]fs.FileMode{"var/lib/upgrader": 0o700, "run/upgrader": 0o750} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() || fi.Mode().Perm() != mode {
			t.Errorf("/%s after install: %v (%v), want a directory %v", d, fi, err, mode)
		}
	}

	// The sample profiles are conffiles: the site's edit survives a
	// reinstall of the package.
	status := run(t, "dpkg", "--root="+root, "-s", "upgrader")
	for _, p := range []string{"/etc/upgrader/site.yaml.example", "/etc/upgrader/site-pc.yaml.example"} {
		if !strings.Contains(status, "\n "+p+" ") {
			t.Errorf("%s is not a conffile:\n%s", p, status)
		}
	}
	edited := filepath.Join(root, "etc/upgrader/site.yaml.example")
	mine := []byte("# the site's own notes\nsite: acme-pom-01\n")
	if err := os.WriteFile(edited, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := dpkg(root, "--force-confold", "-i", deb); err != nil {
		t.Fatalf("dpkg -i again: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(edited); !bytes.Equal(got, mine) {
		t.Errorf("reinstalling the package replaced the site's edited sample profile:\n%s", got)
	}
}

// simPOM makes a simulated POM host (testdata/simhost) in dir and returns
// its profile.
func simPOM(t *testing.T, dir string) string {
	cmd := exec.Command("go", "run", "./testdata/simhost/mksim", "pom", dir)
	cmd.Dir = testenv.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksim: %v\n%s", err, out)
	}
	return filepath.Join(dir, "profile.yaml")
}

// TestDebRemoveKeepsRuns: a run in flight refuses the removal; a finished
// run's record survives remove and purge; an empty state directory goes
// with a purge.
func TestDebRemoveKeepsRuns(t *testing.T) {
	testenv.NeedTool(t, "dpkg")
	deb, _ := packages(t)
	root := dpkgRoot(t)
	if out, err := dpkg(root, "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	bin := filepath.Join(root, pkgBin)
	state := filepath.Join(root, "var/lib/upgrader")
	profile := simPOM(t, t.TempDir())
	up := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--profile", profile, "--state-dir", state, "--socket", filepath.Join(root, "run/upgrader/upgrader.sock"))...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// The run stops at the POM upgrade's operator gate: in flight.
	if out, err := up("run", "--expect-fingerprint", fingerprint(t, up)); exitCode(err) != 5 {
		t.Fatalf("run: want exit 5 (paused at a gate), got %v\n%s", err, out)
	}
	out, err := dpkg(root, "--remove", "upgrader")
	if err == nil || !strings.Contains(out, "waiting-operator") || !strings.Contains(out, "Nothing was removed") {
		t.Fatalf("dpkg --remove with a run in flight: want it refused, saying why; got %v\n%s", err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the refused removal removed the binary: %v", err)
	}
	answers := filepath.Join(t.TempDir(), "answers.yaml")
	if err := os.WriteFile(answers, []byte("enable-dnc-import: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := up("resume", "--answers", answers); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	before, err := up("status", "-o", "json")
	if err != nil || !strings.Contains(before, `"state": "completed"`) {
		t.Fatalf("status: %v\n%s", err, before)
	}
	for _, step := range []string{"--remove", "--purge"} {
		out, err := dpkg(root, step, "upgrader")
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", step, err, out)
		}
		if !strings.Contains(out, "kept "+state) {
			t.Errorf("dpkg %s did not say the state directory was kept:\n%s", step, out)
		}
	}
	if _, err := os.Stat(bin); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("purge left %s (%v)", bin, err)
	}
	// The record reads the same with the package gone (the test's own
	// build of the same binary reads it).
	bin = filepath.Join(pkgDir, "upgrader")
	after, err := up("status", "-o", "json")
	if err != nil || after != before {
		t.Errorf("the run's record changed across remove and purge (%v):\nbefore %s\nafter %s", err, before, after)
	}

	// With no run ever made, purge takes the empty state directory too.
	empty := dpkgRoot(t)
	if out, err := dpkg(empty, "-i", deb); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	if out, err := dpkg(empty, "--purge", "upgrader"); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(empty, "var/lib/upgrader")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("purge kept an empty state directory (%v)", err)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// fingerprint is the short fingerprint of the host's plan.
func fingerprint(t *testing.T, up func(...string) (string, error)) string {
	out, err := up("plan", "-o", "json")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(out, `"fingerprint": "sha256:`)
	if !ok || len(rest) < 16 {
		t.Fatalf("plan has no fingerprint:\n%s", out)
	}
	return rest[:16]
}

// TestRPM queries the .rpm with rpm itself: its files and modes, the
// sample profiles as %config(noreplace) and nothing else as config, the
// scriptlets; then runs its %preun as rpm would (0: erase, 1: upgrade) on
// a root holding a run in flight.
func TestRPM(t *testing.T) {
	rpmTool := testenv.NeedTool(t, "rpm")
	_, rpm := packages(t)
	q := func(format string) string { return run(t, rpmTool, "-qp", "--qf", format, rpm) }
	if got := q("%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{OS}"); got != "upgrader 1.2 1 x86_64 linux" {
		t.Errorf("rpm header: %q", got)
	}
	want := shipped(t, "/usr/share/zsh/site-functions")
	lines := strings.Split(strings.TrimSpace(q("[%{FILEMODES:perms} %{FILEFLAGS:fflags} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\n]")), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 { // no flags
			f = []string{f[0], "", f[1], f[2]}
		}
		if len(f) != 4 {
			t.Errorf("rpm file line %q", l)
			continue
		}
		perms, flags, owner, p := f[0], f[1], f[2], f[3]
		if owner != "root:root" {
			t.Errorf("%s owned by %s", p, owner)
		}
		if p == "/etc/upgrader" {
			if perms != "drwxr-x---" {
				t.Errorf("/etc/upgrader: %s, want drwxr-x---", perms)
			}
			continue
		}
		w, ok := want[p]
		if !ok {
			t.Errorf("unexpected file in the rpm: %s", l)
			continue
		}
		seen[p] = true
		if wantPerms := "-" + w.mode.Perm().String()[1:]; perms != wantPerms {
			t.Errorf("%s: %s, want %s", p, perms, wantPerms)
		}
		wantFlags := ""
		if strings.HasSuffix(p, ".yaml.example") {
			wantFlags = "cn" // %config(noreplace)
		}
		if flags != wantFlags {
			t.Errorf("%s: flags %q, want %q", p, flags, wantFlags)
		}
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("the rpm lacks %s", p)
		}
	}
	if got := q("[%{CONFIGFLAGS}]"); got == "" {
		t.Error("no config flags")
	}

	// The scriptlets are the maintainer scripts beside this file.
	srcRoot := testenv.ModuleRoot(t)
	for tag, file := range map[string]string{"POSTIN": "postinstall.sh", "PREUN": "preremove.sh", "POSTUN": "postremove.sh"} {
		got := q("%{" + tag + "}")
		src, _ := os.ReadFile(filepath.Join(srcRoot, "deploy/package", file))
		if strings.TrimSpace(got) != strings.TrimSpace(string(src)) {
			t.Errorf("%%%s is not %s:\n%s", strings.ToLower(tag), file, got)
		}
		if prog := q("%{" + tag + "PROG}"); prog != "/bin/sh" {
			t.Errorf("%%%s runs with %q, want /bin/sh", strings.ToLower(tag), prog)
		}
	}
	for _, tag := range []string{"PREIN", "POSTTRANS", "PRETRANS"} {
		if got := q("%{" + tag + "}"); got != "(none)" {
			t.Errorf("unexpected %%%s scriptlet: %s", strings.ToLower(tag), got)
		}
	}

	// %preun with rpm's arguments, on a root whose state holds a run in
	// flight: refused for an erase (0), let through for an upgrade (1).
	root := t.TempDir()
	bin := filepath.Join(root, pkgBin)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(pkgDir, "upgrader"), bin); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "var/lib/upgrader")
	profile := simPOM(t, t.TempDir())
	up := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append(args, "--profile", profile, "--state-dir", state, "--socket", filepath.Join(root, "run/upgrader/upgrader.sock"))...).CombinedOutput()
		return string(out), err
	}
	if out, err := up("run", "--expect-fingerprint", fingerprint(t, up)); exitCode(err) != 5 {
		t.Fatalf("run: want exit 5 (paused at a gate), got %v\n%s", err, out)
	}
	preun := q("%{PREUN}")
	for arg, refused := range map[string]bool{"0": true, "1": false} {
		cmd := exec.Command("/bin/sh", "-c", preun, "preun", arg)
		// DPKG_ROOT stands for rpm --root's chroot.
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root)
		out, err := cmd.CombinedOutput()
		if refused != (err != nil) {
			t.Errorf("%%preun %s with a run in flight: refused=%v, want %v\n%s", arg, err != nil, refused, out)
		}
	}
}
