package steps

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestMPPConfigStepResumesAfterCopy(t *testing.T) {
	// A crash after the original was copied but before the edit: the next
	// Apply edits the file and keeps the copy it made first.
	e := newSim(t, nil)
	spec := mppSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	path := e.path(spec.Params["config"])
	original := readTestFile(t, path)
	if err := WriteFileAtomic(path+OriginalSuffix, original, 0o644); err != nil {
		t.Fatal(err)
	}
	mustProbe(t, st, sc, false)
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	if got := readTestFile(t, path+OriginalSuffix); !bytes.Equal(got, original) {
		t.Error("original copy changed")
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
	writeTestFile(t, target, content)
	removeFile(t, path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}

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
	if got := readTestFile(t, target); !bytes.Equal(got, content) {
		t.Error("the symlink's target was changed")
	}
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
