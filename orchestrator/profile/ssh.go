package profile

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	// mppName is an MPP's name: it becomes part of step ids and file names.
	mppName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	// hostName is a DNS name (RFC 1123 labels); addresses are read apart.
	hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	// loginName is a Unix account name.
	loginName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
)

// checkSSH checks the ssh section and each MPP's name, server and paths.
func (p Profile) checkSSH() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("profile: "+format, a...)) }
	checkPort := func(name string, port int) {
		if port < 0 || port > 65535 {
			bad("%s %d: a TCP port is 1 to 65535 (or leave it out for 22)", name, port)
		}
	}
	checkUser := func(name, user string) {
		if user != "" && !loginName.MatchString(user) {
			bad("%s %q is not an account name", name, user)
		}
	}
	for _, f := range []struct{ name, path string }{{"ssh.key_file", p.SSH.KeyFile}, {"ssh.known_hosts", p.SSH.KnownHosts}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			bad("%s %q must be an absolute path", f.name, f.path)
		}
	}
	checkPort("ssh.port", p.SSH.Port)
	checkUser("ssh.user", p.SSH.User)
	for _, d := range []struct{ name, value string }{{"ssh.connect_timeout", p.SSH.ConnectTimeout}, {"ssh.timeout", p.SSH.Timeout}} {
		if d.value == "" {
			continue
		}
		if v, err := time.ParseDuration(d.value); err != nil || v <= 0 {
			bad("%s %q: a duration such as 15s or 2m", d.name, d.value)
		}
	}
	names, files := map[string]int{}, map[string]int{}
	for i, m := range p.MPPs {
		at := fmt.Sprintf("mpps[%d]", i)
		if m.Name == "" || m.Config == "" {
			bad("%s needs a name and a config path", at)
			continue
		}
		if !mppName.MatchString(m.Name) {
			bad("%s.name %q: letters, digits, '.', '_' and '-' only (it names the MPP's step and files)", at, m.Name)
		}
		if j, ok := names[m.Name]; ok {
			bad("%s.name %q is mpps[%d]'s too: each MPP once", at, m.Name, j)
		}
		names[m.Name] = i
		if !filepath.IsAbs(m.Config) {
			bad("%s.config %q must be an absolute path (on the MPP's server)", at, m.Config)
		}
		if m.Host != "" && !validIP(m.Host) && !hostName.MatchString(m.Host) {
			bad("%s.host %q is neither a host name nor an IP address", at, m.Host)
		}
		key := strings.ToLower(m.Host) + " " + filepath.Clean(m.Config)
		if m.OnThisServer("") {
			key = "this server " + filepath.Clean(m.Config)
		}
		if j, ok := files[key]; ok {
			bad("%s and mpps[%d] name the same file (%s on %s): each MPP has its own", at, j, m.Config, hostOrThis(m.Host))
		}
		files[key] = i
		checkPort(at+".port", m.Port)
		checkUser(at+".user", m.User)
	}
	return errs
}

func hostOrThis(host string) string {
	if host == "" {
		return "this server"
	}
	return host
}

// refuseSSHPasswords refuses a password, passphrase or secret under ssh
// or an MPP, whatever its key is called: upgrader logs in by key only, and
// a password in a profile travels with every copy of it.
func refuseSSHPasswords(doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	var found error
	var walk func(n *yaml.Node, at string)
	walk = func(n *yaml.Node, at string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content) && found == nil; i += 2 {
				k := n.Content[i]
				if passwordish(k.Value) {
					found = fmt.Errorf("profile: line %d: %s.%s: upgrader takes no password or passphrase for SSH (a profile is copied, "+
						"bundled and read by others): remove it and log in by key, with ssh.key_file (a key readable by root only) or an "+
						"ssh-agent (SSH_AUTH_SOCK) holding the key", k.Line, at, k.Value)
					return
				}
				walk(n.Content[i+1], at+"."+k.Value)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	for i := 0; i+1 < len(root.Content) && found == nil; i += 2 {
		if k := root.Content[i].Value; k == "ssh" || k == "mpps" {
			walk(root.Content[i+1], k)
		}
	}
	return found
}

func passwordish(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"pass", "secret", "pwd"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
