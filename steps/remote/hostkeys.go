package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is a host key refused: unknown to the known_hosts file, or
// other than the one it lists.
type HostKeyError struct {
	Addr       string // host:port dialled
	KnownHosts string
	Changed    bool
	// KnownAt is "file:line" of each entry with another key (Changed).
	KnownAt []string
	// Type and Fingerprint are the key the server offered (SHA256:…).
	Type, Fingerprint string
}

func (e *HostKeyError) Error() string {
	entry := knownhosts.Normalize(e.Addr)
	host, port, _ := net.SplitHostPort(e.Addr)
	check := fmt.Sprintf("verify it on the server's own console (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub must show %s)", keyFileKind(e.Type), e.Fingerprint)
	add := fmt.Sprintf("ssh-keyscan -p %s -t %s %s >> %s", port, e.Type, host, e.KnownHosts)
	if e.Changed {
		return fmt.Sprintf("host key of %s REFUSED: it changed. %s lists another key for it; the server now offers %s %s. "+
			"A reinstalled server has a new key, and so has someone between this server and that one: %s; only if it matches, "+
			"remove the old entry (ssh-keygen -R '%s' -f %s) and add the new one (%s)",
			e.Addr, strings.Join(e.KnownAt, ", "), e.Type, e.Fingerprint, check, entry, e.KnownHosts, add)
	}
	return fmt.Sprintf("host key of %s refused: it is not in %s (upgrader never trusts a host key on first use). The server offers %s %s: "+
		"%s, then add it (%s) and check the added line (ssh-keygen -lf %s)", e.Addr, e.KnownHosts, e.Type, e.Fingerprint, check, add, e.KnownHosts)
}

// keyFileKind is the part of sshd's host key file name for a key type.
func keyFileKind(keyType string) string {
	switch {
	case strings.Contains(keyType, "ed25519"):
		return "ed25519"
	case strings.HasPrefix(keyType, "ecdsa"):
		return "ecdsa"
	case strings.Contains(keyType, "rsa"):
		return "rsa"
	}
	return "*"
}

// hostKeyCheck reads the known_hosts file and returns the callback that
// accepts only the keys it lists for addr, and the key types to ask for
// (those listed, so that a server with several keys shows a known one).
func hostKeyCheck(path, addr string) (ssh.HostKeyCallback, []string, error) {
	if err := checkKnownHosts(path); err != nil {
		return nil, nil, err
	}
	db, err := knownhosts.NewDB(path)
	if err != nil {
		return nil, nil, fmt.Errorf("known_hosts %s: %v", path, err)
	}
	check := db.HostKeyCallback()
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		if err == nil {
			return nil
		}
		hk := &HostKeyError{Addr: addr, KnownHosts: path, Type: key.Type(), Fingerprint: ssh.FingerprintSHA256(key)}
		var ke *xknownhosts.KeyError
		switch {
		case knownhosts.IsHostKeyChanged(err):
			hk.Changed = true
			if errors.As(err, &ke) {
				for _, k := range ke.Want {
					hk.KnownAt = append(hk.KnownAt, fmt.Sprintf("%s:%d", k.Filename, k.Line))
				}
			}
			return hk
		case knownhosts.IsHostUnknown(err):
			return hk
		}
		return err
	}
	return cb, db.HostKeyAlgorithms(addr), nil
}

// checkKnownHosts refuses a known_hosts file that is missing, not a
// regular file, or that someone other than root could change: whoever
// writes it decides which servers upgrader trusts.
func checkKnownHosts(path string) error {
	if path == "" {
		return errors.New("no known_hosts file: name one (ssh.known_hosts in the profile); upgrader trusts only the host keys listed there")
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("known_hosts %s does not exist: upgrader trusts only host keys listed there, never one on first use. "+
			"For each server, fetch its key (ssh-keyscan -p PORT HOST), compare its fingerprint (ssh-keygen -lf -) with the one "+
			"the server's own console shows (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then append it to %s", path, path)
	}
	if err != nil {
		return fmt.Errorf("known_hosts %s: %v", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("known_hosts %s is not a regular file", path)
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Uid != 0 && int(s.Uid) != os.Geteuid() {
		return fmt.Errorf("known_hosts %s belongs to uid %d: whoever writes it decides which servers upgrader trusts (chown root %s)", path, s.Uid, path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("known_hosts %s is writable by others (mode %04o): whoever writes it decides which servers upgrader trusts (chmod go-w %s)", path, st.Mode().Perm(), path)
	}
	return nil
}
