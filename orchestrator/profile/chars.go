package profile

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// The characters a profile's values may hold. Values become argv
// elements, service and step names, file names and journal lines: no
// control character anywhere (a newline would forge a line of the
// journal, an escape sequence would rewrite the terminal), and names and
// command paths only of letters, digits and a few punctuation marks, so
// that a site wrapper script that forgets its quotes cannot be made to
// run something else.

// keyPath names a value in the profile: keys, and "[i]" for list items.
type keyPath []string

func (k keyPath) String() string {
	var b strings.Builder
	for i, part := range k {
		if i > 0 && !strings.HasPrefix(part, "[") {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	return b.String()
}

func (k keyPath) with(part string) keyPath { return append(slices.Clip(k), part) }

func (k keyPath) index(i int) keyPath { return k.with("[" + strconv.Itoa(i) + "]") }

// line returns the line of the value at k in doc, 0 if unknown.
func (k keyPath) line(doc *yaml.Node) int {
	n := doc
	if n == nil {
		return 0
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, part := range k {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(strings.Trim(part, "[]")); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return n.Line
		}
		n = next
	}
	return n.Line
}

// charRule says which characters a kind of value may hold.
type charRule struct {
	what  string // "a service name": for the message
	extra string // punctuation allowed besides letters and digits
	any   bool   // any printable character (argv arguments, paths)
}

var (
	ruleText    = charRule{what: "a value", any: true}
	ruleName    = charRule{what: "a name", extra: "._-@:+"}
	ruleSite    = charRule{what: "the site name", extra: "._-@:+ "}
	ruleDBHost  = charRule{what: "a host name or socket folder", extra: "._-@:+/"}
	ruleCommand = charRule{what: "a command path", extra: "._-@:+/,="}
)

// bad returns what is wrong with s under the rule, "" if nothing.
func (r charRule) bad(s string) string {
	for _, c := range s {
		switch {
		case c == '\n' || c == '\r':
			return "has a line break"
		case unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == 0x2028 || c == 0x2029 || c == unicode.ReplacementChar:
			return fmt.Sprintf("has a control character (%U)", c)
		case r.any, unicode.IsLetter(c), unicode.IsDigit(c), strings.ContainsRune(r.extra, c):
		case c == ' ':
			return fmt.Sprintf("has a space: %s may hold letters, digits and %s only", r.what, spell(r.extra))
		default:
			return fmt.Sprintf("has %q: %s may hold letters, digits and %s only (no shell metacharacters)", c, r.what, spell(r.extra))
		}
	}
	return ""
}

// spell lists punctuation marks for a message.
func spell(marks string) string {
	var out []string
	for _, c := range marks {
		if c == ' ' {
			out = append(out, "spaces")
		} else {
			out = append(out, string(c))
		}
	}
	return strings.Join(out, " ")
}

// checkCharacters refuses control characters in every value and key of
// the profile (a version pattern excepted: it is a regular expression),
// and anything but letters, digits and a few marks in names and in the
// path of every command. Each error names the key and its line.
func (p Profile) checkCharacters(doc *yaml.Node) []error {
	type found struct {
		line int
		msg  string
	}
	var all []found
	check := func(k keyPath, s string, r charRule) {
		if why := r.bad(s); why != "" {
			f := found{k.line(doc), fmt.Sprintf("%s %q %s", k, s, why)}
			if f.line > 0 {
				f.msg = fmt.Sprintf("line %d: %s", f.line, f.msg)
			}
			all = append(all, f)
		}
	}
	sorted := func() []error {
		slices.SortStableFunc(all, func(a, b found) int { return cmp.Or(a.line-b.line, strings.Compare(a.msg, b.msg)) })
		var errs []error
		for _, f := range all {
			errs = append(errs, fmt.Errorf("profile: %s", f.msg))
		}
		return errs
	}
	// Every string, by reflection: nothing added later escapes it.
	var walk func(k keyPath, v reflect.Value)
	walk = func(k keyPath, v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			if k[len(k)-1] != "pattern" {
				check(k, v.String(), ruleText)
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
				walk(k.with(name), v.Field(i))
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(k.index(i), v.Index(i))
			}
		case reflect.Map:
			keys := v.MapKeys()
			slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
			for _, key := range keys {
				check(k.with(key.String()), key.String(), ruleName)
				walk(k.with(key.String()), v.MapIndex(key))
			}
		}
	}
	walk(nil, reflect.ValueOf(p))
	if len(all) > 0 {
		return sorted() // one message per bad value
	}

	if p.Site != "" {
		check(keyPath{"site"}, p.Site, ruleSite)
	}
	for _, f := range []struct {
		k keyPath
		s string
		r charRule
	}{
		{keyPath{"db", "name"}, p.DB.Name, ruleName},
		{keyPath{"db", "user"}, p.DB.User, ruleName},
		{keyPath{"db", "host"}, p.DB.Host, ruleDBHost},
		{keyPath{"db", "dump_command"}, p.DB.DumpCommand, ruleCommand},
		{keyPath{"db", "restore_command"}, p.DB.RestoreCommand, ruleCommand},
		{keyPath{"db", "psql_command"}, p.DB.PSQLCommand, ruleCommand},
	} {
		check(f.k, f.s, f.r)
	}
	for i, s := range p.POM.Services {
		check(keyPath{"pom", "services"}.index(i), s, ruleName)
	}
	for i, s := range p.PC.Services {
		check(keyPath{"pc", "services"}.index(i), s, ruleName)
	}
	for i, m := range p.MPPs {
		check(keyPath{"mpps"}.index(i).with("name"), m.Name, ruleName)
		check(keyPath{"mpps"}.index(i).with("host"), m.Host, ruleDBHost)
	}
	commands := map[string][]string{"service_command": p.ServiceCommand, "pom.installer": p.POM.Installer,
		"host.reboot_command": p.Host.RebootCommand, "pc.backup": p.PC.Backup, "pc.restore": p.PC.Restore,
		"db.backup_command": p.DB.BackupCommand, "pom.version.command": p.POM.Version.Command}
	for name, argv := range commands {
		if len(argv) > 0 {
			check(keyPath(strings.Split(name, ".")).index(0), argv[0], ruleCommand)
		}
	}
	for name, src := range p.PC.Products {
		if len(src.Command) > 0 {
			check(keyPath{"pc", "products", name, "command"}.index(0), src.Command[0], ruleCommand)
		}
	}
	for step, argv := range p.PC.Installers {
		if len(argv) > 0 {
			check(keyPath{"pc", "installers", step}.index(0), argv[0], ruleCommand)
		}
	}
	return sorted()
}
