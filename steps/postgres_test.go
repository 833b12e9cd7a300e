package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"upgrader/orchestrator"
	"upgrader/steps/job"
	"upgrader/testdata/sshd"
)

// A real PostgreSQL server for the backup tests: a throwaway cluster on a
// loopback port, started once per test binary (TestMain stops it). `make
// test` installs the server (.ci/deps); a machine without it fails here,
// it does not skip.

type pgCluster struct {
	dir, bin, port, passfile string
	err                      error
}

var (
	pgOnce   sync.Once
	pgShared pgCluster
)

// pomSchema is a POM-like database: campaigns, contacts, DNC entries, with
// enough rows that the dump is more than a header.
const pomSchema = `
CREATE TABLE cmp_campaign (id bigint PRIMARY KEY, name text NOT NULL, state text NOT NULL);
CREATE TABLE pim_contact (id bigint PRIMARY KEY, campaign bigint REFERENCES cmp_campaign(id), phone text, name text, attrs jsonb);
CREATE TABLE pim_dnc (phone text PRIMARY KEY, added timestamptz NOT NULL DEFAULT now());
CREATE INDEX pim_contact_phone ON pim_contact (phone);
INSERT INTO cmp_campaign SELECT g, 'campaign ' || g, 'running' FROM generate_series(1, 20) g;
INSERT INTO pim_contact SELECT g, 1 + g % 20, '+1555' || lpad(g::text, 7, '0'), 'Contact ' || g, jsonb_build_object('tier', g % 3) FROM generate_series(1, 20000) g;
INSERT INTO pim_dnc SELECT '+1666' || lpad(g::text, 7, '0') FROM generate_series(1, 2000) g;
`

func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server under /usr/lib/postgresql: run `make deps` (apt-get install postgresql)")
}

// asPostgres runs a server command; the server refuses to run as root, so
// root runs it as the postgres user.
func asPostgres(argv ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, argv...)...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func startPostgres() (c pgCluster) {
	if c.bin, c.err = postgresBin(); c.err != nil {
		return c
	}
	if c.dir, c.err = os.MkdirTemp("", "upgrader-pg-"); c.err != nil {
		return c
	}
	if c.port, c.err = freePort(); c.err != nil {
		return c
	}
	run := func(cmd *exec.Cmd) error {
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
		}
		return nil
	}
	pw := filepath.Join(c.dir, "pw")
	if c.err = os.WriteFile(pw, []byte(canary+"\n"), 0o600); c.err != nil {
		return c
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			c.err = fmt.Errorf("no postgres user: %v", err)
			return c
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{c.dir, pw} {
			if c.err = os.Chown(p, uid, gid); c.err != nil {
				return c
			}
		}
	}
	data := filepath.Join(c.dir, "data")
	if c.err = run(asPostgres(filepath.Join(c.bin, "initdb"), "-D", data, "--username=postgres", "--auth=scram-sha-256",
		"--pwfile="+pw, "--encoding=UTF8", "--no-sync")); c.err != nil {
		return c
	}
	if c.err = run(asPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", data, "-l", filepath.Join(c.dir, "log"), "-w",
		"-o", "-c listen_addresses=127.0.0.1 -p "+c.port+" -k "+c.dir+" -c fsync=off", "start")); c.err != nil {
		return c
	}
	// The client side: a pgpass file the tools read through PGPASSFILE.
	c.passfile = filepath.Join(c.dir, "pgpass")
	if c.err = os.WriteFile(c.passfile, []byte("127.0.0.1:"+c.port+":*:postgres:"+canary+"\n"), 0o600); c.err != nil {
		return c
	}
	psql := func(db, sql string) error {
		cmd := exec.Command("/usr/bin/psql", "--host=127.0.0.1", "--port="+c.port, "--username=postgres", "--no-password",
			"--dbname="+db, "--set=ON_ERROR_STOP=1", "--quiet", "--command="+sql)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + c.passfile}
		return run(cmd)
	}
	if c.err = psql("postgres", "CREATE DATABASE pom"); c.err != nil {
		return c
	}
	c.err = psql("pom", pomSchema)
	return c
}

func (c pgCluster) stop() {
	if c.dir == "" {
		return
	}
	asPostgres(filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "stop").Run()
	os.RemoveAll(c.dir)
}

// postgres returns the shared cluster, starting it on first use.
func postgres(tb testing.TB) pgCluster {
	tb.Helper()
	pgOnce.Do(func() { pgShared = startPostgres() })
	if pgShared.err != nil {
		tb.Fatalf("PostgreSQL for the backup tests: %v", pgShared.err)
	}
	return pgShared
}

func TestMain(m *testing.M) {
	// The supervised jobs the steps start run this binary again (job.Main).
	if len(os.Args) > 1 && os.Args[1] == job.Arg {
		os.Exit(job.Main(os.Args[2:]))
	}
	code := m.Run()
	pgShared.stop()
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
	h.Profile.DB.Port, _ = strconv.Atoi(c.port)
	h.Profile.DB.Name = "pom"
	h.Profile.DB.User = "postgres"
	h.Profile.DB.PasswordFile = c.passfile
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
	h.Profile.DB.Port, _ = strconv.Atoi(c.port)
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
