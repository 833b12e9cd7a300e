package profile_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator/profile"
)

func TestUnrootInvertsPath(t *testing.T) {
	p := profile.Profile{Root: "/srv/sim"}
	for _, in := range []string{
		"/", "/etc/upgrader/pgpass", "/var/backups/upgrader/pc-data-r1.tar.gz",
		"/opt/avaya/pds/data/..hidden", "/a b/c", "/srv/sim/nested",
	} {
		t.Run(in, func(t *testing.T) {
			rooted := p.Path(in)
			if got := p.Unroot(rooted); got != in {
				t.Errorf("Unroot(Path(%q)) = Unroot(%q) = %q, want %q", in, rooted, got, in)
			}
			if back := p.Path(p.Unroot(rooted)); back != rooted {
				t.Errorf("Path(Unroot(%q)) = %q", rooted, back)
			}
		})
	}
	// Path cleans what it maps; Unroot gives the clean host path back.
	for in, want := range map[string]string{
		"/opt/./avaya//pds/": "/opt/avaya/pds",
		"/../../etc/passwd":  "/etc/passwd",
		"/opt/../etc/hosts":  "/etc/hosts",
	} {
		if got := p.Unroot(p.Path(in)); got != want {
			t.Errorf("Unroot(Path(%q)) = %q, want %q", in, got, want)
		}
	}
	// A rooted path that is not clean is still recognised.
	if got := p.Unroot("/srv/sim//var/./backups/"); got != "/var/backups" {
		t.Errorf("Unroot of an unclean rooted path = %q, want /var/backups", got)
	}
}

func TestUnrootOutsideRoot(t *testing.T) {
	p := profile.Profile{Root: "/srv/sim"}
	for _, in := range []string{
		"/etc/passwd",
		"/srv",
		"/srv/simulator/etc/x", // shares a prefix with the root, is not under it
		"/srv/sim/../other/x",
		"relative/path",
		"",
	} {
		if got := p.Unroot(in); got != in {
			t.Errorf("Unroot(%q) = %q, want it unchanged (outside the root)", in, got)
		}
	}
}

func TestUnrootRealServer(t *testing.T) {
	p := profile.Profile{Root: "/"}
	for _, in := range []string{"/", "/etc/upgrader/pgpass", "/var/backups/upgrader/pc-data-r1.tar.gz", "/..x"} {
		if got := p.Unroot(in); got != in {
			t.Errorf("Unroot(%q) with root / = %q, want it unchanged", in, got)
		}
		if got := p.Path(in); got != in {
			t.Errorf("Path(%q) with root / = %q, want it unchanged", in, got)
		}
	}
	// Decode's default root is "/".
	d, err := profile.Decode([]byte("site: a\n"), "/unused")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Unroot("/etc/x"); got != "/etc/x" {
		t.Errorf("Unroot with the default root = %q", got)
	}
}

func TestDigestIgnoresRoot(t *testing.T) {
	const body = "site: m\nprocedure: pc-4.1.2-migrate\nhost:\n  reboot_command: [/sim/bin/reboot]\npc:\n  home: /opt/avaya/pds\n" +
		"  backup_dir: /var/backups/upgrader\n  products:\n    dialer: {file: /opt/avaya/pds/etc/dialer.version, pattern: 'VERSION=(\\S+)'}\n" +
		"  installers:\n    dialer-4.1.2: [/sim/bin/pc-install, dialer, \"4.1.2\"]\n"
	decode := func(t *testing.T, y, base string) profile.Profile {
		t.Helper()
		p, err := profile.Decode([]byte(y), base)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		return p
	}
	source := decode(t, "root: root\n"+body, "/srv/dl385")
	target := decode(t, "root: root\n"+body, "/srv/x3650")
	real := decode(t, body, "/etc/upgrader")
	abs := decode(t, "root: /mnt/elsewhere\n"+body, "/unused")
	if source.Root == target.Root || source.Root == real.Root {
		t.Fatalf("roots %q, %q, %q should differ", source.Root, target.Root, real.Root)
	}
	want := source.Digest()
	for name, p := range map[string]profile.Profile{"target": target, "real server": real, "absolute root": abs} {
		if got := p.Digest(); got != want {
			t.Errorf("%s digest %s, want %s (root is left out)", name, got, want)
		}
	}
	// The PC and host sections do count.
	for name, y := range map[string]string{
		"installer": strings.Replace(body, `"4.1.2"]`, `"4.1.3"]`, 1),
		"reboot":    strings.Replace(body, "/sim/bin/reboot", "/sbin/reboot", 1),
		"backup":    strings.Replace(body, "/var/backups/upgrader", "/srv/backups", 1),
		"pattern":   strings.Replace(body, `VERSION=(\S+)`, `V=(\S+)`, 1),
	} {
		if decode(t, y, "/unused").Digest() == want {
			t.Errorf("changing the %s does not change the digest", name)
		}
	}
}

func TestBootIDFileAndRebootCommand(t *testing.T) {
	for _, tc := range []struct {
		name       string
		yaml       string
		wantBootID string
		wantReboot []string
	}{
		{"defaults on a real server", "site: a\n", "/proc/sys/kernel/random/boot_id", []string{"/sbin/reboot"}},
		{"defaults under a root", "root: /srv/sim\n", "/srv/sim/proc/sys/kernel/random/boot_id", []string{"/srv/sim/sbin/reboot"}},
		{"overrides", "host:\n  boot_id_file: /run/upgrader/boot_id\n  reboot_command: [/usr/sbin/shutdown, -r, now]\n",
			"/run/upgrader/boot_id", []string{"/usr/sbin/shutdown", "-r", "now"}},
		{"overrides under a root", "root: /srv/sim\nhost:\n  boot_id_file: /run/upgrader/boot_id\n  reboot_command: [/sim/bin/reboot, --now]\n",
			"/srv/sim/run/upgrader/boot_id", []string{"/srv/sim/sim/bin/reboot", "--now"}},
		{"empty reboot command means the default", "host:\n  reboot_command: []\n", "/proc/sys/kernel/random/boot_id", []string{"/sbin/reboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := profile.Decode([]byte(tc.yaml), "/unused")
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := p.BootIDFile(); got != tc.wantBootID {
				t.Errorf("BootIDFile = %q, want %q", got, tc.wantBootID)
			}
			if got := p.RebootCommand(); !slices.Equal(got, tc.wantReboot) {
				t.Errorf("RebootCommand = %q, want %q", got, tc.wantReboot)
			}
		})
	}
	// The override's slice is not changed by mapping it under the root.
	p := profile.Profile{Root: "/srv/sim", Host: profile.HostConfig{RebootCommand: []string{"/sim/bin/reboot"}}}
	p.RebootCommand()
	if p.Host.RebootCommand[0] != "/sim/bin/reboot" {
		t.Errorf("RebootCommand changed the profile: %q", p.Host.RebootCommand)
	}
}

func TestDecodePCSection(t *testing.T) {
	const doc = "pc:\n  home: /opt/avaya/pds\n  services: [pds]\n  backup_dir: /var/backups/upgrader\n" +
		"  products:\n" +
		"    linux-es: {file: /etc/avaya-linux-es-release, pattern: 'Linux ES (\\S+)'}\n" +
		"    dialer:\n      command: [/opt/avaya/pds/bin/pds_version, --dialer]\n      pattern: 'Dialer (\\S+)'\n" +
		"  installers:\n    dialer-4.1.2: [/media/pc/install.sh, dialer]\n" +
		"  backup: [/opt/avaya/pds/bin/backup, --out, '{backup}']\n  restore: [/opt/avaya/pds/bin/restore, --in, '{backup}']\n"
	p, err := profile.Decode([]byte("root: /srv/sim\n"+doc), "/unused")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	pc := p.PC
	if pc.Home != "/opt/avaya/pds" || pc.BackupDir != "/var/backups/upgrader" || !slices.Equal(pc.Services, []string{"pds"}) {
		t.Errorf("pc = %+v", pc)
	}
	if src := pc.Products["linux-es"]; src.File != "/etc/avaya-linux-es-release" || src.Pattern != `Linux ES (\S+)` || src.Command != nil {
		t.Errorf("linux-es source = %+v", src)
	}
	if src := pc.Products["dialer"]; src.File != "" || !slices.Equal(src.Command, []string{"/opt/avaya/pds/bin/pds_version", "--dialer"}) {
		t.Errorf("dialer source = %+v", src)
	}
	if got := p.Command(pc.Installers["dialer-4.1.2"]); !slices.Equal(got, []string{"/srv/sim/media/pc/install.sh", "dialer"}) {
		t.Errorf("installer argv = %q", got)
	}
	if !slices.Equal(pc.Backup, []string{"/opt/avaya/pds/bin/backup", "--out", "{backup}"}) || pc.Restore[2] != "{backup}" {
		t.Errorf("backup %q restore %q", pc.Backup, pc.Restore)
	}

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown key under a product", "pc:\n  products:\n    dialer:\n      file: /v\n      patern: 'V=(\\S+)'\n", []string{"line 5", "patern"}},
		{"unknown key in a flow mapping", "pc:\n  products:\n    dialer: {file: /v, pattern: 'V=(\\S+)', cmd: [/x]}\n", []string{"line 3", "cmd"}},
		{"unknown key under pc", "site: a\npc:\n  home: /opt/avaya/pds\n  installer: [/x]\n", []string{"line 4", "installer"}},
		{"unknown key under host", "host:\n  reboot: [/sbin/reboot]\n", []string{"line 2", "reboot"}},
		{"file and command", "pc:\n  products:\n    dialer: {file: /v, command: [/bin/v], pattern: 'V=(\\S+)'}\n",
			[]string{"pc.products.dialer", "not both"}},
		{"pattern without a source", "pc:\n  products:\n    dialer: {pattern: 'V=(\\S+)'}\n", []string{"pc.products.dialer", "file or a command"}},
		{"relative product file", "pc:\n  products:\n    dialer: {file: etc/v, pattern: 'V=(\\S+)'}\n", []string{"pc.products.dialer.file", "absolute path"}},
		{"product pattern without a group", "pc:\n  products:\n    dialer: {file: /v, pattern: 'V=\\S+'}\n", []string{"pc.products.dialer.pattern", "exactly one group"}},
		{"relative installer", "pc:\n  installers:\n    dialer-4.1.2: [install.sh, dialer]\n", []string{`"install.sh"`, "absolute path"}},
		{"relative version command", "pc:\n  products:\n    dialer: {command: [pds_version], pattern: 'V=(\\S+)'}\n", []string{`"pds_version"`, "absolute path"}},
		{"relative backup tool", "pc:\n  backup: [bin/backup, --out, '{backup}']\n", []string{`"bin/backup"`, "absolute path"}},
		{"relative restore tool", "pc:\n  restore: [restore]\n", []string{`"restore"`, "absolute path"}},
		{"relative reboot command", "host:\n  reboot_command: [reboot]\n", []string{`"reboot"`, "absolute path"}},
		{"relative boot id file", "host:\n  boot_id_file: boot_id\n", []string{"host.boot_id_file", "absolute path"}},
		{"relative pc.home", "pc:\n  home: opt/avaya/pds\n", []string{"pc.home", "absolute path"}},
		{"relative pc.backup_dir", "pc:\n  backup_dir: backups\n", []string{"pc.backup_dir", "absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := profile.Decode([]byte(tc.yaml), t.TempDir())
			if err == nil {
				t.Fatalf("Decode accepted:\n%s", tc.yaml)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestDecodeSimhostPCProfiles(t *testing.T) {
	// The PC profiles shipped with the simulated hosts must keep decoding.
	for _, name := range []string{"pc41", "pc411", "pcbare", "dl385", "x3650"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", "testdata", "simhost", name, "profile.yaml")
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
			root := filepath.Join(base, "root")
			if p.Root != root {
				t.Errorf("root %q, want %q", p.Root, root)
			}
			if got := p.BootIDFile(); got != filepath.Join(root, "proc/sys/kernel/random/boot_id") {
				t.Errorf("BootIDFile = %q", got)
			}
			if got := p.RebootCommand(); !slices.Equal(got, []string{filepath.Join(root, "sim/bin/reboot")}) {
				t.Errorf("RebootCommand = %q", got)
			}
			for _, product := range []string{"linux-es", "dialer", "database", "supervisor", "agent", "agent-api"} {
				if src, ok := p.PC.Products[product]; !ok || src.File == "" || src.Pattern == "" {
					t.Errorf("pc.products.%s = %+v", product, src)
				}
			}
			if got := p.PC.Installers["dialer-4.1.2"]; !slices.Equal(got, []string{"/sim/bin/pc-install", "dialer", "4.1.2"}) {
				t.Errorf("pc.installers.dialer-4.1.2 = %q", got)
			}
			if p.PC.BackupDir != "/var/backups/upgrader" || len(p.PC.Backup) == 0 || len(p.PC.Restore) == 0 {
				t.Errorf("pc backup %q / %q / %q", p.PC.BackupDir, p.PC.Backup, p.PC.Restore)
			}
		})
	}
	// The two machines of the migration share one profile: same digest.
	digest := func(name string) string {
		t.Helper()
		dir, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "simhost", name))
		data, err := os.ReadFile(filepath.Join(dir, "profile.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		p, err := profile.Decode(data, dir)
		if err != nil {
			t.Fatal(err)
		}
		return p.Digest()
	}
	if digest("dl385") != digest("x3650") {
		t.Error("dl385 and x3650 profiles have different digests; a migration moves one profile between them")
	}
}
