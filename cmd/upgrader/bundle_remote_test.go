package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"upgrader/steps/bundle"
	"upgrader/testdata/sshd"
)

// `upgrader bundle -c` on the simulated POM host whose profile adds an
// MPP on another server (the harness's sshd) and one whose host key is
// not trusted: the local MPPs' logs and the remote one's are in the
// archive, each under logs/mpp/NAME/; the untrusted one is a skip saying
// why; on the remote server a pgpass file and a symlink to this host's
// password file are listed, never read: no byte of the archive holds the
// database password.
func TestBundleRemoteMPPOverSSH(t *testing.T) {
	srv, err := sshd.Start(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	s := newSim(t)
	if err := srv.WriteKnownHosts(filepath.Join(s.root, "etc/upgrader/known_hosts"), srv.Hosts[0]); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(srv.UserKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.root, "etc/upgrader/id_ed25519"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "MPP") // on "the MPP's server"
	cxi := "2026-11-23 09:14:07,220 ERROR call 17 dropped\n"
	for name, content := range map[string]string{"logs/process/CXI/CXI.log": cxi, "logs/pgpass": "*:*:*:postgres:" + canarySecret + "\n"} {
		os.MkdirAll(filepath.Dir(filepath.Join(home, name)), 0o755)
		if err := os.WriteFile(filepath.Join(home, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pgpass := filepath.Join(s.root, "etc/upgrader/pgpass")
	if err := os.Symlink(pgpass, filepath.Join(home, "logs/process/db.log")); err != nil {
		t.Fatal(err)
	}
	prof := readFile(t, s.profile) + `ssh:
  key_file: /etc/upgrader/id_ed25519
  known_hosts: /etc/upgrader/known_hosts
  port: ` + strconv.Itoa(srv.Port) + `
  connect_timeout: 5s
  timeout: 5s
`
	prof = strings.Replace(prof, "media:\n", `  - name: mpp3
    host: `+srv.Hosts[0]+`
    config: `+home+`/config/mppconfig.xml
  - name: mpp4
    host: `+srv.Hosts[1]+`
    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml
media:
`, 1)
	if err := os.WriteFile(s.profile, []byte(prof), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	c := s.cmd("bundle", "--out", out, "-c", "-o", "json")
	c.Env = append(c.Env, "SSH_AUTH_SOCK=")
	b, err := c.Output()
	if err != nil {
		t.Fatalf("bundle -c: %v\n%s", err, b)
	}
	canaryCheck(t, "output", "bundle -c output", b)
	var res bundle.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result JSON: %v\n%s", err, b)
	}
	dir := extract(t, res.Path)
	checkExtracted(t, res.Path, dir)
	if got := readFile(t, filepath.Join(dir, "logs/mpp/mpp3/process/CXI/CXI.log")); got != cxi {
		t.Errorf("the remote MPP's CXI log: %q", got)
	}
	for _, name := range []string{"logs/mpp/mpp1/process/CXI/CXI.log", "logs/mpp/mpp2/process/CXI/CXI.log"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("a local MPP's log: %v", err)
		}
	}
	m := readFile(t, filepath.Join(dir, bundle.ManifestName))
	at := "ssh://root@" + srv.Addr(srv.Hosts[0]) + home + "/logs/"
	for _, line := range []string{
		"SKIPPED " + at + "pgpass: a password file: never collected\n",
		"SKIPPED " + at + "process/db.log: symlink to " + pgpass + ", outside the log directory: not followed\n",
		"SKIPPED ssh://root@" + srv.Addr(srv.Hosts[1]) + "/opt/Avaya/ExperiencePortal/MPP/logs: MPP mpp4 not reached, none of its logs collected: host key of " +
			srv.Addr(srv.Hosts[1]) + " refused: it is not in " + filepath.Join(s.root, "etc/upgrader/known_hosts"),
	} {
		if !strings.Contains(m, line) {
			t.Errorf("MANIFEST lacks %q:\n%s", line, m)
		}
	}
}
