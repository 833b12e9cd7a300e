package steps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
)

// verify-backup counts the source in the dump's snapshot when the backup
// kept its counts (FILE.counts): rows written since the backup make no
// false difference; without the counts the live source is counted, and
// says so. A second verification of one file while one runs is refused.
func TestVerifyBackupCountsAndLock(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	spec := pgSpec(dir)
	spec.Params["rehearse"] = "true"
	sc := stepContext(spec, nil)
	st, _ := h.Build(spec)
	mustApply(t, st, sc)
	dump := filepath.Join(dir, "pomdb-pom-"+sc.RunID+".dump")

	psqlAs(t, c, "pom", "INSERT INTO pim_dnc VALUES ('+19990000001')")
	defer psqlAs(t, c, "pom", "DELETE FROM pim_dnc WHERE phone = '+19990000001'")
	got, err := h.VerifyBackup(context.Background(), dump, nil, nil)
	if err != nil || !strings.Contains(got.CountsFrom, "dump's snapshot") || got.Rehearsal.LiveDiff {
		t.Fatalf("VerifyBackup with the counts: %+v %v", got, err)
	}

	os.Remove(countsPath(dump))
	_, err = h.VerifyBackup(context.Background(), dump, nil, nil)
	if !errors.Is(err, ErrRehearsal) || !strings.Contains(err.Error(), "table public.pim_dnc has 2000 rows, the source 2001") {
		t.Fatalf("VerifyBackup against the live source after a row was added: %v", err)
	}

	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = h.VerifyBackup(context.Background(), dump, nil, nil)
	if !errors.Is(err, orchestrator.ErrInvalidRequest) || !strings.Contains(err.Error(), "another upgrader verify-backup") {
		t.Fatalf("VerifyBackup of a file being verified: %v", err)
	}
	if n := psqlAs(t, c, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'upgrader_rehearsal_%'"); n != "0" {
		t.Errorf("%s scratch databases left", n)
	}
}
