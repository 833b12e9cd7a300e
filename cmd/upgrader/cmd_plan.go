package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"upgrader/orchestrator"
	"upgrader/orchestrator/api"
)

func newPlanCmd(a *app) *cobra.Command {
	var explain string
	var pf planFlags
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what the procedure will do on this host (dry run: changes nothing)",
		Long: `plan reads the site profile and the host, and prints every step the procedure
will run, why it is in, what blocks, the point of no return and the service
outage. It changes nothing. 'upgrader run' executes exactly this plan; compare
the fingerprint.

--explain STEP prints one step's full record (by id or number): what it does,
why, the vendor material, its safety properties, parameters and instructions
(-o json: the step as the plan holds it). The exit code is the plan's.

` + exitCodesHelp,
		Example: `  upgrader plan --profile /etc/upgrader/site.yaml
  upgrader plan --profile site.yaml -o json
  upgrader plan --profile site.yaml --assume pom.version=3.1.0      # what if?
  upgrader plan --profile site.yaml --explain upgrade-pom`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := a.plan(cmd, &pf)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cmd.Flags().Changed("explain") {
				return a.explainStep(out, plan, explain)
			}
			if a.output == "json" {
				if err := writeJSON(out, plan); err != nil {
					return err
				}
			} else {
				printPlan(out, plan)
				if len(plan.Blockers) == 0 && !plan.NothingToDo {
					fmt.Fprintln(out)
					for _, l := range a.nextRunLines(cmd, &pf, plan) {
						fmt.Fprintln(out, l)
					}
				}
			}
			if len(plan.Blockers) > 0 {
				return withCode(exitBlocked, errSilent)
			}
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&explain, "explain", "", "print one step's full record: its id or number in the plan")
	return cmd
}

// plan asks the daemon for the plan when one answers (it plans exactly as
// it will run), else plans in this process; neither needs the state.
func (a *app) plan(cmd *cobra.Command, pf *planFlags) (orchestrator.Plan, error) {
	req, err := pf.request(a, cmd)
	if err != nil {
		return orchestrator.Plan{}, err
	}
	up, err := api.Up(a.socket)
	if err != nil {
		return orchestrator.Plan{}, withCode(exitError, err)
	}
	if up {
		plan, err := api.NewClient(a.socket).Plan(orchestrator.WithActor(context.Background(), actor()), req)
		return plan, codeOf(err)
	}
	plan, _, err := a.planner().Plan(context.Background(), req)
	return plan, codeOf(err)
}

// explainStep prints one step of the plan, as text or as its JSON StepSpec.
func (a *app) explainStep(out io.Writer, plan orchestrator.Plan, step string) error {
	i := plan.StepIndex(step)
	if n, err := strconv.Atoi(step); err == nil && i < 0 && n >= 1 && n <= len(plan.Steps) {
		i = n - 1
	}
	if i < 0 {
		if len(plan.Steps) == 0 && len(plan.Blockers) > 0 {
			return withCode(exitBlocked, fmt.Errorf("--explain %q: the plan has no steps: it is blocked (upgrader plan shows why)", step))
		}
		if len(plan.Steps) == 0 {
			return usagef("--explain %q: the plan has no steps (nothing to do)", step)
		}
		ids := make([]string, len(plan.Steps))
		for j, s := range plan.Steps {
			ids[j] = s.ID
		}
		return usagef("--explain %q: no such step in the plan; its steps are: %s", step, strings.Join(ids, ", "))
	}
	if a.output == "json" {
		if err := writeJSON(out, plan.Steps[i]); err != nil {
			return err
		}
	} else {
		printStepExplain(out, plan, i)
		if n := len(plan.Blockers); n > 0 {
			fmt.Fprintln(out)
			hang(out, "", fmt.Sprintf("The plan has %d blocker(s): no step runs until they are fixed (upgrader plan shows them).", n))
		}
	}
	if len(plan.Blockers) > 0 {
		return withCode(exitBlocked, errSilent)
	}
	return nil
}

// nextRunLines is the command that runs exactly this plan, with the
// options that shaped it, wrapped with shell continuations to fit
// lineWidth. A what-if plan (--assume) says so instead.
func (a *app) nextRunLines(cmd *cobra.Command, pf *planFlags, plan orchestrator.Plan) []string {
	for _, f := range plan.Facts {
		if f.Assumed {
			return hanging("Next: ", "this is a what-if plan (--assume): plan again without --assume before running it")
		}
	}
	args := []string{"upgrader", "run", "--profile", shellQuote(a.profilePath)}
	if cmd.Flags().Changed("state-dir") {
		args = append(args, "--state-dir", shellQuote(a.stateDir))
	}
	if pf.procedure != "" {
		args = append(args, "--procedure", shellQuote(plan.Procedure))
	}
	if len(plan.Inputs.With) > 0 {
		args = append(args, "--with", shellQuote(strings.Join(plan.Inputs.With, ",")))
	}
	for _, o := range pf.override {
		args = append(args, "--override", shellQuote(o))
	}
	args = append(args, "--expect-fingerprint", orchestrator.ShortFingerprint(plan.Fingerprint))
	// Keep each flag with its value on one line.
	var words []string
	for i := 0; i < len(args); i++ {
		if strings.HasPrefix(args[i], "--") && i+1 < len(args) {
			words = append(words, args[i]+" "+args[i+1])
			i++
			continue
		}
		words = append(words, args[i])
	}
	var lines []string
	line := "Next: " + words[0]
	for _, wd := range words[1:] {
		if runeLen(line)+1+runeLen(wd)+2 > lineWidth {
			lines = append(lines, line+" \\")
			line = "        " + wd
			continue
		}
		line += " " + wd
	}
	return append(lines, line)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,:=@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
