// Command dbbench measures the backup-db step (the real step code: Apply
// and Verify, pg_dump run as a supervised job, the dump read back and
// hashed) against a default `pg_dump -Fc` of the same database, taking
// turns, and the restore rehearsal beside them. testdata/bench.sh runs it
// on the cluster testdata/dbbench/cluster.sh makes.
//
//	dbbench PORT PASSFILE WORKDIR ROUNDS
package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
	"upgrader/steps"
	"upgrader/steps/job"
)

const database = "pombench"

func main() {
	// The step's supervised pg_dump runs this binary again (job.Main).
	if len(os.Args) > 1 && os.Args[1] == job.Arg {
		os.Exit(job.Main(os.Args[2:]))
	}
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: dbbench PORT PASSFILE WORKDIR ROUNDS")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4]); err != nil {
		fmt.Fprintln(os.Stderr, "dbbench:", err)
		os.Exit(1)
	}
}

func run(port, passfile, work, roundsArg string) error {
	rounds, err := strconv.Atoi(roundsArg)
	if err != nil || rounds < 1 {
		return fmt.Errorf("ROUNDS %q: give a number", roundsArg)
	}
	h := &steps.Host{Run: steps.ExecRunner{}, Jobs: filepath.Join(work, "jobs")}
	h.Profile.Root = "/"
	h.Profile.DB.Kind = "postgres"
	h.Profile.DB.Host = "127.0.0.1"
	h.Profile.DB.Port, _ = strconv.Atoi(port)
	h.Profile.DB.Name = database
	h.Profile.DB.User = "postgres"
	h.Profile.DB.PasswordFile = passfile
	backupDir := filepath.Join(work, "step")
	spec := orchestrator.StepSpec{ID: "backup-db", Action: "backup-db", Params: map[string]string{"database": database, "backup_dir": backupDir}}
	plain := filepath.Join(work, "plain.dump")
	ctx := context.Background()

	// pgDump times a bare pg_dump into plain (nothing read back, hashed
	// or fsynced) and returns its time and size.
	// (the custom format unless args say otherwise; a directory's size is
	// its files').
	pgDump := func(args ...string) (time.Duration, int64, error) {
		os.RemoveAll(plain)
		start := time.Now()
		cmd := exec.Command("/usr/bin/pg_dump", append([]string{"--host=127.0.0.1", "--port=" + port, "--username=postgres", "--no-password",
			"--dbname=" + database, "--format=custom", "--file=" + plain}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + passfile}
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("pg_dump %v: %v %s", args, err, out)
		}
		took := time.Since(start)
		size, err := dumpSize(plain)
		return took, size, err
	}
	var stepBest, plainBest, ownBest time.Duration
	var stepSize, plainSize int64
	var stepSum, own string
	var jobs int
	var stepCPU time.Duration
	for r := 1; r <= rounds; r++ {
		// The plain dump: pg_dump's defaults (custom format, gzip level 6).
		took, size, err := pgDump()
		if err != nil {
			return err
		}
		plainSize = size
		if plainBest == 0 || took < plainBest {
			plainBest = took
		}
		fmt.Printf("  round %d: pg_dump -Fc %.1f s (%.0f MB)", r, took.Seconds(), float64(plainSize)/1e6)
		// The step's own pg_dump alone (as it chose in the round
		// before; the first round: two jobs): what the step adds to it.
		own = "-Fc -Z 1"
		args := []string{"--compress=1"}
		if jobs != 1 {
			n := max(jobs, 2)
			own = fmt.Sprintf("-Fd -j %d -Z 1", n)
			args = append(args, "--format=directory", "--jobs="+strconv.Itoa(n))
		}
		if took, _, err = pgDump(args...); err != nil {
			return err
		}
		if ownBest == 0 || took < ownBest {
			ownBest = took
		}
		fmt.Printf(", pg_dump %s alone %.1f s", own, took.Seconds())

		// The step, as a run carries it out: Apply (dump, read back as
		// written, list, hash, rename) then Verify (records it).
		os.RemoveAll(backupDir)
		os.RemoveAll(h.Jobs)
		step, err := h.Build(spec)
		if err != nil {
			return err
		}
		saved := map[string]string{}
		var stepLog strings.Builder
		sc := orchestrator.StepContext{RunID: "bench-" + strconv.Itoa(r), Spec: spec, Artifacts: map[string]orchestrator.Artifact{},
			Saved: saved, Save: func(v map[string]string) error { maps.Copy(saved, v); return nil },
			Progress: func(string, int64, int64) {}, Log: zerolog.New(&stepLog)}
		start, cpu0 := time.Now(), selfCPU()
		if err := step.Apply(ctx, sc); err != nil {
			return fmt.Errorf("backup-db Apply: %v", err)
		}
		out, err := step.Verify(ctx, sc)
		if err != nil {
			return fmt.Errorf("backup-db Verify: %v", err)
		}
		took = time.Since(start)
		cpu := selfCPU() - cpu0
		a := out.Artifacts["db-backup"]
		stepSize, stepSum = a.Size, a.SHA256
		if stepBest == 0 || took < stepBest {
			stepBest, stepCPU = took, cpu
		}
		jobs = 0
		if m := regexp.MustCompile(`"jobs":(\d+)`).FindStringSubmatch(stepLog.String()); m != nil {
			jobs, _ = strconv.Atoi(m[1])
		}
		fmt.Printf(", backup-db step %.1f s (%.0f MB, %s)\n", took.Seconds(), float64(stepSize)/1e6, formatText(jobs))
	}

	// The rehearsal of the step's last dump, counted against the source.
	dumps, _ := filepath.Glob(filepath.Join(backupDir, "*.dump"))
	if len(dumps) != 1 {
		return fmt.Errorf("the step left %v", dumps)
	}
	res, err := h.RehearseRestore(ctx, dumps[0], "bench", nil)
	if err != nil {
		return fmt.Errorf("rehearsal: %v", err)
	}
	os.RemoveAll(plain)
	os.RemoveAll(backupDir)

	fmt.Printf("\ndatabase backup of a %s POM-like PostgreSQL database (best of %d, taking turns): backup-db step %.1f s, pg_dump -Fc %.1f s: %.2fx (target at most 0.5x)\n",
		sizeText(ctx, port, passfile), rounds, stepBest.Seconds(), plainBest.Seconds(), stepBest.Seconds()/plainBest.Seconds())
	fmt.Printf("  the step wrote %s; its own pg_dump %s alone (not read back, hashed or fsynced) %.1f s: %.2fx pg_dump -Fc\n",
		formatText(jobs), own, ownBest.Seconds(), ownBest.Seconds()/plainBest.Seconds())
	verified := "read to the end by pg_restore"
	if jobs > 1 {
		verified = "pg_restore --list, every data file decompressed (CRC), manifest"
	}
	fmt.Printf("  upgrader's own CPU in the step (reading back, decompressing, hashing every file; pg_dump's excluded) %.1f s\n", stepCPU.Seconds())
	fmt.Printf("  dump %.0f MB, pg_dump -Fc %.0f MB: %.2fx (target at most 1.3x); verified: %s, SHA-256 %.12s…\n",
		float64(stepSize)/1e6, float64(plainSize)/1e6, float64(stepSize)/float64(plainSize), verified, stepSum)
	fmt.Printf("  restore rehearsal (db.rehearse_restore, upgrader verify-backup): %.1f s beside the dump's %.1f s (%d tables, %d rows, counted against the source)\n",
		res.Took.Seconds(), stepBest.Seconds(), res.Tables, res.Rows)
	return nil
}

// sizeText is the database's size as the server reports it.
func sizeText(ctx context.Context, port, passfile string) string {
	cmd := exec.CommandContext(ctx, "/usr/bin/psql", "--host=127.0.0.1", "--port="+port, "--username=postgres",
		"--no-password", "--dbname="+database, "--no-psqlrc", "--tuples-only", "--no-align",
		"--command=SELECT pg_size_pretty(pg_database_size(current_database()))")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + passfile}
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		return "?"
	}
	return string(out[:len(out)-1])
}

// formatText says which dump the step chose.
func formatText(jobs int) string {
	if jobs > 1 {
		return fmt.Sprintf("a directory dump, %d jobs", jobs)
	}
	return "a custom-format file"
}

// dumpSize is a dump's size: a file's, or the sum of a directory's files.
func dumpSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !st.IsDir() {
		return st.Size(), nil
	}
	entries, err := os.ReadDir(path)
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n, err
}

// selfCPU is this process's CPU time so far (user and system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
