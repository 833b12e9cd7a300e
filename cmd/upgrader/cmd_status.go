package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
)

// statusDoc is `status -o json`: the run, its steps, and where it stands.
type statusDoc struct {
	Run             string                    `json:"run"`
	Procedure       string                    `json:"procedure"`
	State           orchestrator.State        `json:"state"`
	Reason          string                    `json:"reason,omitempty"`
	Fingerprint     string                    `json:"fingerprint"`
	PastNoReturn    bool                      `json:"past_point_of_no_return"`
	PointOfNoReturn string                    `json:"point_of_no_return"`
	Busy            bool                      `json:"busy"`
	Role            string                    `json:"role,omitempty"`
	Outcome         orchestrator.Outcome      `json:"outcome"`
	Steps           []orchestrator.StepRecord `json:"steps"`
	Next            string                    `json:"next"`
}

func statusJSON(st orchestrator.Status) statusDoc {
	past, _ := orchestrator.PastPointOfNoReturn(st.Run.Plan, st.Steps)
	return statusDoc{Run: st.Run.ID, Procedure: st.Run.Plan.Procedure, State: st.Run.State, Reason: st.Run.Reason,
		Fingerprint: st.Run.Plan.Fingerprint, PastNoReturn: past, PointOfNoReturn: st.Run.Plan.PointOfNoReturn,
		Busy: st.Busy, Role: st.Role, Outcome: st.Outcome, Steps: st.Steps, Next: st.Outcome.Next.Text()}
}

func newStatusCmd(a *app) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where the run stands and the next command to type",
		Long: `status shows the active run (else the latest, or the one named by --run): its
steps, where it stopped and why, and the next command. It asks the daemon
when one runs, else reads the state.`,
		Example: `  upgrader status
  upgrader status -o json
  upgrader status --run 20261129T160000Z-a1b2c3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			st, err := sess.svc.Status(sess.ctx, runID)
			if err != nil {
				return codeOf(err)
			}
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), statusJSON(st))
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the active run, else the latest)")
	return cmd
}

func newJournalCmd(a *app) *cobra.Command {
	var runID string
	var after uint64
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Print the run's append-only journal",
		Long: `journal prints every event of the run (the active one, else the latest, or
--run): who did what and when, each step's start and result, confirmations
with their attestations, skips and overrides with their reasons.`,
		Example: `  upgrader journal
  upgrader journal --after 12 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			st, err := sess.svc.Status(sess.ctx, runID)
			if err != nil {
				return codeOf(err)
			}
			entries, err := sess.svc.Journal(sess.ctx, st.Run.ID, after)
			if err != nil {
				return codeOf(err)
			}
			if a.output == "json" {
				if entries == nil {
					entries = []orchestrator.JournalEntry{}
				}
				return writeJSON(cmd.OutOrStdout(), entries)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Journal of run %s (%s)\n", st.Run.ID, st.Run.Plan.Procedure)
			printJournal(cmd.OutOrStdout(), entries)
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the active run, else the latest)")
	cmd.Flags().Uint64Var(&after, "after", 0, "only entries with a sequence number above this")
	return cmd
}

func newLifecycleCmd(a *app) *cobra.Command {
	var mermaid bool
	cmd := &cobra.Command{
		Use:     "lifecycle",
		Short:   "Print the run lifecycle (states and allowed transitions)",
		Example: `  upgrader lifecycle --mermaid > lifecycle.mmd`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if mermaid {
				d, err := orchestrator.LifecycleMermaid()
				if err != nil {
					return err
				}
				fmt.Fprint(out, d)
				return nil
			}
			for _, s := range orchestrator.AllStates() {
				fmt.Fprintf(out, "%s\n", s)
				for _, ev := range orchestrator.AllEvents() {
					if next, err := orchestrator.Transition(s, ev); err == nil {
						fmt.Fprintf(out, "  --%s--> %s\n", ev, next)
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&mermaid, "mermaid", false, "print a mermaid state diagram")
	return cmd
}

func newHistoryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "history",
		Short: "List every run this state directory holds, finished ones included",
		Long: `history lists every run, oldest first: its id, procedure, versions, where it
ended (or stands) and how many of its steps are done. A finished run leaves
the state file when the next run is created and is kept in the archive
directory beside it (<state-dir>/archive/<run>.run), where history, status
--run and journal --run still read it.`,
		Example: `  upgrader history
  upgrader history -o json
  upgrader journal --run 20261129T160000Z-a1b2c3   # one of them in full`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			runs, err := sess.svc.History(sess.ctx)
			if err != nil {
				return codeOf(err)
			}
			if a.output == "json" {
				if runs == nil {
					runs = []orchestrator.RunSummary{}
				}
				return writeJSON(cmd.OutOrStdout(), runs)
			}
			printHistory(cmd.OutOrStdout(), runs)
			return nil
		},
	}
}
