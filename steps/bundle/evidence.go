package bundle

import (
	"fmt"
	"regexp"

	"go.yaml.in/yaml/v3"

	"upgrader/orchestrator/profile"
)

// secretArg matches an argument that carries a secret inline
// (--password=x, PGPASSWORD=x, token:x); secretFlag one whose value is the
// next argument (--password x, -p x is not assumed).
var (
	secretArg  = regexp.MustCompile(`(?i)^([^=:]*(pass(word)?|passwd|pwd|secret|token|credential)[^=:]*[=:])(.+)$`)
	secretFlag = regexp.MustCompile(`(?i)^--?[a-z-]*(pass(word)?|passwd|pwd|secret|token|credential)[a-z-]*$`)
)

// Redacted is the mark left where a secret was.
const Redacted = "[REDACTED]"

// redactArgv hides the secrets an argv may carry.
func redactArgv(argv []string) []string {
	if len(argv) == 0 {
		return argv
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case i > 0 && secretFlag.MatchString(argv[i-1]):
			out[i] = Redacted
		case secretArg.MatchString(a):
			out[i] = secretArg.ReplaceAllString(a, "${1}"+Redacted)
		default:
			out[i] = a
		}
	}
	return out
}

// RedactedProfile is the site profile as decoded, in YAML, for support:
// comments are dropped (they are not read at all), every command's
// secrets are redacted, and the password file appears by its path only.
func RedactedProfile(p profile.Profile, path string) ([]byte, error) {
	p.ServiceCommand = redactArgv(p.ServiceCommand)
	p.POM.Installer = redactArgv(p.POM.Installer)
	p.Host.RebootCommand = redactArgv(p.Host.RebootCommand)
	p.PC.Backup, p.PC.Restore = redactArgv(p.PC.Backup), redactArgv(p.PC.Restore)
	p.DB.BackupCommand = redactArgv(p.DB.BackupCommand)
	p.POM.Version.Command = redactArgv(p.POM.Version.Command)
	installers := map[string][]string{}
	for k, v := range p.PC.Installers {
		installers[k] = redactArgv(v)
	}
	products := map[string]profile.VersionSource{}
	for k, v := range p.PC.Products {
		v.Command = redactArgv(v.Command)
		products[k] = v
	}
	p.PC.Installers, p.PC.Products = installers, products
	var doc yaml.Node
	if err := doc.Encode(p); err != nil {
		return nil, err
	}
	prune(&doc)
	body, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# The site profile %s as upgrader decoded it: comments and empty keys dropped, secrets in\n"+
		"# commands shown as %s, the database password file by its path only (never its content).\n", path, Redacted)
	return []byte(head + string(body)), nil
}

// prune drops the keys whose values are empty, as a profile leaves them out.
func prune(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.MappingNode:
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !prune(n.Content[i+1]) {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
		return len(kept) == 0
	case yaml.SequenceNode:
		for _, c := range n.Content {
			prune(c)
		}
		return len(n.Content) == 0
	case yaml.ScalarNode:
		return n.Value == "" || n.Tag == "!!bool" && n.Value == "false" || n.Tag == "!!int" && n.Value == "0"
	}
	return false
}
