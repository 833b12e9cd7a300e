// Package securefs reads and writes files where a local user other than
// root could interfere: it checks that a directory (and every directory
// above it) only root can change, opens files there without following
// symlinks, creates them exclusively, and reads untrusted input through a
// size limit, refusing anything that is not a regular file.
package securefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrUntrusted means a directory can be changed by someone other than root
// (and the user upgrader runs as): files in it could be swapped or
// redirected under upgrader.
var ErrUntrusted = errors.New("not a trusted directory")

// ErrNotRegular means a path names a FIFO, a device, a socket or a
// directory where a regular file was expected.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge means a file is larger than the reader's limit.
var ErrTooLarge = errors.New("file too large")

// CheckDir proves that only root (or the user upgrader runs as) can change
// dir and every directory above it: each is owned by one of them and not
// writable by group or others. A root-owned sticky directory (/tmp) is
// accepted above dir, never as dir itself: others may add entries there,
// but not move or remove root's. what names the directory in messages.
func CheckDir(dir, what string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	euid := uint32(os.Geteuid())
	for p, first := abs, true; ; p, first = filepath.Dir(p), false {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("%s %s: %w", what, p, err)
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK && first:
			return fmt.Errorf("%w: %s %s is a symlink: give the real directory", ErrUntrusted, what, p)
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			// A symlink above dir is only as safe as its target.
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s %s: %w", what, p, err)
			}
			if err := CheckDir(target, what); err != nil {
				return err
			}
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%w: %s %s is not a directory", ErrUntrusted, what, p)
		case st.Uid != 0 && st.Uid != euid:
			return fmt.Errorf("%w: %s %s belongs to uid %d: only root may own it (chown root %s)", ErrUntrusted, what, p, st.Uid, p)
		case st.Mode&0o022 != 0 && !(st.Mode&unix.S_ISVTX != 0 && st.Uid == 0 && !first):
			return fmt.Errorf("%w: %s %s is writable by others (mode %04o): chmod go-w %s", ErrUntrusted, what, p, st.Mode&0o7777, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// MkdirPrivate makes dir (mode 0700) if it is missing, then checks it as
// CheckDir does. An existing dir keeps its mode if CheckDir accepts it.
// Each directory it makes is made durable in its parent (fsync of the
// parent): else a power cut loses the directory with every file in it,
// however well those were synced.
func MkdirPrivate(dir, what string) error {
	var made []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		made = append(made, p)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, p := range made {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return CheckDir(dir, what)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OpenFile opens path without following a symlink at its last element.
// A path that exists must be a regular file with one link: a hard link
// would let writes land in another file.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: refusing to follow it (remove it)", path)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is a %s", ErrNotRegular, path, TypeName(st.Mode()))
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Nlink > 1 {
		f.Close()
		return nil, fmt.Errorf("%s has %d hard links: refusing to write through it (remove it)", path, s.Nlink)
	}
	return f, nil
}

// CreateExclusive creates path, which must not exist (O_EXCL): a file or
// symlink left there by someone else is an error, never written through.
func CreateExclusive(path string, perm os.FileMode) (*os.File, error) {
	return OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
}

// ReadRegular reads an untrusted input file (a profile, an answers file, an
// exported run, a certificate) of at most max bytes. A FIFO, a device
// (/dev/zero), a socket or a directory is refused without blocking; a file
// larger than max is refused without reading more than max+1 bytes.
// Symlinks are followed: the operator names the file.
func ReadRegular(path string, max int64) ([]byte, error) {
	f, _, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes: is it the right file?", ErrTooLarge, path, max)
	}
	return data, nil
}

// CheckRegular reports whether path is a regular file, without opening it
// for long: media and other large inputs are then read by their own code.
func CheckRegular(path string) (fs.FileInfo, error) {
	f, st, err := OpenRegular(path)
	if err != nil {
		return st, err
	}
	f.Close()
	return st, nil
}

// OpenRegular opens an untrusted input for reading, refusing at once
// (without blocking on a FIFO) anything that is not a regular file.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	// O_NONBLOCK: opening a FIFO with no writer would wait forever.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, st, fmt.Errorf("%w: %s is a %s; give a regular file", ErrNotRegular, path, TypeName(st.Mode()))
	}
	return f, st, nil
}

// TypeName names what a non-regular file is, for messages: "named pipe",
// "symbolic link", "character device", …
func TypeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	}
	return "special file (" + m.Type().String() + ")"
}

// WriteFile replaces path with data atomically and durably: a temp file
// created exclusively beside it, written, fsynced and renamed over path,
// then the directory fsynced. A reader sees the old content or the new,
// never part of it; after a crash, one of them is there.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	var tmp *os.File
	var err error
	for i := 0; ; i++ {
		name := filepath.Join(dir, fmt.Sprintf(".%s.tmp-%d-%d", filepath.Base(path), os.Getpid(), i))
		tmp, err = CreateExclusive(name, perm)
		if !errors.Is(err, fs.ErrExist) || i >= 100 {
			break
		}
	}
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}
