package main

import (
	"encoding/json"
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
		Long: `export writes the active run (plan, step records, journal), sealed, to FILE and
closes it on this server: from now on it goes on only where it is imported.
Copy FILE and the backup the run made to the same paths on the other server,
then run 'upgrader import FILE' there. The file is durable before the run is
closed here: a crash in between leaves the run active, and export can be
repeated.

` + exitCodesHelp,
		Example: `  upgrader export --out /var/tmp/upgrader-run.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outPath == "" {
				return usagef("export needs --out FILE")
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			x, err := sess.svc.Export(sess.ctx)
			if err != nil {
				return codeOf(err)
			}
			b, err := json.MarshalIndent(x, "", "  ")
			if err != nil {
				return withCode(exitError, err)
			}
			where := absPath(outPath)
			if err := steps.WriteFileAtomic(where, append(b, '\n'), 0o600); err != nil {
				return withCode(exitError, err)
			}
			st, err := sess.svc.MarkExported(sess.ctx, orchestrator.MarkExportedRequest{Run: x.Run.ID, Where: where})
			if err != nil {
				return codeOf(err)
			}
			if a.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"run": x.Run.ID, "file": where, "state": st.Run.State})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Run %s exported to %s and closed on this server.\n", x.Run.ID, where)
			fmt.Fprintf(cmd.OutOrStdout(), "Next: copy it and the run's backup to the other server, then there: upgrader import %s --profile SITE.yaml && upgrader resume\n", where)
			return nil
		},
	}
	cmd.Flags().StringVar(&outPath, "out", "", "file to write (mode 0600)")
	return cmd
}

func newImportCmd(a *app) *cobra.Command {
	var override []string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Take over a run exported on another server (migration)",
		Long: `import reads a run written by 'upgrader export' on the other server, checks it
is whole (its seal), that only the other server's steps carry progress, and
that it is meant for this server (its hardware model), and makes it the
active run here; 'upgrader resume' then carries on with the next step.
A server whose model does not match is refused unless
--override migrate-target-model=REASON is given (journaled).

` + exitCodesHelp,
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
			overrides, err := parseOverrides(override)
			if err != nil {
				return err
			}
			sess, err := a.session(cmd)
			if err != nil {
				return err
			}
			defer sess.close()
			st, err := sess.svc.Import(sess.ctx, orchestrator.ImportRequest{Export: x, From: absPath(args[0]),
				Overrides: overrides, Profile: a.profileGiven(cmd)})
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
	cmd.Flags().StringArrayVar(&override, "override", nil, "migrate-target-model=REASON: import on another server model (journaled)")
	return cmd
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
