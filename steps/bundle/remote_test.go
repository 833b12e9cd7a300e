package bundle

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"upgrader/orchestrator/profile"
	"upgrader/testdata/sshd"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sshd.StopShared()
	os.Exit(code)
}

// sshHost is a test host whose profile logs in to the shared sshd's
// addresses (the MPPs' servers) with the harness's key, trusting the
// known_hosts file under its root.
type sshHost struct {
	*testHost
	s *sshd.Server
}

const knownHosts = "/etc/upgrader/known_hosts"

func newSSHHost(t *testing.T) *sshHost {
	s, err := sshd.Shared()
	if err != nil {
		t.Fatal(err)
	}
	h := &sshHost{testHost: newHost(t), s: s}
	key, err := os.ReadFile(s.UserKey)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(h.p.Path("/etc/upgrader"), 0o700)
	if err := os.WriteFile(h.p.Path("/etc/upgrader/id_ed25519"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	h.p.SSH = profile.SSH{KeyFile: "/etc/upgrader/id_ed25519", KnownHosts: knownHosts, ConnectTimeout: "5s", Timeout: "5s"}
	t.Setenv("SSH_AUTH_SOCK", "")
	return h
}

// trust writes the known_hosts file with the server's key for these hosts.
func (h *sshHost) trust(hosts ...string) {
	h.t.Helper()
	if err := h.s.WriteKnownHosts(h.p.Path(knownHosts), hosts...); err != nil {
		h.t.Fatal(err)
	}
}

// remoteMPP adds an MPP on one of the server's addresses whose home is a
// fresh directory (a path on "that server"), and returns the home.
func (h *sshHost) remoteMPP(name, host string, port int) string {
	home := filepath.Join(h.t.TempDir(), "MPP")
	h.p.MPPs = append(h.p.MPPs, profile.MPP{Name: name, Host: host, Port: port, Config: home + "/config/mppconfig.xml"})
	return home
}

// put writes a file on "the MPP's server" (this machine, outside the root).
func put(t *testing.T, path, content string, mtime ...time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range mtime {
		if err := os.Chtimes(path, m, m); err != nil {
			t.Fatal(err)
		}
	}
}

// closedPort is a port nothing listens on at host.
func closedPort(t *testing.T, host string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

const (
	// canarySecret stands for a database password on an MPP's server.
	canarySecret = "canary-S3cr3t-7f1e"
	cxiLog       = "2026-11-23 09:00:00,000 INFO CXI up\n2026-11-23 09:14:07,220 ERROR call 17 dropped\n"
	outside      = "outside-the-mpp-logs-51ab\n"
)

// TestBundleRemoteMPPs: -c collects an MPP on this server and two over
// SSH, each under mpp/NAME/, hashed in MANIFEST; an MPP whose host key is
// not trusted and one whose server does not answer are skips naming the
// MPP and why; on the MPPs' servers a symlink out of the log directory is
// listed, never followed, the log directory may itself be a symlink, and
// a pgpass file is never read.
func TestBundleRemoteMPPs(t *testing.T) {
	h := newSSHHost(t)
	s := h.s
	h.write("CmpMgr.log", "2026-11-23 09:00:00,000 INFO pom\n")
	h.p.MPPs = []profile.MPP{{Name: "mpp1", Config: "/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml"}}
	h.write(h.p.Path("/opt/Avaya/ExperiencePortal/mpp1/logs/process/CXI/CXI.log"), "2026-11-23 09:00:00,000 INFO local MPP\n")
	two := h.remoteMPP("mpp2", s.Hosts[0], s.Port)
	three := h.remoteMPP("mpp3", s.Hosts[1], s.Port)
	h.remoteMPP("mpp4", s.Hosts[2], s.Port)                    // its host key is not trusted
	h.remoteMPP("mpp5", s.Hosts[3], closedPort(t, s.Hosts[3])) // nothing listens
	h.trust(s.Hosts[0], s.Hosts[1], s.Hosts[3])

	put(t, two+"/logs/process/CXI/CXI.log", cxiLog)
	put(t, two+"/logs/process/CXI/CXI.log.1", "2026-11-22 23:59:59,000 INFO yesterday\n")
	put(t, two+"/logs/pgpass", "*:*:*:postgres:"+canarySecret+"\n")
	secretOut := filepath.Join(t.TempDir(), "shadow-like")
	put(t, secretOut, outside)
	for link, target := range map[string]string{two + "/logs/process/leak.log": secretOut, two + "/logs/current.log": two + "/logs/process/CXI/CXI.log"} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	// mpp3's logs directory is a symlink to where its logs are.
	real := filepath.Join(t.TempDir(), "var-log-mpp")
	put(t, real+"/process/CXI/CXI.log", "2026-11-23 09:30:00,000 INFO mpp3\n")
	os.MkdirAll(three, 0o755)
	if err := os.Symlink(real, three+"/logs"); err != nil {
		t.Fatal(err)
	}

	o := h.options()
	o.MPP = true
	res, u := h.bundle(o)
	want := []string{"logs/pom/CmpMgr.log", "logs/mpp/mpp1/process/CXI/CXI.log", "logs/mpp/mpp2/process/CXI/CXI.log",
		"logs/mpp/mpp2/process/CXI/CXI.log.1", "logs/mpp/mpp3/process/CXI/CXI.log", "upgrader/run.json", ManifestName}
	if !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	if u.files["logs/mpp/mpp2/process/CXI/CXI.log"] != cxiLog || u.files["logs/mpp/mpp3/process/CXI/CXI.log"] != "2026-11-23 09:30:00,000 INFO mpp3\n" {
		t.Errorf("remote logs not whole: %q", u.files["logs/mpp/mpp2/process/CXI/CXI.log"])
	}
	u.checkManifest(t)
	if bytes.Contains(u.raw, []byte(canarySecret)) || bytes.Contains(u.raw, []byte(outside)) {
		t.Fatal("a password file or a file outside the MPP's log directory is in the archive")
	}
	m := u.files[ManifestName]
	at := func(host string, port int, p string) string { return fmt.Sprintf("ssh://root@%s:%d%s", host, port, p) }
	for _, line := range []string{
		"# logs/mpp/mpp1/ <- /opt/Avaya/ExperiencePortal/mpp1/logs\n",
		"# logs/mpp/mpp2/ <- " + at(s.Hosts[0], s.Port, two+"/logs") + "\n",
		"SKIPPED " + at(s.Hosts[0], s.Port, two+"/logs/process/leak.log") + ": symlink to " + secretOut + ", outside the log directory: not followed\n",
		"SKIPPED " + at(s.Hosts[0], s.Port, two+"/logs/current.log") + ": symlink to " + two + "/logs/process/CXI/CXI.log, inside the log directory: collected as itself\n",
		"SKIPPED " + at(s.Hosts[0], s.Port, two+"/logs/pgpass") + ": a password file: never collected\n",
		"SKIPPED " + at(s.Hosts[2], s.Port, strings.TrimSuffix(h.p.MPPs[3].Config, "/config/mppconfig.xml")+"/logs") +
			": MPP mpp4 not reached, none of its logs collected: host key of " + s.Addr(s.Hosts[2]) + " refused: it is not in " + h.p.Path(knownHosts),
		"SKIPPED " + at(s.Hosts[3], h.p.MPPs[4].Port, strings.TrimSuffix(h.p.MPPs[4].Config, "/config/mppconfig.xml")+"/logs") +
			": MPP mpp5 not reached, none of its logs collected: ssh root@" + net.JoinHostPort(s.Hosts[3], fmt.Sprint(h.p.MPPs[4].Port)) + ": dial tcp",
	} {
		if !strings.Contains(m, line) {
			t.Errorf("MANIFEST lacks %q:\n%s", line, m)
		}
	}
	if len(res.Skipped) != 5 {
		t.Errorf("skipped %+v, want the two links, pgpass and two MPPs", res.Skipped)
	}
}

// TestBundleRemoteDateRange: the date selection applies to an MPP's logs
// over SSH as to this host's: lines cut to the range, a file last written
// before the start never read, a file without timestamps whole.
func TestBundleRemoteDateRange(t *testing.T) {
	h := newSSHHost(t)
	s := h.s
	home := h.remoteMPP("mpp2", s.Hosts[4], s.Port)
	h.trust(s.Hosts[4])
	late := local("2026-11-23 18:00:00.000")
	put(t, home+"/logs/process/CXI/CXI.log", cmpMgrLog, late)
	put(t, home+"/logs/process/CXI/CXI.log.3", "2026-11-20 10:00:00,000 INFO three days before\n", local("2026-11-20 10:00:00.000"))
	put(t, home+"/logs/process/CXI/CXI.log.2", "2026-11-23 12:00:00,000 INFO after the range\n", late)
	put(t, home+"/logs/process/MPP/console.out", "no timestamps here\n", late)
	o := h.options()
	o.MPP = true
	o.Selection = Selection{Processes: []string{"CmpMgr"}, Range: Range{Since: local("2026-11-23 09:14:00.000"), Until: local("2026-11-23 09:15:00.000")}}
	res, u := h.bundle(o)
	want := []string{"selectedlogs/mpp/mpp2/process/CXI/CXI.log", "selectedlogs/mpp/mpp2/process/MPP/console.out", "upgrader/run.json", ManifestName}
	if !slices.Equal(u.names, want) {
		t.Errorf("entries %v, want %v", u.names, want)
	}
	lines := strings.SplitAfter(cmpMgrLog, "\n")
	if got, wantLog := u.files["selectedlogs/mpp/mpp2/process/CXI/CXI.log"], strings.Join(lines[2:8], ""); got != wantLog {
		t.Errorf("CXI.log cut to %q, want %q", got, wantLog)
	}
	if got := u.files["selectedlogs/mpp/mpp2/process/MPP/console.out"]; got != "no timestamps here\n" {
		t.Errorf("console.out: %q", got)
	}
	u.checkManifest(t)
	m := u.files[ManifestName]
	for _, line := range []string{" cut selectedlogs/mpp/mpp2/process/CXI/CXI.log\n", " whole selectedlogs/mpp/mpp2/process/MPP/console.out\n", "1 files had no line in the range"} {
		if !strings.Contains(m, line) {
			t.Errorf("MANIFEST lacks %q:\n%s", line, m)
		}
	}
	if len(res.Entries) != 3 || !res.Entries[0].Cut {
		t.Errorf("entries %+v", res.Entries)
	}
}

// TestBundleRemoteConnectionCut: the connection to an MPP's server is cut
// while one of its logs streams into the archive, and that server's key
// is no longer trusted when upgrader dials again. The archive is still
// written: the file holds what was read, then zeros, and says so; the
// MPP's other file is a skip naming the MPP and why; another MPP is
// unaffected.
func TestBundleRemoteConnectionCut(t *testing.T) {
	h := newSSHHost(t)
	s := h.s
	cut := h.remoteMPP("mpp2", s.Hosts[5], s.Port)
	other := h.remoteMPP("mpp3", s.Hosts[6], s.Port)
	h.trust(s.Hosts[5], s.Hosts[6])
	big := strings.Repeat("2026-11-23 09:00:00,000 INFO a line of the CXI log, long enough to fill\n", 60000) // 4 MB
	put(t, cut+"/logs/a.log", big)
	put(t, cut+"/logs/b.log", cxiLog)
	put(t, other+"/logs/c.log", cxiLog)
	o := h.options()
	o.MPP = true
	var once sync.Once
	c := Collect(context.Background(), o)
	res, err := c.Write(context.Background(), func(done, total int64) {
		if done > 512<<10 {
			once.Do(func() {
				h.trust(s.Hosts[6])
				if n, err := s.KillSessions(s.Hosts[5]); n != 1 || err != nil {
					t.Errorf("cut %d connections: %v", n, err)
				}
			})
		}
	})
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	u := unpack(t, res.Path)
	u.checkManifest(t)
	got := u.files["logs/mpp/mpp2/a.log"]
	read := strings.TrimRight(got, "\x00")
	if len(got) != len(big) || len(read) < 512<<10 || len(read) == len(big) || !strings.HasPrefix(big, read) {
		t.Errorf("a.log: %d bytes, %d of them read before the cut; want %d, the real start, then zeros", len(got), len(read), len(big))
	}
	if u.files["logs/mpp/mpp3/c.log"] != cxiLog {
		t.Error("the other MPP's log is not whole")
	}
	if _, ok := u.files["logs/mpp/mpp2/b.log"]; ok {
		t.Error("b.log was read from a server whose key is no longer trusted")
	}
	m := u.files[ManifestName]
	for _, line := range []string{"NOTE logs/mpp/mpp2/a.log: read failed (", "; the rest is zeros\n",
		"SKIPPED ssh://root@" + s.Addr(s.Hosts[5]) + cut + "/logs/b.log: not read: MPP mpp2 cannot be reached any more (host key of " + s.Addr(s.Hosts[5]) + " refused"} {
		if !strings.Contains(m, line) {
			t.Errorf("MANIFEST lacks %q:\n%s", line, m)
		}
	}
}
