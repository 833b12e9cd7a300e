package orchestrator_test

import (
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

const pomInstallProc = "pom-3.1.1-sp1-install"

// buildPOMInstall plans the POM fresh install on goodFacts without POM
// installed and simProfile, after the mutators ran on copies of them.
func buildPOMInstall(tb testing.TB, opts orchestrator.Options, mut ...func(orchestrator.Facts, *profile.Profile)) orchestrator.Plan {
	tb.Helper()
	facts, prof := goodFacts(), simProfile()
	delete(facts, orchestrator.FactPOMVersion)
	prof.Procedure = pomInstallProc
	for _, m := range mut {
		if m != nil {
			m(facts, &prof)
		}
	}
	return mustPlan(tb, orchestrator.PlanInput{Procedure: pomInstallProc, Facts: facts, Profile: prof, Options: opts})
}

func TestRulePOMInstallSequence(t *testing.T) {
	tests := []struct {
		name string
		mut  func(orchestrator.Facts, *profile.Profile)
		mpps []string
	}{
		{"EP 7.2.0 staying on 7.2", nil, []string{"mpp-config-mpp1", "mpp-config-mpp2"}},
		{"EP 7.2 staying on 7.2, three MPPs", func(f orchestrator.Facts, p *profile.Profile) {
			p.MPPs = append(p.MPPs, profile.MPP{Name: "mpp3", Host: "mpp3.site", Config: "/opt/Avaya/ExperiencePortal/mpp3/config/mppconfig.xml"})
			f[orchestrator.MPPFact("mpp3", orchestrator.MPPReachable)] = orchestrator.Fact{Value: "true", Source: "ssh"}
		}, []string{"mpp-config-mpp1", "mpp-config-mpp2", "mpp-config-mpp3"}},
		{"EP 7.2.0 moving to 7.2.1", func(_ orchestrator.Facts, p *profile.Profile) { p.EP.MovingTo721 = true }, nil},
		{"EP 7.2.1 patched", func(f orchestrator.Facts, p *profile.Profile) {
			setFact(orchestrator.FactEPVersion, "7.2.1.0.0100")(f, p)
			setFact(orchestrator.FactEPMPPPatch, "7.2.1.0.0622")(f, p)
		}, nil},
		{"empty POM version fact is no POM", setFact(orchestrator.FactPOMVersion, ""), []string{"mpp-config-mpp1", "mpp-config-mpp2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMInstall(t, orchestrator.Options{}, tt.mut)
			runnable(t, p)
			want := append(append([]string{"verify-media"}, tt.mpps...), "install-pom", "enable-dnc-import")
			if got := stepIDs(p); !slices.Equal(got, want) {
				t.Fatalf("steps\n got %v\nwant %v", got, want)
			}
			if p.From != "none" || p.To != "POM.03.01.01.01.00.003" {
				t.Errorf("from %q to %q, want none → POM.03.01.01.01.00.003", p.From, p.To)
			}
			vm, _ := mustStep(t, p, "verify-media")
			if !slices.Equal(vm.Produces, []string{"media"}) || vm.Skip != orchestrator.SkipNever {
				t.Errorf("verify-media produces %v skip %s, want media and never", vm.Produces, vm.Skip)
			}
			inst, _ := mustStep(t, p, "install-pom")
			if !slices.Equal(inst.Requires, []string{"media"}) || inst.Skip != orchestrator.SkipNever || inst.Kind != orchestrator.KindAuto {
				t.Errorf("install-pom requires %v skip %s kind %s, want media, never, auto", inst.Requires, inst.Skip, inst.Kind)
			}
			if inst.Params["iso"] != "/media/POM.03.01.01.01.00.003-r35434-x86_64.iso" || inst.Params["target"] != "POM.03.01.01.01.00.003" {
				t.Errorf("install-pom params %v", inst.Params)
			}
			for _, s := range p.Steps {
				if slices.Contains([]string{"backup-db", "stop-services", "upgrade-pom", "start-services"}, s.ID) {
					t.Errorf("step %s belongs to the upgrade, not to a fresh install", s.ID)
				}
				if strings.HasPrefix(s.ID, "mpp-config-") && (s.Params[orchestrator.MPPRuntimeSizeParam] != orchestrator.MPPRuntimeSize ||
					s.Params[orchestrator.MPPContextSizeParam] != orchestrator.MPPContextSize) {
					t.Errorf("%s params %v", s.ID, s.Params)
				}
			}
			dnc := p.Steps[len(p.Steps)-1]
			if dnc.Kind != orchestrator.KindGate || !strings.Contains(dnc.Reason, "off by default") {
				t.Errorf("last step %s kind %s reason %q, want the DNC import advisory gate", dnc.ID, dnc.Kind, dnc.Reason)
			}
			// Nothing is down and nothing irreversible: the product was not running.
			if p.Outage != nil || p.PointOfNoReturn != "" {
				t.Errorf("outage %+v point of no return %q, want none", p.Outage, p.PointOfNoReturn)
			}
		})
	}
}

func TestRulePOMInstallOptionalParts(t *testing.T) {
	tests := []struct {
		name    string
		with    []string
		extra   []string // steps between install-pom and enable-dnc-import
		unknown []string // --with values blocked
	}{
		{"none", nil, nil, nil},
		{"pdc", []string{"pdc"}, []string{"pdc"}, nil},
		{"help library", []string{"help-library"}, []string{"help-library"}, nil},
		{"both", []string{"pdc", "help-library"}, []string{"pdc", "help-library"}, nil},
		{"both, other order", []string{"help-library", "pdc"}, []string{"pdc", "help-library"}, nil},
		{"twice", []string{"pdc", "pdc"}, []string{"pdc"}, nil},
		{"nonsense", []string{"nonsense"}, nil, []string{"nonsense"}},
		{"a PC component", []string{"pdc", "supervisor"}, []string{"pdc"}, []string{"supervisor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMInstall(t, with(tt.with...))
			want := append(append([]string{"verify-media", "mpp-config-mpp1", "mpp-config-mpp2", "install-pom"}, tt.extra...), "enable-dnc-import")
			if got := stepIDs(p); !slices.Equal(got, want) {
				t.Errorf("steps\n got %v\nwant %v", got, want)
			}
			var unknown []string
			for _, b := range p.Blockers {
				if b.ID != "unknown-option" {
					t.Errorf("unexpected blocker %s: %s", b.ID, b.Message)
					continue
				}
				unknown = append(unknown, b.Message)
				if b.Skip != orchestrator.SkipNever || !strings.Contains(b.Message, "pdc") || !strings.Contains(b.Message, "help-library") {
					t.Errorf("blocker %q (skip %s) does not name the choices", b.Message, b.Skip)
				}
			}
			if len(unknown) != len(tt.unknown) {
				t.Fatalf("unknown-option blockers %q, want one each for %v", unknown, tt.unknown)
			}
			for i, w := range tt.unknown {
				if !strings.Contains(unknown[i], "--with "+w) {
					t.Errorf("blocker %q does not name --with %s", unknown[i], w)
				}
			}
			if i := p.StepIndex("pdc"); i >= 0 {
				s := p.Steps[i]
				if s.Kind != orchestrator.KindGate || s.Skip != orchestrator.SkipWithReason || !strings.Contains(s.Reason, "--with pdc") {
					t.Errorf("pdc kind %s skip %s reason %q, want a skippable gate requested with --with", s.Kind, s.Skip, s.Reason)
				}
				for _, w := range []string{"POMPDC_311.zip", "Developer Guide"} {
					if !strings.Contains(s.Instructions, w) {
						t.Errorf("pdc instructions %q do not name %s", s.Instructions, w)
					}
				}
			}
			hl := p.StepIndex("help-library")
			if hl < 0 {
				if p.Outage != nil {
					t.Errorf("outage %+v without the help library", p.Outage)
				}
				return
			}
			s := p.Steps[hl]
			if s.Kind != orchestrator.KindAuto || !s.Downtime || s.Skip != orchestrator.SkipWithReason || !strings.Contains(s.Reason, "--with help-library") {
				t.Errorf("help-library kind %s downtime %v skip %s reason %q, want an auto, downtime, with-reason step", s.Kind, s.Downtime, s.Skip, s.Reason)
			}
			wantParams := map[string]string{
				"zip": "/media/UsingPOM.zip", "dir": "/opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary",
				"owner": "avayavp", "group": "avayavpgroup", "services": "vpms",
			}
			for k, v := range wantParams {
				if s.Params[k] != v {
					t.Errorf("help-library param %s = %q, want %q", k, s.Params[k], v)
				}
			}
			if p.Outage == nil || *p.Outage != (orchestrator.Outage{From: "help-library", To: "help-library"}) {
				t.Errorf("outage %+v, want help-library (vpms stops for it)", p.Outage)
			}
		})
	}
}

func TestRulePOMInstallRefusedWhenInstalled(t *testing.T) {
	for _, v := range []string{"3.1.1", "3.1.0", "POM.03.01.01.01.00.003"} {
		t.Run(v, func(t *testing.T) {
			p := buildPOMInstall(t, with("pdc"), setFact(orchestrator.FactPOMVersion, v))
			b, ok := findFinding(p.Blockers, "pom-already-installed")
			if !ok {
				t.Fatalf("blockers %v, want pom-already-installed", findingIDs(p.Blockers))
			}
			if len(p.Steps) != 0 || p.NothingToDo || b.Skip != orchestrator.SkipNever {
				t.Errorf("steps %v, nothing to do %v, skip %s; want a blocked plan with no steps", stepIDs(p), p.NothingToDo, b.Skip)
			}
			for _, s := range []string{v, pomProc} {
				if !strings.Contains(b.Message, s) {
					t.Errorf("message %q does not say %s", b.Message, s)
				}
			}
			if p.From != v {
				t.Errorf("from %q, want the installed %s", p.From, v)
			}
		})
	}
}

// TestRulePOMInstallSharesUpgradeFindings: the EP rules, the media rules,
// OUTREACH-11880 and the ISO name typo hold for the fresh install exactly
// as for the upgrade.
func TestRulePOMInstallSharesUpgradeFindings(t *testing.T) {
	ep := func(version, patch string) func(orchestrator.Facts, *profile.Profile) {
		return func(f orchestrator.Facts, p *profile.Profile) {
			setFact(orchestrator.FactEPVersion, version)(f, p)
			setFact(orchestrator.FactEPMPPPatch, patch)(f, p)
		}
	}
	// Findings of one procedure only: the upgrade backs up a database the
	// install may not have (the install says whether one exists); the typo
	// is in the upgrade section of the release notes, and the renamed
	// callback label concerns those who knew the old one.
	upgradeOnly := []string{"db-size-unknown", "backup-space", "iso-name-typo", "callback-expiring-label", "db-existence-unknown", "pom-version-form"}
	tests := []struct {
		name string
		mut  func(orchestrator.Facts, *profile.Profile)
		want []string
	}{
		{"baseline", nil, []string{"EXPPORTAL-1960", "EXPPORTAL-1701", "OUTREACH-11880"}},
		{"EP 7.2.0 without patch", ep("7.2.0.0.0318", ""), []string{"ep-mpp-patch-missing", "EXPPORTAL-1960"}},
		{"EP 7.2.1 without patch", ep("7.2.1.0.0100", "7.2.0.0.1202"), []string{"ep-mpp-patch-missing"}},
		{"EP 7.2.1 patched", ep("7.2.1.0.0100", "7.2.1.0.0622"), []string{"OUTREACH-11880"}},
		{"EP unknown", ep("", ""), []string{"ep-version-unknown"}},
		{"EP unreadable", ep("seven", ""), []string{"ep-version-unknown"}},
		{"EP 7.3", ep("7.3.0.0.0100", ""), []string{"ep-version-not-covered"}},
		{"ISO missing", setFact(orchestrator.FactMediaSize, "-1"), []string{"media-missing"}},
		{"ISO short", setFact(orchestrator.FactMediaSize, "1000"), []string{"media-size"}},
		{"ISO unsigned", setFact(orchestrator.FactMediaSigned, "false"), []string{"media-signature-files"}},
		{"ISO renamed", func(_ orchestrator.Facts, p *profile.Profile) { p.Media.ISO = "pom-sp1.iso" }, []string{"media-name"}},
		{"no published sum", func(_ orchestrator.Facts, p *profile.Profile) { p.Media.SHA256 = "" }, []string{"media-sum-missing"}},
		{"media not configured", func(_ orchestrator.Facts, p *profile.Profile) { p.Media.Dir = "" }, []string{"media-not-configured"}},
		{"short of space", setFact(orchestrator.FactFreeInstall, "1000"), []string{"install-space"}},
	}
	ids := func(p orchestrator.Plan) []string {
		var out []string
		for _, fs := range [][]orchestrator.Finding{p.Blockers, p.Warnings, p.Notes} {
			for _, f := range fs {
				if !slices.Contains(upgradeOnly, f.ID) {
					out = append(out, string(f.Severity)+" "+f.ID)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := buildPOMPlan(t, tt.mut)
			inst := buildPOMInstall(t, orchestrator.Options{}, tt.mut)
			if got, want := ids(inst), ids(up); !slices.Equal(got, want) {
				t.Errorf("install findings\n %v\nupgrade findings\n %v", got, want)
			}
			all := append(append(append([]orchestrator.Finding{}, inst.Blockers...), inst.Warnings...), inst.Notes...)
			for _, id := range tt.want {
				if _, ok := findFinding(all, id); !ok {
					t.Errorf("install findings %v, want %s", ids(inst), id)
				}
			}
			// The messages are the same too: one rule, one wording.
			for _, f := range all {
				var other orchestrator.Finding
				var ok bool
				for _, fs := range [][]orchestrator.Finding{up.Blockers, up.Warnings, up.Notes} {
					if other, ok = findFinding(fs, f.ID); ok {
						break
					}
				}
				if ok && other.Message != f.Message {
					t.Errorf("%s: install says %q, upgrade says %q", f.ID, f.Message, other.Message)
				}
			}
		})
	}
}
