// Package lossyfs is a test file system that loses what a power cut loses:
// a FUSE loopback mount of a backing directory where the writes to a file
// since its last fsync/fdatasync, and the entries created, renamed or
// removed in a directory since that directory's last fsync, are volatile.
// PowerCut drops them (all, a random prefix in order, or all but one write
// whose 4 KiB page is half applied) and the mount then serves the durable
// image. The model is LazyFS (Jepsen), kept as small as it can be.
//
// The live tree is the backing directory itself; beside it the FS keeps
// the durable image of every file and directory changed since the mount
// (its content, or its entries, as of its last sync) and one log of the
// volatile operations in the order they happened. A sync folds the synced
// node's operations into its durable image; PowerCut folds the surviving
// prefix into it, writes the durable tree into a fresh directory (files
// never changed are hard-linked from the live tree) and mounts that.
//
// Not modelled: metadata (mode, owner, times) is durable at once; a rename
// across two directories is an unlink in the one and a link in the other,
// each durable with its own directory; fallocate is refused (ENOTSUP).
package lossyfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Mode is what a power cut keeps of the volatile operations.
type Mode int

const (
	LoseAll    Mode = iota // every volatile operation is lost
	KeepPrefix             // a random prefix of them survives, in order
	TearPage               // a random prefix survives, and of the next write one 4 KiB page is half applied
)

func (m Mode) String() string {
	return [...]string{"lose-all", "keep-prefix", "tear-page"}[m]
}

// PageSize is the unit a torn write is torn in.
const PageSize = 4096

// FS is one lossy mount.
type FS struct {
	Backing, Mountpoint string

	mu     sync.Mutex
	server *fuse.Server
	nodes  map[int]*node  // model id → node, for nodes changed since the mount
	live   map[uint64]int // backing inode → model id
	log    []op           // volatile operations, oldest first
	nextID int
}

// node is the durable image of a file or directory changed since the mount.
type node struct {
	kind    uint32 // S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO
	mode    uint32
	data    []byte         // a file's durable content
	entries map[string]int // a directory's durable entries
	target  string         // a symlink's
}

type opKind int

const (
	opWrite  opKind = iota // data at off
	opTrunc                // size off
	opLink                 // entry name → child
	opUnlink               // entry name removed
	opRename               // entry name → name2 in the same directory
)

// op is one volatile operation on node id.
type op struct {
	id    int
	kind  opKind
	off   int64
	data  []byte
	name  string
	name2 string
	child int
}

// Mount serves backing at mountpoint. Stale lossyfs mounts left by a test
// process that died are detached first.
//
// The server runs in the calling process: that process must never exec a
// file on the mount, nor start a child in a directory on it. Go starts a
// child with vfork, and the forking thread keeps its P until the child has
// exec'd; a lookup on the mount then waits for this process's FUSE server,
// and if the garbage collector stops the world meanwhile, both wait for
// good. Exec a system binary that reads the file instead (/bin/bash
// script, sh -c 'cd DIR && …').
func Mount(backing, mountpoint string) (*FS, error) {
	CleanStale()
	f := &FS{Backing: backing, Mountpoint: mountpoint}
	return f, f.mount()
}

func (f *FS) mount() error {
	f.nodes, f.live, f.log = map[int]*node{}, map[uint64]int{}, nil
	root := &fs.LoopbackRoot{Path: f.Backing}
	var st syscall.Stat_t
	if err := syscall.Stat(f.Backing, &st); err != nil {
		return err
	}
	root.Dev = st.Dev
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &lnode{LoopbackNode: fs.LoopbackNode{RootData: r}, fs: f}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	server, err := fs.Mount(f.Mountpoint, root.RootNode, &fs.Options{MountOptions: fuse.MountOptions{
		// The source names the serving process: CleanStale leaves the
		// mounts of live processes alone.
		AllowOther: true, FsName: fmt.Sprintf("lossyfs:%d", os.Getpid()), Name: "lossyfs", DirectMount: true,
	}})
	if err != nil {
		return fmt.Errorf("lossyfs: mount %s: %w", f.Mountpoint, err)
	}
	f.server = server
	return nil
}

// Unmount ends the mount (lazily if something still holds it).
func (f *FS) Unmount() error {
	if f.server == nil {
		return nil
	}
	err := f.server.Unmount()
	if err != nil {
		err = unix.Unmount(f.Mountpoint, unix.MNT_DETACH)
	}
	f.server.Wait()
	f.server = nil
	return err
}

// Sync makes every volatile operation durable, as sync(1) would.
func (f *FS) Sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.log {
		f.apply(o, len(o.data))
	}
	f.log = nil
}

// Volatile returns how many operations a power cut now would lose.
func (f *FS) Volatile() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.log)
}

// PowerCut loses what mode says, then serves the durable image. Every
// process using the mount must be gone. It returns a line saying what was
// kept and lost.
func (f *FS) PowerCut(mode Mode, rng *rand.Rand) (string, error) {
	f.mu.Lock()
	keep, torn := 0, -1
	switch mode {
	case KeepPrefix:
		keep = rng.IntN(len(f.log) + 1)
	case TearPage:
		var writes []int
		for i, o := range f.log {
			if o.kind == opWrite {
				writes = append(writes, i)
			}
		}
		if len(writes) > 0 {
			torn = writes[rng.IntN(len(writes))]
			keep = torn
		}
	}
	what := fmt.Sprintf("%s: kept %d of %d volatile operations", mode, keep, len(f.log))
	for _, o := range f.log[:keep] {
		f.apply(o, len(o.data))
	}
	if torn >= 0 {
		o := f.log[torn]
		// The write's pages in the file; one of them is half written:
		// the pages before it whole, its first half, nothing after.
		first := o.off / PageSize
		last := (o.off + int64(len(o.data)) - 1) / PageSize
		page := first + rng.Int64N(last-first+1)
		cut := page*PageSize + PageSize/2 - o.off
		cut = max(0, min(cut, int64(len(o.data))))
		f.apply(o, int(cut))
		what += fmt.Sprintf(", write %d torn at byte %d of %d (file offset %d)", torn, cut, len(o.data), o.off)
	}
	f.log = nil
	f.mu.Unlock()
	if err := f.Unmount(); err != nil {
		return what, err
	}
	if err := f.rebuild(); err != nil {
		return what, err
	}
	return what, f.mount()
}

// rebuild writes the durable tree beside the backing directory and puts it
// in its place.
func (f *FS) rebuild() error {
	fresh, old := f.Backing+".durable", f.Backing+".lost"
	os.RemoveAll(fresh)
	os.RemoveAll(old)
	// Where each unchanged inode lives in the live tree.
	livePath := map[uint64]string{}
	err := filepath.Walk(f.Backing, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if _, ok := livePath[ino]; !ok {
			livePath[ino] = p
		}
		return nil
	})
	if err != nil {
		return err
	}
	byID := map[int]uint64{}
	for ino, id := range f.live {
		byID[id] = ino
	}
	var st syscall.Stat_t
	if err := syscall.Stat(f.Backing, &st); err != nil {
		return err
	}
	b := builder{f: f, livePath: livePath, byID: byID, built: map[string]string{}}
	if id, ok := f.live[st.Ino]; ok && f.nodes[id] != nil {
		err = b.changed(id, fresh)
	} else {
		err = b.unchanged(f.Backing, &st, fresh)
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Backing, old); err != nil {
		return err
	}
	if err := os.Rename(fresh, f.Backing); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

type builder struct {
	f        *FS
	livePath map[uint64]string
	byID     map[int]uint64
	built    map[string]string // "i<ino>" or "n<id>" → path already built (hard links)
}

// dir builds directory id at dst: its durable entries if it changed,
// else its live ones (live is its path in the live tree).
func (b *builder) dir(id int, live, dst string, mode uint32) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	defer os.Chmod(dst, os.FileMode(mode&0o777)|modeBits(mode))
	if n := b.f.nodes[id]; n != nil {
		for name, child := range n.entries {
			if err := b.entry(child, filepath.Join(dst, name)); err != nil {
				return err
			}
		}
		return nil
	}
	des, err := os.ReadDir(live)
	if err != nil {
		return err
	}
	for _, de := range des {
		p := filepath.Join(live, de.Name())
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if id, ok := b.f.live[st.Ino]; ok && b.f.nodes[id] != nil {
			err = b.changed(id, filepath.Join(dst, de.Name()))
		} else {
			err = b.unchanged(p, &st, filepath.Join(dst, de.Name()))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// entry builds node id at dst.
func (b *builder) entry(id int, dst string) error {
	if b.f.nodes[id] != nil {
		return b.changed(id, dst)
	}
	// Unchanged since the mount: the live inode is the durable one.
	live, found := b.livePath[b.byID[id]]
	if _, ok := b.byID[id]; !ok || !found {
		return fmt.Errorf("lossyfs: inode of %s is in no durable state", dst)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(live, &st); err != nil {
		return err
	}
	return b.unchanged(live, &st, dst)
}

// unchanged builds an inode unchanged since the mount, from the live tree.
func (b *builder) unchanged(live string, st *syscall.Stat_t, dst string) error {
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return b.dir(-1, live, dst, st.Mode)
	}
	key := fmt.Sprint("i", st.Ino)
	if other, ok := b.built[key]; ok {
		return os.Link(other, dst)
	}
	b.built[key] = dst
	return os.Link(live, dst)
}

// changed builds node id from its durable image.
func (b *builder) changed(id int, dst string) error {
	n := b.f.nodes[id]
	key := fmt.Sprint("n", id)
	if other, ok := b.built[key]; ok && n.kind != syscall.S_IFDIR {
		return os.Link(other, dst)
	}
	b.built[key] = dst
	switch n.kind {
	case syscall.S_IFDIR:
		return b.dir(id, "", dst, n.mode)
	case syscall.S_IFLNK:
		return os.Symlink(n.target, dst)
	case syscall.S_IFIFO:
		return syscall.Mkfifo(dst, n.mode&07777)
	}
	if err := os.WriteFile(dst, n.data, 0o600); err != nil {
		return err
	}
	// Times are metadata, durable at once: the live file's, if it lives.
	if live, ok := b.livePath[b.byID[id]]; ok {
		var st syscall.Stat_t
		if err := syscall.Lstat(live, &st); err == nil {
			ts := []unix.Timespec{unix.NsecToTimespec(syscall.TimespecToNsec(st.Atim)), unix.NsecToTimespec(syscall.TimespecToNsec(st.Mtim))}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
	}
	return os.Chmod(dst, os.FileMode(n.mode&0o777)|modeBits(n.mode))
}

func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&syscall.S_ISUID != 0 {
		out |= os.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		out |= os.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		out |= os.ModeSticky
	}
	return out
}

// idOfIno returns the model id of a live inode, giving it one if new.
// Callers hold mu (or own the FS alone, as rebuild does).
func (f *FS) idOfIno(ino uint64) int {
	if id, ok := f.live[ino]; ok {
		return id
	}
	f.nextID++
	f.live[ino] = f.nextID
	return f.nextID
}

// track makes sure node id has a durable image, read from the live path
// if it has none yet (unchanged since the mount: live is durable).
func (f *FS) track(id int, path string) error {
	if f.nodes[id] != nil {
		return nil
	}
	var st syscall.Stat_t
	stat := syscall.Lstat
	if strings.HasPrefix(path, "/proc/self/fd/") {
		stat = syscall.Stat // the descriptor's file, not the link
	}
	if err := stat(path, &st); err != nil {
		return err
	}
	n := &node{kind: st.Mode & syscall.S_IFMT, mode: st.Mode}
	switch n.kind {
	case syscall.S_IFDIR:
		des, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		n.entries = map[string]int{}
		for _, de := range des {
			var cst syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(path, de.Name()), &cst); err != nil {
				return err
			}
			n.entries[de.Name()] = f.idOfIno(cst.Ino)
		}
	case syscall.S_IFREG:
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n.data = b
	case syscall.S_IFLNK:
		t, err := os.Readlink(path)
		if err != nil {
			return err
		}
		n.target = t
	}
	f.nodes[id] = n
	return nil
}

// apply folds o into the durable image; a write keeps only its first
// upto bytes.
func (f *FS) apply(o op, upto int) {
	n := f.nodes[o.id]
	switch o.kind {
	case opWrite:
		end := o.off + int64(upto)
		if int64(len(n.data)) < end {
			n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
		}
		copy(n.data[o.off:end], o.data[:upto])
	case opTrunc:
		if int64(len(n.data)) > o.off {
			n.data = n.data[:o.off]
		} else {
			n.data = append(n.data, make([]byte, o.off-int64(len(n.data)))...)
		}
	case opLink:
		n.entries[o.name] = o.child
	case opUnlink:
		delete(n.entries, o.name)
	case opRename:
		if c, ok := n.entries[o.name]; ok {
			n.entries[o.name2] = c
			delete(n.entries, o.name)
		}
	}
}

// syncNode makes node id's volatile operations durable.
func (f *FS) syncNode(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.log[:0]
	for _, o := range f.log {
		if o.id == id {
			f.apply(o, len(o.data))
		} else {
			kept = append(kept, o)
		}
	}
	f.log = kept
}

// lnode is a loopback node whose changes are logged.
type lnode struct {
	fs.LoopbackNode
	fs *FS
}

func (n *lnode) path() string { return filepath.Join(n.RootData.Path, n.Path(nil)) }

// id is the node's model id (callers hold mu). The root's FUSE inode
// number is 1, not its backing one.
func (n *lnode) id() int {
	if n.IsRoot() {
		var st syscall.Stat_t
		syscall.Lstat(n.RootData.Path, &st)
		return n.fs.idOfIno(st.Ino)
	}
	return n.fs.idOfIno(n.StableAttr().Ino)
}

// dirOp runs change on entry name of this directory under the lock,
// logging the entry operations it returns once it succeeded.
func (n *lnode) dirOp(name string, change func() ([]op, syscall.Errno)) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.track(n.id(), n.path()); err != nil {
		return fs.ToErrno(err)
	}
	ops, errno := change()
	if errno == 0 {
		f.log = append(f.log, ops...)
	}
	return errno
}

// victim prepares for entry p to go: its image is kept (it may come back)
// and, if this was its last name, its inode number is forgotten (the
// backing file system may reuse it).
func (f *FS) victim(p string) (forget func()) {
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil {
		return func() {}
	}
	id := f.idOfIno(st.Ino)
	f.track(id, p)
	return func() {
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR || st.Nlink <= 1 {
			delete(f.live, st.Ino)
		}
	}
}

// created registers a new inode at p, empty in the durable image.
func (f *FS) created(p string) (int, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return 0, err
	}
	delete(f.live, st.Ino)
	id := f.idOfIno(st.Ino)
	n := &node{kind: st.Mode & syscall.S_IFMT, mode: st.Mode}
	if n.kind == syscall.S_IFDIR {
		n.entries = map[string]int{}
	}
	if n.kind == syscall.S_IFLNK {
		n.target, _ = os.Readlink(p)
	}
	f.nodes[id] = n
	return id, nil
}

func (n *lnode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (in *fs.Inode, fh fs.FileHandle, fuseFlags uint32, errno syscall.Errno) {
	p := filepath.Join(n.path(), name)
	var id int
	errno = n.dirOp(name, func() ([]op, syscall.Errno) {
		var ops []op
		existed := false
		if _, err := os.Lstat(p); err == nil {
			existed = true
			n.fs.victim(p) // keeps its image before O_TRUNC
		}
		in, fh, fuseFlags, errno = n.LoopbackNode.Create(ctx, name, flags, mode, out)
		if errno != 0 {
			return nil, errno
		}
		var st syscall.Stat_t
		syscall.Lstat(p, &st)
		if existed {
			id = n.fs.idOfIno(st.Ino)
			if flags&syscall.O_TRUNC != 0 {
				ops = append(ops, op{id: id, kind: opTrunc})
			}
			return ops, 0
		}
		var err error
		if id, err = n.fs.created(p); err != nil {
			return nil, fs.ToErrno(err)
		}
		return []op{{id: n.id(), kind: opLink, name: name, child: id}}, 0
	})
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return in, &file{LoopbackFile: fh.(*fs.LoopbackFile), fs: n.fs, id: id}, fuseFlags, 0
}

func (n *lnode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	id, p := n.id(), n.path()
	if flags&syscall.O_TRUNC != 0 {
		if err := f.track(id, p); err != nil {
			return nil, 0, fs.ToErrno(err)
		}
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		f.log = append(f.log, op{id: id, kind: opTrunc})
	}
	return &file{LoopbackFile: fh.(*fs.LoopbackFile), fs: f, id: id, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}, fuseFlags, 0
}

// createEntry makes a new entry in n with mk and logs its link as a
// volatile operation of the directory.
func (n *lnode) createEntry(name string, mk func() (*fs.Inode, syscall.Errno)) (in *fs.Inode, errno syscall.Errno) {
	errno = n.dirOp(name, func() ([]op, syscall.Errno) {
		if in, errno = mk(); errno != 0 {
			return nil, errno
		}
		id, err := n.fs.created(filepath.Join(n.path(), name))
		if err != nil {
			return nil, fs.ToErrno(err)
		}
		return []op{{id: n.id(), kind: opLink, name: name, child: id}}, 0
	})
	return in, errno
}

func (n *lnode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.createEntry(name, func() (*fs.Inode, syscall.Errno) { return n.LoopbackNode.Mkdir(ctx, name, mode, out) })
}

func (n *lnode) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (in *fs.Inode, errno syscall.Errno) {
	if mode&syscall.S_IFMT != syscall.S_IFIFO && mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, syscall.EPERM
	}
	return n.createEntry(name, func() (*fs.Inode, syscall.Errno) { return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out) })
}

func (n *lnode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.createEntry(name, func() (*fs.Inode, syscall.Errno) { return n.LoopbackNode.Symlink(ctx, target, name, out) })
}

func (n *lnode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (in *fs.Inode, errno syscall.Errno) {
	errno = n.dirOp(name, func() ([]op, syscall.Errno) {
		if in, errno = n.LoopbackNode.Link(ctx, target, name, out); errno != 0 {
			return nil, errno
		}
		p := filepath.Join(n.path(), name)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil, fs.ToErrno(err)
		}
		id := n.fs.idOfIno(st.Ino)
		if err := n.fs.track(id, p); err != nil {
			return nil, fs.ToErrno(err)
		}
		return []op{{id: n.id(), kind: opLink, name: name, child: id}}, 0
	})
	return in, errno
}

func (n *lnode) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.dirOp(name, func() ([]op, syscall.Errno) {
		forget := n.fs.victim(filepath.Join(n.path(), name))
		if errno := n.LoopbackNode.Unlink(ctx, name); errno != 0 {
			return nil, errno
		}
		forget()
		return []op{{id: n.id(), kind: opUnlink, name: name}}, 0
	})
}

func (n *lnode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.dirOp(name, func() ([]op, syscall.Errno) {
		forget := n.fs.victim(filepath.Join(n.path(), name))
		if errno := n.LoopbackNode.Rmdir(ctx, name); errno != 0 {
			return nil, errno
		}
		forget()
		return []op{{id: n.id(), kind: opUnlink, name: name}}, 0
	})
}

func (n *lnode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*lnode)
	if !ok || flags != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and RENAME_NOREPLACE are not modelled
	}
	return n.dirOp(name, func() ([]op, syscall.Errno) {
		f := n.fs
		src, dst := filepath.Join(n.path(), name), filepath.Join(np.path(), newName)
		if err := f.track(np.id(), np.path()); err != nil {
			return nil, fs.ToErrno(err)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(src, &st); err != nil {
			return nil, fs.ToErrno(err)
		}
		child := f.idOfIno(st.Ino)
		forget := func() {}
		var dst0 syscall.Stat_t
		if syscall.Lstat(dst, &dst0) == nil && dst0.Ino != st.Ino {
			forget = f.victim(dst)
		}
		if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
			return nil, errno
		}
		forget()
		if np.id() == n.id() {
			return []op{{id: n.id(), kind: opRename, name: name, name2: newName}}, 0
		}
		return []op{{id: n.id(), kind: opUnlink, name: name}, {id: np.id(), kind: opLink, name: newName, child: child}}, 0
	})
}

func (n *lnode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	id, p := n.id(), n.path()
	if err := f.track(id, p); err != nil {
		return fs.ToErrno(err)
	}
	if lf, ok := fh.(*file); ok {
		fh = lf.LoopbackFile
	}
	if errno := n.LoopbackNode.Setattr(ctx, fh, in, out); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		f.log = append(f.log, op{id: id, kind: opTrunc, off: int64(size)})
	}
	if mode, ok := in.GetMode(); ok {
		nd := f.nodes[id]
		nd.mode = nd.mode&^07777 | mode&07777
	}
	return 0
}

// CopyFileRange is done as a read and a logged write (never in the
// backing file system behind the log's back).
func (n *lnode) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	in, ok1 := fhIn.(*file)
	dst, ok2 := fhOut.(*file)
	if !ok1 || !ok2 {
		return 0, syscall.ENOTSUP
	}
	buf := make([]byte, min(length, 1<<20))
	r, errno := in.LoopbackFile.Read(ctx, buf, int64(offIn))
	if errno != 0 {
		return 0, errno
	}
	b, st := r.Bytes(buf)
	if !st.Ok() {
		return 0, syscall.EIO
	}
	return dst.Write(ctx, b, int64(offOut))
}

func (n *lnode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	n.fs.mu.Lock()
	id := n.id()
	n.fs.mu.Unlock()
	return &dirHandle{FileHandle: fh, fs: n.fs, id: id}, fuseFlags, 0
}

// dirHandle is an open directory whose fsync makes its entries durable.
type dirHandle struct {
	fs.FileHandle
	fs *FS
	id int
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.FileHandle.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.FileHandle.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	d.FileHandle.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	d.fs.syncNode(d.id)
	return 0
}

// file is an open file whose writes are logged and whose fsync makes them
// durable.
type file struct {
	*fs.LoopbackFile
	fs   *FS
	id   int
	sync bool // O_SYNC or O_DSYNC: every write is durable at once
}

// PassthroughFd refuses the kernel's passthrough: every write must come
// here to be logged.
func (f *file) PassthroughFd() (int, bool) { return 0, false }

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return f.Writev(ctx, [][]byte{data}, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	fs_ := f.fs
	fs_.mu.Lock()
	defer fs_.mu.Unlock()
	// The image is read through the descriptor: the file may have been
	// renamed since it was opened.
	if err := fs_.track(f.id, fmt.Sprintf("/proc/self/fd/%d", f.fd())); err != nil {
		return 0, fs.ToErrno(err)
	}
	n, errno := f.LoopbackFile.Writev(ctx, data, off)
	if n > 0 {
		var all []byte
		for _, d := range data {
			all = append(all, d...)
		}
		o := op{id: f.id, kind: opWrite, off: off, data: all[:n]}
		if f.sync {
			fs_.apply(o, len(o.data))
		} else {
			fs_.log = append(fs_.log, o)
		}
	}
	return n, errno
}

func (f *file) fd() int {
	fd, _ := f.LoopbackFile.PassthroughFd()
	return fd
}

// Fsync makes the file's writes durable in the model; the backing file
// system is not asked (its own durability is not what is tested).
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	f.fs.syncNode(f.id)
	return 0
}

func (f *file) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return f.LoopbackFile.Setattr(ctx, in, out)
}

// CleanStale detaches lossyfs mounts whose serving process is gone (a
// test process that died). A live process's mount is never looked at, not
// even stat'ed: that process may be stopped (the power-cut sweep stops a
// run's servers), and a look would wait on it.
func CleanStale() {
	fh, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		i := len(fields) - 3 // fstype, source, options after " - "
		if i < 5 || fields[i] != "fuse.lossyfs" {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(fields[i+1], "lossyfs:"))
		if err != nil || pid <= 0 {
			continue // not one of ours, or from before sources named their server
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its server's process is alive (or its pid reused: left alone)
		}
		unix.Unmount(unescape(fields[4]), unix.MNT_DETACH)
	}
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
