// Package smallfs gives tests a real file system small enough to fill: a
// fresh ext4 image on a loop device (tmpfs where no loop device can be
// had), mounted for one test. Mounting needs root, which the tests have.
package smallfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Mount mounts a new file system of sizeKiB and returns its mount point,
// a root-owned 0700 directory. It is unmounted when the test ends.
func Mount(tb testing.TB, sizeKiB int) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("mounting a small file system needs root")
	}
	dir := tb.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		tb.Fatal(err)
	}
	// -m 0: no blocks reserved for root, who would otherwise write on.
	err := run("truncate", "-s", fmt.Sprintf("%dK", sizeKiB), img)
	if err == nil {
		err = run("mkfs.ext4", "-q", "-F", "-m", "0", img)
	}
	if err == nil {
		err = run("mount", "-o", "loop", img, mnt)
	}
	if err != nil {
		tb.Logf("ext4 on a loop device: %v; using tmpfs", err)
		if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dk,mode=0700", sizeKiB), "tmpfs", mnt); err != nil {
			tb.Fatalf("no small file system: %v", err)
		}
	}
	tb.Cleanup(func() {
		if err := run("umount", mnt); err != nil {
			tb.Errorf("umount %s: %v", mnt, err)
			run("umount", "-l", mnt)
		}
	})
	if err := os.Chmod(mnt, 0o700); err != nil {
		tb.Fatal(err)
	}
	return mnt
}

// Fill writes a file in dir until the file system is full, then gives back
// free bytes (rounded to whole blocks) and returns a function that frees
// the rest.
func Fill(tb testing.TB, dir string, free int64) (release func()) {
	tb.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = 0xA5 // not zeros: nothing may store it sparsely
	}
	var size int64
	for chunk := len(buf); chunk >= 512; {
		n, err := f.Write(buf[:chunk])
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			chunk /= 2
			continue
		}
		if err != nil {
			tb.Fatalf("filling %s: %v", dir, err)
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		tb.Fatalf("filling %s: %v", dir, err)
	}
	if free > 0 {
		if err := f.Truncate(max(0, size-free)); err != nil {
			tb.Fatal(err)
		}
		f.Sync()
	}
	syscall.Sync()
	return func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("freeing %s: %v", dir, err)
		}
		syscall.Sync()
	}
}

// Free is what the file system of dir has left for root, in bytes.
func Free(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bfree) * st.Bsize
}

func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
