package securefs

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/testdata/lossyfs"
)

func TestCheckDir(t *testing.T) {
	base := t.TempDir() // 0700, owned by the test's user, under sticky /tmp
	if err := CheckDir(base, "state directory"); err != nil {
		t.Fatalf("a private directory under /tmp: %v", err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if err := CheckDir(open, "state directory"); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable directory: %v", err)
	}
	sticky := filepath.Join(base, "sticky")
	os.Mkdir(sticky, 0o700)
	os.Chmod(sticky, os.ModeSticky|0o777)
	if err := CheckDir(sticky, "state directory"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a sticky world-writable directory as the directory itself: %v", err)
	}
	inner := filepath.Join(open, "inner")
	os.Mkdir(inner, 0o700)
	if err := CheckDir(inner, "state directory"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a private directory inside a world-writable one: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(base, link)
	if err := CheckDir(link, "state directory"); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a symlink as the directory: %v", err)
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		os.Chown(other, 65534, 65534)
		if err := CheckDir(other, "socket directory"); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("a directory owned by another user: %v", err)
		}
	}
	if err := MkdirPrivate(filepath.Join(base, "new", "state"), "state directory"); err != nil {
		t.Errorf("MkdirPrivate: %v", err)
	}
}

func TestOpenFileRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("x"), 0o600)
	sym := filepath.Join(dir, "upgrader.log")
	os.Symlink(target, sym)
	if _, err := OpenFile(sym, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	dangling := filepath.Join(dir, "state.db")
	os.Symlink(filepath.Join(dir, "elsewhere"), dangling)
	if _, err := OpenFile(dangling, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		t.Error("a dangling symlink was followed")
	}
	if fileExists(filepath.Join(dir, "elsewhere")) {
		t.Error("the dangling symlink's target was created")
	}
	hard := filepath.Join(dir, "hard")
	os.Link(target, hard)
	if _, err := OpenFile(hard, os.O_WRONLY, 0); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("hard link: %v", err)
	}
	if _, err := CreateExclusive(target, 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateExclusive over an existing file: %v", err)
	}
	f, err := CreateExclusive(filepath.Join(dir, "fresh"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "profile.yaml")
	os.WriteFile(ok, []byte("site: x\n"), 0o600)
	if b, err := ReadRegular(ok, 100); err != nil || string(b) != "site: x\n" {
		t.Errorf("regular file: %q %v", b, err)
	}
	if _, err := ReadRegular(ok, 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadRegular("/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/zero: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadRegular(fifo, 1<<20); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO hung")
	}
	if _, err := CheckRegular(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job.status")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	// A temp name planted as a symlink is never written through.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Symlink(target, filepath.Join(dir, ".other.tmp-"+strconv.Itoa(os.Getpid())+"-0"))
	if err := WriteFile(filepath.Join(dir, "other"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("wrote through a planted symlink: %q", b)
	}
}

// A directory MkdirPrivate makes survives a power cut once a file in it
// is durable: each directory it created is made durable in its parent.
func TestMkdirPrivateSurvivesPowerCut(t *testing.T) {
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	os.Mkdir(backing, 0o755)
	os.Mkdir(mnt, 0o755)
	disk, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Unmount()
	state := filepath.Join(mnt, "var/lib/upgrader")
	if err := MkdirPrivate(state, "state directory"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(state, "state.db"), []byte("durable"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := disk.PowerCut(lossyfs.LoseAll, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(state, "state.db")); err != nil || string(b) != "durable" {
		t.Errorf("after a power cut: %q, %v", b, err)
	}
}
