package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/testdata/simhost"
)

// The headings the vendor documents really have, copied from the seeds:
// the POM 3.1.1 SP1 release notes' table of contents, and the steps of the
// PC 4.1.2 sequence document's "2. Flow of Installation". A vendor step
// cites nothing else.
var (
	seedPOMHeadings = []string{
		"Document changes", "Introduction", "What's new in POM 3.1.1", "What's new in POM 3.1.1 SP1",
		"Serviceability enhancement - POM logging enhancement", "DB alarm is raised in case of network outage",
		"Option to record successful DNC import separate from the contact list import",
		`Change "Callback never expiring" to avoid double negation`, "Installation", "Product compatibility",
		"Required patches", "File list – Proactive Outreach Manager 3.1.1 SP1 Software", "Backing up the software",
		"Installing the release", "Upgrading to release POM 3.1.1 SP1", "Troubleshooting the installation",
		"Restoring software to previous version", "Fixes", "Known issues and workarounds", "Languages supported",
		"Contacting support", "Contact Support Checklist", "Contact Support Tasks",
	}
	seedPCFlowStep = regexp.MustCompile(`"2\. Flow of Installation: (Fresh Installation of Avaya Proactive Contact 4\.1\.2, step [1-7]|` +
		`Upgrade to Avaya Proactive Contact 4\.1\.2, step [1-5]|Migration to Avaya Proactive Contact 4\.1\.2, step [1-7])"`)
	seedDocuments = []string{"POM 3.1.1 SP1 Release Notes", "Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5)"}
)

// explainRow is one row of --explain's text, its wrapped lines joined.
func explainRow(text, label string) (string, bool) {
	lines := strings.Split(text, "\n")
	head := "  " + label + strings.Repeat(" ", 14-len(label))
	for i, l := range lines {
		if !strings.HasPrefix(l, head) {
			continue
		}
		row := []string{strings.TrimSpace(l[len(head):])}
		for _, more := range lines[i+1:] {
			if !strings.HasPrefix(more, strings.Repeat(" ", 16)) {
				break
			}
			row = append(row, strings.TrimSpace(more))
		}
		return strings.Join(row, " "), true
	}
	return "", false
}

// checkSourceRow says what is wrong with a step's source row: the vendor's
// names real headings of the seeds and nothing else; upgrader's own says
// so, with the step's rationale.
func checkSourceRow(s orchestrator.StepSpec, row string) string {
	switch s.Source {
	case orchestrator.SourceVendor:
		rest, ok := strings.CutPrefix(row, "the vendor's: ")
		if !ok {
			return "a vendor step whose source row does not say it is the vendor's"
		}
		cited := 0
		for _, h := range seedPOMHeadings {
			if strings.Contains(rest, `"`+h+`"`) {
				cited++
				rest = strings.ReplaceAll(rest, `"`+h+`"`, "")
			}
		}
		cited += len(seedPCFlowStep.FindAllString(rest, -1))
		rest = seedPCFlowStep.ReplaceAllString(rest, "")
		for _, d := range seedDocuments {
			rest = strings.ReplaceAll(rest, d, "")
		}
		if cited == 0 || strings.Trim(rest, " ,;") != "" {
			return "cites what is not a heading of the seeds: " + strings.Trim(rest, " ,;")
		}
	case orchestrator.SourceUpgrader:
		if row != "upgrader's own rule, not the release notes': "+strings.Join(strings.Fields(s.Rationale), " ") {
			return "upgrader's own step without its rationale"
		}
	default:
		return "a step of no one's"
	}
	return ""
}

// Every step of every procedure's golden case says in --explain whose rule
// it is: the vendor's citing real headings of the seeds, or upgrader's own
// with its reason.
func TestExplainSourceOfEveryStep(t *testing.T) {
	counted := map[string]int{}
	for _, c := range goldenCases {
		plan := goldenPlan(t, c)
		for i, s := range plan.Steps {
			var b bytes.Buffer
			printStepExplain(&b, plan, i)
			row, ok := explainRow(b.String(), "source")
			if !ok {
				t.Errorf("%s: --explain %s has no source row:\n%s", c.name, s.ID, b.String())
				continue
			}
			if msg := checkSourceRow(s, row); msg != "" {
				t.Errorf("%s: --explain %s: %s\n  source %s", c.name, s.ID, msg, row)
			}
			counted[plan.Procedure]++
		}
	}
	for _, p := range orchestrator.Procedures() {
		if counted[p.ID] == 0 {
			t.Errorf("no golden case of %s has a step to explain", p.ID)
		}
	}

	// The same through the command, on each simulated host, with every
	// option its procedure offers.
	for _, tc := range []struct{ host, with string }{
		{"pom", "pdc,help-library"}, {"pombare", "pdc,help-library"},
		{"pc41", "supervisor,agent,agent-api"}, {"pcbare", "supervisor,agent,agent-api"}, {"dl385", "supervisor,agent,agent-api"},
	} {
		sim, err := simhost.SetupHost(tc.host, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		js := mainRun(t, "plan", "--profile", sim.Profile, "--with", tc.with, "-o", "json")
		var plan orchestrator.Plan
		if err := json.Unmarshal([]byte(js.stdout), &plan); err != nil || len(plan.Steps) == 0 {
			t.Fatalf("%s: plan -o json (exit %d): %v\n%s%s", tc.host, js.code, err, js.stdout, js.stderr)
		}
		for _, s := range plan.Steps {
			r := mainRun(t, "plan", "--profile", sim.Profile, "--with", tc.with, "--explain", s.ID)
			if !slices.Contains([]int{exitOK, exitBlocked}, r.code) {
				t.Errorf("%s: --explain %s: exit %d: %s", tc.host, s.ID, r.code, r.stderr)
				continue
			}
			row, ok := explainRow(r.stdout, "source")
			if !ok {
				t.Errorf("%s: --explain %s has no source row:\n%s", tc.host, s.ID, r.stdout)
				continue
			}
			if msg := checkSourceRow(s, row); msg != "" {
				t.Errorf("%s: --explain %s: %s\n  source %s", tc.host, s.ID, msg, row)
			}
			// A guide the step cites is shown, with its document number.
			for _, ref := range s.Refs {
				if ref.Guide != "" && !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "guide: "+ref.Guide) {
					t.Errorf("%s: --explain %s does not show the guide %s", tc.host, s.ID, ref.Guide)
				}
			}
		}
	}
}

// The checker itself tells a wrong source row from a right one.
func TestCheckSourceRow(t *testing.T) {
	vendor := orchestrator.StepSpec{ID: "x", Source: orchestrator.SourceVendor}
	ours := orchestrator.StepSpec{ID: "y", Source: orchestrator.SourceUpgrader, Rationale: "because  it is safer"}
	for _, tc := range []struct {
		step orchestrator.StepSpec
		row  string
		ok   bool
	}{
		{vendor, `the vendor's: POM 3.1.1 SP1 Release Notes "Backing up the software"`, true},
		{vendor, `the vendor's: POM 3.1.1 SP1 Release Notes "Backing up the software", "Installing the release"`, true},
		{vendor, `the vendor's: Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5) "2. Flow of Installation: Upgrade to Avaya Proactive Contact 4.1.2, step 5"`, true},
		{vendor, `the vendor's: Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5) "2. Flow of Installation: Upgrade to Avaya Proactive Contact 4.1.2, step 6"`, false},
		{vendor, `the vendor's: POM 3.1.1 SP1 Release Notes "Stopping the services"`, false},
		{vendor, `the vendor's: POM 3.1.1 SP1 Release Notes "Backing up the software", "Rebooting"`, false},
		{vendor, `the vendor's: `, false},
		{vendor, `upgrader's own rule, not the release notes': because it is safer`, false},
		{ours, `upgrader's own rule, not the release notes': because it is safer`, true},
		{ours, `the vendor's: POM 3.1.1 SP1 Release Notes "Backing up the software"`, false},
	} {
		if got := checkSourceRow(tc.step, tc.row) == ""; got != tc.ok {
			t.Errorf("checkSourceRow(%s, %q) ok = %v, want %v", tc.step.Source, tc.row, got, tc.ok)
		}
	}
}
