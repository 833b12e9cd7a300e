package orchestrator_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// diffFacts builds facts from key, value pairs.
func diffFacts(kv ...string) orchestrator.Facts {
	f := orchestrator.Facts{}
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = orchestrator.Fact{Value: kv[i+1], Source: "test"}
	}
	return f
}

var diffPCProfile = profile.Profile{Site: "pc-site", Root: "/", PC: profile.PC{Services: []string{"pds"}}}

var diffPOMProfile = profile.Profile{
	Site: "pom-site", Root: "/",
	POM:  profile.POM{Services: []string{"vpms"}},
	MPPs: []profile.MPP{{Name: "mpp1", Host: "localhost", Config: "/opt/mpp1/mppconfig.xml"}},
	Media: profile.Media{Dir: "/media", ISO: "POM.03.01.01.01.00.003-r35434-x86_64.iso",
		SHA256: "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193"},
	DB: profile.DB{Name: "pom", BackupDir: "/var/backups/upgrader"},
}

func pomFacts(version string) orchestrator.Facts {
	return diffFacts("pom.version", version, "ep.version", "7.2.0.0.0318", "ep.mpp_patch", "7.2.0.0.1202",
		"media.iso.size", "288784384", "media.iso.signed", "true")
}

func diffBuild(t *testing.T, proc string, prof profile.Profile, facts orchestrator.Facts, opts orchestrator.Options) orchestrator.Plan {
	t.Helper()
	p, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: proc, Facts: facts, Profile: prof, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// handPlan is a plan of the given steps, fingerprinted.
func handPlan(steps ...orchestrator.StepSpec) orchestrator.Plan {
	p := orchestrator.Plan{Procedure: "test", Title: "test", From: "1", To: "2", Steps: steps,
		Blockers: []orchestrator.Finding{}, Warnings: []orchestrator.Finding{}, Notes: []orchestrator.Finding{},
		Facts: orchestrator.Facts{}, Inputs: orchestrator.Inputs{Catalog: orchestrator.CatalogVersion, Profile: "p"}}
	p.Fingerprint = orchestrator.Fingerprint(p)
	return p
}

func handStep(id string, change ...func(*orchestrator.StepSpec)) orchestrator.StepSpec {
	s := orchestrator.StepSpec{ID: id, Title: "Step " + id, Kind: orchestrator.KindAuto, Action: "noop",
		Skip: orchestrator.SkipNever, Reason: "because", Params: map[string]string{"target": "4.1"}}
	for _, c := range change {
		c(&s)
	}
	return s
}

// refingerprint applies a change to a copy of p and fingerprints it again.
func refingerprint(p orchestrator.Plan, change func(*orchestrator.Plan)) orchestrator.Plan {
	p.Steps = slices.Clone(p.Steps)
	p.Facts = maps.Clone(p.Facts)
	change(&p)
	p.Fingerprint = orchestrator.Fingerprint(p)
	return p
}

func TestDiffPlans(t *testing.T) {
	pc41 := diffBuild(t, "pc-4.1.2-upgrade", diffPCProfile, diffFacts("pc.version", "4.1", "components", "supervisor"), orchestrator.Options{})
	base := handPlan(handStep("a"), handStep("b"), handStep("c"))
	tests := []struct {
		name string
		a, b orchestrator.Plan
		want []string
	}{
		{"the same plan has no differences", pc41, pc41, nil},
		{"upgrading from 4.1.1 instead of 4.1, with --with agent",
			pc41,
			diffBuild(t, "pc-4.1.2-upgrade", diffPCProfile, diffFacts("pc.version", "4.1.1", "components", "supervisor"),
				orchestrator.Options{With: []string{"agent"}}),
			[]string{
				"--with (none) → agent",
				"~ fact pc.version: 4.1 → 4.1.1",
				"from 4.1 → 4.1.1",
				"- note component-out-agent",
				"+ note database-not-needed",
				"- step database-4.1.2",
				`~ step dialer-4.1.2: reason "the upgrade itself, from 4.1" → "the upgrade itself, from 4.1.1"`,
				"+ step agent (Install PC 4.1.2 Agent)",
				"service outage dialer-4.1.2..supervisor → dialer-4.1.2..agent",
			}},
		{"a blocker appears and the steps go",
			diffBuild(t, "pom-3.1.1-sp1-upgrade", diffPOMProfile, pomFacts("3.1.1"), orchestrator.Options{}),
			diffBuild(t, "pom-3.1.1-sp1-upgrade", diffPOMProfile, pomFacts("3.1.0"), orchestrator.Options{}),
			[]string{
				"~ fact pom.version: 3.1.1 → 3.1.0",
				"from 3.1.1 → 3.1.0",
				"+ blocker pom-upgrade-from-3.1.1-only",
				"- warning EXPPORTAL-1960",
				"- warning EXPPORTAL-1701",
				"- warning OUTREACH-11880",
				"- warning callback-expiring-label",
				"- note mpp-patch-from-profile",
				"- note mpp-where",
				"- note mpp-restart-unstated",
				"- note iso-name-typo",
				"- note db-size-unknown",
				"- step verify-media",
				"- step backup-db",
				"- step mpp-config-mpp1",
				"- step stop-services",
				"- step upgrade-pom",
				"- step start-services",
				"- step enable-dnc-import",
				"point of no return upgrade-pom → (none)",
				"service outage stop-services..start-services → (none)",
			}},
		{"a changed profile, catalog and override",
			handPlan(handStep("a")),
			refingerprint(handPlan(handStep("a")), func(p *orchestrator.Plan) {
				p.Site = "site-2"
				p.Inputs.Catalog = "2099.01-1"
				p.Inputs.Profile = "q"
				p.Inputs.Overrides = map[string]string{"migrate-source-model": "rebadged DL385"}
			}),
			[]string{
				"catalog " + orchestrator.CatalogVersion + " → 2099.01-1 (a different upgrader binary)",
				"the site profile changed (digest p → q)",
				"site (none) → site-2",
				`+ --override migrate-source-model ("rebadged DL385")`,
			}},
		{"an override's reason changes, another goes",
			refingerprint(handPlan(handStep("a")), func(p *orchestrator.Plan) {
				p.Inputs.Overrides = map[string]string{"x": "one", "y": "gone"}
			}),
			refingerprint(handPlan(handStep("a")), func(p *orchestrator.Plan) {
				p.Inputs.Overrides = map[string]string{"x": "two"}
			}),
			[]string{`~ --override x: reason "one" → "two"`, "- --override y"}},
		{"every field of a step in both plans",
			base,
			handPlan(handStep("a", func(s *orchestrator.StepSpec) {
				s.Title = "Step A"
				s.Kind = orchestrator.KindGate
				s.Skip = orchestrator.SkipWithReason
				s.Irreversible = true
				s.Downtime = true
				s.RunsOn = orchestrator.RoleTarget
				s.Requires = []string{"media"}
				s.Produces = []string{"db-backup"}
				s.Params = map[string]string{"target": "4.1.2", "iso": "/media/x.iso"}
				s.Refs = []orchestrator.Ref{{MaterialID: "700479025", ReleaseNotes: "PC 4.1.2 Dialer Release Notes"}}
				s.Instructions = "do it"
				s.Notes = []string{"careful"}
			}), handStep("b"), handStep("c")),
			[]string{
				`~ step a: title "Step a" → "Step A"`,
				"~ step a: kind auto → gate",
				"~ step a: skip never → with-reason",
				"~ step a: irreversible false → true",
				"~ step a: downtime false → true",
				"~ step a: runs_on (this host) → target",
				"~ step a: refs (none) → material 700479025 · PC 4.1.2 Dialer Release Notes",
				"~ step a: requires (none) → media",
				"~ step a: produces (none) → db-backup",
				"~ step a: params.iso (none) → /media/x.iso",
				"~ step a: params.target 4.1 → 4.1.2",
				"~ step a: instructions changed",
				`~ step a: + note "careful"`,
			}},
		{"a step moves",
			base, handPlan(handStep("a"), handStep("c"), handStep("b")),
			[]string{"~ step b: moved from step 2 to step 3"}},
		{"a step added in front moves nothing",
			base, handPlan(handStep("x"), handStep("a"), handStep("b"), handStep("c")),
			[]string{"+ step x (Step x)"}},
		{"a step removed, another added and changed",
			base, handPlan(handStep("a"), handStep("c", func(s *orchestrator.StepSpec) { s.Action = "other" }), handStep("d")),
			[]string{"- step b", "~ step c: action noop → other", "+ step d (Step d)"}},
		{"findings by id, counted",
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Blockers = []orchestrator.Finding{{ID: "unknown-component", Message: "--with x"}, {ID: "media-missing", Message: "m"}}
				p.Warnings = []orchestrator.Finding{{ID: "OUTREACH-11880", Message: "w"}}
			}),
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Blockers = []orchestrator.Finding{{ID: "unknown-component", Message: "--with x"}, {ID: "unknown-component", Message: "--with y"}}
				p.Warnings = []orchestrator.Finding{{ID: "OUTREACH-11880", Message: "w2"}}
			}),
			[]string{"- blocker media-missing", "+ blocker unknown-component", "~ warning OUTREACH-11880: message changed"}},
		{"free space changing by itself is no difference",
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["disk.free.backup"] = orchestrator.Fact{Value: "100", Source: "statfs /", Volatile: true}
			}),
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["disk.free.backup"] = orchestrator.Fact{Value: "200", Source: "statfs /", Volatile: true}
			}),
			nil},
		{"an assumed fact is marked",
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["pc.version"] = orchestrator.Fact{Value: "4.1", Source: "pc.products.dialer"}
			}),
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["pc.version"] = orchestrator.Fact{Value: "4.1", Source: "--assume", Assumed: true}
			}),
			[]string{"~ fact pc.version: 4.1 → 4.1 (assumed)"}},
		{"a difference not listed still shows",
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["host.model"] = orchestrator.Fact{Value: "System x3650 M2", Source: "dmi"}
			}),
			refingerprint(base, func(p *orchestrator.Plan) {
				p.Facts["host.model"] = orchestrator.Fact{Value: "System x3650 M2", Source: "profile"}
			}),
			nil}, // filled in below: the fingerprints differ
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := orchestrator.DiffPlans(tt.a, tt.b)
			want := tt.want
			if want == nil && tt.a.Fingerprint != tt.b.Fingerprint {
				if len(got) != 1 || !strings.HasPrefix(got[0], "the plans differ in a way not listed here (fingerprint ") {
					t.Fatalf("DiffPlans = %q, want the fallback line", got)
				}
				return
			}
			if !slices.Equal(got, want) {
				t.Errorf("DiffPlans:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
			}
		})
	}
}

// Two plans differ exactly when their fingerprints differ: DiffPlans never
// says "no difference" about plans the engine would refuse to swap.
func TestDiffPlansEmptyIffSameFingerprint(t *testing.T) {
	var plans []orchestrator.Plan
	for _, v := range []string{"4.0", "4.1", "4.1.1", "4.1.2"} {
		for _, with := range [][]string{nil, {"agent"}, {"supervisor", "agent-api"}} {
			plans = append(plans,
				diffBuild(t, "pc-4.1.2-upgrade", diffPCProfile, diffFacts("pc.version", v, "components", "supervisor"), orchestrator.Options{With: with}),
				diffBuild(t, "pc-4.1.2-migrate", diffPCProfile, diffFacts("pc.version", v, "host.model", "ProLiant DL385 G5"), orchestrator.Options{With: with}))
		}
	}
	for _, v := range []string{"3.1.0", "3.1.1", "3.1.1 SP1"} {
		plans = append(plans, diffBuild(t, "pom-3.1.1-sp1-upgrade", diffPOMProfile, pomFacts(v), orchestrator.Options{}))
		moving := diffPOMProfile
		moving.EP.MovingTo721 = true
		plans = append(plans, diffBuild(t, "pom-3.1.1-sp1-upgrade", moving, pomFacts(v), orchestrator.Options{}))
	}
	for i, a := range plans {
		for j, b := range plans {
			d := orchestrator.DiffPlans(a, b)
			if same := a.Fingerprint == b.Fingerprint; same != (len(d) == 0) {
				t.Errorf("plans %d and %d: same fingerprint %v, differences %q", i, j, same, d)
			}
		}
	}
}
