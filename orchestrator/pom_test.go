package orchestrator_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

const pomProc = "pom-3.1.1-sp1-upgrade"

// simProfile is the simulated host's site profile (testdata/simhost/pom/profile.yaml)
// as a real site would write it: no media.size, so the file list's size applies.
func simProfile() profile.Profile {
	return profile.Profile{
		Site:           "sim-pom-01",
		Procedure:      pomProc,
		Root:           "/srv/sim",
		ServiceCommand: []string{"/sim/bin/service"},
		POM: profile.POM{
			Home: "/opt/Avaya/avpom/POManager",
			Version: profile.VersionSource{
				File:    "/opt/Avaya/avpom/POManager/config/version.properties",
				Pattern: `POMVersion=(\S+)`,
			},
			Services:  []string{"vpms"},
			Installer: []string{"/sim/bin/pom-installer", "--iso", "{iso}", "--silent"},
		},
		EP: profile.EP{Version: "7.2.0.0.0318", MPPPatch: "7.2.0.0.1202"},
		MPPs: []profile.MPP{
			{Name: "mpp1", Host: "localhost", Config: "/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml"},
			{Name: "mpp2", Host: "localhost", Config: "/opt/Avaya/ExperiencePortal/mpp2/config/mppconfig.xml"},
		},
		Media: profile.Media{
			Dir:    "/media",
			ISO:    "POM.03.01.01.01.00.003-r35434-x86_64.iso",
			SHA256: "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193",
		},
		DB: profile.DB{Kind: "postgres", Host: "localhost", Port: 5432, Name: "pom", User: "postgres",
			PasswordFile: "/etc/upgrader/pgpass", BackupDir: "/var/backups/upgrader", DumpCommand: "/sim/bin/pg_dump"},
	}
}

// goodFacts describe a POM 3.1.1 host on EP 7.2.0 with its MPP patch and
// the full-size, signed SP1 ISO in place: a plan with no blockers.
func goodFacts() orchestrator.Facts {
	f := func(v, src string) orchestrator.Fact { return orchestrator.Fact{Value: v, Source: src} }
	return orchestrator.Facts{
		orchestrator.FactHostName:    f("pom01", "hostname"),
		orchestrator.FactPOMVersion:  f("3.1.1", "version.properties"),
		orchestrator.FactEPVersion:   f("7.2.0.0.0318", "profile ep.version"),
		orchestrator.FactEPMPPPatch:  f("7.2.0.0.1202", "profile ep.mpp_patch"),
		orchestrator.FactMediaSize:   f("288784384", "/media/POM.iso"),
		orchestrator.FactMediaSigned: f("true", "/media/POM.iso.sha256.{crt,sig}"),
	}
}

// setFact returns a mutator that sets (or, with value "", removes) a fact.
func setFact(key, value string) func(orchestrator.Facts, *profile.Profile) {
	return func(f orchestrator.Facts, _ *profile.Profile) {
		if value == "" {
			delete(f, key)
			return
		}
		f[key] = orchestrator.Fact{Value: value, Source: "test"}
	}
}

// buildPOMPlan plans the POM upgrade from goodFacts and simProfile after the
// mutators ran on copies of them.
func buildPOMPlan(tb testing.TB, mut ...func(orchestrator.Facts, *profile.Profile)) orchestrator.Plan {
	tb.Helper()
	facts, prof := goodFacts(), simProfile()
	for _, m := range mut {
		if m != nil {
			m(facts, &prof)
		}
	}
	p, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: pomProc, Facts: facts, Profile: prof})
	if err != nil {
		tb.Fatalf("BuildPlan: %v", err)
	}
	return p
}

func findingIDs(fs []orchestrator.Finding) []string {
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	return ids
}

func stepIDs(p orchestrator.Plan) []string {
	ids := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		ids[i] = s.ID
	}
	return ids
}

func findFinding(fs []orchestrator.Finding, id string) (orchestrator.Finding, bool) {
	for _, f := range fs {
		if f.ID == id {
			return f, true
		}
	}
	return orchestrator.Finding{}, false
}

// mustStep returns the step with the given id and its index.
func mustStep(tb testing.TB, p orchestrator.Plan, id string) (orchestrator.StepSpec, int) {
	tb.Helper()
	i := p.StepIndex(id)
	if i < 0 {
		tb.Fatalf("plan has no step %q; steps: %v", id, stepIDs(p))
	}
	return p.Steps[i], i
}

// upgradeVariants are hosts the upgrade is allowed on; rules about the
// steps of an upgrade must hold on every one of them.
var upgradeVariants = []struct {
	name string
	mut  func(orchestrator.Facts, *profile.Profile)
}{
	{"EP 7.2.0 staying on 7.2", nil},
	{"EP 7.2.0 moving to 7.2.1", func(_ orchestrator.Facts, p *profile.Profile) { p.EP.MovingTo721 = true }},
	{"EP 7.2.1 patched", func(f orchestrator.Facts, p *profile.Profile) {
		setFact(orchestrator.FactEPVersion, "7.2.1.0.0100")(f, p)
		setFact(orchestrator.FactEPMPPPatch, "7.2.1.0.0622")(f, p)
	}},
	{"POM 3.1.1.0.0", setFact(orchestrator.FactPOMVersion, "3.1.1.0.0")},
	{"POM GA build", setFact(orchestrator.FactPOMVersion, "POM.03.01.01.00.00.039")},
	{"EP 7.2.1, no MPPs in profile", func(f orchestrator.Facts, p *profile.Profile) {
		setFact(orchestrator.FactEPVersion, "7.2.1.0.0100")(f, p)
		setFact(orchestrator.FactEPMPPPatch, "7.2.1.0.0622")(f, p)
		p.MPPs = nil
	}},
}

func TestGoodFactsPlanHasNoBlockers(t *testing.T) {
	// The other tests change one thing at a time from this baseline.
	for _, v := range upgradeVariants {
		t.Run(v.name, func(t *testing.T) {
			p := buildPOMPlan(t, v.mut)
			if len(p.Blockers) != 0 || p.NothingToDo {
				t.Fatalf("blockers %v, nothing to do %v; want a runnable plan", findingIDs(p.Blockers), p.NothingToDo)
			}
		})
	}
}

func TestRulePOMUpgradeOnlyFrom311(t *testing.T) {
	tests := []struct {
		name    string
		from    string
		blocked bool
	}{
		{"3.1.0 is too old", "3.1.0", true},
		{"3.0 is too old", "3.0", true},
		{"3.0.9 is too old", "3.0.9", true},
		{"2.5 is too old", "2.5", true},
		{"POM 3.1.0 build is too old", "POM.03.01.00.00.00.120", true},
		{"3.1.1", "3.1.1", false},
		{"3.1.1.0.0", "3.1.1.0.0", false},
		{"POM 3.1.1 GA build", "POM.03.01.01.00.00.039", false},
		{"3.1.1 GA hotfix", "3.1.1.0.2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, tt.from))
			b, found := findFinding(p.Blockers, "pom-upgrade-from-3.1.1-only")
			if found != tt.blocked {
				t.Fatalf("from %s: blocker pom-upgrade-from-3.1.1-only present=%v, want %v (blockers %v)",
					tt.from, found, tt.blocked, findingIDs(p.Blockers))
			}
			if !tt.blocked {
				if p.NothingToDo || len(p.Steps) == 0 {
					t.Fatalf("from %s: nothing to do %v, %d steps; want an upgrade", tt.from, p.NothingToDo, len(p.Steps))
				}
				return
			}
			if !strings.Contains(b.Message, "upgrade to 3.1.1 first") {
				t.Errorf("message %q does not say \"upgrade to 3.1.1 first\"", b.Message)
			}
			if b.Severity != orchestrator.SeverityBlocker || b.Skip != orchestrator.SkipNever {
				t.Errorf("severity %s skip %s, want blocker/never", b.Severity, b.Skip)
			}
			if p.NothingToDo {
				t.Error("a blocked plan must not say nothing to do")
			}
		})
	}
}

func TestRulePOMVersionUnknownBlocks(t *testing.T) {
	// Not knowing the installed version must block, never guess.
	for _, tt := range []struct{ name, value string }{
		{"fact missing", ""},
		{"not a version", "three-one-one"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, tt.value))
			if _, ok := findFinding(p.Blockers, "pom-version-unknown"); !ok {
				t.Fatalf("blockers %v, want pom-version-unknown", findingIDs(p.Blockers))
			}
		})
	}
}

func TestRuleAlreadyOnSP1NothingToDo(t *testing.T) {
	for _, from := range []string{"3.1.1 SP1", "POM.03.01.01.01.00.003", "POM.03.01.01.01.02.003", "3.1.2", "4.0"} {
		t.Run(from, func(t *testing.T) {
			p := buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, from))
			if !p.NothingToDo {
				t.Fatalf("from %s: NothingToDo false", from)
			}
			if len(p.Steps) != 0 || p.PointOfNoReturn != "" || p.Outage != nil {
				t.Errorf("from %s: steps %v, ponr %q, outage %v; want none", from, stepIDs(p), p.PointOfNoReturn, p.Outage)
			}
			if len(p.Blockers) != 0 {
				t.Errorf("from %s: blockers %v; already there is not a problem", from, findingIDs(p.Blockers))
			}
			if _, ok := findFinding(p.Notes, "pom-already-at-target"); !ok {
				t.Errorf("notes %v, want pom-already-at-target saying why", findingIDs(p.Notes))
			}
		})
	}
}

func TestRuleNoRollbackPointOfNoReturn(t *testing.T) {
	for _, v := range upgradeVariants {
		t.Run(v.name, func(t *testing.T) {
			p := buildPOMPlan(t, v.mut)
			up, ui := mustStep(t, p, "upgrade-pom")
			if !up.Irreversible {
				t.Error("upgrade-pom is not irreversible")
			}
			if p.PointOfNoReturn != "upgrade-pom" {
				t.Errorf("PointOfNoReturn = %q, want upgrade-pom", p.PointOfNoReturn)
			}
			for _, s := range p.Steps[:ui] {
				if s.Irreversible {
					t.Errorf("step %s before the point of no return is irreversible", s.ID)
				}
			}
			if !strings.Contains(strings.Join(up.Notes, " "), "no rollback") {
				t.Errorf("upgrade-pom notes %q do not say there is no rollback", up.Notes)
			}
		})
	}
}

func TestRuleMandatoryDBBackup(t *testing.T) {
	for _, v := range upgradeVariants {
		t.Run(v.name, func(t *testing.T) {
			p := buildPOMPlan(t, v.mut)
			bk, bi := mustStep(t, p, "backup-db")
			up, ui := mustStep(t, p, "upgrade-pom")
			if bk.Skip != orchestrator.SkipNever {
				t.Errorf("backup-db skip = %s, want never", bk.Skip)
			}
			if bk.Kind != orchestrator.KindAuto {
				t.Errorf("backup-db kind = %s, want auto", bk.Kind)
			}
			if bi > ui {
				t.Errorf("backup-db (#%d) comes after upgrade-pom (#%d)", bi, ui)
			}
			if !slices.Contains(bk.Produces, "db-backup") {
				t.Errorf("backup-db produces %v, want db-backup", bk.Produces)
			}
			if !slices.Contains(up.Requires, "db-backup") {
				t.Errorf("upgrade-pom requires %v, want db-backup (the engine's guard)", up.Requires)
			}
			if bk.Params["database"] != "pom" || bk.Params["backup_dir"] != "/var/backups/upgrader" {
				t.Errorf("backup-db params %v, want the profile's db.name and db.backup_dir", bk.Params)
			}
		})
	}
}

func TestRuleVerifiedMedia(t *testing.T) {
	setProfile := func(f func(*profile.Profile)) func(orchestrator.Facts, *profile.Profile) {
		return func(_ orchestrator.Facts, p *profile.Profile) { f(p) }
	}
	tests := []struct {
		name     string
		mut      func(orchestrator.Facts, *profile.Profile)
		blockers []string // exactly these, in order
		warning  string   // and this warning, if set
	}{
		{"good media", nil, nil, ""},
		{"ISO missing", setFact(orchestrator.FactMediaSize, "-1"), []string{"media-missing"}, ""},
		{"ISO size unknown", setFact(orchestrator.FactMediaSize, ""), []string{"media-missing"}, ""},
		{"wrong size", setFact(orchestrator.FactMediaSize, "270336"), []string{"media-size"}, ""},
		{"profile size override matches", func(f orchestrator.Facts, p *profile.Profile) {
			p.Media.Size = 270336
			setFact(orchestrator.FactMediaSize, "270336")(f, p)
		}, nil, ""},
		{"no sha256 in profile", setProfile(func(p *profile.Profile) { p.Media.SHA256 = "" }), []string{"media-sum-missing"}, ""},
		{"no media configured", setProfile(func(p *profile.Profile) { p.Media.ISO = "" }), []string{"media-not-configured"}, ""},
		{"signature files missing", setFact(orchestrator.FactMediaSigned, "false"), nil, "media-signature-files"},
		{"other ISO name", setProfile(func(p *profile.Profile) { p.Media.ISO = "pom-sp1.iso"; p.Media.Size = 288784384 }), nil, "media-name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, tt.mut)
			if got := findingIDs(p.Blockers); !slices.Equal(got, tt.blockers) {
				t.Fatalf("blockers %v, want %v", got, tt.blockers)
			}
			for _, b := range p.Blockers {
				if b.Skip != orchestrator.SkipNever {
					t.Errorf("blocker %s skip = %s, want never", b.ID, b.Skip)
				}
			}
			if tt.warning != "" {
				if _, ok := findFinding(p.Warnings, tt.warning); !ok {
					t.Errorf("warnings %v, want %s", findingIDs(p.Warnings), tt.warning)
				}
			}
			// Whatever the findings, the step list keeps verification first.
			vm, vi := mustStep(t, p, "verify-media")
			up, _ := mustStep(t, p, "upgrade-pom")
			if vi != 0 {
				t.Errorf("verify-media is step #%d, want the first", vi)
			}
			if vm.Skip != orchestrator.SkipNever {
				t.Errorf("verify-media skip = %s, want never", vm.Skip)
			}
			if !slices.Contains(vm.Produces, "media") || !slices.Contains(up.Requires, "media") {
				t.Errorf("verify-media produces %v, upgrade-pom requires %v; want media on both", vm.Produces, up.Requires)
			}
		})
	}
}

func TestRuleVerifiedMediaParams(t *testing.T) {
	// verify-media checks against the published sum and the file list's size.
	p := buildPOMPlan(t)
	vm, _ := mustStep(t, p, "verify-media")
	want := map[string]string{
		"iso":    "/media/POM.03.01.01.01.00.003-r35434-x86_64.iso",
		"sha256": "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193",
		"size":   "288784384",
	}
	if !maps.Equal(vm.Params, want) {
		t.Errorf("verify-media params %v, want %v", vm.Params, want)
	}
}

func TestRuleEPMPPPatch(t *testing.T) {
	ep := func(version, patch string) func(orchestrator.Facts, *profile.Profile) {
		return func(f orchestrator.Facts, p *profile.Profile) {
			setFact(orchestrator.FactEPVersion, version)(f, p)
			setFact(orchestrator.FactEPMPPPatch, patch)(f, p)
		}
	}
	tests := []struct {
		name      string
		mut       func(orchestrator.Facts, *profile.Profile)
		wantPatch string // "" means no ep-mpp-patch-missing blocker
		wantID    string
		warning   string
	}{
		{"EP 7.2.0 without patch", ep("7.2.0.0.0318", ""), "7.2.0.0.1202.tar.gz", "AAEP0000077", ""},
		{"EP 7.2 without patch", ep("7.2", ""), "7.2.0.0.1202.tar.gz", "AAEP0000077", ""},
		{"EP 7.2.0 older patch", ep("7.2.0.0.0318", "7.2.0.0.1100"), "7.2.0.0.1202.tar.gz", "AAEP0000077", ""},
		{"EP 7.2.0 unreadable patch", ep("7.2.0.0.0318", "latest"), "7.2.0.0.1202.tar.gz", "AAEP0000077", ""},
		{"EP 7.2.0 with patch", ep("7.2.0.0.0318", "7.2.0.0.1202"), "", "", ""},
		{"EP 7.2.0 newer patch", ep("7.2.0.0.0318", "7.2.0.0.1300"), "", "", ""},
		{"EP 7.2.1 without patch", ep("7.2.1.0.0100", ""), "7.2.1.0.0622.tar.gz", "AAEP0000104", ""},
		{"EP 7.2.1 with the 7.2.0 patch", ep("7.2.1.0.0100", "7.2.0.0.1202"), "7.2.1.0.0622.tar.gz", "AAEP0000104", ""},
		{"EP 7.2.1 with patch", ep("7.2.1.0.0100", "7.2.1.0.0622"), "", "", ""},
		{"EP version unknown warns", ep("", ""), "", "", "ep-version-unknown"},
		{"EP 7.3 is not covered", ep("7.3.0.0.0100", ""), "", "", "ep-version-not-covered"},
		{"EP 7.1 is not covered", ep("7.1.0.0.0100", ""), "", "", "ep-version-not-covered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, tt.mut)
			b, found := findFinding(p.Blockers, "ep-mpp-patch-missing")
			if found != (tt.wantPatch != "") {
				t.Fatalf("ep-mpp-patch-missing present=%v, want %v (blockers %v)", found, tt.wantPatch != "", findingIDs(p.Blockers))
			}
			if found {
				// The operator searches the support site for exactly these strings.
				for _, s := range []string{tt.wantPatch, tt.wantID} {
					if !strings.Contains(b.Message, s) {
						t.Errorf("message %q does not name %s", b.Message, s)
					}
				}
			}
			if tt.warning != "" {
				if _, ok := findFinding(p.Warnings, tt.warning); !ok {
					t.Errorf("warnings %v, want %s", findingIDs(p.Warnings), tt.warning)
				}
			}
		})
	}
}

func TestRuleMPPConfigOnAllMPPs(t *testing.T) {
	threeMPPs := func(_ orchestrator.Facts, p *profile.Profile) {
		p.MPPs = append(p.MPPs, profile.MPP{Name: "mpp3", Host: "mpp3.site", Config: "/opt/Avaya/ExperiencePortal/mpp3/config/mppconfig.xml"})
	}
	tests := []struct {
		name string
		mut  []func(orchestrator.Facts, *profile.Profile)
		want []string
	}{
		{"EP 7.2.0 staying, two MPPs", nil, []string{"mpp1", "mpp2"}},
		{"EP 7.2.0 staying, three MPPs", []func(orchestrator.Facts, *profile.Profile){threeMPPs}, []string{"mpp1", "mpp2", "mpp3"}},
		{"EP 7.2 staying", []func(orchestrator.Facts, *profile.Profile){setFact(orchestrator.FactEPVersion, "7.2")}, []string{"mpp1", "mpp2"}},
		{"EP 7.2.0 moving to 7.2.1", []func(orchestrator.Facts, *profile.Profile){
			func(_ orchestrator.Facts, p *profile.Profile) { p.EP.MovingTo721 = true }}, nil},
		{"EP 7.2.1", []func(orchestrator.Facts, *profile.Profile){
			setFact(orchestrator.FactEPVersion, "7.2.1.0.0100"), setFact(orchestrator.FactEPMPPPatch, "7.2.1.0.0622")}, nil},
		{"EP version unknown", []func(orchestrator.Facts, *profile.Profile){setFact(orchestrator.FactEPVersion, "")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, tt.mut...)
			var got []string
			for _, s := range p.Steps {
				if !strings.HasPrefix(s.ID, "mpp-config-") {
					continue
				}
				name := strings.TrimPrefix(s.ID, "mpp-config-")
				got = append(got, name)
				if s.Params["mpp"] != name {
					t.Errorf("%s: params mpp = %q", s.ID, s.Params["mpp"])
				}
				if s.Params[orchestrator.MPPRuntimeSizeParam] != "33554432" || s.Params[orchestrator.MPPContextSizeParam] != "262144" {
					t.Errorf("%s: params %v, want %s=33554432 and %s=262144", s.ID, s.Params,
						orchestrator.MPPRuntimeSizeParam, orchestrator.MPPContextSizeParam)
				}
				// Every profile MPP here keeps its file at the EP default place.
				if want := "/opt/Avaya/ExperiencePortal/" + name + "/config/mppconfig.xml"; s.Params["config"] != want {
					t.Errorf("%s: config %q, want the profile's %s", s.ID, s.Params["config"], want)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("mpp-config steps for %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRuleKnownIssueWarnings(t *testing.T) {
	tests := []struct {
		name     string
		mut      []func(orchestrator.Facts, *profile.Profile)
		want     []string
		unwanted []string
	}{
		{"EP 7.2.0", nil, []string{"EXPPORTAL-1960", "EXPPORTAL-1701", "OUTREACH-11880"}, nil},
		{"EP 7.2.0 moving to 7.2.1 still has them now", []func(orchestrator.Facts, *profile.Profile){
			func(_ orchestrator.Facts, p *profile.Profile) { p.EP.MovingTo721 = true }},
			[]string{"EXPPORTAL-1960", "EXPPORTAL-1701", "OUTREACH-11880"}, nil},
		{"EP 7.2.1", []func(orchestrator.Facts, *profile.Profile){
			setFact(orchestrator.FactEPVersion, "7.2.1.0.0100"), setFact(orchestrator.FactEPMPPPatch, "7.2.1.0.0622")},
			[]string{"OUTREACH-11880"}, []string{"EXPPORTAL-1960", "EXPPORTAL-1701"}},
		{"EP unknown", []func(orchestrator.Facts, *profile.Profile){setFact(orchestrator.FactEPVersion, "")},
			[]string{"OUTREACH-11880"}, []string{"EXPPORTAL-1960", "EXPPORTAL-1701"}},
		{"already on SP1: not upgrading", []func(orchestrator.Facts, *profile.Profile){setFact(orchestrator.FactPOMVersion, "3.1.1 SP1")},
			nil, []string{"OUTREACH-11880", "EXPPORTAL-1960", "EXPPORTAL-1701"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, tt.mut...)
			got := findingIDs(p.Warnings)
			for _, id := range tt.want {
				w, ok := findFinding(p.Warnings, id)
				if !ok {
					t.Errorf("warnings %v, want %s", got, id)
					continue
				}
				if strings.HasPrefix(id, "EXPPORTAL-") && !strings.Contains(w.Message, "upgrade to EP 7.2.1") {
					t.Errorf("%s message %q lacks the workaround", id, w.Message)
				}
			}
			for _, id := range tt.unwanted {
				if slices.Contains(got, id) {
					t.Errorf("warnings %v, did not want %s", got, id)
				}
			}
		})
	}
}

func TestRuleDNCImportAdvisory(t *testing.T) {
	for _, v := range upgradeVariants {
		t.Run(v.name, func(t *testing.T) {
			p := buildPOMPlan(t, v.mut)
			last := p.Steps[len(p.Steps)-1]
			if last.ID != "enable-dnc-import" {
				t.Fatalf("last step is %s, want enable-dnc-import", last.ID)
			}
			if last.Kind != orchestrator.KindGate || last.Skip != orchestrator.SkipWithReason {
				t.Errorf("kind %s skip %s, want gate/with-reason", last.Kind, last.Skip)
			}
			if !strings.Contains(last.Instructions, "Global Configuration") {
				t.Errorf("instructions %q do not say where the checkbox is (Global Configuration)", last.Instructions)
			}
			if !strings.Contains(last.Reason, "off by default") {
				t.Errorf("reason %q does not say the checkbox is off by default", last.Reason)
			}
		})
	}
}

func TestRuleISONameTypoNote(t *testing.T) {
	p := buildPOMPlan(t)
	n, ok := findFinding(p.Notes, "iso-name-typo")
	if !ok {
		t.Fatalf("notes %v, want iso-name-typo", findingIDs(p.Notes))
	}
	if n.Severity != orchestrator.SeverityNote {
		t.Errorf("severity %s, want note", n.Severity)
	}
	for _, s := range []string{"POM.03.01.01.00.004-r35452", "POM.03.01.01.01.00.003-r35434-x86_64.iso"} {
		if !strings.Contains(n.Message, s) {
			t.Errorf("note %q does not name %s", n.Message, s)
		}
	}
	// The file list wins: no step may use the typo's name.
	for _, s := range p.Steps {
		for k, v := range s.Params {
			if strings.Contains(v, "00.004-r35452") {
				t.Errorf("step %s param %s = %q uses the typo's ISO name", s.ID, k, v)
			}
		}
	}
}

func TestRuleStopUpgradeStart(t *testing.T) {
	downtime := []string{"stop-services", "upgrade-pom", "start-services"}
	for _, v := range upgradeVariants {
		t.Run(v.name, func(t *testing.T) {
			p := buildPOMPlan(t, v.mut)
			stop, si := mustStep(t, p, "stop-services")
			_, ui := mustStep(t, p, "upgrade-pom")
			start, ti := mustStep(t, p, "start-services")
			if !(si < ui && ui < ti) {
				t.Errorf("order stop-services #%d, upgrade-pom #%d, start-services #%d; want stop < upgrade < start", si, ui, ti)
			}
			for _, s := range p.Steps {
				if want := slices.Contains(downtime, s.ID); s.Downtime != want {
					t.Errorf("step %s downtime = %v, want %v", s.ID, s.Downtime, want)
				}
			}
			if p.Outage == nil || *p.Outage != (orchestrator.Outage{From: "stop-services", To: "start-services"}) {
				t.Errorf("outage %+v, want stop-services → start-services", p.Outage)
			}
			if stop.Params["services"] != "vpms" || start.Params["services"] != "vpms" {
				t.Errorf("services %q/%q, want the profile's vpms", stop.Params["services"], start.Params["services"])
			}
		})
	}
}

func TestPlanIsPure(t *testing.T) {
	in := orchestrator.PlanInput{Procedure: pomProc, Facts: goodFacts(), Profile: simProfile(),
		Options: orchestrator.Options{With: []string{"supervisor", "agent"}}}
	factsBefore := maps.Clone(in.Facts)
	a, err := orchestrator.BuildPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := orchestrator.BuildPlan(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two plans of the same input differ")
	}
	if a.Fingerprint != orchestrator.Fingerprint(a) || !strings.HasPrefix(a.Fingerprint, "sha256:") {
		t.Errorf("fingerprint %q is not the hash of the plan", a.Fingerprint)
	}
	if !maps.Equal(in.Facts, factsBefore) {
		t.Error("BuildPlan changed its input facts")
	}
	if !slices.Equal(in.Options.With, []string{"supervisor", "agent"}) {
		t.Errorf("BuildPlan reordered the caller's --with slice: %v", in.Options.With)
	}
	// The plan is a value: changing the caller's facts afterwards must not
	// change the plan (its fingerprint would no longer match).
	in.Facts[orchestrator.FactHostName] = orchestrator.Fact{Value: "changed later"}
	if a.Fingerprint != orchestrator.Fingerprint(a) {
		t.Error("the plan shares its facts map with the caller")
	}
}

func TestPlanFingerprint(t *testing.T) {
	base := orchestrator.PlanInput{Procedure: pomProc, Facts: goodFacts(), Profile: simProfile(),
		Options: orchestrator.Options{With: []string{"pdc", "help-library"}}}
	baseFP := mustPlan(t, base).Fingerprint
	tests := []struct {
		name    string
		change  func(*orchestrator.PlanInput)
		changes bool
	}{
		{"same input", func(*orchestrator.PlanInput) {}, false},
		{"--with order does not matter", func(in *orchestrator.PlanInput) { in.Options.With = []string{"help-library", "pdc"} }, false},
		{"--with order of unknown options does not matter", func(in *orchestrator.PlanInput) { in.Options.With = []string{"help-library", "y", "pdc", "x"} }, true},
		{"fact source", func(in *orchestrator.PlanInput) {
			in.Facts[orchestrator.FactHostName] = orchestrator.Fact{Value: "pom01", Source: "--assume", Assumed: true}
		}, true},
		{"fact value without effect on steps", func(in *orchestrator.PlanInput) {
			in.Facts[orchestrator.FactHostModel] = orchestrator.Fact{Value: "IBM x3650 M2", Source: "dmi"}
		}, true},
		{"POM version fact", func(in *orchestrator.PlanInput) {
			in.Facts[orchestrator.FactPOMVersion] = orchestrator.Fact{Value: "3.1.1.0.0", Source: "version.properties"}
		}, true},
		{"profile backup dir", func(in *orchestrator.PlanInput) { in.Profile.DB.BackupDir = "/srv/backups" }, true},
		{"profile password file (not in any step)", func(in *orchestrator.PlanInput) { in.Profile.DB.PasswordFile = "/root/.pgpass" }, true},
		{"--with added", func(in *orchestrator.PlanInput) { in.Options.With = append(in.Options.With, "agent-api") }, true},
		{"--with removed in part", func(in *orchestrator.PlanInput) { in.Options.With = []string{"pdc"} }, true},
		{"--with removed", func(in *orchestrator.PlanInput) { in.Options.With = nil }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Facts = maps.Clone(base.Facts)
			in.Options.With = slices.Clone(base.Options.With)
			tt.change(&in)
			fp := mustPlan(t, in).Fingerprint
			if (fp != baseFP) != tt.changes {
				t.Errorf("fingerprint changed = %v, want %v", fp != baseFP, tt.changes)
			}
		})
	}
}

func mustPlan(tb testing.TB, in orchestrator.PlanInput) orchestrator.Plan {
	tb.Helper()
	p, err := orchestrator.BuildPlan(in)
	if err != nil {
		tb.Fatalf("BuildPlan: %v", err)
	}
	return p
}

func TestPlanJSONFields(t *testing.T) {
	p := buildPOMPlan(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Plan  map[string]json.RawMessage
		Steps []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &doc.Plan); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"procedure", "fingerprint", "from", "to", "blockers", "warnings", "steps", "point_of_no_return"} {
		if _, ok := doc.Plan[k]; !ok {
			t.Errorf("plan JSON has no %q field", k)
		}
	}
	// Scripts read empty lists as lists, not null.
	if got := string(doc.Plan["blockers"]); got != "[]" {
		t.Errorf("blockers = %s, want []", got)
	}
	want := map[string]string{
		"procedure": `"pom-3.1.1-sp1-upgrade"`, "from": `"3.1.1"`, "to": `"POM.03.01.01.01.00.003"`,
		"point_of_no_return": `"upgrade-pom"`, "fingerprint": `"` + p.Fingerprint + `"`,
	}
	for k, v := range want {
		if got := string(doc.Plan[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	if err := json.Unmarshal(doc.Plan["steps"], &doc.Steps); err != nil {
		t.Fatal(err)
	}
	if len(doc.Steps) != len(p.Steps) {
		t.Fatalf("%d steps in JSON, %d in the plan", len(doc.Steps), len(p.Steps))
	}
	for i, s := range doc.Steps {
		for _, k := range []string{"id", "title", "kind", "irreversible", "downtime", "skip", "reason"} {
			if _, ok := s[k]; !ok {
				t.Errorf("step %s JSON has no %q field", p.Steps[i].ID, k)
			}
		}
		if _, ok := s["refs"]; ok != (len(p.Steps[i].Refs) > 0) {
			t.Errorf("step %s: refs in JSON %v, refs in plan %d", p.Steps[i].ID, ok, len(p.Steps[i].Refs))
		}
	}
	var up struct {
		Refs []map[string]string `json:"refs"`
	}
	if err := json.Unmarshal(mustRaw(t, doc.Steps[p.StepIndex("upgrade-pom")]), &up); err != nil {
		t.Fatal(err)
	}
	if len(up.Refs) == 0 || up.Refs[0]["document"] != "POM 3.1.1 SP1 Release Notes" {
		t.Errorf("upgrade-pom refs %v, want the release notes", up.Refs)
	}
}

func mustRaw(tb testing.TB, m map[string]json.RawMessage) []byte {
	tb.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBuildPlanUnknownProcedure(t *testing.T) {
	_, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: "pom-9.9-upgrade", Facts: goodFacts(), Profile: simProfile()})
	if !errors.Is(err, orchestrator.ErrUnknownProcedure) {
		t.Fatalf("err = %v, want ErrUnknownProcedure", err)
	}
	// The error helps: it names what was asked and what exists.
	for _, s := range []string{"pom-9.9-upgrade", pomProc} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

// A password file that group or others may read is ignored by libpq
// (pg_dump would then fail asking for a password, long after the plan):
// the plan warns, as upgrader's own check, and says what to do.
func TestPOMPasswordFileModeWarning(t *testing.T) {
	for _, tc := range []struct {
		name, mode, kind string
		want             []string // in the warning; nil: no warning
	}{
		{"0600", "0600", "postgres", nil},
		{"0400", "0400", "postgres", nil},
		{"readable by others", "0644", "postgres", []string{"/etc/upgrader/pgpass has mode 0644", "libpq ignores", "chmod 0600 /etc/upgrader/pgpass"}},
		{"readable by the group", "0640", "postgres", []string{"mode 0640", "libpq ignores"}},
		{"executable by others", "0601", "postgres", []string{"mode 0601"}},
		{"unknown", "", "postgres", nil},
		{"oracle, readable by others", "0644", "oracle", []string{"mode 0644", "chmod 0600 /etc/upgrader/pgpass"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := buildPOMPlan(t, setFact(orchestrator.FactDBPasswordFileMode, tc.mode),
				func(_ orchestrator.Facts, prof *profile.Profile) { prof.DB.Kind = tc.kind })
			i := slices.IndexFunc(p.Warnings, func(f orchestrator.Finding) bool { return f.ID == "db-password-file-mode" })
			if tc.want == nil {
				if i >= 0 {
					t.Fatalf("warning for mode %q: %+v", tc.mode, p.Warnings[i])
				}
				return
			}
			if i < 0 {
				t.Fatalf("no db-password-file-mode warning for mode %s: %v", tc.mode, findingIDs(p.Warnings))
			}
			w := p.Warnings[i]
			for _, s := range tc.want {
				if !strings.Contains(w.Message, s) {
					t.Errorf("warning %q lacks %q", w.Message, s)
				}
			}
			if len(w.Refs) != 0 || w.Source != orchestrator.SourceUpgrader || w.Rationale == "" || w.Severity != orchestrator.SeverityWarning {
				t.Errorf("warning %+v: want upgrader's own (no vendor reference, a rationale) and severity warning", w)
			}
			if tc.kind == "oracle" && strings.Contains(w.Message, "libpq") {
				t.Errorf("an Oracle site's warning speaks of libpq: %s", w.Message)
			}
		})
	}
	if _, err := orchestrator.ParseAssumptions([]string{"db.password_file.mode=0644"}); err != nil {
		t.Errorf("--assume db.password_file.mode=0644: %v", err)
	}
	for _, bad := range []string{"644x", "0999", "-1", "01777777"} {
		if _, err := orchestrator.ParseAssumptions([]string{"db.password_file.mode=" + bad}); err == nil {
			t.Errorf("--assume db.password_file.mode=%s accepted", bad)
		}
	}
}
