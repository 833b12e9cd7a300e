package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// The OpenSSH SFTP extensions a durable replace needs.
const (
	extFsync  = "fsync@openssh.com"
	extRename = "posix-rename@openssh.com"
)

// TempSuffix names the temporary file WriteFileAtomic writes beside its
// target (".NAME" + TempSuffix): one name per target, so a write cut off
// by a crash or a dropped connection leaves at most one, removed by the
// next write.
const TempSuffix = ".upgrader-tmp"

// do runs op within the operation time limit. An overrun, or ctx ending,
// closes the connection: the operation is abandoned with it, and the next
// Get opens a new one.
func (c *Conn) do(ctx context.Context, what string, op func() error) error {
	c.touch()
	limit := c.cfg.opTimeout()
	done := make(chan error, 1)
	go func() { done <- op() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			var status *sftp.StatusError
			if !errors.Is(err, fs.ErrNotExist) && !errors.As(err, &status) {
				c.closeIfBroken() // the server's answer is no sign of a drop
			}
			if !c.alive() {
				return fmt.Errorf("%s on %s: the connection dropped (%w)", what, c.target, err)
			}
			return fmt.Errorf("%s on %s: %w", what, c.target, err)
		}
		return nil
	case <-timer.C:
		c.Close()
		return fmt.Errorf("%s on %s: no answer within %s; the connection was closed", what, c.target, limit)
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("%s on %s: %w", what, c.target, ctx.Err())
	}
}

// closeIfBroken closes the connection when the server no longer answers
// on it: an operation can see the drop before the transport's reader has
// marked the connection ended, and the pool must not hand it out again.
func (c *Conn) closeIfBroken() {
	if !c.alive() {
		return
	}
	if _, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil); err != nil {
		c.Close()
	}
}

// Lstat describes path itself (a symlink is not followed).
func (c *Conn) Lstat(ctx context.Context, p string) (fs.FileInfo, error) {
	var st fs.FileInfo
	err := c.do(ctx, "stat "+p, func() (err error) {
		st, err = c.sftp.Lstat(p)
		return err
	})
	return st, err
}

// ReadFile returns the content of the regular file at p: a symlink or
// any other kind of file is refused, and so is a file larger than max
// (read no further than max+1 bytes).
func (c *Conn) ReadFile(ctx context.Context, p string, max int64) ([]byte, error) {
	var data []byte
	err := c.do(ctx, "read "+p, func() error {
		if st, err := c.sftp.Lstat(p); err != nil {
			return err
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("not a regular file (%s): refusing to read it", st.Mode().Type())
		}
		f, err := c.sftp.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// The file opened is the file checked: a swap in between is seen.
		if st, err := f.Stat(); err != nil {
			return err
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("not a regular file (%s): refusing to read it", st.Mode().Type())
		}
		data, err = io.ReadAll(io.LimitReader(f, max+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > max {
			return fmt.Errorf("larger than %d bytes: refusing to read it", max)
		}
		return nil
	})
	return data, err
}

// Exists says whether p exists, of any kind (not followed).
func (c *Conn) Exists(ctx context.Context, p string) (bool, error) {
	_, err := c.Lstat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// WriteFileAtomic replaces p with data so that a reader, a crash or a
// dropped connection sees the old content or the new, never part of it:
// the data goes to a temporary file beside p (owner and mode of p kept;
// mode for a new file), which is fsynced (fsync@openssh.com) and renamed
// over p (posix-rename@openssh.com); the directory is then synced with
// `sync DIR` and the file read back. A server without the two extensions
// is refused before anything is written.
func (c *Conn) WriteFileAtomic(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	for _, ext := range []string{extFsync, extRename} {
		if _, ok := c.sftp.HasExtension(ext); !ok {
			return fmt.Errorf("the SFTP server of %s lacks %s: upgrader cannot replace %s there durably, and does not write it "+
				"(OpenSSH's sftp-server has it since 6.5; update OpenSSH on that server, or make the change by hand)", c.target, ext, p)
		}
	}
	tmp := path.Join(path.Dir(p), "."+path.Base(p)+TempSuffix)
	err := c.do(ctx, "write "+tmp, func() error {
		uid, gid, owned := -1, -1, false
		if st, err := c.sftp.Lstat(p); err == nil {
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file: refusing to replace it", p)
			}
			mode = st.Mode().Perm()
			if fst, ok := st.Sys().(*sftp.FileStat); ok {
				uid, gid, owned = int(fst.UID), int(fst.GID), true
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// A temporary file left by a write that was cut off goes first.
		if err := c.sftp.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the leftover %s: %w", tmp, err)
		}
		f, err := c.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return err
		}
		err = f.Chmod(mode)
		if err == nil && owned {
			err = f.Chown(uid, gid)
		}
		if err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return err
	}
	if fn, ok := ctx.Value(beforeRenameKey{}).(func(*Conn, string)); ok {
		fn(c, tmp)
	}
	if err := c.do(ctx, "rename "+tmp+" to "+p, func() error { return c.sftp.PosixRename(tmp, p) }); err != nil {
		return err
	}
	if _, err := c.Output(ctx, []string{"sync", path.Dir(p)}, 4096); err != nil {
		return fmt.Errorf("%s was replaced, but its directory could not be synced to disk: %w", p, err)
	}
	back, err := c.ReadFile(ctx, p, int64(len(data)))
	if err != nil {
		return fmt.Errorf("read %s back after writing it: %w", p, err)
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("%s on %s does not read back as written (%d bytes read, %d written): something else writes it", p, c.target, len(back), len(data))
	}
	return nil
}

// Remove removes the file at p (a symlink itself, not its target).
func (c *Conn) Remove(ctx context.Context, p string) error {
	return c.do(ctx, "remove "+p, func() error { return c.sftp.Remove(p) })
}

// Reader streams a remote file; each Read has the operation time limit.
type Reader struct {
	c   *Conn
	ctx context.Context
	f   *sftp.File
	p   string
}

func (r *Reader) Read(b []byte) (int, error) {
	var n int
	var rerr error
	err := r.c.do(r.ctx, "read "+r.p, func() error {
		n, rerr = r.f.Read(b)
		if rerr == io.EOF {
			return nil
		}
		return rerr
	})
	if err != nil {
		return n, err
	}
	return n, rerr
}

// Close closes the remote file.
func (r *Reader) Close() error { return r.f.Close() }

// Open opens the regular file at p for a streaming read (a log to copy);
// a symlink or another kind of file is refused.
func (c *Conn) Open(ctx context.Context, p string) (*Reader, fs.FileInfo, error) {
	var f *sftp.File
	var st fs.FileInfo
	err := c.do(ctx, "open "+p, func() (err error) {
		if lst, err := c.sftp.Lstat(p); err != nil {
			return err
		} else if !lst.Mode().IsRegular() {
			return fmt.Errorf("not a regular file (%s): refusing to read it", lst.Mode().Type())
		}
		if f, err = c.sftp.Open(p); err != nil {
			return err
		}
		if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file (%s): refusing to read it", st.Mode().Type())
		}
		if err != nil {
			f.Close()
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &Reader{c: c, ctx: ctx, f: f, p: p}, st, nil
}

// Walk calls fn for root and everything under it, in the server's order,
// without following symlinks (as filepath.Walk, with lstat's FileInfo).
// fn returning filepath.SkipDir skips a directory.
func (c *Conn) Walk(ctx context.Context, root string, fn func(p string, info fs.FileInfo, err error) error) error {
	w := c.sftp.Walk(root)
	for {
		var more bool
		if err := c.do(ctx, "walk "+root, func() error { more = w.Step(); return nil }); err != nil {
			return err
		}
		if !more {
			return nil
		}
		err := fn(w.Path(), w.Stat(), w.Err())
		if errors.Is(err, fs.SkipDir) {
			if w.Stat() != nil && w.Stat().IsDir() {
				w.SkipDir()
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

// Output runs argv on the server and returns its standard output (at
// most max bytes). SSH hands a command to the account's shell as one
// line: every argument is quoted, so none is read as shell syntax.
func (c *Conn) Output(ctx context.Context, argv []string, max int) ([]byte, error) {
	var out []byte
	line := quoteArgv(argv)
	err := c.do(ctx, "run "+line, func() error {
		s, err := c.client.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		var stdout limitBuffer
		var stderr limitBuffer
		stdout.max, stderr.max = max, 4096
		s.Stdout, s.Stderr = &stdout, &stderr
		err = s.Run(line)
		out = stdout.buf.Bytes()
		if stdout.over {
			return fmt.Errorf("more than %d bytes of output", max)
		}
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("exit status %d: %s", exit.ExitStatus(), strings.TrimSpace(stderr.buf.String()))
		}
		return err
	})
	return out, err
}

// quoteArgv quotes each argument for a POSIX shell.
func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// limitBuffer keeps the first max bytes written to it (a field, not an
// embedded Buffer: io.Copy would use the Buffer's ReadFrom, unlimited).
type limitBuffer struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); len(p) > room {
		b.over = true
		b.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.buf.Write(p)
}
