package steps

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/state"
	"upgrader/testdata/pgtest"
)

// pgCtl stops or starts the shared test cluster (extra server options for
// start).
func pgCtl(tb testing.TB, c pgCluster, action string, opts ...string) {
	tb.Helper()
	argv := []string{filepath.Join(c.Bin, "pg_ctl"), "-D", filepath.Join(c.Dir, "data"), "-w", "-l", filepath.Join(c.Dir, "log")}
	if action == "start" {
		argv = append(argv, "-o", strings.Join(append([]string{"-c listen_addresses=127.0.0.1 -p " + c.Port + " -k " + c.Dir + " -c fsync=off"}, opts...), " "))
	} else {
		argv = append(argv, "-m", "fast")
	}
	if out, err := pgtest.AsPostgres(append(argv, action)...).CombinedOutput(); err != nil {
		tb.Fatalf("pg_ctl %s: %v\n%s", action, err, out)
	}
}

// psqlAs runs SQL on the test cluster as the tests do.
func psqlAs(tb testing.TB, c pgCluster, db, sql string) string {
	tb.Helper()
	cmd := exec.Command("/usr/bin/psql", "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
		"--dbname="+db, "--set=ON_ERROR_STOP=1", "--quiet", "--tuples-only", "--no-align", "--command="+sql)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + c.Passfile}
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("psql %s: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// stopStep stops the test cluster: the database going away mid-run.
type stopStep struct {
	tb testing.TB
	c  pgCluster
}

func (s stopStep) Probe(context.Context, orchestrator.StepContext) (bool, error) { return false, nil }
func (s stopStep) Apply(context.Context, orchestrator.StepContext) error {
	pgCtl(s.tb, s.c, "stop")
	return nil
}
func (s stopStep) Verify(context.Context, orchestrator.StepContext) (orchestrator.Outputs, error) {
	return orchestrator.Outputs{}, nil
}

// noopStep stands for the installer: the point of no return.
type noopStep struct{ ran *int }

func (noopStep) Probe(context.Context, orchestrator.StepContext) (bool, error) { return false, nil }
func (n noopStep) Apply(context.Context, orchestrator.StepContext) error {
	*n.ran++
	return nil
}
func (noopStep) Verify(context.Context, orchestrator.StepContext) (orchestrator.Outputs, error) {
	return orchestrator.Outputs{}, nil
}

type watchFactory struct {
	h    *Host
	stop orchestrator.Step
	ran  *int
}

func (f watchFactory) Build(spec orchestrator.StepSpec) (orchestrator.Step, error) {
	switch spec.Action {
	case "stop-db":
		return f.stop, nil
	case "install":
		return noopStep{f.ran}, nil
	}
	return f.h.Build(spec)
}

// The database stopped mid-run (after the backup, before the point of no
// return) holds the run before the installer, with nothing of it started
// and the check in the journal; once the database is back, retry carries
// the run to its end.
func TestDBStoppedMidRunHoldsBeforePointOfNoReturn(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	t.Cleanup(func() {
		if exec.Command(filepath.Join(c.Bin, "pg_isready"), "-h", "127.0.0.1", "-p", c.Port).Run() != nil {
			pgCtl(t, c, "start")
		}
	})
	backup := pgSpec(dir)
	backup.Checks, backup.Produces = []string{"db"}, []string{"db-backup"}
	plan := orchestrator.Plan{Procedure: "db-watch", Steps: []orchestrator.StepSpec{
		backup,
		{ID: "db-goes-away", Title: "the database stops", Kind: orchestrator.KindAuto, Action: "stop-db", Skip: orchestrator.SkipNever, Reason: "test"},
		{ID: "upgrade-pom", Title: "installer", Kind: orchestrator.KindAuto, Action: "install", Skip: orchestrator.SkipNever, Reason: "test",
			Irreversible: true, Requires: []string{"db-backup"}, Checks: []string{"db"}},
	}}
	plan.Fingerprint = orchestrator.Fingerprint(plan)
	st, err := state.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ran := 0
	eng := &orchestrator.Engine{Store: st, Steps: watchFactory{h: h, stop: stopStep{t, c}, ran: &ran}, Checker: h}
	consent := &orchestrator.Consent{Actor: "tester", Via: orchestrator.ConsentFingerprint, PointOfNoReturn: true}
	if _, err := eng.Create(plan, "run-watch", "", "tester", consent); err != nil {
		t.Fatal(err)
	}
	out, err := eng.Execute(context.Background(), "run-watch", orchestrator.ExecOptions{Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if out.State != orchestrator.StateFailed || out.Step != "upgrade-pom" || ran != 0 {
		t.Fatalf("state %s at %s (installer ran %d times), want failed before upgrade-pom, not started", out.State, out.Step, ran)
	}
	if !strings.Contains(out.Error, "upgrader's database check") || !strings.Contains(out.Error, "upgrader retry") {
		t.Errorf("error %q: want upgrader's database check and the retry", out.Error)
	}
	_, recs, err := st.LoadRun("run-watch")
	if err != nil {
		t.Fatal(err)
	}
	if recs[2].Attempts != 0 {
		t.Errorf("upgrade-pom has %d attempts: its intent was recorded before the check", recs[2].Attempts)
	}
	journal, err := st.Journal("run-watch", 0)
	if err != nil {
		t.Fatal(err)
	}
	var checks []string
	for _, j := range journal {
		if j.Event == "check.db" {
			checks = append(checks, j.Step+":"+j.Fields["result"])
			if j.Fields["result"] == "ok" && j.Fields["connections.available"] == "" {
				t.Errorf("check entry %+v without the figures", j)
			}
		}
	}
	if strings.Join(checks, " ") != "backup-db:ok upgrade-pom:held" {
		t.Errorf("journaled checks %v, want backup-db:ok upgrade-pom:held", checks)
	}

	pgCtl(t, c, "start")
	out, err = eng.Execute(context.Background(), "run-watch", orchestrator.ExecOptions{Actor: "tester", Retry: true})
	if err != nil || out.State != orchestrator.StateCompleted || ran != 1 {
		t.Fatalf("after the database is back: state %s (%v), installer ran %d times; want completed, once", out.State, err, ran)
	}
}

// A lowered max_connections with sessions held open gives the headroom
// warning at plan time and in the check, and none left holds the run.
func TestDBConnectionHeadroomRealPostgres(t *testing.T) {
	c := postgres(t)
	h := pgHost(t, c, t.TempDir(), ExecRunner{})
	pgCtl(t, c, "stop")
	pgCtl(t, c, "start", "-c max_connections=8 -c superuser_reserved_connections=2")
	t.Cleanup(func() { pgCtl(t, c, "stop"); pgCtl(t, c, "start") })
	hold := func(n int) func() {
		var cmds []*exec.Cmd
		for range n {
			cmd := exec.Command("/usr/bin/psql", "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
				"--dbname=pom", "--command=SELECT pg_sleep(120)")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + c.Passfile}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		// Wait until exactly n sleep in the server (killed ones of an
		// earlier hold gone); a full server refuses the look: try again.
		for i := 0; i < 200; i++ {
			cmd := exec.Command("/usr/bin/psql", "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
				"--dbname=pom", "--tuples-only", "--no-align", "--command=SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + c.Passfile}
			if out, err := cmd.Output(); err == nil && strings.TrimSpace(string(out)) == strconv.Itoa(n) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		return func() {
			for _, cmd := range cmds {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
	}
	// 6 available to clients; 4 held and the check's own session make 5
	// (83%).
	release := hold(4)
	res, err := h.Check(context.Background(), "db")
	if err != nil || !strings.Contains(res.Text, "5 of 6 connections in use (83%): warning") {
		t.Fatalf("check: %q %v, want the 80%% warning with 5 of 6", res.Text, err)
	}
	facts := GatherFacts(context.Background(), h)
	if v, _ := facts.Get(orchestrator.FactDBConnAvailable); v != "6" {
		t.Errorf("fact %s = %q, want 6", orchestrator.FactDBConnAvailable, v)
	}
	release()
	// 5 held and the check's own session take every connection a client
	// may have: the check holds.
	release = hold(5)
	defer release()
	_, err = h.Check(context.Background(), "db")
	if err == nil || !strings.Contains(err.Error(), "no connection left") {
		t.Fatalf("check with every connection taken: %v, want it held", err)
	}
}

// A rehearsal whose restore lacks a table (dropped in the scratch database
// at a failpoint) fails the backup step, before the point of no return;
// the scratch database is gone after it, and a leftover one from an
// earlier, killed rehearsal is dropped first.
func TestBackupDBRehearsalFindsMissingTable(t *testing.T) {
	c := postgres(t)
	dir := t.TempDir()
	h := pgHost(t, c, dir, ExecRunner{})
	spec := pgSpec(dir)
	spec.Params["rehearse"] = "true"
	sc := stepContext(spec, nil)
	scratch := ScratchName(sc.RunID)
	psqlAs(t, c, "postgres", `CREATE DATABASE "`+scratch+`"`) // a leftover
	st, _ := h.Build(spec)
	mustApply(t, st, sc)
	if _, err := os.Stat(filepath.Join(dir, "pomdb-pom-"+sc.RunID+".dump.counts")); err != nil {
		t.Fatalf("no counts of the source beside the dump: %v", err)
	}
	out := mustVerify(t, st, sc)
	if !strings.Contains(out.Values["rehearsal"], "as in the source") {
		t.Errorf("rehearsal: %q", out.Values["rehearsal"])
	}
	h.Failpoint = func(point, db string) {
		if point == "rehearsal-restored" {
			psqlAs(t, c, db, "DROP TABLE pim_dnc")
		}
	}
	st, _ = h.Build(spec)
	_, err := st.Verify(context.Background(), sc)
	if !errors.Is(err, ErrRehearsal) || !strings.Contains(err.Error(), "table public.pim_dnc is missing (2000 rows in the source)") {
		t.Fatalf("Verify: %v, want the missing table", err)
	}
	if n := psqlAs(t, c, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'upgrader_rehearsal_%'"); n != "0" {
		t.Errorf("%s scratch databases left", n)
	}
}
