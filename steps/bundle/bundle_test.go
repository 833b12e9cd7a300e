package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator/profile"
	"upgrader/testdata/simhost"
)

// testHost is a small host tree: POM's logs and whatever a test adds.
type testHost struct {
	t   *testing.T
	p   profile.Profile
	out string
}

func newHost(t *testing.T) *testHost {
	return &testHost{t: t, p: profile.Profile{Site: "test site", Root: t.TempDir(), POM: profile.POM{Home: "/opt/pom"}}, out: t.TempDir()}
}

// logs is POM's log directory on the host.
func (h *testHost) logs() string { return h.p.Path("/opt/pom/logs") }

func (h *testHost) write(path, content string) string {
	h.t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(h.logs(), path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

func (h *testHost) options() Options {
	return Options{Profile: h.p, Dir: h.out, Now: time.Date(2026, 11, 23, 19, 0, 0, 0, time.UTC), Version: "test",
		Evidence: Evidence{Docs: []Doc{{Name: "run.json", Data: []byte(`{"id":"r1"}`)}}, Notes: []string{"no state yet"}}}
}

func (h *testHost) bundle(o Options) (Result, *unpacked) {
	h.t.Helper()
	res, err := Collect(context.Background(), o).Write(context.Background(), nil)
	if err != nil {
		h.t.Fatalf("Write: %v", err)
	}
	return res, unpack(h.t, res.Path)
}

// unpacked is an archive read back with the standard library's gzip and
// tar, not the writer's.
type unpacked struct {
	names []string
	files map[string]string
	raw   []byte // the whole decompressed tar stream
}

func unpack(t *testing.T, path string) *unpacked {
	t.Helper()
	f, err := os.Open(path)
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
		t.Fatalf("gunzip: %v", err)
	}
	u := &unpacked{files: map[string]string{}, raw: raw}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		u.names = append(u.names, hdr.Name)
		u.files[hdr.Name] = string(b)
	}
	return u
}

// checkManifest proves MANIFEST lists every other entry with its real size
// and SHA-256, and is the last entry.
func (u *unpacked) checkManifest(t *testing.T) {
	t.Helper()
	if len(u.names) == 0 || u.names[len(u.names)-1] != ManifestName {
		t.Fatalf("MANIFEST is not the last entry: %v", u.names)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(u.files[ManifestName], "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || strings.HasPrefix(line, "#") || f[0] == "SKIPPED" || f[0] == "NOTE" {
			continue
		}
		content, ok := u.files[f[3]]
		sum := sha256.Sum256([]byte(content))
		if !ok || f[0] != hex.EncodeToString(sum[:]) || f[1] != fmt.Sprint(len(content)) {
			t.Errorf("MANIFEST line %q does not match the entry (%d bytes)", line, len(content))
		}
		listed[f[3]] = true
	}
	for _, n := range u.names {
		if n != ManifestName && !listed[n] {
			t.Errorf("%s is not in MANIFEST", n)
		}
	}
}

func TestBundleAllLogs(t *testing.T) {
	h := newHost(t)
	h.write("CmpMgr.log", cmpMgrLog)
	h.write("CmpMgr.log.1", "2026-11-22 10:00:00,000 INFO older\n")
	h.write("archive/AgtMgr.log", "2026-11-22 10:00:00,000 INFO agent\n")
	res, u := h.bundle(h.options())
	want := []string{"logs/pom/CmpMgr.log", "logs/pom/CmpMgr.log.1", "logs/pom/archive/AgtMgr.log", "upgrader/run.json", ManifestName}
	if !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	if u.files["logs/pom/CmpMgr.log"] != cmpMgrLog {
		t.Error("CmpMgr.log is not whole")
	}
	u.checkManifest(t)
	m := u.files[ManifestName]
	for _, s := range []string{"site test site", "selection: all logs (in logs/)", "# logs/pom/ <- /opt/pom/logs", "NOTE no state yet"} {
		if !strings.Contains(m, s) {
			t.Errorf("MANIFEST lacks %q:\n%s", s, m)
		}
	}
	if res.Files != 4 || res.Logs != "logs" || res.Path != filepath.Join(h.out, "pomlogs-test_site-20261123-190000.tar.gz") {
		t.Errorf("result %+v", res)
	}
	st, err := os.Stat(res.Path)
	if err != nil || st.Size() != res.Size || st.Mode().Perm() != 0o600 {
		t.Errorf("archive %v %v, result says %d bytes", st, err, res.Size)
	}
	if left, _ := os.ReadDir(h.out); len(left) != 1 {
		t.Errorf("the archive's directory holds %d entries, want the archive alone", len(left))
	}
}

func TestBundleSelection(t *testing.T) {
	h := newHost(t)
	files := map[string]struct {
		content string
		mtime   string
	}{
		"CmpMgr.log":           {cmpMgrLog, "2026-11-23 18:00:00.000"},
		"CmpMgr.log.2":         {"2026-11-23 12:00:00,000 INFO after the range\n", "2026-11-23 12:00:00.000"},
		"CmpMgr.log.3":         {"2026-11-20 10:00:00,000 INFO three days before\n", "2026-11-20 10:00:00.000"},
		"CmpMgr_console.out":   {"no timestamps here\n", "2026-11-23 18:00:00.000"},
		"CmpMgr_console.out.1": {"no timestamps here either\n", "2026-11-20 10:00:00.000"},
		"PIM_Web.log":          {"2026-11-23 09:14:10,000 INFO web\n2026-11-23 11:00:00,000 INFO later\n", "2026-11-23 18:00:00.000"},
		"PIMWebService.log":    {"2026-11-23 09:14:10,000 INFO web service\n", "2026-11-23 18:00:00.000"},
		"AgtMgr.log":           {"2026-11-23 09:14:10,000 INFO agent\n", "2026-11-23 18:00:00.000"},
	}
	for name, f := range files {
		mtime := local(f.mtime)
		if err := os.Chtimes(h.write(name, f.content), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	o := h.options()
	o.Selection = Selection{Processes: []string{"CmpMgr", "PIM Web"},
		Range: Range{Since: local("2026-11-23 09:14:00.000"), Until: local("2026-11-23 09:15:00.000")}}
	res, u := h.bundle(o)
	// By process; by mtime (last written before the start: never read);
	// cut to the range (CmpMgr.log.2 has no line in it); without
	// timestamps and modified since the start: whole.
	want := []string{"selectedlogs/pom/CmpMgr.log", "selectedlogs/pom/CmpMgr_console.out", "selectedlogs/pom/PIM_Web.log", "upgrader/run.json", ManifestName}
	if !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	lines := strings.SplitAfter(cmpMgrLog, "\n")
	if got, wantLog := u.files["selectedlogs/pom/CmpMgr.log"], strings.Join(lines[2:8], ""); got != wantLog {
		t.Errorf("CmpMgr.log cut to %q, want the error, its stack trace and the warning %q", got, wantLog)
	}
	if got := u.files["selectedlogs/pom/PIM_Web.log"]; got != "2026-11-23 09:14:10,000 INFO web\n" {
		t.Errorf("PIM_Web.log cut to %q", got)
	}
	if got := u.files["selectedlogs/pom/CmpMgr_console.out"]; got != files["CmpMgr_console.out"].content {
		t.Errorf("CmpMgr_console.out: %q", got)
	}
	u.checkManifest(t)
	m := u.files[ManifestName]
	for _, s := range []string{" cut selectedlogs/pom/CmpMgr.log\n", " whole selectedlogs/pom/CmpMgr_console.out\n",
		"selection: processes CmpMgr, PIM Web, from 2026-11-23 09:14:00, until 2026-11-23 09:15:00 (in selectedlogs/)", "1 files had no line in the range"} {
		if !strings.Contains(m, s) {
			t.Errorf("MANIFEST lacks %q:\n%s", s, m)
		}
	}
	if res.Logs != "selectedlogs" || res.Files != 4 {
		t.Errorf("result %+v", res)
	}
}

func TestBelongsToAndParseProcess(t *testing.T) {
	for _, c := range []struct {
		rel, process string
		want         bool
	}{
		{"CmpMgr.log", "CmpMgr", true}, {"CmpMgr.log.4", "CmpMgr", true}, {"cmpmgr-gc.log", "CmpMgr", true},
		{"CmpMgrX.log", "CmpMgr", false}, {"PIM_Web.log", "PIM Web", true}, {"PIMWebService.log", "PIM Web", false},
		{"PIM_WebService.log", "PIM WebService", true}, {"kafkaserver/server.log", "kafkaserver", true},
		{"old/CmpDir.log", "CmpDir", true}, {"zookeeperserver.out", "kafkaserver", false}, {"CmpMgr_console.out", "CmpMgr", true},
		{"PIMWeb/web.log", "PIM Web", true}, {"pim-restservice.log", "PIM RestService", true}, {"PIMWebService.log", "PIM WebService", true},
	} {
		if got := belongsTo(c.rel, c.process); got != c.want {
			t.Errorf("belongsTo(%q, %q) = %v", c.rel, c.process, got)
		}
	}
	if p, err := ParseProcess("pim restservice"); err != nil || p != "PIM RestService" {
		t.Errorf("ParseProcess: %q %v", p, err)
	}
	_, err := ParseProcess("CmpMan")
	if err == nil || !strings.Contains(err.Error(), `CmpDir, CmpMgr, AgtMgr, kafkaserver, "PIM RestService"`) {
		t.Errorf("unknown process: %v", err)
	}
}

func TestBundleNeverFollowsSymlinksOut(t *testing.T) {
	h := newHost(t)
	h.write("CmpMgr.log", "2026-11-23 09:00:00,000 INFO in\n")
	outside := h.write(filepath.Join(h.p.Root, "etc/shadow-like"), "outside-the-logs-7c1d\n")
	for link, target := range map[string]string{"leak.log": outside, "etcdir": filepath.Dir(outside), "current.log": "CmpMgr.log", "dangling.log": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(h.logs(), link)); err != nil {
			t.Fatal(err)
		}
	}
	// The log directory itself may be a symlink: that is where the logs are.
	real := filepath.Join(h.p.Root, "var/log/pom")
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(h.logs(), real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, h.logs()); err != nil {
		t.Fatal(err)
	}
	res, u := h.bundle(h.options())
	if strings.Contains(string(u.raw), "outside-the-logs-7c1d") {
		t.Error("a file outside the log directory is in the archive")
	}
	if want := []string{"logs/pom/CmpMgr.log", "upgrader/run.json", ManifestName}; !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	reasons := map[string]string{}
	for _, s := range res.Skipped {
		reasons[filepath.Base(s.Path)] = s.Reason
	}
	for link, want := range map[string]string{"leak.log": "symlink to /etc/shadow-like, outside the log directory: not followed",
		"etcdir": "symlink to /etc, outside the log directory: not followed", "current.log": "symlink to /var/log/pom/CmpMgr.log, inside the log directory: collected as itself",
		"dangling.log": "symlink whose target cannot be read"} {
		if !strings.HasPrefix(reasons[link], want) {
			t.Errorf("%s: %q, want %q", link, reasons[link], want)
		}
		if !strings.Contains(u.files[ManifestName], "SKIPPED /var/log/pom/"+link+": "+want) {
			t.Errorf("MANIFEST does not list %s as skipped:\n%s", link, u.files[ManifestName])
		}
	}
}

// A file that cannot be opened is listed with the reason, not fatal. The
// tests run as root, who may open anything: the bundle then runs with
// nobody's effective uid, as a support engineer without root would.
func TestBundleUnreadableFiles(t *testing.T) {
	h := newHost(t)
	h.write("CmpMgr.log", "2026-11-23 09:00:00,000 INFO readable\n")
	secret := h.write("AgtMgr.log", "2026-11-23 09:00:00,000 INFO not for nobody\n")
	if err := os.Chmod(secret, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(h.logs(), "CmpDir.pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// nobody must reach the tree: open the test's own temporary
		// directories, then drop the effective uid (the saved one stays
		// root, to come back).
		for _, dir := range []string{h.p.Root, h.out} {
			for d := dir; d != os.TempDir(); d = filepath.Dir(d) {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := syscall.Setreuid(-1, 65534); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := syscall.Setreuid(-1, 0); err != nil {
				panic(err) // the rest of the tests would run as nobody
			}
		}()
	}
	res, err := Collect(context.Background(), h.options()).Write(context.Background(), nil)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	u := unpack(t, res.Path)
	if want := []string{"logs/pom/CmpMgr.log", "upgrader/run.json", ManifestName}; !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	m := u.files[ManifestName]
	for _, s := range []string{"SKIPPED /opt/pom/logs/AgtMgr.log: open: permission denied", "SKIPPED /opt/pom/logs/CmpDir.pipe: not a regular file (named pipe)"} {
		if !strings.Contains(m, s) {
			t.Errorf("MANIFEST lacks %q:\n%s", s, m)
		}
	}
}

func TestBundleLeavesNoHalfArchive(t *testing.T) {
	h := newHost(t)
	h.write("CmpMgr.log", cmpMgrLog)
	o := h.options()
	ctx, cancel := context.WithCancel(context.Background())
	o.Failpoint = func(point string) {
		if point == "before-manifest" {
			cancel() // Ctrl-C once the logs are in
		}
	}
	_, err := Collect(context.Background(), o).Write(ctx, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel: %v", err)
	}
	if left, _ := os.ReadDir(h.out); len(left) != 0 {
		t.Errorf("an interrupted bundle left %v", left)
	}
	// An archive of the same name is never replaced.
	o = h.options()
	final := filepath.Join(h.out, "same.tar.gz")
	h.write(final, "an earlier archive")
	o.Name = "same.tar.gz"
	if _, err := Collect(context.Background(), o).Write(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("writing over an archive: %v", err)
	}
	if b, _ := os.ReadFile(final); string(b) != "an earlier archive" {
		t.Error("the earlier archive was replaced")
	}
	if left, _ := os.ReadDir(h.out); len(left) != 1 {
		t.Errorf("left %v", left)
	}
}

// The simulated POM host, every source: the database password (the
// canary in its pgpass file) is nowhere in the archive, even with the
// pgpass file in a log directory, and the profile in it is redacted.
func TestBundleSimHostCanary(t *testing.T) {
	const canary = "canary-S3cr3t-7f1e"
	sim, err := simhost.Setup(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sim.Profile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Decode(data, sim.Dir)
	if err != nil {
		t.Fatal(err)
	}
	pgpass, err := os.ReadFile(p.Path(p.DB.PasswordFile))
	if err != nil || !strings.Contains(string(pgpass), canary) {
		t.Fatalf("the simulated host's pgpass has no canary: %v", err)
	}
	logs := p.Path(filepath.Join(p.POM.Home, "logs"))
	if err := os.WriteFile(filepath.Join(logs, "pgpass"), pgpass, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p.Path(p.DB.PasswordFile), filepath.Join(logs, "db.log")); err != nil {
		t.Fatal(err)
	}
	p.POM.Installer = append(p.POM.Installer, "--db-password="+canary)
	red, err := RedactedProfile(p, sim.Profile)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Profile: p, Dir: t.TempDir(), AppServer: true, MPP: true, Now: time.Now(), Version: "test",
		Evidence: Evidence{Docs: []Doc{{Name: "profile.yaml", Data: red}}}}
	res, err := Collect(context.Background(), o).Write(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := unpack(t, res.Path)
	if bytes.Contains(u.raw, []byte(canary)) {
		t.Fatal("the database password is in the archive")
	}
	u.checkManifest(t)
	for _, name := range []string{"logs/pom/CmpMgr.log", "logs/pom/kafkaserver.log", "logs/appserver/catalina.2026-11-23.log",
		"logs/appserver/webapps/PODemoApp/PODemoApp.log", "logs/catalina/catalina.out", "logs/mpp/mpp1/process/CXI/CXI.log",
		"logs/mpp/mpp2/process/CXI/CXI.log", "upgrader/profile.yaml"} {
		if _, ok := u.files[name]; !ok {
			t.Errorf("%s missing from %v", name, u.names)
		}
	}
	prof := u.files["upgrader/profile.yaml"]
	for _, s := range []string{"password_file: /etc/upgrader/pgpass", "- /sim/bin/pom-installer\n", "- '[4 arguments withheld]'\n", "site: sim-pom-01"} {
		if !strings.Contains(prof, s) {
			t.Errorf("profile.yaml lacks %q:\n%s", s, prof)
		}
	}
	if !strings.Contains(u.files[ManifestName], "SKIPPED "+p.POM.Home+"/logs/pgpass: a password file: never collected") {
		t.Errorf("the pgpass file is not listed as skipped:\n%s", u.files[ManifestName])
	}
}

// Every way a site writes a credential into a command line stays out of
// the profile copy: flags with the value glued or after them, connect
// strings, SQL, environment-style assignments, and a plain positional
// password that no pattern could tell from any other argument.
func TestRedactedProfileCommands(t *testing.T) {
	const secret = "S3cr3t-pw"
	forms := map[string][]string{
		"user/pass@db":     {"/usr/bin/rman", "target", "system/" + secret + "@POM"},
		"-p pass":          {"/usr/bin/mysqldump", "-u", "pom", "-p", secret},
		"-pPASS":           {"/usr/bin/mysqldump", "-upom", "-p" + secret},
		"-P pass":          {"/opt/mssql-tools/bin/sqlcmd", "-U", "sa", "-P", secret},
		"--password=x":     {"/usr/local/bin/backup", "--password=" + secret},
		"--password x":     {"/usr/local/bin/backup", "--password", secret},
		"PASSWORD=x":       {"/usr/bin/env", "PASSWORD=" + secret, "/usr/local/bin/backup"},
		"IDENTIFIED BY x":  {"/usr/bin/sqlplus", "-S", "/ as sysdba", "ALTER USER pom IDENTIFIED BY " + secret},
		"identified by x":  {"/usr/bin/sqlplus", "alter user pom identified by", secret},
		"positional":       {"/usr/local/bin/site-backup.sh", "pom", secret, "{backup}"},
		"token in a URL":   {"/usr/bin/curl", "https://pom:" + secret + "@backup.example/put"},
		"secret in argv 1": {"/usr/local/bin/backup", secret},
	}
	for name, argv := range forms {
		t.Run(name, func(t *testing.T) {
			p := profile.Profile{Site: "s", DB: profile.DB{Kind: "oracle", BackupCommand: argv}, POM: profile.POM{Installer: argv},
				PC:   profile.PC{Installers: map[string][]string{"dialer-4.1.2": argv}, Backup: argv},
				MPPs: []profile.MPP{{Name: "mpp2", Host: "mpp2.example", Config: "/x", Version: profile.VersionSource{Command: argv}}}}
			red, err := RedactedProfile(p, "/etc/upgrader/site.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(red), secret) {
				t.Fatalf("the secret is in the profile copy:\n%s", red)
			}
			if !strings.Contains(string(red), argv[0]) {
				t.Errorf("the program %s is not named:\n%s", argv[0], red)
			}
		})
	}
}

// The release notes' Contact Support Checklist asks for more than a bundle
// on this server can hold: FINEST level logs (upgrader cannot set or check
// the level), the POM Agent API logs on the affected agent's desktop, an
// external application server's logs on that server, and custom OD
// application logs. MANIFEST and the JSON result say so, marked as what
// support also asks for, whatever was collected.
func TestBundleSaysWhatSupportAlsoAsks(t *testing.T) {
	h := newHost(t)
	h.write("CmpMgr.log", "2026-11-22 08:00:00 INFO up\n")
	for _, o := range []Options{h.options(), func() Options { o := h.options(); o.AppServer, o.MPP, o.Name = true, true, "all.tar.gz"; return o }()} {
		res, u := h.bundle(o)
		u.checkManifest(t)
		var asks []string
		for _, line := range strings.Split(u.files[ManifestName], "\n") {
			if rest, ok := strings.CutPrefix(line, "NOTE support also asks for: "); ok {
				asks = append(asks, rest)
			}
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Asks []string `json:"support_also_asks"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, want := range [][]string{
			{"FINEST level logs", "cannot change or check", "log level"},
			{"POM Agent API logs", "desktop", "affected agent", "not on this server"},
			{"external application server", "on that server"},
			{"custom OD application logs"},
		} {
			for name, list := range map[string][]string{"MANIFEST": asks, "JSON support_also_asks": doc.Asks} {
				found := slices.ContainsFunc(list, func(s string) bool {
					return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(s, w) })
				})
				if !found {
					t.Errorf("%s has no note with %q: %q", name, want, list)
				}
			}
		}
	}
}
