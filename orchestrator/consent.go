package orchestrator

import (
	"maps"
	"time"
)

// How an operator consented to a run (Consent.Via).
const (
	ConsentTerminal    = "terminal"    // typed yes to the plan shown on a terminal
	ConsentYes         = "--yes"       // --yes: every question answered yes, unattended
	ConsentFingerprint = "fingerprint" // the fingerprint from 'upgrader plan': exactly that plan
)

// Consent is the operator's agreement to a run, recorded with it when it is
// created. Nothing irreversible starts without one (DESIGN.md invariant
// 10): a run needs it to start at all, and its irreversible steps need it
// to cover the point of no return, or an operator's confirmation of that
// step when the run reaches it.
type Consent struct {
	Actor string    `json:"actor"`
	At    time.Time `json:"at"`
	Via   string    `json:"via"`
	// PointOfNoReturn says the consent covers the irreversible steps: given
	// with --yes or the plan's fingerprint. A yes typed at a terminal before
	// the run does not: the terminal is asked again, showing the verified
	// backup and media, right before the first irreversible step.
	PointOfNoReturn bool `json:"point_of_no_return"`
	// Yes answers every operator gate (--yes).
	Yes bool `json:"yes,omitempty"`
	// Answers are the answers file: gate (or irreversible step) id → the
	// attestation fields to confirm it with, for unattended runs.
	Answers map[string]map[string]string `json:"answers,omitempty"`
}

// Covers reports whether the consent lets the engine go on past spec
// without asking, and with which attestation. A gate is covered by --yes or
// the answers file; an irreversible step by a consent to the point of no
// return, --yes, or the answers file naming it.
func (c *Consent) Covers(spec StepSpec) (map[string]string, bool) {
	if c == nil {
		return nil, false
	}
	if given, ok := c.Answers[spec.ID]; ok {
		att := maps.Clone(given)
		if att == nil {
			att = map[string]string{}
		}
		att["answer"], att["via"] = "yes", "answers file"
		return att, true
	}
	if c.Yes {
		return map[string]string{"answer": "yes", "via": ConsentYes}, true
	}
	if spec.Irreversible && spec.Kind != KindGate && c.PointOfNoReturn {
		return map[string]string{"answer": "yes", "via": c.Via}, true
	}
	return nil, false
}

// NeedsConsent reports whether the run must stop for the operator before
// step i: a gate not yet confirmed, or the first attempt of an irreversible
// step whose point of no return nobody consented to.
func NeedsConsent(run Run, recs []StepRecord, i int) bool {
	spec, rec := run.Plan.Steps[i], recs[i]
	if rec.Confirmation != nil {
		return false
	}
	if spec.Kind == KindGate {
		return true
	}
	// A step that has begun is past the point of no return already: it
	// was consented to when it began (or before consent was recorded).
	return spec.Irreversible && rec.Attempts == 0
}
