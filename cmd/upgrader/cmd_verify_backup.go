package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/steps"
)

func newVerifyBackupCmd(a *app) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "verify-backup [FILE]",
		Short: "Rehearse the restore of the database backup in a scratch database (upgrader's own check)",
		Long: `verify-backup is the restore rehearsal on demand, upgrader's own check (the
release notes ask for none): it reads the PostgreSQL dump to the end with
pg_restore and hashes it (a directory-format dump: pg_restore lists it,
every data file is decompressed and hashed, and the files must be those of
its upgrader.manifest), restores it into a scratch database on the same
server (upgrader_rehearsal_verify_…), compares every table's row count
with the source and drops the scratch database, also when it fails.

FILE is a custom-format dump file or a directory-format dump (the
directory). It defaults to the dump the run made (the backup-db step's recorded
artifact, of the active run else the latest, or --run); then the file must
also still have the SHA-256 the run recorded. The source's rows are those
counted in the dump's snapshot when the backup was made with the rehearsal
on (FILE.counts beside it); without them the live database is counted and
the output says so: rows written since the backup then show as
differences.

It runs in this process even when the daemon runs, as verify-media does:
it changes nothing in the run, reads a root-only file and talks to the
database with the profile's credentials; only the default FILE is asked of
the daemon (or read from the state). It takes about as long as a restore:
the plan gives the estimate.

Exit codes: 0 the dump restores and every table counts as in the source;
4 it does not (damaged, truncated, changed since the run recorded it, a
table missing or short); 2 bad arguments (no such file, not a regular file,
no backup in the run, not a PostgreSQL site); 1 error (the database
unreachable, the state).`,
		Example: `  upgrader verify-backup
  upgrader verify-backup /var/backups/upgrader/pomdb-pom-20261129T160000Z-a1b2c3.dump
  upgrader verify-backup --run 20261129T160000Z-a1b2c3 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pl := a.planner()
			p, _, err := pl.LoadProfile(a.profilePath)
			if err != nil {
				return codeOf(err)
			}
			h := pl.Host(p)
			var file string
			var recorded *orchestrator.Artifact
			if len(args) == 1 {
				file = args[0]
			} else {
				rec, err := a.recordedBackup(cmd, runID)
				if err != nil {
					return err
				}
				file, recorded = h.Profile.Path(rec.Path), &rec
			}
			out := a.humanOut(cmd)
			printer := &noticePrinter{w: out, tty: isTerminal(out)}
			progress := func(label string, done, total int64) {
				printer.notify(orchestrator.Notice{Kind: "progress", Step: "verify-backup", Text: label, Done: done, Of: total})
			}
			c, err := h.VerifyBackup(context.Background(), file, recorded, progress)
			printer.endBar()
			if a.output == "json" {
				doc := map[string]any{"ok": err == nil, "check": c}
				if err != nil {
					doc["error"] = err.Error()
				}
				if werr := writeJSON(cmd.OutOrStdout(), doc); werr != nil {
					return werr
				}
			} else if err == nil {
				if c.Directory {
					fmt.Fprintf(out, "ok   listed by pg_restore, every data file decompressed and as in upgrader.manifest: %s, SHA-256 (of the manifest) %s\n",
						orchestrator.BytesText(c.Dump.Size), c.Dump.SHA256)
				} else {
					fmt.Fprintf(out, "ok   read to the end by pg_restore: %s, SHA-256 %s\n", orchestrator.BytesText(c.Dump.Size), c.Dump.SHA256)
				}
				if c.Recorded {
					fmt.Fprintln(out, "ok   the dump the run recorded (same SHA-256 and size)")
				}
				fmt.Fprintf(out, "ok   %s\n     counted against %s\n", c.Rehearsal, c.CountsFrom)
				fmt.Fprintf(out, "\n%s restores. [upgrader's own check]\n", file)
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(err, steps.ErrBadBackup), errors.Is(err, steps.ErrRehearsal):
				if a.output == "json" {
					return withCode(exitFailed, errSilent)
				}
				return withCode(exitFailed, fmt.Errorf("%w\n%s does NOT restore as the source: do not rely on it; make a new backup (upgrader retry of backup-db) and find why", err, file))
			}
			return codeOf(err)
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "the run whose backup to verify when FILE is not given (default: the active run, else the latest)")
	return cmd
}

// recordedBackup is the database dump the run recorded (the backup-db
// step's artifact), asked of the daemon or read from the state; the state
// is let go before the long rehearsal.
func (a *app) recordedBackup(cmd *cobra.Command, runID string) (orchestrator.Artifact, error) {
	sess, err := a.session(cmd)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	defer sess.close()
	st, err := sess.svc.Status(sess.ctx, runID)
	if err != nil {
		return orchestrator.Artifact{}, codeOf(err)
	}
	for _, r := range st.Steps {
		if art, ok := r.Outputs.Artifacts["db-backup"]; ok && art.Path != "" {
			return art, nil
		}
	}
	return orchestrator.Artifact{}, usagef("run %s has no database backup yet (its backup-db step has not completed): give the dump as FILE, or run the backup first", st.Run.ID)
}
