package orchestrator_test

// The rules of DOMAIN.md read exactly as the seeds say them: nothing
// stricter than the vendor, nothing of upgrader's presented as the
// vendor's, and every reading of an ambiguous text said in the plan.
// Fact keys are written out here as an operator types them after --assume.

import (
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// allFindings are a plan's findings of every severity.
func allFindings(p orchestrator.Plan) []orchestrator.Finding {
	return slices.Concat(p.Blockers, p.Warnings, p.Notes)
}

// ours fails unless f is upgrader's own, with a rationale and no vendor
// reference.
func ours(tb testing.TB, what string, src orchestrator.Source, rationale string, refs []orchestrator.Ref) {
	tb.Helper()
	if src != orchestrator.SourceUpgrader || rationale == "" || len(refs) != 0 {
		tb.Errorf("%s: source %q rationale %q refs %+v, want upgrader's own, with its rationale and no vendor reference", what, src, rationale, refs)
	}
}

// cites fails unless a vendor item cites the section of the POM release notes.
func cites(tb testing.TB, what string, src orchestrator.Source, refs []orchestrator.Ref, section string) {
	tb.Helper()
	if src != orchestrator.SourceVendor || !slices.ContainsFunc(refs, func(r orchestrator.Ref) bool {
		return r.Document == pomDoc && r.Section == section
	}) {
		tb.Errorf("%s: source %q refs %+v, want the vendor's citing %q", what, src, refs, section)
	}
}

func epFacts(version, patch string) func(orchestrator.Facts, *profile.Profile) {
	return func(f orchestrator.Facts, p *profile.Profile) {
		setFact(orchestrator.FactEPVersion, version)(f, p)
		setFact(orchestrator.FactEPMPPPatch, patch)(f, p)
	}
}

// TestRuleEPPatchExactPerEPRelease: EP 7.2.0 needs 7.2.0.0.1202, EP 7.2.1
// needs 7.2.1.0.0622; a patch of another EP release does not count; EP
// releases the document does not name get the compatibility matrix, not a
// requirement it never states.
func TestRuleEPPatchExactPerEPRelease(t *testing.T) {
	tests := []struct {
		name, ep, patch string
		missing         string // the patch file the blocker names; "" no blocker
		notCovered      bool
		later           bool
	}{
		{"7.2.0 with its patch", "7.2.0.0.0318", "7.2.0.0.1202", "", false, false},
		{"7.2.0 with only the 7.2.1 patch", "7.2.0.0.0318", "7.2.1.0.0622", "7.2.0.0.1202.tar.gz", false, false},
		{"7.2.0 with a later 7.2.0 patch", "7.2.0.0.0318", "7.2.0.0.1300", "", false, true},
		{"7.2.1 with its patch", "7.2.1.0.0100", "7.2.1.0.0622", "", false, false},
		{"7.2.1 with a 7.3 patch", "7.2.1.0.0100", "7.3.0.0.0100", "7.2.1.0.0622.tar.gz", false, false},
		{"7.2.1 with an older 7.2.1 patch", "7.2.1.0.0100", "7.2.1.0.0500", "7.2.1.0.0622.tar.gz", false, false},
		{"7.2.2 is not named", "7.2.2.0.0100", "", "", true, false},
		{"7.2.3 is not named", "7.2.3", "7.2.1.0.0622", "", true, false},
		{"7.3 is not named", "7.3.0.0.0100", "", "", true, false},
		{"8.0 is not named", "8.0", "", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildPOMPlan(t, epFacts(tt.ep, tt.patch))
			b, missing := findFinding(p.Blockers, "ep-mpp-patch-missing")
			if missing != (tt.missing != "") {
				t.Fatalf("EP %s with patch %q: ep-mpp-patch-missing present=%v, want %v (blockers %v)",
					tt.ep, tt.patch, missing, tt.missing != "", findingIDs(p.Blockers))
			}
			if missing && !strings.Contains(b.Message, tt.missing) {
				t.Errorf("blocker %q does not name %s", b.Message, tt.missing)
			}
			w, notCovered := findFinding(p.Warnings, "ep-version-not-covered")
			if notCovered != tt.notCovered {
				t.Errorf("ep-version-not-covered present=%v, want %v", notCovered, tt.notCovered)
			}
			if notCovered {
				cites(t, w.ID, w.Source, w.Refs, "Product compatibility")
				if !strings.Contains(w.Message, "compatibility matrix") {
					t.Errorf("warning %q does not send the reader to the compatibility matrix", w.Message)
				}
			}
			n, later := findFinding(p.Notes, "ep-mpp-patch-later")
			if later != tt.later {
				t.Errorf("ep-mpp-patch-later present=%v, want %v", later, tt.later)
			}
			if later {
				ours(t, n.ID, n.Source, n.Rationale, n.Refs)
			}
		})
	}
}

// TestRulePOMOptionsInEveryProcedure: PDC and the help library belong to
// the upgrade as to the install; an option no POM procedure offers is an
// error in both.
func TestRulePOMOptionsInEveryProcedure(t *testing.T) {
	up := mustPlan(t, orchestrator.PlanInput{Procedure: pomProc, Facts: goodFacts(), Profile: simProfile(),
		Options: with("help-library", "pdc")})
	want := []string{"verify-media", "backup-db", "mpp-config-mpp1", "mpp-config-mpp2", "stop-services", "upgrade-pom",
		"start-services", "pdc", "help-library", "enable-dnc-import"}
	if got := stepIDs(up); !slices.Equal(got, want) {
		t.Fatalf("upgrade --with help-library,pdc: steps\n got %v\nwant %v", got, want)
	}
	pdc, _ := mustStep(t, up, "pdc")
	cites(t, "upgrade's pdc", pdc.Source, pdc.Refs, "Upgrading to release POM 3.1.1 SP1")
	hl, _ := mustStep(t, up, "help-library")
	cites(t, "upgrade's help-library", hl.Source, hl.Refs, "Installing the release")
	if hl.Params["zip"] != "/media/UsingPOM.zip" || hl.Params["services"] != "vpms" || !hl.Downtime {
		t.Errorf("help-library params %v downtime %v", hl.Params, hl.Downtime)
	}
	for _, proc := range []string{pomProc, pomInstallProc} {
		facts := goodFacts()
		if proc == pomInstallProc {
			delete(facts, orchestrator.FactPOMVersion)
		}
		p := mustPlan(t, orchestrator.PlanInput{Procedure: proc, Facts: facts, Profile: simProfile(), Options: with("bogus", "pdc")})
		b, ok := findFinding(p.Blockers, "unknown-option")
		if !ok || !strings.Contains(b.Message, "--with bogus") {
			t.Errorf("%s --with bogus: blockers %v (%q), want unknown-option naming it", proc, findingIDs(p.Blockers), b.Message)
			continue
		}
		ours(t, proc+" unknown-option", b.Source, b.Rationale, b.Refs)
	}
}

// TestRuleMPPSizesOnAllMPPs: "on ALL MPPs": a site staying on EP 7.2 with
// no MPP listed is told so; one moving to 7.2.1 is told what that takes;
// an MPP on another server is changed there, not at a local path that
// only looks the same.
func TestRuleMPPSizesOnAllMPPs(t *testing.T) {
	noMPPs := func(_ orchestrator.Facts, p *profile.Profile) { p.MPPs = nil }
	p := buildPOMPlan(t, noMPPs)
	b, ok := findFinding(p.Blockers, "mpp-none-listed")
	if !ok {
		t.Fatalf("EP 7.2 staying, no MPPs: blockers %v, want mpp-none-listed", findingIDs(p.Blockers))
	}
	cites(t, b.ID, b.Source, b.Refs, "Required patches")
	if b.Skip != orchestrator.SkipWithReason || !strings.Contains(b.Message, "ALL MPPs") {
		t.Errorf("mpp-none-listed skip %s message %q, want a with-reason blocker saying ALL MPPs", b.Skip, b.Message)
	}
	facts, prof := goodFacts(), simProfile()
	prof.MPPs = nil
	over := mustPlan(t, orchestrator.PlanInput{Procedure: pomProc, Facts: facts, Profile: prof,
		Options: orchestrator.Options{Overrides: map[string]string{"mpp-none-listed": "set by hand on both MPPs"}}})
	runnable(t, over)

	moving := buildPOMPlan(t, func(_ orchestrator.Facts, p *profile.Profile) { p.EP.MovingTo721 = true })
	w, ok := findFinding(moving.Warnings, "ep-moving-to-7.2.1")
	if !ok {
		t.Fatalf("moving to 7.2.1: warnings %v, want ep-moving-to-7.2.1", findingIDs(moving.Warnings))
	}
	cites(t, w.ID, w.Source, w.Refs, "Required patches")
	for _, s := range []string{"7.2.1.0.0622", "AAEP0000104"} {
		if !strings.Contains(w.Message, s) {
			t.Errorf("warning %q does not name %s", w.Message, s)
		}
	}
	for _, s := range moving.Steps {
		if strings.HasPrefix(s.ID, "mpp-config-") {
			t.Errorf("moving to 7.2.1: step %s", s.ID)
		}
	}

	// An MPP on its own server is changed over SSH once it was reached
	// and its file read; the plan says where each MPP is.
	remote := buildPOMPlan(t, func(f orchestrator.Facts, p *profile.Profile) {
		p.MPPs[1].Host = "mpp2.site.example"
		p.SSH.User, p.MPPs[1].Port = "avaya", 2222
		f[orchestrator.MPPFact("mpp2", orchestrator.MPPReachable)] = orchestrator.Fact{Value: "true", Source: "ssh"}
	})
	runnable(t, remote)
	local, _ := mustStep(t, remote, "mpp-config-mpp1")
	other, _ := mustStep(t, remote, "mpp-config-mpp2")
	if local.Kind != orchestrator.KindAuto || local.Action != "mpp-config" || local.Params["host"] != "" {
		t.Errorf("the local MPP's step is %s/%s host %q, want auto mpp-config here", local.Kind, local.Action, local.Params["host"])
	}
	if other.Kind != orchestrator.KindAuto || other.Action != "mpp-config" || other.Params["host"] != "mpp2.site.example" ||
		other.Params["port"] != "2222" || other.Params["user"] != "avaya" || !strings.Contains(other.Title, "avaya@mpp2.site.example:2222") {
		t.Errorf("the other server's MPP step: %s/%s %q params %v, want mpp-config over SSH as avaya@mpp2.site.example:2222",
			other.Kind, other.Action, other.Title, other.Params)
	}
	cites(t, other.ID, other.Source, other.Refs, "Required patches")
	n, ok := findFinding(remote.Notes, "mpp-where")
	if !ok || !strings.Contains(n.Message, "lists 2") || !strings.Contains(n.Message, "mpp1 on this server") ||
		!strings.Contains(n.Message, "mpp2 on avaya@mpp2.site.example:2222 (over SSH)") {
		t.Fatalf("notes %v (%q), want mpp-where with each MPP where it is", findingIDs(remote.Notes), n.Message)
	}
	ours(t, n.ID, n.Source, n.Rationale, n.Refs)

	// One that could not be reached (or not checked) holds the plan,
	// naming it and what to do; overridden, its change is the operator's.
	for _, tt := range []struct {
		name, reachable, want string
	}{{"unreachable", "false", "connection refused"}, {"not checked", "", "not checked"}} {
		down := func(f orchestrator.Facts, p *profile.Profile) {
			p.MPPs[1].Host = "mpp2.site.example"
			if tt.reachable != "" {
				f[orchestrator.MPPFact("mpp2", orchestrator.MPPReachable)] = orchestrator.Fact{Value: tt.reachable, Source: "ssh"}
				f[orchestrator.MPPFact("mpp2", orchestrator.MPPError)] = orchestrator.Fact{Value: "ssh root@mpp2.site.example:22: connection refused", Source: "ssh"}
			}
		}
		p := buildPOMPlan(t, down)
		b, ok := findFinding(p.Blockers, "mpp-unreachable-mpp2")
		if !ok || !strings.Contains(b.Message, "MPP mpp2 (root@mpp2.site.example:22)") || !strings.Contains(b.Message, tt.want) ||
			!strings.Contains(b.Message, "--override mpp-unreachable-mpp2=REASON") || b.Skip != orchestrator.SkipWithReason {
			t.Fatalf("%s: blockers %v (%q), want mpp-unreachable-mpp2 naming the MPP, where, why and the way through", tt.name, findingIDs(p.Blockers), b.Message)
		}
		ours(t, b.ID, b.Source, b.Rationale, b.Refs)
		facts, prof := goodFacts(), simProfile()
		down(facts, &prof)
		by := mustPlan(t, orchestrator.PlanInput{Procedure: pomProc, Facts: facts, Profile: prof,
			Options: orchestrator.Options{Overrides: map[string]string{"mpp-unreachable-mpp2": "changed by hand by the EP team"}}})
		runnable(t, by)
		gate, _ := mustStep(t, by, "mpp-config-mpp2")
		if gate.Kind != orchestrator.KindGate || !strings.Contains(gate.Instructions, "mpp2.site.example") ||
			!strings.Contains(gate.Instructions, "33554432") || !strings.Contains(gate.Instructions, "262144") {
			t.Errorf("%s, overridden: %s %q, want the operator's gate there", tt.name, gate.Kind, gate.Instructions)
		}
	}
	// A file that is not there is said before the window.
	missing := buildPOMPlan(t, func(f orchestrator.Facts, _ *profile.Profile) {
		f[orchestrator.MPPFact("mpp1", orchestrator.MPPConfigError)] = orchestrator.Fact{Value: "open /opt/x: no such file", Source: "t"}
	})
	if b, ok := findFinding(missing.Blockers, "mpp-config-unreadable-mpp1"); !ok || !strings.Contains(b.Message, "no such file") {
		t.Errorf("blockers %v, want mpp-config-unreadable-mpp1", findingIDs(missing.Blockers))
	}
}

// TestRuleMPPRestartIsOursAndOptIn: the release notes do not say whether
// an MPP restarts after the change: the plan says so, and --with
// mpp-restart adds upgrader's own gate after each MPP's change.
func TestRuleMPPRestartIsOursAndOptIn(t *testing.T) {
	p := buildPOMPlan(t)
	n, ok := findFinding(p.Notes, "mpp-restart-unstated")
	if !ok || !strings.Contains(n.Message, "--with mpp-restart") {
		t.Fatalf("notes %v, want mpp-restart-unstated", findingIDs(p.Notes))
	}
	ours(t, n.ID, n.Source, n.Rationale, n.Refs)
	facts, prof := goodFacts(), simProfile()
	with := mustPlan(t, orchestrator.PlanInput{Procedure: pomProc, Facts: facts, Profile: prof,
		Options: orchestrator.Options{With: []string{"mpp-restart"}}})
	runnable(t, with)
	ids := stepIDs(with)
	i, j := slices.Index(ids, "mpp-config-mpp1"), slices.Index(ids, "mpp-config-mpp2")
	if i < 0 || j < 0 || ids[i+1] != "mpp-restart-mpp1" || ids[j+1] != "mpp-restart-mpp2" {
		t.Fatalf("steps %v, want each MPP's restart gate right after its change", ids)
	}
	g, _ := mustStep(t, with, "mpp-restart-mpp2")
	if g.Kind != orchestrator.KindGate || g.Skip != orchestrator.SkipWithReason {
		t.Errorf("restart gate %s skip %s", g.Kind, g.Skip)
	}
	ours(t, g.ID, g.Source, g.Rationale, g.Refs)
}

// TestRuleMPPPatchOnEachMPP: "Required patches" is each MPP's: a patch
// read on an MPP is the one checked; an MPP without a version source has
// the profile's word, and the plan says so.
func TestRuleMPPPatchOnEachMPP(t *testing.T) {
	read := func(patch1, patch2 string) func(orchestrator.Facts, *profile.Profile) {
		return func(f orchestrator.Facts, p *profile.Profile) {
			for i, patch := range []string{patch1, patch2} {
				p.MPPs[i].Version = profile.VersionSource{File: "/opt/mpp.version", Pattern: "(.+)"}
				f[orchestrator.MPPFact(p.MPPs[i].Name, orchestrator.MPPPatch)] = orchestrator.Fact{Value: patch, Source: "t"}
			}
		}
	}
	ok := buildPOMPlan(t, read("7.2.0.0.1202", "7.2.0.0.1202"))
	runnable(t, ok)
	if _, found := findFinding(ok.Notes, "mpp-patch-from-profile"); found {
		t.Error("both patches read on the MPPs, yet the plan says the profile's")
	}
	// The profile says 1202, the MPP has an older one: the MPP decides.
	old := buildPOMPlan(t, read("7.2.0.0.1202", "7.2.0.0.1100"))
	b, found := findFinding(old.Blockers, "ep-mpp-patch-missing")
	if !found || !strings.Contains(b.Message, "MPP mpp2 (this server): 7.2.0.0.1100 (read on the MPP)") || strings.Contains(b.Message, "mpp1") {
		t.Fatalf("blockers %v (%q), want ep-mpp-patch-missing naming mpp2 and what was read on it", findingIDs(old.Blockers), b.Message)
	}
	cites(t, b.ID, b.Source, b.Refs, "Required patches")
	later := buildPOMPlan(t, read("7.2.0.0.1300", "7.2.0.0.1202"))
	if n, found := findFinding(later.Notes, "ep-mpp-patch-later"); !found || !strings.Contains(n.Message, "mpp1") {
		t.Errorf("notes %v, want ep-mpp-patch-later naming mpp1", findingIDs(later.Notes))
	}
	// Not read: the profile's word, said as such.
	p := buildPOMPlan(t)
	n, found := findFinding(p.Notes, "mpp-patch-from-profile")
	if !found || !strings.Contains(n.Message, "mpp1, mpp2") || !strings.Contains(n.Message, "not read from the MPP") {
		t.Fatalf("notes %v (%q), want mpp-patch-from-profile", findingIDs(p.Notes), n.Message)
	}
	ours(t, n.ID, n.Source, n.Rationale, n.Refs)
	// A version source that could not be read is not taken on trust.
	bad := buildPOMPlan(t, func(f orchestrator.Facts, p *profile.Profile) {
		p.MPPs[0].Version = profile.VersionSource{File: "/opt/mpp.version", Pattern: "(.+)"}
		f[orchestrator.MPPFact("mpp1", orchestrator.MPPPatchError)] = orchestrator.Fact{Value: "/opt/mpp.version: no such file", Source: "t"}
	})
	if b, found := findFinding(bad.Blockers, "mpp-patch-unreadable-mpp1"); !found || !strings.Contains(b.Message, "no such file") {
		t.Errorf("blockers %v, want mpp-patch-unreadable-mpp1", findingIDs(bad.Blockers))
	}
}

// TestRuleBackupBeforeInstallWhenADatabaseExists: "installation or upgrade
// modifies schema": the install backs an existing POM database up first,
// says when there is none, and warns when it cannot tell.
func TestRuleBackupBeforeInstallWhenADatabaseExists(t *testing.T) {
	tests := []struct {
		exists  string // "" no fact
		steps   []string
		finding string
	}{
		{"true", []string{"verify-media", "backup-db", "mpp-config-mpp1", "mpp-config-mpp2", "install-pom", "enable-dnc-import"}, ""},
		{"false", []string{"verify-media", "mpp-config-mpp1", "mpp-config-mpp2", "install-pom", "enable-dnc-import"}, "db-none"},
		{"unknown", []string{"verify-media", "mpp-config-mpp1", "mpp-config-mpp2", "install-pom", "enable-dnc-import"}, "db-existence-unknown"},
		{"", []string{"verify-media", "mpp-config-mpp1", "mpp-config-mpp2", "install-pom", "enable-dnc-import"}, "db-existence-unknown"},
	}
	for _, tt := range tests {
		t.Run("db.exists="+tt.exists, func(t *testing.T) {
			p := buildPOMInstall(t, orchestrator.Options{}, setFact("db.exists", tt.exists))
			if got := stepIDs(p); !slices.Equal(got, tt.steps) {
				t.Fatalf("steps\n got %v\nwant %v", got, tt.steps)
			}
			inst, _ := mustStep(t, p, "install-pom")
			if wantBackup := tt.exists == "true"; slices.Contains(inst.Requires, "db-backup") != wantBackup {
				t.Errorf("install-pom requires %v, db-backup wanted %v", inst.Requires, wantBackup)
			}
			if tt.exists == "true" {
				bk, _ := mustStep(t, p, "backup-db")
				cites(t, "backup-db", bk.Source, bk.Refs, "Backing up the software")
				if bk.Skip != orchestrator.SkipNever || !slices.Contains(bk.Produces, "db-backup") {
					t.Errorf("backup-db skip %s produces %v", bk.Skip, bk.Produces)
				}
				return
			}
			f, ok := findFinding(allFindings(p), tt.finding)
			if !ok || !strings.Contains(f.Message, "database pom") {
				t.Fatalf("findings %v (%q), want %s naming the database", findingIDs(allFindings(p)), f.Message, tt.finding)
			}
			cites(t, f.ID, f.Source, f.Refs, "Backing up the software")
		})
	}
	// The upgrade's database must be there: one the host says is not
	// there is a profile pointing elsewhere.
	p := buildPOMPlan(t, setFact("db.exists", "false"))
	b, ok := findFinding(p.Blockers, "db-not-found")
	if !ok {
		t.Fatalf("upgrade with db.exists=false: blockers %v, want db-not-found", findingIDs(p.Blockers))
	}
	ours(t, b.ID, b.Source, b.Rationale, b.Refs)
	for _, v := range []string{"true", "unknown"} {
		if p := buildPOMPlan(t, setFact("db.exists", v)); len(p.Blockers) != 0 {
			t.Errorf("upgrade with db.exists=%s: blockers %v", v, findingIDs(p.Blockers))
		}
	}
	if _, err := orchestrator.ParseAssumptions([]string{"db.exists=maybe"}); err == nil {
		t.Error("--assume db.exists=maybe accepted")
	}
}

// TestRuleMediaFileListSizes: the file list gives every file's size; the
// signature files and the other listed files, where present, are checked
// against it, and the help library's zip must be there when asked for.
func TestRuleMediaFileListSizes(t *testing.T) {
	tests := []struct {
		name    string
		mut     []func(orchestrator.Facts, *profile.Profile)
		opts    orchestrator.Options
		warning string
		blocker string
	}{
		{"the list's sizes", []func(orchestrator.Facts, *profile.Profile){setFact("media.iso.crt.size", "5459"),
			setFact("media.iso.sig.size", "256"), setFact("media.file.POMPDC_311.zip", "1500914"),
			setFact("media.file.POM3111Patch02.zip", "12306532")}, orchestrator.Options{}, "", ""},
		{"a certificate of another size", []func(orchestrator.Facts, *profile.Profile){setFact("media.iso.crt.size", "1318")},
			orchestrator.Options{}, "media-crt-size", ""},
		{"a signature of another size", []func(orchestrator.Facts, *profile.Profile){setFact("media.iso.sig.size", "512")},
			orchestrator.Options{}, "media-sig-size", ""},
		{"a short PDC zip", []func(orchestrator.Facts, *profile.Profile){setFact("media.file.POMPDC_311.zip", "1000000")},
			orchestrator.Options{}, "media-file-size-POMPDC_311.zip", ""},
		{"a listed file absent", []func(orchestrator.Facts, *profile.Profile){setFact("media.file.POMEventSDK.zip", "-1")},
			orchestrator.Options{}, "", ""},
		{"help library asked for, zip absent", []func(orchestrator.Facts, *profile.Profile){setFact("media.file.UsingPOM.zip", "-1")},
			with("help-library"), "", "help-library-zip-missing"},
		{"help library asked for, zip there", []func(orchestrator.Facts, *profile.Profile){setFact("media.file.UsingPOM.zip", "4096")},
			with("help-library"), "", ""},
		{"zip absent, help library not asked for", []func(orchestrator.Facts, *profile.Profile){setFact("media.file.UsingPOM.zip", "-1")},
			orchestrator.Options{}, "", ""},
	}
	for _, tt := range tests {
		for _, proc := range []string{pomProc, pomInstallProc} {
			t.Run(proc+"/"+tt.name, func(t *testing.T) {
				facts, prof := goodFacts(), simProfile()
				if proc == pomInstallProc {
					delete(facts, orchestrator.FactPOMVersion)
				}
				for _, m := range tt.mut {
					m(facts, &prof)
				}
				p := mustPlan(t, orchestrator.PlanInput{Procedure: proc, Facts: facts, Profile: prof, Options: tt.opts})
				if got := findingIDs(p.Blockers); (tt.blocker == "" && len(got) != 0) || (tt.blocker != "" && !slices.Equal(got, []string{tt.blocker})) {
					t.Fatalf("blockers %v, want %q", got, tt.blocker)
				}
				for _, w := range p.Warnings {
					if strings.HasPrefix(w.ID, "media-") && w.ID != tt.warning {
						t.Errorf("unexpected warning %s: %s", w.ID, w.Message)
					}
				}
				if tt.warning != "" {
					w, ok := findFinding(p.Warnings, tt.warning)
					if !ok {
						t.Fatalf("warnings %v, want %s", findingIDs(p.Warnings), tt.warning)
					}
					cites(t, w.ID, w.Source, w.Refs, "File list – Proactive Outreach Manager 3.1.1 SP1 Software")
				}
				if tt.blocker != "" {
					b, _ := findFinding(p.Blockers, tt.blocker)
					ours(t, b.ID, b.Source, b.Rationale, b.Refs)
					if !strings.Contains(b.Message, "/media/UsingPOM.zip") || !strings.Contains(b.Message, "101051680") {
						t.Errorf("blocker %q does not say where the zip goes and where it comes from", b.Message)
					}
				}
			})
		}
	}
}

// TestRuleCallbackExpiringAdvisory: the renamed, inverted label is said to
// whoever checks campaigns after the upgrade, citing its section.
func TestRuleCallbackExpiringAdvisory(t *testing.T) {
	p := buildPOMPlan(t)
	w, ok := findFinding(p.Warnings, "callback-expiring-label")
	if !ok {
		t.Fatalf("warnings %v, want callback-expiring-label", findingIDs(p.Warnings))
	}
	cites(t, w.ID, w.Source, w.Refs, `Change "Callback never expiring" to avoid double negation`)
	for _, s := range []string{`"Is Callback Never Expiring"`, `"Is Callback Expiring"`, "opposite"} {
		if !strings.Contains(w.Message, s) {
			t.Errorf("warning %q does not say %s", w.Message, s)
		}
	}
}

// TestRuleGuidesCited: where a section sends the reader to a guide, the
// step cites it with its document number, for --explain.
func TestRuleGuidesCited(t *testing.T) {
	up := mustPlan(t, orchestrator.PlanInput{Procedure: pomProc, Facts: goodFacts(), Profile: simProfile(), Options: with("pdc", "help-library")})
	inst := buildPOMInstall(t, orchestrator.Options{})
	guides := func(s orchestrator.StepSpec) string {
		var g []string
		for _, r := range s.Refs {
			g = append(g, r.Guide)
		}
		return strings.Join(g, " | ")
	}
	for _, tt := range []struct {
		p    orchestrator.Plan
		step string
		want []string
	}{
		{up, "backup-db", []string{"101051678"}},
		{up, "upgrade-pom", []string{"Upgrading Proactive Outreach Manager 3.1.1 (101051678)", "Troubleshooting Proactive Outreach Manager 3.1.1 (101051676)"}},
		{up, "pdc", []string{"Developer Guide for Proactive Outreach Manager 3.1.1 (101051708)"}},
		{up, "help-library", []string{"101051680"}},
		{inst, "install-pom", []string{"Implementing Proactive Outreach Manager 3.1.1 (101051669)", "101051676"}},
	} {
		s, _ := mustStep(t, tt.p, tt.step)
		for _, w := range tt.want {
			if !strings.Contains(guides(s), w) {
				t.Errorf("%s %s cites guides %q, want %s", tt.p.Procedure, tt.step, guides(s), w)
			}
		}
	}
}

// TestRuleOursIsLabelledOurs: what upgrader adds of its own judgement is
// marked as upgrader's, with its reason, and cites no release note.
func TestRuleOursIsLabelledOurs(t *testing.T) {
	up := buildPOMPlan(t)
	for _, id := range []string{"stop-services", "start-services"} {
		s, _ := mustStep(t, up, id)
		ours(t, id, s.Source, s.Rationale, s.Refs)
	}
	upg, _ := mustStep(t, up, "upgrade-pom")
	for _, n := range upg.Notes {
		if strings.Contains(n, "reinstalled") && !strings.Contains(n, "upgrader's own") {
			t.Errorf("upgrade-pom note %q gives recovery advice the release notes do not, without saying it is upgrader's", n)
		}
	}
	// "DB alarm" is the product's alarm (OUTREACH-9570, OUTREACH-11880),
	// never the name of a check of upgrader's.
	for _, f := range allFindings(up) {
		if f.Source == orchestrator.SourceUpgrader && strings.Contains(f.Message+f.Rationale, "DB alarm") {
			t.Errorf("upgrader's own %s speaks of the DB alarm: %s", f.ID, f.Message)
		}
	}
	k, _ := findFinding(up.Warnings, "OUTREACH-11880")
	cites(t, k.ID, k.Source, k.Refs, "Known issues and workarounds")
	if strings.Contains(k.Message, "watch") {
		t.Errorf("OUTREACH-11880 %q adds advice to a known issue the notes give no workaround for", k.Message)
	}
	for _, p := range []orchestrator.Plan{
		buildPOMPlan(t, setFact(orchestrator.FactFreeInstall, "1000")),
		buildPOMPlan(t, setFact(orchestrator.FactDBSize, "1000"), setFact(orchestrator.FactFreeBackup, "1000")),
		buildPC(t, pcUpgradeProc, upgradeFacts("4.1", orchestrator.FactFreeInstall, "1000"), orchestrator.Options{}),
	} {
		for _, id := range []string{"install-space", "backup-space"} {
			if b, ok := findFinding(p.Blockers, id); ok {
				ours(t, p.Procedure+" "+id, b.Source, b.Rationale, b.Refs)
				if !strings.Contains(b.Message, "upgrader's margin") {
					t.Errorf("%s %q does not say the margin is upgrader's", id, b.Message)
				}
			}
		}
	}
	for _, p := range []orchestrator.Plan{buildPC(t, pcInstallProc, bareFacts(), orchestrator.Options{}),
		buildPC(t, pcMigrateProc, migrateFacts("4.1"), orchestrator.Options{})} {
		rb, _ := mustStep(t, p, "linux-es-reboot")
		ours(t, p.Procedure+" linux-es-reboot", rb.Source, rb.Rationale, rb.Refs)
	}
	// The document does not forbid migrating a 4.1.2 server: upgrader's
	// own caution, which an override lets through as the document writes it.
	mig := buildPC(t, pcMigrateProc, migrateFacts("4.1.2"), orchestrator.Options{})
	b, ok := findFinding(mig.Blockers, "pc-migration-from-4.1.2")
	if !ok || b.Skip != orchestrator.SkipWithReason {
		t.Fatalf("migration from 4.1.2: blockers %v (skip %s), want pc-migration-from-4.1.2, with-reason", findingIDs(mig.Blockers), b.Skip)
	}
	ours(t, b.ID, b.Source, b.Rationale, b.Refs)
	over := buildPC(t, pcMigrateProc, migrateFacts("4.1.2"), orchestrator.Options{Overrides: map[string]string{"pc-migration-from-4.1.2": "new hardware"}})
	runnable(t, over)
	if got, want := stepIDs(over), []string{"backup-source", "linux-es", "linux-es-reboot", "restore-backup", "dialer-4.1.2"}; !slices.Equal(got, want) {
		t.Errorf("migration from 4.1.2, overridden: steps %v, want %v", got, want)
	}
	// A version upgrader cannot read is its own refusal to guess.
	for _, p := range []orchestrator.Plan{buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, "")),
		buildPC(t, pcUpgradeProc, upgradeFacts("four"), orchestrator.Options{})} {
		for _, b := range p.Blockers {
			ours(t, p.Procedure+" "+b.ID, b.Source, b.Rationale, b.Refs)
		}
	}
}

// TestRuleAmbiguitiesSaidInThePlan: where the documents leave a reading
// open, the plan says which one upgrader takes, as upgrader's own.
func TestRuleAmbiguitiesSaidInThePlan(t *testing.T) {
	note := func(t *testing.T, p orchestrator.Plan, id string, says ...string) {
		t.Helper()
		n, ok := findFinding(p.Notes, id)
		if !ok {
			t.Errorf("%s from %s: notes %v, want %s", p.Procedure, p.From, findingIDs(p.Notes), id)
			return
		}
		ours(t, id, n.Source, n.Rationale, n.Refs)
		for _, s := range says {
			if !strings.Contains(n.Message, s) {
				t.Errorf("%s %q does not say %q", id, n.Message, s)
			}
		}
	}
	t.Run("PC builds count as their release", func(t *testing.T) {
		p := buildPC(t, pcUpgradeProc, upgradeFacts("4.1.0.5"), orchestrator.Options{})
		runnable(t, p)
		mustStep(t, p, "database-4.1.2") // from 4.1: the database step is in
		note(t, p, "pc-version-read-as-release", "4.1.0.5", "4.1.0")
		p = buildPC(t, pcUpgradeProc, upgradeFacts("4.1.1.3"), orchestrator.Options{})
		runnable(t, p)
		if p.StepIndex("database-4.1.2") >= 0 {
			t.Errorf("4.1.1.3: steps %v, the database step is only from 4.1", stepIDs(p))
		}
		note(t, p, "pc-version-read-as-release", "4.1.1.3")
		p = buildPC(t, pcMigrateProc, migrateFacts("4.1.1.3"), orchestrator.Options{})
		runnable(t, p)
		p = buildPC(t, pcUpgradeProc, upgradeFacts("4.1.2.1"), orchestrator.Options{})
		if !p.NothingToDo {
			t.Errorf("4.1.2.1: nothing to do %v, blockers %v", p.NothingToDo, findingIDs(p.Blockers))
		}
		note(t, p, "pc-version-read-as-release", "4.1.2.1")
		if p := buildPC(t, pcUpgradeProc, upgradeFacts("4.1"), orchestrator.Options{}); slices.Contains(findingIDs(p.Notes), "pc-version-read-as-release") {
			t.Error("4.1 is read as itself, yet the plan notes a reading")
		}
	})
	t.Run("the migration's models match exactly", func(t *testing.T) {
		for model, ok := range map[string]bool{"ProLiant DL385 G5": true, "proliant  dl385 g2": true, "HP ProLiant DL385 G5": true,
			"ProLiant DL385 G5p": false, "ProLiant DL385 G2 (refurbished)": false, "ProLiant DL385 G50": false} {
			p := buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactHostModel, model), orchestrator.Options{})
			if _, blocked := findFinding(p.Blockers, "migrate-source-model"); blocked == ok {
				t.Errorf("model %q: migrate-source-model present=%v, want %v", model, blocked, !ok)
			}
			note(t, p, "host-model-match", "exactly", "ProLiant DL385 G2", "System x3650 M2")
		}
		if orchestrator.IsMigrationTarget("System x3650 M2 Express") || !orchestrator.IsMigrationTarget("IBM System x3650 M2 -[7947AC1]-") {
			t.Error("the target model is not matched exactly")
		}
	})
	t.Run("where PC components are installed", func(t *testing.T) {
		p := buildPC(t, pcUpgradeProc, upgradeFacts("4.1", orchestrator.FactComponents, "agent"), orchestrator.Options{})
		note(t, p, "pc-components-server", "this server")
		p = buildPC(t, pcMigrateProc, migrateFacts("4.1", orchestrator.FactComponents, "agent"), orchestrator.Options{})
		note(t, p, "pc-components-server", "the new server")
		if p := buildPC(t, pcUpgradeProc, upgradeFacts("4.1"), orchestrator.Options{}); slices.Contains(findingIDs(p.Notes), "pc-components-server") {
			t.Error("no component in the plan, yet a note about where components go")
		}
	})
	t.Run("the help library's owner and mode", func(t *testing.T) {
		p := buildPOMInstall(t, with("help-library"))
		note(t, p, "help-library-owner-mode", "every file and folder", "avayavp:avayavpgroup", "755")
	})
	t.Run("a later release than the target", func(t *testing.T) {
		p := buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, "3.1.2"))
		if !p.NothingToDo {
			t.Errorf("POM 3.1.2: nothing to do %v", p.NothingToDo)
		}
		note(t, p, "pom-newer-than-target", "3.1.2")
		if p := buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, "POM.03.01.01.01.02.003")); slices.Contains(findingIDs(p.Notes), "pom-newer-than-target") {
			t.Error("SP1 patch 2 is 3.1.1 SP1, not a later release")
		}
		p = buildPC(t, pcUpgradeProc, upgradeFacts("5.0"), orchestrator.Options{})
		if _, ok := findFinding(p.Blockers, "pc-upgrade-from-4.1-or-4.1.1-only"); !ok {
			t.Errorf("PC 5.0: blockers %v", findingIDs(p.Blockers))
		}
		note(t, p, "pc-newer-than-target", "5.0")
	})
	t.Run("the ISO name typo", func(t *testing.T) {
		note(t, buildPOMPlan(t), "iso-name-typo", "POM.03.01.01.00.004-r35452", "POM.03.01.01.01.00.003-r35434-x86_64.iso")
	})
	t.Run("the POM version form", func(t *testing.T) {
		note(t, buildPOMPlan(t, setFact(orchestrator.FactPOMVersion, "POM.03.01.01.00.00.039")), "pom-version-form", "build 39")
	})
}
