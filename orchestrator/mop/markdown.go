package mop

import (
	"fmt"
	"io"
	"path"
	"strings"

	"upgrader/orchestrator"
)

// part is one piece of the MOP: markdown, or the timeline, which HTML
// draws as SVG and markdown as a text block.
type part struct {
	md       string
	timeline bool
}

// Markdown writes the MOP as CommonMark with GFM tables.
func Markdown(w io.Writer, in Input) error {
	d := newDoc(in)
	for _, p := range d.parts() {
		if _, err := io.WriteString(w, p.md); err != nil {
			return err
		}
	}
	return nil
}

// esc makes text literal in markdown: the characters CommonMark and GFM
// tables give a meaning are escaped, line breaks become spaces.
func esc(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|~&#!", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// code is a code span holding s literally (s has no backquote: ids,
// commands upgrader writes).
func code(s string) string { return "`" + strings.ReplaceAll(s, "`", "'") + "`" }

// cell is text for a table cell in which code spans written by upgrader
// (between backquotes) stay code and the rest is escaped.
func cell(s string) string {
	parts := strings.Split(s, "`")
	for i := range parts {
		if i%2 == 0 {
			parts[i] = esc(parts[i])
		} else {
			parts[i] = code(strings.ReplaceAll(parts[i], "|", "\\|"))
		}
	}
	return strings.Join(parts, "")
}

type mdb struct{ strings.Builder }

func (b *mdb) p(format string, a ...any) { fmt.Fprintf(b, format+"\n\n", a...) }

func (b *mdb) table(header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// fence is a fenced code block longer than any run of backquotes in text.
func fence(info, text string) string {
	f := "```"
	for strings.Contains(text, f) {
		f += "`"
	}
	return f + info + "\n" + text + "\n" + f + "\n\n"
}

func (d doc) parts() []part {
	var head, body mdb
	p := d.Plan
	head.p("# Method of Procedure: %s", esc(p.Title))
	rows := [][]string{}
	row := func(k, v string) { rows = append(rows, []string{"**" + k + "**", v}) }
	if p.Site != "" {
		row("Site", esc(p.Site))
	}
	if p.Host != "" {
		host := p.Host
		if m, _ := p.Facts.Get(orchestrator.FactHostModel); m != "" {
			host += " (" + m + ")"
		}
		row("Host", esc(host))
	}
	row("Procedure", code(p.Procedure))
	row("From → to", esc(p.From+" → "+p.To))
	row("Status", esc(d.status()))
	row("Plan fingerprint", code(p.Fingerprint))
	row("Point of no return", esc(d.pnrText()))
	row("Downtime window", esc(d.downtimeText()))
	total := "unknown"
	if len(p.Steps) > 0 {
		all := make([]int, len(p.Steps))
		for i := range all {
			all[i] = i
		}
		total = d.span(all)
	}
	row("Expected duration", esc(total+timesSource(d)))
	row("Catalog, profile", esc(p.Inputs.Catalog+", profile digest "+orchestrator.ShortFingerprint(p.Inputs.Profile)))
	head.table([]string{"Item", "Value"}, rows)

	head.p("## Command that runs exactly this plan")
	head.WriteString(fence("sh", strings.Join(RunArgs(d.Run, p), " \\\n    ")))
	head.p("upgrader refuses to start if the plan made on the day has another fingerprint: then the host or the " +
		"options changed, and the plan must be reviewed again.")
	if a := d.assumed(); len(a) > 0 {
		head.p("**What-if plan**: %s are assumed, not read from the host; the command carries the same assumptions. "+
			"Plan again without `--assume` for the window.", esc(strings.Join(a, ", ")))
	}

	var tl mdb
	tl.p("## Timeline")
	tl.WriteString(fence("text", textTimeline(d)))

	d.findings(&body)
	d.media(&body)
	d.steps(&body)
	d.recovery(&body)
	d.signOff(&body)
	return []part{{md: head.String()}, {md: tl.String(), timeline: true}, {md: body.String()}}
}

func timesSource(d doc) string {
	switch {
	case d.TimesNote != "":
		return " (" + d.TimesNote + ")"
	case d.Times.Runs == 0:
		return " (no completed run of this procedure is recorded in the state)"
	}
	return fmt.Sprintf(" (from %d completed run(s) of this procedure recorded in the state)", d.Times.Runs)
}

func (d doc) findings(b *mdb) {
	p := d.Plan
	b.p("## Prerequisites and blockers")
	if len(p.Blockers) == 0 {
		b.p("No blocker: the plan may run.")
	} else {
		b.p("**The plan cannot run** until each blocker is fixed (or, where its policy allows, overridden with a reason) and it is planned again.")
		b.table([]string{"Blocker", "What to do", "Rule"}, findingRows(p.Blockers))
	}
	var guards []string
	for i, s := range p.Steps {
		for _, a := range s.Requires {
			by := "an earlier step"
			for j := range i {
				if slicesContains(p.Steps[j].Produces, a) {
					by = d.stepRef(j)
				}
			}
			guards = append(guards, fmt.Sprintf("- %s needs the verified %s made by %s; upgrader checks it again right before the step starts.",
				esc(capital(d.stepRef(i))), code(a), esc(by)))
		}
	}
	if len(guards) > 0 {
		b.WriteString(strings.Join(guards, "\n") + "\n\n")
	}
	b.p("- Consent: the run starts only with the fingerprint above (`--expect-fingerprint`), and asks once more at the point of no return.")
	if len(p.Warnings) > 0 {
		b.p("## Warnings")
		b.table([]string{"Warning", "Read before the window", "Rule"}, findingRows(p.Warnings))
	}
	if len(p.Notes) > 0 {
		b.p("## Notes")
		b.table([]string{"Note", "For the record", "Rule"}, findingRows(p.Notes))
	}
}

func findingRows(fs []orchestrator.Finding) [][]string {
	rows := make([][]string, len(fs))
	for i, f := range fs {
		rows[i] = []string{code(f.ID), esc(f.Message), esc(source(f.Source, f.Refs, f.Rationale))}
	}
	return rows
}

func (d doc) media(b *mdb) {
	p := d.Plan
	b.p("## Media")
	if d.product != "POM" {
		var rows [][]string
		for i, s := range p.Steps {
			for _, r := range s.Refs {
				if r.MaterialID != "" {
					rows = append(rows, []string{itoa(i + 1), code(s.ID), esc(r.MaterialID), esc(r.ReleaseNotes)})
				}
			}
		}
		b.p("The sequence document lists the material each step uses and the release notes it follows; it publishes no sizes or checksums for them.")
		if len(rows) > 0 {
			b.table([]string{"#", "Step", "Material ID", "Release notes to follow"}, rows)
		}
		return
	}
	iso, sum, isoSize := "", "", ""
	for _, s := range p.Steps {
		if s.ID == "verify-media" {
			iso, sum, isoSize = s.Params["iso"], s.Params["sha256"], s.Params["size"]
		}
	}
	dir := path.Dir(iso)
	if iso == "" {
		dir = "media.dir"
	}
	b.p("Sizes as the release notes' file list publishes them; the ISO's SHA-256 as the site profile gives it (media.sha256, copied from the support site), checked by verify-media with the signature. Found: the size of the file in %s when the plan was made.", code(dir))
	var rows [][]string
	for i, f := range orchestrator.POMFileList() {
		pub := "not published"
		if i == 0 {
			pub = "not given"
			if sum != "" {
				pub = code(sum)
			}
		}
		found := "not read"
		if v, ok := p.Facts.Get(f.Fact); ok {
			switch {
			case v == "-1":
				found = "absent"
			case v == itoa64(f.Size):
				found = "yes, " + groupDigits(v) + " bytes"
			case i == 0 && v == isoSize:
				found = groupDigits(v) + " bytes, the size the profile's media.size expects"
			default:
				found = "**" + groupDigits(v) + " bytes**"
			}
		}
		rows = append(rows, []string{code(f.Name), groupDigits(itoa64(f.Size)), pub, found})
	}
	b.table([]string{"File", "Published size (bytes)", "Published SHA-256", "Found"}, rows)
}

func (d doc) steps(b *mdb) {
	p := d.Plan
	b.p("## Steps")
	if len(p.Steps) == 0 {
		if p.NothingToDo {
			b.p("None: nothing to do.")
		} else {
			b.p("None: the plan stops at its blockers.")
		}
		return
	}
	var rows [][]string
	for i, s := range p.Steps {
		step := code(s.ID) + ": " + esc(s.Title)
		var marks []string
		if w := where(s.RunsOn); w != "" {
			marks = append(marks, "on "+w)
		}
		if i == d.pnr {
			marks = append(marks, "**POINT OF NO RETURN**")
		}
		if s.Downtime {
			marks = append(marks, d.product+" down")
		}
		if len(marks) > 0 {
			step += " (" + strings.Join(marks, ", ") + ")"
		}
		var act []string
		for _, a := range d.operatorAction(i) {
			act = append(act, cell(a))
		}
		src := source(s.Source, s.Refs, s.Rationale)
		rows = append(rows, []string{itoa(i + 1), step, esc(who(s)), strings.Join(act, " "), esc(src), esc(d.expected(s.ID))})
	}
	b.table([]string{"#", "Step", "Who", "Operator types or clicks", "Source", "Expected"}, rows)
	var notes []string
	for i, s := range p.Steps {
		for _, n := range s.Notes {
			notes = append(notes, fmt.Sprintf("- %s: %s", esc(capital(d.stepRef(i))), esc(n)))
		}
	}
	if len(notes) > 0 {
		b.p("Notes on the steps:")
		b.WriteString(strings.Join(notes, "\n") + "\n\n")
	}
}

func (d doc) signOff(b *mdb) {
	b.p("## Sign-off")
	b.p("Change request: ____________________  Plan fingerprint: %s", code(orchestrator.ShortFingerprint(d.Plan.Fingerprint)))
	rows := [][]string{}
	for _, r := range []string{"Prepared by (field engineer)", "Reviewed by (technical lead)", "Approved by (change advisory board)",
		"Customer site contact", "Carried out by", "Service verified after the window by"} {
		rows = append(rows, []string{r, " ", " ", " "})
	}
	b.table([]string{"Role", "Name", "Signature", "Date"}, rows)
	foot := "Written by upgrader"
	if d.Version != "" {
		foot += " " + d.Version
	}
	foot += " from the plan above (catalog " + d.Plan.Inputs.Catalog + ")"
	if !d.Generated.IsZero() {
		foot += " on " + d.Generated.UTC().Format("2006-01-02 15:04 UTC")
	}
	b.p("%s.", esc(foot))
}

func capital(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func itoa64(n int64) string { return fmt.Sprint(n) }

// groupDigits writes 288784384 as 288,784,384, as the file list does.
func groupDigits(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
