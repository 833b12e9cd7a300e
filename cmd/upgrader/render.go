package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"upgrader/orchestrator"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func kindLabel(k orchestrator.Kind) string {
	switch k {
	case orchestrator.KindGate:
		return "operator"
	case orchestrator.KindReboot:
		return "reboot"
	}
	return "auto"
}

// printPlan writes the plan for people: header, findings, steps with the
// point of no return drawn as a line, the outage window.
func printPlan(w io.Writer, p orchestrator.Plan) { printPlanAs(w, p, false) }

// printPlanBrief is the header and findings only, for a run that starts.
func printPlanBrief(w io.Writer, p orchestrator.Plan) {
	printPlanAs(w, p, true)
	if len(p.Steps) > 0 {
		fmt.Fprintf(w, "\n%d steps", len(p.Steps))
		if i := p.StepIndex(p.PointOfNoReturn); i >= 0 {
			fmt.Fprintf(w, "; point of no return at step %d (%s)", i+1, p.PointOfNoReturn)
		}
		fmt.Fprintln(w, ".")
	}
}

func printPlanAs(w io.Writer, p orchestrator.Plan, brief bool) {
	fmt.Fprintf(w, "Plan: %s — %s\n", p.Procedure, p.Title)
	host := p.Host
	if p.Site != "" {
		host = p.Site + " (" + p.Host + ")"
	}
	fmt.Fprintf(w, "  host         %s\n", host)
	fmt.Fprintf(w, "  from → to    %s → %s\n", p.From, p.To)
	fmt.Fprintf(w, "  fingerprint  %s\n", orchestrator.ShortFingerprint(p.Fingerprint))
	var assumed []string
	keys := make([]string, 0, len(p.Facts))
	for k := range p.Facts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if p.Facts[k].Assumed {
			assumed = append(assumed, k+"="+p.Facts[k].Value)
		}
	}
	if len(assumed) > 0 {
		fmt.Fprintf(w, "  ASSUMED      %s (what-if: not read from this host)\n", strings.Join(assumed, ", "))
	}
	printFindings(w, "BLOCKERS", "X", p.Blockers)
	printFindings(w, "WARNINGS", "!", p.Warnings)
	printFindings(w, "NOTES", "-", p.Notes)
	if p.NothingToDo {
		fmt.Fprintln(w, "\nNothing to do.")
		return
	}
	if len(p.Steps) == 0 || brief {
		return
	}
	fmt.Fprintf(w, "\nSTEPS (%d)\n", len(p.Steps))
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tID\tKIND\tRUNS ON\tSERVICE\tSKIP\tWHY")
	for i, s := range p.Steps {
		svc := "up"
		if s.Downtime {
			svc = "DOWN"
		}
		runsOn := s.RunsOn
		if runsOn == "" {
			runsOn = "this host"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, s.ID, kindLabel(s.Kind), runsOn, svc, s.Skip, s.Reason)
	}
	tw.Flush()
	// The point of no return is drawn between rows after alignment, so the
	// columns line up across it.
	for i, line := range strings.SplitAfter(table.String(), "\n") {
		if i > 0 && i-1 < len(p.Steps) && p.Steps[i-1].ID == p.PointOfNoReturn {
			fmt.Fprintf(w, "  ─────── point of no return: %s cannot be undone (no rollback) ───────\n", p.PointOfNoReturn)
		}
		fmt.Fprint(w, line)
	}
	fmt.Fprintln(w)
	for i, s := range p.Steps {
		var extra []string
		for _, r := range s.Refs {
			ref := strings.TrimSpace(strings.Join(nonEmpty(r.MaterialID, r.ReleaseNotes), " "))
			if r.Section != "" {
				ref += ", \"" + r.Section + "\""
			}
			extra = append(extra, "see "+ref)
		}
		if len(s.Requires) > 0 {
			extra = append(extra, "requires verified "+strings.Join(s.Requires, ", "))
		}
		extra = append(extra, s.Notes...)
		fmt.Fprintf(w, "  %d. %s\n", i+1, s.Title)
		for _, e := range extra {
			fmt.Fprintf(w, "       %s\n", e)
		}
	}
	if p.Outage != nil {
		fmt.Fprintf(w, "\nService outage: from %s to %s.\n", p.Outage.From, p.Outage.To)
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func printFindings(w io.Writer, title, mark string, fs []orchestrator.Finding) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s (%d)\n", title, len(fs))
	for _, f := range fs {
		fmt.Fprintf(w, "  %s %s: %s\n", mark, f.ID, f.Message)
	}
}

// printStatus writes where a run stands and the next command to type.
func printStatus(w io.Writer, run orchestrator.Run, recs []orchestrator.StepRecord, next string) {
	fmt.Fprintf(w, "Run %s: %s\n", run.ID, run.State)
	fmt.Fprintf(w, "  procedure    %s (%s → %s)\n", run.Plan.Procedure, run.Plan.From, run.Plan.To)
	fmt.Fprintf(w, "  fingerprint  %s\n", orchestrator.ShortFingerprint(run.Plan.Fingerprint))
	fmt.Fprintf(w, "  updated      %s\n", run.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	if past, step := orchestrator.PastPointOfNoReturn(run.Plan, recs); past {
		fmt.Fprintf(w, "  past the point of no return (%s): the run can only go forward\n", step)
	}
	if run.Reason != "" {
		fmt.Fprintf(w, "  reason       %s\n", run.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\n  #\tSTEP\tSTATUS\tTRIES\tDETAIL")
	for i, r := range recs {
		detail := r.Error
		switch {
		case r.Status == orchestrator.StepSkipped:
			detail = "skipped: " + r.SkipReason
		case r.Status == orchestrator.StepDone && r.AlreadyInPlace:
			detail = "already in place"
		case r.Status == orchestrator.StepDone && r.Confirmation != nil:
			detail = "confirmed by " + r.Confirmation.Actor
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%s\n", i+1, r.StepID, r.Status, r.Attempts, detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nNext: %s\n", next)
}

// nextCommand is the exact command the operator should type now.
func nextCommand(run orchestrator.Run, recs []orchestrator.StepRecord) string {
	i := orchestrator.NextStep(recs)
	var spec orchestrator.StepSpec
	if i >= 0 {
		spec = run.Plan.Steps[i]
	}
	prof := ""
	if run.Profile != "" {
		prof = " --profile " + run.Profile
	}
	switch run.State {
	case orchestrator.StateCompleted:
		return "nothing: the run is complete (upgrader journal shows what was done)"
	case orchestrator.StateAborted:
		return "nothing: the run was aborted; plan again with upgrader plan" + prof
	case orchestrator.StateBlocked:
		return "fix the blockers, then: upgrader plan" + prof + " && upgrader run" + prof
	case orchestrator.StateWaitingOperator:
		s := fmt.Sprintf("do the operator step %q, then: upgrader resume --yes", spec.Title)
		if spec.Skip == orchestrator.SkipWithReason {
			s += fmt.Sprintf("   (or: upgrader skip %s --reason \"...\")", spec.ID)
		}
		return s
	case orchestrator.StateRebooting:
		return "the host was asked to reboot; once it is back up: upgrader resume"
	case orchestrator.StateFailed:
		s := "fix the cause shown above, then: upgrader resume"
		if spec.Skip == orchestrator.SkipWithReason {
			s += fmt.Sprintf("   (or: upgrader skip %s --reason \"...\")", spec.ID)
		}
		if past, _ := orchestrator.PastPointOfNoReturn(run.Plan, recs); !past {
			s += "   (or: upgrader abort --reason \"...\")"
		}
		return s
	}
	return "upgrader resume   (the run stopped while " + string(run.State) + "; resume probes the step that was in flight)"
}

func printJournal(w io.Writer, entries []orchestrator.JournalEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tEVENT\tSTEP\tTEXT")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format("2006-01-02 15:04:05.000"), e.Actor, e.Event, e.Step, e.Text)
	}
	tw.Flush()
}
