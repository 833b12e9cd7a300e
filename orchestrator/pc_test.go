package orchestrator_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

const (
	pcInstallProc = "pc-4.1.2-install"
	pcUpgradeProc = "pc-4.1.2-upgrade"
	pcMigrateProc = "pc-4.1.2-migrate"
)

// pcProfile decodes a simulated PC host's site profile
// (testdata/simhost/<name>/profile.yaml) the way upgrader reads it.
func pcProfile(tb testing.TB, name string) profile.Profile {
	tb.Helper()
	path := filepath.Join("..", "testdata", "simhost", name, "profile.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		tb.Fatal(err)
	}
	p, err := profile.Decode(data, base)
	if err != nil {
		tb.Fatalf("Decode %s: %v", path, err)
	}
	return p
}

// pcFacts builds facts from key, value pairs; every fact is read from a
// "test" source.
func pcFacts(kv ...string) orchestrator.Facts {
	if len(kv)%2 != 0 {
		panic("pcFacts needs key, value pairs")
	}
	f := orchestrator.Facts{orchestrator.FactHostName: {Value: "pc01", Source: "hostname"}}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = orchestrator.Fact{Value: kv[i+1], Source: "test"}
	}
	return f
}

// upgradeFacts are a PC server at the given dialer version.
func upgradeFacts(version string, kv ...string) orchestrator.Facts {
	return pcFacts(append([]string{orchestrator.FactHostModel, "System x3650 M2", orchestrator.FactPCVersion, version}, kv...)...)
}

// migrateFacts are an HP DL385 G5 running PC at the given dialer version.
func migrateFacts(version string, kv ...string) orchestrator.Facts {
	return pcFacts(append([]string{orchestrator.FactHostModel, "ProLiant DL385 G5", orchestrator.FactPCVersion, version}, kv...)...)
}

// bareFacts are a server without PC.
func bareFacts(kv ...string) orchestrator.Facts {
	return pcFacts(append([]string{orchestrator.FactHostModel, "System x3650 M2"}, kv...)...)
}

func with(c ...string) orchestrator.Options { return orchestrator.Options{With: c} }

// buildPC plans a PC procedure with the pc41 profile (dl385 for the migration).
func buildPC(tb testing.TB, proc string, facts orchestrator.Facts, opts orchestrator.Options) orchestrator.Plan {
	tb.Helper()
	name := "pc41"
	if proc == pcMigrateProc {
		name = "dl385"
	}
	return mustPlan(tb, orchestrator.PlanInput{Procedure: proc, Facts: facts, Profile: pcProfile(tb, name), Options: opts})
}

// runnable fails the test unless the plan has steps to run and no blockers.
func runnable(tb testing.TB, p orchestrator.Plan) {
	tb.Helper()
	if len(p.Blockers) != 0 || p.NothingToDo || len(p.Steps) == 0 {
		tb.Fatalf("%s from %s: blockers %v, nothing to do %v, steps %v; want a runnable plan",
			p.Procedure, p.From, findingIDs(p.Blockers), p.NothingToDo, stepIDs(p))
	}
}

func TestPCSimhostProfilesDecode(t *testing.T) {
	// The rule tests below plan with these profiles: they must decode.
	for _, name := range []string{"pc41", "dl385"} {
		if p := pcProfile(t, name); p.PC.Home != "/opt/avaya/pds" || len(p.PC.Installers) == 0 {
			t.Errorf("%s: decoded pc %+v", name, p.PC)
		}
	}
}

func TestRulePCUpgradeOnlyFrom41Or411(t *testing.T) {
	tests := []struct {
		name    string
		from    string // "" means the fact is absent
		want    string // "plan", "nothing", or the blocker id
		advice  string // the blocker message says what to do
		present bool   // the fact is present but empty
	}{
		{"4.1 plans", "4.1", "plan", "", false},
		{"4.1.0 is 4.1", "4.1.0", "plan", "", false},
		{"4.1.1 plans", "4.1.1", "plan", "", false},
		{"4.0 is too old", "4.0", "pc-upgrade-from-4.1-or-4.1.1-only", "upgrade to 4.1 or 4.1.1 first", false},
		{"3.0 is too old", "3.0", "pc-upgrade-from-4.1-or-4.1.1-only", "upgrade to 4.1 or 4.1.1 first", false},
		{"5.0 is not covered", "5.0", "pc-upgrade-from-4.1-or-4.1.1-only", "leave it", false},
		{"4.2 is not covered", "4.2", "pc-upgrade-from-4.1-or-4.1.1-only", "leave it", false},
		{"4.1.2 is the target", "4.1.2", "nothing", "", false},
		{"4.1.2.0 is the target", "4.1.2.0", "nothing", "", false},
		{"4.1.2.3 is a 4.1.2 build", "4.1.2.3", "nothing", "", false},
		{"unknown: no fact", "", "pc-version-unknown", "--assume pc.version", false},
		{"unknown: empty fact", "", "pc-version-unknown", "--assume pc.version", true},
		{"unknown: not a version", "four", "pc-version-unknown", "four", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := upgradeFacts(tt.from)
			if tt.from == "" && !tt.present {
				delete(f, orchestrator.FactPCVersion)
			}
			p := buildPC(t, pcUpgradeProc, f, orchestrator.Options{})
			if p.To != "4.1.2" {
				t.Errorf("to %q, want 4.1.2", p.To)
			}
			switch tt.want {
			case "plan":
				runnable(t, p)
				if _, i := mustStep(t, p, "dialer-4.1.2"); i != 0 {
					t.Errorf("dialer-4.1.2 is step %d, want the first", i)
				}
				if p.PointOfNoReturn != "dialer-4.1.2" {
					t.Errorf("point of no return %q, want dialer-4.1.2", p.PointOfNoReturn)
				}
			case "nothing":
				if !p.NothingToDo || len(p.Steps) != 0 || len(p.Blockers) != 0 {
					t.Fatalf("nothing to do %v, steps %v, blockers %v; want nothing to do", p.NothingToDo, stepIDs(p), findingIDs(p.Blockers))
				}
				if _, ok := findFinding(p.Notes, "pc-already-at-target"); !ok {
					t.Errorf("notes %v, want pc-already-at-target", findingIDs(p.Notes))
				}
			default:
				b, ok := findFinding(p.Blockers, tt.want)
				if !ok {
					t.Fatalf("blockers %v (nothing to do %v), want %s", findingIDs(p.Blockers), p.NothingToDo, tt.want)
				}
				if p.NothingToDo || len(p.Steps) != 0 {
					t.Errorf("a blocked plan: nothing to do %v, steps %v", p.NothingToDo, stepIDs(p))
				}
				if b.Severity != orchestrator.SeverityBlocker || b.Skip != orchestrator.SkipNever {
					t.Errorf("severity %s skip %s, want blocker/never", b.Severity, b.Skip)
				}
				if !strings.Contains(b.Message, tt.advice) {
					t.Errorf("message %q does not say %q", b.Message, tt.advice)
				}
				if tt.from != "" && !strings.Contains(b.Message, tt.from) {
					t.Errorf("message %q does not name the installed version %s", b.Message, tt.from)
				}
			}
		})
	}
}

func TestRuleDatabaseStepOnlyFrom41(t *testing.T) {
	tests := []struct {
		proc, from string
		want       bool
	}{
		{pcUpgradeProc, "4.1", true},
		{pcUpgradeProc, "4.1.1", false},
		{pcMigrateProc, "4.1", true},
		{pcMigrateProc, "4.1.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.proc+" from "+tt.from, func(t *testing.T) {
			facts := upgradeFacts(tt.from)
			if tt.proc == pcMigrateProc {
				facts = migrateFacts(tt.from)
			}
			p := buildPC(t, tt.proc, facts, orchestrator.Options{})
			runnable(t, p)
			_, up := mustStep(t, p, "dialer-4.1.2")
			db := p.StepIndex("database-4.1.2")
			note, noted := findFinding(p.Notes, "database-not-needed")
			if !tt.want {
				if db >= 0 {
					t.Fatalf("steps %v: database-4.1.2 is only for upgrades from 4.1", stepIDs(p))
				}
				// Left out, and the plan says why.
				if !noted || !strings.Contains(note.Message, "4.1.1") {
					t.Errorf("notes %v (%q), want database-not-needed naming 4.1.1", findingIDs(p.Notes), note.Message)
				}
				return
			}
			if db != up+1 {
				t.Fatalf("steps %v: database-4.1.2 must follow dialer-4.1.2", stepIDs(p))
			}
			if noted {
				t.Errorf("from 4.1 the database step is in, yet the plan notes database-not-needed")
			}
			s := p.Steps[db]
			if !strings.Contains(s.Reason, "4.1") || s.Params["product"] != "database" || s.Params["target"] != "4.1.2" {
				t.Errorf("database-4.1.2 reason %q params %v", s.Reason, s.Params)
			}
		})
	}
}

func TestRuleOptionalComponentsInOrOutWithReason(t *testing.T) {
	tests := []struct {
		name       string
		proc       string
		facts      orchestrator.Facts
		with       []string
		in         map[string]string // component → text its reason has
		unknownFor []string          // --with values that must be blocked
	}{
		{"installed today", pcUpgradeProc, upgradeFacts("4.1.1", orchestrator.FactComponents, "supervisor,agent"), nil,
			map[string]string{"supervisor": "installed today", "agent": "installed today"}, nil},
		{"installed today, listed out of order with spaces", pcUpgradeProc, upgradeFacts("4.1.1", orchestrator.FactComponents, "agent , supervisor"), nil,
			map[string]string{"supervisor": "installed today", "agent": "installed today"}, nil},
		{"requested with --with", pcUpgradeProc, upgradeFacts("4.1.1", orchestrator.FactComponents, "supervisor,agent"), []string{"agent-api"},
			map[string]string{"supervisor": "installed today", "agent": "installed today", "agent-api": "--with agent-api"}, nil},
		{"installed and requested: installed wins", pcUpgradeProc, upgradeFacts("4.1", orchestrator.FactComponents, "agent"), []string{"agent", "supervisor"},
			map[string]string{"supervisor": "--with supervisor", "agent": "installed today"}, nil},
		{"none", pcUpgradeProc, upgradeFacts("4.1"), nil, map[string]string{}, nil},
		{"unknown --with", pcUpgradeProc, upgradeFacts("4.1"), []string{"agent", "reports"},
			map[string]string{"agent": "--with agent"}, []string{"reports"}},
		{"fresh install", pcInstallProc, bareFacts(), []string{"agent-api", "supervisor"},
			map[string]string{"supervisor": "--with supervisor", "agent-api": "--with agent-api"}, nil},
		{"fresh install, unknown --with", pcInstallProc, bareFacts(), []string{"dialer"}, map[string]string{}, []string{"dialer"}},
		{"migration", pcMigrateProc, migrateFacts("4.1", orchestrator.FactComponents, "agent-api"), []string{"supervisor"},
			map[string]string{"supervisor": "--with supervisor", "agent-api": "installed today"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPC(t, tt.proc, tt.facts, with(tt.with...))
			var got []string
			for _, c := range orchestrator.PCComponents {
				s, i := p.Steps, p.StepIndex(c)
				note, noted := findFinding(p.Notes, "component-out-"+c)
				want, in := tt.in[c]
				if !in {
					if i >= 0 {
						t.Errorf("%s is in the plan (reason %q), want it out", c, s[i].Reason)
					}
					if !noted || note.Severity != orchestrator.SeverityNote || !strings.Contains(note.Message, "--with "+c) {
						t.Errorf("%s left out: note %v %q, want component-out-%s saying --with %s adds it", c, noted, note.Message, c, c)
					}
					continue
				}
				if i < 0 {
					t.Errorf("steps %v, want %s in (%s)", stepIDs(p), c, want)
					continue
				}
				got = append(got, c)
				if !strings.Contains(s[i].Reason, want) {
					t.Errorf("%s reason %q, want it to say %q", c, s[i].Reason, want)
				}
				if noted {
					t.Errorf("%s is in, yet noted as left out", c)
				}
			}
			// Order is the install order whatever order the facts and --with give.
			var order []string
			for _, id := range stepIDs(p) {
				if slices.Contains(orchestrator.PCComponents, id) {
					order = append(order, id)
				}
			}
			if !slices.Equal(order, got) {
				t.Errorf("components in the order %v, want %v (supervisor, agent, agent-api)", order, got)
			}
			// The components come last, after the product itself.
			if n := len(order); n > 0 && !slices.Equal(stepIDs(p)[len(p.Steps)-n:], order) {
				t.Errorf("steps %v: the components must come last", stepIDs(p))
			}
			var unknown []string
			for _, b := range p.Blockers {
				if b.ID == "unknown-component" {
					unknown = append(unknown, b.Message)
				}
			}
			if len(unknown) != len(tt.unknownFor) {
				t.Fatalf("unknown-component blockers %q, want one each for %v", unknown, tt.unknownFor)
			}
			for i, w := range tt.unknownFor {
				for _, s := range append([]string{"--with " + w}, orchestrator.PCComponents...) {
					if !strings.Contains(unknown[i], s) {
						t.Errorf("blocker %q does not say %q", unknown[i], s)
					}
				}
			}
			if len(tt.unknownFor) == 0 && len(p.Blockers) != 0 {
				t.Errorf("blockers %v, want none", findingIDs(p.Blockers))
			}
		})
	}
}

// pcMaterial is DOMAIN.md §1's table: step id → material ID and release notes.
var pcMaterial = map[string][2]string{
	"linux-es":       {"700479173", "PC 4.1.2 Linux ES Release Notes"},
	"dialer-4.1":     {"700464381", "PC 4.1 Dialer Release Notes"},
	"dialer-4.1.2":   {"700479025", "PC 4.1.2 Dialer Release Notes"},
	"database-4.1.2": {"700479058", "PC 4.1.2 Database Release Notes"},
	"supervisor":     {"700479066", "PC 4.1.2 Supervisor Release Notes"},
	"agent":          {"700479033", "PC 4.1.2 Agent Release Notes"},
	"agent-api":      {"700479041", "PC 4.1.2 Agent API Release Notes"},
}

// pcMaterialOf names which row of the table a step that is not in the
// table itself carries.
var pcMaterialOf = map[string]string{
	"backup-source":  "dialer-4.1.2", // printed beside the step in the document
	"restore-backup": "dialer-4.1.2",
}

func TestRuleMaterialIDsOnEveryStep(t *testing.T) {
	all := with(orchestrator.PCComponents...)
	plans := map[string]orchestrator.Plan{
		"install":          buildPC(t, pcInstallProc, bareFacts(), all),
		"upgrade from 4.1": buildPC(t, pcUpgradeProc, upgradeFacts("4.1"), all),
		"migration":        buildPC(t, pcMigrateProc, migrateFacts("4.1"), all),
	}
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(plans)) {
		p := plans[name]
		runnable(t, p)
		for _, s := range p.Steps {
			if s.ID == "linux-es-reboot" {
				// The document says nothing of reboots: upgrader's own
				// step, which prints no material as if it were the vendor's.
				if s.Source != orchestrator.SourceUpgrader || len(s.Refs) != 0 {
					t.Errorf("%s: linux-es-reboot source %q refs %+v, want upgrader's own and no material", name, s.Source, s.Refs)
				}
				continue
			}
			row := s.ID
			if r, ok := pcMaterialOf[s.ID]; ok {
				row = r
			}
			want, ok := pcMaterial[row]
			if !ok {
				t.Errorf("%s: step %s has no row in the material table", name, s.ID)
				continue
			}
			seen[row] = true
			if len(s.Refs) != 1 || s.Refs[0].MaterialID != want[0] || s.Refs[0].ReleaseNotes != want[1] {
				t.Errorf("%s: step %s refs %+v, want material %s and %s", name, s.ID, s.Refs, want[0], want[1])
			}
		}
	}
	if len(seen) != len(pcMaterial) {
		t.Errorf("plans cover %v of the table's rows, want all %d", slices.Sorted(maps.Keys(seen)), len(pcMaterial))
	}

	// Material IDs are recorded in the journal too, with the step that
	// used them.
	h := newHarness(t)
	p := plans["upgrade from 4.1"]
	h.create(t, p)
	if out := h.exec(t, orchestrator.ExecOptions{Actor: "tester"}); out.State != orchestrator.StateCompleted {
		t.Fatalf("outcome %+v, want completed", out)
	}
	started := map[string]string{}
	for _, j := range h.journal(t) {
		if j.Event == "step.start" {
			started[j.Step] = j.Fields["material_id"]
		}
	}
	for _, s := range p.Steps {
		if got := started[s.ID]; got != pcMaterial[s.ID][0] {
			t.Errorf("journal step.start %s material_id %q, want %s", s.ID, got, pcMaterial[s.ID][0])
		}
	}
}

func TestRuleFreshInstallSequence(t *testing.T) {
	tests := []struct {
		name  string
		with  []string
		facts orchestrator.Facts
		tail  []string
	}{
		{"no components", nil, bareFacts(), nil},
		{"all components", []string{"agent-api", "agent", "supervisor"}, bareFacts(), []string{"supervisor", "agent", "agent-api"}},
		{"agent only", []string{"agent"}, bareFacts(), []string{"agent"}},
		{"empty pc.version fact is no PC", []string{"supervisor"}, bareFacts(orchestrator.FactPCVersion, ""), []string{"supervisor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPC(t, pcInstallProc, tt.facts, with(tt.with...))
			runnable(t, p)
			want := append([]string{"linux-es", "linux-es-reboot", "dialer-4.1", "dialer-4.1.2", "database-4.1.2"}, tt.tail...)
			if got := stepIDs(p); !slices.Equal(got, want) {
				t.Fatalf("steps\n got %v\nwant %v", got, want)
			}
			if p.From != "none" || p.To != "4.1.2" {
				t.Errorf("from %q to %q, want none → 4.1.2", p.From, p.To)
			}
			// Installing Linux ES erases the disks: the first step is the way of no return.
			if p.PointOfNoReturn != "linux-es" {
				t.Errorf("point of no return %q, want linux-es", p.PointOfNoReturn)
			}
			for _, s := range p.Steps[2:] {
				if s.Kind != orchestrator.KindAuto || s.Action != "vendor-install" || s.Skip != orchestrator.SkipNever || s.RunsOn != "" {
					t.Errorf("step %s kind %s action %s skip %s runs on %q, want an auto vendor-install, never skipped, on this host",
						s.ID, s.Kind, s.Action, s.Skip, s.RunsOn)
				}
			}
			if d412 := p.Steps[3]; d412.Params["product"] != "dialer" || d412.Params["target"] != "4.1.2" {
				t.Errorf("dialer-4.1.2 params %v", d412.Params)
			}
			if d41 := p.Steps[2]; d41.Params["product"] != "dialer" || d41.Params["target"] != "4.1" {
				t.Errorf("dialer-4.1 params %v", d41.Params)
			}
		})
	}

	t.Run("PC already installed", func(t *testing.T) {
		for _, v := range []string{"4.1", "4.1.2", "3.0"} {
			p := buildPC(t, pcInstallProc, upgradeFacts(v), with("agent"))
			b, ok := findFinding(p.Blockers, "pc-already-installed")
			if !ok {
				t.Fatalf("PC %s installed: blockers %v, want pc-already-installed", v, findingIDs(p.Blockers))
			}
			if len(p.Steps) != 0 || b.Skip != orchestrator.SkipNever {
				t.Errorf("PC %s installed: steps %v, skip %s; want none and never", v, stepIDs(p), b.Skip)
			}
			for _, s := range []string{v, pcUpgradeProc, pcMigrateProc} {
				if !strings.Contains(b.Message, s) {
					t.Errorf("message %q does not say %q", b.Message, s)
				}
			}
		}
	})
}

func TestRuleManualStepsAreGatesRebootsAreSteps(t *testing.T) {
	for name, p := range map[string]orchestrator.Plan{
		"install":   buildPC(t, pcInstallProc, bareFacts(), orchestrator.Options{}),
		"migration": buildPC(t, pcMigrateProc, migrateFacts("4.1"), orchestrator.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			runnable(t, p)
			es, i := mustStep(t, p, "linux-es")
			if es.Kind != orchestrator.KindGate || es.Action != "gate" || es.Skip != orchestrator.SkipNever {
				t.Errorf("linux-es kind %s action %s skip %s, want a gate that cannot be skipped", es.Kind, es.Action, es.Skip)
			}
			for _, s := range []string{"Linux ES Bootable media", "700479173", "PC 4.1.2 Linux ES Release Notes"} {
				if !strings.Contains(es.Instructions, s) {
					t.Errorf("linux-es instructions %q do not name %q", es.Instructions, s)
				}
			}
			rb, j := mustStep(t, p, "linux-es-reboot")
			if j != i+1 {
				t.Errorf("linux-es-reboot is step %d, linux-es step %d: the reboot must follow the install", j, i)
			}
			if rb.Kind != orchestrator.KindReboot || rb.Action != "reboot" || rb.Instructions != "" || rb.Skip != orchestrator.SkipNever {
				t.Errorf("linux-es-reboot kind %s action %s skip %s instructions %q, want an engine reboot step",
					rb.Kind, rb.Action, rb.Skip, rb.Instructions)
			}
			if rb.RunsOn != es.RunsOn {
				t.Errorf("the reboot runs on %q, the install on %q", rb.RunsOn, es.RunsOn)
			}
			// No other step waits for an operator.
			for _, s := range p.Steps {
				if s.ID != "linux-es" && s.Kind == orchestrator.KindGate {
					t.Errorf("step %s is a gate", s.ID)
				}
			}
		})
	}
}

func TestRuleMigrationOnlyFromDL385ToX3650(t *testing.T) {
	tests := []struct {
		model string
		ok    bool
	}{
		{"ProLiant DL385 G2", true},
		{"ProLiant DL385 G5", true},
		{"HP ProLiant DL385 G5", true},
		{"System x3650 M2", false},
		{"PowerEdge R640", false},
		{"ProLiant DL385 G7", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run("model "+tt.model, func(t *testing.T) {
			p := buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactHostModel, tt.model), orchestrator.Options{})
			b, blocked := findFinding(p.Blockers, "migrate-source-model")
			if blocked == tt.ok {
				t.Fatalf("model %q: migrate-source-model present=%v, want %v", tt.model, blocked, !tt.ok)
			}
			if tt.ok {
				runnable(t, p)
				return
			}
			if b.Skip != orchestrator.SkipWithReason || b.Severity != orchestrator.SeverityBlocker {
				t.Errorf("skip %s severity %s, want a with-reason blocker", b.Skip, b.Severity)
			}
			for _, s := range []string{strconv.Quote(tt.model), "DL385 G2", "DL385 G5", "--override migrate-source-model"} {
				if !strings.Contains(b.Message, s) {
					t.Errorf("message %q does not say %s", b.Message, s)
				}
			}
		})
	}

	t.Run("override", func(t *testing.T) {
		facts := migrateFacts("4.1", orchestrator.FactHostModel, "System x3650 M2")
		override := func(reason string) orchestrator.Plan {
			return buildPC(t, pcMigrateProc, facts, orchestrator.Options{Overrides: map[string]string{"migrate-source-model": reason}})
		}
		p := override("source disk moved into the new chassis")
		runnable(t, p)
		w, ok := findFinding(p.Warnings, "migrate-source-model")
		if !ok || w.Severity != orchestrator.SeverityWarning || !strings.Contains(w.Message, "OVERRIDDEN: source disk moved into the new chassis") {
			t.Errorf("warnings %v (%+v), want migrate-source-model as an OVERRIDDEN warning with the reason", findingIDs(p.Warnings), w)
		}
		if got := p.Inputs.Overrides; !maps.Equal(got, map[string]string{"migrate-source-model": "source disk moved into the new chassis"}) {
			t.Errorf("inputs overrides %v", got)
		}
		if p.Fingerprint != orchestrator.Fingerprint(p) {
			t.Error("fingerprint is not the plan's hash")
		}
		if other := override("another reason"); other.Fingerprint == p.Fingerprint {
			t.Error("a different override reason gives the same fingerprint")
		}
		if plain := buildPC(t, pcMigrateProc, facts, orchestrator.Options{}); plain.Fingerprint == p.Fingerprint {
			t.Error("the overridden plan has the fingerprint of the blocked one")
		}
	})

	t.Run("override of a safety rule is refused", func(t *testing.T) {
		p := buildPC(t, pcMigrateProc, migrateFacts("4.0"), orchestrator.Options{
			Overrides: map[string]string{"pc-migration-from-4.1-or-4.1.1-only": "we know better"}})
		if _, ok := findFinding(p.Blockers, "pc-migration-from-4.1-or-4.1.1-only"); !ok {
			t.Errorf("blockers %v: the SkipNever blocker must stay", findingIDs(p.Blockers))
		}
		b, ok := findFinding(p.Blockers, "override-refused")
		if !ok || !strings.Contains(b.Message, "pc-migration-from-4.1-or-4.1.1-only") {
			t.Errorf("blockers %v (%q), want override-refused naming the rule", findingIDs(p.Blockers), b.Message)
		}
		if _, ok := findFinding(p.Warnings, "pc-migration-from-4.1-or-4.1.1-only"); ok {
			t.Error("the refused override turned the blocker into a warning")
		}
	})

	t.Run("override of no blocker is unused", func(t *testing.T) {
		p := buildPC(t, pcMigrateProc, migrateFacts("4.1"), orchestrator.Options{
			Overrides: map[string]string{"migrate-source-model": "just in case", "no-such-finding": "x"}})
		var unused []string
		for _, b := range p.Blockers {
			if b.ID != "override-unused" {
				t.Errorf("unexpected blocker %s", b.ID)
				continue
			}
			unused = append(unused, b.Message)
		}
		if len(unused) != 2 || !strings.Contains(unused[0], "migrate-source-model") || !strings.Contains(unused[1], "no-such-finding") {
			t.Errorf("override-unused blockers %q, want one per override, sorted by id", unused)
		}
	})

	t.Run("roles", func(t *testing.T) {
		for _, tt := range []struct {
			model          string
			role           string
			source, target bool
		}{
			{"ProLiant DL385 G2", orchestrator.RoleSource, true, false},
			{"ProLiant DL385 G5", orchestrator.RoleSource, true, false},
			{"HP ProLiant DL385 G5 ", orchestrator.RoleSource, true, false},
			{"System x3650 M2", orchestrator.RoleTarget, false, true},
			{"IBM System x3650 M2 -[7947AC1]-", orchestrator.RoleTarget, false, true},
			{"System x3650 M3", "", false, false},
			{"ProLiant DL385 G7", "", false, false},
			{"PowerEdge R640", "", false, false},
			{"", "", false, false},
		} {
			if got := orchestrator.RoleOf(tt.model); got != tt.role {
				t.Errorf("RoleOf(%q) = %q, want %q", tt.model, got, tt.role)
			}
			if got := orchestrator.IsMigrationSource(tt.model); got != tt.source {
				t.Errorf("IsMigrationSource(%q) = %v", tt.model, got)
			}
			if got := orchestrator.IsMigrationTarget(tt.model); got != tt.target {
				t.Errorf("IsMigrationTarget(%q) = %v", tt.model, got)
			}
		}
	})
}

func TestRuleMigrationSplitAcrossTwoHosts(t *testing.T) {
	p := buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactComponents, "supervisor,agent,agent-api"), orchestrator.Options{})
	runnable(t, p)
	want := []string{"backup-source", "linux-es", "linux-es-reboot", "restore-backup", "dialer-4.1.2", "database-4.1.2",
		"supervisor", "agent", "agent-api"}
	if got := stepIDs(p); !slices.Equal(got, want) {
		t.Fatalf("steps\n got %v\nwant %v", got, want)
	}
	backup := p.Steps[0]
	if backup.RunsOn != orchestrator.RoleSource || !slices.Equal(backup.Produces, []string{"pc-backup"}) {
		t.Errorf("backup-source runs on %q produces %v, want source and pc-backup", backup.RunsOn, backup.Produces)
	}
	for _, s := range p.Steps[1:] {
		if s.RunsOn != orchestrator.RoleTarget {
			t.Errorf("step %s runs on %q, want target", s.ID, s.RunsOn)
		}
	}
	restore, _ := mustStep(t, p, "restore-backup")
	if !slices.Equal(restore.Requires, []string{"pc-backup"}) {
		t.Errorf("restore-backup requires %v, want pc-backup", restore.Requires)
	}
	// Nothing the source server does is irreversible or an outage: the old
	// server is left as it was.
	if backup.Irreversible || backup.Downtime {
		t.Errorf("backup-source irreversible %v downtime %v", backup.Irreversible, backup.Downtime)
	}
	n, ok := findFinding(p.Notes, "migration-two-servers")
	if !ok {
		t.Fatalf("notes %v, want migration-two-servers", findingIDs(p.Notes))
	}
	for _, s := range []string{"export", "import", "x3650 M2"} {
		if !strings.Contains(n.Message, s) {
			t.Errorf("note %q does not say %q", n.Message, s)
		}
	}
}

func TestRuleMigrationFollowsDocumentLiterally(t *testing.T) {
	for _, from := range []string{"4.1", "4.1.1"} {
		t.Run("from "+from, func(t *testing.T) {
			p := buildPC(t, pcMigrateProc, migrateFacts(from), orchestrator.Options{})
			runnable(t, p)
			if i := p.StepIndex("dialer-4.1"); i >= 0 {
				t.Errorf("steps %v: the document lists no Install PC 4.1 Dialer in the migration", stepIDs(p))
			}
			up, _ := mustStep(t, p, "dialer-4.1.2")
			if !slices.ContainsFunc(up.Notes, func(n string) bool {
				return strings.Contains(n, `no "Install PC 4.1 Dialer"`) && strings.Contains(n, "literally")
			}) {
				t.Errorf("dialer-4.1.2 notes %q, want one saying the document lists no Install PC 4.1 Dialer", up.Notes)
			}
			backup, _ := mustStep(t, p, "backup-source")
			if len(backup.Refs) == 0 || backup.Refs[0].MaterialID != "700479025" {
				t.Errorf("backup-source refs %+v, want material 700479025 as printed", backup.Refs)
			}
			if !slices.ContainsFunc(backup.Notes, func(n string) bool { return strings.Contains(n, "700479025") }) {
				t.Errorf("backup-source notes %q, want one about the material ID printed beside it", backup.Notes)
			}
		})
	}
}

// volatile marks a fact as one that changes by itself, as fact gathering does.
func volatile(f orchestrator.Facts, key, value string) orchestrator.Facts {
	f = maps.Clone(f)
	f[key] = orchestrator.Fact{Value: value, Source: "df " + value, Volatile: true}
	return f
}

func TestRuleFreeSpaceBlockers(t *testing.T) {
	const gib = int64(1) << 30
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	isoNeed := 2 * int64(288784384)
	tests := []struct {
		name       string
		plan       func(t *testing.T) orchestrator.Plan
		id         string
		free, need int64 // need 0: no blocker
		note       string
	}{
		{"PC upgrade, enough to install", func(t *testing.T) orchestrator.Plan {
			return buildPC(t, pcUpgradeProc, upgradeFacts("4.1", orchestrator.FactFreeInstall, n(2*gib)), orchestrator.Options{})
		}, "install-space", 2 * gib, 0, ""},
		{"PC upgrade, short of 2 GiB", func(t *testing.T) orchestrator.Plan {
			return buildPC(t, pcUpgradeProc, upgradeFacts("4.1", orchestrator.FactFreeInstall, n(2*gib-1)), orchestrator.Options{})
		}, "install-space", 2*gib - 1, 2 * gib, ""},
		{"PC install, short", func(t *testing.T) orchestrator.Plan {
			return buildPC(t, pcInstallProc, bareFacts(orchestrator.FactFreeInstall, n(500<<20)), orchestrator.Options{})
		}, "install-space", 500 << 20, 2 * gib, ""},
		{"PC migration, backup fits", func(t *testing.T) orchestrator.Plan {
			return buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactPCDataSize, n(10*gib), orchestrator.FactFreeBackup, n(11*gib)), orchestrator.Options{})
		}, "backup-space", 11 * gib, 0, ""},
		{"PC migration, backup does not fit", func(t *testing.T) orchestrator.Plan {
			return buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactPCDataSize, n(10*gib), orchestrator.FactFreeBackup, n(10*gib)), orchestrator.Options{})
		}, "backup-space", 10 * gib, 11 * gib, ""},
		{"POM upgrade, ISO fits twice", func(t *testing.T) orchestrator.Plan {
			return buildPOMPlan(t, setFact(orchestrator.FactFreeInstall, n(isoNeed)))
		}, "install-space", isoNeed, 0, "db-size-unknown"},
		{"POM upgrade, ISO does not fit twice", func(t *testing.T) orchestrator.Plan {
			return buildPOMPlan(t, setFact(orchestrator.FactFreeInstall, n(isoNeed-1)))
		}, "install-space", isoNeed - 1, isoNeed, "db-size-unknown"},
		{"POM install, ISO does not fit twice", func(t *testing.T) orchestrator.Plan {
			return buildPOMInstall(t, with(), setFact(orchestrator.FactFreeInstall, n(gib/4)))
		}, "install-space", gib / 4, isoNeed, ""},
		{"POM upgrade, DB backup fits", func(t *testing.T) orchestrator.Plan {
			return buildPOMPlan(t, setFact(orchestrator.FactDBSize, n(gib)), setFact(orchestrator.FactFreeBackup, n(2*gib)))
		}, "backup-space", 2 * gib, 0, ""},
		{"POM upgrade, DB backup does not fit", func(t *testing.T) orchestrator.Plan {
			return buildPOMPlan(t, setFact(orchestrator.FactDBSize, n(10*gib)), setFact(orchestrator.FactFreeBackup, n(gib)))
		}, "backup-space", gib, 11 * gib, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.plan(t)
			b, ok := findFinding(p.Blockers, tt.id)
			if ok != (tt.need > 0) {
				t.Fatalf("blockers %v, want %s present=%v", findingIDs(p.Blockers), tt.id, tt.need > 0)
			}
			if ok {
				// Both numbers, so the engineer knows how much to free.
				for _, v := range []int64{tt.free, tt.need} {
					if !strings.Contains(b.Message, "("+n(v)+" bytes)") {
						t.Errorf("message %q does not give %d bytes", b.Message, v)
					}
				}
				if b.Skip != orchestrator.SkipNever {
					t.Errorf("skip %s, want never", b.Skip)
				}
			}
			if tt.note != "" {
				if _, ok := findFinding(p.Notes, tt.note); !ok {
					t.Errorf("notes %v, want %s", findingIDs(p.Notes), tt.note)
				}
			}
			if _, ok := findFinding(p.Notes, "db-size-unknown"); ok && tt.note == "" && p.Procedure == pomProc {
				t.Errorf("db.size is known, yet the plan notes db-size-unknown")
			}
		})
	}

	t.Run("unknown free space checks nothing", func(t *testing.T) {
		for _, p := range []orchestrator.Plan{
			buildPC(t, pcUpgradeProc, upgradeFacts("4.1"), orchestrator.Options{}),
			buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactPCDataSize, n(10*gib)), orchestrator.Options{}),
			buildPOMPlan(t, setFact(orchestrator.FactDBSize, n(10*gib))),
		} {
			for _, id := range []string{"install-space", "backup-space"} {
				if _, ok := findFinding(p.Blockers, id); ok {
					t.Errorf("%s: %s without a free-space fact", p.Procedure, id)
				}
			}
		}
	})
}

func TestVolatileFactsDoNotChangeTheFingerprint(t *testing.T) {
	const gib = 1 << 30
	base := upgradeFacts("4.1")
	plan := func(f orchestrator.Facts) orchestrator.Plan {
		return buildPC(t, pcUpgradeProc, f, orchestrator.Options{})
	}
	a := plan(volatile(base, orchestrator.FactFreeInstall, strconv.Itoa(10*gib)))
	b := plan(volatile(base, orchestrator.FactFreeInstall, strconv.Itoa(20*gib)))
	if a.Fingerprint != b.Fingerprint {
		t.Error("plans differing only in a volatile fact's value have different fingerprints")
	}
	if a.Facts[orchestrator.FactFreeInstall].Value == b.Facts[orchestrator.FactFreeInstall].Value {
		t.Error("the plans do not keep the measured values")
	}

	// A volatile value that changes what the plan concludes changes it.
	short := plan(volatile(base, orchestrator.FactFreeInstall, strconv.Itoa(gib)))
	if _, ok := findFinding(short.Blockers, "install-space"); !ok {
		t.Fatalf("blockers %v, want install-space", findingIDs(short.Blockers))
	}
	if short.Fingerprint == a.Fingerprint {
		t.Error("a volatile fact that adds a blocker leaves the fingerprint unchanged")
	}

	// The same fact not marked volatile is part of the fingerprint.
	c := plan(pcFactsWith(base, orchestrator.FactFreeInstall, strconv.Itoa(10*gib)))
	d := plan(pcFactsWith(base, orchestrator.FactFreeInstall, strconv.Itoa(20*gib)))
	if c.Fingerprint == d.Fingerprint {
		t.Error("a fact that is not volatile does not change the fingerprint")
	}

	// Migration: the backup's size and free space are volatile too.
	m := func(size, free int) orchestrator.Plan {
		f := volatile(migrateFacts("4.1"), orchestrator.FactPCDataSize, strconv.Itoa(size))
		return buildPC(t, pcMigrateProc, volatile(f, orchestrator.FactFreeBackup, strconv.Itoa(free)), orchestrator.Options{})
	}
	if m(gib, 5*gib).Fingerprint != m(2*gib, 6*gib).Fingerprint {
		t.Error("migration plans differing only in volatile sizes have different fingerprints")
	}
	if m(gib, 5*gib).Fingerprint == m(5*gib, 5*gib).Fingerprint {
		t.Error("a backup that no longer fits leaves the fingerprint unchanged")
	}
}

func pcFactsWith(f orchestrator.Facts, key, value string) orchestrator.Facts {
	f = maps.Clone(f)
	f[key] = orchestrator.Fact{Value: value, Source: "test"}
	return f
}
