package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/testdata/pgtest"
)

// pgSim is the simulated POM host with its database on the real
// PostgreSQL of the tests, and the real client tools (the server's own
// binaries, linked where the profile's root expects them).
func pgSim(t *testing.T) (*sim, pgtest.Cluster) {
	t.Helper()
	c := pgtest.Shared(t, canarySecret)
	s := newSim(t)
	b, err := os.ReadFile(s.profile)
	if err != nil {
		t.Fatal(err)
	}
	prof := regexp.MustCompile(`(?m)^  (host|port|dump_command|restore_command|psql_command): .*\n`).ReplaceAllString(string(b), "")
	prof = strings.Replace(prof, "  kind: postgres\n", "  kind: postgres\n  host: 127.0.0.1\n  port: "+c.Port+"\n", 1)
	if err := os.WriteFile(s.profile, []byte(prof), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(s.root, "usr/bin"), 0o755)
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		if err := os.Symlink(filepath.Join(c.Bin, tool), filepath.Join(s.root, "usr/bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	pass, _ := os.ReadFile(c.Passfile)
	if err := os.WriteFile(filepath.Join(s.root, "etc/upgrader/pgpass"), pass, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// noScratchLeft fails when a rehearsal left its scratch database behind.
func noScratchLeft(t *testing.T, c pgtest.Cluster) {
	t.Helper()
	out, err := c.Query("postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'upgrader_rehearsal%'")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Fatalf("scratch databases left behind: %s", out)
	}
}

// upgrader verify-backup end to end, against the real PostgreSQL: the
// run's own dump by default (and its record), a dump given by name,
// damaged, truncated, changed since the run recorded it, lacking a table,
// and inputs that are not dumps at all.
func TestVerifyBackupRealPostgres(t *testing.T) {
	s, c := pgSim(t)
	s.mustRun(exitOK, "run", "--yes")
	r := s.mustRun(exitOK, "verify-backup")
	for _, want := range []string{"read to the end by pg_restore", "the dump the run recorded", "as in the source", "scratch database dropped",
		"counted against the live source database", "restores. [upgrader's own check]"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify-backup says:\n%s\nwant %q", r.stdout, want)
		}
	}
	noScratchLeft(t, c)
	dumps, _ := filepath.Glob(filepath.Join(s.root, "var/backups/upgrader/pomdb-pom-*.dump"))
	if len(dumps) != 1 {
		t.Fatalf("dumps: %v", dumps)
	}
	dump := dumps[0]
	whole, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("through the daemon", func(t *testing.T) {
		// The daemon holds the state: the run's dump is asked of it.
		d := s.startDaemon(t)
		defer d.stop(t)
		r := s.mustRun(exitOK, "verify-backup", "--socket", d.socket)
		if !strings.Contains(r.stdout, "the dump the run recorded") {
			t.Errorf("verify-backup with the daemon says:\n%s", r.stdout)
		}
		noScratchLeft(t, c)
	})
	t.Run("json", func(t *testing.T) {
		r := s.mustRun(exitOK, "verify-backup", dump, "-o", "json")
		var doc struct {
			OK    bool `json:"ok"`
			Check struct {
				Dump struct {
					SHA256 string `json:"sha256"`
				} `json:"dump"`
				Rehearsal struct {
					Tables int   `json:"tables"`
					Rows   int64 `json:"rows"`
				} `json:"rehearsal"`
			} `json:"check"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if !doc.OK || doc.Check.Rehearsal.Tables != 3 || doc.Check.Rehearsal.Rows != 22020 || len(doc.Check.Dump.SHA256) != 64 {
			t.Errorf("json: %s", r.stdout)
		}
	})

	bad := func(t *testing.T, data []byte, want string, args ...string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "copy.dump")
		if data != nil {
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, file)
		}
		r := s.mustRun(exitFailed, append([]string{"verify-backup"}, args...)...)
		if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "does NOT restore") {
			t.Errorf("verify-backup of a bad dump says:\n%s\nwant %q and 'does NOT restore'", r.stderr, want)
		}
		noScratchLeft(t, c)
	}
	t.Run("damaged in the middle", func(t *testing.T) {
		damaged := append([]byte(nil), whole...)
		for i := len(damaged) / 2; i < len(damaged)/2+64; i++ {
			damaged[i] ^= 0xff
		}
		bad(t, damaged, "cannot be read")
	})
	t.Run("truncated", func(t *testing.T) {
		bad(t, whole[:len(whole)*2/3], "cannot be read")
	})
	t.Run("changed since the run recorded it", func(t *testing.T) {
		// Bytes after the archive's end: pg_restore reads it well, the
		// run's record tells it is not the dump made.
		if err := os.WriteFile(dump, append(append([]byte(nil), whole...), "tampered"...), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(dump, whole, 0o600)
		bad(t, nil, "is not the dump the run recorded")
	})
	t.Run("a table missing", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "partial.dump")
		cmd := exec.Command(filepath.Join(c.Bin, "pg_dump"), "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
			"--dbname=pom", "--format=custom", "--exclude-table=pim_dnc", "--file="+file)
		cmd.Env = []string{"PGPASSFILE=" + c.Passfile}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		partial, _ := os.ReadFile(file)
		bad(t, partial, "table public.pim_dnc is missing")
	})

	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{fifo: "named pipe", "/dev/zero": "character device", filepath.Join(t.TempDir(), "none"): "no such file"} {
		start := time.Now()
		r := s.mustRun(exitUsage, "verify-backup", file)
		if !strings.Contains(r.stderr, want) || time.Since(start) > 20*time.Second {
			t.Errorf("verify-backup %s: %q after %s; want %q at once", file, r.stderr, time.Since(start), want)
		}
	}
	noScratchLeft(t, c)
}

// upgrader verify-backup of a directory-format dump: one with upgrader's
// manifest restores; a byte changed in a table's data, or no manifest at
// all (a pg_dump -Fd run by hand), does not.
func TestVerifyBackupDirectoryRealPostgres(t *testing.T) {
	s, c := pgSim(t)
	dir := filepath.Join(t.TempDir(), "pom.dump")
	cmd := exec.Command(filepath.Join(c.Bin, "pg_dump"), "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
		"--dbname=pom", "--format=directory", "--jobs=2", "--compress=1", "--file="+dir)
	cmd.Env = []string{"PGPASSFILE=" + c.Passfile}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r := s.mustRun(exitFailed, "verify-backup", dir)
	if !strings.Contains(r.stderr, "no readable upgrader.manifest") || !strings.Contains(r.stderr, "does NOT restore") {
		t.Errorf("verify-backup of a directory without its manifest says:\n%s", r.stderr)
	}
	// The manifest as backup-db writes it: "sha256  size  name", sorted.
	entries, _ := os.ReadDir(dir)
	var m strings.Builder
	var biggest string
	var size int64
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&m, "%x  %d  %s\n", sha256.Sum256(b), len(b), e.Name())
		if strings.HasSuffix(e.Name(), ".gz") && int64(len(b)) > size {
			biggest, size = e.Name(), int64(len(b))
		}
	}
	os.WriteFile(filepath.Join(dir, "upgrader.manifest"), []byte(m.String()), 0o600)
	r = s.mustRun(exitOK, "verify-backup", dir)
	for _, want := range []string{"every data file decompressed and as in upgrader.manifest", "as in the source", "restores. [upgrader's own check]"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("verify-backup of a directory dump says:\n%s\nwant %q", r.stdout, want)
		}
	}
	noScratchLeft(t, c)
	data := filepath.Join(dir, biggest)
	b, _ := os.ReadFile(data)
	b[len(b)/2] ^= 0x01
	os.WriteFile(data, b, 0o600)
	r = s.mustRun(exitFailed, "verify-backup", dir)
	if !strings.Contains(r.stderr, biggest) || !strings.Contains(r.stderr, "does NOT restore") {
		t.Errorf("verify-backup of a directory dump with a byte changed says:\n%s", r.stderr)
	}
	noScratchLeft(t, c)
}
