package simhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SSHServer is what RemoteMPPs needs of an sshd that stands for the MPPs'
// servers (testdata/sshd.Server).
type SSHServer interface {
	WriteKnownHosts(path string, hosts ...string) error
}

// RemoteMPP puts one MPP of the simulated host on its own "server": Host
// is an address the sshd answers on.
type RemoteMPP struct {
	Name, Host string
	// Patch, when set, is written on the MPP in config/mpp.version and the
	// profile reads it there (mpps[].version).
	Patch string
}

// MPPHostDir is where a remote MPP's files live on this machine: under
// the host's root, so that they are part of its tree.
func (s Sim) MPPHostDir(name string) string { return filepath.Join(s.Root, "sim/mpp-hosts", name) }

// RemoteMPPs moves the named MPPs of the simulated POM host off it: each
// one's files go to MPPHostDir (its config path is that absolute path, as
// the MPP's server sees it), the profile reaches it over SSH at its Host
// on port, logging in with keyFile (copied under the root, 0600) and
// trusting the server's host key for those hosts only (known_hosts under
// the root). The other MPPs stay on this server.
func (s Sim) RemoteMPPs(srv SSHServer, port int, keyFile string, mpps ...RemoteMPP) error {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return err
	}
	sshDir := filepath.Join(s.Root, "etc/upgrader/ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sshDir, "id_ed25519"), key, 0o600); err != nil {
		return err
	}
	var hosts []string
	for _, m := range mpps {
		hosts = append(hosts, m.Host)
	}
	if err := srv.WriteKnownHosts(filepath.Join(sshDir, "known_hosts"), hosts...); err != nil {
		return err
	}
	data, err := os.ReadFile(s.Profile)
	if err != nil {
		return err
	}
	prof := string(data)
	for _, m := range mpps {
		local := "/opt/Avaya/ExperiencePortal/" + m.Name + "/config/mppconfig.xml"
		entry := "  - name: " + m.Name + "\n    host: localhost\n    config: " + local + "\n"
		if !strings.Contains(prof, entry) {
			return fmt.Errorf("the profile has no MPP %s on this server to move", m.Name)
		}
		dir := s.MPPHostDir(m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(s.Root, "opt/Avaya/ExperiencePortal", m.Name, "config"), filepath.Join(dir, "config")); err != nil {
			return err
		}
		moved := fmt.Sprintf("  - name: %s\n    host: %s\n    config: %s\n", m.Name, m.Host, filepath.Join(dir, "config/mppconfig.xml"))
		if m.Patch != "" {
			version := filepath.Join(dir, "config/mpp.version")
			if err := os.WriteFile(version, []byte("Product=MPP\nPatch="+m.Patch+"\n"), 0o644); err != nil {
				return err
			}
			moved += fmt.Sprintf("    version:\n      file: %s\n      pattern: 'Patch=(\\S+)'\n", version)
		}
		prof = strings.Replace(prof, entry, moved, 1)
	}
	prof += fmt.Sprintf("ssh:\n  key_file: /etc/upgrader/ssh/id_ed25519\n  known_hosts: /etc/upgrader/ssh/known_hosts\n  port: %d\n"+
		"  connect_timeout: 5s\n  timeout: 20s\n", port)
	return os.WriteFile(s.Profile, []byte(prof), 0o644)
}
