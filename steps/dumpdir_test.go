package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// dirDumps makes every table of the tests' small database worth a pg_dump
// worker, so that backup-db writes a directory-format dump with two jobs.
func dirDumps(t *testing.T) {
	old := splitTableBytes
	splitTableBytes = 0
	t.Cleanup(func() { splitTableBytes = old })
	if runtime.GOMAXPROCS(0) < 2 {
		t.Cleanup(func() { runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) })
	}
}

func TestDumpJobs(t *testing.T) {
	for _, tc := range []struct {
		cpus, big int
		c         Connections
		want      int
	}{
		{2, 2, Connections{97, 3}, 2},
		{8, 3, Connections{97, 3}, 3},  // the tables worth a worker bound it
		{2, 40, Connections{97, 3}, 2}, // the CPUs
		{8, 8, Connections{10, 6}, 3},  // 4 to spare: a leader and 3 workers
		{8, 8, Connections{10, 8}, 1},  // 2 to spare: no room for -j 2
		{8, 8, Connections{10, 10}, 1}, // none: the watch holds the run before
		{2, 0, Connections{97, 3}, 1},  // no large table: the custom format
		{1, 5, Connections{97, 3}, 1},
	} {
		if got := dumpJobs(tc.cpus, tc.big, tc.c); got != tc.want {
			t.Errorf("dumpJobs(%d CPUs, %d tables, %+v) = %d, want %d", tc.cpus, tc.big, tc.c, got, tc.want)
		}
	}
}

// The directory dump: made with two jobs, every file read back and hashed
// into the manifest, private, renamed into place; the guard's re-check,
// Probe and verify-backup (restore rehearsal included) accept it.
func TestBackupDBDirectoryRealPostgres(t *testing.T) {
	dirDumps(t)
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	// With the restore rehearsal: pg_dump's jobs dump the snapshot the
	// rows are counted in, and pg_restore --jobs=2 restores the directory.
	spec := pgSpec(dir)
	spec.Params["rehearse"] = "true"
	st, _ := h.Build(spec)
	pr := &progressRecorder{}
	sc := stepContext(spec, pr)
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	out := mustVerify(t, st, sc)
	a := out.Artifacts["db-backup"]
	if !strings.Contains(out.Values["rehearsal"], "as in the source") {
		t.Errorf("rehearsal: %q", out.Values["rehearsal"])
	}
	final := filepath.Join(dir, "pomdb-pom-"+sc.RunID+".dump")
	if fi, err := os.Lstat(final); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v %v, want a directory dump, mode 0700", final, fi, err)
	}
	m, err := os.ReadFile(filepath.Join(final, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(m)
	if a.Path != final || a.SHA256 != hex.EncodeToString(sum[:]) || !a.Dir {
		t.Fatalf("artifact %+v: want the directory %s with the SHA-256 of its manifest", a, final)
	}
	if d := a.Describe(); !strings.Contains(d, final+"/ (a directory)") || !strings.Contains(d, "sha256 of its manifest "+a.SHA256) {
		t.Errorf("Describe() = %q: want the directory and its manifest's SHA-256 named", d)
	}
	entries, _ := os.ReadDir(final)
	var total int64
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
		if e.Name() != manifestName {
			total += fi.Size()
			if !strings.Contains(string(m), "  "+e.Name()+"\n") {
				t.Errorf("the manifest lacks %s", e.Name())
			}
		}
	}
	if total != a.Size || len(entries) < 5 {
		t.Errorf("%d files of %d bytes, artifact size %d: want toc.dat, one file per table and the manifest", len(entries), total, a.Size)
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("the backup directory holds %d entries, want the dump and its counts", len(left))
	}
	// The data files were read as pg_dump wrote them.
	var during int64
	pr.mu.Lock()
	for _, call := range pr.calls {
		if call.label == "pg_dump, read back as it is written" {
			during = max(during, call.done)
		}
	}
	pr.mu.Unlock()
	if during == 0 {
		t.Error("no data file was read while pg_dump wrote it")
	}
	toc, err := exec.Command("/usr/bin/pg_restore", "--list", final).Output()
	if err != nil || !strings.Contains(string(toc), "TABLE DATA public pim_contact") {
		t.Fatalf("pg_restore --list: %v", err)
	}
	if err := h.Recheck(context.Background(), "db-backup", a); err != nil {
		t.Fatalf("Recheck: %v", err)
	}
	fresh, _ := h.Build(spec)
	mustProbe(t, fresh, sc, true)
	got, err := h.VerifyBackup(context.Background(), final, &a, nil)
	if err != nil || !got.Recorded || !got.Directory || got.Rehearsal.Rows == 0 || got.Rehearsal.LiveDiff {
		t.Fatalf("VerifyBackup of the directory dump: %+v %v", got, err)
	}
}

// Each change to a directory dump after it was recorded (one byte of a
// table's data, a file removed, a file added, a file cut short, the
// manifest edited) is refused by the guard's re-check and by
// verify-backup, with a message naming the file.
func TestBackupDBDirectoryTampered(t *testing.T) {
	dirDumps(t)
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	st, _ := h.Build(pgSpec(dir))
	sc := stepContext(pgSpec(dir), nil)
	mustApply(t, st, sc)
	a := mustVerify(t, st, sc).Artifacts["db-backup"]
	final := a.Path
	pristine := filepath.Join(t.TempDir(), "pristine")
	if out, err := exec.Command("cp", "-a", final, pristine).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// The largest data file: the contacts.
	var biggest string
	var size int64
	entries, _ := os.ReadDir(final)
	for _, e := range entries {
		if fi, _ := e.Info(); strings.HasSuffix(e.Name(), ".dat.gz") && fi.Size() > size {
			biggest, size = e.Name(), fi.Size()
		}
	}
	data := filepath.Join(final, biggest)
	for _, tc := range []struct {
		name          string
		tamper        func() error
		recheck, full string
	}{
		{"one byte changed", func() error {
			b, err := os.ReadFile(data)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x01
			return os.WriteFile(data, b, 0o600)
		}, biggest + " changed since it was verified: sha256", biggest},
		{"a file removed", func() error { return os.Remove(data) }, "lacks " + biggest, "lacks " + biggest},
		{"a file added", func() error { return os.WriteFile(filepath.Join(final, "9999.dat.gz"), []byte("x"), 0o600) },
			"holds 9999.dat.gz, which it did not hold", "holds 9999.dat.gz, which its table of contents does not name"},
		{"a file cut short", func() error { return os.Truncate(data, size-10) }, biggest + " changed since it was verified: size", biggest + ": cut short"},
		{"a file replaced by a symlink to its copy", func() error {
			if err := os.Remove(data); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(pristine, biggest), data)
		}, biggest + " is now a symbolic link", biggest + ", a symbolic link"},
		{"the table of contents cut short", func() error { return os.Truncate(filepath.Join(final, "toc.dat"), 100) }, "toc.dat changed since it was verified: size", "pg_restore"},
		{"the manifest edited", func() error {
			m := filepath.Join(final, manifestName)
			b, _ := os.ReadFile(m)
			return os.WriteFile(m, append(b, "0000000000000000000000000000000000000000000000000000000000000000  1  1.dat\n"...), 0o600)
		}, "its upgrader.manifest has sha256", "lacks 1.dat, which its upgrader.manifest lists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.RemoveAll(final)
			if out, err := exec.Command("cp", "-a", pristine, final).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			if err := h.Recheck(context.Background(), "db-backup", a); err != nil {
				t.Fatalf("Recheck of the untouched copy: %v", err)
			}
			if err := tc.tamper(); err != nil {
				t.Fatal(err)
			}
			err := h.Recheck(context.Background(), "db-backup", a)
			if err == nil || !strings.Contains(err.Error(), tc.recheck) {
				t.Errorf("Recheck: %v, want %q", err, tc.recheck)
			}
			_, err = h.VerifyBackup(context.Background(), final, nil, nil)
			if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), tc.full) {
				t.Errorf("VerifyBackup: %v, want a bad backup naming %q", err, tc.full)
			}
			fresh, _ := h.Build(pgSpec(dir))
			if done, _ := fresh.Probe(context.Background(), sc); done {
				t.Error("Probe takes the changed dump for a backup")
			}
		})
	}
	if n := psqlAs(t, c, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'upgrader_rehearsal_%'"); n != "0" {
		t.Errorf("%s scratch databases left", n)
	}
}

// A directory dump killed mid-way, or cut short by a pg_dump that still
// exits 0, leaves nothing that passes for a backup; the next attempt
// converges.
func TestBackupDBDirectoryKilledOrCutShort(t *testing.T) {
	dirDumps(t)
	c := postgres(t)
	// The kill must come while pg_dump writes: the small database's dump
	// can end before a loaded machine's wrapper looks (make test saw it),
	// so this case dumps a database of its own, one table of ~80 MB (about
	// a second of pg_dump here), and the wrapper says when it was too late.
	psqlAs(t, c, "postgres", `DROP DATABASE IF EXISTS killmidway`)
	psqlAs(t, c, "postgres", `CREATE DATABASE killmidway`)
	psqlAs(t, c, "killmidway", `CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g+1)::text) AS a FROM generate_series(1, 1000000) g;
CREATE TABLE small AS SELECT 1 AS id`)
	for _, tc := range []struct{ name, database, script, want string }{
		// Killed (SIGKILL) once its first table's data is on disk.
		{"killed mid-way", "killmidway", `/usr/bin/pg_dump "$@" & pid=$!
for f in "$@"; do case $f in --file=*) d=${f#--file=} ;; esac; done
shopt -s nullglob
until f=("$d"/*.dat.gz); [ ${#f[@]} -gt 0 ] || ! kill -0 $pid 2>/dev/null; do sleep 0.01; done
kill -9 $pid 2>/dev/null || echo "pg_dump had ended before the kill" >"${0%/*}/late"
wait $pid
`, "pg_dump"},
		// Whole as pg_dump wrote it, then a table's data cut short before
		// pg_dump "ends well".
		{"cut short after the read", "pom", `/usr/bin/pg_dump "$@" || exit
for f in "$@"; do case $f in --file=*) d=${f#--file=} ;; esac; done
f=$(ls -S "$d"/*.dat.gz | head -1); truncate -s -100 "$f"
`, "cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			wrapper := filepath.Join(t.TempDir(), "pg_dump")
			os.WriteFile(wrapper, []byte("#!/bin/bash\n"+tc.script), 0o755)
			h := pgHost(t, c, dir, ExecRunner{})
			h.Profile.DB.DumpCommand = wrapper
			spec := pgSpec(dir)
			spec.Params["database"] = tc.database
			st, _ := h.Build(spec)
			sc := stepContext(spec, nil)
			err := st.Apply(context.Background(), sc)
			if late, _ := os.ReadFile(filepath.Join(filepath.Dir(wrapper), "late")); len(late) > 0 {
				t.Fatalf("the test's fault came too late: %s", late)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want a failure naming %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("left behind: %v", entries)
			}
			if done, _ := st.Probe(context.Background(), sc); done {
				t.Fatal("Probe found a backup")
			}
			h.Profile.DB.DumpCommand = ""
			sc.Saved = map[string]string{}
			mustApply(t, st, sc)
			mustVerify(t, st, sc)
		})
	}
}

// A directory at the dump's name without upgrader's manifest (a pg_dump
// -Fd run by hand, a copy cut short) is not taken for a backup, and the
// step writes a whole one in its place.
func TestBackupDBDirectoryWithoutManifest(t *testing.T) {
	dirDumps(t)
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	st, _ := h.Build(pgSpec(dir))
	sc := stepContext(pgSpec(dir), nil)
	mustApply(t, st, sc)
	a := mustVerify(t, st, sc).Artifacts["db-backup"]
	os.Remove(filepath.Join(a.Path, manifestName))
	fresh, _ := h.Build(pgSpec(dir))
	if done, _ := fresh.Probe(context.Background(), sc); done {
		t.Fatal("Probe takes a directory without its manifest for a backup")
	}
	if _, err := h.VerifyBackup(context.Background(), a.Path, nil, nil); !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "not a dump upgrader finished") {
		t.Fatalf("VerifyBackup: %v", err)
	}
	if err := h.Recheck(context.Background(), "db-backup", a); err == nil {
		t.Fatal("Recheck passes without the manifest")
	}
	mustApply(t, fresh, sc)
	b := mustVerify(t, fresh, sc).Artifacts["db-backup"]
	if err := h.Recheck(context.Background(), "db-backup", b); err != nil {
		t.Fatalf("Recheck of the new dump: %v", err)
	}
}

// A directory dump that outlives the upgrader that started it (here: one
// that stopped following it) is followed by the next attempt and proved
// whole once it has ended: every file read after the fact.
func TestBackupDBDirectoryFollowedAfterDetach(t *testing.T) {
	dirDumps(t)
	c := postgres(t)
	dir := t.TempDir()
	wrapper := filepath.Join(t.TempDir(), "pg_dump")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nsleep 1\nexec /usr/bin/pg_dump \"$@\"\n"), 0o755)
	h := pgHost(t, c, dir, ExecRunner{})
	h.Profile.DB.DumpCommand = wrapper
	st, _ := h.Build(pgSpec(dir))
	sc := stepContext(pgSpec(dir), nil)
	// Asked to stop once pg_dump's job is on record (a deadline instead
	// could come before the dump started on a loaded machine).
	stop := make(chan struct{})
	save := sc.Save
	sc.Stopped = stop
	sc.Save = func(v map[string]string) error {
		err := save(v)
		if v["job"] != "" {
			close(stop)
		}
		return err
	}
	if err := st.Apply(context.Background(), sc); !errors.Is(err, orchestrator.ErrDetached) {
		t.Fatalf("Apply: %v, want it detached from pg_dump", err)
	}
	sc.Resumed, sc.Stopped, sc.Save = true, nil, save
	next, _ := h.Build(pgSpec(dir))
	mustProbe(t, next, sc, false) // pg_dump still runs
	mustApply(t, next, sc)
	a := mustVerify(t, next, sc).Artifacts["db-backup"]
	if !isDir(a.Path) {
		t.Fatalf("%s: want the directory dump the first attempt started", a.Path)
	}
	if err := h.Recheck(context.Background(), "db-backup", a); err != nil {
		t.Fatalf("Recheck: %v", err)
	}
}
