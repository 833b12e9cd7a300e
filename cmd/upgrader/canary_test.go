package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"upgrader/steps/bundle"
)

// canarySecret is the database password in the simulated hosts' pgpass
// file. No log, journal, state file, snapshot, bundle, output, or argv or
// environment of a child process may ever hold it.
const canarySecret = "canary-S3cr3t-7f1e"

// canary counts what the tests of this package searched for the secret;
// TestMain prints the figure.
var canary struct {
	sync.Mutex
	places map[string]int // kind of place → how many searched
	hits   int
}

// canaryCheck searches data (from a place of the given kind) for the secret.
func canaryCheck(t testing.TB, kind, where string, data []byte) {
	t.Helper()
	canary.Lock()
	if canary.places == nil {
		canary.places = map[string]int{}
	}
	canary.places[kind]++
	found := bytes.Contains(data, []byte(canarySecret))
	if found {
		canary.hits++
	}
	canary.Unlock()
	if found {
		t.Errorf("the database password is in %s (%s)", where, kind)
	}
}

// canaryCheckHost searches every file a simulated host holds, except the
// password file itself: state, snapshot, logs, backups, the host tree, and
// the argv and environment every simulated tool was started with.
func canaryCheckHost(t testing.TB, s *sim) {
	t.Helper()
	pgpass := filepath.Join(s.root, "etc/upgrader/pgpass")
	if b, err := os.ReadFile(pgpass); err == nil && !bytes.Contains(b, []byte(canarySecret)) {
		t.Fatalf("%s does not hold the canary: the search would prove nothing", pgpass)
	}
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == pgpass || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		canaryCheck(t, canaryKind(s, path), path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// canaryKind names the kind of place a file is, for the figures.
func canaryKind(s *sim, path string) string {
	rel, _ := filepath.Rel(s.dir, path)
	switch {
	case strings.HasPrefix(rel, "state/") && strings.Contains(rel, ".db"):
		return "state file"
	case strings.HasPrefix(rel, "state/jobs/"):
		return "job log" // and its lock, pid and status records
	case strings.HasSuffix(rel, ".log") && strings.HasPrefix(rel, "state/"):
		return "upgrader log"
	case rel == "root/sim/control/exec.log":
		return "child argv+environ log"
	case strings.Contains(rel, "backups"):
		return "backup"
	}
	return "host file"
}

// canaryFigure is the family's summary line.
func canaryFigure() string {
	canary.Lock()
	defer canary.Unlock()
	total := 0
	var kinds []string
	for _, k := range []string{"state file", "upgrader log", "job log", "journal", "output", "child argv+environ log", "backup", "bundle", "host file"} {
		if n := canary.places[k]; n > 0 {
			total += n
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	return fmt.Sprintf("secrets canary: %d places searched (%s), %d hits", total, strings.Join(kinds, ", "), canary.hits)
}

// The password reaches pg_dump through the password file only: a run that
// is killed in the middle of the dump and resumed leaves no trace of it
// anywhere, and the children's argv and environment are on record.
func TestSecretsCanaryUpgrade(t *testing.T) {
	s := newSim(t)
	killAt(t, s, "pg_dump:2")
	r := s.mustRun(exitOK, "resume", "--yes")
	canaryCheck(t, "output", "resume output", []byte(r.stdout+r.stderr))
	for _, args := range [][]string{{"journal", "-o", "json"}, {"journal"}} {
		r := s.mustRun(exitOK, args...)
		canaryCheck(t, "journal", strings.Join(args, " "), []byte(r.stdout+r.stderr))
	}
	r = s.mustRun(exitOK, "status", "-o", "json")
	canaryCheck(t, "output", "status", []byte(r.stdout+r.stderr))
	exec, err := os.ReadFile(filepath.Join(s.root, "sim/control/exec.log"))
	if err != nil || !bytes.Contains(exec, []byte("pg_dump")) || !bytes.Contains(exec, []byte("PGPASSFILE=")) {
		t.Fatalf("the children's argv and environment were not recorded: %v\n%s", err, exec)
	}
	canaryCheckHost(t, s)
}

// A site that wrote the database password into its backup command, in any
// of the shapes such commands take: the support bundle's copy of the
// profile keeps none of it (nor does any other file of the bundle).
func TestSecretsCanaryBundleProfileCommands(t *testing.T) {
	s := newSim(t)
	b, err := os.ReadFile(s.profile)
	if err != nil {
		t.Fatal(err)
	}
	command := strings.Join([]string{
		`/usr/bin/rman`, `system/` + canarySecret + `@POM`, `-p`, canarySecret, `-p` + canarySecret, `-P`, canarySecret,
		`--password=` + canarySecret, `PASSWORD=` + canarySecret, `ALTER USER pom IDENTIFIED BY ` + canarySecret, canarySecret, `{backup}`,
	}, `", "`)
	prof := strings.Replace(string(b), "  kind: postgres\n", "  kind: oracle\n  backup_command: [\""+command+"\"]\n", 1)
	if err := os.WriteFile(s.profile, []byte(prof), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustRun(exitOK, "plan") // the profile is accepted as it is
	out := t.TempDir()
	r := s.mustRun(exitOK, "bundle", "--out", out, "-o", "json")
	canaryCheck(t, "output", "bundle output", []byte(r.stdout+r.stderr))
	var res bundle.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("result JSON: %v\n%s", err, r.stdout)
	}
	dir := extract(t, res.Path)
	checkExtracted(t, res.Path, dir)
	if copy := readFile(t, filepath.Join(dir, "upgrader/profile.yaml")); !strings.Contains(copy, "/usr/bin/rman") {
		t.Errorf("the profile copy does not name the backup command:\n%s", copy)
	}
}
