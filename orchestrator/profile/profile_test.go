package profile_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator/profile"
)

const goodSum = "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193"

func TestDecodeSimhostProfile(t *testing.T) {
	// The profile shipped with the simulated host must keep decoding.
	path := filepath.Join("..", "..", "testdata", "simhost", "pom", "profile.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Decode(data, base)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if p.Site != "sim-pom-01" || p.Procedure != "pom-3.1.1-sp1-upgrade" {
		t.Errorf("site %q procedure %q", p.Site, p.Procedure)
	}
	if want := filepath.Join(base, "root"); p.Root != want {
		t.Errorf("root %q, want %q (relative to the profile's directory)", p.Root, want)
	}
	if len(p.MPPs) != 2 || p.MPPs[1].Name != "mpp2" || p.Media.Size != 270336 || p.Media.SHA256 != goodSum {
		t.Errorf("decoded %+v / %+v", p.MPPs, p.Media)
	}
	if got := p.Command(p.POM.Installer); !slices.Equal(got, []string{filepath.Join(base, "root", "sim/bin/pom-installer"), "--iso", "{iso}", "--silent"}) {
		t.Errorf("installer argv %q", got)
	}
}

func TestDecodeValid(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		name     string
		yaml     string
		wantRoot string
	}{
		{"no root means the real server", "site: a\n", "/"},
		{"relative root from the profile's directory", "site: a\nroot: sim/root\n", filepath.Join(base, "sim", "root")},
		{"relative root with dot-dot", "root: ../elsewhere\n", filepath.Join(filepath.Dir(base), "elsewhere")},
		{"absolute root is cleaned", "root: /srv//sim/\n", "/srv/sim"},
		{"comments and empty lists", "# site profile\nsite: a\nmpps: []\nservice_command: []\n", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := profile.Decode([]byte(tt.yaml), base)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if p.Root != tt.wantRoot {
				t.Errorf("root %q, want %q", p.Root, tt.wantRoot)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"empty", "", []string{"profile is empty"}},
		{"unknown key names its line", "site: a\nprocedure: p\nsurprise: 1\n", []string{"line 3", "surprise"}},
		{"unknown nested key", "pom:\n  home: /opt/pom\n  hom: /opt/pom\n", []string{"line 3", "hom"}},
		{"misspelt section", "site: a\nmedias:\n  dir: /media\n", []string{"line 2", "medias"}},
		{"wrong type", "db:\n  port: five\n", []string{"line 2"}},
		{"not YAML", "site: [a\n", []string{"profile:"}},
		{"bad regex", "pom:\n  version:\n    file: /v\n    pattern: 'POMVersion=(\\S+'\n", []string{"pom.version.pattern"}},
		{"pattern without a group", "pom:\n  version:\n    file: /v\n    pattern: 'POMVersion=\\S+'\n", []string{"exactly one group", "has 0"}},
		{"pattern with two groups", "pom:\n  version:\n    file: /v\n    pattern: '(POM)Version=(\\S+)'\n", []string{"exactly one group", "has 2"}},
		{"relative service command", "service_command: [service]\n", []string{`"service"`, "absolute path"}},
		{"relative installer", "pom:\n  installer: [bin/installer, --silent]\n", []string{`"bin/installer"`, "absolute path"}},
		{"iso with a slash", "media:\n  dir: /media\n  iso: ../etc/passwd\n", []string{"media.iso", "file name inside media.dir"}},
		{"iso is dot-dot", "media:\n  dir: /media\n  iso: ..\n", []string{"media.iso"}},
		{"sha256 too short", "media:\n  sha256: 4bba4c54\n", []string{"media.sha256", "64 hex digits"}},
		{"sha256 not hex", "media:\n  sha256: " + strings.Repeat("zz", 32) + "\n", []string{"media.sha256"}},
		{"relative pom.home", "pom:\n  home: opt/pom\n", []string{"pom.home", "absolute path"}},
		{"relative backup dir", "db:\n  backup_dir: backups\n", []string{"db.backup_dir"}},
		{"relative password file", "db:\n  password_file: pgpass\n", []string{"db.password_file"}},
		{"mpp without config", "mpps:\n  - name: mpp1\n", []string{"mpps[0]"}},
		{"every problem is reported", "media:\n  iso: a/b\n  sha256: x\nservice_command: [svc]\n",
			[]string{"media.iso", "media.sha256", `"svc"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profile.Decode([]byte(tt.yaml), t.TempDir())
			if err == nil {
				t.Fatalf("Decode accepted:\n%s", tt.yaml)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestPathNeverEscapesRoot(t *testing.T) {
	p := profile.Profile{Root: "/srv/sim"}
	tests := []struct{ in, want string }{
		{"/etc/passwd", "/srv/sim/etc/passwd"},
		{"../../etc/passwd", "/srv/sim/etc/passwd"},
		{"/../../etc/passwd", "/srv/sim/etc/passwd"},
		{"/opt/../../../../etc/shadow", "/srv/sim/etc/shadow"},
		{"a/../../..", "/srv/sim"},
		{"..", "/srv/sim"},
		{"/", "/srv/sim"},
		{"/opt/./Avaya//POM/", "/srv/sim/opt/Avaya/POM"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := p.Path(tt.in)
			if got != tt.want {
				t.Errorf("Path(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got != "" && got != p.Root && !strings.HasPrefix(got, p.Root+"/") {
				t.Errorf("Path(%q) = %q escapes the root %q", tt.in, got, p.Root)
			}
		})
	}
	// On a real server Root is "/" and paths are used as written.
	if got := (profile.Profile{Root: "/"}).Path("/etc/upgrader/pgpass"); got != "/etc/upgrader/pgpass" {
		t.Errorf("with root /: %q", got)
	}
}

func TestCommandAndISOPath(t *testing.T) {
	p := profile.Profile{Root: "/srv/sim", Media: profile.Media{Dir: "/media", ISO: "pom.iso"}}
	if got := p.Command([]string{"/sim/bin/service", "vpms", "stop"}); !slices.Equal(got, []string{"/srv/sim/sim/bin/service", "vpms", "stop"}) {
		t.Errorf("Command: %q (only argv[0] moves under the root)", got)
	}
	if got := p.Command([]string{"../../bin/sh", "-c", "../x"}); got[0] != "/srv/sim/bin/sh" || got[2] != "../x" {
		t.Errorf("Command with dot-dot: %q", got)
	}
	if got := p.Command(nil); got != nil {
		t.Errorf("Command(nil) = %q", got)
	}
	if got := p.ISOPath(); got != "/srv/sim/media/pom.iso" {
		t.Errorf("ISOPath = %q", got)
	}
}

func TestDigest(t *testing.T) {
	const doc = "site: a\nroot: /srv/sim\nmedia:\n  dir: /media\n  iso: pom.iso\n  sha256: " + goodSum + "\nmpps:\n  - name: mpp1\n    config: /opt/mpp1.xml\n"
	decode := func(t *testing.T, y string) profile.Profile {
		t.Helper()
		p, err := profile.Decode([]byte(y), "/unused")
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		return p
	}
	base := decode(t, doc).Digest()
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("digest %q is not 64 hex digits", base)
	}
	tests := []struct {
		name    string
		yaml    string
		changed bool
	}{
		{"same document", doc, false},
		{"comments and key order do not count", "# hi\nmpps:\n  - config: /opt/mpp1.xml\n    name: mpp1\nroot: /srv/sim\nsite: a\nmedia:\n  sha256: " + goodSum + "\n  iso: pom.iso\n  dir: /media\n", false},
		{"site renamed", strings.Replace(doc, "site: a", "site: b", 1), true},
		{"root moved (the same profile on the migration target)", strings.Replace(doc, "root: /srv/sim", "root: /srv/other", 1), false},
		{"published sum", strings.Replace(doc, goodSum, strings.Repeat("0", 64), 1), true},
		{"mpp config", strings.Replace(doc, "/opt/mpp1.xml", "/opt/mpp9.xml", 1), true},
		{"ep moving to 7.2.1", doc + "ep:\n  moving_to_7_2_1: true\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decode(t, tt.yaml).Digest(); (got != base) != tt.changed {
				t.Errorf("digest changed = %v, want %v", got != base, tt.changed)
			}
		})
	}
}

// media.require_valid_certificate is the site's opt-in to upgrader's own
// stricter certificate rule: off unless written, a boolean, and a profile
// without it keeps the digest it had before the key existed.
func TestDecodeRequireValidCertificate(t *testing.T) {
	base := t.TempDir()
	without, err := profile.Decode([]byte("site: a\nmedia:\n  dir: /media\n"), base)
	if err != nil || without.Media.RequireValidCertificate {
		t.Fatalf("without the key: %v, require=%v", err, without.Media.RequireValidCertificate)
	}
	off, err := profile.Decode([]byte("site: a\nmedia:\n  dir: /media\n  require_valid_certificate: false\n"), base)
	if err != nil || off.Digest() != without.Digest() {
		t.Fatalf("written false: %v; digest %s, want %s as without the key", err, off.Digest(), without.Digest())
	}
	on, err := profile.Decode([]byte("site: a\nmedia:\n  dir: /media\n  require_valid_certificate: true\n"), base)
	if err != nil || !on.Media.RequireValidCertificate || on.Digest() == without.Digest() {
		t.Fatalf("written true: %v, require=%v, digest changed=%v", err, on.Media.RequireValidCertificate, on.Digest() != without.Digest())
	}
	if _, err := profile.Decode([]byte("media:\n  require_valid_certificate: sometimes\n"), base); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a non-boolean: %v, want an error naming line 2", err)
	}
}

const remoteMPPs = `site: a
ssh:
  user: avaya
  key_file: /etc/upgrader/id_ed25519
  known_hosts: /etc/upgrader/known_hosts
  port: 2222
  connect_timeout: 5s
  timeout: 30s
mpps:
  - name: mpp1
    host: localhost
    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml
  - name: mpp2
    host: mpp2.example.com
    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml
    version:
      file: /opt/Avaya/ExperiencePortal/MPP/config/mpp.version
      pattern: 'Patch=(\S+)'
  - name: mpp3
    host: 10.1.2.3
    port: 22
    user: root
    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml
    version:
      command: [/opt/Avaya/ExperiencePortal/MPP/bin/getversion, --patch]
      pattern: '(\d+(?:\.\d+)+)'
`

func TestDecodeRemoteMPPs(t *testing.T) {
	p, err := profile.Decode([]byte(remoteMPPs), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		host  string
		port  int
		user  string
		local bool
	}{{"localhost", 2222, "avaya", true}, {"mpp2.example.com", 2222, "avaya", false}, {"10.1.2.3", 22, "root", false}} {
		host, port, user := p.SSHTarget(p.MPPs[i])
		if host != want.host || port != want.port || user != want.user || p.MPPs[i].OnThisServer("pom1") != want.local {
			t.Errorf("mpps[%d]: %s:%d as %s, this server %v; want %+v", i, host, port, user, p.MPPs[i].OnThisServer("pom1"), want)
		}
	}
	if connect, op := p.SSHTimeouts(); connect.String() != "5s" || op.String() != "30s" {
		t.Errorf("timeouts %s %s", connect, op)
	}
	if p.KnownHostsPath() != "/etc/upgrader/known_hosts" || (profile.Profile{Root: "/srv/sim"}).KnownHostsPath() != "/srv/sim/root/.ssh/known_hosts" {
		t.Errorf("known_hosts %q", p.KnownHostsPath())
	}
	// This server by its name, empty, localhost; defaults 22 and root.
	for _, h := range []string{"", "localhost", "LOCALHOST", "::1", "pom1", "POM1"} {
		if !(profile.MPP{Host: h}).OnThisServer("pom1") {
			t.Errorf("host %q is not this server", h)
		}
	}
	for _, h := range []string{"127.0.0.2", "pom2", "pom1.example"} {
		if (profile.MPP{Host: h}).OnThisServer("pom1") {
			t.Errorf("host %q is this server", h)
		}
	}
	if _, port, user := (profile.Profile{}).SSHTarget(profile.MPP{Host: "x"}); port != 22 || user != "root" {
		t.Errorf("defaults %d %s", port, user)
	}
	// A profile without the new keys keeps its digest's form: an ssh
	// section changes it.
	bare, _ := profile.Decode([]byte("site: a\n"), t.TempDir())
	withSSH, _ := profile.Decode([]byte("site: a\nssh:\n  user: avaya\n"), t.TempDir())
	if bare.Digest() == withSSH.Digest() {
		t.Error("ssh.user does not enter the digest")
	}
}

// TestDecodeSSHRefusals: passwords in any form, hosts that could be read
// as ssh options, and names that could escape a file name are refused,
// each naming its key.
func TestDecodeSSHRefusals(t *testing.T) {
	mpp := "mpps:\n  - name: mpp1\n    host: mpp1.example\n    config: /opt/mppconfig.xml\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"ssh password", "ssh:\n  user: root\n  password: hunter2\n", []string{"line 3", "ssh.password", "no password", "ssh.key_file"}},
		{"ssh passphrase", "ssh:\n  key_file: /k\n  key_passphrase: x\n", []string{"ssh.key_passphrase", "ssh-agent"}},
		{"mpp password", mpp + "    password: x\n", []string{"line 5", "mpps[0].password"}},
		{"mpp secret in version", mpp + "    version:\n      secret: x\n", []string{"mpps[0].version.secret"}},
		{"ssh pwd", "ssh:\n  PWD: x\n", []string{"ssh.PWD"}},
		{"host as an option", "mpps:\n  - name: m\n    host: -oProxyCommand=sh\n    config: /x\n", []string{"mpps[0].host", "neither a host name"}},
		{"host with a user", "mpps:\n  - name: m\n    host: root@mpp1\n    config: /x\n", []string{"mpps[0].host"}},
		{"name with a slash", "mpps:\n  - name: ../m\n    config: /x\n", []string{"mpps[0].name"}},
		{"same name twice", mpp + "  - name: mpp1\n    host: mpp9\n    config: /x\n", []string{"mpps[1].name", "mpps[0]'s too"}},
		{"same file twice", mpp + "  - name: mpp2\n    host: MPP1.example\n    config: /opt//mppconfig.xml\n", []string{"mpps[1] and mpps[0] name the same file"}},
		{"relative config", "mpps:\n  - name: m\n    host: h\n    config: opt/mppconfig.xml\n", []string{"mpps[0].config", "absolute"}},
		{"bad port", mpp + "    port: 70000\n", []string{"mpps[0].port 70000"}},
		{"bad ssh port", "ssh:\n  port: -1\n", []string{"ssh.port -1"}},
		{"bad user", "ssh:\n  user: 'root; id'\n", []string{"ssh.user"}},
		{"relative key file", "ssh:\n  key_file: id_rsa\n", []string{"ssh.key_file", "absolute"}},
		{"relative known_hosts", "ssh:\n  known_hosts: kh\n", []string{"ssh.known_hosts", "absolute"}},
		{"bad timeout", "ssh:\n  timeout: soon\n", []string{"ssh.timeout"}},
		{"zero connect timeout", "ssh:\n  connect_timeout: 0s\n", []string{"ssh.connect_timeout"}},
		{"version without a group", mpp + "    version:\n      file: /v\n      pattern: 'x'\n", []string{"mpps[0].version.pattern"}},
		{"version command relative", mpp + "    version:\n      command: [getversion]\n      pattern: '(x)'\n", []string{`"getversion"`, "absolute path"}},
		{"version file relative", mpp + "    version:\n      file: v.txt\n      pattern: '(x)'\n", []string{"mpps[0].version.file"}},
		{"unknown ssh key", "ssh:\n  identity: /k\n", []string{"line 2", "identity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := profile.Decode([]byte(tt.yaml), t.TempDir())
			if err == nil {
				t.Fatalf("Decode accepted:\n%s", tt.yaml)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}
