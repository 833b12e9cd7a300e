package bundle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"upgrader/orchestrator/profile"
	"upgrader/steps"
	"upgrader/steps/remote"
)

// An MPP on another server is read over SSH (steps/remote: host keys
// checked against known_hosts, keys only, one connection per server): its
// log directory is walked there with the rules of this host's (symlinks
// never followed, password files never read, the date selection), and its
// files are streamed from SFTP into the archive, never staged on disk. A
// server that cannot be reached is a skip naming the MPP and why, never
// fatal.

// remoteMPP is one MPP on another server during a bundle.
type remoteMPP struct {
	name   string
	target remote.Target
	// lost is why the server can no longer be reached: its remaining
	// files are skipped without trying again.
	lost error
}

func (m *remoteMPP) url(p string) string { return remoteURL(m.target, p) }

// sshConfig is how the profile logs in to other servers: its key file,
// the ssh-agent of SSH_AUTH_SOCK (as ssh itself), its known_hosts, its
// time limits.
func sshConfig(p profile.Profile) remote.Config {
	connect, op := p.SSHTimeouts()
	cfg := remote.Config{KnownHosts: p.KnownHostsPath(), AgentSocket: os.Getenv("SSH_AUTH_SOCK"), ConnectTimeout: connect, OpTimeout: op}
	if p.SSH.KeyFile != "" {
		cfg.KeyFile = p.Path(p.SSH.KeyFile)
	}
	return cfg
}

// walkRemote lists the files of an MPP's log directory on its server that
// the selection keeps, as walkLocal does here.
func (c *Collection) walkRemote(ctx context.Context, src Source, m *remoteMPP) found {
	var f found
	conn, err := c.pool.Get(ctx, c.ssh, m.target)
	if err != nil {
		m.lost = err
		f.skipped = append(f.skipped, Skip{m.url(src.Dir), fmt.Sprintf("MPP %s not reached, none of its logs collected: %v", m.name, err)})
		return f
	}
	if _, err := conn.Lstat(ctx, src.Dir); errors.Is(err, fs.ErrNotExist) {
		f.notes = append(f.notes, fmt.Sprintf("%s/: no %s on that server", src.Name, m.url(src.Dir)))
		return f
	}
	// The log directory itself may be a symlink: that is where the logs are.
	dir, err := conn.RealPath(ctx, src.Dir)
	if err != nil {
		f.skipped = append(f.skipped, Skip{m.url(src.Dir), remoteReason(err, conn.Target())})
		return f
	}
	err = conn.Walk(ctx, dir, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			f.skipped = append(f.skipped, Skip{m.url(p), remoteReason(err, conn.Target())})
			return nil
		}
		rel := strings.TrimPrefix(p, strings.TrimSuffix(dir, "/")+"/")
		switch {
		case info.IsDir():
			return nil
		case info.Mode()&fs.ModeSymlink != 0:
			f.skipped = append(f.skipped, Skip{m.url(p), remoteSymlinkReason(ctx, conn, dir, p)})
			return nil
		case !info.Mode().IsRegular():
			f.skipped = append(f.skipped, Skip{m.url(p), "not a regular file (" + steps.FileType(info.Mode().Type()) + ")"})
			return nil
		case secretFile(p, nil):
			f.skipped = append(f.skipped, Skip{m.url(p), "a password file: never collected"})
			return nil
		}
		if !keeps(c.opts.Selection, src, rel, info.ModTime()) {
			return nil
		}
		f.files = append(f.files, candidate{name: c.top + "/" + src.Name + "/" + rel, path: p, shown: m.url(p), size: info.Size(),
			mode: info.Mode().Perm(), modTime: info.ModTime(), cut: c.opts.Selection.Range.Set(), mpp: m})
		f.bytes += info.Size()
		return nil
	})
	if err != nil {
		f.skipped = append(f.skipped, Skip{m.url(dir), "listing cut short, the files after it not collected: " + remoteReason(err, conn.Target())})
	}
	// In this host's order (filepath.WalkDir's), not the server's.
	slices.SortFunc(f.files, func(a, b candidate) int {
		return slices.Compare(strings.Split(a.path, "/"), strings.Split(b.path, "/"))
	})
	return f
}

// remoteSymlinkReason says where a symlink on the MPP's server leads,
// resolved there without opening it.
func remoteSymlinkReason(ctx context.Context, conn *remote.Conn, dir, p string) string {
	target, err := conn.RealPath(ctx, p)
	if err != nil {
		return "symlink whose target cannot be read (" + remoteReason(err, conn.Target()) + "): not followed"
	}
	if target == dir || strings.HasPrefix(target, strings.TrimSuffix(dir, "/")+"/") {
		return "symlink to " + target + ", inside the log directory: collected as itself"
	}
	return "symlink to " + target + ", outside the log directory: not followed"
}

// remoteReason is an error of steps/remote without the path and server
// the listing already shows: "open: not a regular file (…)".
func remoteReason(err error, t remote.Target) string {
	msg := err.Error()
	marker := " on " + t.String() + ": "
	if i := strings.Index(msg, marker); i >= 0 {
		op, _, _ := strings.Cut(msg[:i], " ")
		return op + ": " + msg[i+len(marker):]
	}
	return msg
}
