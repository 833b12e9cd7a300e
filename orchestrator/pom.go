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
	pomSP1Target  = MustParseVersion("POM.03.01.01.01.00.003")
	pomSP1Release = MustParseVersion("3.1.1 SP1")
	pom311        = MustParseVersion("3.1.1")
	ep720         = MustParseVersion("7.2.0")
	pomSP1ISOName = "POM.03.01.01.01.00.003-r35434-x86_64.iso"
	pomSP1ISOSize = int64(288784384)
)

// epPatches are the release notes' "Required patches": the MPP patch each
// Experience Portal release needs, exactly per release. The file names are
// written as the vendor writes them: Version.String drops the leading zero
// of 0622, and nobody finds a "7.2.1.0.622.tar.gz".
type epPatch struct {
	release, patch Version
	file, download string
}

var epPatches = []epPatch{
	{MustParseVersion("7.2.0"), MustParseVersion("7.2.0.0.1202"), "7.2.0.0.1202.tar.gz", "AAEP0000077"},
	{MustParseVersion("7.2.1"), MustParseVersion("7.2.1.0.0622"), "7.2.1.0.0622.tar.gz", "AAEP0000104"},
}

// The two MPP parameters EP 7.2 sites set when they stay on 7.2.
const (
	MPPRuntimeSizeParam = "ccxml.jsi.runtimesize"
	MPPRuntimeSize      = "33554432"
	MPPContextSizeParam = "ccxml.jsi.contextsize"
	MPPContextSize      = "262144"
)

// The release notes' file list: the signature files' sizes, and the other
// files with theirs. UsingPOM.zip, the help library, is downloaded apart
// and has no listed size.
const (
	pomCrtSize     = 5459
	pomSigSize     = 256
	helpLibraryZip = "UsingPOM.zip"
	helpLibraryDir = "/opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary"
	pomPDCZip      = "POMPDC_311.zip"
)

var pomListedFiles = []struct {
	name string
	size int64
}{
	{"POMEventSDK.zip", 8045891},
	{"POMDesktopJavaAPI.zip", 830022},
	{pomPDCZip, 1500914},
	{"POMDesktopAPI_3_1_1_033.zip", 174789},
	{"POM3111Patch01.zip", 10271299},
	{"POM3111Patch02.zip", 12306532},
}

// POMMediaFiles are the files besides the ISO whose size the plan reads
// in media.dir (MediaFileFact): the file list's, and the help library.
func POMMediaFiles() []string {
	names := []string{helpLibraryZip}
	for _, f := range pomListedFiles {
		names = append(names, f.name)
	}
	return names
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
	from, ok := pomInstalled(in, p)
	if !ok {
		return
	}
	switch {
	case from.Compare(pomSP1Release) >= 0:
		p.NothingToDo = true
		p.Notes = append(p.Notes, Finding{ID: "pom-already-at-target", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the release notes describe the upgrade from POM 3.1.1 only; a system at SP1 or later has none of it left to do",
			Message:   fmt.Sprintf("POM %s is installed: already at 3.1.1 SP1 or later, nothing to do", from)})
		if from.Base().Compare(pom311) > 0 {
			p.Notes = append(p.Notes, Finding{ID: "pom-newer-than-target", Severity: SeverityNote, Skip: SkipNever,
				Source: SourceUpgrader,
				Rationale: "the release notes allow the upgrade only from 3.1.1 and say nothing of later releases; " +
					"installing SP1 over one would go back, so upgrader does not plan it",
				Message: fmt.Sprintf("reading taken: POM %s is a later release than 3.1.1, so it counts as past SP1 (nothing to do), "+
					"not as a version the upgrade is refused from (a Proactive Contact dialer later than 4.1.2 is blocked instead)", from)})
		}
		return
	case !isPOM311GA(from):
		p.Blockers = append(p.Blockers, Finding{ID: "pom-upgrade-from-3.1.1-only", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secUpgrading),
			Message: fmt.Sprintf("POM %s is installed; upgrade to 3.1.1 SP1 is allowed only from POM 3.1.1: upgrade to 3.1.1 first", from)})
		return
	}

	pomCommonFindings(in, p)
	passwordFileFinding(in, p)
	isoNameTypoNote(p)
	if exists, _ := in.Facts.Get(FactDBExists); exists == "false" {
		p.Blockers = append(p.Blockers, Finding{ID: "db-not-found", Severity: SeverityBlocker, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the mandatory backup needs the database POM 3.1.1 runs on; a plan against a database that is not there would fail at the backup",
			Message: fmt.Sprintf("the profile's %s does not exist, yet POM %s keeps its data in a database: correct db.* in the profile and plan again",
				dbText(prof.DB), from)})
	}
	dbSpaceFindings(in, p)
	dbWatchFindings(in, p)
	p.Warnings = append(p.Warnings, Finding{ID: "callback-expiring-label", Severity: SeverityWarning, Skip: SkipWithReason,
		Source: SourceVendor, Refs: pomRef(secCallback),
		Message: "after SP1 the Edit Callback page asks \"Is Callback Expiring\" where it asked \"Is Callback Never Expiring\": " +
			"the answer now means the opposite (Yes enables the End Time date and time). Tell whoever checks callbacks after the upgrade"})

	p.Steps = append(p.Steps, verifyMediaStep(in))
	p.Steps = append(p.Steps, backupDBStep(in))
	p.Steps = append(p.Steps, mppConfigSteps(in)...)
	services := strings.Join(prof.POM.Services, ",")
	servicesRationale := "the release notes give no upgrade steps of their own (they send the reader to the Upgrading guide, 101051678); " +
		"upgrader stops POM's services (pom.services) so the installer replaces no file a running service holds, and starts them after"
	p.Steps = append(p.Steps, StepSpec{
		ID: "stop-services", Title: "Stop POM services (" + services + ")", Kind: KindAuto, Action: "service-stop",
		Skip: SkipNever, Downtime: true, Reason: "stop POM before its installer runs",
		Source: SourceUpgrader, Rationale: servicesRationale,
		Params: map[string]string{"services": services},
	})
	up := pomInstallerStep(in, "upgrade-pom", "Run the POM 3.1.1 SP1 installer", "the upgrade itself; restoring the previous version is not supported")
	up.Irreversible, up.Downtime = true, true
	up.Refs = []Ref{{Document: pomReleaseNotes, Section: secUpgrading, Guide: guideUpgrading},
		{Document: pomReleaseNotes, Section: secRestoring},
		{Document: pomReleaseNotes, Section: secTroubleshooting, Guide: guideTroubleshooting}}
	up.Requires = []string{"media", "db-backup"}
	watchDB(prof, &up)
	up.Notes = []string{"no rollback: the release notes say restoring the previous version is not supported",
		"upgrader's own advice, not the release notes': once it has started, the way back is a restore of the database backup onto a reinstalled POM 3.1.1"}
	p.Steps = append(p.Steps, up)
	p.Steps = append(p.Steps, StepSpec{
		ID: "start-services", Title: "Start POM services (" + services + ")", Kind: KindAuto, Action: "service-start",
		Skip: SkipNever, Downtime: true, Reason: "bring POM back into service after its installer",
		Source: SourceUpgrader, Rationale: servicesRationale,
		Params: map[string]string{"services": services},
	})
	p.Steps = append(p.Steps, pomOptionSteps(in, p, secUpgrading)...)
	p.Steps = append(p.Steps, dncImportGate("before the upgrade (\"Record successful import\" keeps working as it did)"))
}

// pomInstalled reads the installed POM version for the upgrade: a version
// it cannot read blocks; one in the POM.MM.mm.pp.SS.hh.bbb form gets a note
// saying how it was read.
func pomInstalled(in PlanInput, p *Plan) (Version, bool) {
	from, ok := readInstalled(in, p, installedReading{fact: FactPOMVersion, blocker: "pom-version-unknown",
		why:     "the release notes' rules depend on the installed POM version; upgrader will not guess it",
		missing: "cannot read the installed POM version: check pom.version in the site profile, or say it with --assume pom.version=X",
		bad:     "installed POM version %q is not a version upgrader knows: %v"})
	if !ok {
		return Version{}, false
	}
	if from.Product() == "POM" {
		p.Notes = append(p.Notes, Finding{ID: "pom-version-form", Severity: SeverityNote, Skip: SkipNever,
			Source: SourceUpgrader,
			Rationale: "the release notes print versions as POM.MM.mm.pp.SS.hh.bbb without saying what each part is; " +
				"upgrader reads them as major.minor.patch.servicepack.hotfix.build (SP1 is POM.03.01.01.01.00.003)",
			Message: fmt.Sprintf("%s read as POM %d.%d.%d, service pack %d, hotfix %d, build %d", from,
				from.Major(), from.Minor(), from.Patch(), from.ServicePack(), from.Hotfix(), from.Build())})
	}
	return from, true
}

// dbText names the database of the profile as an engineer looks for it.
func dbText(db profile.DB) string {
	kind := db.Kind
	if kind == "" {
		kind = "postgres"
	}
	where := db.Host
	if db.Port != 0 {
		where += ":" + strconv.Itoa(db.Port)
	}
	if where == "" {
		return fmt.Sprintf("database %s (%s)", db.Name, kind)
	}
	return fmt.Sprintf("database %s on %s (%s)", db.Name, where, kind)
}

// dbSpaceFindings check the backup's filesystem can hold the database, or
// note that its size is not known yet.
func dbSpaceFindings(in PlanInput, p *Plan) {
	if size, ok := in.Facts.Int(FactDBSize); ok {
		if free, ok := in.Facts.Int(FactFreeBackup); ok {
			spaceFinding(p, "backup-space", "the POM database backup (its size and 10%, upgrader's margin)", free, size+size/10)
		}
		return
	}
	p.Notes = append(p.Notes, Finding{ID: "db-size-unknown", Severity: SeverityNote, Skip: SkipNever,
		Source: SourceUpgrader, Rationale: "upgrader checks the backup has room before it starts; the release notes set no figure",
		Message: "the database size is not known before the backup: backup-db checks free space against it when it runs"})
}

// backupDBStep backs up the POM database: with pg_dump on PostgreSQL; on
// Oracle or SQL Server with the site's backup command, or, without one,
// as an operator gate whose attested backup file is checked and guarded
// like any other backup.
func backupDBStep(in PlanInput) StepSpec {
	prof := in.Profile
	s := StepSpec{
		ID: "backup-db", Title: "Back up the POM database", Kind: KindAuto, Action: "backup-db",
		Skip: SkipNever, Reason: "installation or upgrade modifies the database schema: the release notes require a backup first",
		Source: SourceVendor, Refs: pomRef(secBackingUp, guideUpgrading), Produces: []string{"db-backup"},
		Params: map[string]string{"database": prof.DB.Name, "backup_dir": prof.DB.BackupDir},
	}
	switch {
	case isPostgres(prof.DB):
		watchDB(prof, &s)
		s.Notes = append(s.Notes, "upgrader's own choice of format: pg_dump at gzip level 1 (measured about 1.9x faster "+
			"than the default level for a dump about 15% larger); in directory format with one job per table of 64 MB or more "+
			"(at most one per CPU, and only with connections to spare) when there are several, else one custom-format file; "+
			"proved whole (every table's data read back and decompressed) and hashed")
		s.Notes = append(s.Notes, rehearsalNote(in))
		if prof.DB.RehearseRestore {
			s.Params["rehearse"] = "true"
		}
		return s
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
			"is not empty, and is unchanged before the installer runs."
	}
	s.Notes = append(s.Notes, "on "+prof.DB.Kind+" the backup is the site's own: no speed choice, restore rehearsal or connection check of upgrader's applies "+
		"(those are for PostgreSQL); upgrader checks the file and re-checks it before the installer")
	return s
}

func isPostgres(db profile.DB) bool { return db.Kind == "" || db.Kind == "postgres" }

// watchDB adds upgrader's own database check right before a step: on
// PostgreSQL, the database answers and has connections to spare.
func watchDB(prof profile.Profile, s *StepSpec) {
	if !isPostgres(prof.DB) {
		return
	}
	s.Checks = append(s.Checks, "db")
	s.Notes = append(s.Notes, "upgrader's own check right before this step (not POM's DB alarm): the database answers and has a "+
		"connection to spare; if not, the run holds here, with nothing of the step started, until upgrader retry")
}

// RehearsalBytesPerSecond is how fast the restore rehearsal goes, in bytes
// of the source database per second: pg_restore into a scratch database
// and an exact count(*) of every table on both sides, measured by `make
// bench` on this project's 2-CPU machine (1.2 GB in 22 to 54 s as the
// load varies). Upgrader's own estimate, for the plan.
const RehearsalBytesPerSecond = 32 << 20

// rehearsalNote says whether the restore rehearsal is on and what it
// costs, from the database's size.
func rehearsalNote(in PlanInput) string {
	cost := "its time depends on the database's size, not known before the backup"
	if size, ok := in.Facts.Int(FactDBSize); ok {
		cost = fmt.Sprintf("for this %s database about %s more, and as much free space again on the database server",
			BytesText(size), durationText(size/RehearsalBytesPerSecond))
	}
	if in.Profile.DB.RehearseRestore {
		return "restore rehearsal on (db.rehearse_restore, upgrader's own rule): the dump is restored into a scratch database on the " +
			"same server and every table's row count compared with the source's at the dump; a missing table or a different count " +
			"fails the step before the point of no return. " + cost
	}
	return "restore rehearsal off (db.rehearse_restore: true turns it on, upgrader's own rule): " + cost
}

// durationText writes seconds for people: "45 s", "12 min".
func durationText(secs int64) string {
	if secs < 120 {
		return fmt.Sprintf("%d s", max(secs, 1))
	}
	return fmt.Sprintf("%d min", (secs+59)/60)
}

// dbWatchFindings are upgrader's own checks of the database at plan time:
// it answers, and has connections to spare (POM 3.1.1 raises no alarm
// when they run out: OUTREACH-11880).
func dbWatchFindings(in PlanInput, p *Plan) {
	if !isPostgres(in.Profile.DB) {
		return
	}
	const why = "upgrader's own check, not POM's DB alarm: the backup and the installer need the database and connections of their own"
	db := dbText(in.Profile.DB)
	avail, ok1 := in.Facts.Int(FactDBConnAvailable)
	used, ok2 := in.Facts.Int(FactDBConnUsed)
	if !ok1 || !ok2 {
		if exists, _ := in.Facts.Get(FactDBExists); exists == "unknown" {
			p.Warnings = append(p.Warnings, Finding{ID: "db-unreachable", Severity: SeverityWarning, Skip: SkipWithReason,
				Source: SourceUpgrader, Rationale: why,
				Message: "upgrader could not ask the profile's " + db + " for its connections (is it running, is db.* right?): " +
					"the backup needs it; the run checks it again before the backup and holds there if it does not answer"})
		}
		return
	}
	pct := int64(100)
	if avail > 0 {
		pct = used * 100 / avail
	}
	switch {
	case used >= avail:
		p.Blockers = append(p.Blockers, Finding{ID: "db-connections", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceUpgrader, Rationale: why,
			Message: fmt.Sprintf("the %s has %d of its %d connections in use: none left for the backup; close idle sessions or raise max_connections, then plan again",
				db, used, avail)})
	case pct >= 80:
		p.Warnings = append(p.Warnings, Finding{ID: "db-connections", Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceUpgrader, Rationale: why + "; it warns from 80% in use",
			Message: fmt.Sprintf("the %s has %d of its %d connections in use (%d%%): POM 3.1.1 raises no alarm when they run out (OUTREACH-11880); "+
				"close idle sessions or raise max_connections before the window", db, used, avail, pct)})
	}
}

// pomCommonFindings are the findings every POM 3.1.1 SP1 procedure shares.
func pomCommonFindings(in PlanInput, p *Plan) {
	pomEPFindings(in, p)
	pomMPPFindings(in, p)
	pomMediaFindings(in, p)
	pomOptionFindings(in, p)
	if free, ok := in.Facts.Int(FactFreeInstall); ok {
		spaceFinding(p, "install-space", "installing POM 3.1.1 SP1 (twice the ISO, upgrader's margin)", free, 2*expectedISOSize(in))
	}
	p.Warnings = append(p.Warnings, Finding{ID: "OUTREACH-11880", Severity: SeverityWarning, Skip: SkipWithReason,
		Source: SourceVendor, Refs: pomRef(secKnownIssues),
		Message: "known issue of POM 3.1.1: the DB alarm is not raised when the maximum number of database connections is reached " +
			"(the release notes give no workaround)"})
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
		Source: SourceUpgrader, Rationale: "a password file is a secret; the release notes say nothing of it",
		Message: fmt.Sprintf("%s has mode %s: %s; chmod 0600 %s and plan again", file, v, why, file)})
}

// isoNameTypoNote: the upgrade section of the release notes names another
// ISO than the file list.
func isoNameTypoNote(p *Plan) {
	p.Notes = append(p.Notes, Finding{ID: "iso-name-typo", Severity: SeverityNote, Skip: SkipNever,
		Source: SourceUpgrader,
		Rationale: "the two names disagree; the file list is the one with the size, the signature files and the verification steps, " +
			"so upgrader reads the other as a typo",
		Message: "reading taken: the release notes' \"" + secUpgrading + "\" names POM.03.01.01.00.004-r35452-x86_64.iso, " +
			"the file list " + pomSP1ISOName + ": upgrader uses the file list's"})
}

func verifyMediaStep(in PlanInput) StepSpec {
	prof := in.Profile
	return StepSpec{
		ID: "verify-media", Title: "Verify the SP1 ISO (SHA-256 and signature)", Kind: KindAuto, Action: "verify-media",
		Skip: SkipNever, Reason: "the release notes' SHA-256 and signature check of the ISO, before the installer uses it",
		Source: SourceVendor, Refs: pomRef(secFileList), Produces: []string{"media"},
		Params: map[string]string{"iso": path.Join(prof.Media.Dir, prof.Media.ISO), "sha256": prof.Media.SHA256,
			"size": strconv.FormatInt(expectedISOSize(in), 10)},
	}
}

// pomInstallerStep runs the SP1 ISO's installer; Probe reads the POM
// version, so a finished install is never run twice.
func pomInstallerStep(in PlanInput, id, title, reason string) StepSpec {
	return StepSpec{ID: id, Title: title, Kind: KindAuto, Action: "vendor-install", Skip: SkipNever, Reason: reason,
		Source: SourceVendor,
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
		Source: SourceVendor, Refs: pomRef(secDNCImport),
		Instructions: "In POM Global Configurations, tick \"Record successful DNC Import\" if the site records DNC imports " +
			when + ". Confirm when done or not needed.",
	}
}

// pomOptions are what --with adds to a POM procedure, in the document's
// order: PDC, then the help library.
var pomOptions = []string{"pdc", "help-library", "mpp-restart"}

// pomOptionFindings: an option the POM procedures do not offer is an
// error; the help library needs its zip; its permissions are read as the
// release notes mean them.
func pomOptionFindings(in PlanInput, p *Plan) {
	for _, w := range slices.Sorted(slices.Values(in.Options.With)) {
		if !slices.Contains(pomOptions, w) {
			p.Blockers = append(p.Blockers, Finding{ID: "unknown-option", Severity: SeverityBlocker, Skip: SkipNever,
				Source: SourceUpgrader, Rationale: "an option upgrader does not know would otherwise be ignored without a word",
				Message: fmt.Sprintf("--with %s: the POM procedures offer pdc, help-library and mpp-restart", w)})
		}
	}
	if !slices.Contains(in.Options.With, "help-library") {
		return
	}
	if size, ok := in.Facts.Int(MediaFileFact(helpLibraryZip)); ok && size < 0 {
		p.Blockers = append(p.Blockers, Finding{ID: "help-library-zip-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the help-library step takes the zip from media.dir with vpms stopped; without it the step would fail in the outage",
			Message: fmt.Sprintf("--with help-library: %s is not there: download UsingPOM.zip (document 101051680) and copy it there "+
				"in binary mode, or plan without help-library", path.Join(in.Profile.Media.Dir, helpLibraryZip))})
	}
	p.Notes = append(p.Notes, Finding{ID: "help-library-owner-mode", Severity: SeverityNote, Skip: SkipNever,
		Source: SourceUpgrader,
		Rationale: "the release notes' \"chown avayavp.avayavpgroup *\" and \"chmod 755 *\" are not recursive, yet the zip unpacks " +
			"folders; upgrader reads them as meant for the whole library",
		Message: "reading taken: the help-library step gives owner avayavp:avayavpgroup and mode 755 to every file and folder " +
			"UsingPOM.zip puts in " + helpLibraryDir + ", at any depth, not only to the top level as \"*\" would"})
}

// pomOptionSteps are the steps --with asks for, in the document's order
// whatever order --with gives, and each once; section is the release
// notes' section of the procedure (install or upgrade).
func pomOptionSteps(in PlanInput, p *Plan, section string) []StepSpec {
	var out []StepSpec
	for _, w := range pomOptions {
		if !slices.Contains(in.Options.With, w) {
			continue
		}
		switch w {
		case "pdc":
			out = append(out, StepSpec{ID: "pdc", Title: "Install POM PDC (" + pomPDCZip + ")", Kind: KindGate,
				Action: "gate", Skip: SkipWithReason, Reason: "requested with --with pdc",
				Source: SourceVendor, Refs: pomRef(section, guideDeveloper),
				Instructions: "Install " + pomPDCZip + " as the Developer Guide for Proactive Outreach Manager 3.1.1 (document 101051708) " +
					"describes; confirm when done."})
			if section == secUpgrading {
				p.Notes = append(p.Notes, Finding{ID: "pdc-guide-link", Severity: SeverityNote, Skip: SkipNever,
					Source:    SourceUpgrader,
					Rationale: "the two sections link the same guide to different documents; 101051678 is the Upgrading guide's own number",
					Message: "reading taken: the release notes' upgrade section links the Developer Guide as document 101051678, " +
						"the install section as 101051708: upgrader cites 101051708"})
			}
		case "help-library":
			out = append(out, StepSpec{ID: "help-library", Title: "Update the online help library (" + helpLibraryZip + ")",
				Kind: KindAuto, Action: "help-library", Skip: SkipWithReason, Downtime: true,
				Reason: "requested with --with help-library (the release notes' update of the help library, for any POM system)",
				Source: SourceVendor, Refs: pomRef(secInstalling, guideHelpLibrary),
				Params: map[string]string{"zip": path.Join(in.Profile.Media.Dir, helpLibraryZip),
					"dir": helpLibraryDir, "owner": "avayavp", "group": "avayavpgroup",
					"services": strings.Join(in.Profile.POM.Services, ",")},
				Notes: []string{"upgrader takes UsingPOM.zip from media.dir (the release notes copy it to /home/craft first)"}})
		}
	}
	return out
}

func pomInstall() Procedure {
	return Procedure{
		ID:      "pom-3.1.1-sp1-install",
		Title:   "Fresh install of Proactive Outreach Manager 3.1.1 SP1",
		Product: "POM",
		build:   buildPOMInstall,
	}
}

func buildPOMInstall(in PlanInput, p *Plan) {
	p.From, p.To = "none", pomSP1Target.String()
	if raw, ok := in.Facts.Get(FactPOMVersion); ok && raw != "" {
		p.From = raw
		p.Blockers = append(p.Blockers, Finding{ID: "pom-already-installed", Severity: SeverityBlocker, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "a fresh install over an installed POM would replace it; the release notes keep the fresh install and the upgrade apart",
			Message:   fmt.Sprintf("POM %s is installed here: use pom-3.1.1-sp1-upgrade", raw)})
		return
	}
	pomCommonFindings(in, p)
	p.Steps = append(p.Steps, verifyMediaStep(in))
	inst := pomInstallerStep(in, "install-pom", "Install POM 3.1.1 SP1 from the ISO", "the install itself")
	inst.Requires = []string{"media"}
	inst.Refs = []Ref{{Document: pomReleaseNotes, Section: secInstalling, Guide: guideImplementing},
		{Document: pomReleaseNotes, Section: secTroubleshooting, Guide: guideTroubleshooting}}
	db := dbText(in.Profile.DB)
	switch exists, _ := in.Facts.Get(FactDBExists); exists {
	case "true":
		// A POM database is there already (an external database, a
		// reinstall): the install modifies its schema, so back it up first.
		p.Steps = append(p.Steps, backupDBStep(in))
		inst.Requires = append(inst.Requires, "db-backup")
		watchDB(in.Profile, &inst)
		dbSpaceFindings(in, p)
		dbWatchFindings(in, p)
	case "false":
		p.Notes = append(p.Notes, Finding{ID: "db-none", Severity: SeverityNote, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secBackingUp),
			Message: "the profile's " + db + " does not exist yet: there is no POM database to back up before the install"})
	default:
		p.Warnings = append(p.Warnings, Finding{ID: "db-existence-unknown", Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secBackingUp),
			Message: "upgrader cannot tell whether the profile's " + db + " exists: the release notes require a backup of the POM " +
				"database before an installation modifies its schema. If one exists (an external database, a reinstall), " +
				"plan with --assume db.exists=true and upgrader backs it up first"})
	}
	p.Steps = append(p.Steps, mppConfigSteps(in)...)
	p.Steps = append(p.Steps, inst)
	p.Steps = append(p.Steps, pomOptionSteps(in, p, secInstalling)...)
	p.Steps = append(p.Steps, dncImportGate("(the checkbox is off after the install)"))
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
			Source: SourceUpgrader, Rationale: "the release notes' EP rules depend on the EP version, which upgrader reads from the profile",
			Message: "Experience Portal version unknown: set ep.version in the profile. EP 7.2 and 7.2.1 need an MPP patch, and EP 7.2 sites " +
				"staying on 7.2 need the ccxml.jsi sizes on every MPP: this plan checks neither"})
		return
	}
	ep, err := ParseVersion(raw)
	if err != nil {
		p.Blockers = append(p.Blockers, Finding{ID: "ep-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceUpgrader, Rationale: "the release notes' EP rules depend on the EP version; upgrader will not guess it",
			Message: fmt.Sprintf("Experience Portal version %q: %v", raw, err)})
		return
	}
	i := slices.IndexFunc(epPatches, func(e epPatch) bool { return e.release.Equal(ep.Base()) })
	if i < 0 {
		p.Warnings = append(p.Warnings, Finding{ID: "ep-version-not-covered", Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secCompatibility),
			Message: fmt.Sprintf("the release notes name MPP patches for Experience Portal 7.2 and 7.2.1 only, not for %s: "+
				"check the compatibility matrix (support.avaya.com/CompatibilityMatrix)", raw)})
		return
	}
	mppPatchFindings(in, p, raw, epPatches[i])
	if ep.Base().Equal(ep720) {
		for _, k := range []struct{ id, what string }{
			{"EXPPORTAL-1960", "EP 7.2.0 MPP cannot clamp DTMF out of band unidirectionally"},
			{"EXPPORTAL-1701", "EP 7.2.0 MPP lacks VXML senddigit in a CCXML conference"},
		} {
			p.Warnings = append(p.Warnings, Finding{ID: k.id, Severity: SeverityWarning, Skip: SkipWithReason,
				Source: SourceVendor, Refs: pomRef(secKnownIssues),
				Message: k.what + ": workaround, upgrade to EP 7.2.1 with the latest patch"})
		}
	}
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
			Source: SourceUpgrader, Rationale: "upgrader verifies and installs the ISO the profile points it at",
			Message: "media.dir and media.iso are not set in the site profile: say where the SP1 ISO is"})
		return
	}
	if prof.Media.ISO != pomSP1ISOName {
		p.Warnings = append(p.Warnings, Finding{ID: "media-name", Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secFileList),
			Message: fmt.Sprintf("media.iso is %s; the file list names %s", prof.Media.ISO, pomSP1ISOName)})
	}
	if prof.Media.SHA256 == "" {
		p.Blockers = append(p.Blockers, Finding{ID: "media-sum-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secFileList),
			Message: "no published SHA-256 for the ISO: copy it from the support site into media.sha256 in the profile"})
	}
	iso := path.Join(prof.Media.Dir, prof.Media.ISO)
	sizeRaw, _ := in.Facts.Get(FactMediaSize)
	size, err := strconv.ParseInt(sizeRaw, 10, 64)
	want := expectedISOSize(in)
	switch {
	case err != nil || size < 0:
		p.Blockers = append(p.Blockers, Finding{ID: "media-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceUpgrader, Rationale: "the media must be in place before the maintenance window; upgrader looks at plan time",
			Message: fmt.Sprintf("%s not found: copy the SP1 ISO there (binary mode) before the window", iso)})
	case want > 0 && size != want:
		p.Blockers = append(p.Blockers, Finding{ID: "media-size", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secFileList),
			Message: fmt.Sprintf("%s is %d bytes, the file list says %d: the copy is incomplete or not this release; download it again", iso, size, want)})
	}
	if signed, _ := in.Facts.Get(FactMediaSigned); signed != "true" && err == nil && size >= 0 {
		p.Warnings = append(p.Warnings, Finding{ID: "media-signature-files", Severity: SeverityWarning, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secFileList),
			Message: fmt.Sprintf("%s.sha256.crt or .sha256.sig is missing next to the ISO: verify-media will fail until both are there", iso)})
	}
	// The signature files and the other listed files, where they are:
	// a size other than the list's is not the file SP1 shipped.
	sizeWarning := func(id, file string, fact string, want int64, what string) {
		got, ok := in.Facts.Int(fact)
		if !ok || got < 0 || got == want {
			return
		}
		p.Warnings = append(p.Warnings, Finding{ID: id, Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secFileList),
			Message: fmt.Sprintf("%s is %d bytes, the file list says %d: %s", file, got, want, what)})
	}
	sizeWarning("media-crt-size", iso+".sha256.crt", FactMediaCrtSize, pomCrtSize,
		"not the certificate SP1 shipped; verify-media checks the signature with the certificate that is there, and media.pin_sha256 says whose it is")
	sizeWarning("media-sig-size", iso+".sha256.sig", FactMediaSigSize, pomSigSize,
		"not the SP1 signature (an RSA-2048 signature is 256 bytes); verify-media will tell")
	for _, f := range pomListedFiles {
		sizeWarning("media-file-size-"+f.name, path.Join(prof.Media.Dir, f.name), MediaFileFact(f.name), f.size,
			"an incomplete copy or another release; download it again before using it")
	}
}

// ListedFile is a file of the release notes' file list and its size.
type ListedFile struct {
	Name string
	Size int64
	// Fact is the fact holding the size of the file found in media.dir.
	Fact string
}

// POMFileList is the release notes' file list: the SP1 ISO, its two
// signature files, and the other files, with their listed sizes.
func POMFileList() []ListedFile {
	out := []ListedFile{{pomSP1ISOName, pomSP1ISOSize, FactMediaSize},
		{pomSP1ISOName + ".sha256.crt", pomCrtSize, FactMediaCrtSize},
		{pomSP1ISOName + ".sha256.sig", pomSigSize, FactMediaSigSize}}
	for _, f := range pomListedFiles {
		out = append(out, ListedFile{f.name, f.size, MediaFileFact(f.name)})
	}
	return out
}
