package mop

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"upgrader/orchestrator"
)

// Input is everything a MOP is written from.
type Input struct {
	Plan orchestrator.Plan
	// Run is how the plan was made, for the command that runs exactly it.
	Run Invocation
	// Times are the earlier runs' step durations; TimesNote says why
	// there are none when they could not be read ("" when read).
	Times     orchestrator.StepTimes
	TimesNote string
	// Version is upgrader's; Generated when the MOP was written (zero:
	// not said, as in golden files).
	Version   string
	Generated time.Time
}

// Invocation is the options a plan was made with, besides the profile's
// contents: the same options make `upgrader run` plan it again.
type Invocation struct {
	Profile  string
	StateDir string // "" when the default
	// Procedure is set when the operator named one (--procedure).
	Procedure bool
	Overrides []string // ID=REASON, as given
	Assume    []string // key=value, as given
}

// RunArgs is the command that runs exactly this plan, each flag with its
// value in one word, quoted for a POSIX shell.
func RunArgs(inv Invocation, p orchestrator.Plan) []string {
	args := []string{"upgrader run", "--profile " + ShellQuote(inv.Profile)}
	if inv.StateDir != "" {
		args = append(args, "--state-dir "+ShellQuote(inv.StateDir))
	}
	if inv.Procedure {
		args = append(args, "--procedure "+ShellQuote(p.Procedure))
	}
	if len(p.Inputs.With) > 0 {
		args = append(args, "--with "+ShellQuote(strings.Join(p.Inputs.With, ",")))
	}
	for _, o := range inv.Overrides {
		args = append(args, "--override "+ShellQuote(o))
	}
	for _, a := range inv.Assume {
		args = append(args, "--assume "+ShellQuote(a))
	}
	return append(args, "--expect-fingerprint "+orchestrator.ShortFingerprint(p.Fingerprint))
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./,:=@+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// doc is what the writers print, worked out once from the input.
type doc struct {
	Input
	product string
	pnr     int     // index of the point of no return, -1 if none
	down    [][]int // stretches of consecutive downtime steps
}

func newDoc(in Input) doc {
	d := doc{Input: in, product: "the service", pnr: in.Plan.StepIndex(in.Plan.PointOfNoReturn)}
	if proc, err := orchestrator.LookupProcedure(in.Plan.Procedure); err == nil && proc.Product != "" {
		d.product = proc.Product
	}
	for i, s := range in.Plan.Steps {
		if !s.Downtime {
			continue
		}
		if n := len(d.down); n > 0 && d.down[n-1][len(d.down[n-1])-1] == i-1 && in.Plan.Steps[i-1].RunsOn == s.RunsOn {
			d.down[n-1] = append(d.down[n-1], i)
		} else {
			d.down = append(d.down, []int{i})
		}
	}
	return d
}

// who says who carries a step out.
func who(s orchestrator.StepSpec) string {
	switch s.Kind {
	case orchestrator.KindGate:
		return "operator"
	case orchestrator.KindReboot:
		return "upgrader (restarts the server)"
	}
	return "upgrader"
}

// expected is a step's expected duration from earlier runs, else unknown.
func (d doc) expected(id string) string {
	m, ok := d.Times.Median[id]
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%s (median of %d)", duration(m), d.Times.Samples[id])
}

// duration is a duration as people say it, to the second.
func duration(t time.Duration) string {
	t = t.Round(time.Second)
	switch {
	case t < time.Second:
		return "under 1s"
	case t < time.Minute:
		return fmt.Sprintf("%ds", int(t.Seconds()))
	case t < time.Hour && t%time.Minute == 0:
		return fmt.Sprintf("%dm", int(t.Minutes()))
	case t < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(t.Minutes()), int(t.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(t.Hours()), int(t.Minutes())%60)
}

// span sums the expected durations of steps, or says which are unknown.
func (d doc) span(idx []int) string {
	var sum time.Duration
	for _, i := range idx {
		m, ok := d.Times.Median[d.Plan.Steps[i].ID]
		if !ok {
			return "unknown"
		}
		sum += m
	}
	return duration(sum)
}

func (d doc) stepRef(i int) string {
	return fmt.Sprintf("step %d (%s)", i+1, d.Plan.Steps[i].ID)
}

// where names the server of a two-server procedure's step, "" otherwise.
func where(role string) string {
	switch role {
	case orchestrator.RoleSource:
		return "the old server"
	case orchestrator.RoleTarget:
		return "the new server"
	}
	return ""
}

// pnrText says where the point of no return is.
func (d doc) pnrText() string {
	if d.pnr < 0 {
		return "none: no step of this plan is marked irreversible"
	}
	return d.stepRef(d.pnr) + ": " + d.Plan.Steps[d.pnr].Title + "; it cannot be undone (no rollback)"
}

// downtimeText says when the product is out of service.
func (d doc) downtimeText() string {
	if len(d.down) == 0 {
		return "none: no step of this plan stops " + d.product
	}
	var parts []string
	for _, st := range d.down {
		first, last := st[0], st[len(st)-1]
		text := "from " + d.stepRef(first) + " to " + d.stepRef(last)
		if first == last {
			text = "during " + d.stepRef(first)
		}
		if w := where(d.Plan.Steps[first].RunsOn); w != "" {
			text += " on " + w
		}
		parts = append(parts, text+", expected "+d.span(st))
	}
	return d.product + " is stopped " + strings.Join(parts, "; and ")
}

// status is the plan's state in one phrase.
func (d doc) status() string {
	switch {
	case len(d.Plan.Blockers) > 0:
		return fmt.Sprintf("BLOCKED: %d blocker(s); this plan cannot run until they are fixed and it is planned again", len(d.Plan.Blockers))
	case d.Plan.NothingToDo:
		return "nothing to do: the host is already at the target"
	case len(d.assumed()) > 0:
		return "WHAT-IF: facts assumed, not read from the host (" + strings.Join(d.assumed(), ", ") + ")"
	}
	return "ready to run"
}

func (d doc) assumed() []string {
	var out []string
	for _, k := range slices.Sorted(mapsKeys(d.Plan.Facts)) {
		if f := d.Plan.Facts[k]; f.Assumed {
			out = append(out, k+"="+f.Value)
		}
	}
	return out
}

func mapsKeys(f orchestrator.Facts) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range f {
			if !yield(k) {
				return
			}
		}
	}
}

// operatorAction is what the operator types or clicks for a step.
func (d doc) operatorAction(i int) []string {
	s := d.Plan.Steps[i]
	var out []string
	switch s.Kind {
	case orchestrator.KindGate:
		if s.Instructions != "" {
			out = append(out, s.Instructions)
		}
		cmd := "upgrader confirm " + s.ID
		for _, a := range s.Attest {
			cmd += " --attest " + a + "=…"
		}
		out = append(out, "`"+cmd+"`")
	case orchestrator.KindReboot:
		out = append(out, "nothing while the server restarts; upgrader goes on once it is back (the daemon by itself, else `upgrader resume`)")
	}
	if i == d.pnr {
		out = append(out, "the point of no return: answer yes at upgrader's prompt, or `upgrader confirm "+s.ID+"`")
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

// refText cites one vendor reference.
func refText(r orchestrator.Ref) string { return r.Cite(", ") }

// source says whose rule a step or finding is.
func source(src orchestrator.Source, refs []orchestrator.Ref, rationale string) string {
	if src == orchestrator.SourceUpgrader {
		return "upgrader's own: " + rationale
	}
	var cites []string
	for _, r := range refs {
		cites = append(cites, refText(r))
	}
	if len(cites) == 0 {
		return "vendor"
	}
	return "vendor: " + strings.Join(cites, "; ")
}

func itoa(n int) string { return strconv.Itoa(n) }
