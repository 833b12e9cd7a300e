package main

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// planFlags are the options that shape a plan (plan, run): they travel
// with every request, so whoever executes plans exactly what was shown.
type planFlags struct {
	procedure string
	with      []string
	override  []string
	assume    []string
}

func (f *planFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.procedure, "procedure", "", "procedure id (default: the profile's; see upgrader procedures)")
	fs.StringSliceVar(&f.with, "with", nil, "optional components, comma list (PC: supervisor,agent,agent-api; POM: pdc,help-library)")
	fs.StringArrayVar(&f.override, "override", nil, "accept a blocker whose policy allows it: ID=REASON (repeatable, journaled)")
	fs.StringArrayVar(&f.assume, "assume", nil, "a what-if fact, key=value (repeatable), e.g. pom.version=3.1.0")
}

// request is the plan request of the flags and the profile named.
func (f *planFlags) request(a *app, cmd *cobra.Command) (orchestrator.PlanRequest, error) {
	overrides, err := parseOverrides(f.override)
	if err != nil {
		return orchestrator.PlanRequest{}, err
	}
	return orchestrator.PlanRequest{Profile: a.profileGiven(cmd), Procedure: f.procedure, With: f.with,
		Overrides: overrides, Assume: f.assume}, nil
}

// parseOverrides parses --override ID=REASON flags.
func parseOverrides(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, o := range flags {
		id, reason, ok := strings.Cut(o, "=")
		if !ok || strings.TrimSpace(id) == "" || strings.TrimSpace(reason) == "" {
			return nil, usagef("--override %q: use ID=REASON; the reason is journaled", o)
		}
		out[strings.TrimSpace(id)] = strings.TrimSpace(reason)
	}
	return out, nil
}

// answerFlags answer the operator gates (and the point of no return) a
// run reaches while a command follows it.
type answerFlags struct {
	yes         bool
	attest      []string
	answersPath string
	answers     map[string]map[string]string // gate id → attestation
}

func (f *answerFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVarP(&f.yes, "yes", "y", false, "answer yes at every operator gate and at the point of no return (unattended)")
	fs.StringArrayVar(&f.attest, "attest", nil, "a field an operator gate asks for, KEY=VALUE (repeatable), e.g. backup_path=/backup/pom.dmp")
	fs.StringVar(&f.answersPath, "answers", "", "answers file (YAML: gate id → attestation fields) for unattended runs")
}

// maxAnswersSize bounds the answers file: a few attestations.
const maxAnswersSize = 1 << 20

// load reads the answers file: gate id → attestation fields, as Leapp's
// answerfile does, so a run can go unattended.
func (f *answerFlags) load() error {
	if f.answersPath == "" {
		return nil
	}
	data, err := securefs.ReadRegular(f.answersPath, maxAnswersSize)
	if err != nil {
		return usagef("answers file: %v (give a YAML file of gate-id: {field: value})", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	f.answers = map[string]map[string]string{}
	if err := dec.Decode(&f.answers); err != nil && !errors.Is(err, io.EOF) {
		return usagef("answers file %s: %v (expected: gate-id: {field: value})", f.answersPath, err)
	}
	return nil
}

// attestation is the --attest fields.
func (f *answerFlags) attestation() map[string]string {
	att := map[string]string{}
	for _, kv := range f.attest {
		if k, v, ok := strings.Cut(kv, "="); ok {
			att[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return att
}
