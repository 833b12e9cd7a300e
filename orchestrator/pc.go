package orchestrator

import (
	"fmt"
	"slices"
	"strings"
)

// Proactive Contact 4.1.2 (DOMAIN.md §1): the steps, their material IDs and
// the release notes each one follows.
var (
	pc41   = MustParseVersion("4.1")
	pc411  = MustParseVersion("4.1.1")
	pc412  = MustParseVersion("4.1.2")
	pcNote = "PC 4.1.2 upgrade, install and migration sequence v0.5"
)

type pcStepInfo struct {
	title, material, notes string
}

var pcSteps = map[string]pcStepInfo{
	"linux-es":       {"Install PC 4.1.2 Linux ES Bootable", "700479173", "PC 4.1.2 Linux ES Release Notes"},
	"dialer-4.1":     {"Install PC 4.1 Dialer", "700464381", "PC 4.1 Dialer Release Notes"},
	"dialer-4.1.2":   {"Upgrade to PC 4.1.2 Dialer", "700479025", "PC 4.1.2 Dialer Release Notes"},
	"database-4.1.2": {"Install PC 4.1.2 Database", "700479058", "PC 4.1.2 Database Release Notes"},
	"supervisor":     {"Install PC 4.1.2 Supervisor", "700479066", "PC 4.1.2 Supervisor Release Notes"},
	"agent":          {"Install PC 4.1.2 Agent", "700479033", "PC 4.1.2 Agent Release Notes"},
	"agent-api":      {"Install PC 4.1.2 Agent API", "700479041", "PC 4.1.2 Agent API Release Notes"},
}

// PCComponents are the optional components, in install order.
var PCComponents = []string{"supervisor", "agent", "agent-api"}

// Hardware models of the migration (DMI product names contain these).
var (
	migrateSourceModels = []string{"ProLiant DL385 G2", "ProLiant DL385 G5"}
	migrateTargetModel  = "System x3650 M2"
)

// Migration roles: which server a step runs on.
const (
	RoleSource = "source" // the old HP DL385
	RoleTarget = "target" // the new IBM x3650 M2
)

// Space upgrader asks for besides what it can measure: its own margin, not
// a vendor figure.
const pcInstallSpace = 2 << 30 // 2 GiB for the PC installers

func pcRefs(id string) []Ref {
	info := pcSteps[id]
	return []Ref{{MaterialID: info.material, ReleaseNotes: info.notes}}
}

// pcInstallStep is a vendor installer step of PC: product is what its
// Probe reads, target the version it must find afterwards.
func pcInstallStep(id, product, target, reason string) StepSpec {
	info := pcSteps[id]
	return StepSpec{ID: id, Title: info.title, Kind: KindAuto, Action: "vendor-install", Skip: SkipNever,
		Downtime: true, Reason: reason, Refs: pcRefs(id),
		Params: map[string]string{"product": product, "target": target, "installer": id}}
}

func linuxESSteps(runsOn, why string) []StepSpec {
	info := pcSteps["linux-es"]
	gate := StepSpec{ID: "linux-es", Title: info.title, Kind: KindGate, Action: "gate", Skip: SkipNever,
		RunsOn: runsOn, Reason: why, Refs: pcRefs("linux-es"),
		Params: map[string]string{"verify_product": "linux-es", "verify_version": "4.1.2"},
		Instructions: "Boot the server from the PC 4.1.2 Linux ES Bootable media (material 700479173) and install " +
			"Linux ES as the PC 4.1.2 Linux ES Release Notes describe. Remove the media when the installer asks; " +
			"confirm once the server runs Linux ES 4.1.2.",
		Notes: []string{"installing Linux ES erases the server's disks: keep upgrader's state directory on media that survives it (--state-dir)"},
	}
	reboot := StepSpec{ID: "linux-es-reboot", Title: "Reboot into Linux ES", Kind: KindReboot, Action: "reboot",
		Skip: SkipNever, RunsOn: runsOn, Reason: "the Linux ES install finishes with a reboot; upgrader checks the server came back",
		Refs: pcRefs("linux-es")}
	return []StepSpec{gate, reboot}
}

// pcOptional adds the optional components: in when installed today or
// requested with --with, out with a note saying how to add them.
func pcOptional(in PlanInput, p *Plan, runsOn string) {
	installed := in.Facts.List(FactComponents)
	for _, c := range PCComponents {
		var why string
		switch {
		case slices.Contains(installed, c):
			why = "installed today"
		case slices.Contains(in.Options.With, c):
			why = "requested with --with " + c
		default:
			p.Notes = append(p.Notes, Finding{ID: "component-out-" + c, Severity: SeverityNote, Skip: SkipNever,
				Message: fmt.Sprintf("%s is not installed and not requested: left out (--with %s adds it)", c, c)})
			continue
		}
		s := pcInstallStep(c, c, "4.1.2", why)
		s.RunsOn = runsOn
		p.Steps = append(p.Steps, s)
	}
	for _, w := range in.Options.With {
		if !slices.Contains(PCComponents, w) {
			p.Blockers = append(p.Blockers, Finding{ID: "unknown-component", Severity: SeverityBlocker, Skip: SkipNever,
				Message: fmt.Sprintf("--with %s: not a PC component; choose from %s", w, strings.Join(PCComponents, ", "))})
		}
	}
}

// pcFrom reads the installed dialer version for an upgrade or migration:
// only 4.1 and 4.1.1 qualify.
func pcFrom(in PlanInput, p *Plan, verb string) (Version, bool) {
	p.To = pc412.String()
	raw, ok := in.Facts.Get(FactPCVersion)
	if !ok || raw == "" {
		p.From = "unknown"
		p.Blockers = append(p.Blockers, Finding{ID: "pc-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Message: "cannot read the installed PC Dialer version: check pc.products.dialer in the site profile, or say it with --assume pc.version=X"})
		return Version{}, false
	}
	from, err := ParseVersion(raw)
	if err != nil {
		p.From = raw
		p.Blockers = append(p.Blockers, Finding{ID: "pc-version-unknown", Severity: SeverityBlocker, Skip: SkipNever,
			Message: fmt.Sprintf("installed PC Dialer version %q: %v", raw, err)})
		return Version{}, false
	}
	p.From = from.String()
	// 4.1.2 and its builds (4.1.2.x) are the target; anything later (5.x)
	// is not covered by the document and is blocked, not "nothing to do".
	at412 := from.Major() == 4 && from.Minor() == 1 && from.Patch() == 2
	if at412 && verb == "upgrade" {
		p.NothingToDo = true
		p.Notes = append(p.Notes, Finding{ID: "pc-already-at-target", Severity: SeverityNote, Skip: SkipNever,
			Message: fmt.Sprintf("PC Dialer %s is installed: already at 4.1.2 or later, nothing to do", from)})
		return from, false
	}
	if !from.Equal(pc41) && !from.Equal(pc411) {
		what := "upgrade to 4.1 or 4.1.1 first"
		switch {
		case at412:
			what = "this procedure upgrades 4.1 and 4.1.1 only"
		case from.Compare(pc412) > 0:
			what = from.String() + " is newer than 4.1.2: leave it as it is (this procedure upgrades 4.1 and 4.1.1 only)"
		}
		p.Blockers = append(p.Blockers, Finding{ID: "pc-" + verb + "-from-4.1-or-4.1.1-only", Severity: SeverityBlocker, Skip: SkipNever,
			Refs:    []Ref{{ReleaseNotes: pcNote}},
			Message: fmt.Sprintf("PC Dialer %s is installed; the 4.1.2 %s is allowed only from 4.1 or 4.1.1: %s", from, verb, what)})
		return from, false
	}
	return from, true
}

func spaceFinding(p *Plan, id, what string, free, need int64) {
	if free >= need {
		return
	}
	p.Blockers = append(p.Blockers, Finding{ID: id, Severity: SeverityBlocker, Skip: SkipNever,
		Message: fmt.Sprintf("%s needs %s free, the filesystem has %s: free %s and plan again", what, BytesText(need), BytesText(free), BytesText(need-free))})
}

// BytesText writes a byte count for people: "1.5 GiB (1610612736 bytes)".
func BytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}

func pcInstallSpaceFinding(in PlanInput, p *Plan) {
	if free, ok := in.Facts.Int(FactFreeInstall); ok {
		spaceFinding(p, "install-space", "installing PC 4.1.2", free, pcInstallSpace)
	}
}

// databaseStep adds database-4.1.2 when upgrading from 4.1, and otherwise
// a note saying why it is left out.
func databaseStep(from Version, runsOn string, p *Plan) {
	if !from.Equal(pc41) {
		p.Notes = append(p.Notes, Finding{ID: "database-not-needed", Severity: SeverityNote, Skip: SkipNever,
			Message: "upgrading from " + from.String() + ": the 4.1.2 database step is only for upgrades from 4.1"})
		return
	}
	s := pcInstallStep("database-4.1.2", "database", "4.1.2", "upgrading from 4.1: the 4.1.2 database is installed too")
	s.RunsOn = runsOn
	p.Steps = append(p.Steps, s)
}

func pcUpgrade() Procedure {
	return Procedure{ID: "pc-4.1.2-upgrade", Title: "Upgrade Proactive Contact 4.1 / 4.1.1 to 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			from, ok := pcFrom(in, p, "upgrade")
			if !ok {
				return
			}
			pcInstallSpaceFinding(in, p)
			up := pcInstallStep("dialer-4.1.2", "dialer", "4.1.2", "the upgrade itself, from "+from.String())
			up.Irreversible = true
			up.Notes = []string{"the release notes describe no downgrade: upgrader treats this as the point of no return"}
			p.Steps = append(p.Steps, up)
			databaseStep(from, "", p)
			pcOptional(in, p, "")
		}}
}

func pcInstall() Procedure {
	return Procedure{ID: "pc-4.1.2-install", Title: "Fresh install of Proactive Contact 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			p.From, p.To = "none", pc412.String()
			if raw, ok := in.Facts.Get(FactPCVersion); ok && raw != "" {
				p.From = raw
				p.Blockers = append(p.Blockers, Finding{ID: "pc-already-installed", Severity: SeverityBlocker, Skip: SkipNever,
					Message: fmt.Sprintf("PC Dialer %s is installed here and a fresh install erases it: use pc-4.1.2-upgrade (or pc-4.1.2-migrate to new hardware)", raw)})
				return
			}
			pcInstallSpaceFinding(in, p)
			es := linuxESSteps("", "a fresh install starts from the Linux ES media")
			es[0].Irreversible = true
			p.Steps = append(p.Steps, es...)
			p.Steps = append(p.Steps,
				pcInstallStep("dialer-4.1", "dialer", "4.1", "the 4.1.2 dialer installs over 4.1"),
				pcInstallStep("dialer-4.1.2", "dialer", "4.1.2", "upgrade the new dialer to 4.1.2"),
				pcInstallStep("database-4.1.2", "database", "4.1.2", "a fresh 4.1.2 system has the 4.1.2 database"))
			pcOptional(in, p, "")
		}}
}

func pcMigrate() Procedure {
	return Procedure{ID: "pc-4.1.2-migrate", Title: "Migrate Proactive Contact from an HP DL385 to an IBM x3650 M2, upgrading to 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			model, _ := in.Facts.Get(FactHostModel)
			if !IsMigrationSource(model) {
				p.Blockers = append(p.Blockers, Finding{ID: "migrate-source-model", Severity: SeverityBlocker, Skip: SkipWithReason,
					Refs: []Ref{{ReleaseNotes: pcNote}},
					Message: fmt.Sprintf("this server is %q; the migration starts on an HP %s: plan it there, or --override migrate-source-model=REASON",
						model, strings.Join(migrateSourceModels, " or "))})
			}
			from, ok := pcFrom(in, p, "migration")
			if !ok {
				return
			}
			if size, ok := in.Facts.Int(FactPCDataSize); ok {
				if free, ok := in.Facts.Int(FactFreeBackup); ok {
					spaceFinding(p, "backup-space", "the data backup", free, size+size/10)
				}
			}
			backup := StepSpec{ID: "backup-source", Title: "Back up the dialer data on the old server", Kind: KindAuto,
				Action: "pc-backup", Skip: SkipNever, RunsOn: RoleSource, Produces: []string{"pc-backup"},
				Reason: "the new server starts from this data", Refs: pcRefs("dialer-4.1.2"),
				Notes: []string{"the document prints material ID 700479025 (the 4.1.2 Dialer) beside this step; upgrader shows it as printed",
					"the document does not say to stop dialing first: calls and list changes made after the backup stay on the old server; plan the cut-over"}}
			p.Steps = append(p.Steps, backup)
			p.Steps = append(p.Steps, linuxESSteps(RoleTarget, "the IBM x3650 M2 starts from the Linux ES media")...)
			p.Steps = append(p.Steps, StepSpec{ID: "restore-backup", Title: "Restore the old server's data backup", Kind: KindAuto,
				Action: "pc-restore", Skip: SkipNever, RunsOn: RoleTarget, Requires: []string{"pc-backup"}, Downtime: true,
				Reason: "carry the dialer data to the new server", Refs: pcRefs("dialer-4.1.2"),
				Notes: []string{"copy the backup file to the same path on the new server before this step (scp -p keeps its time)"}})
			up := pcInstallStep("dialer-4.1.2", "dialer", "4.1.2", "upgrade the restored "+from.String()+" system to 4.1.2")
			up.RunsOn = RoleTarget
			up.Notes = []string{"the document lists no \"Install PC 4.1 Dialer\" on the new server before this upgrade: upgrader follows it literally"}
			p.Steps = append(p.Steps, up)
			databaseStep(from, RoleTarget, p)
			pcOptional(in, p, RoleTarget)
			p.Notes = append(p.Notes, Finding{ID: "migration-two-servers", Severity: SeverityNote, Skip: SkipNever,
				Message: "steps run on two servers: after backup-source, export the run (upgrader export), copy it and the backup to the IBM x3650 M2, import it there (upgrader import) and resume; the old server is left untouched"})
		}}
}

// IsMigrationSource reports whether a DMI product name is an HP DL385
// G2 or G5.
func IsMigrationSource(model string) bool {
	for _, m := range migrateSourceModels {
		if strings.Contains(model, m) {
			return true
		}
	}
	return false
}

// IsMigrationTarget reports whether a DMI product name is an IBM x3650 M2.
func IsMigrationTarget(model string) bool { return strings.Contains(model, migrateTargetModel) }

// RoleOf says which server of a migration this host is, from its model.
func RoleOf(model string) string {
	switch {
	case IsMigrationSource(model):
		return RoleSource
	case IsMigrationTarget(model):
		return RoleTarget
	}
	return ""
}

// CheckImportTarget refuses a migration's run on a server other than the
// one its next step is for (the IBM x3650 M2 after the old server's
// backup), unless the engineer overrides migrate-target-model.
func CheckImportTarget(x RunExport, model string, overrides map[string]string) error {
	i := NextStep(x.Steps)
	if i < 0 {
		return nil
	}
	want := x.Run.Plan.Steps[i].RunsOn
	if want == "" || RoleOf(model) == want {
		return nil
	}
	if _, ok := overrides["migrate-target-model"]; ok && want == RoleTarget {
		return nil
	}
	return fmt.Errorf("%w: the run's next step (%s) is for %s, and this server is %q: import it there, or --override migrate-target-model=REASON",
		ErrTransition, x.Run.Plan.Steps[i].ID, RoleServer(want), model)
}
