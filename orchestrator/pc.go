package orchestrator

import (
	"fmt"
	"slices"
	"strings"
)

// Proactive Contact 4.1.2 (DOMAIN.md §1): the steps, their material IDs and
// the release notes each one follows.
var (
	pc41  = MustParseVersion("4.1")
	pc411 = MustParseVersion("4.1.1")
	pc412 = MustParseVersion("4.1.2")
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
	// The migration's backup and restore: the document prints the 4.1.2
	// Dialer's material and release notes beside them.
	"backup-source":  {"Back up the dialer data on the old server", "700479025", "PC 4.1.2 Dialer Release Notes"},
	"restore-backup": {"Restore the old server's data backup", "700479025", "PC 4.1.2 Dialer Release Notes"},
}

// pcFlowSteps numbers each step as the document's flow table numbers it
// in each procedure.
var pcFlowSteps = map[string]map[string]int{
	pcFlowInstall: {"linux-es": 1, "dialer-4.1": 2, "dialer-4.1.2": 3, "database-4.1.2": 4,
		"supervisor": 5, "agent": 6, "agent-api": 7},
	pcFlowUpgrade: {"dialer-4.1.2": 1, "database-4.1.2": 2, "supervisor": 3, "agent": 4, "agent-api": 5},
	pcFlowMigration: {"backup-source": 1, "linux-es": 2, "restore-backup": 3, "dialer-4.1.2": 3, "database-4.1.2": 4,
		"supervisor": 5, "agent": 6, "agent-api": 7},
}

// PCComponents are the optional components, in install order.
var PCComponents = []string{"supervisor", "agent", "agent-api"}

// Hardware models of the migration, as DMI product names (see normalModel).
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

// pcRefs cite a step of a procedure of the flow table, with the material
// and release notes printed in it.
func pcRefs(flow, id string) []Ref {
	info := pcSteps[id]
	r := pcFlowRef(flow, pcFlowSteps[flow][id])
	r.MaterialID, r.ReleaseNotes = info.material, info.notes
	return []Ref{r}
}

// pcInstallStep is a vendor installer step of PC: product is what its
// Probe reads, target the version it must find afterwards.
func pcInstallStep(flow, id, product, target, reason string) StepSpec {
	info := pcSteps[id]
	return StepSpec{ID: id, Title: info.title, Kind: KindAuto, Action: "vendor-install", Skip: SkipNever,
		Downtime: true, Reason: reason, Source: SourceVendor, Refs: pcRefs(flow, id),
		Params: map[string]string{"product": product, "target": target, "installer": id}}
}

func linuxESSteps(flow, runsOn, why string) []StepSpec {
	info := pcSteps["linux-es"]
	gate := StepSpec{ID: "linux-es", Title: info.title, Kind: KindGate, Action: "gate", Skip: SkipNever,
		RunsOn: runsOn, Reason: why, Source: SourceVendor, Refs: pcRefs(flow, "linux-es"),
		Params: map[string]string{"verify_product": "linux-es", "verify_version": "4.1.2"},
		Instructions: "Install Linux ES on the server from the PC 4.1.2 Linux ES Bootable media (material 700479173) " +
			"as the PC 4.1.2 Linux ES Release Notes describe; confirm once the server runs Linux ES 4.1.2.",
		Notes: []string{"upgrader's own advice: Linux ES is a new system on the server; keep upgrader's state directory on media that survives it (--state-dir)"},
	}
	reboot := StepSpec{ID: "linux-es-reboot", Title: "Reboot into Linux ES", Kind: KindReboot, Action: "reboot",
		Skip: SkipNever, RunsOn: runsOn, Reason: "upgrader checks the server came back from its restart into Linux ES",
		Source: SourceUpgrader,
		Rationale: "the document says nothing of reboots; a Linux ES install ends with the server starting its new system, " +
			"and upgrader goes on only once it has seen the server come back"}
	return []StepSpec{gate, reboot}
}

// pcOptional adds the optional components: in when installed today or
// requested with --with, out with a note saying how to add them.
func pcOptional(in PlanInput, p *Plan, flow, runsOn string) {
	installed := in.Facts.List(FactComponents)
	added := false
	for _, c := range PCComponents {
		var why string
		switch {
		case slices.Contains(installed, c):
			why = "installed today"
		case slices.Contains(in.Options.With, c):
			why = "requested with --with " + c
		default:
			p.Notes = append(p.Notes, Finding{ID: "component-out-" + c, Severity: SeverityNote, Skip: SkipNever,
				Source: SourceUpgrader,
				Rationale: "the document installs the component \"as applicable\" without saying when; upgrader reads it as " +
					"installed today or requested with --with",
				Message: fmt.Sprintf("%s is not installed and not requested: left out (--with %s adds it)", c, c)})
			continue
		}
		s := pcInstallStep(flow, c, c, "4.1.2", why+" (the document's \"as applicable\")")
		s.RunsOn = runsOn
		p.Steps = append(p.Steps, s)
		added = true
	}
	if added {
		where := "this server"
		if runsOn == RoleTarget {
			where = "the new server"
		}
		p.Notes = append(p.Notes, Finding{ID: "pc-components-server", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the flow table lists Supervisor, Agent and Agent API after the dialer and database, and names no machine for them",
			Message: "reading taken: the document does not say where Supervisor, Agent and Agent API are installed; upgrader runs their " +
				"installers (pc.installers) on " + where + ", as the dialer's; install them elsewhere by their release notes if the site needs"})
	}
	for _, w := range slices.Sorted(slices.Values(in.Options.With)) {
		if !slices.Contains(PCComponents, w) {
			p.Blockers = append(p.Blockers, Finding{ID: "unknown-component", Severity: SeverityBlocker, Skip: SkipNever,
				Source: SourceUpgrader, Rationale: "an option upgrader does not know would otherwise be ignored without a word",
				Message: fmt.Sprintf("--with %s: not a PC component; choose from %s", w, strings.Join(PCComponents, ", "))})
		}
	}
}

// pcFrom reads the installed dialer version for an upgrade or migration
// and returns its release (major.minor.patch); only 4.1 and 4.1.1 go on,
// and 4.1.2 for a migration whose blocker is overridden.
func pcFrom(in PlanInput, p *Plan, flow string) (Version, bool) {
	p.To = pc412.String()
	from, ok := readInstalled(in, p, installedReading{fact: FactPCVersion, blocker: "pc-version-unknown",
		why:     "the document's rules depend on the installed dialer release; upgrader will not guess it",
		missing: "cannot read the installed PC Dialer version: check pc.products.dialer in the site profile, or say it with --assume pc.version=X",
		bad:     "installed PC Dialer version %q: %v"})
	if !ok {
		return Version{}, false
	}
	rel := from.Base()
	if !from.Equal(rel) {
		p.Notes = append(p.Notes, Finding{ID: "pc-version-read-as-release", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the document names releases (4.1, 4.1.1, 4.1.2) and no builds; upgrader reads every build of a release alike",
			Message: fmt.Sprintf("reading taken: Dialer %s is read as release %s (what follows major.minor.patch is a build or patch of it)",
				from, rel)})
	}
	verb, rule := "upgrade", "the document allows the 4.1.2 Dialer upgrade only from 4.1 or 4.1.1"
	if flow == pcFlowMigration {
		verb = "migration"
		rule = "the migration upgrades the restored data to the 4.1.2 Dialer (its step 3), which the document allows only from 4.1 or 4.1.1"
	}
	switch {
	case rel.Equal(pc41) || rel.Equal(pc411):
		return rel, true
	case rel.Equal(pc412) && flow == pcFlowUpgrade:
		p.NothingToDo = true
		p.Notes = append(p.Notes, Finding{ID: "pc-already-at-target", Severity: SeverityNote, Skip: SkipNever,
			Source: SourceUpgrader, Rationale: "the document upgrades to 4.1.2; a dialer at 4.1.2 has none of it left to do",
			Message: fmt.Sprintf("PC Dialer %s is installed: already at 4.1.2, nothing to do", from)})
		return rel, false
	case rel.Equal(pc412):
		p.Blockers = append(p.Blockers, Finding{ID: "pc-migration-from-4.1.2", Severity: SeverityBlocker, Skip: SkipWithReason,
			Source: SourceUpgrader,
			Rationale: "the document's migration restores the backup and upgrades it to the 4.1.2 Dialer; it says nothing of a server " +
				"already at 4.1.2, so upgrader asks before planning it",
			Message: fmt.Sprintf("PC Dialer %s is already 4.1.2: the document's migration is written for a dialer it upgrades to 4.1.2. "+
				"--override pc-migration-from-4.1.2=REASON plans it as written (dialer-4.1.2 then finds 4.1.2 in place)", from)})
		return rel, true
	}
	what := "upgrade to 4.1 or 4.1.1 first"
	if rel.Compare(pc412) > 0 {
		what = from.String() + " is newer than 4.1.2: leave it as it is"
		p.Notes = append(p.Notes, Finding{ID: "pc-newer-than-target", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the document names the releases it upgrades from; a later dialer is not one, and 4.1.2 installers over it would go back",
			Message: fmt.Sprintf("reading taken: a dialer later than 4.1.2 (%s) is blocked, not counted as done "+
				"(a POM later than 3.1.1 SP1 counts as nothing to do)", from)})
	}
	p.Blockers = append(p.Blockers, Finding{ID: "pc-" + verb + "-from-4.1-or-4.1.1-only", Severity: SeverityBlocker, Skip: SkipNever,
		Source: SourceVendor, Refs: []Ref{pcFlowRef(pcFlowUpgrade, 1)},
		Message: fmt.Sprintf("PC Dialer %s is installed; %s: %s", from, rule, what)})
	return rel, false
}

func spaceFinding(p *Plan, id, what string, free, need int64) {
	if free >= need {
		return
	}
	p.Blockers = append(p.Blockers, Finding{ID: id, Severity: SeverityBlocker, Skip: SkipNever,
		Source: SourceUpgrader, Rationale: "the documents set no space figures; upgrader checks room before it starts, with its own margins",
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
		spaceFinding(p, "install-space", "installing PC 4.1.2 (2 GiB, upgrader's margin)", free, pcInstallSpace)
	}
}

// databaseStep adds database-4.1.2 when upgrading from 4.1, and otherwise
// a note saying why it is left out.
func databaseStep(flow string, from Version, runsOn string, p *Plan) {
	if !from.Equal(pc41) {
		p.Notes = append(p.Notes, Finding{ID: "database-not-needed", Severity: SeverityNote, Skip: SkipNever,
			Source: SourceVendor, Refs: []Ref{pcFlowRef(flow, pcFlowSteps[flow]["database-4.1.2"])},
			Message: "upgrading from " + from.String() + ": the 4.1.2 database step is only for upgrades from 4.1"})
		return
	}
	s := pcInstallStep(flow, "database-4.1.2", "database", "4.1.2", "upgrading from 4.1: the 4.1.2 database is installed too")
	s.RunsOn = runsOn
	p.Steps = append(p.Steps, s)
}

func pcUpgrade() Procedure {
	return Procedure{ID: "pc-4.1.2-upgrade", Title: "Upgrade Proactive Contact 4.1 / 4.1.1 to 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			from, ok := pcFrom(in, p, pcFlowUpgrade)
			if !ok {
				return
			}
			pcInstallSpaceFinding(in, p)
			up := pcInstallStep(pcFlowUpgrade, "dialer-4.1.2", "dialer", "4.1.2", "the upgrade itself, from "+p.From)
			up.Irreversible = true
			up.Notes = []string{"upgrader's own judgement: the document describes no way back from the 4.1.2 Dialer, so this is the point of no return"}
			p.Steps = append(p.Steps, up)
			databaseStep(pcFlowUpgrade, from, "", p)
			pcOptional(in, p, pcFlowUpgrade, "")
		}}
}

func pcInstall() Procedure {
	return Procedure{ID: "pc-4.1.2-install", Title: "Fresh install of Proactive Contact 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			p.From, p.To = "none", pc412.String()
			if raw, ok := in.Facts.Get(FactPCVersion); ok && raw != "" {
				p.From = raw
				p.Blockers = append(p.Blockers, Finding{ID: "pc-already-installed", Severity: SeverityBlocker, Skip: SkipNever,
					Source:    SourceUpgrader,
					Rationale: "a fresh install starts from the Linux ES media and would replace the PC installed here",
					Message:   fmt.Sprintf("PC Dialer %s is installed here and a fresh install erases it: use pc-4.1.2-upgrade (or pc-4.1.2-migrate to new hardware)", raw)})
				return
			}
			pcInstallSpaceFinding(in, p)
			es := linuxESSteps(pcFlowInstall, "", "a fresh install starts from the Linux ES media")
			es[0].Irreversible = true
			p.Steps = append(p.Steps, es...)
			p.Steps = append(p.Steps,
				pcInstallStep(pcFlowInstall, "dialer-4.1", "dialer", "4.1", "the 4.1.2 dialer installs over 4.1"),
				pcInstallStep(pcFlowInstall, "dialer-4.1.2", "dialer", "4.1.2", "upgrade the new dialer to 4.1.2"),
				pcInstallStep(pcFlowInstall, "database-4.1.2", "database", "4.1.2", "a fresh 4.1.2 system has the 4.1.2 database"))
			pcOptional(in, p, pcFlowInstall, "")
		}}
}

func pcMigrate() Procedure {
	return Procedure{ID: "pc-4.1.2-migrate", Title: "Migrate Proactive Contact from an HP DL385 to an IBM x3650 M2, upgrading to 4.1.2", Product: "PC",
		build: func(in PlanInput, p *Plan) {
			model, _ := in.Facts.Get(FactHostModel)
			p.Notes = append(p.Notes, Finding{ID: "host-model-match", Severity: SeverityNote, Skip: SkipNever,
				Source:    SourceUpgrader,
				Rationale: "the document names the models in prose; a model that merely contains the name (a DL385 G5p) is another machine",
				Message: "reading taken: the server's model (DMI product name) must be " + strings.Join(migrateSourceModels, " or ") +
					" on the old server and " + migrateTargetModel + " on the new one, exactly, once case, repeated spaces, a leading " +
					"HP or IBM and IBM's machine type (-[7947AC1]-) are set aside"})
			if !IsMigrationSource(model) {
				p.Blockers = append(p.Blockers, Finding{ID: "migrate-source-model", Severity: SeverityBlocker, Skip: SkipWithReason,
					Source: SourceVendor, Refs: []Ref{pcFlowRef(pcFlowMigration, 1)},
					Message: fmt.Sprintf("this server is %q; the migration starts on an HP %s: plan it there, or --override migrate-source-model=REASON",
						model, strings.Join(migrateSourceModels, " or "))})
			}
			from, ok := pcFrom(in, p, pcFlowMigration)
			if !ok {
				return
			}
			if size, ok := in.Facts.Int(FactPCDataSize); ok {
				if free, ok := in.Facts.Int(FactFreeBackup); ok {
					spaceFinding(p, "backup-space", "the data backup (its size and 10%, upgrader's margin)", free, size+size/10)
				}
			}
			backup := StepSpec{ID: "backup-source", Title: pcSteps["backup-source"].title, Kind: KindAuto,
				Action: "pc-backup", Skip: SkipNever, RunsOn: RoleSource, Produces: []string{"pc-backup"},
				Reason: "the new server starts from this data", Source: SourceVendor, Refs: pcRefs(pcFlowMigration, "backup-source"),
				Notes: []string{"the document prints material ID 700479025 (the 4.1.2 Dialer) beside this step; upgrader shows it as printed",
					"the document does not say to stop dialing first: calls and list changes made after the backup stay on the old server; plan the cut-over"}}
			p.Steps = append(p.Steps, backup)
			p.Steps = append(p.Steps, linuxESSteps(pcFlowMigration, RoleTarget, "the IBM x3650 M2 starts from the Linux ES media")...)
			p.Steps = append(p.Steps, StepSpec{ID: "restore-backup", Title: pcSteps["restore-backup"].title, Kind: KindAuto,
				Action: "pc-restore", Skip: SkipNever, RunsOn: RoleTarget, Requires: []string{"pc-backup"}, Downtime: true,
				Reason: "carry the dialer data to the new server", Source: SourceVendor, Refs: pcRefs(pcFlowMigration, "restore-backup"),
				Notes: []string{"upgrader's mechanics: copy the backup file to the same path on the new server before this step (scp -p keeps its time)"}})
			up := pcInstallStep(pcFlowMigration, "dialer-4.1.2", "dialer", "4.1.2", "upgrade the restored "+p.From+" system to 4.1.2")
			up.RunsOn = RoleTarget
			up.Notes = []string{"the document lists no \"Install PC 4.1 Dialer\" on the new server before this upgrade: upgrader follows it literally"}
			p.Steps = append(p.Steps, up)
			databaseStep(pcFlowMigration, from, RoleTarget, p)
			pcOptional(in, p, pcFlowMigration, RoleTarget)
			p.Notes = append(p.Notes, Finding{ID: "migration-two-servers", Severity: SeverityNote, Skip: SkipNever,
				Source:    SourceUpgrader,
				Rationale: "the document's steps run on two machines; carrying the run from one to the other is upgrader's own mechanism",
				Message:   "steps run on two servers: after backup-source, export the run (upgrader export), copy it and the backup to the IBM x3650 M2, import it there (upgrader import) and resume; the old server is left untouched"})
		}}
}

// normalModel is a DMI product name as the migration compares it: lower
// case, single spaces, without a leading maker's name (HP, IBM) or IBM's
// machine type suffix (" -[7947AC1]-").
func normalModel(s string) string {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	if i := strings.LastIndex(s, " -["); i >= 0 && strings.HasSuffix(s, "]-") {
		s = s[:i]
	}
	for _, maker := range []string{"hewlett-packard ", "hpe ", "hp ", "ibm "} {
		s = strings.TrimPrefix(s, maker)
	}
	return s
}

// IsMigrationSource reports whether a DMI product name is an HP DL385
// G2 or G5, exactly once normalModel has set its writing aside.
func IsMigrationSource(model string) bool {
	for _, m := range migrateSourceModels {
		if normalModel(model) == normalModel(m) {
			return true
		}
	}
	return false
}

// IsMigrationTarget reports whether a DMI product name is an IBM x3650 M2,
// compared as IsMigrationSource compares.
func IsMigrationTarget(model string) bool {
	return model != "" && normalModel(model) == normalModel(migrateTargetModel)
}

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
