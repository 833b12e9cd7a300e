package mop

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// goldenPlans are the plans of cmd/upgrader's golden matrix, every
// procedure with its blockers, warnings and what-ifs.
func goldenPlans(t *testing.T) map[string]orchestrator.Plan {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "golden", "*.json"))
	if err != nil || len(files) < 30 {
		t.Fatalf("golden plans: %v (%d)", err, len(files))
	}
	out := map[string]orchestrator.Plan{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p orchestrator.Plan
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = p
	}
	return out
}

var (
	tagRE = regexp.MustCompile(`<[^>]*>`)
	preRE = regexp.MustCompile(`(?s)<pre>.*?</pre>`)
)

// Every golden plan's MOP is CommonMark that goldmark renders with its
// tables and headings, and nothing of the markdown is left in the text.
func TestMarkdownRendersWithGoldmark(t *testing.T) {
	for name, p := range goldenPlans(t) {
		var md bytes.Buffer
		in := Input{Plan: p, Run: Invocation{Profile: "/etc/upgrader/site.yaml", Overrides: []string{"x=it's | *not* <b>"}}}
		if err := Markdown(&md, in); err != nil {
			t.Fatal(err)
		}
		out, err := RenderMarkdown(md.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h := string(out)
		for _, want := range []string{"<h1", `<h2 id="command-that-runs-exactly-this-plan"`, `<h2 id="recovery"`, `<h2 id="sign-off"`,
			"<table>", "<th>Item</th>", "<th>Role</th>", "<pre><code"} {
			if !strings.Contains(h, want) {
				t.Errorf("%s: the HTML has no %s", name, want)
			}
		}
		if len(p.Steps) > 0 && !strings.Contains(h, "<th>Operator types or clicks</th>") {
			t.Errorf("%s: no step table", name)
		}
		text := tagRE.ReplaceAllString(preRE.ReplaceAllString(h, ""), "")
		for _, left := range []string{"|---", "| ", "**", "```", "\\_", "\\|", "raw HTML omitted", "&lt;br"} {
			if strings.Contains(text, left) {
				t.Errorf("%s: markdown left in the rendered text: %q", name, left)
			}
		}
		if !strings.Contains(h, "--override 'x=it'\\''s | *not* &lt;b&gt;'") {
			t.Errorf("%s: the override is not in the command as given", name)
		}
	}
}

// The HTML is one page: no script, nothing fetched, its styles inline,
// print rules that start the long sections on a page of their own.
func TestHTMLSelfContained(t *testing.T) {
	p := goldenPlans(t)["pom-upgrade-from-3.1.1-build-039"]
	var b bytes.Buffer
	if err := HTML(&b, Input{Plan: p, Run: Invocation{Profile: "/etc/upgrader/site.yaml"}}); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	for _, bad := range []string{"<script", "<link", "src=", "@import", "url(", "href=\"http"} {
		if strings.Contains(h, bad) {
			t.Errorf("the page is not self-contained: it has %q", bad)
		}
	}
	for _, want := range []string{"<style>", "@media print", "break-before: page", "<svg", "point of no return: step 6", "POM down: steps 5–7"} {
		if !strings.Contains(h, want) {
			t.Errorf("the page has no %q", want)
		}
	}
}

// The recovery statement quotes the release notes word for word, under
// the section it cites (testdata holds those sections as the seed has them).
func TestRecoveryQuotesTheReleaseNotes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "pom-release-notes-recovery.txt"))
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.NewReplacer("<u>", "", "</u>", "").Replace(string(b))
	for _, q := range []struct{ section, quote string }{
		{pomNoRestoreSect, pomNoRestoreQuote}, {pomBackupSect, pomBackupQuote}, {pomTroubleSect, pomTroubleQuote},
	} {
		_, after, ok := strings.Cut(notes, "#### "+q.section+"\n")
		body, _, _ := strings.Cut(after, "####")
		if !ok || !strings.Contains(body, q.quote) {
			t.Errorf("%q is not under %q in the release notes", q.quote, q.section)
		}
	}
	// A PC MOP quotes nothing it does not have: the sequence document
	// has no word on recovery.
	for name, p := range goldenPlans(t) {
		if !strings.HasPrefix(p.Procedure, "pc-") {
			continue
		}
		var md bytes.Buffer
		Markdown(&md, Input{Plan: p})
		rec := md.String()[strings.Index(md.String(), "## Recovery"):]
		if strings.Contains(rec, "> ") || strings.Contains(rec, "POM 3.1.1 SP1 Release Notes") {
			t.Errorf("%s: the PC recovery quotes a document:\n%s", name, rec)
		}
		if !strings.Contains(rec, "says nothing about rollback") {
			t.Errorf("%s: the PC recovery does not say the document is silent", name)
		}
	}
}

// Expected durations are the earlier runs' medians, else unknown; the
// total is known only when every step's is.
func TestExpectedDurations(t *testing.T) {
	p := goldenPlans(t)["pc-upgrade-from-4.1"]
	times := orchestrator.StepTimes{Procedure: p.Procedure, Runs: 3, Median: map[string]time.Duration{}, Samples: map[string]int{}}
	for _, s := range p.Steps {
		times.Median[s.ID], times.Samples[s.ID] = 90*time.Second, 3
	}
	var md bytes.Buffer
	Markdown(&md, Input{Plan: p, Times: times})
	if !strings.Contains(md.String(), "| 1m30s (median of 3) |") || !strings.Contains(md.String(), "| **Expected duration** | 6m (from 3 completed run(s)") {
		t.Errorf("durations not shown:\n%s", md.String())
	}
	delete(times.Median, p.Steps[1].ID)
	md.Reset()
	Markdown(&md, Input{Plan: p, Times: times})
	if !strings.Contains(md.String(), "| **Expected duration** | unknown (from 3") || !strings.Contains(md.String(), "| unknown |") {
		t.Errorf("a step without a measure does not make the total unknown:\n%s", md.String())
	}
}
