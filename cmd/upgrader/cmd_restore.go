package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"upgrader/state"
)

func newRestoreStateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "restore-state",
		Short: "Replace a damaged state file with the copy taken at the run's last milestone",
		Long: `restore-state is for a state file that upgrader refuses as damaged. upgrader
copies its state to state.db.snapshot when a run starts, before an
irreversible step begins, when a step saves a value it needs later (a job's
key, a boot id) and when a run ends; restore-state checks that copy and puts
it in place. The damaged file is kept beside it (state.db.damaged-TIME) for
support. It refuses while another upgrader holds the state, when the state
file is not damaged, and when the copy is damaged too.

Then 'upgrader resume' carries on: every step after the snapshot is probed
(its effect may be in place already) and never blindly repeated; an
irreversible step whose intent the snapshot holds is followed or re-checked,
never started afresh.

(A state file whose last commit was cut by a power cut, its newest meta
page torn, is not damaged: upgrader opens it at the commit before and says
so in the journal. restore-state is for the rest.)

` + exitCodesHelp,
		Example: `  upgrader status            # "state file is damaged: ..."
  systemctl stop upgrader    # if the daemon is installed
  upgrader restore-state
  upgrader resume`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := state.RestoreSnapshot(a.stateDir, time.Now())
			switch {
			case errors.Is(err, state.ErrHealthy):
				return usagef("%v", err)
			case err != nil:
				return withCode(exitError, err)
			}
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"restored": true, "damaged_kept": res.Damaged,
					"snapshot_taken": res.Taken, "run": res.Run, "last_completed_step": res.LastStep})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "State restored from the copy taken %s", res.Taken.Format("2006-01-02 15:04:05 UTC"))
			if res.LastStep != "" {
				fmt.Fprintf(out, " after step %s of run %s", res.LastStep, res.Run)
			}
			fmt.Fprintln(out, ".")
			if res.Damaged != "" {
				fmt.Fprintf(out, "The damaged file is kept as %s (send it to support).\n", res.Damaged)
			}
			fmt.Fprintln(out, "Next: upgrader resume (the daemon: systemctl restart upgrader)")
			return nil
		},
	}
}
