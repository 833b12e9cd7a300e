package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"upgrader/steps/bundle"
)

// terminal is the real upgrader in a pseudo-terminal, driven as a person
// would: read the prompt, type the answer.
type terminal struct {
	t    *testing.T
	pty  *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder // everything shown, without carriage returns
	seen int             // how much of it expect has matched
	done chan struct{}
}

func startTerminal(t *testing.T, c *exec.Cmd) *terminal {
	t.Helper()
	f, err := pty.StartWithSize(c, &pty.Winsize{Rows: 50, Cols: 132})
	if err != nil {
		t.Fatal(err)
	}
	tm := &terminal{t: t, pty: f, cmd: c, done: make(chan struct{})}
	go func() {
		defer close(tm.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			tm.mu.Lock()
			tm.out.WriteString(strings.ReplaceAll(string(buf[:n]), "\r", ""))
			tm.mu.Unlock()
			if err != nil {
				return // EIO once the program has gone
			}
		}
	}()
	t.Cleanup(func() {
		c.Process.Kill()
		f.Close()
	})
	return tm
}

// expect waits for text to appear after what was matched so far, and
// returns what the terminal showed up to it.
func (tm *terminal) expect(text string) string {
	tm.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tm.mu.Lock()
		shown := tm.out.String()[tm.seen:]
		if i := strings.Index(shown, text); i >= 0 {
			tm.seen += i + len(text)
			tm.mu.Unlock()
			return shown[:i+len(text)]
		}
		tm.mu.Unlock()
		if time.Now().After(deadline) {
			tm.t.Fatalf("waited for %q; the terminal shows:\n%s", text, shown)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answer waits for a prompt and types a line and Enter.
func (tm *terminal) answer(prompt, line string) string {
	tm.t.Helper()
	shown := tm.expect(prompt)
	if _, err := tm.pty.Write([]byte(line + "\r")); err != nil {
		tm.t.Fatal(err)
	}
	tm.expect(line + "\n") // the terminal's echo
	return shown
}

func (tm *terminal) wait() (int, string) {
	tm.t.Helper()
	err := tm.cmd.Wait()
	<-tm.done
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		tm.t.Fatal(err)
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return code, tm.out.String()[tm.seen:]
}

// extract unpacks an archive with the system's tar, as support would.
func extract(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "xzf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar xzf %s: %v\n%s", archive, err, out)
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkExtracted proves MANIFEST names every extracted file with its size
// and SHA-256, and that no byte of the archive holds the canary.
func checkExtracted(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	canaryCheck(t, "bundle", archive, raw)
	listed := map[string]bool{bundle.ManifestName: true}
	for _, line := range strings.Split(readFile(t, filepath.Join(dir, bundle.ManifestName)), "\n") {
		fl := strings.Fields(line)
		if len(fl) != 4 || len(fl[0]) != 64 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, fl[3]))
		sum := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(sum[:]) != fl[0] || fmt.Sprint(len(b)) != fl[1] {
			t.Errorf("MANIFEST %q does not match the extracted file (%d bytes, %v)", line, len(b), err)
		}
		listed[fl[3]] = true
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if rel, _ := filepath.Rel(dir, path); !listed[rel] {
				t.Errorf("%s is not in MANIFEST", rel)
			}
		}
		return nil
	})
}

var archiveLine = regexp.MustCompile(`Archive: (\S+)\nSize: [0-9.]+ [KMG]?i?B`)

// A whole getpomlogs.sh session in a real pseudo-terminal, with every
// wrong answer it handles: not y/n, a file for a directory, a new
// directory declined then created, a directory without room, an invalid
// process number, a malformed date and an end before the start.
func TestBundleInteractiveSession(t *testing.T) {
	s := newSim(t)
	work := t.TempDir()
	aFile := filepath.Join(work, "notes.txt")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(work, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(work, "support")
	c := s.cmd("bundle")
	// A disk cannot be filled for a test: this build reports 1 KiB free
	// in the directory "full".
	c.Env = append(c.Env, "UPGRADER_FAILPOINT_FREE=1024:"+full)
	tm := startTerminal(t, c)

	def := filepath.Join(s.root, "opt/Avaya/avpom/POManager/Temp/tmpdir")
	tm.expect("The archive will be saved in " + def + "\n")
	tm.answer("Do you want to change the archive directory? (y/n): ", "maybe")
	tm.expect("Please answer y or n.\n")
	tm.answer("Do you want to change the archive directory? (y/n): ", "y")
	tm.answer("Enter the archive directory: ", aFile)
	tm.expect(aFile + " is not a directory.\n")
	tm.answer("Enter the archive directory: ", dest)
	tm.answer(dest+" is not a directory. Create it? (y/n): ", "n")
	tm.answer("Enter the archive directory: ", full)
	tm.expect("Not enough free space in " + full + ": the archive needs about ")
	tm.expect(", 1.0 KiB (1024 bytes) is free.\n")
	tm.answer("Enter the archive directory: ", dest)
	tm.answer(dest+" is not a directory. Create it? (y/n): ", "y")

	tm.answer("Do you want to collect the logs of some processes only? (y/n): ", "y")
	tm.answer("ENTER when done: ", "2")
	tm.expect(" +  2) CmpMgr\n")
	tm.answer("ENTER when done: ", "11")
	tm.expect("Invalid option: 11\n")
	tm.answer("ENTER when done: ", "x")
	tm.expect("Invalid option: x\n")
	tm.answer("ENTER when done: ", "7")
	tm.answer("ENTER when done: ", "3")
	menu := tm.expect("ENTER when done: ")
	for _, want := range []string{" +  2) CmpMgr\n", " +  3) AgtMgr\n", " +  7) PIM Web\n", "    8) PIM WebService\n", "   10) zookeeperserver\n"} {
		if !strings.Contains(menu, want) {
			t.Errorf("the menu lacks %q:\n%s", want, menu)
		}
	}
	if _, err := tm.pty.Write([]byte("3\r")); err != nil { // AgtMgr again: deselected
		t.Fatal(err)
	}
	if menu := tm.expect("ENTER when done: "); !strings.Contains(menu, "    3) AgtMgr\n") {
		t.Errorf("AgtMgr still selected:\n%s", menu)
	}
	if _, err := tm.pty.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	tm.expect("Selected processes: CmpMgr, PIM Web\n")

	tm.answer("Do you want to collect the logs of a date range only? (y/n): ", "y")
	tm.answer("Start date (YYYY-MM-DD HH:MM:SS): ", "2026-11-23")
	tm.expect(`Invalid date: "2026-11-23" is not a date: use YYYY-MM-DD HH:MM:SS`)
	tm.answer("Start date (YYYY-MM-DD HH:MM:SS): ", "2026-11-23 09:00:00")
	tm.answer("End date (YYYY-MM-DD HH:MM:SS): ", "2026-11-22 00:00:00")
	tm.expect("Invalid range: the end 2026-11-22 00:00:00 is before the start 2026-11-23 09:00:00; enter an end after the start.\n")
	tm.answer("End date (YYYY-MM-DD HH:MM:SS): ", "2026-11-23 09:15:00")
	tm.expect("Date range: 2026-11-23 09:00:00 to 2026-11-23 09:15:00\n")

	code, rest := tm.wait()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, rest)
	}
	m := archiveLine.FindStringSubmatch(rest)
	if m == nil || filepath.Dir(m[1]) != dest {
		t.Fatalf("the session does not end with the archive's path in %s and its size:\n%s", dest, rest)
	}
	dir := extract(t, m[1])
	checkExtracted(t, m[1], dir)
	got := readFile(t, filepath.Join(dir, "selectedlogs/pom/CmpMgr.log"))
	if !strings.HasPrefix(got, "2026-11-23 09:14:07,220 ERROR") || !strings.Contains(got, "\t... 4 more\n") || strings.Contains(got, "09:20:01") {
		t.Errorf("CmpMgr.log is not cut to 09:00-09:15 with its stack trace:\n%s", got)
	}
	for _, gone := range []string{"selectedlogs/pom/AgtMgr.log", "selectedlogs/pom/PIM_Web.log", "logs"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s is in the archive", gone)
		}
	}
}

// --yes on a terminal takes the defaults without asking.
func TestBundleYesOnATerminalAsksNothing(t *testing.T) {
	s := newSim(t)
	tm := startTerminal(t, s.cmd("bundle", "--yes"))
	code, shown := tm.wait()
	if code != 0 || strings.Contains(shown, "(y/n)") || archiveLine.FindStringSubmatch(shown) == nil {
		t.Fatalf("exit %d:\n%s", code, shown)
	}
}

// For scripts: flags, no questions, the result as JSON.
func TestBundleFlagsJSON(t *testing.T) {
	s := newSim(t)
	out := t.TempDir()
	r := s.mustRun(exitOK, "bundle", "--out", out, "--process", "CmpMgr", "--process", "PIM Web", "--since", "2026-11-23 09:00:00",
		"--until", "2026-11-23T09:30:00Z", "-a", "-c", "-o", "json")
	var res bundle.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("result JSON: %v\n%s", err, r.stdout)
	}
	b, err := os.ReadFile(res.Path)
	sum := sha256.Sum256(b)
	if err != nil || filepath.Dir(res.Path) != out || int64(len(b)) != res.Size || hex.EncodeToString(sum[:]) != res.SHA256 {
		t.Fatalf("result %+v does not describe the archive (%d bytes, %v)", res, len(b), err)
	}
	if res.Logs != "selectedlogs" || !slices.Equal(res.Selection.Processes, []string{"CmpMgr", "PIM Web"}) || res.Files != len(res.Entries) {
		t.Errorf("result %+v", res)
	}
	dir := extract(t, res.Path)
	checkExtracted(t, res.Path, dir)
	for _, name := range []string{"selectedlogs/pom/CmpMgr.log", "selectedlogs/pom/PIM_Web.log", "selectedlogs/appserver/catalina.2026-11-23.log",
		"selectedlogs/appserver/webapps/PODemoApp/PODemoApp.log", "selectedlogs/catalina/catalina.out", "selectedlogs/mpp/mpp1/process/CXI/CXI.log",
		"upgrader/profile.yaml", "upgrader/facts.json", "upgrader/plan-now.json", "upgrader/version.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(dir, bundle.ManifestName)), "NOTE no state yet: ") {
		t.Error("MANIFEST does not say there is no state yet")
	}
}

// Without a terminal, and with none of the flags, nothing is asked: all
// logs and every run's records go to the default directory.
func TestBundleWithoutTerminalNeverAsks(t *testing.T) {
	s := newSim(t)
	s.mustRun(exitOK, "run", "--yes")
	runID := s.runID()
	stateFile := filepath.Join(s.state, "state.db")
	before := readFile(t, stateFile)
	r := s.mustRun(exitOK, "bundle")
	if strings.Contains(r.stdout+r.stderr, "(y/n)") {
		t.Fatalf("asked without a terminal:\n%s", r.stdout)
	}
	m := archiveLine.FindStringSubmatch(r.stdout)
	if m == nil || filepath.Dir(m[1]) != filepath.Join(s.root, "opt/Avaya/avpom/POManager/Temp/tmpdir") {
		t.Fatalf("no archive in the default directory:\n%s", r.stdout)
	}
	dir := extract(t, m[1])
	checkExtracted(t, m[1], dir)
	var journal []map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "upgrader/runs", runID, "journal.json"))), &journal); err != nil || len(journal) < 10 {
		t.Errorf("journal of run %s: %d entries, %v", runID, len(journal), err)
	}
	for _, name := range []string{"logs/pom/CmpMgr.log", "logs/pom/CmpDir.log.3", "logs/pom/pom_console.out", "upgrader/plan.json",
		"upgrader/runs/" + runID + "/run.json", "upgrader/runs/" + runID + "/steps.json", "upgrader/upgrader.log"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "logs/appserver")); err == nil {
		t.Error("app-server logs without -a")
	}
	// The installer's own output, from its job log.
	if logs, _ := filepath.Glob(filepath.Join(dir, "upgrader/jobs", runID+"-upgrade-pom-*.log")); len(logs) != 1 ||
		!strings.Contains(readFile(t, logs[0]), "PROGRESS 5/5 Writing version") {
		t.Errorf("the installer's log is not in the bundle: %v", logs)
	}
	if readFile(t, stateFile) != before {
		t.Error("the bundle changed the state file")
	}
}

func TestBundleUsageErrors(t *testing.T) {
	s := newSim(t)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"unknown process": {[]string{"--process", "CmpMan"}, `--process: no POM process "CmpMan": use one of CmpDir, CmpMgr, AgtMgr, kafkaserver, "PIM RestService"`},
		"malformed date":  {[]string{"--since", "2026-11-23"}, `--since: "2026-11-23" is not a date: use YYYY-MM-DD HH:MM:SS`},
		"end before start": {[]string{"--since", "2026-11-23 10:00:00", "--until", "2026-11-23 09:00:00"},
			"--until: the end 2026-11-23 09:00:00 is before the start 2026-11-23 10:00:00"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.mustRun(exitUsage, append([]string{"bundle", "--out", t.TempDir()}, c.args...)...)
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, c.want)
			}
		})
	}
}

// While the daemon holds the state its run comes from the daemon; a
// damaged state file is noted and copied, never changed.
func TestBundleEvidenceFromDaemonAndDamagedState(t *testing.T) {
	s := newSim(t)
	s.mustRun(exitOK, "run", "--yes")
	runID := s.runID()
	d := s.startDaemon(t)
	r := s.mustRun(exitOK, "bundle", "--out", t.TempDir(), "--socket", d.socket, "-o", "json")
	var res bundle.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	dir := extract(t, res.Path)
	if _, err := os.Stat(filepath.Join(dir, "upgrader/runs", runID, "journal.json")); err != nil {
		t.Errorf("the daemon's run: %v", err)
	}
	if !strings.Contains(readFile(t, filepath.Join(dir, bundle.ManifestName)), "from the daemon on "+d.socket) {
		t.Errorf("MANIFEST does not say the run came from the daemon:\n%v", res.Notes)
	}
	d.kill()

	stateFile := filepath.Join(s.state, "state.db")
	damaged := bytes.Repeat([]byte("not a bbolt file "), 1000)
	if err := os.WriteFile(stateFile, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	r = s.mustRun(exitOK, "bundle", "--out", t.TempDir(), "-o", "json")
	res = bundle.Result{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	dir = extract(t, res.Path)
	if got := readFile(t, filepath.Join(dir, "upgrader/state.db")); got != string(damaged) {
		t.Error("the damaged state file is not in the archive as it is")
	}
	if m := readFile(t, filepath.Join(dir, bundle.ManifestName)); !strings.Contains(m, "NOTE state "+stateFile+" cannot be read (left as it is") ||
		!strings.Contains(m, "runs read from the snapshot") {
		t.Errorf("MANIFEST:\n%s", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "upgrader/runs", runID, "run.json")); err != nil {
		t.Errorf("the run from the snapshot: %v", err)
	}
	if b, _ := os.ReadFile(stateFile); !bytes.Equal(b, damaged) {
		t.Error("the damaged state file was changed")
	}
}

// A bundle killed before it is complete leaves no archive under its name.
func TestBundleKilledLeavesNoArchive(t *testing.T) {
	s := newSim(t)
	out := t.TempDir()
	mark := filepath.Join(t.TempDir(), "mark")
	c := s.cmd("bundle", "--out", out)
	c.Env = append(c.Env, "UPGRADER_FAILPOINT=bundle:before-manifest", "UPGRADER_FAILPOINT_MARK="+mark)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFile(t, mark, 20*time.Second) {
		c.Process.Kill()
		t.Fatal("the bundle never reached its failpoint")
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), ".pomlogs-") || !strings.Contains(entries[0].Name(), ".tar.gz.tmp-") {
		t.Fatalf("after the kill the directory holds %v, want only the temporary file", entries)
	}
	r := s.mustRun(exitOK, "bundle", "--out", out)
	if m := archiveLine.FindStringSubmatch(r.stdout); m == nil || filepath.Dir(m[1]) != out {
		t.Fatalf("the next bundle:\n%s", r.stdout)
	}
}
