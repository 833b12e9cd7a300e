package steps

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// The directory-format dump (pg_dump -Fd -j N -Z 1): N backends produce
// the rows of N tables at once, each table into its own file, where the
// custom format's one backend produces them one table after another. See
// dumpJobs for when it is taken.
//
// upgrader writes a manifest into the directory (upgrader.manifest): one
// line "sha256  size  name" for every file of the dump, sorted by name. The
// dump's recorded SHA-256 is the SHA-256 of that manifest and its size the
// sum of the files' sizes, so the recorded artifact names every byte of
// the directory and the guard before the point of no return re-checks
// each file against it (recheckDumpDir).

// manifestName is upgrader's own file in a directory dump.
const manifestName = "upgrader.manifest"

// splitTableBytes is the size (pg_table_size) from which a table is worth
// a pg_dump worker of its own: at the ~100 MB/s one backend dumps here, a
// smaller table takes well under a second, less than what the extra
// connection and files cost. A variable for the tests' small database.
var splitTableBytes int64 = 64 << 20

// dumpJobs is pg_dump's number of jobs, N: min(CPUs, tables worth a
// worker, connections to spare - 1), at least 1. pg_dump -j N opens N+1
// connections (a leader and N workers); the sessions in use are counted
// while psql's own is open, so one more is left than the figure says.
// Measured (testdata/dbbench, 1.2 GB POM-like database whose two large
// tables are 556 and 353 MB, PostgreSQL 15, 2 CPUs shared with other
// work; see the README's "The POM database backup"): -Fd -j 2 -Z 1 10.5 s
// against -Fc -Z 1 12.3 s and a default -Fc 24.9 s. With one job the
// directory format gains nothing over the custom format's one file, whose
// read-back overlaps the dump already: N = 1 keeps the custom format.
func dumpJobs(cpus, bigTables int, c Connections) int {
	return max(1, min(cpus, bigTables, int(c.Available-c.Used)-1))
}

// shapeQuery answers "database size|tables worth a worker|connections
// available|in use": one psql for all the step asks before the dump.
var shapeQuery = func() string {
	return "SELECT pg_database_size(current_database()), " +
		"(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' " +
		"AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND pg_table_size(c.oid) >= " + strconv.FormatInt(splitTableBytes, 10) + "), " +
		"current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int, " +
		"(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
}

// dbShape is what the step needs to know of the database before a dump:
// its size (for the free space), the tables worth a worker and the
// connections (for dumpJobs).
type dbShape struct {
	size      int64
	bigTables int
	conns     Connections
}

// dumpShape asks the server for the database's shape.
func (s *backupDB) dumpShape(ctx context.Context, database string) (dbShape, error) {
	argv := append([]string{s.tool("psql", s.h.Profile.DB.PSQLCommand)}, s.conn(database)...)
	argv = append(argv, "--no-psqlrc", "--tuples-only", "--no-align", "--command="+shapeQuery())
	var out strings.Builder
	if err := s.h.Run.Run(ctx, argv, s.env(), func(l string) { out.WriteString(l) }); err != nil {
		return dbShape{}, fmt.Errorf("%w (%s:%d, database %s): %v; the run holds: bring the database back, then upgrader retry",
			ErrDBUnreachable, s.h.Profile.DB.Host, s.h.Profile.DB.Port, database, err)
	}
	f := strings.Split(strings.TrimSpace(out.String()), "|")
	var n [4]int64
	for i := range n {
		var err error
		if len(f) != len(n) {
			err = errors.New("four fields")
		} else {
			n[i], err = strconv.ParseInt(f[i], 10, 64)
		}
		if err != nil {
			return dbShape{}, fmt.Errorf("the database's size, tables and connections: psql answered %q", out.String())
		}
	}
	return dbShape{size: n[0], bigTables: int(n[1]), conns: Connections{Available: n[2], Used: n[3]}}, nil
}

// fileCheck is one file of a directory dump, read whole.
type fileCheck struct {
	sum  string
	size int64
	err  error
}

// dataFile names pg_dump's files in a directory dump: the table of
// contents, one file of data per table (ID.dat, .gz when compressed) and
// the large objects (blobs.toc, blob_OID.dat).
var dataFile = regexp.MustCompile(`^(toc\.dat|blobs\.toc|[0-9]+\.dat(\.gz)?|blob_[0-9]+\.dat(\.gz)?)$`)

// checkDumpFile reads one file of a directory dump from r to its end:
// hashed, and a .gz file decompressed (gzip's CRC-32 and length prove the
// data whole, as pg_restore reading it would). f is the open file, made
// root's only and fsynced once read. klauspost/compress/gzip inflates the
// bench's 780 MB of table data in 5.3 s of CPU, the standard library's
// compress/gzip in 6.7 s (zlib, which upgrader built without cgo cannot
// use, in 2.6 s).
func checkDumpFile(f *os.File, r io.Reader, name string) fileCheck {
	h := sha256.New()
	n := &countWriter{}
	// Read in large pieces: 1 MB took the decompressing read of the
	// bench's 239 MB from 5.5 s of CPU to 4.9 s (gzip's own buffer is 4 kB).
	in := bufio.NewReaderSize(io.TeeReader(r, io.MultiWriter(h, n)), 1<<20)
	var err error
	if strings.HasSuffix(name, ".gz") {
		var z *gzip.Reader
		if z, err = gzip.NewReader(in); err == nil {
			// One gzip stream per file; anything after it is damage.
			z.Multistream(false)
			if _, err = io.Copy(io.Discard, z); err == nil {
				var extra int64
				extra, err = io.Copy(io.Discard, in)
				if err == nil && extra > 0 {
					err = fmt.Errorf("%d bytes after its compressed data", extra)
				}
			}
		}
	} else {
		_, err = io.Copy(io.Discard, in)
	}
	if err == nil {
		if err = f.Chmod(0o600); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("cut short (truncated)")
		}
		return fileCheck{err: fmt.Errorf("%s: %w", name, err)}
	}
	return fileCheck{sum: hex.EncodeToString(h.Sum(nil)), size: n.n}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// dirFollower checks the files of a directory dump as pg_dump writes
// them: each data file is read from its first byte as it grows, so the
// decompressing read that proves it whole overlaps the dump instead of
// following it.
type dirFollower struct {
	dir   string
	ended <-chan struct{}
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	files map[string]fileCheck
	done  int64
}

// followDumpDir starts following the directory pg_dump writes at dir;
// ended is closed once pg_dump has ended. Wait returns what was read.
func followDumpDir(ctx context.Context, dir string, ended <-chan struct{}, progress orchestrator.Progress) *dirFollower {
	d := &dirFollower{dir: dir, ended: ended, sem: make(chan struct{}, runtime.GOMAXPROCS(0)), files: map[string]fileCheck{}}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		seen := map[string]bool{}
		for last := false; ; {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				name := e.Name()
				// The table of contents is rewritten at the end: it is
				// read after pg_dump has ended.
				if seen[name] || name == "toc.dat" || !dataFile.MatchString(name) {
					continue
				}
				seen[name] = true
				d.wg.Add(1)
				go d.follow(ctx, name, progress)
			}
			if last {
				return
			}
			select {
			case <-ended:
				last = true // one more look: the last files
			case <-ctx.Done():
				return
			case <-time.After(followPoll):
			}
		}
	}()
	return d
}

func (d *dirFollower) follow(ctx context.Context, name string, progress orchestrator.Progress) {
	defer d.wg.Done()
	select {
	case d.sem <- struct{}{}:
		defer func() { <-d.sem }()
	case <-ctx.Done():
		return
	}
	f, err := securefs.OpenFile(filepath.Join(d.dir, name), os.O_RDONLY, 0)
	var c fileCheck
	if err != nil {
		c.err = err
	} else {
		defer f.Close()
		in := &countingReader{r: &growingReader{ctx: ctx, f: f, ended: d.ended}, label: "pg_dump " + name + ", read back as it is written"}
		c = checkDumpFile(f, in, name)
	}
	d.mu.Lock()
	d.files[name] = c
	d.done += c.size
	done := d.done
	d.mu.Unlock()
	if progress != nil {
		progress("pg_dump, read back as it is written", done, 0)
	}
}

// wait returns the files read, each with its check.
func (d *dirFollower) wait() map[string]fileCheck {
	d.wg.Wait()
	return d.files
}

// tocDataFiles lists the data files a directory dump's table of contents
// names: ID.dat(.gz) of every TABLE DATA entry, blobs.toc and the large
// objects it names.
func (s *backupDB) tocDataFiles(ctx context.Context, dir string, present map[string]bool) ([]string, error) {
	restore := s.tool("pg_restore", s.h.Profile.DB.RestoreCommand)
	var names []string
	var entries int
	blobs := false
	if err := s.h.Run.Run(ctx, []string{restore, "--list", dir}, nil, func(l string) {
		if l == "" || strings.HasPrefix(l, ";") {
			return
		}
		entries++
		id, rest, _ := strings.Cut(l, ";")
		fields := strings.Fields(rest)
		switch {
		case len(fields) >= 4 && fields[2] == "TABLE" && fields[3] == "DATA":
			name := id + ".dat" // uncompressed with -Z 0
			if !present[name] {
				name += ".gz"
			}
			names = append(names, name)
		case len(fields) >= 3 && fields[2] == "BLOBS": // the large objects' data (BLOB entries are their metadata)
			blobs = true
		}
	}); err != nil {
		return nil, fmt.Errorf("%s cannot be read back by pg_restore (its table of contents is damaged or missing): %w", dir, err)
	}
	if entries == 0 {
		return nil, fmt.Errorf("%s lists no database objects", dir)
	}
	if blobs {
		names = append(names, "blobs.toc")
		b, err := securefs.ReadRegular(filepath.Join(dir, "blobs.toc"), 1<<30)
		if err != nil {
			return nil, fmt.Errorf("%s: the large objects' list: %w", dir, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if _, file, ok := strings.Cut(sc.Text(), " "); ok {
				names = append(names, file)
			}
		}
	}
	return names, nil
}

// checkDumpDir proves a directory dump whole and returns its manifest:
// pg_restore lists its table of contents; every data file it names is
// there and read to the end (decompressed); the directory holds nothing
// else (upgrader's manifest aside); every file is made root's only and
// fsynced. known holds files already read (as pg_dump wrote them): their
// checks count when the file still has the size read.
func (s *backupDB) checkDumpDir(ctx context.Context, dir string, known map[string]fileCheck, progress orchestrator.Progress) ([]byte, int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	present := map[string]bool{}
	for _, e := range entries {
		if e.Name() == manifestName {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, 0, fmt.Errorf("%s holds %s, a %s: a dump holds regular files only", dir, e.Name(), securefs.TypeName(e.Type()))
		}
		if !dataFile.MatchString(e.Name()) {
			return nil, 0, fmt.Errorf("%s holds %s, which pg_dump does not write: the dump was changed; make a new backup", dir, e.Name())
		}
		present[e.Name()] = true
	}
	if !present["toc.dat"] {
		return nil, 0, fmt.Errorf("%s has no toc.dat: not a whole directory-format dump", dir)
	}
	named, err := s.tocDataFiles(ctx, dir, present)
	if err != nil {
		return nil, 0, err
	}
	want := map[string]bool{"toc.dat": true}
	for _, n := range named {
		if !present[n] {
			return nil, 0, fmt.Errorf("%s lacks %s, which its table of contents names (a table's data): the dump is not whole", dir, n)
		}
		want[n] = true
	}
	for n := range present {
		if !want[n] {
			return nil, 0, fmt.Errorf("%s holds %s, which its table of contents does not name: the dump was changed; make a new backup", dir, n)
		}
	}
	// Files not read yet (or changed since) are read now, as many at once
	// as there are CPUs.
	checks := map[string]fileCheck{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for n := range want {
		path := filepath.Join(dir, n)
		st, err := os.Lstat(path)
		if err != nil {
			return nil, 0, err
		}
		if c, ok := known[n]; ok && c.err == nil && c.size == st.Size() {
			checks[n] = c
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var c fileCheck
			if f, err := securefs.OpenFile(path, os.O_RDONLY, 0); err != nil {
				c.err = err
			} else {
				c = checkDumpFile(f, &countingReader{r: f, total: st.Size(), progress: progress, label: "reading " + n}, n)
				f.Close()
			}
			mu.Lock()
			checks[n] = c
			mu.Unlock()
		}()
	}
	wg.Wait()
	var m strings.Builder
	var size int64
	for _, n := range slices.Sorted(maps.Keys(checks)) {
		c := checks[n]
		if c.err != nil {
			return nil, 0, fmt.Errorf("%s cannot be read to the end (damaged or truncated): %w", dir, c.err)
		}
		fmt.Fprintf(&m, "%s  %d  %s\n", c.sum, c.size, n)
		size += c.size
	}
	return []byte(m.String()), size, nil
}

// verifyDumpDir proves a finished directory dump whole (checkDumpDir) and
// the same as its manifest, and records it.
func (s *backupDB) verifyDumpDir(ctx context.Context, dir string, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	mpath := filepath.Join(dir, manifestName)
	recorded, err := securefs.ReadRegular(mpath, 64<<20)
	if err != nil {
		return orchestrator.Artifact{}, fmt.Errorf("%s has no readable %s (%v): not a dump upgrader finished", dir, manifestName, err)
	}
	m, size, err := s.checkDumpDir(ctx, dir, nil, progress)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	if !bytes.Equal(m, recorded) {
		if err := diffManifests(dir, recorded, m); err != nil {
			return orchestrator.Artifact{}, err
		}
		return orchestrator.Artifact{}, fmt.Errorf("%s: its %s differs from the files (edited)", dir, manifestName)
	}
	return s.dirArtifact(dir, m, size)
}

func (s *backupDB) dirArtifact(dir string, manifest []byte, size int64) (orchestrator.Artifact, error) {
	st, err := os.Lstat(filepath.Join(dir, manifestName))
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	sum := sha256.Sum256(manifest)
	return orchestrator.Artifact{Path: s.h.Profile.Unroot(dir), SHA256: hex.EncodeToString(sum[:]), Size: size,
		ModTime: st.ModTime().UTC(), Host: s.h.Role, Dir: true}, nil
}

// writeManifest writes the manifest into a finished dump's directory,
// durably (the directory fsynced too).
func writeManifest(dir string, manifest []byte) error {
	f, err := securefs.CreateExclusive(filepath.Join(dir, manifestName), 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(manifest); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	return syncDir(dir)
}

// manifestEntry is one line of a manifest.
type manifestEntry struct {
	sum  string
	size int64
}

func parseManifest(b []byte) (map[string]manifestEntry, error) {
	m := map[string]manifestEntry{}
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Split(l, "  ")
		var size int64
		var err error
		if len(f) == 3 {
			size, err = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) != 3 || err != nil || len(f[0]) != 64 || !dataFile.MatchString(f[2]) {
			return nil, fmt.Errorf("line %d is not \"sha256  size  name\" of a dump file", i+1)
		}
		m[f[2]] = manifestEntry{f[0], size}
	}
	return m, nil
}

// diffManifests names the first difference between a recorded manifest
// and the files found: missing, added, another size or hash.
func diffManifests(dir string, recorded, found []byte) error {
	want, err := parseManifest(recorded)
	if err != nil {
		return fmt.Errorf("%s: its %s: %v", dir, manifestName, err)
	}
	got, err := parseManifest(found)
	if err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[n]
		switch {
		case !ok:
			return fmt.Errorf("%s lacks %s, which its %s lists: the dump is not whole", dir, n, manifestName)
		case g.size != want[n].size:
			return fmt.Errorf("%s/%s changed since it was verified: size %d, recorded %d", dir, n, g.size, want[n].size)
		case g.sum != want[n].sum:
			return fmt.Errorf("%s/%s changed since it was verified: sha256 %s, recorded %s", dir, n, g.sum, want[n].sum)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[n]; !ok {
			return fmt.Errorf("%s holds %s, which its %s does not list: the dump was changed; make a new backup", dir, n, manifestName)
		}
	}
	return nil
}

// recheckDumpDir proves a directory dump is still the one recorded before
// a guarded step: its manifest has the recorded SHA-256, the directory
// holds exactly the files it lists, each with its size and SHA-256. (The
// data was proved whole when recorded; what is proved here is that no
// byte changed since.) Times are not compared: a copy from another server
// has its own.
func recheckDumpDir(a orchestrator.Artifact, progress orchestrator.Progress) error {
	dir := a.Path
	b, err := securefs.ReadRegular(filepath.Join(dir, manifestName), 64<<20)
	if err != nil {
		return fmt.Errorf("%s was verified earlier and its %s is now unreadable: %w", dir, manifestName, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != a.SHA256 {
		return fmt.Errorf("%s changed since it was verified: its %s has sha256 %x, recorded %s", dir, manifestName, sum, a.SHA256)
	}
	want, err := parseManifest(b)
	if err != nil {
		return fmt.Errorf("%s: its %s: %v", dir, manifestName, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	found := map[string]bool{}
	var total int64
	for _, e := range entries {
		n := e.Name()
		if n == manifestName {
			continue
		}
		w, ok := want[n]
		switch {
		case !ok:
			return fmt.Errorf("%s holds %s, which it did not hold when it was verified: the dump was changed; make a new backup", dir, n)
		case !e.Type().IsRegular():
			return fmt.Errorf("%s/%s is now a %s, not the file verified: the dump was changed; make a new backup", dir, n, securefs.TypeName(e.Type()))
		}
		st, err := os.Lstat(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		if st.Size() != w.size {
			return fmt.Errorf("%s/%s changed since it was verified: size %d, recorded %d", dir, n, st.Size(), w.size)
		}
		total += st.Size()
		found[n] = true
	}
	for n := range want {
		if !found[n] {
			return fmt.Errorf("%s lacks %s, which it held when it was verified: the dump is not whole", dir, n)
		}
	}
	if total != a.Size {
		return fmt.Errorf("%s changed since it was verified: %d bytes, recorded %d", dir, total, a.Size)
	}
	for _, n := range slices.Sorted(maps.Keys(want)) {
		sum, _, err := HashFile(filepath.Join(dir, n), progress)
		if err != nil {
			return err
		}
		if sum != want[n].sum {
			return fmt.Errorf("%s/%s changed since it was verified: sha256 %s, recorded %s", dir, n, sum, want[n].sum)
		}
	}
	return nil
}
