package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/testdata/simhost"
)

// canary is the password in the simulated host's pgpass file.
const canary = "canary-S3cr3t-7f1e"

func serviceSpec(action, services string) orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: action + "-" + services, Kind: orchestrator.KindAuto, Action: action,
		Params: map[string]string{"services": services}}
}

func backupSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "backup-db", Kind: orchestrator.KindAuto, Action: "backup-db",
		Params: map[string]string{"database": "pom", "backup_dir": "/var/backups/upgrader"}}
}

func installSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "upgrade-pom", Kind: orchestrator.KindAuto, Action: "vendor-install",
		Params: map[string]string{"iso": "/media/" + simhost.ISOName, "target": "POM.03.01.01.01.00.003"}}
}

func mustProbe(tb testing.TB, st orchestrator.Step, sc orchestrator.StepContext, want bool) {
	tb.Helper()
	done, err := st.Probe(context.Background(), sc)
	if err != nil {
		tb.Fatalf("%s Probe: %v", sc.Spec.ID, err)
	}
	if done != want {
		tb.Fatalf("%s Probe = %v, want %v", sc.Spec.ID, done, want)
	}
}

func mustApply(tb testing.TB, st orchestrator.Step, sc orchestrator.StepContext) {
	tb.Helper()
	if err := st.Apply(context.Background(), sc); err != nil {
		tb.Fatalf("%s Apply: %v", sc.Spec.ID, err)
	}
}

func mustVerify(tb testing.TB, st orchestrator.Step, sc orchestrator.StepContext) orchestrator.Outputs {
	tb.Helper()
	out, err := st.Verify(context.Background(), sc)
	if err != nil {
		tb.Fatalf("%s Verify: %v", sc.Spec.ID, err)
	}
	return out
}

func TestServicesStep(t *testing.T) {
	for _, tc := range []struct {
		name    string
		initial string // content of var/lib/sim/services/vpms
		action  string
		want    string // state after the step
		verb    string
	}{
		{"stop a running service", "running", "service-stop", "stopped", "stop"},
		{"start a stopped service", "stopped", "service-start", "running", "start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSim(t, nil)
			stateFile := e.path("var/lib/sim/services/vpms")
			if err := os.WriteFile(stateFile, []byte(tc.initial+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			spec := serviceSpec(tc.action, "vpms")
			st := e.build(t, spec)
			sc := stepContext(spec, nil)

			mustProbe(t, st, sc, false)
			if _, err := st.Verify(context.Background(), sc); err == nil {
				t.Error("Verify succeeded before Apply")
			}
			mustApply(t, st, sc)
			out := mustVerify(t, st, sc)
			if want := map[string]string{"service.vpms": tc.want}; !reflect.DeepEqual(out.Values, want) {
				t.Errorf("Verify values = %v, want %v", out.Values, want)
			}
			mustProbe(t, st, sc, true)

			// Apply again: converged, so nothing runs.
			mustApply(t, st, sc)
			mustVerify(t, st, sc)
			entry := "service " + tc.verb + " vpms"
			if n := countLines(e.ledger(t), entry); n != 1 {
				t.Errorf("ledger has %d %q, want exactly 1: %q", n, entry, e.ledger(t))
			}
			if b, _ := os.ReadFile(stateFile); strings.TrimSpace(string(b)) != tc.want {
				t.Errorf("service state file = %q, want %q", b, tc.want)
			}
		})
	}
}

func TestServicesStepUnknownService(t *testing.T) {
	e := newSim(t, nil)
	// vpms is already stopped, so every phase reaches the unknown service.
	if err := os.WriteFile(e.path("var/lib/sim/services/vpms"), []byte("stopped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := serviceSpec("service-stop", "vpms, nosuchd")
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"probe", func() error { _, err := st.Probe(context.Background(), sc); return err }},
		{"apply", func() error { return st.Apply(context.Background(), sc) }},
		{"verify", func() error { _, err := st.Verify(context.Background(), sc); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), "nosuchd") {
				t.Errorf("error = %v, want one naming nosuchd", err)
			}
		})
	}
	if l := e.ledger(t); len(l) != 0 {
		t.Errorf("ledger = %q, want nothing stopped or started", l)
	}
}

func TestBackupDB(t *testing.T) {
	t.Setenv("PGPASSWORD", canary) // must not reach pg_dump: ExecRunner passes a minimal environment
	rec := &recordingRunner{inner: ExecRunner{}}
	e := newSim(t, rec)
	spec := backupSpec()
	st := e.build(t, spec)
	pr := &progressRecorder{}
	sc := stepContext(spec, pr)
	final := e.path("var/backups/upgrader/pomdb-pom-" + testRunID + ".dump")

	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	b, err := os.ReadFile(final)
	if err != nil {
		t.Fatalf("no dump at %s: %v", final, err)
	}
	if !bytes.HasPrefix(b, []byte("PGDMP")) {
		t.Errorf("dump starts with %q, want PGDMP", b[:min(len(b), 5)])
	}
	if !bytes.Contains(b, []byte("CREATE TABLE pim_contact")) {
		t.Error("dump does not hold the database's tables")
	}
	if _, err := os.Stat(final + ".partial"); !os.IsNotExist(err) {
		t.Errorf("%s.partial left behind (stat: %v)", final, err)
	}
	out := mustVerify(t, st, sc)
	a, ok := out.Artifacts["db-backup"]
	if !ok {
		t.Fatalf("Verify outputs %+v have no db-backup artifact", out)
	}
	sum := sha256.Sum256(b)
	if a.Path != e.host.Profile.Unroot(final) || a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(b)) || a.ModTime.IsZero() {
		t.Errorf("artifact = %+v, want %s with sha256 %x and size %d", a, final, sum, len(b))
	}
	if err := e.host.Recheck(context.Background(), "db-backup", a); err != nil {
		t.Errorf("Recheck of the fresh backup: %v", err)
	}
	mustProbe(t, st, sc, true)

	// psql (the size, the tables and connections that choose pg_dump's
	// jobs), then pg_restore (--list and a full read that also
	// hashes) on the temp file, and again in Probe; Verify records the
	// file Apply proved without reading it again. pg_dump ran as a
	// supervised job. The tools that connect to the database record how
	// they were started in the simulator's exec log.
	calls := rec.recorded()
	var tools []string
	for _, c := range calls {
		checkNoSecret(t, c)
		tools = append(tools, filepath.Base(c.argv[0]))
	}
	if want := "psql" + strings.Repeat(" pg_restore", 4); strings.Join(tools, " ") != want {
		t.Fatalf("ran %v, want %s", tools, want)
	}
	started := e.started(t)
	tools = nil
	for _, c := range started {
		checkNoSecret(t, c)
		tools = append(tools, filepath.Base(c.argv[0]))
	}
	if want := "psql pg_dump"; strings.Join(tools, " ") != want {
		t.Fatalf("started %v, want %s", tools, want)
	}
	if got := started[1].argv[0]; got != e.path("sim/bin/pg_dump") {
		t.Errorf("argv[0] = %s, want the profile's dump_command under the root", got)
	}
	for _, c := range []recordedCall{calls[0], started[1]} {
		if want := "PGPASSFILE=" + e.path("etc/upgrader/pgpass"); !contains(c.env, want) {
			t.Errorf("%s env %q lacks %s", c.argv[0], c.env, want)
		}
	}
	if n := countLines(e.ledger(t), "pg_dump done pom"); n != 1 {
		t.Errorf("ledger has %d pg_dump runs, want 1", n)
	}
}

func TestBackupDBFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failAt  string
		wantErr string
	}{
		{"after the header", "pg_dump:2", "simulated failure at pg_dump:2"},
		{"before writing", "pg_dump:1", "simulated failure at pg_dump:1"},
		{"at the end", "pg_dump:3", "simulated failure at pg_dump:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingRunner{inner: ExecRunner{}}
			e := newSim(t, rec)
			e.control(t, "fail-at", tc.failAt)
			spec := backupSpec()
			st := e.build(t, spec)
			sc := stepContext(spec, nil)
			final := e.path("var/backups/upgrader/pomdb-pom-" + testRunID + ".dump")

			err := st.Apply(context.Background(), sc)
			if err == nil {
				t.Fatal("Apply succeeded although pg_dump failed")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not carry pg_dump's output %q", err, tc.wantErr)
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Errorf("error %v is not a *CommandError", err)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error text contains the password: %q", err)
			}
			for _, p := range []string{final, final + ".partial"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a failed pg_dump (stat: %v)", p, err)
				}
			}
			mustProbe(t, st, sc, false)
			if _, err := st.Verify(context.Background(), sc); err == nil {
				t.Error("Verify succeeded without a dump")
			}
			for _, c := range append(rec.recorded(), e.started(t)...) {
				checkNoSecret(t, c)
			}

			// The failure is consumed: the next attempt converges.
			mustApply(t, st, sc)
			mustVerify(t, st, sc)
		})
	}
}

// checkNoSecret asserts the password reaches pg_dump only through
// PGPASSFILE.
func checkNoSecret(tb testing.TB, c recordedCall) {
	tb.Helper()
	for _, a := range c.argv {
		if strings.Contains(a, canary) {
			tb.Errorf("argv contains the password: %q", c.argv)
		}
	}
	hasPassFile := false
	for _, kv := range c.env {
		if strings.Contains(kv, canary) {
			tb.Errorf("env contains the password: %q", kv)
		}
		if strings.HasPrefix(kv, "PGPASSWORD=") {
			tb.Errorf("env sets PGPASSWORD: %q", kv)
		}
		hasPassFile = hasPassFile || strings.HasPrefix(kv, "PGPASSFILE=")
	}
	// pg_restore --list reads a file and never connects: it needs none.
	if !hasPassFile && filepath.Base(c.argv[0]) != "pg_restore" {
		tb.Errorf("%s env %q has no PGPASSFILE", c.argv[0], c.env)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestVendorInstall(t *testing.T) {
	e := newSim(t, nil)
	spec := installSpec()
	st := e.build(t, spec)
	pr := &progressRecorder{}
	sc := stepContext(spec, pr)

	mustProbe(t, st, sc, false)
	if _, err := st.Verify(context.Background(), sc); err == nil {
		t.Error("Verify succeeded on POM 3.1.1")
	}

	// The vendor's installer refuses while vpms runs.
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "vpms") {
		t.Fatalf("Apply with vpms running = %v, want an error naming vpms", err)
	}
	mustProbe(t, st, sc, false)

	stop := serviceSpec("service-stop", "vpms")
	mustApply(t, e.build(t, stop), stepContext(stop, nil))

	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	if got := out.Values["installed_version"]; got != "POM.03.01.01.01.00.003" {
		t.Errorf("installed_version = %q, want POM.03.01.01.01.00.003", got)
	}
	mustProbe(t, st, sc, true)

	calls := pr.all()
	if len(calls) != 5 {
		t.Fatalf("progress calls = %+v, want 5", calls)
	}
	for i, c := range calls {
		if c.done != int64(i+1) || c.total != 5 || c.label == "" {
			t.Errorf("progress call %d = %+v, want %d/5 with a label", i, c, i+1)
		}
	}
	if last := calls[len(calls)-1]; last.done != 5 || last.total != 5 || last.label != "Writing version" {
		t.Errorf("last progress = %+v, want 5/5 Writing version", last)
	}
	if n := countLines(e.ledger(t), "installer done"); n != 1 {
		t.Errorf("ledger has %d completed installs, want 1", n)
	}
}

func TestVendorInstallFailure(t *testing.T) {
	e := newSim(t, nil)
	if err := os.WriteFile(e.path("var/lib/sim/services/vpms"), []byte("stopped\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.control(t, "fail-at", "installer:3")
	spec := installSpec()
	st := e.build(t, spec)
	pr := &progressRecorder{}
	sc := stepContext(spec, pr)

	err := st.Apply(context.Background(), sc)
	if err == nil {
		t.Fatal("Apply succeeded although the installer failed")
	}
	for _, want := range []string{"simulated failure at installer:3", "last output"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var ce *CommandError
	if !errors.As(err, &ce) || len(ce.Tail) == 0 || ce.Tail[len(ce.Tail)-1] != "simulated failure at installer:3" {
		t.Errorf("error %#v does not carry the installer's last line", err)
	}
	mustProbe(t, st, sc, false)
	if _, err := st.Verify(context.Background(), sc); err == nil {
		t.Error("Verify succeeded after a failed install")
	}
	if n := len(pr.all()); n != 3 {
		t.Errorf("progress calls before the failure = %d, want 3", n)
	}

	// The vendor installer may be re-run after an interruption.
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	mustProbe(t, st, sc, true)
}

// The site's own backup command (Oracle, SQL Server): its file is checked,
// renamed into place and guarded; a second run changes nothing.
func TestBackupCommand(t *testing.T) {
	dir := t.TempDir()
	h := &Host{Run: ExecRunner{}, Jobs: jobsDir(t)}
	h.Profile.Root = "/"
	h.Profile.DB.BackupCommand = []string{"/usr/bin/cp", "/etc/os-release", "{backup}"}
	spec := orchestrator.StepSpec{ID: "backup-db", Action: "backup-command", Params: map[string]string{"database": "pom", "backup_dir": dir}}
	st, err := h.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	sc := stepContext(spec, nil)
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	if a := out.Artifacts["db-backup"]; a.Size == 0 || !strings.HasSuffix(a.Path, ".bak") {
		t.Fatalf("artifact %+v", a)
	}
	mustProbe(t, st, sc, true)
	h.Profile.DB.BackupCommand = []string{"/usr/bin/true"}
	spec.Params["backup_dir"] = t.TempDir()
	st, _ = h.Build(spec)
	if err := st.Apply(context.Background(), stepContext(spec, nil)); err == nil || !strings.Contains(err.Error(), "left no backup") {
		t.Fatalf("a command that writes nothing: %v", err)
	}
}
