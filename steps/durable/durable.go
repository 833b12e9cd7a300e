// Package durable makes what a tool changed under given trees survive a
// power cut: vendor tools need not sync anything, so upgrader does, before
// anything records the tool's work as done.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Slack is how long before a tool's start a change still counts as
// the tool's: file times come from a coarse clock, and the job's start is
// taken by its launcher a little after the command was decided.
const Slack = 2 * time.Second

// Stats says what Make did.
type Stats struct {
	Entries, Synced int
	Took            time.Duration
}

// Make makes what tools changed under roots since since survive a
// power cut, before upgrader records the step done (upgrader's own rule:
// vendor tools need not sync anything). syncfs(2) on the file system of
// each path of syncFS first flushes it all at once (a vendor tool may
// have changed thousands of files: one syncfs is cheaper than their
// fsyncs one by one); then each root is walked and every directory and
// regular file changed since since (mtime or ctime) is fsynced: a new or
// renamed entry is durable once its directory is, a removal too. syncfs
// alone is not enough to rely on everywhere (a FUSE server never sees it;
// see testdata/lossyfs TestSyncfsNotSeen), and a file's fsync after it is
// cheap. A tool whose few files are known (pg_dump's dump) needs no
// syncfs, which would flush everything else dirty on the file system
// too. Ancestors of a root changed since since are fsynced as well: a
// fresh install makes its home. A missing root is skipped.
func Make(roots, syncFS []string, since time.Time) (Stats, error) {
	began := time.Now()
	var st Stats
	for _, p := range syncFS {
		if p == "" {
			continue // a path the profile leaves unset
		}
		if err := syncFSOf(p); err != nil {
			return st, err
		}
	}
	for _, root := range outermost(roots) {
		if err := durableTree(root, since, &st); err != nil {
			return st, err
		}
	}
	st.Took = time.Since(began)
	return st, nil
}

// outermost drops empty roots and roots inside another one.
func outermost(roots []string) []string {
	var out []string
	for _, r := range roots {
		if r != "" {
			out = append(out, filepath.Clean(r))
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	inside := func(r, o string) bool { return o != r && (o == "/" || strings.HasPrefix(r, o+"/")) }
	return slices.DeleteFunc(out, func(r string) bool {
		return slices.ContainsFunc(out, func(o string) bool { return inside(r, o) })
	})
}

// syncFSOf runs syncfs(2) on the file system of p, or of its nearest
// existing ancestor.
func syncFSOf(p string) error {
	for {
		d, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) && p != filepath.Dir(p) {
			p = filepath.Dir(p)
			continue
		}
		if err != nil {
			return err
		}
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", p, err)
		}
		return nil
	}
}

func changedSince(fi fs.FileInfo, since time.Time) bool {
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return !time.Unix(s.Mtim.Unix()).Before(since) || !time.Unix(s.Ctim.Unix()).Before(since)
}

func durableTree(root string, since time.Time, st *Stats) error {
	// The root's own entry, up the ancestors a tool changed.
	top := root
	for top != filepath.Dir(top) {
		fi, err := os.Lstat(filepath.Dir(top))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				top = filepath.Dir(top)
				continue
			}
			return err
		}
		if !changedSince(fi, since) {
			break
		}
		if err := fsyncPath(filepath.Dir(top), st); err != nil {
			return err
		}
		top = filepath.Dir(top)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st.Entries++
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil // a link, a FIFO, a device: its entry is its directory's
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || !changedSince(fi, since) {
			return err
		}
		return fsyncPath(p, st)
	})
	return err
}

// fsyncPath fsyncs a directory or a regular file, never following a link
// and never blocking on a FIFO put there meanwhile.
func fsyncPath(p string, st *Stats) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
		return nil // gone, or a link now: nothing of the tool's to keep
	}
	if err != nil {
		return fmt.Errorf("make %s durable: %w", p, err)
	}
	defer unix.Close(fd)
	var s unix.Stat_t
	if err := unix.Fstat(fd, &s); err != nil {
		return err
	}
	if m := s.Mode & unix.S_IFMT; m != unix.S_IFDIR && m != unix.S_IFREG {
		return nil
	}
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("make %s durable: fsync: %w", p, err)
	}
	st.Synced++
	return nil
}
