package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// A database dump holds every contact of the site: it is written 0600, in
// a directory only root can enter when upgrader makes it (0700).
func TestBackupsArePrivate(t *testing.T) {
	t.Run("pg_dump", func(t *testing.T) {
		e := newSim(t, nil)
		spec := backupSpec()
		st := e.build(t, spec)
		sc := stepContext(spec, nil)
		mustApply(t, st, sc)
		mustVerify(t, st, sc)
		checkPrivate(t, e.path("var/backups/upgrader"), "pomdb-pom-"+testRunID+".dump")
	})
	t.Run("the site's backup command", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "backups")
		h := &Host{Run: ExecRunner{}, Jobs: jobsDir(t)}
		h.Profile.Root = "/"
		h.Profile.DB.BackupCommand = []string{"/bin/sh", "-c", `umask 022; cat /etc/os-release > "$0"`, "{backup}"}
		spec := orchestrator.StepSpec{ID: "backup-db", Action: "backup-command", Params: map[string]string{"database": "pom", "backup_dir": dir}}
		st, _ := h.Build(spec)
		sc := stepContext(spec, nil)
		mustApply(t, st, sc)
		mustVerify(t, st, sc)
		checkPrivate(t, dir, "pomdb-pom-"+testRunID+".bak")
	})
	t.Run("pc-backup", func(t *testing.T) {
		e := newHostSim(t, "dl385")
		spec := pcBackupSpec()
		st := e.build(t, spec)
		sc := stepContext(spec, nil)
		mustApply(t, st, sc)
		mustVerify(t, st, sc)
		checkPrivate(t, e.host.Profile.Path(e.host.Profile.PC.BackupDir), "pc-data-"+testRunID+".tar.gz")
	})
}

func checkPrivate(t *testing.T, dir, name string) {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s is mode %04o, want 0600", name, st.Mode().Perm())
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("%s is mode %04o, want 0700", dir, st.Mode().Perm())
	}
}

// A backup directory others can write is refused before anything is
// dumped: a local user could swap the dump under upgrader, or read it.
func TestBackupDirOthersCanWriteIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, setting string
		setup         func(t *testing.T) (orchestrator.Step, orchestrator.StepContext, string)
	}{
		{"pg_dump", "db.backup_dir", func(t *testing.T) (orchestrator.Step, orchestrator.StepContext, string) {
			e := newSim(t, nil)
			spec := backupSpec()
			return e.build(t, spec), stepContext(spec, nil), e.path("var/backups/upgrader")
		}},
		{"backup command", "db.backup_dir", func(t *testing.T) (orchestrator.Step, orchestrator.StepContext, string) {
			dir := filepath.Join(t.TempDir(), "backups")
			h := &Host{Run: ExecRunner{}, Jobs: jobsDir(t)}
			h.Profile.Root = "/"
			h.Profile.DB.BackupCommand = []string{"/usr/bin/cp", "/etc/os-release", "{backup}"}
			spec := orchestrator.StepSpec{ID: "backup-db", Action: "backup-command", Params: map[string]string{"database": "pom", "backup_dir": dir}}
			st, _ := h.Build(spec)
			return st, stepContext(spec, nil), dir
		}},
		{"pc-backup", "pc.backup_dir", func(t *testing.T) (orchestrator.Step, orchestrator.StepContext, string) {
			e := newHostSim(t, "dl385")
			spec := pcBackupSpec()
			return e.build(t, spec), stepContext(spec, nil), e.host.Profile.Path(e.host.Profile.PC.BackupDir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, sc, dir := tc.setup(t)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o777)
			err := st.Apply(context.Background(), sc)
			if err == nil || !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), "writable by others") {
				t.Fatalf("Apply into a world-writable backup dir: %v, want a refusal naming %s", err, tc.setting)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files were written there: %v", entries)
			}
		})
	}
}
