package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/steps/job"
	"upgrader/testdata/simhost"
)

// newHostSim copies the named simulated host into a temporary directory,
// makes its fake tools fast and returns a Host that drives it with
// ExecRunner.
func newHostSim(tb testing.TB, name string) simEnv {
	tb.Helper()
	sim, err := simhost.SetupHost(name, tb.TempDir())
	if err != nil {
		tb.Fatalf("simhost.SetupHost(%s): %v", name, err)
	}
	data, err := os.ReadFile(sim.Profile)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := profile.Decode(data, sim.Dir)
	if err != nil {
		tb.Fatalf("profile.Decode(%s): %v", name, err)
	}
	if p.Root != sim.Root {
		tb.Fatalf("profile root %s, want the sim root %s", p.Root, sim.Root)
	}
	env := simEnv{sim: sim, host: &Host{Profile: p, Run: ExecRunner{}, Jobs: jobsDir(tb)}}
	env.control(tb, "delay", "0.01")
	return env
}

// withProfile decodes a variant of the sim's profile (written next to the
// original, so its relative root is the same) and makes it the host's.
func (e simEnv) withProfile(tb testing.TB, yaml string) {
	tb.Helper()
	path := filepath.Join(e.sim.Dir, "variant.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	p, err := profile.Decode([]byte(yaml), e.sim.Dir)
	if err != nil {
		tb.Fatalf("profile.Decode(variant): %v", err)
	}
	e.host.Profile = p
}

// profileText returns the sim's profile as shipped.
func (e simEnv) profileText(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(e.sim.Profile)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// writeScript writes an executable script under the sim root.
func (e simEnv) writeScript(tb testing.TB, hostPath, body string) {
	tb.Helper()
	p := e.path(hostPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		tb.Fatal(err)
	}
}

// operator runs the sim's operator tool, as a human at a gate would.
func (e simEnv) operator(tb testing.TB, args ...string) {
	tb.Helper()
	argv := append([]string{e.path("sim/bin/operator")}, args...)
	if err := (ExecRunner{}).Run(context.Background(), argv, nil, nil); err != nil {
		tb.Fatalf("operator %s: %v", strings.Join(args, " "), err)
	}
}

// mustVersion reads a product's version and fails the test on an error.
func mustVersion(tb testing.TB, h *Host, product string) string {
	tb.Helper()
	v, err := h.ProductVersion(context.Background(), product)
	if err != nil {
		tb.Fatalf("ProductVersion(%s): %v", product, err)
	}
	return v.String()
}

// pcInstallSpec is a PC vendor installer step as orchestrator/pc.go plans it.
func pcInstallSpec(id, product, target string) orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: id, Kind: orchestrator.KindAuto, Action: "vendor-install", Skip: orchestrator.SkipNever,
		Downtime: true, Params: map[string]string{"product": product, "target": target, "installer": id}}
}

// linuxESGateSpec is the Linux ES operator gate as orchestrator/pc.go plans it.
func linuxESGateSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "linux-es", Kind: orchestrator.KindGate, Action: "gate", Skip: orchestrator.SkipNever,
		Params: map[string]string{"verify_product": "linux-es", "verify_version": "4.1.2"}}
}

func pcBackupSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "backup-source", Kind: orchestrator.KindAuto, Action: "pc-backup", Skip: orchestrator.SkipNever,
		RunsOn: "source", Produces: []string{"pc-backup"}}
}

func pcRestoreSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "restore-backup", Kind: orchestrator.KindAuto, Action: "pc-restore", Skip: orchestrator.SkipNever,
		RunsOn: "target", Requires: []string{"pc-backup"}, Downtime: true}
}

func fileSum(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// copyFileTo copies src to dst (making dst's directory), as scp without -p
// would: the copy gets a new time.
func copyFileTo(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		tb.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestProductVersion(t *testing.T) {
	ctx := context.Background()
	t.Run("pc41", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		for product, want := range map[string]string{"dialer": "4.1", "linux-es": "4.1", "database": "4.1", "supervisor": "4.1", "agent": "4.1"} {
			if got := mustVersion(t, e.host, product); got != want {
				t.Errorf("%s version = %q, want %q", product, got, want)
			}
		}
		_, err := e.host.ProductVersion(ctx, "agent-api")
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("agent-api on pc41 = %v, want ErrNotInstalled", err)
		}
		if err == nil || !strings.Contains(err.Error(), "agent-api") {
			t.Errorf("error %v does not name the product", err)
		}
		_, err = e.host.ProductVersion(ctx, "nosuch")
		if err == nil || errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "pc.products.nosuch") {
			t.Errorf("unknown product = %v, want an error naming pc.products.nosuch (not ErrNotInstalled)", err)
		}
	})

	t.Run("pcbare", func(t *testing.T) {
		e := newHostSim(t, "pcbare")
		for _, product := range []string{"linux-es", "dialer", "database", "supervisor", "agent", "agent-api"} {
			if _, err := e.host.ProductVersion(ctx, product); !errors.Is(err, ErrNotInstalled) {
				t.Errorf("%s on pcbare = %v, want ErrNotInstalled", product, err)
			}
		}
	})

	t.Run("file without a matching line", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		if err := os.WriteFile(e.path("opt/avaya/pds/etc/dialer.version"), []byte("garbage\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := e.host.ProductVersion(ctx, "dialer")
		if err == nil || errors.Is(err, ErrNotInstalled) || !strings.Contains(err.Error(), "no line matches") {
			t.Errorf("ProductVersion of a garbled file = %v, want a no-match error", err)
		}
	})

	commandProfile := func(t *testing.T, e simEnv) {
		t.Helper()
		text := e.profileText(t)
		const line = `    dialer:     {file: /opt/avaya/pds/etc/dialer.version, pattern: 'VERSION=(\S+)'}`
		if !strings.Contains(text, line) {
			t.Fatalf("the pc41 profile has no line %q", line)
		}
		e.withProfile(t, strings.Replace(text, line, `    dialer:     {command: [/sim/bin/dialer-version, --short], pattern: 'Dialer (\S+)'}`, 1))
	}
	for _, tc := range []struct {
		name    string
		script  string
		want    string // version, or "" for an error
		wantErr string
	}{
		{"command", "[ \"$1\" = --short ] || exit 9\necho 'Avaya Proactive Contact'\necho 'Dialer 4.1.1 build 7'\n", "4.1.1", ""},
		{"failing command", "echo 'dialer-version: database down' >&2\nexit 3\n", "", "database down"},
		{"command without a matching line", "echo 'nothing here'\n", "", "no line matches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostSim(t, "pc41")
			commandProfile(t, e)
			if src := e.host.Profile.PC.Products["dialer"]; src.File != "" || len(src.Command) != 2 {
				t.Fatalf("variant profile's dialer source = %+v, want a command", src)
			}
			e.writeScript(t, "sim/bin/dialer-version", tc.script)
			v, err := e.host.ProductVersion(ctx, "dialer")
			if tc.want != "" {
				if err != nil || v.String() != tc.want {
					t.Errorf("ProductVersion = %q, %v; want %s", v, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ProductVersion = %q, want an error", v)
			}
			// A version command that fails must not look like "not
			// installed": Probe would then run an installer.
			if errors.Is(err, ErrNotInstalled) {
				t.Errorf("error %v is ErrNotInstalled", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
		})
	}
}

func TestPCVendorInstall(t *testing.T) {
	ctx := context.Background()
	t.Run("dialer 4.1 to 4.1.2 on pc41", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		spec := pcInstallSpec("dialer-4.1.2", "dialer", "4.1.2")
		st := e.build(t, spec)
		pr := &progressRecorder{}
		sc := stepContext(spec, pr)

		mustProbe(t, st, sc, false)
		if _, err := st.Verify(ctx, sc); err == nil {
			t.Error("Verify succeeded on dialer 4.1")
		}
		mustApply(t, st, sc)
		out := mustVerify(t, st, sc)
		if got := out.Values["installed_version"]; got != "4.1.2" {
			t.Errorf("installed_version = %q, want 4.1.2", got)
		}
		mustProbe(t, st, sc, true)
		if got := mustVersion(t, e.host, "dialer"); got != "4.1.2" {
			t.Errorf("dialer version = %s, want 4.1.2", got)
		}
		if n := countLines(e.ledger(t), "pc-install dialer 4.1.2 done"); n != 1 {
			t.Errorf("ledger has %d dialer installs, want 1: %q", n, e.ledger(t))
		}
		if calls := pr.all(); len(calls) != 4 || calls[3].done != 4 || calls[3].total != 4 {
			t.Errorf("progress = %+v, want 4 calls ending at 4/4", calls)
		}
	})

	t.Run("installer missing from the profile", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		delete(e.host.Profile.PC.Installers, "dialer-4.1.2")
		spec := pcInstallSpec("dialer-4.1.2", "dialer", "4.1.2")
		st := e.build(t, spec)
		sc := stepContext(spec, nil)
		mustProbe(t, st, sc, false)
		err := st.Apply(ctx, sc)
		if err == nil {
			t.Fatal("Apply succeeded without an installer")
		}
		for _, want := range []string{"dialer-4.1.2", "pc.installers.dialer-4.1.2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if l := e.ledger(t); len(l) != 0 {
			t.Errorf("ledger = %q, want nothing run", l)
		}
	})

	t.Run("installer fails part-way, retry converges", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		e.control(t, "fail-at", "pc-install-dialer:2")
		spec := pcInstallSpec("dialer-4.1.2", "dialer", "4.1.2")
		st := e.build(t, spec)
		sc := stepContext(spec, nil)

		err := st.Apply(ctx, sc)
		if err == nil || !strings.Contains(err.Error(), "simulated failure at pc-install-dialer:2") {
			t.Fatalf("Apply = %v, want the installer's failure", err)
		}
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Errorf("error %v is not a *CommandError", err)
		}
		if got := mustVersion(t, e.host, "dialer"); got != "4.1" {
			t.Errorf("dialer version after the failure = %s, want still 4.1", got)
		}
		mustProbe(t, st, sc, false)
		if _, err := st.Verify(ctx, sc); err == nil {
			t.Error("Verify succeeded after a failed install")
		}

		mustApply(t, st, sc)
		if out := mustVerify(t, st, sc); out.Values["installed_version"] != "4.1.2" {
			t.Errorf("installed_version after the retry = %q", out.Values["installed_version"])
		}
		mustProbe(t, st, sc, true)
		if n := countLines(e.ledger(t), "pc-install dialer 4.1.2 done"); n != 1 {
			t.Errorf("ledger has %d dialer installs, want 1", n)
		}
	})

	t.Run("pcbare without Linux ES", func(t *testing.T) {
		e := newHostSim(t, "pcbare")
		spec := pcInstallSpec("dialer-4.1", "dialer", "4.1")
		st := e.build(t, spec)
		sc := stepContext(spec, nil)
		mustProbe(t, st, sc, false)
		err := st.Apply(ctx, sc)
		if err == nil || !strings.Contains(err.Error(), "Linux ES is not installed") {
			t.Fatalf("Apply on a host without Linux ES = %v, want the installer's refusal", err)
		}
		if _, err := e.host.ProductVersion(ctx, "dialer"); !errors.Is(err, ErrNotInstalled) {
			t.Errorf("dialer after the refusal: %v, want ErrNotInstalled", err)
		}
		if _, err := st.Verify(ctx, sc); err == nil {
			t.Error("Verify succeeded with no dialer")
		}

		// Once the operator has installed Linux ES, the same step works.
		e.operator(t, "install-linux-es", "4.1.2")
		mustApply(t, st, sc)
		if out := mustVerify(t, st, sc); out.Values["installed_version"] != "4.1" {
			t.Errorf("installed_version = %q, want 4.1", out.Values["installed_version"])
		}
		mustProbe(t, st, sc, true)
	})
}

func TestLinuxESGate(t *testing.T) {
	ctx := context.Background()
	confirmed := func(spec orchestrator.StepSpec) orchestrator.StepContext {
		sc := stepContext(spec, nil)
		sc.Confirmation = &orchestrator.Confirmation{Actor: "alice", At: time.Now()}
		return sc
	}

	t.Run("not confirmed", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		spec := linuxESGateSpec()
		st := e.build(t, spec)
		sc := stepContext(spec, nil)
		mustProbe(t, st, sc, false)
		mustApply(t, st, sc)
		_, err := st.Verify(ctx, sc)
		if err == nil || !strings.Contains(err.Error(), "not been confirmed") {
			t.Errorf("Verify without a confirmation = %v, want an error", err)
		}
	})

	t.Run("pcbare before and after the install", func(t *testing.T) {
		e := newHostSim(t, "pcbare")
		spec := linuxESGateSpec()
		st := e.build(t, spec)
		sc := confirmed(spec)

		_, err := st.Verify(ctx, sc)
		if err == nil || !strings.Contains(err.Error(), "linux-es is not found") {
			t.Fatalf("Verify on a bare host = %v, want linux-es not found", err)
		}
		if !errors.Is(err, ErrNotInstalled) {
			t.Errorf("error %v does not wrap ErrNotInstalled", err)
		}

		e.operator(t, "install-linux-es", "4.1.2")
		out := mustVerify(t, st, sc)
		if got := out.Values["linux-es"]; got != "4.1.2" {
			t.Errorf("Values[linux-es] = %q, want 4.1.2", got)
		}
		if got := out.Values["confirmed_by"]; got != "alice" {
			t.Errorf("Values[confirmed_by] = %q, want alice", got)
		}
		if n := countLines(e.ledger(t), "operator install-linux-es 4.1.2"); n != 1 {
			t.Errorf("ledger = %q, want one Linux ES install", e.ledger(t))
		}
	})

	t.Run("pc41 runs an older Linux ES", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		spec := linuxESGateSpec()
		_, err := e.build(t, spec).Verify(ctx, confirmed(spec))
		if err == nil || !strings.Contains(err.Error(), "runs linux-es 4.1, not 4.1.2") {
			t.Errorf("Verify on Linux ES 4.1 = %v, want \"runs linux-es 4.1, not 4.1.2\"", err)
		}
	})

	t.Run("bad verify_version", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		spec := linuxESGateSpec()
		spec.Params["verify_version"] = "not a version"
		if _, err := e.build(t, spec).Verify(ctx, confirmed(spec)); err == nil {
			t.Error("Verify accepted an unreadable verify_version")
		}
	})
}

// backupOnSource runs the pc-backup step on a fresh dl385 copy with the
// given role and returns the sim and the verified artifact.
func backupOnSource(t *testing.T, role string) (simEnv, orchestrator.Artifact) {
	t.Helper()
	e := newHostSim(t, "dl385")
	e.host.Role = role
	spec := pcBackupSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	mustProbe(t, st, sc, true)
	a, ok := out.Artifacts["pc-backup"]
	if !ok {
		t.Fatalf("Verify outputs %+v have no pc-backup artifact", out)
	}
	return e, a
}

func TestPCBackup(t *testing.T) {
	e, a := backupOnSource(t, "source")
	want := "/var/backups/upgrader/pc-data-" + testRunID + ".tar.gz"
	if a.Path != want {
		t.Errorf("artifact path = %q, want %q (as the host sees it)", a.Path, want)
	}
	if !strings.HasPrefix(a.Path, "/var/backups/upgrader/") || strings.HasPrefix(a.Path, e.sim.Root) {
		t.Errorf("artifact path %q carries the sim root %q", a.Path, e.sim.Root)
	}
	if a.Host != "source" {
		t.Errorf("artifact host = %q, want source", a.Host)
	}
	file := e.path(want)
	st, err := os.Stat(file)
	if err != nil {
		t.Fatalf("no backup at %s: %v", file, err)
	}
	if a.Size != st.Size() || a.Size == 0 || a.SHA256 != fileSum(t, file) || !a.ModTime.Equal(st.ModTime().UTC()) {
		t.Errorf("artifact %+v does not describe %s (size %d)", a, file, st.Size())
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("%s.partial left behind (stat: %v)", file, err)
	}
	if n := countLines(e.ledger(t), "pc-backup done"); n != 1 {
		t.Errorf("ledger = %q, want one pc-backup", e.ledger(t))
	}
	if err := e.host.Recheck(context.Background(), "pc-backup", a); err != nil {
		t.Errorf("Recheck of the fresh backup on the source: %v", err)
	}

	// The tool is deterministic: the same tree on another copy gives the
	// same archive. Without a role the artifact names no host.
	_, b := backupOnSource(t, "")
	if b.SHA256 != a.SHA256 || b.Size != a.Size {
		t.Errorf("two backups of the same tree differ: %s/%d vs %s/%d", a.SHA256, a.Size, b.SHA256, b.Size)
	}
	if b.Host != "" {
		t.Errorf("artifact host without a role = %q, want \"\"", b.Host)
	}
}

func TestPCBackupNoData(t *testing.T) {
	e := newHostSim(t, "pcbare")
	spec := pcBackupSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "no Proactive Contact data") {
		t.Errorf("Apply on a host without PC = %v, want the tool's refusal", err)
	}
	mustProbe(t, st, sc, false)
	if _, err := st.Verify(context.Background(), sc); err == nil {
		t.Error("Verify succeeded without a backup")
	}
}

func TestPCRestore(t *testing.T) {
	ctx := context.Background()
	src, a := backupOnSource(t, "source")
	e := newHostSim(t, "x3650")
	e.host.Role = "target"
	spec := pcRestoreSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	sc.Artifacts = map[string]orchestrator.Artifact{"pc-backup": a}

	// pc-restore needs Linux ES, and the backup at the same path.
	e.operator(t, "install-linux-es", "4.1.2")
	copyFileTo(t, src.path(a.Path), e.path(a.Path))
	if err := e.host.Recheck(ctx, "pc-backup", a); err != nil {
		t.Fatalf("Recheck of the copied backup on the target: %v", err)
	}

	mustProbe(t, st, sc, false)
	if _, err := st.Verify(ctx, sc); err == nil {
		t.Error("Verify succeeded before the restore")
	}
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	if got := out.Values["restored_from"]; got != "VERSION=4.1" {
		t.Errorf("restored_from = %q, want VERSION=4.1", got)
	}
	mustProbe(t, st, sc, true)
	for _, f := range []string{"opt/avaya/pds/data/jobs/outbound1.job", "opt/avaya/pds/data/lists/renewals.lst"} {
		if fileSum(t, e.path(f)) != fileSum(t, src.path(f)) {
			t.Errorf("%s differs from the source's after the restore", f)
		}
	}
	if n := countLines(e.ledger(t), "pc-restore done"); n != 1 {
		t.Errorf("ledger = %q, want one pc-restore", e.ledger(t))
	}

	// The restored 4.1 data lets the dialer go to 4.1.2 on the bare server.
	up := pcInstallSpec("dialer-4.1.2", "dialer", "4.1.2")
	ust := e.build(t, up)
	usc := stepContext(up, nil)
	mustProbe(t, ust, usc, false)
	mustApply(t, ust, usc)
	if out := mustVerify(t, ust, usc); out.Values["installed_version"] != "4.1.2" {
		t.Errorf("dialer after the restore = %q, want 4.1.2", out.Values["installed_version"])
	}
}

// A restore cut by a power loss after its marker was written (the marker
// kept, restored data lost) is not taken as done on a resume.
func TestPCRestoreInterruptedIsNotTakenAsDone(t *testing.T) {
	src, a := backupOnSource(t, "source")
	e := newHostSim(t, "x3650")
	e.host.Role = "target"
	e.operator(t, "install-linux-es", "4.1.2")
	copyFileTo(t, src.path(a.Path), e.path(a.Path))
	spec := pcRestoreSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	sc.Artifacts = map[string]orchestrator.Artifact{"pc-backup": a}
	sc = detachStep(t, e, st, sc, "pc-restore:2")
	info, _ := job.Dir(e.host.Jobs).Look(sc.Saved["job"])
	powerLoss(t, info.Pid)
	if err := os.WriteFile(e.path("opt/avaya/pds/data/.restored-from"), []byte("VERSION=4.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustProbe(t, st, sc, false)
	if err := st.Apply(context.Background(), sc); err == nil || !strings.Contains(err.Error(), "interrupted before it finished") {
		t.Fatalf("Apply: %v, want the interrupted restore", err)
	}
}

func TestPCRestoreWithoutBackup(t *testing.T) {
	e := newHostSim(t, "x3650")
	e.operator(t, "install-linux-es", "4.1.2")
	spec := pcRestoreSpec()
	err := e.build(t, spec).Apply(context.Background(), stepContext(spec, nil))
	if err == nil || !strings.Contains(err.Error(), "no verified backup") {
		t.Errorf("Apply without a pc-backup artifact = %v, want an error", err)
	}
	if l := e.ledger(t); countLines(l, "pc-restore done") != 0 {
		t.Errorf("ledger = %q, want no restore", l)
	}
}

func TestRecheckAcrossServers(t *testing.T) {
	ctx := context.Background()
	src, a := backupOnSource(t, "source")

	// target returns a fresh x3650 copy holding a copy of the backup whose
	// time differs from the recorded one.
	target := func(t *testing.T) (simEnv, string) {
		t.Helper()
		e := newHostSim(t, "x3650")
		e.host.Role = "target"
		dst := e.path(a.Path)
		copyFileTo(t, src.path(a.Path), dst)
		other := a.ModTime.Add(-3 * time.Hour)
		if err := os.Chtimes(dst, other, other); err != nil {
			t.Fatal(err)
		}
		return e, dst
	}

	t.Run("copy with another time", func(t *testing.T) {
		e, _ := target(t)
		if err := e.host.Recheck(ctx, "pc-backup", a); err != nil {
			t.Errorf("Recheck = %v, want ok (only the content counts across servers)", err)
		}
	})

	t.Run("one byte changed", func(t *testing.T) {
		e, dst := target(t)
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		err = e.host.Recheck(ctx, "pc-backup", a)
		if err == nil || !strings.Contains(err.Error(), "not the file verified on the other server") {
			t.Errorf("Recheck of a changed copy = %v, want \"not the file verified on the other server\"", err)
		}
	})

	t.Run("not copied", func(t *testing.T) {
		e := newHostSim(t, "x3650")
		e.host.Role = "target"
		err := e.host.Recheck(ctx, "pc-backup", a)
		if err == nil || !strings.Contains(err.Error(), a.Path) {
			t.Errorf("Recheck with no copy = %v, want an error naming %s", err, a.Path)
		}
	})

	// An artifact of this host (same role, or no roles at all) keeps the
	// strict rule: a changed time is a changed file.
	for _, tc := range []struct{ role, host string }{{"target", "target"}, {"", ""}, {"target", ""}} {
		t.Run("same host role "+strconv.Quote(tc.role)+" artifact "+strconv.Quote(tc.host), func(t *testing.T) {
			e, _ := target(t)
			e.host.Role = tc.role
			local := a
			local.Host = tc.host
			err := e.host.Recheck(ctx, "pc-backup", local)
			if err == nil || !strings.Contains(err.Error(), "changed since it was verified") {
				t.Errorf("Recheck of a same-host artifact with another time = %v, want the mtime rule", err)
			}
		})
	}
}

func TestGatherFactsPC(t *testing.T) {
	ctx := context.Background()
	t.Run("pc41", func(t *testing.T) {
		e := newHostSim(t, "pc41")
		f := GatherFacts(ctx, e.host)
		for key, want := range map[string]string{
			orchestrator.FactPCVersion:  "4.1",
			orchestrator.FactComponents: "supervisor,agent",
			orchestrator.FactHostModel:  "System x3650 M2",
		} {
			if got, ok := f.Get(key); !ok || got != want {
				t.Errorf("fact %s = %q (known %v), want %q", key, got, ok, want)
			}
			if f[key].Volatile {
				t.Errorf("fact %s is volatile", key)
			}
		}
		if _, ok := f.Get(orchestrator.FactPOMVersion); ok {
			t.Errorf("pom.version is known on a PC host: %+v", f[orchestrator.FactPOMVersion])
		}
		for _, key := range []string{orchestrator.FactPCDataSize, orchestrator.FactFreeInstall, orchestrator.FactFreeBackup} {
			n, ok := f.Int(key)
			if !ok || n <= 0 {
				t.Errorf("fact %s = %q, want a positive number", key, f[key].Value)
			}
			if !f[key].Volatile || f[key].Source == "" {
				t.Errorf("fact %s = %+v, want volatile with a source", key, f[key])
			}
		}
		// pc.data.size is the sum of the files under data/.
		var want int64
		for _, p := range []string{"opt/avaya/pds/data/lists/sales.lst", "opt/avaya/pds/data/campaigns/sales.cfg"} {
			st, err := os.Stat(e.path(p))
			if err != nil {
				t.Fatal(err)
			}
			want += st.Size()
		}
		if n, _ := f.Int(orchestrator.FactPCDataSize); n != want {
			t.Errorf("pc.data.size = %d, want %d", n, want)
		}
	})

	t.Run("pcbare", func(t *testing.T) {
		e := newHostSim(t, "pcbare")
		f := GatherFacts(ctx, e.host)
		if v, ok := f.Get(orchestrator.FactPCVersion); ok {
			t.Errorf("pc.version = %q on a bare host, want unknown", v)
		}
		if v, ok := f.Get(orchestrator.FactComponents); !ok || v != "" {
			t.Errorf("components = %q (known %v), want known and empty", v, ok)
		}
		if v, ok := f.Get(orchestrator.FactPCDataSize); ok {
			t.Errorf("pc.data.size = %q on a bare host, want unknown", v)
		}
		// Free space is read from the nearest existing parent.
		for _, key := range []string{orchestrator.FactFreeInstall, orchestrator.FactFreeBackup} {
			if n, ok := f.Int(key); !ok || n <= 0 || !f[key].Volatile {
				t.Errorf("fact %s = %+v, want a positive volatile number", key, f[key])
			}
		}
	})

	t.Run("dl385", func(t *testing.T) {
		e := newHostSim(t, "dl385")
		f := GatherFacts(ctx, e.host)
		if got, _ := f.Get(orchestrator.FactComponents); got != "supervisor,agent,agent-api" {
			t.Errorf("components = %q, want supervisor,agent,agent-api", got)
		}
		if got := e.host.Model(); got != "ProLiant DL385 G5" {
			t.Errorf("Model = %q, want ProLiant DL385 G5", got)
		}
	})
}
