package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// ErrBadBackup is a dump that is not whole or not the one the run
// recorded: upgrader verify-backup fails on it.
var ErrBadBackup = errors.New("the database backup does not verify")

// BackupCheck is what `upgrader verify-backup` found.
type BackupCheck struct {
	File     string                `json:"file"`
	Dump     orchestrator.Artifact `json:"dump"`
	Recorded bool                  `json:"matches_run_record"` // the SHA-256 and size the run recorded
	// Directory says the dump is in directory format: its SHA-256 is its
	// manifest's.
	Directory bool `json:"directory,omitempty"`
	// CountsFrom says what the restored rows were compared with.
	CountsFrom string          `json:"counted_against"`
	Rehearsal  RehearsalResult `json:"rehearsal"`
}

// VerifyBackup is the restore rehearsal on demand (upgrader's own check):
// the dump at path is proved whole (read to the end by pg_restore, hashed),
// compared with recorded when the run recorded it, restored into a scratch
// database, its rows counted against the counts kept beside it
// (FILE.counts, taken in the dump's snapshot) or, without them, the live
// source; the scratch database is dropped. Two verifications of one file
// at once are refused (the file is locked), so neither drops the other's
// scratch database.
func (h *Host) VerifyBackup(ctx context.Context, path string, recorded *orchestrator.Artifact, progress orchestrator.Progress) (BackupCheck, error) {
	c := BackupCheck{File: path}
	if !isPostgresDB(h) {
		return c, fmt.Errorf("%w: the rehearsal restores PostgreSQL dumps; this site's database is %s (its backup is the site's own command: check it with that database's tools)",
			orchestrator.ErrInvalidRequest, h.Profile.DB.Kind)
	}
	// A dump is a regular file (custom format) or a directory (directory
	// format); the one opened is locked.
	f, st, err := openDump(path)
	if err != nil {
		return c, fmt.Errorf("%w: %v", orchestrator.ErrInvalidRequest, err)
	}
	defer f.Close()
	stamp := dumpStamp(path)
	c.Directory = st.IsDir()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return c, fmt.Errorf("%w: another upgrader verify-backup is rehearsing %s: wait for it to end", orchestrator.ErrInvalidRequest, path)
	}
	s := &backupDB{h: h}
	if c.Dump, err = s.verifyDump(ctx, path, progress); err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	if recorded != nil {
		if c.Dump.SHA256 != recorded.SHA256 || c.Dump.Size != recorded.Size {
			return c, fmt.Errorf("%w: %s is not the dump the run recorded (SHA-256 %s, %d bytes; recorded %s, %d bytes): it was changed or replaced after the backup",
				ErrBadBackup, path, c.Dump.SHA256, c.Dump.Size, recorded.SHA256, recorded.Size)
		}
		c.Recorded = true
	}
	want, err := readCounts(countsPath(path))
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.CountsFrom = "the live source database (no " + filepath.Base(countsPath(path)) + " beside the dump: rows written since the backup show as differences)"
	case err != nil:
		return c, err
	default:
		c.CountsFrom = "the source counted in the dump's snapshot (" + filepath.Base(countsPath(path)) + ")"
	}
	abs, _ := filepath.Abs(path)
	sum := sha256.Sum256([]byte(abs))
	c.Rehearsal, err = h.RehearseRestore(ctx, path, "verify-"+hex.EncodeToString(sum[:6]), want)
	if err != nil {
		return c, err
	}
	// The restore read the file by its name: it must still be the file
	// proved above.
	if (st.Mode().IsRegular() && !sameFile(path, st.Size(), st.ModTime().UTC())) || !sameInode(f, path) || dumpStamp(path) != stamp {
		return c, fmt.Errorf("%w: %s changed while it was being rehearsed", ErrBadBackup, path)
	}
	return c, nil
}

func isPostgresDB(h *Host) bool { return h.Profile.DB.Kind == "" || h.Profile.DB.Kind == "postgres" }

// sameInode says path still names the open file f.
func sameInode(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// openDump opens a dump to lock it: a regular file, or a directory (not a
// symlink to one); a FIFO or a device is refused at once.
func openDump(path string) (*os.File, os.FileInfo, error) {
	if st, err := os.Lstat(path); err == nil && st.IsDir() {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, err
		}
		return f, st, nil
	}
	return securefs.OpenRegular(path)
}

// dumpStamp is the name, size and time of every file of a directory dump
// ("" for a file): the same before and after a rehearsal, nothing in it
// changed meanwhile.
func dumpStamp(path string) string {
	if !isDir(path) {
		return ""
	}
	entries, _ := os.ReadDir(path)
	var b strings.Builder
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return b.String()
}
