package lossyfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mountT mounts a fresh backing directory holding files (name → content,
// durable: they were there before the mount) and returns the FS and the
// mountpoint.
func mountT(t *testing.T, files map[string]string) (*FS, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(backing, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(backing, mnt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Unmount() })
	return f, mnt
}

func cut(t *testing.T, f *FS, mode Mode, seed uint64) string {
	t.Helper()
	what, err := f.PowerCut(mode, rand.New(rand.NewPCG(seed, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return what
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// writeFile writes content over p through the mount, syncing it with
// sync (nil: not at all).
func writeFile(t *testing.T, p, content string, sync func(*os.File) error) {
	t.Helper()
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if sync != nil {
		if err := sync(fh); err != nil {
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

func fsync(fh *os.File) error     { return fh.Sync() }
func fdatasync(fh *os.File) error { return unix.Fdatasync(int(fh.Fd())) }

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestUnsyncedWriteLost(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"a": "old"})
	writeFile(t, filepath.Join(mnt, "a"), "new, never synced", nil)
	if got := read(t, filepath.Join(mnt, "a")); got != "new, never synced" {
		t.Fatalf("before the cut: %q", got)
	}
	cut(t, f, LoseAll, 1)
	if got := read(t, filepath.Join(mnt, "a")); got != "old" {
		t.Errorf("after the cut: %q, want the old content", got)
	}
}

func TestFsyncedWriteKept(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"a": "old"})
	writeFile(t, filepath.Join(mnt, "a"), "new, fsynced", fsync)
	writeFile(t, filepath.Join(mnt, "b"), "", nil) // something else volatile
	cut(t, f, LoseAll, 1)
	if got := read(t, filepath.Join(mnt, "a")); got != "new, fsynced" {
		t.Errorf("after the cut: %q", got)
	}
	if exists(filepath.Join(mnt, "b")) {
		t.Errorf("b was never made durable but is there")
	}
}

func TestFdatasyncCounts(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"a": "old"})
	writeFile(t, filepath.Join(mnt, "a"), "new, fdatasynced", fdatasync)
	cut(t, f, LoseAll, 1)
	if got := read(t, filepath.Join(mnt, "a")); got != "new, fdatasynced" {
		t.Errorf("after the cut: %q", got)
	}
}

// The atomic-replace pattern without the directory fsync: the rename is
// lost, the old file is back, the temporary file (its create also
// volatile) is gone.
func TestRenameWithoutDirFsyncLost(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"d/a": "old"})
	tmp, a := filepath.Join(mnt, "d/a.tmp"), filepath.Join(mnt, "d/a")
	writeFile(t, tmp, "new", fsync)
	if err := os.Rename(tmp, a); err != nil {
		t.Fatal(err)
	}
	cut(t, f, LoseAll, 1)
	if got := read(t, a); got != "old" {
		t.Errorf("after the cut: %q, want the old content", got)
	}
	if exists(tmp) {
		t.Errorf("the temporary file came back")
	}
}

func TestRenameWithDirFsyncKept(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"d/a": "old"})
	tmp, a := filepath.Join(mnt, "d/a.tmp"), filepath.Join(mnt, "d/a")
	writeFile(t, tmp, "new", fsync)
	if err := os.Rename(tmp, a); err != nil {
		t.Fatal(err)
	}
	syncDir(t, filepath.Join(mnt, "d"))
	cut(t, f, LoseAll, 1)
	if got := read(t, a); got != "new" {
		t.Errorf("after the cut: %q, want the new content", got)
	}
	if exists(tmp) {
		t.Errorf("the temporary file is still there")
	}
}

func TestCreateWithoutDirFsyncGone(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"d/keep": "x"})
	gone, kept := filepath.Join(mnt, "d/gone"), filepath.Join(mnt, "e/kept")
	writeFile(t, gone, "synced, its entry not", fsync)
	// mkdir e, a file in it, both synced, then the root: all durable.
	if err := os.Mkdir(filepath.Join(mnt, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, kept, "kept", fsync)
	syncDir(t, filepath.Join(mnt, "e"))
	syncDir(t, mnt)
	// mkdir without the parent's fsync: gone.
	if err := os.Mkdir(filepath.Join(mnt, "d/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cut(t, f, LoseAll, 1)
	if exists(gone) {
		t.Errorf("a file created without its directory's fsync survived")
	}
	if exists(filepath.Join(mnt, "d/sub")) {
		t.Errorf("a directory made without its parent's fsync survived")
	}
	if got := read(t, kept); got != "kept" {
		t.Errorf("a file created with every fsync: %q", got)
	}
	if got := read(t, filepath.Join(mnt, "d/keep")); got != "x" {
		t.Errorf("an untouched file: %q", got)
	}
}

func TestUnlinkWithoutDirFsyncUndone(t *testing.T) {
	f, mnt := mountT(t, map[string]string{"a": "still here", "b": "gone"})
	os.Remove(filepath.Join(mnt, "a"))
	os.Remove(filepath.Join(mnt, "b"))
	syncDir(t, mnt)
	// The same inode number may be reused by a new file: not the old one.
	writeFile(t, filepath.Join(mnt, "c"), "new", nil)
	cut(t, f, LoseAll, 1)
	if exists(filepath.Join(mnt, "a")) || exists(filepath.Join(mnt, "b")) {
		t.Errorf("a synced unlink was undone")
	}
	f2, mnt2 := mountT(t, map[string]string{"a": "still here"})
	os.Remove(filepath.Join(mnt2, "a"))
	cut(t, f2, LoseAll, 1)
	if got := read(t, filepath.Join(mnt2, "a")); got != "still here" {
		t.Errorf("an unsynced unlink: %q", got)
	}
}

// A random prefix is a prefix: of 20 appends, each cut keeps the first k
// for some k, and the seeds between them keep different k.
func TestRandomPrefixIsPrefix(t *testing.T) {
	var all strings.Builder
	for i := range 20 {
		all.WriteString(strconv.Itoa(i) + "\n")
	}
	ks := map[int]bool{}
	for seed := range uint64(8) {
		f, mnt := mountT(t, map[string]string{"log": ""})
		fh, err := os.OpenFile(filepath.Join(mnt, "log"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			fh.WriteString(strconv.Itoa(i) + "\n")
		}
		fh.Close()
		what := cut(t, f, KeepPrefix, seed)
		got := read(t, filepath.Join(mnt, "log"))
		if !strings.HasPrefix(all.String(), got) || (got != "" && !strings.HasSuffix(got, "\n")) {
			t.Errorf("seed %d (%s): %q is not a prefix of the appends", seed, what, got)
		}
		ks[strings.Count(got, "\n")] = true
	}
	if len(ks) < 3 {
		t.Errorf("8 seeds kept only %d different prefixes: %v", len(ks), ks)
	}
}

// A torn page: 8 KiB of 'b' written over 8 KiB of 'a' (one write), torn:
// the pages before the torn one new, the torn one half new then half old,
// the ones after it old.
func TestTornPageIsHalfOldHalfNew(t *testing.T) {
	seen := map[int]bool{}
	for seed := range uint64(6) {
		f, mnt := mountT(t, map[string]string{"db": strings.Repeat("a", 2*PageSize)})
		fh, err := os.OpenFile(filepath.Join(mnt, "db"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt(bytes.Repeat([]byte("b"), 2*PageSize), 0); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		what := cut(t, f, TearPage, seed)
		got := read(t, filepath.Join(mnt, "db"))
		torn := -1
		for p := 0; p < 2; p++ {
			page := got[p*PageSize : (p+1)*PageSize]
			half := strings.Repeat("b", PageSize/2) + strings.Repeat("a", PageSize/2)
			switch {
			case page == half:
				torn = p
			case page == strings.Repeat("b", PageSize) && (torn == -1 && p == 0):
			case page == strings.Repeat("a", PageSize) && torn >= 0:
			default:
				t.Fatalf("seed %d (%s): page %d is neither old, new nor torn in half", seed, what, p)
			}
		}
		if torn < 0 || len(got) != 2*PageSize {
			t.Fatalf("seed %d (%s): no page torn (%d bytes)", seed, what, len(got))
		}
		seen[torn] = true
	}
	if len(seen) != 2 {
		t.Errorf("6 seeds tore only page(s) %v of 2", seen)
	}
}

// The processes under test are other processes: a shell's sync(1) of a
// file and of its directory makes a create and its content durable.
func TestChildProcessSync(t *testing.T) {
	f, mnt := mountT(t, nil)
	// The shell changes into the mount itself: a child that did so
	// before its exec (cmd.Dir) would need this process's FUSE server
	// while Go's vfork holds a P (see Mount).
	sh := `cd "$1" && printf done > kept && sync kept && sync . && printf lost > gone && sync gone`
	c := exec.Command("sh", "-c", sh, "sh", mnt)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cut(t, f, LoseAll, 1)
	if got := read(t, filepath.Join(mnt, "kept")); got != "done" {
		t.Errorf("kept: %q", got)
	}
	if exists(filepath.Join(mnt, "gone")) {
		t.Errorf("a file whose directory was not synced after its create survived")
	}
}

// A test process that dies leaves its mount behind, answering ENOTCONN;
// the next Mount detaches it.
func TestStaleMountCleaned(t *testing.T) {
	if dir := os.Getenv("LOSSYFS_DIE_MOUNTED"); dir != "" {
		if _, err := Mount(filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")); err != nil {
			os.Exit(3)
		}
		os.WriteFile(filepath.Join(dir, "mounted"), nil, 0o644)
		time.Sleep(time.Minute)
		return
	}
	dir, c := startMountOwner(t)
	for i := 0; !exists(filepath.Join(dir, "mounted")); i++ {
		if i > 500 {
			c.Process.Kill()
			t.Fatal("the child never mounted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "mnt"), &st); err != syscall.ENOTCONN {
		t.Fatalf("the dead process's mount: stat %v, want ENOTCONN", err)
	}
	CleanStale()
	if err := syscall.Stat(filepath.Join(dir, "mnt"), &st); err != nil {
		t.Fatalf("after CleanStale: %v", err)
	}
}

// startMountOwner starts another process of this test binary that mounts
// DIR/backing at DIR/mnt, says so in DIR/mounted, and waits a minute.
func startMountOwner(t *testing.T) (string, *exec.Cmd) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "backing"), 0o755)
	os.Mkdir(filepath.Join(dir, "mnt"), 0o755)
	c := exec.Command(os.Args[0], "-test.run=^TestStaleMountCleaned$")
	c.Env = append(os.Environ(), "LOSSYFS_DIE_MOUNTED="+dir)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return dir, c
}

// A live process's mount is never touched, even when that process is
// stopped (the power-cut sweep stops a run's servers): a CleanStale that
// stat'ed it would block in the kernel, and the process calling it could
// then not even exit until the other one went on.
func TestCleanStaleLeavesLiveMountsAlone(t *testing.T) {
	if os.Getenv("LOSSYFS_CLEAN_STALE") != "" {
		CleanStale()
		return
	}
	dir, owner := startMountOwner(t)
	defer func() {
		owner.Process.Signal(syscall.SIGCONT)
		owner.Process.Kill()
		owner.Wait()
		CleanStale() // its mount, now stale
	}()
	for i := 0; !exists(filepath.Join(dir, "mounted")); i++ {
		if i > 500 {
			t.Fatal("the owner never mounted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	owner.Process.Signal(syscall.SIGSTOP)

	cleaner := exec.Command(os.Args[0], "-test.run=^TestCleanStaleLeavesLiveMountsAlone$")
	cleaner.Env = append(os.Environ(), "LOSSYFS_CLEAN_STALE=1")
	if err := cleaner.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cleaner.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("CleanStale in another process: %v", err)
		}
	case <-time.After(30 * time.Second):
		owner.Process.Signal(syscall.SIGCONT) // lets the cleaner finish
		<-done
		t.Fatal("CleanStale hung on a live (stopped) process's mount: its process could not exit until that one went on")
	}
	owner.Process.Signal(syscall.SIGCONT)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "mnt"), &st); err != nil || st.Dev == 0 {
		t.Fatalf("the live mount after CleanStale: %v", err)
	}
	if !mounted(t, filepath.Join(dir, "mnt")) {
		t.Error("CleanStale detached a live process's mount")
	}
}

// mounted says whether a lossyfs mount is at mp.
func mounted(t *testing.T, mp string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescape(f[4]) == mp && strings.Contains(line, "fuse.lossyfs") {
			return true
		}
	}
	return false
}

// TestSyncfsNotSeen holds what the kernel does: syncfs(2) on a FUSE mount
// reaches the server only for virtiofs (fuse_sync_fs sends
// FUSE_SYNCFS only when the connection asks for it), so a program that
// relies on them here loses its writes. upgrader fsyncs files and
// directories one by one after a tool (steps/durable) for that reason.
func TestSyncfsNotSeen(t *testing.T) {
	f, mnt := mountT(t, nil)
	p := filepath.Join(mnt, "a")
	writeFile(t, p, "written", nil)
	d, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Syncfs(int(d.Fd()))
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	if f.Volatile() == 0 {
		t.Fatal("syncfs reached the server: a sync(2)-based durability would be tested too")
	}
	cut(t, f, LoseAll, 1)
	if exists(p) {
		t.Fatalf("%s survived a power cut after syncfs", p)
	}
}

// A file's times are metadata, durable at once (see the package comment):
// a synced file comes back from a power cut with the mtime it had, which
// upgrader's guards compare with the one they recorded.
func TestMtimeKeptAcrossCut(t *testing.T) {
	f, mnt := mountT(t, nil)
	p := filepath.Join(mnt, "dump")
	writeFile(t, p, "data", (*os.File).Sync)
	syncDir(t, mnt)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	cut(t, f, LoseAll, 1)
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(st.ModTime()) {
		t.Errorf("mtime after the cut %s, before %s", after.ModTime(), st.ModTime())
	}
}
