package orchestrator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"upgrader/orchestrator/profile"
)

// The MPPs of the release notes' "Required patches": the MPP patch each EP
// release needs, and the ccxml.jsi sizes "on ALL MPPs" of an EP 7.2 site
// that stays on 7.2. Each MPP is on this server (its files are changed
// here) or on its own server, reached over SSH (steps/remote); what was
// read on each is in its facts (MPPFact).

// mppSite is one MPP as the plan sees it: where it is and what was read.
type mppSite struct {
	profile.MPP
	local bool
	where string // "this server" or user@host:port
	facts Facts
}

func (m mppSite) fact(what string) (string, bool) { return m.facts.Get(MPPFact(m.Name, what)) }

// label names the MPP and where it is, for messages.
func (m mppSite) label() string { return "MPP " + m.Name + " (" + m.where + ")" }

func mppSites(in PlanInput) []mppSite {
	this, _ := in.Facts.Get(FactHostName)
	var out []mppSite
	for _, m := range in.Profile.MPPs {
		s := mppSite{MPP: m, local: m.OnThisServer(this), where: "this server", facts: in.Facts}
		if !s.local {
			host, port, user := in.Profile.SSHTarget(m)
			s.where = user + "@" + joinHostPort(host, port)
		}
		out = append(out, s)
	}
	return out
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// mppProblem is why the plan cannot change an MPP itself ("" when it
// can), and the id of the blocker that says so.
func (m mppSite) problem() (id, why string) {
	reachable, read := m.fact(MPPReachable)
	switch {
	case !read && !m.local:
		return "mpp-unreachable-" + m.Name, "it was not checked (no facts were read on it)"
	case reachable == "false":
		e, _ := m.fact(MPPError)
		return "mpp-unreachable-" + m.Name, e
	}
	if e, ok := m.fact(MPPConfigError); ok {
		return "mpp-config-unreadable-" + m.Name, e
	}
	return "", ""
}

// staysOnEP720 says the release notes' mppconfig.xml change applies: POM
// 3.1.x on EP 7.2 that will not move to 7.2.1.
func staysOnEP720(in PlanInput) bool {
	return onEP720(in) && !in.Profile.EP.MovingTo721
}

func onEP720(in PlanInput) bool {
	raw, _ := in.Facts.Get(FactEPVersion)
	ep, err := ParseVersion(raw)
	return err == nil && ep.Base().Equal(ep720)
}

// mppRestartRationale is why upgrader offers an MPP restart gate at all.
const mppRestartRationale = "the release notes do not say whether an MPP must be restarted to read the new ccxml.jsi sizes; " +
	"upgrader restarts none by itself, and offers the site a gate to restart each MPP in turn"

// mppConfigSteps change each MPP's mppconfig.xml, one MPP at a time (the
// others keep serving calls): here for an MPP on this server, over SSH
// for one on its own server. An MPP the plan cannot reach, overridden by
// the engineer, becomes the operator's gate, by hand there.
func mppConfigSteps(in PlanInput) []StepSpec {
	if !staysOnEP720(in) {
		return nil
	}
	restart := slices.Contains(in.Options.With, "mpp-restart")
	var out []StepSpec
	for _, m := range mppSites(in) {
		s := StepSpec{
			ID: "mpp-config-" + m.Name, Title: "Set ccxml.jsi sizes in mppconfig.xml on MPP " + m.Name + " (" + m.where + ")",
			Kind: KindAuto, Action: "mpp-config", Skip: SkipWithReason,
			Reason: "POM 3.1.x on EP 7.2 that stays on 7.2 sets both parameters on ALL MPPs, after a backup of the file",
			Source: SourceVendor, Refs: pomRef(secRequiredPatches),
			Params: map[string]string{"mpp": m.Name, "config": m.Config,
				MPPRuntimeSizeParam: MPPRuntimeSize, MPPContextSizeParam: MPPContextSize},
		}
		if !m.local {
			host, port, user := in.Profile.SSHTarget(m.MPP)
			s.Params["host"], s.Params["port"], s.Params["user"] = host, strconv.Itoa(port), user
			s.Notes = append(s.Notes, "over SSH as "+m.where+" (host key checked against known_hosts); the original stays on the MPP as "+
				m.Config+".upgrader-orig and a copy with its SHA-256 in upgrader's state directory")
		}
		if rt, ok := m.fact(MPPFactRuntimeSize); ok {
			ct, _ := m.fact(MPPFactContextSize)
			s.Notes = append(s.Notes, fmt.Sprintf("read before the run: %s=%s, %s=%s", MPPRuntimeSizeParam, orAbsent(rt), MPPContextSizeParam, orAbsent(ct)))
		}
		if id, _ := m.problem(); id != "" {
			if _, overridden := in.Options.Overrides[id]; overridden {
				s.Kind, s.Action = KindGate, "gate"
				s.Title = "Set ccxml.jsi sizes in mppconfig.xml on MPP " + m.Name + " (" + m.where + ", by hand)"
				s.Instructions = fmt.Sprintf("On MPP %s (%s): copy %s to a backup, then set <parameter name=\"%s\">%s</parameter> "+
					"and <parameter name=\"%s\">%s</parameter> in it. Confirm when done.",
					m.Name, m.where, m.Config, MPPRuntimeSizeParam, MPPRuntimeSize, MPPContextSizeParam, MPPContextSize)
				s.Notes = nil
			}
		}
		out = append(out, s)
		if restart {
			out = append(out, StepSpec{
				ID: "mpp-restart-" + m.Name, Title: "Restart MPP " + m.Name + " (" + m.where + ") if the site does (upgrader's own gate)",
				Kind: KindGate, Action: "gate", Skip: SkipWithReason,
				Reason: "requested with --with mpp-restart", Source: SourceUpgrader, Rationale: mppRestartRationale,
				Instructions: fmt.Sprintf("Restart MPP %s (%s) so that it reads the new ccxml.jsi sizes: take it out of service "+
					"first so its calls move to the other MPPs (e.g. from the MPP Manager of Experience Portal Manager), restart it, "+
					"and confirm once it is back in service. The next MPP is changed only then.", m.Name, m.where),
			})
		}
	}
	return out
}

func orAbsent(v string) string {
	if v == "" {
		return "(absent)"
	}
	return v
}

// pomMPPFindings: the mppconfig.xml change is for ALL MPPs; the plan says
// how many the profile lists and where each is, and blocks on one it
// cannot reach or read.
func pomMPPFindings(in PlanInput, p *Plan) {
	if onEP720(in) && in.Profile.EP.MovingTo721 {
		p.Warnings = append(p.Warnings, Finding{ID: "ep-moving-to-7.2.1", Severity: SeverityWarning, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secRequiredPatches),
			Message: "the profile says the site moves to EP 7.2.1 (ep.moving_to_7_2_1), so this plan leaves the ccxml.jsi sizes of the MPPs " +
				"as they are: the release notes spare only such sites that change. Upgrade EP to 7.2.1 with MPP patch 7.2.1.0.0622.tar.gz " +
				"(download ID AAEP0000104)"})
	}
	restart := slices.Contains(in.Options.With, "mpp-restart")
	if !staysOnEP720(in) {
		if restart {
			p.Notes = append(p.Notes, Finding{ID: "mpp-restart-unused", Severity: SeverityNote, Skip: SkipNever,
				Source: SourceUpgrader, Rationale: mppRestartRationale,
				Message: "--with mpp-restart: this plan changes no MPP's mppconfig.xml, so it has no MPP to restart"})
		}
		return
	}
	sites := mppSites(in)
	if len(sites) == 0 {
		p.Blockers = append(p.Blockers, Finding{ID: "mpp-none-listed", Severity: SeverityBlocker, Skip: SkipWithReason,
			Source: SourceVendor, Refs: pomRef(secRequiredPatches),
			Message: "POM 3.1.x on EP 7.2 that stays on 7.2 sets the ccxml.jsi sizes in mppconfig.xml on ALL MPPs, and the profile " +
				"lists none: list every MPP under mpps (name, host, config), or --override mpp-none-listed=REASON once the sizes are set " +
				"by hand on every MPP"})
		return
	}
	where := make([]string, len(sites))
	for i, m := range sites {
		how := "its files here"
		if !m.local {
			how = "over SSH"
		}
		where[i] = m.Name + " on " + m.where + " (" + how + ")"
	}
	p.Notes = append(p.Notes, Finding{ID: "mpp-where", Severity: SeverityNote, Skip: SkipNever,
		Source: SourceUpgrader,
		Rationale: "the release notes say ALL MPPs; upgrader knows only the MPPs the profile lists, and changes them one at a time " +
			"so that the others keep serving calls",
		Message: fmt.Sprintf("ALL MPPs: the profile lists %d, changed in this order, one at a time: %s. Check that Experience Portal "+
			"Manager lists no other: an MPP missing from the profile keeps its old sizes", len(sites), strings.Join(where, "; "))})
	for _, m := range sites {
		id, why := m.problem()
		if id == "" {
			continue
		}
		what := "cannot be reached"
		todo := "as the error says"
		if strings.HasPrefix(id, "mpp-config-unreadable-") {
			what, todo = "has no mppconfig.xml upgrader can read at "+m.Config, "correct mpps[].config in the profile, or the file on the MPP,"
		}
		p.Blockers = append(p.Blockers, Finding{ID: id, Severity: SeverityBlocker, Skip: SkipWithReason,
			Source: SourceUpgrader,
			Rationale: "upgrader changes an MPP's mppconfig.xml only once it has read it through a verified connection; ALL MPPs " +
				"must have the change, so one it cannot read holds the plan",
			Message: fmt.Sprintf("%s %s: %s. Fix it %s and plan again, or --override %s=REASON to make this MPP's change "+
				"by hand (an operator gate)", m.label(), what, why, todo, id)})
	}
	message := "the release notes do not say whether an MPP must be restarted to read the new ccxml.jsi sizes: upgrader restarts " +
		"none. Plan with --with mpp-restart for a gate after each MPP's change, to restart it while the others keep serving calls"
	if restart {
		message = "the release notes do not say whether an MPP must be restarted to read the new ccxml.jsi sizes: --with mpp-restart " +
			"adds upgrader's own gate after each MPP's change, to restart it while the others keep serving calls"
	}
	p.Notes = append(p.Notes, Finding{ID: "mpp-restart-unstated", Severity: SeverityNote, Skip: SkipNever,
		Source: SourceUpgrader, Rationale: mppRestartRationale, Message: message})
}

// mppPatchFindings: EP release need.release needs patch need.patch on
// every MPP. Each MPP's patch is the one read on it (mpps[].version), or
// else ep.mpp_patch as the profile states it; the plan says which.
func mppPatchFindings(in PlanInput, p *Plan, epRaw string, need epPatch) {
	type have struct{ who, raw, from string }
	var haves []have
	var fromProfile []string
	profileRaw, _ := in.Facts.Get(FactEPMPPPatch)
	for _, m := range mppSites(in) {
		hasSource := m.Version.File != "" || len(m.Version.Command) > 0
		raw, read := m.fact(MPPPatch)
		switch {
		case read:
			haves = append(haves, have{m.label(), raw, "read on the MPP"})
		case hasSource:
			why, ok := m.fact(MPPPatchError)
			if !ok {
				if id, _ := m.problem(); strings.HasPrefix(id, "mpp-unreachable-") {
					continue // its own blocker says why
				}
				why = "it was not read"
			}
			p.Blockers = append(p.Blockers, Finding{ID: "mpp-patch-unreadable-" + m.Name, Severity: SeverityBlocker, Skip: SkipNever,
				Source:    SourceUpgrader,
				Rationale: "the profile says where to read this MPP's patch level; a patch upgrader cannot read is not taken on trust",
				Message: fmt.Sprintf("the patch level of %s cannot be read as mpps[].version says: %s. Correct mpps[].version "+
					"(or remove it to take ep.mpp_patch as the profile states it) and plan again", m.label(), why)})
		default:
			haves = append(haves, have{m.label(), profileRaw, "as stated in the profile (ep.mpp_patch), not read from the MPP"})
			fromProfile = append(fromProfile, m.Name)
		}
	}
	if len(in.Profile.MPPs) == 0 {
		haves = []have{{"", profileRaw, ""}}
	}
	if len(fromProfile) > 0 {
		p.Notes = append(p.Notes, Finding{ID: "mpp-patch-from-profile", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "upgrader reads an MPP's patch level only where the profile says how (mpps[].version); otherwise it has the profile's word",
			Message: fmt.Sprintf("the MPP patch level of %s is ep.mpp_patch (%s) as stated in the profile, not read from the MPP: "+
				"give mpps[].version (a file or command on the MPP, and a pattern) to read it there", strings.Join(fromProfile, ", "), noneGiven(profileRaw))})
	}
	var missing, later []string
	for _, h := range haves {
		patch, perr := ParseVersion(h.raw)
		who := ""
		if h.who != "" {
			who = h.who + ": "
		}
		from := ""
		if h.from != "" {
			from = " (" + h.from + ")"
		}
		switch {
		case h.raw == "" || perr != nil || !patch.Base().Equal(need.release) || patch.Compare(need.patch) < 0:
			installed := "none recorded"
			switch {
			case h.raw == "":
			case perr == nil && !patch.Base().Equal(need.release):
				installed = fmt.Sprintf("%s, a patch of EP %s, not of %s", h.raw, patch.Base(), need.release)
			default:
				installed = h.raw
			}
			missing = append(missing, who+installed+from)
		case patch.Compare(need.patch) > 0:
			later = append(later, who+h.raw+from)
		}
	}
	if len(missing) > 0 {
		todo := "Install the patch, then record it as ep.mpp_patch in the profile"
		if len(in.Profile.MPPs) > 0 {
			todo = "Install the patch on each MPP named, then plan again (record it as ep.mpp_patch where the profile states it)"
		}
		p.Blockers = append(p.Blockers, Finding{ID: "ep-mpp-patch-missing", Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceVendor, Refs: pomRef(secRequiredPatches),
			Message: fmt.Sprintf("Experience Portal %s needs MPP patch %s (download ID %s) on every MPP; installed: %s. %s",
				epRaw, need.file, need.download, strings.Join(missing, "; "), todo)})
	}
	if len(later) > 0 {
		p.Notes = append(p.Notes, Finding{ID: "ep-mpp-patch-later", Severity: SeverityNote, Skip: SkipNever,
			Source:    SourceUpgrader,
			Rationale: "the release notes name one patch per EP release and say nothing of later ones",
			Message: fmt.Sprintf("reading taken: MPP patch %s is later than the %s the release notes name for EP %s; upgrader "+
				"counts a later patch of the same EP release as including it (the compatibility matrix has the last word)",
				strings.Join(later, "; "), need.file, need.release)})
	}
}

func noneGiven(v string) string {
	if v == "" {
		return "none given"
	}
	return v
}
