package orchestrator_test

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// The documents a vendor rule may cite, and the headings they really have,
// copied from the seeds (DOMAIN.md): the POM 3.1.1 SP1 release notes'
// table of contents, and the PC 4.1.2 sequence document's two sections.
const (
	pomDoc = "POM 3.1.1 SP1 Release Notes"
	pcDoc  = "Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5)"
)

var pomHeadings = []string{
	"Document changes", "Introduction", "What's new in POM 3.1.1", "What's new in POM 3.1.1 SP1",
	"Serviceability enhancement - POM logging enhancement", "DB alarm is raised in case of network outage",
	"Option to record successful DNC import separate from the contact list import",
	`Change "Callback never expiring" to avoid double negation`, "Installation", "Product compatibility",
	"Required patches", "File list – Proactive Outreach Manager 3.1.1 SP1 Software", "Backing up the software",
	"Installing the release", "Upgrading to release POM 3.1.1 SP1", "Troubleshooting the installation",
	"Restoring software to previous version", "Fixes", "Known issues and workarounds", "Languages supported",
	"Contacting support", "Contact Support Checklist", "Contact Support Tasks",
}

// pcFlowMaterial is the PC document's "2. Flow of Installation" table:
// procedure → step number → the material ID printed in that step.
var pcFlowMaterial = map[string]map[int]string{
	"Fresh Installation of Avaya Proactive Contact 4.1.2": {1: "700479173", 2: "700464381", 3: "700479025",
		4: "700479058", 5: "700479066", 6: "700479033", 7: "700479041"},
	"Upgrade to Avaya Proactive Contact 4.1.2": {1: "700479025", 2: "700479058", 3: "700479066", 4: "700479033",
		5: "700479041"},
	"Migration to Avaya Proactive Contact 4.1.2": {1: "700479025", 2: "700479173", 3: "700479025", 4: "700479058",
		5: "700479066", 6: "700479033", 7: "700479041"},
}

var pcSection = regexp.MustCompile(`^2\. Flow of Installation: (.+), step (\d)$`)

// checkRef says what is wrong with one vendor reference: a document the
// catalog does not know, a heading the document does not have, a PC step
// the flow table does not have or whose material is another.
func checkRef(r orchestrator.Ref) error {
	switch r.Document {
	case pomDoc:
		if !slices.Contains(pomHeadings, r.Section) {
			return fmt.Errorf("%q is not a heading of the POM release notes", r.Section)
		}
		if r.MaterialID != "" || r.ReleaseNotes != "" {
			return fmt.Errorf("a POM section with PC material %+v", r)
		}
	case pcDoc:
		m := pcSection.FindStringSubmatch(r.Section)
		if m == nil {
			return fmt.Errorf("%q is not a step of the document's \"2. Flow of Installation\"", r.Section)
		}
		n, _ := strconv.Atoi(m[2])
		steps, ok := pcFlowMaterial[m[1]]
		if !ok {
			return fmt.Errorf("%q is not a procedure of the flow table", m[1])
		}
		material, ok := steps[n]
		if !ok {
			return fmt.Errorf("%s has no step %d", m[1], n)
		}
		if r.MaterialID != "" && r.MaterialID != material {
			return fmt.Errorf("%s step %d prints material %s, the ref says %s", m[1], n, material, r.MaterialID)
		}
		if r.Guide != "" {
			return fmt.Errorf("the PC document names no guide, the ref says %q", r.Guide)
		}
	default:
		return fmt.Errorf("document %q is not a source document", r.Document)
	}
	return nil
}

// provenanceCases plan every procedure over the situations its rules tell
// apart, so that every step and finding the catalog can make is seen.
func provenanceCases() []orchestrator.PlanInput {
	mpp := profile.MPP{Name: "mpp1", Host: "localhost", Config: "/opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml"}
	pom := profile.Profile{Site: "s", Root: "/", POM: profile.POM{Services: []string{"vpms"}},
		MPPs:  []profile.MPP{mpp, {Name: "mpp2", Host: "mpp2.example", Config: mpp.Config}},
		Media: profile.Media{Dir: "/media", ISO: "POM.03.01.01.01.00.003-r35434-x86_64.iso", SHA256: "00"},
		DB:    profile.DB{Kind: "postgres", Name: "pom", BackupDir: "/var/backups", PasswordFile: "/etc/pgpass"}}
	oracle := pom
	oracle.DB = profile.DB{Kind: "oracle", Name: "pom", BackupDir: "/var/backups"}
	moving := pom
	moving.EP.MovingTo721 = true
	noMPP := pom
	noMPP.MPPs = nil
	odd := pom
	odd.Media = profile.Media{Dir: "/media", ISO: "pom.iso"}
	noMedia := pom
	noMedia.Media = profile.Media{}
	// Each MPP's patch read where it runs.
	versioned := pom
	versioned.MPPs = slices.Clone(pom.MPPs)
	for i := range versioned.MPPs {
		versioned.MPPs[i].Version = profile.VersionSource{File: "/opt/Avaya/ExperiencePortal/MPP/config/mpp.version", Pattern: "(.+)"}
	}
	pomFacts := func(kv ...string) orchestrator.Facts {
		f := orchestrator.Facts{
			orchestrator.FactPOMVersion: {Value: "3.1.1", Source: "t"}, orchestrator.FactEPVersion: {Value: "7.2.0", Source: "t"},
			orchestrator.FactEPMPPPatch: {Value: "7.2.0.0.1202", Source: "t"}, orchestrator.FactMediaSize: {Value: "288784384", Source: "t"},
			orchestrator.FactMediaSigned: {Value: "true", Source: "t"}, orchestrator.FactFreeInstall: {Value: "1", Source: "t"},
			orchestrator.FactFreeBackup: {Value: "1", Source: "t"}, orchestrator.FactDBSize: {Value: "100", Source: "t"},
			orchestrator.FactDBExists:     {Value: "true", Source: "t"},
			orchestrator.FactMediaCrtSize: {Value: "5459", Source: "t"}, orchestrator.FactMediaSigSize: {Value: "256", Source: "t"},
			orchestrator.MediaFileFact("UsingPOM.zip"):   {Value: "-1", Source: "t"},
			orchestrator.MediaFileFact("POMPDC_311.zip"): {Value: "1500914", Source: "t"},
		}
		for i := 0; i+1 < len(kv); i += 2 {
			f[kv[i]] = orchestrator.Fact{Value: kv[i+1], Source: "t"}
		}
		return f
	}
	pc := profile.Profile{Site: "s", Root: "/"}
	pcFacts := func(kv ...string) orchestrator.Facts {
		f := orchestrator.Facts{orchestrator.FactPCVersion: {Value: "4.1", Source: "t"}, orchestrator.FactHostModel: {Value: "ProLiant DL385 G5", Source: "t"},
			orchestrator.FactComponents: {Value: "supervisor", Source: "t"}, orchestrator.FactFreeInstall: {Value: "1", Source: "t"},
			orchestrator.FactPCDataSize: {Value: "100", Source: "t"}, orchestrator.FactFreeBackup: {Value: "1", Source: "t"}}
		for i := 0; i+1 < len(kv); i += 2 {
			f[kv[i]] = orchestrator.Fact{Value: kv[i+1], Source: "t"}
		}
		return f
	}
	var out []orchestrator.PlanInput
	for _, f := range []orchestrator.Facts{pomFacts(), pomFacts(orchestrator.FactPOMVersion, "3.1.0"), pomFacts(orchestrator.FactPOMVersion, "3.1.2"),
		pomFacts(orchestrator.FactPOMVersion, ""), pomFacts(orchestrator.FactPOMVersion, "POM.03.01.01.00.00.039"),
		pomFacts(orchestrator.FactPOMVersion, "three"), pomFacts(orchestrator.FactEPVersion, "7.2.1", orchestrator.FactEPMPPPatch, ""),
		pomFacts(orchestrator.FactEPMPPPatch, "7.2.0.0.1300"), pomFacts(orchestrator.FactEPVersion, "seven"),
		pomFacts(orchestrator.FactEPVersion, "8.0"), pomFacts(orchestrator.FactEPVersion, ""), pomFacts(orchestrator.FactMediaSize, "-1"),
		pomFacts(orchestrator.FactMediaSize, "1"), pomFacts(orchestrator.FactMediaSigned, "false"),
		pomFacts(orchestrator.FactMediaCrtSize, "1000", orchestrator.FactMediaSigSize, "512", orchestrator.MediaFileFact("POMPDC_311.zip"), "7"),
		pomFacts(orchestrator.FactDBExists, "false"), pomFacts(orchestrator.FactDBExists, "unknown"),
		pomFacts(orchestrator.FactDBSize, "", orchestrator.FactFreeInstall, "0"), pomFacts(orchestrator.FactDBPasswordFileMode, "0644"),
		// The MPPs as read on each: reached, its file unreadable, its
		// patch read (old, later) or not readable.
		pomFacts(orchestrator.MPPFact("mpp2", orchestrator.MPPReachable), "true", orchestrator.MPPFact("mpp2", orchestrator.MPPPatch), "7.2.0.0.1100",
			orchestrator.MPPFact("mpp1", orchestrator.MPPPatch), "7.2.0.0.1300",
			orchestrator.MPPFact("mpp1", orchestrator.MPPFactRuntimeSize), "1", orchestrator.MPPFact("mpp1", orchestrator.MPPFactContextSize), ""),
		pomFacts(orchestrator.MPPFact("mpp2", orchestrator.MPPReachable), "false", orchestrator.MPPFact("mpp2", orchestrator.MPPError), "refused",
			orchestrator.MPPFact("mpp1", orchestrator.MPPConfigError), "missing", orchestrator.MPPFact("mpp1", orchestrator.MPPPatchError), "no match")} {
		for _, prof := range []profile.Profile{pom, oracle, moving, noMPP, odd, noMedia, versioned} {
			out = append(out,
				orchestrator.PlanInput{Procedure: "pom-3.1.1-sp1-upgrade", Facts: maps.Clone(f), Profile: prof, Options: orchestrator.Options{With: []string{"pdc", "help-library"}}},
				orchestrator.PlanInput{Procedure: "pom-3.1.1-sp1-upgrade", Facts: maps.Clone(f), Profile: prof, Options: orchestrator.Options{With: []string{"mpp-restart"},
					Overrides: map[string]string{"mpp-unreachable-mpp2": "by hand", "mpp-config-unreadable-mpp1": "by hand"}}},
				orchestrator.PlanInput{Procedure: "pom-3.1.1-sp1-upgrade", Facts: maps.Clone(f), Profile: prof, Options: orchestrator.Options{With: []string{"bogus"}}},
				orchestrator.PlanInput{Procedure: "pom-3.1.1-sp1-install", Facts: maps.Clone(f), Profile: prof, Options: orchestrator.Options{With: []string{"pdc", "help-library"}}})
			bare := maps.Clone(f)
			delete(bare, orchestrator.FactPOMVersion)
			out = append(out, orchestrator.PlanInput{Procedure: "pom-3.1.1-sp1-install", Facts: bare, Profile: prof,
				Options: orchestrator.Options{With: []string{"pdc", "help-library", "bogus"}, Overrides: map[string]string{"nothing": "x"}}})
		}
	}
	for _, f := range []orchestrator.Facts{pcFacts(), pcFacts(orchestrator.FactPCVersion, "4.1.1"), pcFacts(orchestrator.FactPCVersion, "4.1.2"),
		pcFacts(orchestrator.FactPCVersion, "4.0"), pcFacts(orchestrator.FactPCVersion, "5.0"), pcFacts(orchestrator.FactPCVersion, ""),
		pcFacts(orchestrator.FactPCVersion, "4.1.0.5"), pcFacts(orchestrator.FactPCVersion, "four"),
		pcFacts(orchestrator.FactHostModel, "System x3650 M2"), pcFacts(orchestrator.FactHostModel, "ProLiant DL385 G5p"),
		pcFacts(orchestrator.FactFreeInstall, "0", orchestrator.FactFreeBackup, "0")} {
		for _, proc := range []string{"pc-4.1.2-upgrade", "pc-4.1.2-migrate"} {
			out = append(out, orchestrator.PlanInput{Procedure: proc, Facts: maps.Clone(f), Profile: pc, Options: orchestrator.Options{With: []string{"agent", "bogus"}}})
		}
		bare := maps.Clone(f)
		delete(bare, orchestrator.FactPCVersion)
		out = append(out, orchestrator.PlanInput{Procedure: "pc-4.1.2-install", Facts: bare, Profile: pc, Options: orchestrator.Options{With: []string{"agent-api"}}},
			orchestrator.PlanInput{Procedure: "pc-4.1.2-install", Facts: maps.Clone(f), Profile: pc},
			orchestrator.PlanInput{Procedure: "pc-4.1.2-migrate", Facts: maps.Clone(f), Profile: pc,
				Options: orchestrator.Options{Overrides: map[string]string{"migrate-source-model": "lab", "pc-migration-from-4.1.2": "lab",
					"pc-migration-from-4.1-or-4.1.1-only": "no"}}})
	}
	return out
}

// checkSource says what is wrong with a step's or finding's provenance:
// the vendor's cites its document and a section it really has; upgrader's
// own says why, and cites no release note.
func checkSource(src orchestrator.Source, rationale string, refs []orchestrator.Ref) error {
	switch src {
	case orchestrator.SourceVendor:
		if rationale != "" {
			return fmt.Errorf("a vendor rule with upgrader's rationale %q", rationale)
		}
		cited := false
		for _, r := range refs {
			if r.Document == "" && r.Section == "" {
				continue
			}
			if err := checkRef(r); err != nil {
				return err
			}
			cited = true
		}
		if !cited {
			return fmt.Errorf("a vendor rule that cites no document and section (refs %+v)", refs)
		}
		return nil
	case orchestrator.SourceUpgrader:
		if rationale == "" {
			return fmt.Errorf("upgrader's own rule without its rationale")
		}
		for _, r := range refs {
			if r.Document != "" || r.Section != "" || r.MaterialID != "" || r.ReleaseNotes != "" || r.Guide != "" {
				return fmt.Errorf("upgrader's own rule cites vendor material %+v", r)
			}
		}
		return nil
	}
	return fmt.Errorf("source %q: neither the vendor's nor upgrader's", src)
}

// TestRuleEveryStepAndFindingSaysWhoseRuleItIs: DESIGN.md invariant 13.
func TestRuleEveryStepAndFindingSaysWhoseRuleItIs(t *testing.T) {
	seen := map[string]bool{}
	for _, in := range provenanceCases() {
		p, err := orchestrator.BuildPlan(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Steps {
			if err := checkSource(s.Source, s.Rationale, s.Refs); err != nil && !seen["step "+s.ID] {
				t.Errorf("%s step %s: %v", p.Procedure, s.ID, err)
			}
			seen["step "+s.ID] = true
		}
		for _, fs := range [][]orchestrator.Finding{p.Blockers, p.Warnings, p.Notes} {
			for _, f := range fs {
				if err := checkSource(f.Source, f.Rationale, f.Refs); err != nil && !seen["finding "+f.ID] {
					t.Errorf("%s finding %s: %v", p.Procedure, f.ID, err)
				}
				seen["finding "+f.ID] = true
			}
		}
	}
	// The cases reach every step and finding the catalog makes: a new one
	// is added here, and so checked.
	for _, id := range []string{
		"step verify-media", "step backup-db", "step mpp-config-mpp1", "step mpp-config-mpp2", "step stop-services",
		"step upgrade-pom", "step start-services", "step pdc", "step help-library", "step enable-dnc-import", "step install-pom",
		"step mpp-restart-mpp1", "step mpp-restart-mpp2",
		"step linux-es", "step linux-es-reboot", "step dialer-4.1", "step dialer-4.1.2", "step database-4.1.2",
		"step supervisor", "step agent", "step agent-api", "step backup-source", "step restore-backup",
		"finding pom-version-unknown", "finding pom-version-form", "finding pom-already-at-target", "finding pom-newer-than-target",
		"finding pom-upgrade-from-3.1.1-only", "finding pom-already-installed", "finding unknown-option",
		"finding override-unused", "finding override-refused", "finding ep-version-unknown", "finding ep-version-not-covered",
		"finding ep-mpp-patch-missing", "finding ep-mpp-patch-later", "finding ep-moving-to-7.2.1", "finding EXPPORTAL-1960",
		"finding EXPPORTAL-1701", "finding OUTREACH-11880", "finding mpp-none-listed", "finding mpp-where",
		"finding mpp-unreachable-mpp2", "finding mpp-config-unreadable-mpp1", "finding mpp-patch-from-profile",
		"finding mpp-patch-unreadable-mpp1", "finding mpp-restart-unstated", "finding mpp-restart-unused",
		"finding media-not-configured", "finding media-name", "finding media-sum-missing", "finding media-missing",
		"finding media-size", "finding media-signature-files", "finding media-crt-size", "finding media-sig-size",
		"finding media-file-size-POMPDC_311.zip", "finding help-library-zip-missing", "finding help-library-owner-mode",
		"finding pdc-guide-link", "finding install-space", "finding backup-space", "finding db-size-unknown",
		"finding db-password-file-mode", "finding db-none", "finding db-existence-unknown", "finding db-not-found",
		"finding iso-name-typo", "finding callback-expiring-label",
		"finding pc-version-unknown", "finding pc-version-read-as-release", "finding pc-already-at-target",
		"finding pc-newer-than-target", "finding pc-upgrade-from-4.1-or-4.1.1-only", "finding pc-migration-from-4.1-or-4.1.1-only",
		"finding pc-migration-from-4.1.2", "finding pc-already-installed", "finding unknown-component",
		"finding component-out-agent-api", "finding pc-components-server", "finding database-not-needed",
		"finding migrate-source-model", "finding host-model-match", "finding migration-two-servers",
	} {
		if !seen[id] {
			t.Errorf("no case makes %s", id)
		}
	}
	t.Logf("%d steps and findings checked", len(seen))
}
