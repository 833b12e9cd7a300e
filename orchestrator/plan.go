package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	"upgrader/orchestrator/profile"
)

// CatalogVersion changes whenever a procedure's steps or rules change, so a
// run started by an older catalog is noticed on resume.
const CatalogVersion = "2026.12-2"

// Severity ranks a preflight finding.
type Severity string

const (
	SeverityBlocker Severity = "blocker" // the run may not start
	SeverityWarning Severity = "warning" // the run may start; read it first
	SeverityNote    Severity = "note"    // for the record
)

// Finding is a preflight result with a stable id and a message that says
// what to do.
type Finding struct {
	ID       string     `json:"id"`
	Severity Severity   `json:"severity"`
	Message  string     `json:"message"`
	Skip     SkipPolicy `json:"skip"`
	// Source and Rationale: as StepSpec's.
	Source    Source `json:"source"`
	Rationale string `json:"rationale,omitempty"`
	Refs      []Ref  `json:"refs,omitempty"`
}

// Plan is what a procedure will do on this host: a pure value, printed by
// `upgrader plan` and executed unchanged by the engine.
type Plan struct {
	Procedure string `json:"procedure"`
	Title     string `json:"title"`
	Site      string `json:"site,omitempty"`
	Host      string `json:"host,omitempty"`
	From      string `json:"from"`
	To        string `json:"to"`
	// NothingToDo is true when the host is already at the target.
	NothingToDo bool       `json:"nothing_to_do"`
	Blockers    []Finding  `json:"blockers"`
	Warnings    []Finding  `json:"warnings"`
	Notes       []Finding  `json:"notes"`
	Steps       []StepSpec `json:"steps"`
	// PointOfNoReturn is the id of the first irreversible step, "" if none.
	PointOfNoReturn string `json:"point_of_no_return"`
	// Outage names the first and last step during which service is down.
	Outage *Outage `json:"outage,omitempty"`
	Facts  Facts   `json:"facts"`
	Inputs Inputs  `json:"inputs"`
	// Fingerprint is the SHA-256 of everything above, see Fingerprint.
	Fingerprint string `json:"fingerprint"`
}

// Outage is the span of steps during which the product is out of service.
type Outage struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Inputs identifies what the plan was built from besides the facts.
type Inputs struct {
	Catalog   string            `json:"catalog"`
	Profile   string            `json:"profile"`
	With      []string          `json:"with,omitempty"`
	Overrides map[string]string `json:"overrides,omitempty"`
}

// Options are the engineer's choices that shape a plan.
type Options struct {
	// With requests optional components, e.g. supervisor, agent.
	With []string
	// Overrides accepts findings whose skip policy is with-reason:
	// finding id → the engineer's reason. They are part of the plan (and
	// its fingerprint) and journaled when the run starts.
	Overrides map[string]string
}

// PlanInput is everything BuildPlan needs.
type PlanInput struct {
	Procedure string
	Facts     Facts
	Profile   profile.Profile
	Options   Options
}

// Procedure is one catalog entry: an id and the pure function that plans it.
type Procedure struct {
	ID      string
	Title   string
	Product string
	build   func(in PlanInput, p *Plan)
}

// catalog lists every procedure upgrader knows, in the order they are shown.
var catalog = []Procedure{
	pcInstall(),
	pcUpgrade(),
	pcMigrate(),
	pomInstall(),
	pomUpgrade(),
}

// Procedures returns the catalog.
func Procedures() []Procedure { return append([]Procedure(nil), catalog...) }

// LookupProcedure finds a procedure by id.
func LookupProcedure(id string) (Procedure, error) {
	for _, p := range catalog {
		if p.ID == id {
			return p, nil
		}
	}
	ids := make([]string, len(catalog))
	for i, p := range catalog {
		ids[i] = p.ID
	}
	return Procedure{}, fmt.Errorf("%w %q; known procedures: %s", ErrUnknownProcedure, id, strings.Join(ids, ", "))
}

// BuildPlan plans a procedure for the given facts. It is pure: the same
// input gives the same plan and fingerprint. Problems with the host are
// blockers in the plan; the error is only for an unknown procedure.
func BuildPlan(in PlanInput) (Plan, error) {
	proc, err := LookupProcedure(in.Procedure)
	if err != nil {
		return Plan{}, err
	}
	with := append([]string(nil), in.Options.With...)
	sort.Strings(with)
	p := Plan{
		Procedure: proc.ID,
		Title:     proc.Title,
		Site:      in.Profile.Site,
		Facts:     maps.Clone(in.Facts), // a copy: the plan is a value; the caller's map may change
		Blockers:  []Finding{},
		Warnings:  []Finding{},
		Notes:     []Finding{},
		Steps:     []StepSpec{},
		Inputs:    Inputs{Catalog: CatalogVersion, Profile: in.Profile.Digest(), With: with, Overrides: maps.Clone(in.Options.Overrides)},
	}
	p.Host, _ = in.Facts.Get(FactHostName)
	proc.build(in, &p)
	applyOverrides(&p, in.Options.Overrides)
	if p.NothingToDo {
		p.Steps = []StepSpec{}
	}
	p.PointOfNoReturn, p.Outage = "", nil
	for _, s := range p.Steps {
		if s.Irreversible && p.PointOfNoReturn == "" {
			p.PointOfNoReturn = s.ID
		}
		if s.Downtime {
			if p.Outage == nil {
				p.Outage = &Outage{From: s.ID}
			}
			p.Outage.To = s.ID
		}
	}
	p.Fingerprint = Fingerprint(p)
	return p, nil
}

// applyOverrides turns each overridden with-reason blocker into a warning
// that carries the reason; an override of a safety rule, or of nothing,
// is itself a blocker.
func applyOverrides(p *Plan, overrides map[string]string) {
	used := map[string]bool{}
	var blockers []Finding
	for _, b := range p.Blockers {
		reason, ok := overrides[b.ID]
		switch {
		case !ok:
			blockers = append(blockers, b)
		case b.Skip != SkipWithReason:
			used[b.ID] = true
			blockers = append(blockers, b, Finding{ID: "override-refused", Severity: SeverityBlocker, Skip: SkipNever,
				Source: SourceUpgrader, Rationale: "a blocker whose skip policy is never holds whatever reason is given",
				Message: fmt.Sprintf("%s is a safety rule and cannot be overridden", b.ID)})
		default:
			used[b.ID] = true
			b.Severity = SeverityWarning
			b.Message += " — OVERRIDDEN: " + reason
			p.Warnings = append(p.Warnings, b)
		}
	}
	ids := make([]string, 0, len(overrides))
	for id := range overrides {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !used[id] {
			blockers = append(blockers, Finding{ID: "override-unused", Severity: SeverityBlocker, Skip: SkipNever,
				Source: SourceUpgrader, Rationale: "an override that matches nothing is a mistake in the command, and would be carried into the journal as if it meant something",
				Message: fmt.Sprintf("--override %s: the plan has no such blocker; remove the override", id)})
		}
	}
	if blockers == nil {
		blockers = []Finding{}
	}
	p.Blockers = blockers
}

// Fingerprint hashes the plan without its own fingerprint field. Map keys
// are sorted by encoding/json, so the value is stable.
func Fingerprint(p Plan) string {
	p.Fingerprint = ""
	facts := make(Facts, len(p.Facts))
	for k, f := range p.Facts {
		if f.Volatile {
			f.Value, f.Source = "", ""
		}
		facts[k] = f
	}
	p.Facts = facts
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("plan cannot be encoded: %v", err)) // programmer error
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ShortFingerprint is the form printed for people: enough to compare by eye.
func ShortFingerprint(fp string) string {
	fp = strings.TrimPrefix(fp, "sha256:")
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return fp
}

// StepIndex returns the index of a step id in the plan, or -1.
func (p Plan) StepIndex(id string) int {
	for i, s := range p.Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}
