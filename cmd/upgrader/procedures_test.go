package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every procedure of the catalog runs end to end on its simulated host(s).

func TestProcedurePCUpgradeFrom41(t *testing.T) {
	s := newSimHost(t, "pc41")
	s.mustRun(exitOK, "run", "--yes")
	want := []string{"pc-install_dialer_4.1.2_done", "pc-install_database_4.1.2_done",
		"pc-install_supervisor_4.1.2_done", "pc-install_agent_4.1.2_done"}
	if got := s.effects(); !slices.Equal(got, want) {
		t.Fatalf("effects %v, want %v", got, want)
	}
}

func TestProcedurePCUpgradeFrom411SkipsDatabase(t *testing.T) {
	s := newSimHost(t, "pc411")
	r := s.mustRun(exitOK, "run", "--yes")
	if !strings.Contains(r.stdout, "database-not-needed") {
		t.Errorf("the plan does not say why the database step is out:\n%s", r.stdout)
	}
	want := []string{"pc-install_dialer_4.1.2_done", "pc-install_agent-api_4.1.2_done"}
	if got := s.effects(); !slices.Equal(got, want) {
		t.Fatalf("effects %v, want %v", got, want)
	}
}

// The fresh install stops at the Linux ES gate until the operator has
// installed it, then reboots and installs everything in order.
func TestProcedurePCFreshInstall(t *testing.T) {
	s := newSimHost(t, "pcbare")
	r := s.mustRun(exitFailed, "run", "--yes", "--with", "supervisor")
	if !strings.Contains(r.stdout, "linux-es is not found on this host") {
		t.Fatalf("the gate accepted a confirmation without Linux ES:\n%s", r.stdout)
	}
	s.tool("operator", "install-linux-es", "4.1.2")
	r = s.mustRun(exitPaused, "resume", "--yes")
	if !strings.Contains(r.stdout, "rebooting") {
		t.Fatalf("no reboot:\n%s", r.stdout)
	}
	s.mustRun(exitOK, "resume", "--yes")
	want := []string{"operator_install-linux-es_4.1.2", "reboot", "pc-install_dialer_4.1_done", "pc-install_dialer_4.1.2_done",
		"pc-install_database_4.1.2_done", "pc-install_supervisor_4.1.2_done"}
	if got := s.effects(); !slices.Equal(got, want) {
		t.Fatalf("effects %v, want %v", got, want)
	}
}

// The migration runs its first step on the HP DL385, is exported, imported
// on the IBM x3650 M2 with the backup, and finishes there.
func TestProcedurePCMigrationAcrossTwoHosts(t *testing.T) {
	old, new := newSimHost(t, "dl385"), newSimHost(t, "x3650")
	old.mustRun(exitPaused, "run", "--yes")
	exported := filepath.Join(t.TempDir(), "run.json")
	old.mustRun(exitOK, "export", "--out", exported)
	if st := old.mustRun(exitOK, "status").stdout; !strings.Contains(st, "exported") {
		t.Fatalf("the old server still has the run open:\n%s", st)
	}
	old.mustRun(exitUsage, "resume")

	// A server that is not the target refuses the import.
	wrong := newSimHost(t, "pom") // a ProLiant DL380
	if r := wrong.mustRun(exitBlocked, "import", exported); !strings.Contains(r.stderr, "x3650") {
		t.Fatalf("wrong server: %s", r.stderr)
	}

	backups, _ := filepath.Glob(filepath.Join(old.root, "var/backups/upgrader/*.tar.gz"))
	if len(backups) != 1 {
		t.Fatalf("backups on the old server: %v", backups)
	}
	rel, _ := filepath.Rel(old.root, backups[0])
	copyFile(t, backups[0], filepath.Join(new.root, rel))
	new.mustRun(exitOK, "import", exported)
	new.mustRun(exitFailed, "resume", "--yes") // Linux ES gate: not installed yet
	new.tool("operator", "install-linux-es", "4.1.2")
	new.mustRun(exitPaused, "resume", "--yes") // reboot
	new.mustRun(exitOK, "resume", "--yes")
	want := []string{"operator_install-linux-es_4.1.2", "reboot", "pc-restore_done", "pc-install_dialer_4.1.2_done",
		"pc-install_database_4.1.2_done", "pc-install_supervisor_4.1.2_done", "pc-install_agent_4.1.2_done",
		"pc-install_agent-api_4.1.2_done"}
	if got := new.effects(); !slices.Equal(got, want) {
		t.Fatalf("effects on the new server %v, want %v", got, want)
	}
	if got := old.effects(); !slices.Equal(got, []string{"pc-backup_done"}) {
		t.Fatalf("effects on the old server %v", got)
	}
	j := new.mustRun(exitOK, "journal").stdout
	if j := old.mustRun(exitOK, "journal").stdout; !strings.Contains(j, "run.export") {
		t.Errorf("the old server's journal does not record the export:\n%s", j)
	}
	for _, ev := range []string{"run.created", "step.done      backup-source", "run.imported", "run.complete"} {
		if !strings.Contains(j, ev) {
			t.Errorf("the new server's journal lacks %q:\n%s", ev, j)
		}
	}
}

// A backup that changed on the way is caught before the restore.
func TestProcedurePCMigrationRefusesAlteredBackup(t *testing.T) {
	old, new := newSimHost(t, "dl385"), newSimHost(t, "x3650")
	old.mustRun(exitPaused, "run", "--yes")
	exported := filepath.Join(t.TempDir(), "run.json")
	old.mustRun(exitOK, "export", "--out", exported)
	backups, _ := filepath.Glob(filepath.Join(old.root, "var/backups/upgrader/*.tar.gz"))
	rel, _ := filepath.Rel(old.root, backups[0])
	copyFile(t, backups[0], filepath.Join(new.root, rel))
	f, _ := os.OpenFile(filepath.Join(new.root, rel), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("x"))
	f.Close()
	new.mustRun(exitOK, "import", exported)
	new.tool("operator", "install-linux-es", "4.1.2")
	new.mustRun(exitPaused, "resume", "--yes")
	r := new.mustRun(exitFailed, "resume", "--yes")
	if !strings.Contains(r.stdout, "not the file verified on the other server") {
		t.Fatalf("altered backup not caught:\n%s", r.stdout)
	}
}

func TestProcedurePCMigrationWrongSourceModelBlocksUnlessOverridden(t *testing.T) {
	s := newSimHost(t, "pc41") // an IBM x3650 M2, not a DL385
	r := s.mustRun(exitBlocked, "plan", "--procedure", "pc-4.1.2-migrate")
	if !strings.Contains(r.stdout, "migrate-source-model") {
		t.Fatalf("no blocker:\n%s", r.stdout)
	}
	s.mustRun(exitOK, "plan", "--procedure", "pc-4.1.2-migrate", "--override", "migrate-source-model=lab rehearsal on spare hardware")
}

func TestProcedurePOMFreshInstall(t *testing.T) {
	s := newSimHost(t, "pombare")
	s.mustRun(exitOK, "run", "--yes")
	v, err := os.ReadFile(filepath.Join(s.root, "opt/Avaya/avpom/POManager/config/version.properties"))
	if err != nil || !strings.Contains(string(v), "POM.03.01.01.01.00.003") {
		t.Fatalf("version after install: %s %v", v, err)
	}
	if got := s.effects(); !slices.Equal(got, []string{"installer_done_fresh"}) {
		t.Fatalf("effects %v", got)
	}
}

func TestProceduresList(t *testing.T) {
	s := newSim(t)
	out := s.mustRun(exitOK, "procedures").stdout
	for _, id := range []string{"pc-4.1.2-install", "pc-4.1.2-upgrade", "pc-4.1.2-migrate", "pom-3.1.1-sp1-install", "pom-3.1.1-sp1-upgrade"} {
		if !strings.Contains(out, id) {
			t.Errorf("procedures lacks %s:\n%s", id, out)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The optional help library update unpacks UsingPOM.zip with vpms stopped
// and started again around it.
func TestProcedurePOMFreshInstallWithHelpLibrary(t *testing.T) {
	s := newSimHost(t, "pombare")
	s.mustRun(exitOK, "run", "--yes", "--with", "help-library")
	page := filepath.Join(s.root, "opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary/topics/dnc.html")
	st, err := os.Stat(page)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("help page: %v %v", st, err)
	}
	got := strings.Join(s.ledger(), " ")
	if !strings.Contains(got, "service_stop_vpms service_start_vpms") {
		t.Fatalf("vpms not stopped and started around the update: %s", got)
	}
}

// An Oracle site without a backup command: the backup is an operator gate
// that needs the backup's path, which upgrader checks and guards like its
// own backups.
func TestProcedurePOMUpgradeOracleAttestedBackup(t *testing.T) {
	s := newSim(t)
	b, _ := os.ReadFile(s.profile)
	os.WriteFile(s.profile, []byte(strings.Replace(string(b), "  kind: postgres", "  kind: oracle", 1)), 0o644)
	r := s.mustRun(exitPaused, "run", "--yes")
	if !strings.Contains(r.stderr, "needs backup_path") {
		t.Fatalf("the gate took a confirmation without the backup's path: %s", r.stderr)
	}
	s.mustRun(exitFailed, "resume", "--yes", "--attest", "backup_path=/backup/pom.dmp") // not there
	os.MkdirAll(filepath.Join(s.root, "backup"), 0o755)
	os.WriteFile(filepath.Join(s.root, "backup/pom.dmp"), []byte("oracle export"), 0o600)
	s.mustRun(exitOK, "resume", "--yes")
	j := s.mustRun(exitOK, "journal").stdout
	if !strings.Contains(j, "/backup/pom.dmp") {
		t.Fatalf("the attested backup is not journaled:\n%s", j)
	}
}

// An answers file lets a run go unattended: each gate id gets its
// attestation, as Leapp's answerfile does.
func TestAnswersFileConfirmsGates(t *testing.T) {
	s := newSim(t)
	b, _ := os.ReadFile(s.profile)
	os.WriteFile(s.profile, []byte(strings.Replace(string(b), "  kind: postgres", "  kind: oracle", 1)), 0o644)
	os.MkdirAll(filepath.Join(s.root, "backup"), 0o755)
	os.WriteFile(filepath.Join(s.root, "backup/pom.dmp"), []byte("oracle export"), 0o600)
	answers := filepath.Join(s.dir, "answers.yaml")
	os.WriteFile(answers, []byte("backup-db:\n  backup_path: /backup/pom.dmp\nenable-dnc-import:\n  note: site has no DNC lists\n"), 0o644)
	s.mustRun(exitOK, "run", "--answers", answers, "--expect-fingerprint", s.reviewed())
	if j := s.mustRun(exitOK, "journal", "-o", "json").stdout; !strings.Contains(j, "answers file") {
		t.Fatalf("the journal does not say the gates were answered from the file:\n%s", j)
	}
	os.WriteFile(answers, []byte("backup-db: [not, a, map]\n"), 0o644)
	s.mustRun(exitUsage, "resume", "--answers", answers)
}
