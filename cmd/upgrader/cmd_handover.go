package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
	"upgrader/steps"
)

func newExportCmd(a *app) *cobra.Command {
	var outPath string
	cmd := &cobra.Command{
		Use:   "export --out FILE",
		Short: "Write the active run to a file to carry it to another server (migration)",
		Long: `export writes the active run (plan, step records, journal) to FILE and closes
it on this server: from now on it goes on only where it is imported. Copy FILE
and the backup the run made to the same paths on the other server, then run
'upgrader import FILE' there.`,
		Example: `  upgrader export --out /var/tmp/upgrader-run.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outPath == "" {
				return usagef("export needs --out FILE")
			}
			db, err := a.openState()
			if err != nil {
				return err
			}
			defer db.Close()
			id, err := db.ActiveRun()
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("no active run to export: %w", err))
			}
			log, closer, err := a.logger()
			if err != nil {
				return withCode(exitError, err)
			}
			defer closer.Close()
			eng := a.engine(db, nil, log, nil)
			x, err := eng.Export(id)
			if err != nil {
				return withCode(exitBlocked, err)
			}
			b, err := json.MarshalIndent(x, "", "  ")
			if err != nil {
				return withCode(exitError, err)
			}
			// The file is durable before the run is closed here: a crash in
			// between leaves the run active, and export can be repeated.
			if err := steps.WriteFileAtomic(absPath(outPath), append(b, '\n'), 0o600); err != nil {
				return withCode(exitError, err)
			}
			if err := eng.MarkExported(id, actor(), absPath(outPath)); err != nil {
				return withCode(exitError, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Run %s exported to %s and closed on this server.\n", id, absPath(outPath))
			fmt.Fprintf(cmd.OutOrStdout(), "Next: copy it and the run's backup to the other server, then there: upgrader import %s --profile SITE.yaml && upgrader resume\n", absPath(outPath))
			return nil
		},
	}
	cmd.Flags().StringVar(&outPath, "out", "", "file to write (mode 0600)")
	return cmd
}

func newImportCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE",
		Short: "Take over a run exported on another server (migration)",
		Long: `import reads a run written by 'upgrader export' on the other server, checks it
is whole and meant for this server (its hardware model), and makes it the
active run here; 'upgrader resume' then carries on with the next step.
A server whose model does not match is refused unless
--override migrate-target-model=REASON is given (journaled).`,
		Example: `  upgrader import /var/tmp/upgrader-run.json --profile /etc/upgrader/site.yaml
  upgrader resume`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := securefs.ReadRegular(args[0], orchestrator.MaxExportSize)
			if err != nil {
				return usagef("%v (give the file 'upgrader export' wrote)", err)
			}
			x, err := orchestrator.DecodeExport(data)
			if err != nil {
				return usagef("%s: %v", args[0], err)
			}
			p, err := a.loadProfile(a.profilePath)
			if err != nil {
				return err
			}
			host := &steps.Host{Profile: p, Run: steps.ExecRunner{}, Jobs: a.jobsDir()}
			overrides, err := a.overrides()
			if err != nil {
				return err
			}
			if err := checkImportTarget(x, host.Model(), overrides); err != nil {
				return withCode(exitBlocked, err)
			}
			db, err := a.openState()
			if err != nil {
				return err
			}
			defer db.Close()
			log, closer, err := a.logger()
			if err != nil {
				return withCode(exitError, err)
			}
			defer closer.Close()
			from := fmt.Sprintf("%s (%s)", absPath(args[0]), host.Model())
			if reason, ok := overrides["migrate-target-model"]; ok {
				from += "; target model overridden: " + reason
			}
			if err := a.engine(db, host, log, nil).Import(x, absPath(a.profilePath), actor(), from); err != nil {
				if errors.Is(err, orchestrator.ErrActiveRun) {
					return withCode(exitError, err)
				}
				return withCode(exitError, err)
			}
			run, recs, err := db.LoadRun(x.Run.ID)
			if err != nil {
				return withCode(exitError, err)
			}
			printStatus(cmd.OutOrStdout(), run, recs, "upgrader resume")
			return nil
		},
	}
}

// checkImportTarget refuses a run whose next step is for another server
// than this one, unless the engineer overrides it.
func checkImportTarget(x orchestrator.RunExport, model string, overrides map[string]string) error {
	i := orchestrator.NextStep(x.Steps)
	if i < 0 {
		return nil
	}
	want := x.Run.Plan.Steps[i].RunsOn
	if want == "" || orchestrator.RoleOf(model) == want {
		return nil
	}
	if _, ok := overrides["migrate-target-model"]; ok && want == orchestrator.RoleTarget {
		return nil
	}
	return fmt.Errorf("the run's next step (%s) is for %s, and this server is %q: import it there, or --override migrate-target-model=REASON",
		x.Run.Plan.Steps[i].ID, roleServer(want), model)
}

func newProceduresCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "procedures",
		Short: "List the procedures upgrader knows",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type entry struct {
				ID      string `json:"id"`
				Product string `json:"product"`
				Title   string `json:"title"`
			}
			var list []entry
			for _, p := range orchestrator.Procedures() {
				list = append(list, entry{p.ID, p.Product, p.Title})
			}
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			for _, e := range list {
				fmt.Fprintf(cmd.OutOrStdout(), "%-24s %-4s %s\n", e.ID, e.Product, e.Title)
			}
			return nil
		},
	}
}
