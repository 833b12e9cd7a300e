package orchestrator

import "fmt"

// The vendor documents the catalog cites (DOMAIN.md's seeds), and their
// sections exactly as headed there. A vendor step or finding cites the
// section that says what it claims; anything the documents do not say is
// upgrader's own (SourceUpgrader, with its rationale) and cites nothing.
const (
	pomReleaseNotes = "POM 3.1.1 SP1 Release Notes"
	pcSequence      = "Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5)"
)

// Sections of the POM 3.1.1 SP1 release notes.
const (
	secBackingUp       = "Backing up the software"
	secInstalling      = "Installing the release"
	secUpgrading       = "Upgrading to release POM 3.1.1 SP1"
	secRestoring       = "Restoring software to previous version"
	secTroubleshooting = "Troubleshooting the installation"
	secRequiredPatches = "Required patches"
	secCompatibility   = "Product compatibility"
	secFileList        = "File list – Proactive Outreach Manager 3.1.1 SP1 Software"
	secKnownIssues     = "Known issues and workarounds"
	secDNCImport       = "Option to record successful DNC import separate from the contact list import"
	secCallback        = `Change "Callback never expiring" to avoid double negation`
	secDBAlarm         = "DB alarm is raised in case of network outage"
)

// Guides the POM release notes send the reader to, with their document
// numbers on downloads.avaya.com.
const (
	guideUpgrading       = "Upgrading Proactive Outreach Manager 3.1.1 (101051678)"
	guideImplementing    = "Implementing Proactive Outreach Manager 3.1.1 (101051669)"
	guideTroubleshooting = "Troubleshooting Proactive Outreach Manager 3.1.1 (101051676)"
	guideDeveloper       = "Developer Guide for Proactive Outreach Manager 3.1.1 (101051708)"
	guideHelpLibrary     = "POM on-line help library, UsingPOM.zip (101051680)"
)

// The procedures of the PC sequence document's "2. Flow of Installation"
// table, as its first section names them.
const (
	pcFlow          = "2. Flow of Installation"
	pcFlowInstall   = "Fresh Installation of Avaya Proactive Contact 4.1.2"
	pcFlowUpgrade   = "Upgrade to Avaya Proactive Contact 4.1.2"
	pcFlowMigration = "Migration to Avaya Proactive Contact 4.1.2"
)

// pomRef cites a section of the POM release notes and, if the section
// names one, the guide it sends the reader to.
func pomRef(section string, guide ...string) []Ref {
	r := Ref{Document: pomReleaseNotes, Section: section}
	if len(guide) > 0 {
		r.Guide = guide[0]
	}
	return []Ref{r}
}

// pcFlowRef cites one numbered step of a procedure of the PC sequence
// document's flow table.
func pcFlowRef(procedure string, step int) Ref {
	return Ref{Document: pcSequence, Section: fmt.Sprintf("%s: %s, step %d", pcFlow, procedure, step)}
}
