package orchestrator

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"upgrader/orchestrator/profile"
)

// POM 3.1.1 SP1 release facts (DOMAIN.md §2).
var (
	pomSP1Target   = MustParseVersion("POM.03.01.01.01.00.003")
	pomSP1Release  = MustParseVersion("3.1.1 SP1")
	ep720          = MustParseVersion("7.2")
	ep721          = MustParseVersion("7.2.1")
	ep720MPPPatch  = MustParseVersion("7.2.0.0.1202")
	ep721MPPPatch  = MustParseVersion("7.2.1.0.0622")
	pomSP1ISOName  = "POM.03.01.01.01.00.003-r35434-x86_64.iso"
	pomSP1ISOSize  = int64(288784384)
	pomReleaseNote = "POM 3.1.1 SP1 Release Notes"
)

// The MPP patch files as the vendor names them: Version.String drops the
// leading zero of 0622, and nobody finds a "7.2.1.0.622.tar.gz".
const (
	ep720MPPPatchFile = "7.2.0.0.1202.tar.gz"
	ep721MPPPatchFile = "7.2.1.0.0622.tar.gz"
)

// The two MPP parameters EP 7.2 sites set when they stay on 7.2.
const (
	MPPRuntimeSizeParam = "ccxml.jsi.runtimesize"
	MPPRuntimeSize      = "33554432"
	MPPContextSizeParam = "ccxml.jsi.contextsize"
	MPPContextSize      = "262144"
)

func pomRef(section string) []Ref {
	return []Ref{{Document: pomReleaseNote, Section: section}}
}

func pomUpgrade() Procedure {
	return Procedure{
		ID:      "pom-3.1.1-sp1-upgrade",
		Title:   "Upgrade Proactive Outreach Manager 3.1.1 to 3.1.1 SP1",
		Product: "POM",
		build:   buildPOMUpgrade,
	}
}

func buildPOMUpgrade(in PlanInput, p *Plan) {
	prof := in.Profile
	p.To = pomSP1Target.String()

	raw, ok := in.Facts.Get(FactPOMVersion)
	if !ok || raw == "" {
		p.From = "unknown"
		p.Blockers = append(p.Blockers, Finding{ID: "pom-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Message: "cannot read the installed POM version: check pom.version in the site profile, or say it with --assume pom.version=X"})
		return
	}
	from, err := ParseVersion(raw)
	if err != nil {
		p.From = raw
		p.Blockers = append(p.Blockers, Finding{ID: "pom-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Message: fmt.Sprintf("installed POM version %q is not a version upgrader knows: %v", raw, err)})
		return
	}
	p.From = from.String()
	switch {
	case from.Compare(pomSP1Release) >= 0:
		p.NothingToDo = true
		p.Notes = append(p.Notes, Finding{ID: "pom-already-at-target", Severity: SeverityNote, Skip: SkipNever,
			Message: fmt.Sprintf("POM %s is installed: already at 3.1.1 SP1 or later, nothing to do", from)})
		return
	case !isPOM311GA(from):
		p.Blockers = append(p.Blockers, Finding{ID: "pom-upgrade-from-3.1.1-only", Severity: SeverityBlocker, Skip: SkipNever,
			Refs:    pomRef("Upgrading to release POM 3.1.1 SP1"),
			Message: fmt.Sprintf("POM %s is installed; upgrade to 3.1.1 SP1 is allowed only from POM 3.1.1: upgrade to 3.1.1 first", from)})
		return
	}

	pomCommonFindings(in, p)
	passwordFileFinding(in, p)
	isoNameTypoNote(p)
	if size, ok := in.Facts.Int(FactDBSize); ok {
		if free, ok := in.Facts.Int(FactFreeBackup); ok {
			spaceFinding(p, "backup-space", "the POM database backup", free, size+size/10)
		}
	} else {
		p.Notes = append(p.Notes, Finding{ID: "db-size-unknown", Severity: SeverityNote, Skip: SkipNever,
			Message: "the database size is not known before the backup: backup-db checks free space against it when it runs"})
	}
	p.Steps = append(p.Steps, verifyMediaStep(in))
	p.Steps = append(p.Steps, backupDBStep(prof))
	p.Steps = append(p.Steps, mppConfigSteps(in)...)
	services := strings.Join(prof.POM.Services, ",")
	p.Steps = append(p.Steps, StepSpec{
		ID: "stop-services", Title: "Stop POM services (" + services + ")", Kind: KindAuto, Action: "service-stop",
		Skip: SkipNever, Downtime: true, Reason: "the installer needs the services stopped",
		Params: map[string]string{"services": services},
	})
	up := pomInstallerStep(in, "upgrade-pom", "Run the POM 3.1.1 SP1 installer", "the upgrade itself; restoring the previous version is not supported")
	up.Irreversible, up.Downtime = true, true
	up.Refs = []Ref{{Document: pomReleaseNote, Section: "Upgrading to release POM 3.1.1 SP1"},
		{Document: pomReleaseNote, Section: "Restoring software to previous version"}}
	up.Requires = []string{"media", "db-backup"}
	up.Notes = []string{"no rollback: from here on the way back is a restore of the backup onto a reinstalled POM 3.1.1"}
	p.Steps = append(p.Steps, up)
	p.Steps = append(p.Steps, StepSpec{
		ID: "start-services", Title: "Start POM services (" + services + ")", Kind: KindAuto, Action: "service-start",
		Skip: SkipNever, Downtime: true, Reason: "bring POM back into service",
		Params: map[string]string{"services": services},
	})
	p.Steps = append(p.Steps, dncImportGate("before the upgrade (\"Record successful import\" keeps working as it did)"))
}

// backupDBStep backs up the POM database: with pg_dump on PostgreSQL; on
// Oracle or SQL Server with the site's backup command, or, without one,
// as an operator gate whose attested backup file is checked and guarded
// like any other backup.
func backupDBStep(prof profile.Profile) StepSpec {
	s := StepSpec{
		ID: "backup-db", Title: "Back up the POM database", Kind: KindAuto, Action: "backup-db",
		Skip: SkipNever, Reason: "the upgrade changes the database schema and cannot be rolled back",
		Refs: pomRef("Backing up the software"), Produces: []string{"db-backup"},
		Params: map[string]string{"database": prof.DB.Name, "backup_dir": prof.DB.BackupDir},
	}
	switch {
	case prof.DB.Kind == "" || prof.DB.Kind == "postgres":
	case len(prof.DB.BackupCommand) > 0:
		s.Action = "backup-command"
		s.Title = "Back up the POM database (" + prof.DB.Kind + ", the site's backup command)"
	default:
		s.Kind, s.Action = KindGate, "gate"
		s.Title = "Back up the POM database (" + prof.DB.Kind + ") and give the backup's path"
		s.Attest = []string{"backup_path"}
		s.Params["artifact"], s.Params["artifact_from"] = "db-backup", "backup_path"
		s.Instructions = "Back up the POM database with the " + prof.DB.Kind + " tools as the site's DBA does, " +
			"then confirm with the backup file's path (--attest backup_path=/path/to/backup); upgrader checks it exists, " +
			"is not empty, and is unchanged before the upgrade."
	}
	return s
}

// pomCommonFindings are the findings every POM 3.1.1 SP1 procedure shares.
func pomCommonFindings(in PlanInput, p *Plan) {
	pomEPFindings(in, p)
	pomMediaFindings(in, p)
	if free, ok := in.Facts.Int(FactFreeInstall); ok {
		spaceFinding(p, "install-space", "installing POM 3.1.1 SP1 (twice the ISO, upgrader's margin)", free, 2*expectedISOSize(in))
	}
	p.Warnings = append(p.Warnings, Finding{ID: "OUTREACH-11880", Severity: SeverityWarning, Skip: SkipWithReason,
		Refs:    pomRef("Known issues and workarounds"),
		Message: "POM 3.1.1 raises no DB alarm when the database reaches its maximum connections: watch connection use during the upgrade"})
}

// passwordFileFinding warns when the database password file may be read by
// its group or others. libpq then ignores it (PostgreSQL's documentation,
// "The Password File"), and pg_dump fails at the backup asking for a
// password: better said at plan time. Upgrader's own check.
func passwordFileFinding(in PlanInput, p *Plan) {
	v, ok := in.Facts.Get(FactDBPasswordFileMode)
	if !ok {
		return
	}
	mode, err := strconv.ParseUint(v, 8, 32)
	if err != nil || mode&0o077 == 0 {
		return
	}
	file := in.Profile.DB.PasswordFile
	why := "the database password is open to its group or others"
	if kind := in.Profile.DB.Kind; kind == "" || kind == "postgres" {
		why = "libpq ignores a password file its group or others may use, so pg_dump would ask for a password and the backup would fail"
	}
	p.Warnings = append(p.Warnings, Finding{ID: "db-password-file-mode", Severity: SeverityWarning, Skip: SkipWithReason,
		Message: fmt.Sprintf("%s has mode %s: %s; chmod 0600 %s and plan again (upgrader's own check, not a release-notes rule)", file, v, why, file)})
}

// isoNameTypoNote: the upgrade section of the release notes names another
// ISO than the file list.
func isoNameTypoNote(p *Plan) {
	p.Notes = append(p.Notes, Finding{ID: "iso-name-typo", Severity: SeverityNote, Skip: SkipNever,
		Refs:    pomRef("Upgrading to release POM 3.1.1 SP1"),
		Message: "the release notes' upgrade section names POM.03.01.01.00.004-r35452-x86_64.iso, a typo: upgrader uses the file list's " + pomSP1ISOName})
}

func verifyMediaStep(in PlanInput) StepSpec {
	prof := in.Profile
	return StepSpec{
		ID: "verify-media", Title: "Verify the SP1 ISO (SHA-256 and signature)", Kind: KindAuto, Action: "verify-media",
		Skip: SkipNever, Reason: "the installer must only run from media proven intact",
		Refs: pomRef("File list – Proactive Outreach Manager 3.1.1 SP1 Software"), Produces: []string{"media"},
		Params: map[string]string{"iso": path.Join(prof.Media.Dir, prof.Media.ISO), "sha256": prof.Media.SHA256,
			"size": strconv.FormatInt(expectedISOSize(in), 10)},
	}
}

func mppConfigSteps(in PlanInput) []StepSpec {
	if !needsMPPConfig(in) {
		return nil
	}
	var out []StepSpec
	for _, m := range in.Profile.MPPs {
		out = append(out, StepSpec{
			ID: "mpp-config-" + m.Name, Title: "Set ccxml.jsi sizes in mppconfig.xml on MPP " + m.Name,
			Kind: KindAuto, Action: "mpp-config", Skip: SkipWithReason,
			Reason: "POM 3.1.x on EP 7.2 that stays on 7.2 needs both parameters on every MPP",
			Refs:   pomRef("Required patches"),
			Params: map[string]string{"mpp": m.Name, "config": m.Config,
				MPPRuntimeSizeParam: MPPRuntimeSize, MPPContextSizeParam: MPPContextSize},
		})
	}
	return out
}

// pomInstallerStep runs the SP1 ISO's installer; Probe reads the POM
// version, so a finished install is never run twice.
func pomInstallerStep(in PlanInput, id, title, reason string) StepSpec {
	return StepSpec{ID: id, Title: title, Kind: KindAuto, Action: "vendor-install", Skip: SkipNever, Reason: reason,
		Params: map[string]string{"product": "pom", "installer": "pom", "target": pomSP1Target.String(),
			"iso": path.Join(in.Profile.Media.Dir, in.Profile.Media.ISO)}}
}

// dncImportGate asks the operator to decide on the new checkbox; when
// says which sites need it.
func dncImportGate(when string) StepSpec {
	return StepSpec{
		ID: "enable-dnc-import", Title: "Enable \"Record successful DNC Import\" if the site needs it", Kind: KindGate,
		Action: "gate", Skip: SkipWithReason,
		Reason: "SP1 separates DNC import recording from contact import recording; the new checkbox is off by default",
		Refs:   pomRef("Option to record successful DNC import separate from the contact list import"),
		Instructions: "In POM Global Configurations, tick \"Record successful DNC Import\" if the site records DNC imports " +
			when + ". Confirm when done or not needed.",
	}
}

// pomInstallOptions are what --with adds to the POM install, in install order.
var pomInstallOptions = []string{"pdc", "help-library"}

func pomInstall() Procedure {
	return Procedure{
		ID:      "pom-3.1.1-sp1-install",
		Title:   "Fresh install of Proactive Outreach Manager 3.1.1 SP1",
		Product: "POM",
		build: func(in PlanInput, p *Plan) {
			p.From, p.To = "none", pomSP1Target.String()
			if raw, ok := in.Facts.Get(FactPOMVersion); ok && raw != "" {
				p.From = raw
				p.Blockers = append(p.Blockers, Finding{ID: "pom-already-installed", Severity: SeverityBlocker, Skip: SkipNever,
					Message: fmt.Sprintf("POM %s is installed here: use pom-3.1.1-sp1-upgrade", raw)})
				return
			}
			pomCommonFindings(in, p)
			p.Steps = append(p.Steps, verifyMediaStep(in))
			p.Steps = append(p.Steps, mppConfigSteps(in)...)
			inst := pomInstallerStep(in, "install-pom", "Install POM 3.1.1 SP1 from the ISO", "the install itself")
			inst.Requires = []string{"media"}
			inst.Refs = pomRef("Installing the release")
			p.Steps = append(p.Steps, inst)
			// In the document's order (PDC, then the help library) whatever
			// order --with gives, and each once.
			for _, w := range pomInstallOptions {
				if !slices.Contains(in.Options.With, w) {
					continue
				}
				switch w {
				case "pdc":
					p.Steps = append(p.Steps, StepSpec{ID: "pdc", Title: "Install POM PDC (POMPDC_311.zip)", Kind: KindGate,
						Action: "gate", Skip: SkipWithReason, Reason: "requested with --with pdc", Refs: pomRef("Installing the release"),
						Instructions: "Install POMPDC_311.zip as the Developer Guide for Proactive Outreach Manager 3.1.1 describes; confirm when done."})
				case "help-library":
					p.Steps = append(p.Steps, StepSpec{ID: "help-library", Title: "Update the online help library (UsingPOM.zip)",
						Kind: KindAuto, Action: "help-library", Skip: SkipWithReason, Downtime: true,
						Reason: "requested with --with help-library", Refs: pomRef("Installing the release"),
						Params: map[string]string{"zip": path.Join(in.Profile.Media.Dir, "UsingPOM.zip"),
							"dir": "/opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary", "owner": "avayavp", "group": "avayavpgroup",
							"services": strings.Join(in.Profile.POM.Services, ",")}})
				}
			}
			for _, w := range in.Options.With {
				if !slices.Contains(pomInstallOptions, w) {
					p.Blockers = append(p.Blockers, Finding{ID: "unknown-option", Severity: SeverityBlocker, Skip: SkipNever,
						Message: fmt.Sprintf("--with %s: the POM install offers pdc and help-library", w)})
				}
			}
			p.Steps = append(p.Steps, dncImportGate("(the checkbox is off after the install)"))
		},
	}
}

// isPOM311GA reports whether v is a POM 3.1.1 GA build (no service pack).
func isPOM311GA(v Version) bool {
	ok, err := v.Satisfies("=3.1.1")
	return err == nil && ok && v.ServicePack() == 0
}

func pomEPFindings(in PlanInput, p *Plan) {
	raw, ok := in.Facts.Get(FactEPVersion)
	if !ok || raw == "" {
		p.Warnings = append(p.Warnings, Finding{ID: "ep-version-unknown", Severity: SeverityWarning, Skip: SkipWithReason,
			Refs:    pomRef("Required patches"),
			Message: "Experience Portal version unknown: set ep.version in the profile; EP 7.2 and 7.2.1 need MPP patches, and EP 7.2 sites staying on 7.2 need the ccxml.jsi sizes on every MPP, which this plan leaves out"})
		return
	}
	ep, err := ParseVersion(raw)
	if err != nil {
		p.Blockers = append(p.Blockers, Finding{ID: "ep-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Message: fmt.Sprintf("Experience Portal version %q: %v", raw, err)})
		return
	}
	var need Version
	var file, download string
	switch {
	case ep.Compare(ep721) >= 0 && ok721(ep):
		need, file, download = ep721MPPPatch, ep721MPPPatchFile, "AAEP0000104"
	case ep.Compare(ep720) >= 0 && ep.Compare(ep721) < 0:
		need, file, download = ep720MPPPatch, ep720MPPPatchFile, "AAEP0000077"
	default:
		p.Warnings = append(p.Warnings, Finding{ID: "ep-version-not-covered", Severity: SeverityWarning, Skip: SkipWithReason,
			Refs:    pomRef("Product compatibility"),
			Message: fmt.Sprintf("Experience Portal %s is not covered by the release notes (7.2, 7.2.1): check the compatibility matrix", ep)})
		return
	}
	patchRaw, _ := in.Facts.Get(FactEPMPPPatch)
	patch, perr := ParseVersion(patchRaw)
	if patchRaw == "" || perr != nil || patch.Compare(need) < 0 {
		have := "none recorded"
		if patchRaw != "" {
			have = patchRaw
		}
		p.Blockers = append(p.Blockers, Finding{ID: "ep-mpp-patch-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Refs: pomRef("Required patches"),
			Message: fmt.Sprintf("Experience Portal %s needs MPP patch %s (download ID %s) on every MPP; installed: %s. "+
				"Install the patch, then record it as ep.mpp_patch in the profile", ep, file, download, have)})
	}
	if ep.Compare(ep721) < 0 {
		for _, k := range []struct{ id, what string }{
			{"EXPPORTAL-1960", "EP 7.2.0 MPP cannot clamp DTMF out of band unidirectionally"},
			{"EXPPORTAL-1701", "EP 7.2.0 MPP lacks VXML senddigit in a CCXML conference"},
		} {
			p.Warnings = append(p.Warnings, Finding{ID: k.id, Severity: SeverityWarning, Skip: SkipWithReason,
				Refs: pomRef("Known issues and workarounds"), Message: k.what + ": workaround, upgrade to EP 7.2.1 with the latest patch"})
		}
	}
}

// ok721 keeps 7.2.1 and later 7.2.x; EP 7.3 and beyond are not covered.
func ok721(ep Version) bool { return ep.Major() == 7 && ep.Minor() == 2 }

// needsMPPConfig: POM 3.1.x on EP 7.2 staying on 7.2 sets the jsi sizes.
func needsMPPConfig(in PlanInput) bool {
	raw, _ := in.Facts.Get(FactEPVersion)
	ep, err := ParseVersion(raw)
	if err != nil {
		return false
	}
	return ep.Compare(ep720) >= 0 && ep.Compare(ep721) < 0 && !in.Profile.EP.MovingTo721
}

func expectedISOSize(in PlanInput) int64 {
	if in.Profile.Media.Size > 0 {
		return in.Profile.Media.Size
	}
	if in.Profile.Media.ISO == pomSP1ISOName {
		return pomSP1ISOSize
	}
	return 0
}

func pomMediaFindings(in PlanInput, p *Plan) {
	prof := in.Profile
	if prof.Media.ISO == "" || prof.Media.Dir == "" {
		p.Blockers = append(p.Blockers, Finding{ID: "media-not-configured", Severity: SeverityBlocker, Skip: SkipNever,
			Message: "media.dir and media.iso are not set in the site profile: say where the SP1 ISO is"})
		return
	}
	if prof.Media.ISO != pomSP1ISOName {
		p.Warnings = append(p.Warnings, Finding{ID: "media-name", Severity: SeverityWarning, Skip: SkipWithReason,
			Refs:    pomRef("File list – Proactive Outreach Manager 3.1.1 SP1 Software"),
			Message: fmt.Sprintf("media.iso is %s; the file list names %s", prof.Media.ISO, pomSP1ISOName)})
	}
	if prof.Media.SHA256 == "" {
		p.Blockers = append(p.Blockers, Finding{ID: "media-sum-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Message: "no published SHA-256 for the ISO: copy it from the support site into media.sha256 in the profile"})
	}
	iso := path.Join(prof.Media.Dir, prof.Media.ISO)
	sizeRaw, _ := in.Facts.Get(FactMediaSize)
	size, err := strconv.ParseInt(sizeRaw, 10, 64)
	want := expectedISOSize(in)
	switch {
	case err != nil || size < 0:
		p.Blockers = append(p.Blockers, Finding{ID: "media-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Message: fmt.Sprintf("%s not found: copy the SP1 ISO there (binary mode) before the window", iso)})
	case want > 0 && size != want:
		p.Blockers = append(p.Blockers, Finding{ID: "media-size", Severity: SeverityBlocker, Skip: SkipNever,
			Message: fmt.Sprintf("%s is %d bytes, the file list says %d: the copy is incomplete or not this release; download it again", iso, size, want)})
	}
	if signed, _ := in.Facts.Get(FactMediaSigned); signed != "true" && err == nil && size >= 0 {
		p.Warnings = append(p.Warnings, Finding{ID: "media-signature-files", Severity: SeverityWarning, Skip: SkipNever,
			Message: fmt.Sprintf("%s.sha256.crt or .sha256.sig is missing next to the ISO: verify-media will fail until both are there", iso)})
	}
}
