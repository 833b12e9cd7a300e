package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"upgrader/orchestrator"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// lineWidth is the terminal the text plan is written for: no line of it is
// longer (in runes), so it reads in an 80-column SSH session and pastes
// into a change request unchanged.
const lineWidth = 80

// useColor reports whether w gets ANSI colours: only a terminal, and
// never with NO_COLOR set (https://no-color.org) or TERM=dumb.
func useColor(w io.Writer) bool {
	return isTerminal(w) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// palette paints text when colour is on and leaves it alone otherwise.
type palette struct{ on bool }

func (c palette) paint(code, s string) string {
	if !c.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (c palette) red(s string) string    { return c.paint("31", s) }
func (c palette) yellow(s string) string { return c.paint("33", s) }
func (c palette) bold(s string) string   { return c.paint("1", s) }

func runeLen(s string) int { return utf8.RuneCountInString(s) }

// wrap breaks text at spaces into lines of at most width runes; a word
// longer than a line (a long path) is cut, so the width always holds.
func wrap(text string, width int) []string {
	width = max(width, 20)
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		for runeLen(word) > width {
			if line != "" {
				lines = append(lines, line)
				line = ""
			}
			r := []rune(word)
			lines = append(lines, string(r[:width]))
			word = string(r[width:])
		}
		switch {
		case word == "":
		case line == "":
			line = word
		case runeLen(line)+1+runeLen(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// hanging returns text wrapped after prefix, the following lines indented
// to line up under the first.
func hanging(prefix, text string) []string {
	indent := strings.Repeat(" ", runeLen(prefix))
	lines := wrap(text, lineWidth-runeLen(prefix))
	for i := range lines {
		if i == 0 {
			lines[i] = strings.TrimRight(prefix+lines[i], " ")
		} else {
			lines[i] = indent + lines[i]
		}
	}
	return lines
}

func hang(w io.Writer, prefix, text string) {
	for _, l := range hanging(prefix, text) {
		fmt.Fprintln(w, l)
	}
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

// runsOnLabel names the server a step runs on, as an engineer says it.
func runsOnLabel(role string) string {
	switch role {
	case "":
		return "this host"
	case orchestrator.RoleSource:
		return "old server"
	case orchestrator.RoleTarget:
		return "new server"
	}
	return role
}

// stepWhere names the server a step acts on: an MPP's own server for its
// step over SSH (cut to fit the table; its title names it whole), else
// the server that runs it.
func stepWhere(s orchestrator.StepSpec) string {
	if h := s.Params["host"]; h != "" && strings.HasPrefix(s.ID, "mpp-") {
		if r := []rune(h); len(r) > maxHostColumn {
			return string(r[:maxHostColumn-1]) + "…"
		}
		return h
	}
	return runsOnLabel(s.RunsOn)
}

// refText is one vendor reference: the document and its section in
// quotes, the material ID and release notes a PC step follows, the guide
// the section sends the reader to.
func refText(r orchestrator.Ref) string { return r.Cite(" · ") }

// citedText names the sections refs cite, grouped by document:
// `Doc "A", "B"; Other "C"`.
func citedText(refs []orchestrator.Ref) string {
	var docs []string
	sections := map[string][]string{}
	for _, r := range refs {
		if r.Document == "" {
			continue
		}
		if _, ok := sections[r.Document]; !ok {
			docs = append(docs, r.Document)
		}
		sections[r.Document] = append(sections[r.Document], "\""+r.Section+"\"")
	}
	parts := make([]string, len(docs))
	for i, d := range docs {
		parts[i] = d + " " + strings.Join(sections[d], ", ")
	}
	return strings.Join(parts, "; ")
}

// sourceLabel is the step table's short mark of whose rule a step is.
func sourceLabel(src orchestrator.Source) string {
	if src == orchestrator.SourceUpgrader {
		return "ours"
	}
	return string(src)
}

// oursText says why upgrader adds a rule of its own.
func oursText(rationale string) string {
	return "upgrader's own rule, not the release notes': " + rationale
}

// stepRanges writes 1-based step numbers as ranges: "1–4, 6".
func stepRanges(idx []int) string {
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(idx[i]+1))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", idx[i]+1, idx[j]+1))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func productOf(p orchestrator.Plan) string {
	if proc, err := orchestrator.LookupProcedure(p.Procedure); err == nil && proc.Product != "" {
		return proc.Product
	}
	return "the service"
}

// downtimeSteps returns the indexes of the steps that run with the
// service stopped.
func downtimeSteps(p orchestrator.Plan) []int {
	var idx []int
	for i, s := range p.Steps {
		if s.Downtime {
			idx = append(idx, i)
		}
	}
	return idx
}

// printPlan writes the plan for people, in 80 columns: header, findings,
// the step table with the point of no return drawn between rows, each
// step's details, and the service downtime window.
func printPlan(w io.Writer, p orchestrator.Plan) {
	renderPlan(w, p, palette{on: useColor(w)}, false)
}

// printPlanBrief is the header, the findings and a one-line summary of the
// steps, for a run that starts.
func printPlanBrief(w io.Writer, p orchestrator.Plan) {
	renderPlan(w, p, palette{on: useColor(w)}, true)
	if len(p.Steps) == 0 {
		return
	}
	sum := fmt.Sprintf("%d steps", len(p.Steps))
	if i := p.StepIndex(p.PointOfNoReturn); i >= 0 {
		sum += fmt.Sprintf("; point of no return at step %d (%s)", i+1, p.PointOfNoReturn)
	}
	if down := downtimeSteps(p); len(down) > 0 {
		sum += fmt.Sprintf("; %s stopped during steps %s", productOf(p), stepRanges(down))
	}
	fmt.Fprintln(w)
	hang(w, "", sum+".")
}

func renderPlan(w io.Writer, p orchestrator.Plan, c palette, brief bool) {
	hang(w, "Plan: ", p.Title)
	row := func(label, value string) { hang(w, fmt.Sprintf("  %-13s", label), value) }
	row("procedure", p.Procedure)
	if p.Site != "" {
		row("site", p.Site)
	}
	if host := hostText(p); host != "" {
		row("host", host)
	}
	row("from → to", p.From+" → "+p.To)
	row("fingerprint", orchestrator.ShortFingerprint(p.Fingerprint))
	keys := slices.Sorted(maps.Keys(p.Facts))
	var assumed []string
	for _, k := range keys {
		if p.Facts[k].Assumed {
			assumed = append(assumed, k+"="+p.Facts[k].Value)
		}
	}
	if len(assumed) > 0 {
		row("ASSUMED", strings.Join(assumed, ", ")+" (what-if: not read from this host)")
	}
	printFindings(w, c.red, "BLOCKERS", "X", p.Blockers)
	printFindings(w, c.yellow, "WARNINGS", "!", p.Warnings)
	printFindings(w, func(s string) string { return s }, "NOTES", "-", p.Notes)
	if p.NothingToDo {
		fmt.Fprintln(w, "\nNothing to do.")
		return
	}
	if brief {
		return
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(w)
		hang(w, "", "No steps: the plan stops at the blockers above; fix them and plan again.")
		return
	}
	heading := fmt.Sprintf("STEPS (%d)", len(p.Steps))
	if len(p.Blockers) > 0 {
		heading += ": none runs until the blockers above are fixed"
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, heading)
	printStepTable(w, p, c)
	fmt.Fprintln(w)
	printStepDetails(w, p)
	printDowntime(w, p)
}

// hostText is the host name with its hardware model and, for a two-server
// procedure, which of the two servers it is.
func hostText(p orchestrator.Plan) string {
	host := p.Host
	model, _ := p.Facts.Get(orchestrator.FactHostModel)
	if model != "" {
		if host == "" {
			host = model
		} else {
			host += " (" + model + ")"
		}
	}
	twoServers := slices.ContainsFunc(p.Steps, func(s orchestrator.StepSpec) bool { return s.RunsOn != "" })
	if role := orchestrator.RoleOf(model); twoServers && role != "" {
		host += ": the " + runsOnLabel(role)
	}
	return host
}

func printFindings(w io.Writer, paint func(string) string, title, mark string, fs []orchestrator.Finding) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, paint(fmt.Sprintf("%s (%d)", title, len(fs))))
	for _, f := range fs {
		msg := f.Message
		if f.Severity == orchestrator.SeverityBlocker && f.Skip == orchestrator.SkipWithReason && !strings.Contains(msg, "--override") {
			msg += " (--override " + f.ID + "=REASON accepts it)"
		}
		lines := hanging("  "+mark+" ", f.ID+": "+msg)
		head := "  " + mark + " " + f.ID + ":"
		if strings.HasPrefix(lines[0], head) {
			lines[0] = "  " + paint(mark+" "+f.ID+":") + strings.TrimPrefix(lines[0], head)
		}
		for _, r := range f.Refs {
			lines = append(lines, hanging("    see ", refText(r))...)
		}
		if f.Source == orchestrator.SourceUpgrader {
			lines = append(lines, hanging("    ", oursText(f.Rationale))...)
		}
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

// maxHostColumn is the widest MPP server name kept in the step table.
const maxHostColumn = 13

// maxIDColumn is the widest step id kept in its table column; a longer
// one gets a row of its own so the table stays within lineWidth.
const maxIDColumn = 26

func printStepTable(w io.Writer, p orchestrator.Plan, c palette) {
	header := []string{"#", "ID", "KIND", "RUNS ON", "SERVICE", "SKIP", "RULE"}
	rows := make([][]string, len(p.Steps))
	for i, s := range p.Steps {
		svc := "up"
		if s.Downtime {
			svc = "DOWN"
		}
		rows[i] = []string{strconv.Itoa(i + 1), s.ID, kindLabel(s.Kind), stepWhere(s), svc, string(s.Skip), sourceLabel(s.Source)}
	}
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = runeLen(h)
	}
	for _, r := range rows {
		for i, cell := range r {
			if i == 1 && runeLen(cell) > maxIDColumn {
				continue
			}
			widths[i] = max(widths[i], runeLen(cell))
		}
	}
	format := func(cells []string) string {
		var b strings.Builder
		b.WriteString("  ")
		for i, cell := range cells {
			pad := strings.Repeat(" ", max(widths[i]-runeLen(cell), 0))
			switch {
			case i == 0:
				b.WriteString(pad + cell) // numbers right-aligned
			case i == len(cells)-1:
				b.WriteString(cell)
			default:
				b.WriteString(cell + pad)
			}
			if i < len(cells)-1 {
				b.WriteString("  ")
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	tableWidth := runeLen(format(header))
	for _, r := range rows {
		if runeLen(r[1]) <= maxIDColumn {
			tableWidth = max(tableWidth, runeLen(format(r)))
		}
	}
	fmt.Fprintln(w, format(header))
	for i, r := range rows {
		if i > 0 && p.Steps[i].RunsOn != p.Steps[i-1].RunsOn {
			// A two-server procedure: the run is carried to the other server.
			fmt.Fprintln(w, c.bold(ruleLine([]string{
				" move to the " + runsOnLabel(p.Steps[i].RunsOn) + ": upgrader export here, import there ",
				" move to the " + runsOnLabel(p.Steps[i].RunsOn) + " ",
			}, tableWidth)))
		}
		if p.Steps[i].ID == p.PointOfNoReturn {
			fmt.Fprintln(w, c.bold(ruleLine([]string{
				" point of no return: " + p.PointOfNoReturn + " cannot be undone (no rollback) ",
				" point of no return: " + p.PointOfNoReturn + " ",
			}, tableWidth)))
		}
		if runeLen(r[1]) > maxIDColumn {
			fmt.Fprintln(w, format(r[:2]))
			r = append([]string{"", ""}, r[2:]...)
		}
		fmt.Fprintln(w, format(r))
	}
	if p.PointOfNoReturn == "" {
		hang(w, "  ", "(no step is marked irreversible: the plan has no point of no return)")
	}
}

// ruleLine is a rule drawn between two rows of the step table around the
// first of texts that fits, as wide as the table and never wider than
// lineWidth.
func ruleLine(texts []string, width int) string {
	const indent = "  "
	text := texts[0]
	for _, t := range texts {
		text = t
		if runeLen(indent+t)+6 <= lineWidth {
			break
		}
	}
	width = min(max(width, runeLen(indent+text)+6), lineWidth)
	fill := max(width-runeLen(indent+text), 2)
	left := fill / 2
	return indent + strings.Repeat("─", left) + text + strings.Repeat("─", fill-left)
}

// printStepDetails writes, under the table, what each step is, why it is
// in, the vendor material it follows, what it needs and what to know.
func printStepDetails(w io.Writer, p orchestrator.Plan) {
	nw := len(strconv.Itoa(len(p.Steps)))
	for i, s := range p.Steps {
		num := fmt.Sprintf("  %*d. ", nw, i+1)
		hang(w, num, s.ID+" — "+s.Title)
		indent := strings.Repeat(" ", runeLen(num))
		detail := func(label, text string) { hang(w, indent+fmt.Sprintf("%-8s", label), text) }
		if s.Reason != "" {
			detail("why", s.Reason)
		}
		for _, r := range s.Refs {
			detail("see", refText(r))
		}
		if s.Source == orchestrator.SourceUpgrader {
			detail("ours", s.Rationale)
		}
		if len(s.Requires) > 0 {
			detail("needs", "verified "+strings.Join(s.Requires, ", ")+", re-checked right before the step starts")
		}
		for _, a := range s.Produces {
			var users []string
			for j := i + 1; j < len(p.Steps); j++ {
				if slices.Contains(p.Steps[j].Requires, a) {
					users = append(users, fmt.Sprintf("step %d (%s)", j+1, p.Steps[j].ID))
				}
			}
			text := a
			if len(users) > 0 {
				text += ", which " + strings.Join(users, " and ") + " needs"
			}
			detail("makes", text)
		}
		if s.Kind == orchestrator.KindGate && s.Instructions != "" {
			detail("you do", s.Instructions)
		}
		for _, n := range s.Notes {
			detail("note", n)
		}
	}
}

// printDowntime says when the product is out of service: the plan's
// outage window and the steps that run with it stopped; for a procedure
// on two servers, for each server.
func printDowntime(w io.Writer, p orchestrator.Plan) {
	fmt.Fprintln(w, "\nSERVICE DOWNTIME")
	product := productOf(p)
	var servers []string
	for _, s := range p.Steps {
		if !slices.Contains(servers, s.RunsOn) {
			servers = append(servers, s.RunsOn)
		}
	}
	for _, srv := range servers {
		var down []int
		for i, s := range p.Steps {
			if s.Downtime && s.RunsOn == srv {
				down = append(down, i)
			}
		}
		on := ""
		if len(servers) > 1 {
			on = " on the " + runsOnLabel(srv)
			if srv == "" {
				on = " on this host"
			}
		}
		if len(down) == 0 {
			hang(w, "  ", fmt.Sprintf("No step stops %s%s.", product, on))
			continue
		}
		// Each stretch of consecutive steps is one time the product is
		// down: an upgrade with the help library stops it twice.
		var spans []string
		for i := 0; i < len(down); {
			j := i
			for j+1 < len(down) && down[j+1] == down[j]+1 {
				j++
			}
			from, to := down[i], down[j]
			if from == to {
				spans = append(spans, fmt.Sprintf("during step %d (%s)", from+1, p.Steps[from].ID))
			} else {
				spans = append(spans, fmt.Sprintf("from step %d (%s) to step %d (%s)", from+1, p.Steps[from].ID, to+1, p.Steps[to].ID))
			}
			i = j + 1
		}
		if len(down) == 1 {
			hang(w, "  ", fmt.Sprintf("%s is stopped%s %s only.", product, on, spans[0]))
			continue
		}
		hang(w, "  ", fmt.Sprintf("%s is stopped%s %s.", product, on, strings.Join(spans, ", and ")))
		hang(w, "  ", "Steps that run with it stopped: "+stepRanges(down)+".")
	}
}

// printStatus writes where a run stands and the next command to type.
func printStatus(w io.Writer, st orchestrator.Status) {
	run, recs := st.Run, st.Steps
	fmt.Fprintf(w, "Run %s: %s\n", run.ID, run.State)
	fmt.Fprintf(w, "  procedure    %s (%s → %s)\n", run.Plan.Procedure, run.Plan.From, run.Plan.To)
	fmt.Fprintf(w, "  fingerprint  %s\n", orchestrator.ShortFingerprint(run.Plan.Fingerprint))
	fmt.Fprintf(w, "  updated      %s\n", run.UpdatedAt.Format("2006-01-02 15:04:05 UTC"))
	if st.Busy {
		fmt.Fprintf(w, "  now          carrying out %s\n", st.Outcome.Step)
	}
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
		case r.Confirmation != nil && r.Status == orchestrator.StepDone:
			detail = "confirmed by " + r.Confirmation.Actor
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d\t%s\n", i+1, r.StepID, r.Status, r.Attempts, detail)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nNext: %s\n", st.Outcome.Next.Text())
}

// printPointOfNoReturn shows what the operator consents to before the
// first irreversible step: the step, and the verified backup and media it
// rests on (re-checked again right before it starts).
func printPointOfNoReturn(w io.Writer, st orchestrator.Status, i int) {
	spec := st.Run.Plan.Steps[i]
	hang(w, "      ", fmt.Sprintf("POINT OF NO RETURN: %s. There is no rollback: from here the way back is a restore from the backup.", spec.Title))
	for _, r := range st.Steps[:i] {
		for _, name := range slices.Sorted(maps.Keys(r.Outputs.Artifacts)) {
			a := r.Outputs.Artifacts[name]
			hang(w, "      ", fmt.Sprintf("%s (verified by %s): %s", name, r.StepID, a.Describe()))
		}
	}
}

func printJournal(w io.Writer, entries []orchestrator.JournalEntry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME (UTC)\tACTOR\tEVENT\tSTEP\tTEXT")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format("2006-01-02 15:04:05.000"), e.Actor, e.Event, e.Step, e.Text)
	}
	tw.Flush()
}

// printStepExplain writes one step's full record (upgrader plan --explain).
func printStepExplain(w io.Writer, p orchestrator.Plan, i int) {
	s := p.Steps[i]
	hang(w, "", fmt.Sprintf("Step %d of %d in %s (fingerprint %s)", i+1, len(p.Steps), p.Procedure,
		orchestrator.ShortFingerprint(p.Fingerprint)))
	row := func(label, text string) { hang(w, fmt.Sprintf("  %-14s", label), text) }
	// rows writes items one a line, the label on the first: "(none)"
	// when there is nothing, "- " before each of several notes.
	rows := func(label string, items []string, bullet bool) {
		if len(items) == 0 {
			row(label, "(none)")
			return
		}
		for j, it := range items {
			if bullet && len(items) > 1 {
				it = "- " + it
			}
			if j > 0 {
				label = ""
			}
			row(label, it)
		}
	}
	row("id", s.ID)
	row("title", s.Title)
	switch s.Kind {
	case orchestrator.KindGate:
		row("kind", "operator: you do it, then confirm (upgrader resume --yes)")
	case orchestrator.KindReboot:
		row("kind", "reboot: the host restarts; upgrader checks it came back")
	default:
		row("kind", string(s.Kind)+": upgrader runs it")
	}
	row("action", s.Action)
	row("runs on", runsOnLabel(s.RunsOn))
	switch s.Skip {
	case orchestrator.SkipNever:
		row("skip", "never: a safety rule, it cannot be skipped")
	case orchestrator.SkipWithReason:
		row("skip", fmt.Sprintf("with-reason: upgrader skip %s --reason \"...\" (journaled)", s.ID))
	default:
		row("skip", string(s.Skip))
	}
	switch pnr := p.StepIndex(p.PointOfNoReturn); {
	case s.Irreversible && s.ID == p.PointOfNoReturn:
		row("irreversible", "yes: the point of no return; once it starts there is no rollback and abort is refused")
	case s.Irreversible:
		row("irreversible", "yes: it cannot be undone")
	case pnr >= 0 && i > pnr:
		row("irreversible", fmt.Sprintf("no, but it runs after the point of no return (step %d, %s)", pnr+1, p.PointOfNoReturn))
	default:
		row("irreversible", "no")
	}
	if s.Downtime {
		row("downtime", "yes: "+productOf(p)+" is out of service during this step")
	} else {
		row("downtime", "no")
	}
	row("why", s.Reason)
	if s.Source == orchestrator.SourceUpgrader {
		row("source", oursText(s.Rationale))
	} else {
		row("source", "the vendor's: "+citedText(s.Refs))
	}
	refs := make([]string, len(s.Refs))
	for j, r := range s.Refs {
		refs[j] = refText(r)
	}
	rows("refs", refs, false)
	if len(s.Requires) > 0 {
		row("requires", strings.Join(s.Requires, ", ")+" (verified by an earlier step; re-checked right before this one starts)")
	} else {
		row("requires", "(none)")
	}
	rows("produces", []string{strings.Join(s.Produces, ", ")}[:min(len(s.Produces), 1)], false)
	var params []string
	for _, k := range slices.Sorted(maps.Keys(s.Params)) {
		params = append(params, k+" = "+s.Params[k])
	}
	rows("params", params, false)
	rows("instructions", []string{s.Instructions}[:min(len(s.Instructions), 1)], false)
	rows("notes", s.Notes, true)
}

// printHistory writes the runs as a table, oldest first.
func printHistory(w io.Writer, runs []orchestrator.RunSummary) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "No runs in this state directory yet.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tPROCEDURE\tFROM → TO\tSTATE\tSTEPS DONE\tCREATED (UTC)\tLAST CHANGE (UTC)")
	for _, r := range runs {
		if r.Procedure == "" {
			fmt.Fprintf(tw, "%s\t(not readable: %s)\t\t\t\t\t\n", r.ID, r.Reason)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s → %s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.Procedure, r.From, r.To, r.State, r.Done, r.Steps,
			r.CreatedAt.Format("2006-01-02 15:04"), r.UpdatedAt.Format("2006-01-02 15:04"))
	}
	tw.Flush()
	noun := "runs"
	if len(runs) == 1 {
		noun = "run"
	}
	fmt.Fprintf(w, "%d %s.\n", len(runs), noun)
	if len(runs) > 0 {
		fmt.Fprintf(w, "Next: upgrader journal --run %s\n", runs[len(runs)-1].ID)
	}
}
