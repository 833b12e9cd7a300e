package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/orchestrator/mop"
)

// mopCases are one golden case per procedure, on its simulated host.
var mopCases = []string{"pc-install-bare", "pc-upgrade-from-4.1", "pc-migrate-dl385-g5-from-4.1",
	"pom-install-bare", "pom-upgrade-from-3.1.1-build-039", "pom-upgrade-with-pdc-and-help-library",
	"pom-upgrade-three-mpps-one-unreachable-overridden"}

// The MOP of each procedure's golden plan, as markdown: golden files
// (go test ./cmd/upgrader -run TestGoldenMOP -update rewrites them).
func TestGoldenMOP(t *testing.T) {
	covered := map[string]bool{}
	for _, name := range mopCases {
		i := -1
		for j, c := range goldenCases {
			if c.name == name {
				i = j
			}
		}
		if i < 0 {
			t.Fatalf("no golden case %s", name)
		}
		c := goldenCases[i]
		t.Run(name, func(t *testing.T) {
			plan := goldenPlan(t, c)
			covered[plan.Procedure] = true
			inv := mop.Invocation{Profile: "/etc/upgrader/site.yaml", Procedure: c.procedure != "", Assume: c.assume}
			for _, id := range sortedKeys(c.override) {
				inv.Overrides = append(inv.Overrides, id+"="+c.override[id])
			}
			var md bytes.Buffer
			if err := mop.Markdown(&md, mop.Input{Plan: plan, Run: inv}); err != nil {
				t.Fatal(err)
			}
			compareGolden(t, name+".mop.md", md.Bytes())
		})
	}
	for _, p := range orchestrator.Procedures() {
		if !covered[p.ID] {
			t.Errorf("procedure %s has no golden MOP", p.ID)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Expected durations come from the completed runs of the same procedure
// in the state: unknown before the first, measured after it.
func TestMOPDurationsFromEarlierRuns(t *testing.T) {
	s := newSimHost(t, "pc41")
	r := s.mustRun(exitOK, "plan", "-o", "markdown")
	if !strings.Contains(r.stdout, "no state in "+s.state) || strings.Contains(r.stdout, "(median of") {
		t.Fatalf("before any run the durations are not unknown:\n%s", r.stdout)
	}
	if _, err := os.Stat(s.state); err == nil {
		t.Fatalf("plan -o markdown made the state directory %s", s.state)
	}
	s.mustRun(exitOK, "run", "--yes")
	// The host is at 4.1.2 now: the plan of another 4.1 server like it.
	r = s.mustRun(exitOK, "plan", "-o", "markdown", "--assume", "pc.version=4.1")
	for _, want := range []string{"(from 1 completed run(s) of this procedure recorded in the state)", "| upgrader | none |"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("after a completed run the MOP has no %q:\n%s", want, r.stdout)
		}
	}
	for _, id := range []string{"dialer-4.1.2", "database-4.1.2", "supervisor", "agent"} {
		line := ""
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "| ") && strings.Contains(l, "`"+id+"`") {
				line = l
			}
		}
		if !strings.HasSuffix(line, "(median of 1) |") {
			t.Errorf("step %s has no measured duration: %q", id, line)
		}
	}
	// Another procedure's MOP is not measured from this one's runs.
	r = s.mustRun(exitBlocked, "plan", "-o", "markdown", "--procedure", "pc-4.1.2-install")
	if !strings.Contains(r.stdout, "no completed run of this procedure is recorded") {
		t.Errorf("the install's MOP took the upgrade's times:\n%s", r.stdout)
	}
}

// -o markdown and html are plan's alone; --explain keeps text and json.
func TestMOPOutputOnlyForPlan(t *testing.T) {
	s := newSimHost(t, "pc41")
	if r := s.run("status", "-o", "html"); r.code != exitUsage || !strings.Contains(r.stderr, "use text or json") {
		t.Errorf("status -o html: exit %d, %s", r.code, r.stderr)
	}
	if r := s.run("plan", "-o", "pdf"); r.code != exitUsage || !strings.Contains(r.stderr, "use text, json, markdown or html") {
		t.Errorf("plan -o pdf: exit %d, %s", r.code, r.stderr)
	}
	if r := s.run("plan", "-o", "html", "--explain", "agent"); r.code != exitUsage || !strings.Contains(r.stderr, "--explain prints text or json") {
		t.Errorf("plan --explain -o html: exit %d, %s", r.code, r.stderr)
	}
}

// Every procedure's MOP, as `upgrader plan -o html` writes it on its
// simulated host, printed to PDF by a real headless Chromium: the first
// page shows the fingerprint, the point of no return and the downtime
// window (pdftotext), and its image is not blank (pdftoppm).
func TestMOPPrintsInChromium(t *testing.T) {
	out := t.TempDir()
	type printed struct {
		host string
		plan orchestrator.Plan
	}
	var docs []printed
	for _, host := range []string{"pom", "pombare", "pc41", "pcbare", "dl385"} {
		s := newSimHost(t, host)
		var plan orchestrator.Plan
		if err := json.Unmarshal([]byte(s.mustRun(exitOK, "plan", "-o", "json").stdout), &plan); err != nil {
			t.Fatal(err)
		}
		r := s.mustRun(exitOK, "plan", "-o", "html")
		if err := os.WriteFile(filepath.Join(out, host+".html"), []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, printed{host, plan})
	}
	start := time.Now()
	for _, d := range docs {
		pdf := filepath.Join(out, d.host+".pdf")
		c := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
			"--user-data-dir="+filepath.Join(out, "chromium"), "--print-to-pdf="+pdf, "file://"+filepath.Join(out, d.host+".html"))
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("chromium: %v\n%s", err, b)
		}
		first := pdfFirstPage(t, pdf)
		p := d.plan
		want := []string{"Plan fingerprint", p.Fingerprint, "Point of no return", "Downtime window", "Command that runs exactly this plan"}
		if i := p.StepIndex(p.PointOfNoReturn); i >= 0 {
			want = append(want, fmt.Sprintf("step %d (%s)", i+1, p.PointOfNoReturn), "point of no return: step "+fmt.Sprint(i+1))
		} else {
			want = append(want, "none: no step of this plan is marked irreversible")
		}
		if p.Outage != nil {
			want = append(want, fmt.Sprintf("from step %d (%s)", p.StepIndex(p.Outage.From)+1, p.Outage.From))
		} else {
			want = append(want, "none: no step of this plan stops")
		}
		for _, w := range want {
			if !strings.Contains(squash(first), squash(w)) {
				t.Errorf("%s: the PDF's first page does not show %q:\n%s", d.host, w, first)
			}
		}
		ink, red := pageInk(t, pdf, filepath.Join(out, d.host))
		if ink < 0.03 {
			t.Errorf("%s: the first page is blank (%.1f%% ink)", d.host, 100*ink)
		}
		if p.Outage != nil && red == 0 {
			t.Errorf("%s: the first page draws no downtime window (no red)", d.host)
		}
	}
	t.Logf("Chromium printed %d MOPs in %v", len(docs), time.Since(start).Round(time.Millisecond))
}

// squash drops white space: a table cell may wrap anywhere.
func squash(s string) string { return strings.Join(strings.Fields(s), "") }

func pdfFirstPage(t *testing.T, pdf string) string {
	t.Helper()
	b, err := exec.Command("pdftotext", "-f", "1", "-l", "1", pdf, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext %s: %v", pdf, err)
	}
	return string(b)
}

// pageInk renders the first page at 50 dpi and returns the share of
// pixels that are not white and how many are clearly red.
func pageInk(t *testing.T, pdf, prefix string) (float64, int) {
	t.Helper()
	if b, err := exec.Command("pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", pdf, prefix).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, b)
	}
	f, err := os.Open(prefix + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return ink(img)
}

func ink(img image.Image) (float64, int) {
	b := img.Bounds()
	var dark, red int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				dark++
			}
			if r > 0xa000 && g < 0x6000 && bl < 0x6000 {
				red++
			}
		}
	}
	return float64(dark) / float64(b.Dx()*b.Dy()), red
}
