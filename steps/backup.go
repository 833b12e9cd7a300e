package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// backupDB dumps the POM database with pg_dump, in custom format (one
// file) or, when several jobs pay, in directory format (dumpdir.go). The
// dump is written under a temporary name, fsynced, proved whole and only
// then renamed, so a dump with the final name is always a complete,
// readable archive. The password reaches the tools
// only through PGPASSFILE: never argv, never PGPASSWORD.
type backupDB struct {
	h *Host
	// verified is the dump this step value proved whole and hashed (in
	// Probe or Apply), so that Verify does not read it a second time.
	verified *orchestrator.Artifact
}

// ErrDBUnreachable is upgrader's own database check failing: the database
// cannot be reached, and the steps that need it hold until it can. It is
// not POM's "DB alarm" (a product fix in 3.1.1 SP1, OUTREACH-9570).
var ErrDBUnreachable = errors.New("upgrader's database check: the POM database is unreachable")

func (s *backupDB) path(sc orchestrator.StepContext) string {
	dir := s.h.Profile.Path(sc.Spec.Params["backup_dir"])
	return filepath.Join(dir, fmt.Sprintf("pomdb-%s-%s.dump", sc.Spec.Params["database"], sc.RunID))
}

func (s *backupDB) tool(name, configured string) string {
	if configured == "" {
		configured = "/usr/bin/" + name
	}
	return s.h.Profile.Path(configured)
}

// dumpCompression is pg_dump's gzip level (-Z) for the custom-format
// dump, chosen by measurement (make bench and by hand, testdata/dbbench: a
// 1.2 GB POM-like database, PostgreSQL 15, 2 CPUs shared with other work).
// pg_dump compresses in its one process: at the default level (6) that
// is 22.6 s of CPU and the dump takes 24.9 s; at -Z 1, 9.4 s of CPU, 12.3
// s, 239 MB against 208 MB (+15%, the limit is +30%); -Z 2 11.1 s of CPU,
// 13.3 s, 233 MB; -Z 0 1.2 s of CPU but still 12.6 s and 813 MB (3.9x).
// From level 1 down, the server producing the rows (one backend, one
// COPY at a time), not the compression, sets the dump's time: no level
// goes below about 0.5x the default. PostgreSQL 15's pg_dump offers gzip
// only (lz4 and zstd for dumps came in 16). Only several backends go
// lower: -Fd -j 2 -Z 1 takes 10.5 s, and backup-db writes that directory
// format when the database has tables worth a worker each (dumpJobs,
// dumpdir.go); else this custom format.
//
// The verifying read runs while pg_dump writes (followDump): pg_restore
// reading the growing file costs 3.4 s of CPU that overlaps the dump
// instead of following it, and the file keeps the data offsets of its
// table of contents (pg_dump still writes to a file, not a pipe: the
// rehearsal's pg_restore -j 2 needs them). Taking turns, best of 3: the
// step 14.8 s, its pg_dump -Z 1 alone 11.9 s, a default pg_dump -Fc
// 23.9 s: 0.62x, not the 0.5x aimed at. On 2 CPUs the server's backend,
// pg_dump's compression and pg_restore's reading share two cores
// (pg_restore at nice 10 gained nothing: 3.4 s over the bare dump
// against 3.0 s).
const dumpCompression = "1"

// conn is the connection arguments every client gets.
func (s *backupDB) conn(database string) []string {
	db := s.h.Profile.DB
	return []string{"--host=" + db.Host, "--port=" + strconv.Itoa(db.Port), "--username=" + db.User, "--no-password", "--dbname=" + database}
}

func (s *backupDB) env() []string {
	if s.h.Profile.DB.PasswordFile == "" {
		return nil
	}
	return []string{"PGPASSFILE=" + s.h.Profile.Path(s.h.Profile.DB.PasswordFile)}
}

// verifyDump proves a file is a complete custom-format archive and
// records it: the magic bytes, pg_restore listing its table of contents,
// and pg_restore reading every entry to the end from a pipe through which
// upgrader hashes the file, so the read that proves it whole is also the
// read that hashes it (one pass, not two).
func (s *backupDB) verifyDump(ctx context.Context, path string, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	if isDir(path) {
		return s.verifyDumpDir(ctx, path, progress)
	}
	return s.checkDump(ctx, path, false, progress)
}

// isDir says path is a directory itself (not a symlink to one).
func isDir(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.IsDir()
}

// checkDump is verifyDump; readWhole says pg_restore has already read the
// file's every entry to the end (as pg_dump wrote it, see followDump): then
// only its final table of contents is listed and the file hashed.
func (s *backupDB) checkDump(ctx context.Context, path string, readWhole bool, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	f, st, err := securefs.OpenRegular(path)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	defer f.Close()
	magic := make([]byte, 5)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("PGDMP")) {
		return orchestrator.Artifact{}, fmt.Errorf("%s is not a pg_dump custom-format archive", path)
	}
	restore := s.tool("pg_restore", s.h.Profile.DB.RestoreCommand)
	var entries int
	if err := s.h.Run.Run(ctx, []string{restore, "--list", path}, nil, func(l string) {
		if l != "" && !strings.HasPrefix(l, ";") {
			entries++
		}
	}); err != nil {
		return orchestrator.Artifact{}, fmt.Errorf("%s cannot be read back by pg_restore (truncated or damaged): %w", path, err)
	}
	if entries == 0 {
		return orchestrator.Artifact{}, fmt.Errorf("%s lists no database objects", path)
	}
	// --list reads only the table of contents; a dump cut short in its
	// data still lists. Reading every entry out (to /dev/null) proves the
	// data is whole.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return orchestrator.Artifact{}, err
	}
	sum := sha256.New()
	if !readWhole {
		in := &countingReader{r: io.TeeReader(f, sum), total: st.Size(), progress: progress, label: "pg_restore " + filepath.Base(path)}
		if err := s.readAll(ctx, in); err != nil {
			return orchestrator.Artifact{}, fmt.Errorf("%s cannot be read to the end by pg_restore (truncated or damaged): %w", path, err)
		}
	}
	// pg_restore may stop before the end (padding after the last entry):
	// the hash covers the whole file.
	if _, err := io.Copy(sum, f); err != nil {
		return orchestrator.Artifact{}, err
	}
	after, err := f.Stat()
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	if after.Size() != st.Size() || !after.ModTime().Equal(st.ModTime()) {
		return orchestrator.Artifact{}, fmt.Errorf("%s changed while it was being checked", path)
	}
	a := orchestrator.Artifact{Path: s.h.Profile.Unroot(path), SHA256: hex.EncodeToString(sum.Sum(nil)), Size: st.Size(),
		ModTime: st.ModTime().UTC(), Host: s.h.Role}
	return a, nil
}

// readAll has pg_restore read a whole archive from in (to /dev/null):
// every entry's data decompressed, the proof the archive is whole.
func (s *backupDB) readAll(ctx context.Context, in io.Reader) error {
	run, ok := s.h.Run.(InputRunner)
	if !ok {
		return fmt.Errorf("internal: %T cannot feed pg_restore", s.h.Run)
	}
	return run.RunInput(ctx, []string{s.tool("pg_restore", s.h.Profile.DB.RestoreCommand), "--file=/dev/null"}, nil, in, nil)
}

// followDump has pg_restore read the dump pg_dump is writing at path, from
// its first byte to its last, as it grows: the read that proves the dump
// whole overlaps the dump instead of following it (see dumpCompression
// for the figures). pg_dump writes the header and table of contents
// first, then the data, then rewrites the table of contents in place with
// the data offsets; pg_restore reading a stream needs no offsets, and the
// rewritten table of contents is listed afterwards. ended is closed once
// pg_dump has ended: whatever it wrote is then read to the end.
func (s *backupDB) followDump(ctx context.Context, path string, ended <-chan struct{}, progress orchestrator.Progress) error {
	var f *os.File
	for f == nil {
		var err error
		f, err = securefs.OpenFile(path, os.O_RDONLY, 0)
		switch {
		case err == nil:
		case !errors.Is(err, os.ErrNotExist):
			return err
		default:
			select {
			case <-ended:
				return fmt.Errorf("pg_dump ended without writing %s", path)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(followPoll):
			}
		}
	}
	defer f.Close()
	in := &countingReader{r: &growingReader{ctx: ctx, f: f, ended: ended}, progress: progress, label: "pg_dump, read back by pg_restore as it is written"}
	return s.readAll(ctx, in)
}

// followPoll is how often a read that caught up with pg_dump looks again.
const followPoll = 20 * time.Millisecond

// growingReader reads a file another process is still writing: at its end
// it waits for more until the writer has ended, then reads what is left.
type growingReader struct {
	ctx       context.Context
	f         *os.File
	ended     <-chan struct{}
	lastRound bool
}

func (g *growingReader) Read(p []byte) (int, error) {
	for {
		n, err := g.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		if g.lastRound {
			return 0, io.EOF
		}
		select {
		case <-g.ended:
			g.lastRound = true // one more read: pg_dump's last bytes
		case <-g.ctx.Done():
			return 0, g.ctx.Err()
		case <-time.After(followPoll):
		}
	}
}

// countingReader reports the progress of a read.
type countingReader struct {
	r        io.Reader
	done     int64
	total    int64
	label    string
	progress orchestrator.Progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(c.label, c.done, c.total)
	}
	return n, err
}

func (s *backupDB) Probe(ctx context.Context, sc orchestrator.StepContext) (bool, error) {
	if unsettled, err := s.h.jobUnsettled(sc, ""); unsettled || err != nil {
		return false, err
	}
	if _, err := os.Stat(s.path(sc)); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	a, err := s.verifyDump(ctx, s.path(sc), sc.Progress)
	if err != nil {
		return false, nil
	}
	s.verified = &a
	return true, nil
}

// Apply runs pg_dump as a supervised job (it lives on if upgrader dies, and
// a resumed step follows it), into a private temp file, then proves the
// dump and renames it into place.
func (s *backupDB) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	final := s.path(sc)
	dir := filepath.Dir(final)
	if err := privateBackupDir(dir, "db.backup_dir"); err != nil {
		return err
	}
	tmp := final + ".partial"
	database := sc.Spec.Params["database"]
	pgDump := s.tool("pg_dump", s.h.Profile.DB.DumpCommand)
	// The format and jobs are chosen in prepare (dumpJobs), from what the
	// server answers; a dump followed after a crash is checked as what it
	// left at tmp: a file or a directory.
	jobs := 1
	var extra []string // --snapshot with the rehearsal on
	command := func() []string {
		argv := []string{pgDump, "--format=custom", "--compress=" + dumpCompression, "--file=" + tmp}
		if jobs > 1 {
			argv = []string{pgDump, "--format=directory", "--jobs=" + strconv.Itoa(jobs), "--compress=" + dumpCompression, "--file=" + tmp}
		}
		return append(append(argv, s.conn(database)...), extra...)
	}
	// With the rehearsal on, pg_dump dumps the snapshot of a transaction
	// upgrader holds open, in which it then counts the source's rows.
	rehearse := sc.Spec.Params["rehearse"] == "true"
	var snap *snapshotSession
	if rehearse {
		ss, id, err := s.openSnapshot(ctx, database)
		if err != nil {
			return fmt.Errorf("%w; the run holds: bring the database back, then upgrader retry", err)
		}
		defer ss.close()
		snap, extra = ss, []string{"--snapshot=" + id}
	}
	started := false
	// The verifying read follows pg_dump as it writes (a dump this process
	// starts; one followed after a crash is read after it ends).
	ended := make(chan struct{})
	followed := make(chan error, 1)
	var dirFollow *dirFollower
	err := s.h.runJob(ctx, sc, jobRun{what: "pg_dump", argv: []string{pgDump}, env: s.env(), private: true,
		// pg_dump only reads the database: one interrupted is run again.
		rerun: true,
		// It writes the dump alone: the backup directory is made durable,
		// not the whole file system (a syncfs there cost 0.35 s in the
		// bench, flushing the database server's own writes).
		writes:  []string{dir},
		line:    func(l string) { sc.Log.Info().Str("pg_dump", l).Send() },
		command: command,
		prepare: func() error {
			started = true
			if err := os.RemoveAll(tmp); err != nil {
				return err
			}
			if err := removeCounts(final); err != nil {
				return err
			}
			shape, err := s.dumpShape(ctx, database)
			if err != nil {
				return err
			}
			size := shape.size
			if free, ok := freeBytes(dir); ok && free < size+size/10 {
				return fmt.Errorf("%s has %s free and the database is %s: free at least %s there, then upgrader resume",
					dir, orchestrator.BytesText(free), orchestrator.BytesText(size), orchestrator.BytesText(size+size/10-free))
			}
			jobs = dumpJobs(runtime.GOMAXPROCS(0), shape.bigTables, shape.conns)
			sc.Log.Info().Int("jobs", jobs).Int("tables_worth_a_worker", shape.bigTables).Int64("connections_available", shape.conns.Available).
				Int64("connections_used", shape.conns.Used).Msg("pg_dump's jobs chosen (upgrader's own rule, see dumpJobs)")
			if jobs > 1 {
				dirFollow = followDumpDir(ctx, tmp, ended, sc.Progress)
			} else {
				go func() { followed <- s.followDump(ctx, tmp, ended, sc.Progress) }()
			}
			return nil
		}})
	close(ended)
	readWhole := false
	var known map[string]fileCheck
	if started && err == nil && dirFollow != nil {
		known = dirFollow.wait()
	} else if started && err == nil {
		select {
		case ferr := <-followed:
			// A read that failed is not the last word: the whole check
			// below reads the finished file again.
			if readWhole = ferr == nil; !readWhole {
				sc.Log.Warn().Err(ferr).Msg("the read of the dump as it was written failed: reading the finished dump")
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if errors.Is(err, orchestrator.ErrDetached) {
		return err // pg_dump still writes it
	}
	var a orchestrator.Artifact
	if err == nil {
		a, err = s.finishDump(ctx, tmp, readWhole, known, sc.Progress)
	}
	if err == nil && snap != nil && started {
		// Counted in the dump's snapshot; a dump this process did not
		// start (one followed after a crash) is compared with the
		// source as it is at the rehearsal, and the journal says so.
		var lines []string
		if lines, err = snap.query(countsQuery + ";"); err == nil {
			var c TableCounts
			if c, err = parseCounts(lines); err == nil {
				err = writeCounts(countsPath(final), c)
			}
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// A final name that holds something else (a dump Probe refused, of
	// the other format) gives way: rename replaces a file, not a directory.
	if st, lerr := os.Lstat(final); lerr == nil && (st.IsDir() || isDir(tmp)) {
		if err := os.RemoveAll(final); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	a.Path = s.h.Profile.Unroot(final)
	s.verified = &a
	return syncDir(dir)
}

// finishDump proves what pg_dump left at tmp whole and records it: a
// custom-format file (made private and fsynced, then checkDump), or a
// directory (checkDumpDir, then its manifest written and the directory
// fsynced). known are the files of a directory already read as written.
func (s *backupDB) finishDump(ctx context.Context, tmp string, readWhole bool, known map[string]fileCheck, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	st, err := os.Lstat(tmp)
	if err != nil {
		return orchestrator.Artifact{}, fmt.Errorf("pg_dump left no dump at %s: %w", tmp, err)
	}
	if !st.IsDir() {
		if err := makePrivate(tmp); err != nil {
			return orchestrator.Artifact{}, err
		}
		return s.checkDump(ctx, tmp, readWhole, progress)
	}
	m, size, err := s.checkDumpDir(ctx, tmp, known, progress)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	if err := writeManifest(tmp, m); err != nil {
		return orchestrator.Artifact{}, err
	}
	return s.dirArtifact(tmp, m, size)
}

// Verify records the dump: the one Probe or Apply just proved whole, if the
// file is still that one (same size and time, in a directory only root
// can write), else it proves it again.
func (s *backupDB) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	p := s.path(sc)
	var a orchestrator.Artifact
	if v := s.verified; v != nil && v.Path == s.h.Profile.Unroot(p) && (sameFile(p, v.Size, v.ModTime) || sameManifest(p, *v)) {
		a = *v
	} else {
		var err error
		if a, err = s.verifyDump(ctx, p, sc.Progress); err != nil {
			return orchestrator.Outputs{}, err
		}
	}
	out := orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"db-backup": a}}
	if sc.Spec.Params["rehearse"] == "true" {
		want, err := readCounts(countsPath(p))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, err
		}
		r, err := s.h.RehearseRestore(ctx, p, sc.RunID, want)
		if err != nil {
			return out, err
		}
		out.Values = map[string]string{"rehearsal": r.String()}
		sc.Log.Info().Str("rehearsal", r.String()).Send()
	}
	return out, nil
}

// sameFile says path still has the size and modification time recorded.
func sameFile(path string, size int64, mod time.Time) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Size() == size && st.ModTime().UTC().Equal(mod)
}

// sameManifest says the directory dump at path still has the manifest
// recorded in a (same time, same SHA-256).
func sameManifest(path string, a orchestrator.Artifact) bool {
	m := filepath.Join(path, manifestName)
	st, err := os.Lstat(m)
	if !isDir(path) || err != nil || !st.ModTime().UTC().Equal(a.ModTime) {
		return false
	}
	b, err := securefs.ReadRegular(m, 64<<20)
	sum := sha256.Sum256(b)
	return err == nil && hex.EncodeToString(sum[:]) == a.SHA256
}

// privateBackupDir makes a backup directory (0700) or checks the one the
// site gave: a dump holds every contact of the site, and a directory
// others can write would let them swap it under upgrader.
func privateBackupDir(dir, setting string) error {
	if err := securefs.MkdirPrivate(dir, "backup directory"); err != nil {
		return fmt.Errorf("%w (the profile's %s): backups hold the site's data; give a directory only root can write", err, setting)
	}
	return nil
}

// makePrivate makes a finished backup root's only (0600), whatever mode
// its tool gave it, and durable.
func makePrivate(path string) error {
	f, err := securefs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	return f.Sync()
}

// freeBytes is the space left for an unprivileged writer in dir's
// filesystem.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// backupCommand backs up an Oracle or SQL Server database with the
// site's own command; upgrader checks the file it made and guards it.
type backupCommand struct{ h *Host }

func (s backupCommand) path(sc orchestrator.StepContext) string {
	dir := s.h.Profile.Path(sc.Spec.Params["backup_dir"])
	return filepath.Join(dir, fmt.Sprintf("pomdb-%s-%s.bak", sc.Spec.Params["database"], sc.RunID))
}

func (s backupCommand) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	if unsettled, err := s.h.jobUnsettled(sc, ""); unsettled || err != nil {
		return false, err
	}
	st, err := os.Stat(s.path(sc))
	return err == nil && st.Mode().IsRegular() && st.Size() > 0, nil
}

// Apply runs the site's command as a supervised job, into a temp file
// made private, then renames it into place.
func (s backupCommand) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	final := s.path(sc)
	if err := privateBackupDir(filepath.Dir(final), "db.backup_dir"); err != nil {
		return err
	}
	tmp := final + ".partial"
	argv := make([]string, len(s.h.Profile.DB.BackupCommand))
	for i, a := range s.h.Profile.DB.BackupCommand {
		argv[i] = strings.ReplaceAll(a, "{backup}", tmp)
	}
	err := s.h.runJob(ctx, sc, jobRun{what: "the backup command", argv: s.h.Profile.Command(argv), env: s.env(), private: true,
		// A backup only reads the database: one interrupted is made again.
		rerun: true,
		// Its backup is its work: the backup directory is made durable.
		writes: []string{filepath.Dir(final)},
		line:   func(l string) { sc.Log.Info().Str("backup", l).Send() },
		prepare: func() error {
			if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		}})
	if errors.Is(err, orchestrator.ErrDetached) {
		return err
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup command: %w", err)
	}
	if st, err := os.Stat(tmp); err != nil || st.Size() == 0 {
		os.Remove(tmp)
		return fmt.Errorf("the backup command left no backup at %s", tmp)
	}
	if err := makePrivate(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

func (s backupCommand) env() []string {
	if s.h.Profile.DB.PasswordFile == "" {
		return nil
	}
	return []string{"UPGRADER_DB_PASSWORD_FILE=" + s.h.Profile.Path(s.h.Profile.DB.PasswordFile)}
}

func (s backupCommand) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	a, err := s.h.attestedFile(s.h.Profile.Unroot(s.path(sc)))
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	return orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"db-backup": a}}, nil
}
