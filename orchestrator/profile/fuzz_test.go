package profile_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"upgrader/orchestrator/profile"
)

// fuzzBase is the folder the fuzzed profiles are read from.
const fuzzBase = "/srv/profiles"

// FuzzDecode decodes arbitrary YAML as a site profile. Whatever the
// bytes: no panic, and a refusal is a "profile" error. An accepted
// profile has an absolute clean root; every path it names, and any path
// at all, maps under that root and back; every command's program lives
// under it; no value holds a control character (patterns aside); and the
// profile written back as YAML decodes again, to the same profile.
// Seeds are in testdata/fuzz/FuzzDecode, and every simulated host's
// profile.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/simhost/*/profile.yaml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := profile.Decode(data, fuzzBase)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "profile") {
				t.Fatalf("error without the profile prefix: %v", err)
			}
			return
		}
		if !filepath.IsAbs(p.Root) || filepath.Clean(p.Root) != p.Root {
			t.Fatalf("root %q is not absolute and clean", p.Root)
		}
		under := func(what, got string) {
			t.Helper()
			if got != p.Root && !strings.HasPrefix(got, strings.TrimSuffix(p.Root, "/")+"/") {
				t.Fatalf("%s maps to %q, outside the root %q", what, got, p.Root)
			}
		}
		paths := []string{p.POM.Home, p.POM.Version.File, p.Media.Dir, p.Media.TrustAnchor, p.DB.BackupDir, p.DB.PasswordFile,
			p.DB.DumpCommand, p.DB.RestoreCommand, p.DB.PSQLCommand, p.PC.Home, p.PC.BackupDir, p.Host.BootIDFile,
			string(data), "../" + string(data), "/../" + string(data)}
		for _, m := range p.MPPs {
			paths = append(paths, m.Config)
		}
		for _, src := range p.PC.Products {
			paths = append(paths, src.File)
		}
		for _, path := range paths {
			if path == "" {
				continue
			}
			rooted := p.Path(path)
			under("Path("+path+")", rooted)
			host := p.Unroot(rooted)
			if !filepath.IsAbs(host) || filepath.Clean(host) != host || p.Path(host) != rooted {
				t.Fatalf("Unroot(Path(%q)) = %q, which maps to %q", path, host, p.Path(host))
			}
		}
		if p.Media.ISO != "" {
			under("ISOPath", p.ISOPath())
		}
		under("BootIDFile", p.BootIDFile())
		under("RebootCommand", p.RebootCommand()[0])
		commands := [][]string{p.ServiceCommand, p.POM.Installer, p.Host.RebootCommand, p.PC.Backup, p.PC.Restore, p.DB.BackupCommand, p.POM.Version.Command}
		for _, argv := range p.PC.Installers {
			commands = append(commands, argv)
		}
		for _, src := range p.PC.Products {
			commands = append(commands, src.Command)
		}
		for _, argv := range commands {
			if len(argv) > 0 {
				under("Command "+argv[0], p.Command(argv)[0])
			}
		}
		noControl(t, nil, reflect.ValueOf(p))

		// Written back, it decodes again; the second round changes nothing.
		out, err := yaml.Marshal(p)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		p2, err := profile.Decode(out, fuzzBase)
		if err != nil {
			t.Fatalf("an accepted profile, written back, is refused: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(p2)
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Fatalf("decoding changed the profile:\n%s\n---\n%s", out, out2)
		}
		p3, err := profile.Decode(out2, fuzzBase)
		if err != nil || p3.Digest() != p2.Digest() || p3.Root != p.Root {
			t.Fatalf("digest or root not stable: %v", err)
		}
	})
}

// noControl fails t if a string or map key in v holds a control character
// (a version pattern aside).
func noControl(t *testing.T, path []string, v reflect.Value) {
	t.Helper()
	str := func(s string) {
		for _, c := range s {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Fatalf("%s %q holds control character %U", strings.Join(path, "."), s, c)
			}
		}
	}
	switch v.Kind() {
	case reflect.String:
		if path[len(path)-1] != "Pattern" {
			str(v.String())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			noControl(t, append(path, v.Type().Field(i).Name), v.Field(i))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			noControl(t, path, v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			str(k.String())
			noControl(t, append(path, k.String()), v.MapIndex(k))
		}
	}
}
