package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// A state directory that someone other than root can change is refused
// before anything is read or written in it.
func TestOpenRefusesUntrustedDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership checks need root")
	}
	for _, tc := range []struct {
		name string
		make func(base string) string // returns the state dir
		says string
	}{
		{"world-writable", func(base string) string {
			dir := filepath.Join(base, "state")
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, 0o777)
			return dir
		}, "writable by others"},
		{"group-writable", func(base string) string {
			dir := filepath.Join(base, "state")
			os.Mkdir(dir, 0o700)
			os.Chmod(dir, 0o770)
			return dir
		}, "writable by others"},
		{"owned by uid 65534", func(base string) string {
			dir := filepath.Join(base, "state")
			os.Mkdir(dir, 0o700)
			os.Chown(dir, 65534, 65534)
			return dir
		}, "uid 65534"},
		{"inside a world-writable directory", func(base string) string {
			open := filepath.Join(base, "open")
			os.Mkdir(open, 0o700)
			os.Chmod(open, 0o777)
			dir := filepath.Join(open, "state")
			os.Mkdir(dir, 0o700)
			return dir
		}, "writable by others"},
		{"missing, inside a directory of uid 65534", func(base string) string {
			other := filepath.Join(base, "other")
			os.Mkdir(other, 0o755)
			os.Chown(other, 65534, 65534)
			return filepath.Join(other, "state")
		}, "uid 65534"},
		{"a symlink to a private directory", func(base string) string {
			real := filepath.Join(base, "real")
			os.Mkdir(real, 0o700)
			os.Symlink(real, filepath.Join(base, "state"))
			return filepath.Join(base, "state")
		}, "symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dir := tc.make(base)
			d, err := Open(dir, lockTimeout)
			if err == nil {
				d.Close()
				t.Fatal("Open accepted the directory")
			}
			if !errors.Is(err, securefs.ErrUntrusted) || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "only root") {
				t.Errorf("Open: %v\nwant ErrUntrusted saying %q and what upgrader needs", err, tc.says)
			}
			if _, err := RestoreSnapshot(dir, t0); !errors.Is(err, securefs.ErrUntrusted) {
				t.Errorf("RestoreSnapshot: %v, want ErrUntrusted", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files were made in the refused directory: %v", entries)
			}
		})
	}
}

// victim is a file outside the state directory that a planted symlink
// points at; ghost is where a dangling one points. Neither may ever be
// written, truncated or created.
type victim struct {
	path, ghost string
	content     []byte
	mtime       time.Time
}

func newVictim(t *testing.T) *victim {
	dir := t.TempDir()
	v := &victim{path: filepath.Join(dir, "precious"), ghost: filepath.Join(dir, "ghost"), content: []byte("root's precious file\n")}
	if err := os.WriteFile(v.path, v.content, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(v.path, old, old)
	v.mtime = old
	return v
}

func (v *victim) check(t *testing.T) {
	t.Helper()
	st, err := os.Stat(v.path)
	if got, _ := os.ReadFile(v.path); err != nil || !bytes.Equal(got, v.content) || !st.ModTime().Equal(v.mtime) {
		t.Errorf("the file outside the state directory was written through the symlink: %q", got)
	}
	if _, err := os.Lstat(v.ghost); err == nil {
		t.Errorf("the dangling symlink's target %s was created", v.ghost)
	}
}

// says checks that err names what is wrong: a symlink where upgrader
// wanted a file of its own.
func says(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "symlink") && !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("%s: %v, want an error naming the symlink", what, err)
	}
}

// Every file upgrader opens or creates in the state directory is opened
// without following a symlink (and created exclusively): a symlink planted
// at any of their names, to a file outside or dangling, is refused with a
// message, and what it points at is never touched.
func TestStateFilesNeverFollowSymlinks(t *testing.T) {
	// damaged makes a state dir holding a run, its snapshot, and a damaged
	// state file.
	damaged := func(t *testing.T) string {
		dir := t.TempDir()
		d := openDB(t, dir)
		mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a"))
		d.Close()
		path := filepath.Join(dir, FileName)
		b := readFile(t, path)
		b[pageHeader] ^= 1 // both meta pages: no whole commit to open
		b[os.Getpagesize()+pageHeader] ^= 1
		os.WriteFile(path, b, 0o600)
		return dir
	}
	for _, dangling := range []bool{false, true} {
		kind := "to a file outside"
		if dangling {
			kind = "dangling"
		}
		plant := func(t *testing.T, v *victim, at string) {
			t.Helper()
			target := v.path
			if dangling {
				target = v.ghost
			}
			os.Remove(at)
			if err := os.Symlink(target, at); err != nil {
				t.Fatal(err)
			}
		}
		t.Run("state.db "+kind, func(t *testing.T) {
			v, dir := newVictim(t), t.TempDir()
			plant(t, v, filepath.Join(dir, FileName))
			d, err := Open(dir, lockTimeout)
			if err == nil {
				d.Close()
			}
			says(t, "Open", err)
			_, err = RestoreSnapshot(dir, t0)
			if err == nil {
				t.Error("RestoreSnapshot without a snapshot succeeded")
			}
			v.check(t)
		})
		t.Run("state.db.new "+kind, func(t *testing.T) {
			v, dir := newVictim(t), t.TempDir()
			plant(t, v, filepath.Join(dir, FileName+".new"))
			d, err := Open(dir, lockTimeout)
			if err == nil {
				d.Close()
			}
			says(t, "Open of a new state", err)
			v.check(t)
		})
		t.Run("state.db.snapshot.tmp "+kind, func(t *testing.T) {
			v, dir := newVictim(t), t.TempDir()
			d := openDB(t, dir)
			var warned error
			d.Warn = func(err error) { warned = err }
			plant(t, v, filepath.Join(dir, SnapshotName+".tmp"))
			mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a"))
			says(t, "snapshot warning", warned)
			v.check(t)
		})
		t.Run("state.db.snapshot "+kind, func(t *testing.T) {
			v, dir := newVictim(t), t.TempDir()
			d := openDB(t, dir)
			plant(t, v, filepath.Join(dir, SnapshotName))
			mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, "a"))
			d.Close()
			v.check(t)
			// Restoring from a planted snapshot reads nothing through it.
			dir = damaged(t)
			plant(t, v, filepath.Join(dir, SnapshotName))
			_, err := RestoreSnapshot(dir, t0)
			says(t, "RestoreSnapshot", err)
			v.check(t)
		})
		for _, name := range []string{FileName + ".restore", FileName + ".probe", FileName + ".damaged-" + t0.UTC().Format("20060102T150405Z")} {
			t.Run(name+" "+kind, func(t *testing.T) {
				v, dir := newVictim(t), damaged(t)
				plant(t, v, filepath.Join(dir, name))
				res, err := RestoreSnapshot(dir, t0)
				if strings.Contains(name, "damaged") {
					// The damaged file is kept under another name.
					if err != nil || res.Damaged == filepath.Join(dir, name) {
						t.Errorf("RestoreSnapshot: %+v %v, want the damaged file kept beside the symlink", res, err)
					}
				} else {
					says(t, "RestoreSnapshot", err)
				}
				v.check(t)
			})
		}
	}
	t.Run("state.db hard link, FIFO", func(t *testing.T) {
		v, dir := newVictim(t), t.TempDir()
		os.Link(v.path, filepath.Join(dir, FileName))
		if d, err := Open(dir, lockTimeout); err == nil || !strings.Contains(err.Error(), "hard link") {
			if err == nil {
				d.Close()
			}
			t.Errorf("Open through a hard link: %v", err)
		}
		v.check(t)
		dir = t.TempDir()
		syscall.Mkfifo(filepath.Join(dir, FileName), 0o600)
		if d, err := Open(dir, lockTimeout); err == nil || !strings.Contains(err.Error(), "named pipe") {
			if err == nil {
				d.Close()
			}
			t.Errorf("Open of a FIFO: %v", err)
		}
	})
}
