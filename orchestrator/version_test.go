package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
)

type validVersionCase struct {
	name, in string
	comps    [6]uint32
	product  string
	revision string
	str      string // expected String()
}

var validVersionCases = []validVersionCase{
	{"two components", "4.1", [6]uint32{4, 1}, "", "", "4.1"},
	{"three components", "4.1.1", [6]uint32{4, 1, 1}, "", "", "4.1.1"},
	{"three components 4.1.2", "4.1.2", [6]uint32{4, 1, 2}, "", "", "4.1.2"},
	{"three components 3.1.1", "3.1.1", [6]uint32{3, 1, 1}, "", "", "3.1.1"},
	{"five with zeros", "3.1.1.0.0", [6]uint32{3, 1, 1}, "", "", "3.1.1.0.0"},
	{"six components", "3.1.1.0.0.7", [6]uint32{3, 1, 1, 0, 0, 7}, "", "", "3.1.1.0.0.7"},
	{"EP build", "7.2.0.0.1202", [6]uint32{7, 2, 0, 0, 1202}, "", "", "7.2.0.0.1202"},
	{"EP build leading zero", "7.2.1.0.0622", [6]uint32{7, 2, 1, 0, 622}, "", "", "7.2.1.0.622"},
	{"leading zeros everywhere", "03.01.01", [6]uint32{3, 1, 1}, "", "", "3.1.1"},
	{"max uint32", "4294967295.0", [6]uint32{4294967295}, "", "", "4294967295.0"},
	{"zero version", "0.0", [6]uint32{}, "", "", "0.0"},
	{"surrounding whitespace", " \t4.1.1\r\n", [6]uint32{4, 1, 1}, "", "", "4.1.1"},
	{"SP space", "3.1.1 SP1", [6]uint32{3, 1, 1, 1}, "", "", "3.1.1 SP1"},
	{"SP dash", "3.1.1-SP1", [6]uint32{3, 1, 1, 1}, "", "", "3.1.1 SP1"},
	{"SP underscore", "3.1.1_SP1", [6]uint32{3, 1, 1, 1}, "", "", "3.1.1 SP1"},
	{"SP lower case", "3.1.1 sp1", [6]uint32{3, 1, 1, 1}, "", "", "3.1.1 SP1"},
	{"SP mixed case leading zero", "3.1.1-Sp02", [6]uint32{3, 1, 1, 2}, "", "", "3.1.1 SP2"},
	{"POM build", "POM.03.01.01.01.00.003", [6]uint32{3, 1, 1, 1, 0, 3}, "POM", "", "POM.03.01.01.01.00.003"},
	{"POM build revision", "POM.03.01.01.01.00.003-r35434", [6]uint32{3, 1, 1, 1, 0, 3}, "POM", "35434", "POM.03.01.01.01.00.003-r35434"},
	{"POM hotfix", "POM.03.01.01.01.02.003", [6]uint32{3, 1, 1, 1, 2, 3}, "POM", "", "POM.03.01.01.01.02.003"},
	{"POM lower case prefix", "pom.03.01.01.01.00.003-R1", [6]uint32{3, 1, 1, 1, 0, 3}, "POM", "1", "POM.03.01.01.01.00.003-r1"},
	{"POM unpadded", "POM.3.1.1.1.0.3", [6]uint32{3, 1, 1, 1, 0, 3}, "POM", "", "POM.03.01.01.01.00.003"},
	{"POM wide build", "POM.04.01.02.00.00.123456-r0042", [6]uint32{4, 1, 2, 0, 0, 123456}, "POM", "0042", "POM.04.01.02.00.00.123456-r0042"},
}

type invalidVersionCase struct {
	name, in string
	reason   string // substring expected in the error
}

var invalidVersionCases = []invalidVersionCase{
	{"empty", "", "empty version"},
	{"whitespace only", " \t\n ", "empty version"},
	{"non-numeric component", "1.2.x", `component 3 "x" is not a number`},
	{"path traversal", "../", "component 1 is empty"},
	{"NUL byte", "3.1\x00.1", "control character"},
	{"escape character", "3.1.1\x1b[0m", "control character"},
	{"DEL", "3.1.1\x7f", "control character"},
	{"non-ASCII", "3.1.1é", "non-ASCII"},
	{"too long", strings.Repeat("1.", 32) + "1", "longer than 64 bytes"},
	{"overflow", "99999999999.1", `component 1 "99999999999" is out of range`},
	{"overflow by one", "4294967296.0", "out of range"},
	{"seven components", "1.2.3.4.5.6.7", "too many components (7"},
	{"single component", "3", "need at least major.minor"},
	{"empty middle component", "3..1", "component 2 is empty"},
	{"trailing dot", "3.1.", "component 3 is empty"},
	{"leading dot", ".3.1", "component 1 is empty"},
	{"negative", "-3.1", `component 1 "-3" is negative`},
	{"negative later", "3.-1", `component 2 "-1" is negative`},
	{"plus sign", "+3.1", "not a number"},
	{"inner space", "3. 1", "not a number"},
	{"v prefix", "v3.1.1", `leading "v" is not accepted`},
	{"V prefix", "V3.1.1", `leading "V" is not accepted`},
	{"SP without number", "3.1.1 SP", `service pack "SP" has no number`},
	{"SP zero", "3.1.1 SP0", "service pack numbers start at 1"},
	{"SP not a number", "3.1.1 SPx", `service pack number "x" is not a number`},
	{"SP no separator", "3.1.1SP1", "after a space, '-' or '_'"},
	{"SP double separator", "3.1.1  SP1", "before the service pack"},
	{"SP alone", "SP1", "after a space, '-' or '_'"},
	{"SP two component base", "4.1 SP1", "need exactly 3"},
	{"SP four component base", "3.1.1.0 SP1", "too many components"},
	{"SP overflow", "3.1.1 SP99999999999", "out of range"},
	{"SP trailing text", "3.1.1 SP1 beta", "not a number"},
	{"POM too few", "POM.03.01.01.01.00", "need exactly 6"},
	{"POM too many", "POM.03.01.01.01.00.003.1", "too many components"},
	{"POM bare", "POM.", "need exactly 6"},
	{"POM non-numeric", "POM.03.01.01.01.00.0x3", "not a number"},
	{"POM empty revision", "POM.03.01.01.01.00.003-r", "must be -r followed by digits"},
	{"POM bad revision", "POM.03.01.01.01.00.003-r12a", "must be -r followed by digits"},
	{"POM long revision", "POM.03.01.01.01.00.003-r12345678901", "more than 10 digits"},
	{"POM file name", "POM.03.01.01.01.00.003-r35434-x86_64.iso", "must be -r followed by digits"},
	{"POM other suffix", "POM.03.01.01.01.00.003-x86_64", "unexpected suffix"},
	{"POM wide field", "POM.003.01.01.01.00.003", "more than 2 digits"},
	{"POM wide build", "POM.03.01.01.01.00.0000003", "more than 6 digits"},
	{"POM with SP", "POM.03.01.01 SP1", "POM build"},
	{"revision on dotted", "3.1.1-r35434", "not a number"},
	{"other product prefix", "EP.7.2.0", "not a number"},
}

func TestParseVersionValid(t *testing.T) {
	for _, tc := range validVersionCases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVersion(tc.in)
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tc.in, err)
			}
			if v.comps != tc.comps {
				t.Errorf("comps = %v, want %v", v.comps, tc.comps)
			}
			if v.Product() != tc.product || v.Revision() != tc.revision {
				t.Errorf("product/revision = %q/%q, want %q/%q", v.Product(), v.Revision(), tc.product, tc.revision)
			}
			if got := v.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if v.IsZero() {
				t.Errorf("IsZero() = true for parsed version")
			}
			assertRoundTrip(t, v)
		})
	}
}

func TestParseVersionInvalid(t *testing.T) {
	for _, tc := range invalidVersionCases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := ParseVersion(tc.in)
			if err == nil {
				t.Fatalf("ParseVersion(%q) = %v, want error", tc.in, v)
			}
			var ve *VersionError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not *VersionError", err)
			}
			if !v.IsZero() {
				t.Errorf("failed parse returned non-zero version %v", v)
			}
			msg := err.Error()
			if !strings.Contains(ve.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", ve.Reason, tc.reason)
			}
			// The message quotes the (possibly truncated) input.
			if q := fmt.Sprintf("invalid version %q: ", truncateBytes(tc.in, 64)); !strings.HasPrefix(msg, q) {
				t.Errorf("message %q does not start with %s", msg, q)
			}
			if !strings.Contains(msg, "expected forms: 4.1.1, 3.1.1 SP1, POM.03.01.01.01.00.003") {
				t.Errorf("message %q lacks the expected forms hint", msg)
			}
		})
	}
}

func TestVersionErrorMessage(t *testing.T) {
	_, err := ParseVersion("1.2.x")
	want := `invalid version "1.2.x": component 3 "x" is not a number; expected forms: 4.1.1, 3.1.1 SP1, POM.03.01.01.01.00.003`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestParseVersionHugeInput(t *testing.T) {
	huge := strings.Repeat("1", 1<<20)
	_, err := ParseVersion(huge)
	var ve *VersionError
	if !errors.As(err, &ve) {
		t.Fatalf("want *VersionError, got %v", err)
	}
	if !strings.Contains(ve.Reason, "longer than 64 bytes (got 1048576)") {
		t.Errorf("reason = %q", ve.Reason)
	}
	if len(ve.Input) > 64 || len(err.Error()) > 256 {
		t.Errorf("error retains too much input: Input %d bytes, message %d bytes", len(ve.Input), len(err.Error()))
	}
	// Rejection must not scale with the input: no per-byte work or copies.
	if allocs := testing.AllocsPerRun(10, func() { _, _ = ParseVersion(huge) }); allocs > 10 {
		t.Errorf("ParseVersion(1 MB) allocates %v times", allocs)
	}
}

// Strictly increasing; every pair i<j must compare < 0.
var orderedVersions = []string{
	"0.0",
	"3.1.0",
	"3.1.1",
	"3.1.1.0.0.1",
	"3.1.1 SP1",
	"POM.03.01.01.01.00.003",
	"POM.03.01.01.01.02.003",
	"3.1.2",
	"4.1",
	"4.1.1",
	"4.1.2",
	"7.2.0.0.1202",
	"7.2.1.0.0622",
	"4294967295.0",
}

func TestVersionOrdering(t *testing.T) {
	vs := make([]Version, len(orderedVersions))
	for i, s := range orderedVersions {
		vs[i] = MustParseVersion(s)
	}
	for i := range vs {
		if c := vs[i].Compare(vs[i]); c != 0 {
			t.Errorf("%v.Compare(itself) = %d", vs[i], c)
		}
		for j := i + 1; j < len(vs); j++ {
			if c := vs[i].Compare(vs[j]); c != -1 {
				t.Errorf("Compare(%q, %q) = %d, want -1", orderedVersions[i], orderedVersions[j], c)
			}
			if c := vs[j].Compare(vs[i]); c != 1 {
				t.Errorf("Compare(%q, %q) = %d, want 1", orderedVersions[j], orderedVersions[i], c)
			}
			if !vs[i].Less(vs[j]) || vs[j].Less(vs[i]) || vs[i].Equal(vs[j]) {
				t.Errorf("Less/Equal inconsistent for %q, %q", orderedVersions[i], orderedVersions[j])
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		shuffled := append([]Version(nil), vs...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		sort.Slice(shuffled, func(i, j int) bool { return shuffled[i].Less(shuffled[j]) })
		for i := range shuffled {
			if shuffled[i].String() != vs[i].String() {
				t.Fatalf("round %d: sorted[%d] = %v, want %v", round, i, shuffled[i], vs[i])
			}
		}
	}
}

func TestVersionEqual(t *testing.T) {
	groups := [][]string{
		{"3.1.1", "3.1.1.0.0", "3.1.1.0.0.0", "03.01.01"},
		{"3.1.1 SP1", "3.1.1-SP1", "3.1.1_sp1", "3.1.1.1"},
		{"POM.03.01.01.01.00.003", "POM.03.01.01.01.00.003-r35434", "pom.3.1.1.1.0.3", "3.1.1.1.0.3"},
		{"7.2.1.0.0622", "7.2.1.0.622"},
		{"4.1", "4.1.0", "4.1.0.0.0.0"},
	}
	for gi, g := range groups {
		for _, a := range g {
			for _, b := range g {
				if va, vb := MustParseVersion(a), MustParseVersion(b); !va.Equal(vb) || va.Compare(vb) != 0 {
					t.Errorf("%q should equal %q", a, b)
				}
			}
			// Nothing in one group equals the first member of another.
			for hi, h := range groups {
				if hi != gi && MustParseVersion(a).Equal(MustParseVersion(h[0])) {
					t.Errorf("%q should not equal %q", a, h[0])
				}
			}
		}
	}
}

func TestVersionRelease(t *testing.T) {
	tests := []struct {
		a, b        string
		sameRelease bool
		compare     int
	}{
		// Vendor docs: "3.1.1 SP1 = POM.03.01.01.01.00.003" (003 is the SP1 GA build).
		{"3.1.1 SP1", "POM.03.01.01.01.00.003", true, -1},
		{"3.1.1 SP1", "POM.03.01.01.01.00.003-r35434", true, -1},
		{"POM.03.01.01.01.00.003", "POM.03.01.01.01.00.004", true, -1},
		{"3.1.1 SP1", "POM.03.01.01.01.02.003", false, -1},
		{"3.1.1", "3.1.1 SP1", false, -1},
		{"3.1.1", "3.1.1.0.0", true, 0},
		{"7.2.1.0.0622", "7.2.1.0.622.9", true, -1},
	}
	for _, tc := range tests {
		a, b := MustParseVersion(tc.a), MustParseVersion(tc.b)
		if got := a.SameRelease(b); got != tc.sameRelease {
			t.Errorf("SameRelease(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.sameRelease)
		}
		if got := b.SameRelease(a); got != tc.sameRelease {
			t.Errorf("SameRelease(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.sameRelease)
		}
		if got := a.Compare(b); got != tc.compare {
			t.Errorf("Compare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.compare)
		}
	}

	releases := []struct{ in, want string }{
		{"POM.03.01.01.01.00.003-r35434", "3.1.1.1.0"},
		{"POM.03.01.01.01.02.003", "3.1.1.1.2"},
		{"3.1.1.0.0.7", "3.1.1.0.0"},
		{"3.1.1 SP1", "3.1.1 SP1"},
		{"7.2.1.0.0622", "7.2.1.0.622"},
		{"4.1", "4.1"},
	}
	for _, tc := range releases {
		r := MustParseVersion(tc.in).Release()
		if r.String() != tc.want {
			t.Errorf("Release(%q) = %q, want %q", tc.in, r, tc.want)
		}
		if r.Build() != 0 || !r.SameRelease(MustParseVersion(tc.in)) {
			t.Errorf("Release(%q) = %q is not a build-less release of it", tc.in, r)
		}
		assertRoundTrip(t, r)
	}
}

func TestVersionAccessors(t *testing.T) {
	v := MustParseVersion("POM.03.01.02.04.05.006-r7")
	got := []uint64{v.Major(), v.Minor(), v.Patch(), v.ServicePack(), v.Hotfix(), v.Build()}
	want := []uint64{3, 1, 2, 4, 5, 6}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("accessors = %v, want %v", got, want)
		}
	}
	if sv := v.Semver(); sv.String() != "3.1.2" {
		t.Errorf("Semver() = %v, want 3.1.2", sv)
	}
	var zero Version
	if !zero.IsZero() || zero.String() != "" {
		t.Errorf("zero Version: IsZero=%v String=%q", zero.IsZero(), zero.String())
	}
	if MustParseVersion("0.0").IsZero() {
		t.Errorf("parsed 0.0 must not be IsZero")
	}
}

func TestMustParseVersionPanics(t *testing.T) {
	defer func() {
		r := recover()
		if _, ok := r.(*VersionError); !ok {
			t.Fatalf("recover() = %v, want *VersionError", r)
		}
	}()
	MustParseVersion("1.2.x")
}

func TestVersionSatisfies(t *testing.T) {
	tests := []struct {
		v, constraint string
		want          bool
	}{
		{"4.1", ">=4.1, <4.1.2", true},
		{"4.1.1", ">=4.1, <4.1.2", true},
		{"4.1.2", ">=4.1, <4.1.2", false},
		{"4.0", ">=4.1, <4.1.2", false},
		{"3.1.1 SP1", "=3.1.1", true},
		{"POM.03.01.01.01.02.003", "=3.1.1", true},
		{"3.1.1 SP1", "~3.1.1", true},
		{"3.1.2", "~3.1.1", true},
		{"3.2.0", "~3.1.1", false},
		{"7.2.1.0.0622", ">=7.2", true},
	}
	for _, tc := range tests {
		got, err := MustParseVersion(tc.v).Satisfies(tc.constraint)
		if err != nil {
			t.Fatalf("Satisfies(%q, %q): %v", tc.v, tc.constraint, err)
		}
		if got != tc.want {
			t.Errorf("%q satisfies %q = %v, want %v", tc.v, tc.constraint, got, tc.want)
		}
	}
	if _, err := MustParseVersion("4.1").Satisfies(">=banana"); err == nil || !strings.Contains(err.Error(), `">=banana"`) {
		t.Errorf("bad constraint error = %v", err)
	}
}

func TestVersionJSONRoundTrip(t *testing.T) {
	type doc struct {
		Current Version   `json:"current"`
		Target  Version   `json:"target"`
		Unset   Version   `json:"unset"`
		List    []Version `json:"list"`
	}
	in := doc{
		Current: MustParseVersion("POM.03.01.01.01.00.003-r35434"),
		Target:  MustParseVersion("3.1.1 SP1"),
		List:    []Version{MustParseVersion("7.2.1.0.0622"), MustParseVersion("4.1")},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"current":"POM.03.01.01.01.00.003-r35434","target":"3.1.1 SP1","unset":"","list":["7.2.1.0.622","4.1"]}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant  %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	pairs := [][2]Version{{in.Current, out.Current}, {in.Target, out.Target}, {in.Unset, out.Unset}, {in.List[0], out.List[0]}, {in.List[1], out.List[1]}}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("round trip changed %#v into %#v", p[0], p[1])
		}
	}

	var bad doc
	err = json.Unmarshal([]byte(`{"current":"1.2.x"}`), &bad)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Input != "1.2.x" {
		t.Errorf("bad JSON version: err = %v", err)
	}
}

// assertRoundTrip checks parse(format(v)) == v in every observable way.
func assertRoundTrip(t *testing.T, v Version) {
	t.Helper()
	s := v.String()
	w, err := ParseVersion(s)
	if err != nil {
		t.Fatalf("ParseVersion(String() = %q): %v", s, err)
	}
	if !w.Equal(v) || w.String() != s || w.Product() != v.Product() || w.Revision() != v.Revision() {
		t.Fatalf("round trip of %q gave %q (product %q rev %q)", s, w.String(), w.Product(), w.Revision())
	}
	text, _ := v.MarshalText()
	var u Version
	if err := u.UnmarshalText(text); err != nil || u != w {
		t.Fatalf("text round trip of %q gave %#v, %v", s, u, err)
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, tc := range validVersionCases {
		f.Add(tc.in)
	}
	for _, tc := range invalidVersionCases {
		f.Add(tc.in)
	}
	for _, s := range orderedVersions {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			var ve *VersionError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not *VersionError", err)
			}
			if len(ve.Input) > 64 {
				t.Fatalf("error keeps %d bytes of input", len(ve.Input))
			}
			return
		}
		if len(v.String()) > 64 {
			t.Fatalf("String() %q exceeds the 64-byte input limit", v.String())
		}
		assertRoundTrip(t, v)
		if v.Compare(v.Release()) < 0 || !v.SameRelease(v.Release()) {
			t.Fatalf("Release() of %q is inconsistent", v)
		}
	})
}

func TestVersionBase(t *testing.T) {
	for in, want := range map[string]string{
		"7.2.0.0.1202": "7.2.0", "4.1.0.5": "4.1.0", "4.1": "4.1.0", "POM.03.01.01.01.00.003": "3.1.1", "3.1.1 SP1": "3.1.1",
	} {
		if got := MustParseVersion(in).Base(); got.String() != want || !got.Equal(MustParseVersion(want)) {
			t.Errorf("%s.Base() = %s, want %s", in, got, want)
		}
	}
	if !(Version{}).Base().IsZero() {
		t.Error("the zero Version's base is not zero")
	}
}
