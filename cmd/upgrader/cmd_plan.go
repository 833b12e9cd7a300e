package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
)

func newPlanCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "plan",
		Short: "Print what the procedure will do on this host (dry run: changes nothing)",
		Long: `plan reads the site profile and the host, and prints every step the procedure
will run, why it is in, what blocks, the point of no return and the service
outage. It changes nothing. 'upgrader run' executes exactly this plan; compare
the fingerprint.

` + exitCodesHelp,
		Example: `  upgrader plan --profile /etc/upgrader/site.yaml
  upgrader plan --profile site.yaml -o json
  upgrader plan --profile site.yaml --assume pom.version=3.1.0      # what if?`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, plan, err := a.planHere()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if a.output == "json" {
				if err := writeJSON(out, plan); err != nil {
					return err
				}
			} else {
				printPlan(out, plan)
				if len(plan.Blockers) == 0 && !plan.NothingToDo {
					fmt.Fprintf(out, "\nNext: upgrader run --profile %s --expect-fingerprint %s\n", a.profilePath, orchestrator.ShortFingerprint(plan.Fingerprint))
				}
			}
			if len(plan.Blockers) > 0 {
				return withCode(exitBlocked, errSilent)
			}
			return nil
		},
	}
}
