package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"

	"upgrader/orchestrator"
)

var (
	pomProfile  = filepath.Join("..", "..", "testdata", "simhost", "pom", "profile.yaml")
	pc41Profile = filepath.Join("..", "..", "testdata", "simhost", "pc41", "profile.yaml")
)

// mainRun runs the CLI in process, as the binary's main would.
func mainRun(t *testing.T, args ...string) result {
	t.Helper()
	t.Setenv("UPGRADER_PROFILE", "")
	t.Setenv("UPGRADER_STATE_DIR", "")
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb) // plan reads no state
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func goldenCaseNamed(t *testing.T, name string) goldenCase {
	t.Helper()
	for _, c := range goldenCases {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no golden case %s", name)
	return goldenCase{}
}

// The bundled POM plan, as 'upgrader plan' prints it (with the Next line),
// reads in an 80-column terminal; so does the brief form 'run' prints.
func TestPlanTextFits80Columns(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pomProfile)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	checkWidth(t, r.stdout)
	for _, want := range []string{"STEPS (8)", "point of no return: upgrade-pom", "SERVICE DOWNTIME",
		"Steps that run with it stopped: 5–7.", "Next: upgrader run --profile ", "--expect-fingerprint "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan text lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, c := range goldenCases {
		var b bytes.Buffer
		printPlanBrief(&b, goldenPlan(t, c))
		checkWidth(t, b.String())
	}
}

func TestWrapKeepsTheWidth(t *testing.T) {
	long := "/opt/" + strings.Repeat("x", 100) + ".iso"
	for _, text := range []string{"", "short", long, "a " + long + " b", strings.Repeat("word ", 50)} {
		lines := hanging("    see ", text)
		for _, l := range lines {
			if runeLen(l) > lineWidth {
				t.Errorf("hanging(%q) line of %d runes: %q", text, runeLen(l), l)
			}
		}
		if got, want := strings.Join(strings.Fields(strings.Join(lines, " ")), ""), strings.Join(strings.Fields("see "+text), ""); got != want {
			t.Errorf("hanging(%q) lost text: %q", text, got)
		}
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// Colour only on a terminal, never with NO_COLOR or TERM=dumb; a buffer
// (a pipe, a file, a test) never gets escape codes.
func TestColorOnlyOnATerminal(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm-256color")
	if useColor(&bytes.Buffer{}) {
		t.Error("useColor(bytes.Buffer) = true")
	}
	// /dev/null is a character device, not a terminal.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if useColor(null) {
		t.Error("useColor(/dev/null) = true")
	}
	// A real terminal: the tty end of a pseudo-terminal.
	ptmx, dev, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer dev.Close()
	if !useColor(dev) {
		t.Error("useColor(terminal) = false with NO_COLOR and TERM unset")
	}
	t.Setenv("NO_COLOR", "1")
	if useColor(dev) {
		t.Error("useColor = true with NO_COLOR=1")
	}
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "dumb")
	if useColor(dev) {
		t.Error("useColor = true with TERM=dumb")
	}
	t.Setenv("TERM", "xterm-256color")
	plain, err := os.CreateTemp(t.TempDir(), "plan")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if useColor(plain) {
		t.Error("useColor(regular file) = true")
	}

	// A plan with a blocker, warnings and the point of no return.
	plan := goldenPlan(t, goldenCaseNamed(t, "pom-upgrade-media-absent-blocked"))
	var buf bytes.Buffer
	printPlan(&buf, plan)
	printPlanBrief(&buf, plan)
	if strings.Contains(buf.String(), "\x1b[") {
		t.Errorf("escape codes written to a buffer:\n%q", buf.String())
	}
	if r := mainRun(t, "plan", "--profile", pomProfile); strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("escape codes in 'upgrader plan' output to a buffer")
	}

	var colored bytes.Buffer
	renderPlan(&colored, plan, palette{on: true}, false)
	out := colored.String()
	for what, want := range map[string]string{
		"blockers heading red":   "\x1b[31mBLOCKERS (1)\x1b[0m",
		"blocker id red":         "\x1b[31mX media-missing:\x1b[0m",
		"warnings heading":       "\x1b[33mWARNINGS (4)\x1b[0m",
		"warning id yellow":      "\x1b[33m! OUTREACH-11880:\x1b[0m",
		"point of no return":     "\x1b[1m  ─",
		"notes are not coloured": "\n  - iso-name-typo:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("%s: %q not in\n%s", what, want, out)
		}
	}
	if got := ansi.ReplaceAllString(out, ""); got != buf.String()[:len(got)] {
		t.Errorf("colour changed more than colour:\n%s\nvs\n%s", got, buf.String())
	}
}

func TestExplainGateStep(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pomProfile, "--explain", "enable-dnc-import")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	checkWidth(t, r.stdout)
	for _, want := range []string{
		"Step 8 of 8 in pom-3.1.1-sp1-upgrade",
		"  id            enable-dnc-import\n",
		"  kind          operator: you do it, then confirm (upgrader resume --yes)\n",
		"  action        gate\n",
		"  runs on       this host\n",
		"  skip          with-reason: upgrader skip enable-dnc-import --reason",
		"  irreversible  no, but it runs after the point of no return (step 6,",
		"  downtime      no\n",
		"  why           SP1 separates DNC import recording",
		"  refs          POM 3.1.1 SP1 Release Notes · \"Option to record successful DNC\n",
		"  requires      (none)\n",
		"  params        (none)\n",
		"  instructions  In POM Global Configurations, tick \"Record successful DNC\n                Import\"",
		"  notes         (none)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--explain lacks %q:\n%s", want, r.stdout)
		}
	}
	// By number too.
	if n := mainRun(t, "plan", "--profile", pomProfile, "--explain", "8"); n.stdout != r.stdout {
		t.Errorf("--explain 8 differs from --explain enable-dnc-import:\n%s", n.stdout)
	}
}

func TestExplainVendorInstallStep(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pomProfile, "--explain", "upgrade-pom")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	checkWidth(t, r.stdout)
	for _, want := range []string{
		"Step 6 of 8 in pom-3.1.1-sp1-upgrade",
		"  kind          auto: upgrader runs it\n",
		"  action        vendor-install\n",
		"  skip          never: a safety rule, it cannot be skipped\n",
		"  irreversible  yes: the point of no return;",
		"  downtime      yes: POM is out of service during this step\n",
		"  requires      media, db-backup (verified by an earlier step;",
		"  produces      (none)\n",
		// Sorted by key, one a line, the label on the first.
		"  params        installer = pom\n" +
			"                iso = /media/POM.03.01.01.01.00.003-r35434-x86_64.iso\n" +
			"                product = pom\n" +
			"                target = POM.03.01.01.01.00.003\n",
		"  instructions  (none)\n",
		"  source        the vendor's: POM 3.1.1 SP1 Release Notes \"Upgrading to release\n                POM 3.1.1 SP1\", \"Restoring software to previous version\",\n",
		"  notes         - no rollback: the release notes say restoring the previous\n",
		"                - upgrader's own advice, not the release notes': once it has\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--explain lacks %q:\n%s", want, r.stdout)
		}
	}

	// A PC installer shows its material ID and release notes.
	pc := mainRun(t, "plan", "--profile", pc41Profile, "--explain", "dialer-4.1.2")
	if pc.code != exitOK || !strings.Contains(strings.Join(strings.Fields(pc.stdout), " "),
		`refs Sequence of using Avaya Proactive Contact 4.1.2 Release Notes (v0.5) · "2. Flow of Installation: Upgrade to Avaya Proactive Contact 4.1.2, step 1" · material 700479025 · PC 4.1.2 Dialer Release Notes`) {
		t.Errorf("exit %d, PC dialer explain:\n%s%s", pc.code, pc.stdout, pc.stderr)
	}

	// -o json is the step as the plan holds it.
	js := mainRun(t, "plan", "--profile", pomProfile, "--explain", "upgrade-pom", "-o", "json")
	plan := mainRun(t, "plan", "--profile", pomProfile, "-o", "json")
	var step orchestrator.StepSpec
	if err := json.Unmarshal([]byte(js.stdout), &step); err != nil {
		t.Fatalf("--explain -o json: %v\n%s", err, js.stdout)
	}
	var p orchestrator.Plan
	if err := json.Unmarshal([]byte(plan.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if i := p.StepIndex("upgrade-pom"); i < 0 || !reflect.DeepEqual(step, p.Steps[i]) {
		t.Errorf("--explain -o json = %+v, the plan's step is %+v", step, p.Steps)
	}
}

func TestExplainUnknownStep(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pomProfile, "--explain", "upgrade-pc")
	if r.code != exitUsage {
		t.Fatalf("exit %d, want %d (usage); stderr: %s", r.code, exitUsage, r.stderr)
	}
	if !strings.Contains(r.stderr, "verify-media, backup-db, mpp-config-mpp1, mpp-config-mpp2, stop-services, upgrade-pom, start-services, enable-dnc-import") {
		t.Errorf("the error does not list the plan's steps: %s", r.stderr)
	}
	if r := mainRun(t, "plan", "--profile", pomProfile, "--explain", "9"); r.code != exitUsage {
		t.Errorf("--explain 9 of 8 steps: exit %d", r.code)
	}
	// A plan blocked before any step has nothing to explain: exit 3.
	if r := mainRun(t, "plan", "--profile", pomProfile, "--assume", "pom.version=3.1.0", "--explain", "upgrade-pom"); r.code != exitBlocked || !strings.Contains(r.stderr, "blocked") {
		t.Errorf("blocked plan: exit %d: %s", r.code, r.stderr)
	}
	// Nothing to do: no steps, a usage error that says so.
	if r := mainRun(t, "plan", "--profile", pomProfile, "--assume", "pom.version=3.1.1 SP1", "--explain", "upgrade-pom"); r.code != exitUsage || !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("nothing to do: exit %d: %s", r.code, r.stderr)
	}
}

// The Next line runs exactly the reviewed plan: the options that shaped it
// are on it, and a what-if plan is not offered to run.
func TestPlanNextCommand(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pc41Profile, "--with", "agent-api")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	checkWidth(t, r.stdout)
	next := r.stdout[strings.Index(r.stdout, "Next: "):]
	next = strings.ReplaceAll(next, "\\\n", "")
	if !strings.Contains(next, "--with agent-api") || !strings.Contains(next, "--expect-fingerprint") {
		t.Errorf("Next line: %s", next)
	}
	w := mainRun(t, "plan", "--profile", pc41Profile, "--assume", "pc.version=4.1.1")
	if !strings.Contains(w.stdout, "Next: this is a what-if plan") || strings.Contains(w.stdout, "upgrader run --") {
		t.Errorf("what-if plan offers to run:\n%s", w.stdout)
	}
	if got := shellQuote("it's a reason"); got != `'it'\''s a reason'` {
		t.Errorf("shellQuote = %s", got)
	}
	if got := shellQuote("/etc/upgrader/site.yaml"); got != "/etc/upgrader/site.yaml" {
		t.Errorf("shellQuote = %s", got)
	}
}

// --explain on a plan with blockers still explains, and exits as plan does.
func TestExplainOnABlockedPlan(t *testing.T) {
	r := mainRun(t, "plan", "--profile", pomProfile, "--assume", "media.iso.size=-1", "--explain", "verify-media")
	if r.code != exitBlocked || !strings.Contains(r.stdout, "  id            verify-media\n") ||
		!strings.Contains(r.stdout, "The plan has 1 blocker(s)") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
