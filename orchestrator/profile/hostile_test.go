package profile_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator/profile"
)

// simPOM is the head of a valid POM profile; hostile cases add to it.
const simPOM = `site: sim-pom-01
procedure: pom-3.1.1-sp1-upgrade
service_command: [/sim/bin/service]
pom:
  home: /opt/Avaya/avpom/POManager
  services: [vpms]
  installer: [/sim/bin/pom-installer, --iso, "{iso}", --silent]
`

// The hostile profile corpus: unknown keys, YAML tricks, and shell
// metacharacters, control characters and line breaks in every kind of
// value that becomes a name or an argv element. Each is refused with a
// message that names the key and, where YAML tells it, the line.
func TestHostileProfiles(t *testing.T) {
	var tried, refused int
	t.Cleanup(func() { fmt.Printf("hostile input (profile): %d tried, %d refused with a message\n", tried, refused) })
	laughs := "service_command: &a0 [/bin/lol, lol, lol, lol, lol, lol, lol, lol, lol]\npc:\n  installers:\n"
	for i := 1; i <= 9; i++ {
		laughs += fmt.Sprintf("    l%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), ", "))
	}
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown key", simPOM + "surprise: 1\n", []string{"line 8", "surprise"}},
		{"unknown nested key", simPOM + "  hom: /opt/pom\n", []string{"line 8", "hom"}},
		{"unknown key in a list item", "mpps:\n  - name: m\n    config: /c\n    script: /bin/sh\n", []string{"line 4", "script"}},
		{"unknown key in a product", "pc:\n  products:\n    dialer: {file: /v, pattern: '(x)', shell: sh}\n", []string{"line 3", "shell"}},
		{"key given twice", simPOM + "site: other\n", []string{"line 8", `"site" already defined at line 1`}},
		{"a second document", simPOM + "---\nsite: other\n", []string{"line 8", "second YAML document"}},
		{"billion laughs", laughs, []string{"line 4", "cannot unmarshal !!seq into string"}},
		{"20,000 levels of nesting", "service_command: " + strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000) + "\n", []string{"max depth"}},
		{"over 1 MiB", simPOM + "# " + strings.Repeat("x", profile.MaxProfileSize) + "\n", []string{"more than the 1048576"}},
		{"semicolon in a service name", strings.Replace(simPOM, "[vpms]", "[vpms; reboot]", 1), []string{"line 6", `pom.services[0] "vpms; reboot"`, "';'"}},
		{"comma in a service name (services are joined with commas)", strings.Replace(simPOM, "[vpms]", `["vpms,sshd"]`, 1), []string{"line 6", "pom.services[0]", "','"}},
		{"ampersand in a PC service", "pc:\n  services: [pds, 'pds&']\n", []string{"line 2", "pc.services[1]", "'&'"}},
		{"command substitution in the database name", simPOM + "db:\n  name: $(reboot)\n", []string{"line 9", "db.name", "'$'"}},
		{"backquotes in the database user", simPOM + "db:\n  user: '`id`'\n", []string{"line 9", "db.user", "'`'"}},
		{"redirection in the database host", simPOM + "db:\n  host: localhost>/etc/passwd\n", []string{"line 9", "db.host", "'>'"}},
		{"tab in the database name", simPOM + "db:\n  name: \"pom\\tx\"\n", []string{"line 9", "db.name", "control character (U+0009)"}},
		{"newline in the site", strings.Replace(simPOM, "site: sim-pom-01", `site: "sim\nPLAN OK"`, 1), []string{"line 1", "site", "line break"}},
		{"carriage return in the site", strings.Replace(simPOM, "site: sim-pom-01", `site: "sim\rX"`, 1), []string{"line 1", "site", "line break"}},
		{"pipe in the site", strings.Replace(simPOM, "site: sim-pom-01", `site: "sim | mail"`, 1), []string{"line 1", "site", "'|'"}},
		{"right-to-left override in the site", strings.Replace(simPOM, "site: sim-pom-01", `site: "sim\u202e10-mop"`, 1), []string{"line 1", "site", "U+202E"}},
		{"escape sequence in an MPP name", "mpps:\n  - name: \"mpp\\e[2J\"\n    config: /c\n", []string{"line 2", "mpps[0].name", "U+001B"}},
		{"space in an MPP name", "mpps:\n  - name: mpp 1\n    config: /c\n", []string{"line 2", "mpps[0].name", "space"}},
		{"semicolon in an MPP host", "mpps:\n  - name: mpp1\n    host: mpp1;reboot\n    config: /c\n", []string{"line 3", "mpps[0].host", "';'"}},
		{"NUL in a path", simPOM + "db:\n  password_file: \"/etc/upgrader/pg\\0pass\"\n", []string{"line 9", "db.password_file", "U+0000"}},
		{"newline in a config path", "mpps:\n  - name: m\n    config: \"/c\\n/etc/shadow\"\n", []string{"line 3", "mpps[0].config", "line break"}},
		{"pipe in a command path", strings.Replace(simPOM, "[/sim/bin/service]", `["/sim/bin/service|sh"]`, 1), []string{"line 3", "service_command[0]", "'|'"}},
		{"space in a command path", strings.Replace(simPOM, "[/sim/bin/service]", `["/usr/bin/env sh"]`, 1), []string{"line 3", "service_command[0]", "space"}},
		{"glob in an installer path", strings.Replace(simPOM, "/sim/bin/pom-installer", "/media/*/install", 1), []string{"line 7", "pom.installer[0]", "'*'"}},
		{"placeholder as the installer", strings.Replace(simPOM, "/sim/bin/pom-installer", `"/tmp/{iso}"`, 1), []string{"line 7", "pom.installer[0]", "'{'"}},
		{"newline in an installer argument", strings.Replace(simPOM, "--silent", `"--silent\n--evil"`, 1), []string{"line 7", "pom.installer[3]", "line break"}},
		{"redirection in the reboot command", "host:\n  reboot_command: ['/sbin/reboot>/dev/null']\n", []string{"line 2", "host.reboot_command[0]", "'>'"}},
		{"semicolon in the backup tool", "pc:\n  backup: ['/usr/local/sbin/pc-backup;sh', --out, '{backup}']\n", []string{"line 2", "pc.backup[0]", "';'"}},
		{"quote in the restore tool", "pc:\n  restore: [\"/usr/local/sbin/pc-restore'\", --in, '{backup}']\n", []string{"line 2", "pc.restore[0]", `'\''`}},
		{"dollar in a PC installer", "pc:\n  installers:\n    dialer-4.1.2: [/opt/$HOME/pc-install, dialer]\n", []string{"line 3", "pc.installers.dialer-4.1.2[0]", "'$'"}},
		{"semicolon in a PC installer's step", "pc:\n  installers:\n    'dialer;reboot': [/usr/local/sbin/pc-install]\n", []string{"line 3", `pc.installers.dialer;reboot "dialer;reboot"`, "';'"}},
		{"backquote in a version command", "pc:\n  products:\n    dialer: {command: ['/bin/rpm`id`', -q], pattern: '(x)'}\n", []string{"line 3", "pc.products.dialer.command[0]", "'`'"}},
		{"semicolon in dump_command", simPOM + "db:\n  dump_command: /usr/bin/pg_dump;sh\n", []string{"line 9", "db.dump_command", "';'"}},
		{"relative psql_command (a PATH lookup)", simPOM + "db:\n  psql_command: psql\n", []string{"db.psql_command", "absolute path"}},
		{"relative service command", strings.Replace(simPOM, "[/sim/bin/service]", "[service]", 1), []string{`"service"`, "absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried++
			start := time.Now()
			_, err := profile.Decode([]byte(tc.yaml), t.TempDir())
			if err == nil {
				t.Fatalf("Decode accepted:\n%.400s", tc.yaml)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("error %q does not contain %q", err, s)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("refused after %s", d)
			}
			t.Logf("refused: %v", err)
			refused++
		})
	}
}

// What real sites write passes: {iso} and {backup} placeholders and rpm
// query formats in arguments, dotted and @ names, a site name with
// spaces, non-ASCII letters, a socket folder as the database host.
func TestDecodeAcceptsRealValues(t *testing.T) {
	doc := simPOM + `ep:
  version: 7.2.0.0.0318
db:
  host: /var/run/postgresql
  name: VP_POM
  user: pom.admin@site
mpps:
  - name: mpp-01.b
    host: mpp01.acme.example
    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml
pc:
  services: [pds, vpms.service, getty@tty1]
  products:
    dialer: {command: [/bin/rpm, -q, --qf, '%{VERSION}\n', avaya-pds], pattern: '(\S+)'}
  backup: [/usr/local/sbin/pc-backup, --out, "{backup}", "--label=a b;c"]
`
	for _, site := range []string{"site: Acme Contact Center 01", "site: Zürich-PC_01"} {
		if _, err := profile.Decode([]byte(strings.Replace(doc, "site: sim-pom-01", site, 1)), "/unused"); err != nil {
			t.Errorf("%s: %v", site, err)
		}
	}
}
