package orchestrator

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// DiffPlans lists, for people, how plan b differs from plan a: one line per
// difference, inputs first, then facts, findings and the steps one by one.
//
//	catalog 2026.11-1 → 2026.12-1 (a different upgrader binary)
//	+ blocker media-missing
//	- step database-4.1.2
//	+ step supervisor (Install PC 4.1.2 Supervisor)
//	~ step dialer-4.1.2: downtime false → true
//	~ step dialer-4.1.2: params.target 4.1 → 4.1.2
//	~ step c: moved from step 3 to step 2
//
// Two plans with the same fingerprint have no differences; two with
// different fingerprints always have at least one line.
func DiffPlans(a, b Plan) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }

	if a.Procedure != b.Procedure {
		add("procedure %s → %s", a.Procedure, b.Procedure)
	}
	if a.Title != b.Title && a.Procedure == b.Procedure {
		add("title %q → %q", a.Title, b.Title)
	}
	if a.Inputs.Catalog != b.Inputs.Catalog {
		add("catalog %s → %s (a different upgrader binary)", a.Inputs.Catalog, b.Inputs.Catalog)
	}
	if a.Inputs.Profile != b.Inputs.Profile {
		add("the site profile changed (digest %s → %s)", short(a.Inputs.Profile), short(b.Inputs.Profile))
	}
	if a.Site != b.Site {
		add("site %s → %s", orNone(a.Site), orNone(b.Site))
	}
	if wa, wb := sortedCopy(a.Inputs.With), sortedCopy(b.Inputs.With); !slices.Equal(wa, wb) {
		add("--with %s → %s", listText(wa), listText(wb))
	}
	d = append(d, diffOverrides(a.Inputs.Overrides, b.Inputs.Overrides)...)
	d = append(d, diffFacts(a.Facts, b.Facts)...)
	if a.From != b.From {
		add("from %s → %s", orNone(a.From), orNone(b.From))
	}
	if a.To != b.To {
		add("to %s → %s", orNone(a.To), orNone(b.To))
	}
	if a.NothingToDo != b.NothingToDo {
		add("nothing to do %t → %t", a.NothingToDo, b.NothingToDo)
	}
	d = append(d, diffFindings("blocker", a.Blockers, b.Blockers)...)
	d = append(d, diffFindings("warning", a.Warnings, b.Warnings)...)
	d = append(d, diffFindings("note", a.Notes, b.Notes)...)
	d = append(d, diffSteps(a.Steps, b.Steps)...)
	if a.PointOfNoReturn != b.PointOfNoReturn {
		add("point of no return %s → %s", orNone(a.PointOfNoReturn), orNone(b.PointOfNoReturn))
	}
	if outageText(a.Outage) != outageText(b.Outage) {
		add("service outage %s → %s", outageText(a.Outage), outageText(b.Outage))
	}
	if len(d) == 0 && a.Fingerprint != b.Fingerprint {
		add("the plans differ in a way not listed here (fingerprint %s → %s)", ShortFingerprint(a.Fingerprint), ShortFingerprint(b.Fingerprint))
	}
	return d
}

func diffOverrides(a, b map[string]string) []string {
	var d []string
	for _, id := range unionKeys(a, b) {
		ra, inA := a[id]
		rb, inB := b[id]
		switch {
		case !inA:
			d = append(d, fmt.Sprintf("+ --override %s (%q)", id, rb))
		case !inB:
			d = append(d, fmt.Sprintf("- --override %s", id))
		case ra != rb:
			d = append(d, fmt.Sprintf("~ --override %s: reason %q → %q", id, ra, rb))
		}
	}
	return d
}

// diffFacts compares the facts as the fingerprint sees them: a volatile
// value (free space) that changed by itself is not a difference.
func diffFacts(a, b Facts) []string {
	var d []string
	text := func(f Fact) string {
		v := f.Value
		if v == "" {
			v = `""`
		}
		if f.Assumed {
			v += " (assumed)"
		}
		return v
	}
	for _, k := range unionKeys(a, b) {
		fa, inA := a[k]
		fb, inB := b[k]
		switch {
		case !inA:
			d = append(d, fmt.Sprintf("+ fact %s = %s", k, text(fb)))
		case !inB:
			d = append(d, fmt.Sprintf("- fact %s", k))
		case fa.Volatile && fb.Volatile:
			// Left out of the fingerprint: what the plan concluded from it
			// shows up as findings.
		case fa.Value != fb.Value || fa.Assumed != fb.Assumed:
			d = append(d, fmt.Sprintf("~ fact %s: %s → %s", k, text(fa), text(fb)))
		}
	}
	return d
}

// diffFindings compares findings by id; an id may occur more than once
// (two unknown --with values), so occurrences are counted.
func diffFindings(kind string, a, b []Finding) []string {
	var d []string
	byID := func(fs []Finding) map[string][]Finding {
		m := map[string][]Finding{}
		for _, f := range fs {
			m[f.ID] = append(m[f.ID], f)
		}
		return m
	}
	ca, cb := byID(a), byID(b)
	seen := map[string]bool{}
	for _, f := range a {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		fa, fb := ca[f.ID], cb[f.ID]
		for range len(fa) - len(fb) {
			d = append(d, fmt.Sprintf("- %s %s", kind, f.ID))
		}
		for i := range min(len(fa), len(fb)) {
			if fa[i].Message != fb[i].Message || fa[i].Skip != fb[i].Skip {
				d = append(d, fmt.Sprintf("~ %s %s: message changed", kind, f.ID))
				break
			}
		}
	}
	seen = map[string]bool{}
	for _, f := range b {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		for range len(cb[f.ID]) - len(ca[f.ID]) {
			d = append(d, fmt.Sprintf("+ %s %s", kind, f.ID))
		}
	}
	return d
}

// diffSteps lists removed steps, then walks plan b in order: added steps,
// steps whose order relative to the others changed (the fewest moves that
// explain the new order), and every changed field of a step in both.
func diffSteps(a, b []StepSpec) []string {
	var d []string
	ia, ib := indexByID(a), indexByID(b)
	for _, s := range a {
		if _, ok := ib[s.ID]; !ok {
			d = append(d, fmt.Sprintf("- step %s", s.ID))
		}
	}
	var ca, cb []string // the common ids, in each plan's order
	for _, s := range a {
		if _, ok := ib[s.ID]; ok {
			ca = append(ca, s.ID)
		}
	}
	for _, s := range b {
		if _, ok := ia[s.ID]; ok {
			cb = append(cb, s.ID)
		}
	}
	kept := lcs(ca, cb)
	for j, s := range b {
		i, ok := ia[s.ID]
		if !ok {
			d = append(d, fmt.Sprintf("+ step %s (%s)", s.ID, s.Title))
			continue
		}
		if !kept[s.ID] {
			d = append(d, fmt.Sprintf("~ step %s: moved from step %d to step %d", s.ID, i+1, j+1))
		}
		for _, c := range diffStep(a[i], s) {
			d = append(d, fmt.Sprintf("~ step %s: %s", s.ID, c))
		}
	}
	return d
}

// diffStep lists the changed fields of one step, in the order of StepSpec.
func diffStep(a, b StepSpec) []string {
	var d []string
	field := func(name, va, vb string) {
		if va != vb {
			d = append(d, fmt.Sprintf("%s %s → %s", name, va, vb))
		}
	}
	quoted := func(name, va, vb string) {
		if va != vb {
			d = append(d, fmt.Sprintf("%s %q → %q", name, va, vb))
		}
	}
	quoted("title", a.Title, b.Title)
	field("kind", string(a.Kind), string(b.Kind))
	field("action", a.Action, b.Action)
	field("skip", string(a.Skip), string(b.Skip))
	field("irreversible", fmt.Sprint(a.Irreversible), fmt.Sprint(b.Irreversible))
	field("downtime", fmt.Sprint(a.Downtime), fmt.Sprint(b.Downtime))
	quoted("reason", a.Reason, b.Reason)
	field("runs_on", runsOnText(a.RunsOn), runsOnText(b.RunsOn))
	field("refs", refsText(a.Refs), refsText(b.Refs))
	field("requires", listText(a.Requires), listText(b.Requires))
	field("produces", listText(a.Produces), listText(b.Produces))
	for _, k := range unionKeys(a.Params, b.Params) {
		va, inA := a.Params[k]
		vb, inB := b.Params[k]
		if !inA {
			va = "(none)"
		}
		if !inB {
			vb = "(none)"
		}
		field("params."+k, va, vb)
	}
	if a.Instructions != b.Instructions {
		d = append(d, "instructions changed")
	}
	for _, n := range a.Notes {
		if !slices.Contains(b.Notes, n) {
			d = append(d, fmt.Sprintf("- note %q", n))
		}
	}
	for _, n := range b.Notes {
		if !slices.Contains(a.Notes, n) {
			d = append(d, fmt.Sprintf("+ note %q", n))
		}
	}
	return d
}

func indexByID(steps []StepSpec) map[string]int {
	m := make(map[string]int, len(steps))
	for i, s := range steps {
		if _, dup := m[s.ID]; !dup {
			m[s.ID] = i
		}
	}
	return m
}

// lcs returns the ids of a longest common subsequence of a and b: the
// steps that kept their relative order.
func lcs(a, b []string) map[string]bool {
	n, m := len(a), len(b)
	t := make([][]int, n+1)
	for i := range t {
		t[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				t[i][j] = t[i+1][j+1] + 1
			} else {
				t[i][j] = max(t[i+1][j], t[i][j+1])
			}
		}
	}
	kept := map[string]bool{}
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case a[i] == b[j]:
			kept[a[i]] = true
			i, j = i+1, j+1
		case t[i+1][j] >= t[i][j+1]:
			i++
		default:
			j++
		}
	}
	return kept
}

func unionKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func listText(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func runsOnText(r string) string {
	if r == "" {
		return "(this host)"
	}
	return r
}

func refsText(refs []Ref) string {
	if len(refs) == 0 {
		return "(none)"
	}
	parts := make([]string, len(refs))
	for i, r := range refs {
		var p []string
		if r.MaterialID != "" {
			p = append(p, "material "+r.MaterialID)
		}
		if r.ReleaseNotes != "" {
			p = append(p, r.ReleaseNotes)
		}
		if r.Section != "" {
			p = append(p, fmt.Sprintf("%q", r.Section))
		}
		parts[i] = strings.Join(p, " · ")
	}
	return strings.Join(parts, "; ")
}

func outageText(o *Outage) string {
	if o == nil {
		return "(none)"
	}
	return o.From + ".." + o.To
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return orNone(digest)
}
