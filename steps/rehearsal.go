package steps

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"upgrader/state/securefs"
)

// The restore rehearsal (upgrader's own rule, db.rehearse_restore or
// `upgrader verify-backup`): the dump is restored into a scratch database
// on the same server and every table's exact row count compared with the
// source's, then the scratch database is dropped. The source is counted in
// the snapshot pg_dump dumped (pg_dump --snapshot), so a POM still writing
// contacts during the backup makes no false difference; the counts are
// kept beside the dump (FILE.counts).

// ErrRehearsal is a restore rehearsal that found the dump is not the
// source: a table missing, or a different row count.
var ErrRehearsal = errors.New("upgrader's restore rehearsal: the restored dump differs from the source")

// countsQuery answers "schema.table|rows" for every table, exactly.
const countsQuery = `SELECT format('%I.%I', n.nspname, c.relname), (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text ` +
	`FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') ` +
	`AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%' ORDER BY 1`

// TableCounts maps "schema.table" to its rows.
type TableCounts map[string]int64

func parseCounts(lines []string) (TableCounts, error) {
	c := TableCounts{}
	for _, l := range lines {
		name, n, ok := strings.Cut(l, "|")
		v, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("psql answered %q to the row counts", l)
		}
		c[name] = v
	}
	return c, nil
}

// snapshotSession is a psql session holding a read-only transaction open,
// whose snapshot pg_dump dumps: the rows counted in it are the dump's.
type snapshotSession struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (s *backupDB) openSnapshot(ctx context.Context, database string) (*snapshotSession, string, error) {
	argv := append([]string{s.tool("psql", s.h.Profile.DB.PSQLCommand)}, s.conn(database)...)
	argv = append(argv, "--no-psqlrc", "--tuples-only", "--no-align", "--quiet", "--set=ON_ERROR_STOP=1")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append([]string(nil), baseEnv...), s.env()...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	ss := &snapshotSession{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	lines, err := ss.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSELECT pg_export_snapshot();")
	if err != nil || len(lines) != 1 {
		ss.close()
		return nil, "", fmt.Errorf("%w: the snapshot for the dump: %v %q", ErrDBUnreachable, err, lines)
	}
	return ss, lines[0], nil
}

// query sends SQL and returns its answer's lines, up to a marker.
func (ss *snapshotSession) query(sql string) ([]string, error) {
	const end = "--upgrader-end--"
	if _, err := io.WriteString(ss.in, sql+"\n\\echo "+end+"\n"); err != nil {
		return nil, err
	}
	var lines []string
	for ss.out.Scan() {
		if l := ss.out.Text(); l == end {
			return lines, nil
		} else if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, errors.New("psql ended before answering")
}

func (ss *snapshotSession) close() {
	io.WriteString(ss.in, "COMMIT;\n\\q\n")
	ss.in.Close()
	ss.cmd.Wait()
}

func countsPath(dump string) string { return dump + ".counts" }

// writeCounts keeps the source's counts beside the dump, durably.
func writeCounts(path string, c TableCounts) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, b, 0o600)
}

func readCounts(path string) (TableCounts, error) {
	b, err := securefs.ReadRegular(path, 64<<20)
	if err != nil {
		return nil, err
	}
	var c TableCounts
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}

// RehearsalResult is what a rehearsal did.
type RehearsalResult struct {
	Scratch  string        `json:"scratch"`
	Tables   int           `json:"tables"`
	Rows     int64         `json:"rows"`
	Took     time.Duration `json:"took_ns"`
	LiveDiff bool          `json:"counted_live"` // the source was counted now, not in the dump's snapshot
}

func (r RehearsalResult) String() string {
	s := fmt.Sprintf("restored into %s and counted: %d tables, %d rows, as in the source, in %.1f s (scratch database dropped)",
		r.Scratch, r.Tables, r.Rows, r.Took.Seconds())
	if r.LiveDiff {
		s += "; the source was counted at the rehearsal, not in the dump's snapshot"
	}
	return s
}

var scratchUnsafe = regexp.MustCompile(`[^a-z0-9_]`)

// ScratchName is the scratch database of a run's rehearsal: a name no
// site database has, the same for every attempt of the run (so a
// leftover is found and dropped).
func ScratchName(runID string) string {
	n := "upgrader_rehearsal_" + scratchUnsafe.ReplaceAllString(strings.ToLower(runID), "_")
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// RehearseRestore restores the dump at path into the scratch database of
// runID, compares every table's rows with want (nil: the source counted
// now), and drops the scratch database, also after a failure. A leftover
// of an earlier rehearsal (a kill) is dropped first.
func (h *Host) RehearseRestore(ctx context.Context, path, runID string, want TableCounts) (RehearsalResult, error) {
	s := &backupDB{h: h}
	db := h.Profile.DB
	res := RehearsalResult{Scratch: ScratchName(runID)}
	start := time.Now()
	psql := func(ctx context.Context, database, sql string) ([]string, error) {
		argv := append([]string{s.tool("psql", db.PSQLCommand)}, s.conn(database)...)
		argv = append(argv, "--no-psqlrc", "--tuples-only", "--no-align", "--quiet", "--set=ON_ERROR_STOP=1", "--command="+sql)
		var lines []string
		err := h.Run.Run(ctx, argv, s.env(), func(l string) {
			if l != "" {
				lines = append(lines, l)
			}
		})
		return lines, err
	}
	drop := func(ctx context.Context) error {
		_, err := psql(ctx, "postgres", `DROP DATABASE IF EXISTS "`+res.Scratch+`" WITH (FORCE)`)
		return err
	}
	if err := drop(ctx); err != nil {
		return res, fmt.Errorf("%w: the rehearsal's scratch database %s cannot be dropped: %v", ErrDBUnreachable, res.Scratch, err)
	}
	if _, err := psql(ctx, "postgres", `CREATE DATABASE "`+res.Scratch+`" TEMPLATE template0`); err != nil {
		return res, fmt.Errorf("the rehearsal cannot create its scratch database %s (the database user needs CREATEDB): %w", res.Scratch, err)
	}
	defer drop(context.WithoutCancel(ctx))
	argv := append([]string{s.tool("pg_restore", db.RestoreCommand)}, s.conn(res.Scratch)...)
	// Two jobs: the dump was written to a file, so its table of contents
	// has the offsets a parallel restore needs.
	argv = append(argv, "--no-owner", "--no-privileges", "--exit-on-error", "--jobs=2", path)
	if err := h.Run.Run(ctx, argv, s.env(), nil); err != nil {
		return res, fmt.Errorf("%w: pg_restore of %s into %s failed: %v", ErrRehearsal, path, res.Scratch, err)
	}
	if h.Failpoint != nil {
		h.Failpoint("rehearsal-restored", res.Scratch)
	}
	lines, err := psql(ctx, res.Scratch, countsQuery)
	if err != nil {
		return res, err
	}
	got, err := parseCounts(lines)
	if err != nil {
		return res, err
	}
	if want == nil {
		res.LiveDiff = true
		if lines, err = psql(ctx, db.Name, countsQuery); err != nil {
			return res, fmt.Errorf("%w: counting the source: %v", ErrDBUnreachable, err)
		}
		if want, err = parseCounts(lines); err != nil {
			return res, err
		}
	}
	var diffs []string
	for _, t := range sortedKeys(want) {
		n, ok := got[t]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s is missing (%d rows in the source)", t, want[t]))
		case n != want[t]:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the source %d", t, n, want[t]))
		}
		res.Rows += n
	}
	res.Tables = len(got)
	res.Took = time.Since(start)
	if len(diffs) > 0 {
		return res, fmt.Errorf("%w: %s; the dump cannot be trusted: find why (the pg_dump log, the disk), then upgrader retry", ErrRehearsal, strings.Join(diffs, "; "))
	}
	return res, nil
}

func sortedKeys(m TableCounts) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// removeCounts drops a stale counts file (a new dump is being made).
func removeCounts(dump string) error {
	if err := os.Remove(countsPath(dump)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
