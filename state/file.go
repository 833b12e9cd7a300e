package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"upgrader/state/securefs"
)

// The state file on disk: in a directory only root can change, opened
// without following symlinks, locked before it is read, created whole.

// checkDir proves that only root can change the state directory, making
// it (0700) first if asked.
func checkDir(dir string, mkdir bool) error {
	check := securefs.CheckDir
	if mkdir {
		check = securefs.MkdirPrivate
	}
	if err := check(dir, "state directory"); err != nil {
		if errors.Is(err, securefs.ErrUntrusted) {
			err = fmt.Errorf("%w\n(upgrader keeps its state only where root alone can change it: a directory owned by root, mode 0700, below directories only root can write)", err)
		}
		return err
	}
	return nil
}

// open opens the file at path, creating it unless readOnly. The file is
// locked (exclusively, or shared when readOnly) before a byte of it is
// read: another upgrader's commit in progress must not look like damage.
func open(path string, timeout time.Duration, readOnly bool) (*DB, error) {
	f, err := openLocked(path, timeout, readOnly)
	if err != nil {
		return nil, err
	}
	// bbolt works on a descriptor of the same open file, which carries the
	// lock; this one is not needed once bbolt has it.
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// bbolt would initialise an empty file as a new database; upgrader
	// creates a state file whole (create), so an empty one lost its content.
	if st.Size() == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrCorrupt, path)
	}
	fb, err := checkMetaPages(f, path)
	if err != nil {
		return nil, err
	}
	db, err := openBolt(path, f, readOnly)
	if err != nil {
		var pathErr *fs.PathError
		var errno syscall.Errno
		switch {
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch),
			// Any other refusal that is not an OS error is about the
			// file's content (e.g. "file size too small").
			!errors.As(err, &pathErr) && !errors.As(err, &errno):
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	d := &DB{db: db, path: path}
	err = d.verify()
	if errors.Is(err, errSchema2) && !readOnly && fb == nil {
		// An earlier upgrader's file, whole: converted in one commit,
		// then checked again as this upgrader's.
		if err = d.convertFromSchema2(); err == nil {
			err = d.verify()
		}
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	if fb != nil {
		err := d.weighFallback(fb)
		if err == nil {
			err = d.recordFallback(fb, readOnly)
		}
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	if !readOnly {
		if err := d.init(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return d, nil
}

// openLocked opens the state file at path without following a symlink and
// takes its lock, creating the file first (whole: create) unless readOnly.
// The lock is bbolt's own (flock on the file), so that any upgrader, old
// or new, sees it.
func openLocked(path string, timeout time.Duration, readOnly bool) (*os.File, error) {
	flag, how := os.O_RDWR, unix.LOCK_EX
	if readOnly {
		flag, how = os.O_RDONLY, unix.LOCK_SH
	}
	deadline := time.Now().Add(timeout)
	// Another try only follows a file made or replaced meanwhile.
	for range 5 {
		f, err := securefs.OpenFile(path, flag|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) && !readOnly {
			if err := create(path, deadline); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open state %s: %w", path, err)
		}
		if err := lock(f, how, deadline); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s is locked; stop the other upgrader (or wait for it to finish) and try again", ErrLocked, path)
			}
			return nil, fmt.Errorf("lock state %s: %w", path, err)
		}
		// restore-state may have put another file in place while this one
		// waited for its lock: lock the one that is there now.
		if sameFile(f, path) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("open state %s: it keeps being replaced; is another program writing in %s?", path, filepath.Dir(path))
}

// lock takes a flock of kind how on f, trying until deadline; it returns
// EWOULDBLOCK if another open file holds a conflicting one.
func lock(f *os.File, how int, deadline time.Time) error {
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		switch {
		case err == unix.EINTR:
			continue
		case err != unix.EWOULDBLOCK || time.Now().After(deadline):
			return err
		}
		time.Sleep(min(50*time.Millisecond, time.Until(deadline)+time.Millisecond))
	}
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

// create makes a new state file at path whole or not at all: bbolt's
// pages, then upgrader's buckets and schema, are written (fsynced) to
// path.new, which is then renamed into place. A full disk or a crash while
// it is written leaves no state file, never one that would look damaged.
// Creators wait for each other on a lock of the directory.
func create(path string, deadline time.Time) error {
	dir := filepath.Dir(path)
	lockDir, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer lockDir.Close()
	if err := lock(lockDir, unix.LOCK_EX, deadline); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: another upgrader is creating %s", ErrLocked, path)
		}
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return nil // made meanwhile, or something else is there: open says which
	}
	tmp := path + ".new"
	f, err := createFresh(tmp)
	if err != nil {
		return err
	}
	err = initFile(f, tmp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create state %s: %w%s", path, err, spaceAdvice(err, dir))
	}
	return syncDir(dir)
}

// initFile writes a new state into the empty file f: bbolt's pages, then
// the buckets and the schema, each fsynced.
func initFile(f *os.File, path string) error {
	db, err := openBolt(path, f, false)
	if err != nil {
		return err
	}
	d := &DB{db: db, path: path}
	err = d.init()
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// openBolt opens the file f (at path) with bbolt, on a descriptor of its
// own that shares f's open file and so its lock. A panic on a damaged page
// becomes an error.
func openBolt(path string, f *os.File, readOnly bool) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	sameOpenFile := func(string, int, os.FileMode) (*os.File, error) {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), path), nil
	}
	// The lock is held already: bbolt's own flock, on the same open file,
	// succeeds at once. The free page list is written with each commit
	// (bbolt's default): without it, bbolt rebuilds the list at open in a
	// goroutine of its own, where a damaged page would crash the process
	// instead of being reported as damage.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: readOnly, OpenFile: sameOpenFile})
}

// spaceAdvice is what to do when a write failed because the file system of
// dir is full.
func spaceAdvice(err error, dir string) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Sprintf(" (nothing of this was saved: free space on the file system of %s, then run the command again)", dir)
	}
	return ""
}

// createFresh creates path exclusively, never through a symlink: a
// regular file there is a leftover of an interrupted upgrader and is
// removed first; anything else (a symlink, a FIFO) is refused, not
// written through.
func createFresh(path string) (*os.File, error) {
	if st, err := os.Lstat(path); err == nil {
		if !st.Mode().IsRegular() {
			what := securefs.TypeName(st.Mode())
			if st.Mode()&fs.ModeSymlink != 0 {
				what = "symlink"
			}
			return nil, fmt.Errorf("%s is a %s, not a file upgrader left: refusing to write through it (remove it)", path, what)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	return securefs.CreateExclusive(path, 0o600)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
