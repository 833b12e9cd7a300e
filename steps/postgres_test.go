package steps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/steps/job"
	"upgrader/testdata/pgtest"
	"upgrader/testdata/sshd"
)

// A real PostgreSQL server for the backup tests (package pgtest), started
// once per test binary; TestMain stops it.

type pgCluster = pgtest.Cluster

// postgres returns the shared cluster, starting it on first use.
func postgres(tb testing.TB) pgCluster {
	tb.Helper()
	return pgtest.Shared(tb, canary)
}

func freePort() (string, error) { return pgtest.FreePort() }

func TestMain(m *testing.M) {
	// The supervised jobs the steps start run this binary again (job.Main).
	if len(os.Args) > 1 && os.Args[1] == job.Arg {
		os.Exit(job.Main(os.Args[2:]))
	}
	code := m.Run()
	pgtest.StopShared()
	sshd.StopShared()
	os.Exit(code)
}

// pgHost is a Host whose profile points at the real cluster, with the real
// client tools, backing up into backupDir.
func pgHost(tb testing.TB, c pgCluster, backupDir string, run Runner) *Host {
	h := &Host{Run: run, Jobs: jobsDir(tb)}
	h.Profile.Root = "/"
	h.Profile.DB.Kind = "postgres"
	h.Profile.DB.Host = "127.0.0.1"
	h.Profile.DB.Port, _ = strconv.Atoi(c.Port)
	h.Profile.DB.Name = "pom"
	h.Profile.DB.User = "postgres"
	h.Profile.DB.PasswordFile = c.Passfile
	h.Profile.DB.BackupDir = backupDir
	return h
}

func pgSpec(backupDir string) orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "backup-db", Action: "backup-db",
		Params: map[string]string{"database": "pom", "backup_dir": backupDir}}
}

func TestBackupDBRealPostgres(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	rec := &recordingRunner{inner: ExecRunner{}}
	h := pgHost(t, c, dir, rec)
	st, err := h.Build(pgSpec(dir))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf strings.Builder
	sc := stepContext(pgSpec(dir), nil)
	sc.Log = sc.Log.Output(&logBuf)

	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	a := out.Artifacts["db-backup"]
	if a.Size < 100<<10 || a.SHA256 == "" {
		t.Fatalf("backup artifact %+v: too small for 20,000 contacts", a)
	}
	// Running it again changes nothing: Probe sees the verified file.
	mustProbe(t, st, sc, true)
	if err := h.Recheck(context.Background(), "db-backup", a); err != nil {
		t.Fatalf("Recheck: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("backup dir holds %d files, want the dump only", len(entries))
	}
	// The real pg_restore can read the whole archive: every table is in it.
	toc, err := exec.Command("/usr/bin/pg_restore", "--list", h.Profile.Path(a.Path)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"cmp_campaign", "pim_contact", "pim_dnc"} {
		if !strings.Contains(string(toc), "TABLE DATA public "+table) {
			t.Errorf("the dump lacks the data of %s", table)
		}
	}
	for _, call := range rec.recorded() {
		checkNoSecret(t, call)
	}
	if strings.Contains(logBuf.String(), canary) {
		t.Error("the step log contains the password")
	}
}

// A dump cut short anywhere is never taken for a backup.
func TestBackupDBRealPostgresTruncatedDumpRejected(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	st, _ := h.Build(pgSpec(dir))
	sc := stepContext(pgSpec(dir), nil)
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	path := h.Profile.Path(out.Artifacts["db-backup"].Path)
	whole, _ := os.ReadFile(path)
	for _, cut := range []int{0, 3, 5, 100, len(whole) / 3, len(whole) / 2, len(whole) - 1000, len(whole) - 1} {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			if err := os.WriteFile(path, whole[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			if done, _ := st.Probe(context.Background(), sc); done {
				t.Error("Probe takes a truncated dump for a backup")
			}
			if _, err := st.Verify(context.Background(), sc); err == nil {
				t.Error("Verify accepts a truncated dump")
			}
		})
	}
}

// Upgrader's own database check: an unreachable database is a clear error
// that names the check as upgrader's (the "DB alarm" is POM's own fix
// OUTREACH-9570, not this), no file is left and the step can be run again
// once the database is back.
func TestBackupDBRealPostgresUnreachable(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	port, _ := freePort()
	h.Profile.DB.Port, _ = strconv.Atoi(port) // nothing listens there
	st, _ := h.Build(pgSpec(dir))
	sc := stepContext(pgSpec(dir), nil)
	err := st.Apply(context.Background(), sc)
	if !errors.Is(err, ErrDBUnreachable) || !strings.Contains(err.Error(), "the run holds") {
		t.Fatalf("Apply: %v, want the database unreachable", err)
	}
	if !strings.HasPrefix(err.Error(), "upgrader's database check: the POM database is unreachable") || strings.Contains(err.Error(), "DB alarm") {
		t.Errorf("Apply: %q; want it named as upgrader's database check, not the product's DB alarm", err)
	}
	if strings.Contains(err.Error(), canary) {
		t.Error("the error contains the password")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files left behind: %v", entries)
	}
	h.Profile.DB.Port, _ = strconv.Atoi(c.Port)
	mustApply(t, st, sc)
}

// Disk full: the free-space check refuses before pg_dump runs, and a dump
// that runs out of room mid-write leaves nothing that passes for a backup.
func TestBackupDBRealPostgresDiskFull(t *testing.T) {
	c := postgres(t)
	t.Run("refused before the dump", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Fatalf("a small filesystem for the test (needs root): %v %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", dir).Run() })
		h := pgHost(t, c, dir, ExecRunner{})
		st, _ := h.Build(pgSpec(dir))
		err := st.Apply(context.Background(), stepContext(pgSpec(dir), nil))
		if err == nil || !strings.Contains(err.Error(), "free") {
			t.Fatalf("Apply: %v, want the free-space refusal with the numbers", err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files left behind: %v", entries)
		}
	})
	t.Run("runs out of room while writing", func(t *testing.T) {
		dir := t.TempDir()
		// pg_dump limited to 64 KiB of file: it dies mid-write as on a full disk.
		wrapper := filepath.Join(t.TempDir(), "pg_dump")
		os.WriteFile(wrapper, []byte("#!/bin/sh\nexec /usr/bin/prlimit --fsize=65536 /usr/bin/pg_dump \"$@\"\n"), 0o755)
		h := pgHost(t, c, dir, ExecRunner{})
		h.Profile.DB.DumpCommand = wrapper
		st, _ := h.Build(pgSpec(dir))
		sc := stepContext(pgSpec(dir), nil)
		if err := st.Apply(context.Background(), sc); err == nil {
			t.Fatal("Apply succeeded with a dump cut at 64 KiB")
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("files left behind: %v", entries)
		}
		if done, _ := st.Probe(context.Background(), sc); done {
			t.Fatal("Probe found a backup")
		}
	})
}

// A crash while the dump was being written leaves a .partial file behind:
// the next attempt is not fooled by it and leaves none.
func TestBackupDBRealPostgresConvergesFromHalfWrittenDump(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	spec := pgSpec(dir)
	st, _ := h.Build(spec)
	sc := stepContext(spec, nil)
	final := filepath.Join(dir, "pomdb-pom-"+sc.RunID+".dump")
	os.WriteFile(final+".partial", []byte("PGDMP half a dump"), 0o600)
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	if _, err := os.Stat(final + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the half-written dump is still there: %v", err)
	}
	// A final file that is itself half written (copied by hand, say) is
	// not taken for a backup: Probe sees it, Apply writes a whole one.
	whole, _ := os.ReadFile(final)
	os.WriteFile(final, whole[:len(whole)/2], 0o600)
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
}

// The read that proves the dump whole follows pg_dump as it writes, and
// the finished file is not read by pg_restore a second time: it is only
// listed and hashed.
func TestBackupDBRealPostgresReadsWhileDumping(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	st, _ := h.Build(pgSpec(dir))
	pr := &progressRecorder{}
	sc := stepContext(pgSpec(dir), pr)
	mustApply(t, st, sc)
	a := mustVerify(t, st, sc).Artifacts["db-backup"]
	var during, after int64
	pr.mu.Lock()
	for _, call := range pr.calls {
		switch {
		case strings.HasPrefix(call.label, "pg_dump, read back by pg_restore"):
			during = max(during, call.done)
		case strings.HasPrefix(call.label, "pg_restore "):
			after = max(after, call.done)
		}
	}
	pr.mu.Unlock()
	if during < a.Size*9/10 || after != 0 {
		t.Fatalf("pg_restore read %d bytes while pg_dump wrote and %d after, of %d: want the whole dump read once, as it was written", during, after, a.Size)
	}
	if err := h.Recheck(context.Background(), "db-backup", a); err != nil {
		t.Fatalf("Recheck: %v", err)
	}
}
