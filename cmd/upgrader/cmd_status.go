package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
	"upgrader/state"
)

// loadRun opens the state and loads the run named by --run, else the
// active run, else the latest.
func (a *app) loadRun(runFlag string) (*state.DB, orchestrator.Run, []orchestrator.StepRecord, error) {
	db, err := a.openState()
	if err != nil {
		return nil, orchestrator.Run{}, nil, err
	}
	id := runFlag
	if err := orchestrator.ValidRunID(id); id != "" && err != nil {
		db.Close()
		return nil, orchestrator.Run{}, nil, usagef("--run: %v", err)
	}
	if id == "" {
		if id, err = db.ActiveRun(); errors.Is(err, orchestrator.ErrNoActiveRun) {
			id, err = db.LatestRun()
		}
		if errors.Is(err, orchestrator.ErrNoActiveRun) {
			db.Close()
			return nil, orchestrator.Run{}, nil, withCode(exitUsage, fmt.Errorf("no runs in %s: start one with 'upgrader run --profile FILE'", a.stateDir))
		}
	}
	run, recs, err := db.LoadRun(id)
	if err != nil {
		db.Close()
		return nil, run, nil, withCode(exitError, err)
	}
	return db, run, recs, nil
}

type statusDoc struct {
	Run             string                    `json:"run"`
	Procedure       string                    `json:"procedure"`
	State           orchestrator.State        `json:"state"`
	Reason          string                    `json:"reason,omitempty"`
	Fingerprint     string                    `json:"fingerprint"`
	PastNoReturn    bool                      `json:"past_point_of_no_return"`
	Steps           []orchestrator.StepRecord `json:"steps"`
	Next            string                    `json:"next"`
	PointOfNoReturn string                    `json:"point_of_no_return"`
}

func statusJSON(run orchestrator.Run, recs []orchestrator.StepRecord) statusDoc {
	past, _ := orchestrator.PastPointOfNoReturn(run.Plan, recs)
	return statusDoc{Run: run.ID, Procedure: run.Plan.Procedure, State: run.State, Reason: run.Reason,
		Fingerprint: run.Plan.Fingerprint, PastNoReturn: past, Steps: recs, Next: nextCommand(run, recs),
		PointOfNoReturn: run.Plan.PointOfNoReturn}
}

func newStatusCmd(a *app) *cobra.Command {
	var runID string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show where the run stands and the next command to type",
		Example: `  upgrader status
  upgrader status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			up, err := a.daemonUp()
			if err != nil {
				return err
			}
			if runID == "" && up {
				// The daemon holds the state: ask it.
				var st api.Status
				if err := a.client().call("GET", "/v1/status", nil, &st); err != nil {
					return err
				}
				doc := statusJSON(st.Run, st.Steps)
				if st.Busy {
					doc.Next = "upgrader watch   (the daemon is carrying out " + stepIDOf(st.Run, st.Steps) + ")"
				}
				if a.output == "json" {
					return writeJSON(cmd.OutOrStdout(), doc)
				}
				printStatus(cmd.OutOrStdout(), st.Run, st.Steps, doc.Next)
				return nil
			}
			db, run, recs, err := a.loadRun(runID)
			if err != nil {
				return err
			}
			defer db.Close()
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), statusJSON(run, recs))
			}
			printStatus(cmd.OutOrStdout(), run, recs, nextCommand(run, recs))
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
		Example: `  upgrader journal
  upgrader journal --after 12 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			up, err := a.daemonUp()
			if err != nil {
				return err
			}
			if runID == "" && up {
				var entries []orchestrator.JournalEntry
				if err := a.client().call("GET", fmt.Sprintf("/v1/journal?after=%d", after), nil, &entries); err != nil {
					return err
				}
				if a.output == "json" {
					return writeJSON(cmd.OutOrStdout(), entries)
				}
				printJournal(cmd.OutOrStdout(), entries)
				return nil
			}
			db, run, _, err := a.loadRun(runID)
			if err != nil {
				return err
			}
			defer db.Close()
			entries, err := db.Journal(run.ID, after)
			if err != nil {
				return withCode(exitError, err)
			}
			if a.output == "json" {
				if entries == nil {
					entries = []orchestrator.JournalEntry{}
				}
				return writeJSON(cmd.OutOrStdout(), entries)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Journal of run %s (%s)\n", run.ID, run.Plan.Procedure)
			printJournal(cmd.OutOrStdout(), entries)
			return nil
		},
	}
	cmd.Flags().StringVar(&runID, "run", "", "run id (default: the active run, else the latest)")
	cmd.Flags().Uint64Var(&after, "after", 0, "only entries with a sequence number above this")
	return cmd
}

func newSkipCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "skip STEP --reason TEXT",
		Short: "Skip the failed or waiting step, if its skip policy allows (journaled)",
		Long: `skip marks the step the run stopped at as skipped and lets 'upgrader resume'
go on. Only steps whose skip policy is with-reason can be skipped; safety steps
(media verification, database backup, the upgrade itself) never.`,
		Example: `  upgrader skip enable-dnc-import --reason "site does not use DNC lists"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
				return usagef("skip needs --reason: it is journaled for whoever reviews the run")
			}
			return a.mutate(func(eng *orchestrator.Engine, run orchestrator.Run) error {
				return eng.Skip(run.ID, args[0], actor(), reason)
			}, cmd, "skipped "+args[0])
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the step is skipped (required, journaled)")
	return cmd
}

func newAbortCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "abort --reason TEXT",
		Short:   "Stop the active run for good (refused past the point of no return)",
		Example: `  upgrader abort --reason "maintenance window closed"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return usagef("abort needs --reason")
			}
			return a.mutate(func(eng *orchestrator.Engine, run orchestrator.Run) error {
				return eng.Abort(run.ID, actor(), reason)
			}, cmd, "aborted")
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the run is aborted (required, journaled)")
	return cmd
}

// mutate applies an operator action to the active run and prints the
// status after it.
func (a *app) mutate(do func(*orchestrator.Engine, orchestrator.Run) error, cmd *cobra.Command, done string) error {
	db, err := a.openState()
	if err != nil {
		return err
	}
	defer db.Close()
	id, err := db.ActiveRun()
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("no active run: %w", err))
	}
	run, _, err := db.LoadRun(id)
	if err != nil {
		return withCode(exitError, err)
	}
	log, closer, err := a.logger()
	if err != nil {
		return withCode(exitError, err)
	}
	defer closer.Close()
	if err := do(a.engine(db, nil, log, nil), run); err != nil {
		switch {
		case errors.Is(err, orchestrator.ErrPastPointOfNoReturn), errors.Is(err, orchestrator.ErrSkipNotAllowed), errors.Is(err, orchestrator.ErrTransition):
			return withCode(exitBlocked, err)
		}
		return withCode(exitError, err)
	}
	run, recs, err := db.LoadRun(id)
	if err != nil {
		return withCode(exitError, err)
	}
	if a.output == "json" {
		return writeJSON(cmd.OutOrStdout(), statusJSON(run, recs))
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Run %s: %s.\n", run.ID, done)
	printStatus(cmd.OutOrStdout(), run, recs, nextCommand(run, recs))
	return nil
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

// stepIDOf names the step a run is at.
func stepIDOf(run orchestrator.Run, recs []orchestrator.StepRecord) string {
	if i := orchestrator.NextStep(recs); i >= 0 {
		return run.Plan.Steps[i].ID
	}
	return "its last step"
}
