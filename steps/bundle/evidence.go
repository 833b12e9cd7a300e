package bundle

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"upgrader/orchestrator/profile"
)

// redactArgv keeps a command's program (argv[0]) and withholds its
// arguments. Redacting only the arguments that look like credentials
// (--password=x, -p x, -pPASS, user/pass@db, IDENTIFIED BY x, …) was tried
// and is never complete: a site's own backup script may take its password
// as a plain positional argument, which no pattern tells from a database
// name. "No secret in the bundle" must hold for commands nobody foresaw,
// so the arguments stay out; support sees which program runs and how many
// arguments it gets, and asks the site for the rest.
func redactArgv(argv []string) []string {
	if len(argv) <= 1 {
		return argv
	}
	return []string{argv[0], fmt.Sprintf("[%d arguments withheld]", len(argv)-1)}
}

// RedactedProfile is the site profile as decoded, in YAML, for support:
// comments are dropped (they are not read at all), every command is
// reduced to its program (redactArgv), and the password file appears by
// its path only.
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
	mpps := make([]profile.MPP, len(p.MPPs))
	for i, m := range p.MPPs {
		m.Version.Command = redactArgv(m.Version.Command)
		mpps[i] = m
	}
	p.MPPs = mpps
	var doc yaml.Node
	if err := doc.Encode(p); err != nil {
		return nil, err
	}
	prune(&doc)
	body, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# The site profile %s as upgrader decoded it: comments and empty keys dropped, commands\n"+
		"# by their program only (arguments withheld: they may hold a password), the database password file\n"+
		"# by its path only (never its content).\n", path)
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
