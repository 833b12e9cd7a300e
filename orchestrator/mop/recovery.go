package mop

// The release notes' words on recovery, quoted exactly, with the section
// they are under (seed 000, POM 3.1.1 SP1 Release Notes).
const (
	pomNotes          = "POM 3.1.1 SP1 Release Notes"
	pomNoRestoreSect  = "Restoring software to previous version"
	pomNoRestoreQuote = "The restore option to previous version is not supported for POM 3.1.1 SP1 release."
	pomBackupSect     = "Backing up the software"
	pomBackupQuote    = "You must manually take the backup of the POM database as installation or upgrade modifies schema during POM upgrade."
	pomTroubleSect    = "Troubleshooting the installation"
	pomTroubleQuote   = "Refer to the \"Troubleshooting Proactive Outreach Manager 3.1.1\" guide section \"Troubleshooting install, upgrade, and uninstall issues\" at https://downloads.avaya.com/css/P8/documents/101051676 for details."
	pcSequenceDoc     = "Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5)"
)

func quote(b *mdb, doc, section, text string) {
	b.p("> %s\n>\n> — %s, \"%s\"", esc(text), esc(doc), esc(section))
}

// recovery says what the documents say about going back, quoted and
// cited, and apart from it what upgrader adds, labelled as its own.
func (d doc) recovery(b *mdb) {
	b.p("## Recovery")
	p := d.Plan
	backup := p.StepIndex("backup-db")
	switch d.product {
	case "POM":
		b.p("**No rollback.** The release notes say:")
		quote(b, pomNotes, pomNoRestoreSect, pomNoRestoreQuote)
		quote(b, pomNotes, pomBackupSect, pomBackupQuote)
		quote(b, pomNotes, pomTroubleSect, pomTroubleQuote)
		switch {
		case backup >= 0 && p.Procedure == "pom-3.1.1-sp1-upgrade":
			b.p("Upgrader's own advice, not the release notes': once %s has started, the way back is to restore the verified database backup "+
				"made by %s (its path and SHA-256 are in the journal, `upgrader journal`) onto POM 3.1.1 installed again (this host had %s).",
				esc(d.pnrStep()), esc(d.stepRef(backup)), esc(p.From))
		case backup >= 0:
			b.p("Upgrader's own advice, not the release notes': the POM database that exists is backed up and verified by %s "+
				"before the install (its path and SHA-256 are in the journal, `upgrader journal`); restore it from there if the install must be undone.",
				esc(d.stepRef(backup)))
		default:
			b.p("This plan backs up no POM database: the host has none yet, or the plan stops before its steps.")
		}
	default:
		b.p("The %s says nothing about rollback, recovery or going back to an earlier release. The release notes named in each step "+
			"are the ones to follow; this MOP does not say what they contain.", esc(pcSequenceDoc))
		switch p.Procedure {
		case "pc-4.1.2-migrate":
			b.p("What the document's own steps give: step 1 takes a data backup from the HP DL385 and step 3 restores it on the IBM x3650 M2.")
			b.p("Upgrader's own reading, not the document's: no step of this plan changes the old server after its backup, so until the " +
				"cut-over the old server is the way back. Calls and list changes made on the old server after the backup are not on the new one.")
		case "pc-4.1.2-upgrade":
			if d.pnr < 0 {
				break
			}
			b.p("Upgrader's own judgement, not the document's: the document describes no way back from the 4.1.2 Dialer, so %s is the point "+
				"of no return; this plan takes no backup of its own, as the document names none: take the site's usual backup of the server before the window.",
				esc(d.pnrStep()))
		case "pc-4.1.2-install":
			b.p("Upgrader's own reading, not the document's: a fresh install starts by installing Linux ES on the server, which replaces " +
				"what was there; there is nothing for upgrader to go back to.")
		}
	}
	if d.pnr >= 0 {
		b.p("Before the point of no return the run can be stopped with `upgrader abort --reason TEXT`; what earlier steps did stays done. " +
			"After it, abort is refused: the run is carried on (`upgrader resume`, `upgrader retry`).")
	}
}

func (d doc) pnrStep() string {
	if d.pnr < 0 {
		return "the installer"
	}
	return d.stepRef(d.pnr)
}
