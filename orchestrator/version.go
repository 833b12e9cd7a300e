package orchestrator

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Vendor version numbers for Avaya products (Proactive Outreach Manager "POM",
// Proactive Contact "PC", Experience Portal "EP").
//
// Accepted forms (leading/trailing whitespace is trimmed):
//
//	4.1, 4.1.1, 3.1.1.0.0, 7.2.1.0.0622     dotted, 2 to 6 numeric components
//	3.1.1 SP1, 3.1.1-SP1, 3.1.1_sp1         service pack (major.minor.patch + SP)
//	POM.03.01.01.01.00.003[-r35434]         POM build string
//
// Every form maps onto six numeric components
//
//	[major, minor, patch, servicepack, hotfix, build]
//
// with missing components read as 0. "3.1.1 SP1" is therefore 3.1.1.1 and
// POM.03.01.01.01.02.003 is SP1 hotfix 2, build 3.
//
// Release versus build: a version written with fewer than six components
// (including the SP form) names a *release*; a six-component version names a
// *build* of a release. Vendor documents say "3.1.1 SP1 = POM.03.01.01.01.00.003"
// because 003 is the SP1 GA build. Compare is a total order over all six
// components, so 3.1.1 SP1 (build 0) sorts *before* POM.03.01.01.01.00.003
// (build 3); use SameRelease to ask "is this build of that release?".

const (
	maxVersionLen  = 64 // bytes; checked before any other work
	maxComponents  = 6
	maxRevisionLen = 10 // digits in the POM "-rNNNN" suffix

	versionExpectedForms = "4.1.1, 3.1.1 SP1, POM.03.01.01.01.00.003"
)

// Indexes into Version.comps.
const (
	compMajor = iota
	compMinor
	compPatch
	compSP
	compHotfix
	compBuild
)

// Version is an Avaya product version. The zero value is "unset" (see IsZero).
// Versions are comparable values; use Compare/Equal rather than == because
// equal versions may be written differently (3.1.1 and 3.1.1.0.0).
type Version struct {
	comps    [maxComponents]uint32
	n        int    // number of components as written (6 for POM, 3 for SP form)
	product  string // "POM" when written with the POM. prefix, else ""
	revision string // digits of the POM "-rNNNN" suffix, display only
	sp       bool   // written in the "3.1.1 SP1" form
}

// VersionError reports a version string that could not be parsed.
type VersionError struct {
	Input  string // the offending input, truncated to 64 bytes
	Reason string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("invalid version %q: %s; expected forms: %s",
		truncateBytes(e.Input, maxVersionLen), e.Reason, versionExpectedForms)
}

func truncateBytes(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ParseVersion parses any of the forms documented on Version.
func ParseVersion(s string) (Version, error) {
	fail := func(format string, args ...any) (Version, error) {
		// Truncate here too so a huge input is not kept alive by the error.
		return Version{}, &VersionError{Input: truncateBytes(s, maxVersionLen), Reason: fmt.Sprintf(format, args...)}
	}

	// Length first: callers may hand us arbitrary file contents.
	if len(s) > maxVersionLen {
		return fail("longer than %d bytes (got %d)", maxVersionLen, len(s))
	}
	t := strings.Trim(s, " \t\r\n\v\f")
	if t == "" {
		return fail("empty version")
	}
	for i := 0; i < len(t); i++ {
		switch b := t[i]; {
		case b < 0x20 || b == 0x7f:
			return fail("contains control character %q", t[i:i+1])
		case b >= 0x80:
			return fail("contains non-ASCII byte at offset %d", i)
		}
	}

	if len(t) >= 4 && strings.EqualFold(t[:4], "POM.") {
		v, reason := parsePOM(t[4:])
		if reason != "" {
			return fail("%s", reason)
		}
		return v, nil
	}
	if t[0] == 'v' || t[0] == 'V' {
		return fail("a leading %q is not accepted (write 3.1.1, not v3.1.1)", t[:1])
	}
	if i := indexFold(t, "sp"); i >= 0 {
		v, reason := parseSP(t, i)
		if reason != "" {
			return fail("%s", reason)
		}
		return v, nil
	}
	v, reason := parseDotted(t, 2, maxComponents)
	if reason != "" {
		return fail("%s", reason)
	}
	return v, nil
}

// MustParseVersion is ParseVersion that panics on error. Use it only for
// literals (tables, tests, catalog constants), never for user input.
func MustParseVersion(s string) Version {
	v, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

// parseDotted parses "N.N[.N...]" with between lo and hi components.
// It returns a non-empty reason on failure.
func parseDotted(s string, lo, hi int) (Version, string) {
	parts := strings.Split(s, ".")
	if len(parts) > hi {
		return Version{}, fmt.Sprintf("too many components (%d, at most %d)", len(parts), hi)
	}
	if len(parts) < lo {
		if lo == hi {
			return Version{}, fmt.Sprintf("need exactly %d dot-separated numbers, got %d", lo, len(parts))
		}
		return Version{}, fmt.Sprintf("need at least major.minor (%d to %d dot-separated numbers), got %d", lo, hi, len(parts))
	}
	var v Version
	for i, p := range parts {
		n, reason := parseComponent(fmt.Sprintf("component %d", i+1), p)
		if reason != "" {
			return Version{}, reason
		}
		v.comps[i] = n
	}
	v.n = len(parts)
	return v, ""
}

// parseComponent parses one unsigned decimal number; leading zeros are fine
// (vendor builds are written 0622). what names the field in error messages.
func parseComponent(what, p string) (uint32, string) {
	switch {
	case p == "":
		return 0, what + " is empty"
	case p[0] == '-':
		return 0, fmt.Sprintf("%s %q is negative", what, p)
	case !allDigits(p):
		return 0, fmt.Sprintf("%s %q is not a number", what, p)
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return 0, fmt.Sprintf("%s %q is out of range (max %d)", what, p, uint32(1<<32-1))
	}
	return uint32(n), ""
}

// parseSP parses "M.m.p<sep>SP<n>" where t[i:] starts with "SP" (any case).
func parseSP(t string, i int) (Version, string) {
	if i == 0 || !strings.ContainsRune(" -_", rune(t[i-1])) {
		return Version{}, "service pack must follow major.minor.patch after a space, '-' or '_' (e.g. 3.1.1 SP1)"
	}
	num := t[i+2:]
	if num == "" {
		return Version{}, fmt.Sprintf("service pack %q has no number", t[i:])
	}
	sp, reason := parseComponent("service pack number", num)
	if reason != "" {
		return Version{}, reason
	}
	if sp == 0 {
		return Version{}, "service pack numbers start at 1"
	}
	// The SP occupies component 4, so the base must be exactly major.minor.patch.
	v, reason := parseDotted(t[:i-1], 3, 3)
	if reason != "" {
		return Version{}, "before the service pack: " + reason
	}
	v.comps[compSP] = sp
	v.sp = true
	return v, ""
}

// parsePOM parses what follows "POM.": MM.mm.pp.SS.hh.bbb[-rNNNN].
//
// Widths are bounded (1-2 digits, build 1-6, revision 1-10) because real build
// strings are fixed-width, and so that String(), which zero-pads, always fits
// back within the 64-byte input limit.
func parsePOM(rest string) (Version, string) {
	var rev string
	if j := strings.IndexByte(rest, '-'); j >= 0 {
		suffix := rest[j+1:]
		if suffix == "" || (suffix[0] != 'r' && suffix[0] != 'R') {
			return Version{}, fmt.Sprintf("unexpected suffix %q after POM build (only -rNNNN is allowed)", rest[j:])
		}
		rev = suffix[1:]
		switch {
		case rev == "" || !allDigits(rev):
			return Version{}, fmt.Sprintf("revision %q must be -r followed by digits", rest[j:])
		case len(rev) > maxRevisionLen:
			return Version{}, fmt.Sprintf("revision %q has more than %d digits", rest[j:], maxRevisionLen)
		}
		rest = rest[:j]
	}
	v, reason := parseDotted(rest, maxComponents, maxComponents)
	if reason != "" {
		return Version{}, "POM build " + reason + " (POM.MM.mm.pp.SS.hh.bbb)"
	}
	for i, p := range strings.Split(rest, ".") {
		width := 2
		if i == compBuild {
			width = 6
		}
		if len(p) > width {
			return Version{}, fmt.Sprintf("POM build component %d %q has more than %d digits", i+1, p, width)
		}
	}
	v.product = "POM"
	v.revision = rev
	return v, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// indexFold is a case-insensitive strings.Index for an ASCII lower-case needle.
func indexFold(s, lowerNeedle string) int {
	for i := 0; i+len(lowerNeedle) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(lowerNeedle)], lowerNeedle) {
			return i
		}
	}
	return -1
}

// String returns the canonical form; ParseVersion(v.String()) gives back an
// equal version with the same product, revision and String. The zero Version
// prints as "".
func (v Version) String() string {
	c := v.comps
	switch {
	case v.n == 0:
		return ""
	case v.product != "":
		s := fmt.Sprintf("%s.%02d.%02d.%02d.%02d.%02d.%03d", v.product, c[0], c[1], c[2], c[3], c[4], c[5])
		if v.revision != "" {
			s += "-r" + v.revision
		}
		return s
	case v.sp:
		return fmt.Sprintf("%d.%d.%d SP%d", c[compMajor], c[compMinor], c[compPatch], c[compSP])
	}
	var b strings.Builder
	for i := 0; i < v.n; i++ {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.FormatUint(uint64(c[i]), 10))
	}
	return b.String()
}

// Compare orders versions lexicographically on all six components and returns
// -1, 0 or +1. Product, revision and written form do not take part.
func (v Version) Compare(o Version) int {
	return compareComps(v.comps[:], o.comps[:])
}

func compareComps(a, b []uint32) int {
	for i := range a {
		switch {
		case a[i] < b[i]:
			return -1
		case a[i] > b[i]:
			return 1
		}
	}
	return 0
}

// Equal reports Compare(o) == 0, so 3.1.1 equals 3.1.1.0.0 and a POM build
// equals itself with or without its -r revision.
func (v Version) Equal(o Version) bool { return v.Compare(o) == 0 }

// Less reports Compare(o) < 0; handy for sort.Slice.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// Release returns the release v belongs to: the first five components with
// the build dropped, as a plain dotted version (e.g. POM.03.01.01.01.00.003-r35434
// -> 3.1.1.1.0). Versions without a build component are returned unchanged.
func (v Version) Release() Version {
	if v.n < maxComponents {
		return v
	}
	r := Version{comps: v.comps, n: maxComponents - 1}
	r.comps[compBuild] = 0
	return r
}

// SameRelease reports whether v and o agree on major, minor, patch, service
// pack and hotfix, ignoring the build: 3.1.1 SP1 and POM.03.01.01.01.00.003
// are the same release even though Compare orders them.
func (v Version) SameRelease(o Version) bool {
	return compareComps(v.comps[:compBuild], o.comps[:compBuild]) == 0
}

// Base is v's major.minor.patch alone, as a dotted version: the release
// line a build, service pack or patch belongs to (7.2.0.0.1202 → 7.2.0,
// 4.1.0.5 → 4.1.0).
func (v Version) Base() Version {
	if v.n == 0 {
		return v
	}
	b := Version{n: 3}
	copy(b.comps[:3], v.comps[:3])
	return b
}

func (v Version) Major() uint64       { return uint64(v.comps[compMajor]) }
func (v Version) Minor() uint64       { return uint64(v.comps[compMinor]) }
func (v Version) Patch() uint64       { return uint64(v.comps[compPatch]) }
func (v Version) ServicePack() uint64 { return uint64(v.comps[compSP]) }
func (v Version) Hotfix() uint64      { return uint64(v.comps[compHotfix]) }
func (v Version) Build() uint64       { return uint64(v.comps[compBuild]) }

// Product is "POM" for versions written as POM build strings, else "".
func (v Version) Product() string { return v.product }

// Revision is the digits of a POM "-rNNNN" suffix, else "". Display only.
func (v Version) Revision() string { return v.revision }

// IsZero reports whether v is the zero Version (never set by a successful
// parse). Note "0.0" parses to a non-zero Version that still Equals Version{}.
func (v Version) IsZero() bool { return v.n == 0 }

// Semver returns major.minor.patch as a semver version for range checks;
// service pack, hotfix and build are dropped.
func (v Version) Semver() *semver.Version {
	return semver.New(v.Major(), v.Minor(), v.Patch(), "", "")
}

// Satisfies checks major.minor.patch against a Masterminds/semver constraint
// such as ">=4.1, <4.1.2" or "~3.1.1". Because only three components are
// checked, 3.1.1 SP1 satisfies "=3.1.1".
func (v Version) Satisfies(constraint string) (bool, error) {
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		return false, fmt.Errorf("invalid version constraint %q: %w", constraint, err)
	}
	return c.Check(v.Semver()), nil
}

// MarshalText writes String(); the zero Version marshals as "".
func (v Version) MarshalText() ([]byte, error) {
	return []byte(v.String()), nil
}

// UnmarshalText parses text with ParseVersion. Empty (or all-whitespace) text
// yields the zero Version so that an unset field round-trips; v is left
// untouched on error.
func (v *Version) UnmarshalText(text []byte) error {
	if len(text) <= maxVersionLen && strings.Trim(string(text), " \t\r\n\v\f") == "" {
		*v = Version{}
		return nil
	}
	p, err := ParseVersion(string(text))
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// installedReading says how a plan reads an installed product's version
// and what it says when it cannot.
type installedReading struct {
	fact    string
	blocker string // the finding's ID
	why     string // the blocker's rationale
	missing string // the message when the fact is absent
	bad     string // the message (with %q and %v) when it does not parse
}

// readInstalled reads the installed version the fact holds into p.From;
// one it cannot read is a blocker (upgrader will not guess it).
func readInstalled(in PlanInput, p *Plan, r installedReading) (Version, bool) {
	block := func(msg string) {
		p.Blockers = append(p.Blockers, Finding{ID: r.blocker, Severity: SeverityBlocker, Skip: SkipNever,
			Source: SourceUpgrader, Rationale: r.why, Message: msg})
	}
	raw, ok := in.Facts.Get(r.fact)
	if !ok || raw == "" {
		p.From = "unknown"
		block(r.missing)
		return Version{}, false
	}
	from, err := ParseVersion(raw)
	if err != nil {
		p.From = raw
		block(fmt.Sprintf(r.bad, raw, err))
		return Version{}, false
	}
	p.From = from.String()
	return from, true
}
