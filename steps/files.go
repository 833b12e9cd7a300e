package steps

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// hashBuf is large enough that hashing runs at the speed of SHA-256, not
// of the read calls.
const hashBuf = 1 << 20

// HashFile returns the SHA-256 and size of a regular file, reporting
// progress. Anything else is refused before a byte is read: a device
// (/dev/zero) would be hashed forever, and a FIFO is opened without
// waiting for a writer.
func HashFile(path string, progress orchestrator.Progress) (string, int64, error) {
	f, st, err := securefs.OpenRegular(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, hashBuf)
	var done int64
	for {
		n, err := f.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			done += int64(n)
			if progress != nil {
				progress("sha256 "+filepath.Base(path), done, st.Size())
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", done, err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), done, nil
}

// artifactOf records a file's identity for later guards.
func artifactOf(path string, progress orchestrator.Progress) (orchestrator.Artifact, error) {
	sum, size, err := HashFile(path, progress)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return orchestrator.Artifact{}, err
	}
	return orchestrator.Artifact{Path: path, SHA256: sum, Size: size, ModTime: st.ModTime().UTC()}, nil
}

// recheckArtifact proves a file is still the one recorded: size and mtime
// first (cheap), then the hash.
func recheckArtifact(a orchestrator.Artifact, progress orchestrator.Progress) error {
	st, err := os.Stat(a.Path)
	if err != nil {
		return fmt.Errorf("%s was verified earlier and is now unreadable: %w", a.Path, err)
	}
	if st.Size() != a.Size {
		return fmt.Errorf("%s changed since it was verified: size %d, recorded %d", a.Path, st.Size(), a.Size)
	}
	if !st.ModTime().UTC().Equal(a.ModTime) {
		return fmt.Errorf("%s changed since it was verified: modified %s, recorded %s", a.Path, st.ModTime().UTC().Format("2006-01-02 15:04:05.000"), a.ModTime.Format("2006-01-02 15:04:05.000"))
	}
	sum, _, err := HashFile(a.Path, progress)
	if err != nil {
		return err
	}
	if sum != a.SHA256 {
		return fmt.Errorf("%s changed since it was verified: sha256 %s, recorded %s", a.Path, sum, a.SHA256)
	}
	return nil
}

// recheckContent proves a file has the recorded size and hash, whatever
// its time (a copy from another server).
func recheckContent(a orchestrator.Artifact, progress orchestrator.Progress) error {
	sum, size, err := HashFile(a.Path, progress)
	if err != nil {
		return fmt.Errorf("%s was verified on the other server and is not readable here: %w (copy it to the same path)", a.Path, err)
	}
	if size != a.Size || sum != a.SHA256 {
		return fmt.Errorf("%s is not the file verified on the other server: size %d sha256 %s, recorded %d %s", a.Path, size, sum, a.Size, a.SHA256)
	}
	return nil
}

// syncDir makes a rename or create in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// mkdirAllDurable is os.MkdirAll whose new directories are durable in
// their parents: else a power cut loses them with all they hold.
func mkdirAllDurable(dir string, mode os.FileMode) error {
	var made []string
	for p := filepath.Clean(dir); p != filepath.Dir(p); p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		made = append(made, p)
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	for _, p := range made {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic replaces path with data durably: a temp file in the same
// directory is written, fsynced and renamed over path, then the directory
// is fsynced. An existing file's mode and owner are kept.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	uid, gid := -1, -1
	// Only a regular file's mode and owner are kept: a symlink's are
	// 0777 and would make the new file world-writable.
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(s.Uid), int(s.Gid)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// FileType names what a non-regular file is, for messages: "named pipe",
// "symbolic link", "character device", …
func FileType(m os.FileMode) string { return describeType(m) }
