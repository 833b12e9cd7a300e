package steps

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// helpLibrary updates POM's online help from UsingPOM.zip the way the
// release notes do by hand (stop vpms, copy the zip into the library, unzip
// overwriting all, delete the zip, chown avayavp.avayavpgroup, chmod 755,
// start vpms), without a shell and without the copy: it unpacks straight
// from the media. The owner must exist on the host: without it the step
// fails before it changes anything (see owner).
//
// The archive is checked whole before anything is written: an entry that
// would land outside the library, a link, a device, a duplicate or a zip
// bomb gets the whole archive refused. The library is written without ever
// following a symbolic link: one found in it is refused.
//
// Apply converges: files already equal to the archive are not rewritten,
// vpms is stopped only when something must be written, and it is started
// at the end whatever state an earlier attempt left it in. Probe is true
// only when every file and folder of the archive is in place with its
// bytes, mode 755 and owner, no copy of the zip is left in the library and
// the services run.
type helpLibrary struct{ h *Host }

var (
	// errUnsafeArchive marks a help archive refused whole; nothing of it
	// was written.
	errUnsafeArchive = errors.New("refusing the whole archive, nothing was written: copy UsingPOM.zip again from the POM media")
	// errUnsafeLibrary marks a library path that cannot be written
	// without following a link or replacing what is not ours.
	errUnsafeLibrary = errors.New("refusing to write through it")
)

// helpLimits bound what an archive may unpack to. They are checked on the
// headers first and enforced again while reading, so a header that lies
// cannot get past them.
type helpLimits struct {
	entries  int    // entries in the archive
	file     uint64 // unpacked bytes of one entry
	total    uint64 // unpacked bytes of all entries
	ratioMin uint64 // an entry larger than this ...
	ratio    uint64 // ... may not unpack to more than ratio times its packed size
}

// defaultHelpLimits are far above a real library (a few MB, a few hundred
// pages) and far below what would fill a disk.
var defaultHelpLimits = helpLimits{entries: 10_000, file: 64 << 20, total: 512 << 20, ratioMin: 1 << 20, ratio: 200}

// helpMode is what the release notes chmod everything to.
const helpMode = 0o755

// helpEntry is one file or folder of the archive, checked.
type helpEntry struct {
	name string // cleaned slash path inside the library
	raw  string // the name in the archive ("" for a folder only implied by its files)
	dir  bool
	size int64
	sum  [sha256.Size]byte
	zf   *zip.File
}

// label names the entry in messages: as the archive spells it.
func (e helpEntry) label() string {
	if e.raw != "" {
		return e.raw
	}
	return e.name + "/"
}

// helpArchive is an archive that passed every check; it stays open so the
// files are read from the same file that was checked.
type helpArchive struct {
	path  string
	zr    *zip.ReadCloser
	dirs  []helpEntry // explicit and implied, parents first
	files []helpEntry // by name
	names map[string]bool
}

func (a *helpArchive) Close() error { return a.zr.Close() }

// openHelpArchive opens and checks the whole archive. Nothing is written;
// the data of every file is unpacked (into a hash) under the limits.
func openHelpArchive(zipPath string, lim helpLimits) (*helpArchive, error) {
	zr, err := zip.OpenReader(zipPath)
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		// ErrInsecurePath (GODEBUG=zipinsecurepath=0) comes with a usable
		// reader: the checks below name the entry.
		return nil, fmt.Errorf("help library archive %s: %w", zipPath, err)
	}
	a := &helpArchive{path: zipPath, zr: zr, names: map[string]bool{}}
	if err := a.check(lim); err != nil {
		zr.Close()
		return nil, err
	}
	return a, nil
}

func (a *helpArchive) refuse(raw, format string, args ...any) error {
	return fmt.Errorf("help library archive %s: entry %s %s: %w", a.path, entryLabel(raw), fmt.Sprintf(format, args...), errUnsafeArchive)
}

func (a *helpArchive) check(lim helpLimits) error {
	if n := len(a.zr.File); n > lim.entries {
		return a.refuse(a.zr.File[lim.entries].Name, "is number %d of %d: a help library has at most %d entries (zip bomb?)",
			lim.entries+1, n, lim.entries)
	}
	seen := map[string]helpEntry{}
	var entries []helpEntry
	var total uint64
	for _, f := range a.zr.File {
		name, why := helpEntryName(f.Name)
		if why != "" {
			return a.refuse(f.Name, "%s", why)
		}
		mode := f.Mode()
		if t := mode.Type() &^ fs.ModeDir; t != 0 {
			return a.refuse(f.Name, "is a %s, not a file or folder", describeType(mode))
		}
		e := helpEntry{name: name, raw: f.Name, dir: mode.IsDir(), zf: f}
		if name == "." {
			if e.dir {
				continue // "./": the library itself
			}
			return a.refuse(f.Name, "is a file named like the library folder itself")
		}
		if prev, ok := seen[name]; ok {
			if prev.dir != e.dir {
				return a.refuse(f.Name, "and entry %q are a file and a folder of the same name", prev.raw)
			}
			return a.refuse(f.Name, "names the same path as entry %q", prev.raw)
		}
		if e.dir {
			if f.UncompressedSize64 != 0 {
				return a.refuse(f.Name, "is a folder that carries %d bytes", f.UncompressedSize64)
			}
		} else {
			size := f.UncompressedSize64
			if size > lim.file {
				return a.refuse(f.Name, "unpacks to %d bytes, more than the %d one help file may have (zip bomb?)", size, lim.file)
			}
			if total+size > lim.total {
				return a.refuse(f.Name, "brings the archive to more than %d unpacked bytes (zip bomb?)", lim.total)
			}
			total += size
			if size > lim.ratioMin && size/lim.ratio > f.CompressedSize64 {
				return a.refuse(f.Name, "unpacks %d bytes to %d, more than %d:1 (zip bomb?)", f.CompressedSize64, size, lim.ratio)
			}
			e.size = int64(size)
		}
		seen[name] = e
		entries = append(entries, e)
	}
	// Every folder a file or folder lives in must be a folder: a file of
	// that name clashes; a folder with no entry of its own is implied.
	for _, e := range entries {
		for p := path.Dir(e.name); p != "."; p = path.Dir(p) {
			prev, ok := seen[p]
			if !ok {
				seen[p] = helpEntry{name: p, dir: true}
				continue
			}
			if !prev.dir {
				return a.refuse(prev.raw, "is a file, and entry %q needs a folder of that name", e.raw)
			}
		}
	}
	// The data, under the limits: a header that lies about its size is
	// caught here, before anything is written.
	for i, e := range entries {
		if e.dir {
			continue
		}
		sum, err := e.unpack(io.Discard)
		if err != nil {
			return a.refuse(e.raw, "%v", err)
		}
		entries[i].sum = sum
		seen[e.name] = entries[i]
	}
	for name, e := range seen {
		a.names[name] = true
		if e.dir {
			a.dirs = append(a.dirs, e)
		} else {
			a.files = append(a.files, e)
		}
	}
	byName := func(x, y helpEntry) int { return strings.Compare(x.name, y.name) }
	slices.SortFunc(a.dirs, byName) // a parent's name is a prefix of its children's: it sorts first
	slices.SortFunc(a.files, byName)
	if len(a.files) == 0 {
		return fmt.Errorf("help library archive %s holds no files", a.path)
	}
	return nil
}

// unpack copies the entry's data to w and returns its SHA-256, reading at
// most one byte more than the header declares.
func (e helpEntry) unpack(w io.Writer) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	rc, err := e.zf.Open()
	if err != nil {
		return sum, fmt.Errorf("cannot be unpacked: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), io.LimitReader(rc, e.size+1))
	switch {
	case errors.Is(err, zip.ErrFormat) || n > e.size:
		return sum, fmt.Errorf("unpacks to more than the %d bytes its header declares", e.size)
	case errors.Is(err, io.ErrUnexpectedEOF) || (err == nil && n < e.size):
		return sum, fmt.Errorf("unpacks to fewer than the %d bytes its header declares", e.size)
	case errors.Is(err, zip.ErrChecksum):
		return sum, fmt.Errorf("fails its CRC-32 check")
	case err != nil:
		return sum, fmt.Errorf("cannot be unpacked: %w", err)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// read returns the entry's data, proving it is what was checked.
func (a *helpArchive) read(e helpEntry) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(e.size))
	sum, err := e.unpack(&buf)
	if err != nil {
		return nil, fmt.Errorf("help library archive %s: entry %q %v", a.path, e.raw, err)
	}
	if sum != e.sum {
		return nil, fmt.Errorf("help library archive %s: entry %q changed since the archive was checked", a.path, e.raw)
	}
	return buf.Bytes(), nil
}

// helpEntryName cleans an entry's name, or says why it cannot be unpacked
// into the library: archiveEntryName's rules, and no backslash.
func helpEntryName(raw string) (string, string) {
	if strings.Contains(raw, `\`) {
		return "", `uses backslashes: the unzip tool would read them as folders`
	}
	return archiveEntryName(raw)
}

func describeType(m fs.FileMode) string { return securefs.TypeName(m) }

// helpOwner is who the library belongs to. The step always has one (it
// fails without it); a zero helpOwner (ok false) leaves ownership alone and
// is for tests of the unpacking alone.
type helpOwner struct {
	uid, gid int
	ok       bool
}

// maxAccountsFile bounds /etc/passwd and /etc/group: a few kB on a POM
// server.
const maxAccountsFile = 16 << 20

// owner resolves the user and group the release notes chown the library to
// ("chown avayavp.avayavpgroup *"), in the host's /etc/passwd and
// /etc/group under the profile's root: the files os/user reads in a static
// build, and those of a simulated host. Without them the step fails before
// anything is changed, saying what to do: a library owned by whoever runs
// upgrader is not what the release notes make.
func (s helpLibrary) owner(sc orchestrator.StepContext) (helpOwner, error) {
	name, group := sc.Spec.Params["owner"], sc.Spec.Params["group"]
	if name == "" || group == "" {
		return helpOwner{}, errors.New("help library: the step names no owner and group to chown the library to (params owner and group)")
	}
	passwd, groups := s.h.Profile.Path("/etc/passwd"), s.h.Profile.Path("/etc/group")
	uid, uerr := lookupAccountID(passwd, name)
	gid, gerr := lookupAccountID(groups, group)
	for _, err := range []error{uerr, gerr} {
		if err != nil && !errors.Is(err, errNoAccount) {
			return helpOwner{}, fmt.Errorf("help library: looking up the owner %s.%s: %w", name, group, err)
		}
	}
	var missing string
	switch {
	case uerr != nil && gerr != nil:
		missing = fmt.Sprintf("neither user %s nor group %s exists", name, group)
	case uerr != nil:
		missing = fmt.Sprintf("user %s does not exist", name)
	case gerr != nil:
		missing = fmt.Sprintf("group %s does not exist", group)
	default:
		return helpOwner{uid: uid, gid: gid, ok: true}, nil
	}
	return helpOwner{}, fmt.Errorf("help library: %s on this host (%s, %s); the release notes end the update with "+
		"\"chown %s.%s *\", so upgrader does not update the library without that owner; nothing was changed. "+
		"Create the account (Experience Portal's installation makes it), then upgrader retry; "+
		"or leave the library as it is: upgrader skip help-library --reason \"...\" (the step is optional)",
		missing, s.h.Profile.Unroot(passwd), s.h.Profile.Unroot(groups), name, group)
}

// errNoAccount: the name is not in the accounts file, or there is none.
var errNoAccount = errors.New("no such account")

// lookupAccountID finds name in a passwd or group file (name:x:id:...) and
// returns its numeric id (the third field).
func lookupAccountID(file, name string) (int, error) {
	data, err := securefs.ReadRegular(file, maxAccountsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errNoAccount
	}
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		fields := strings.Split(strings.TrimRight(line, "\r\n"), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		id, err := strconv.Atoi(fields[2])
		if err != nil || id < 0 {
			return 0, fmt.Errorf("%s: %s has the id %q, not a number", file, name, fields[2])
		}
		return id, nil
	}
	return 0, errNoAccount
}

// attrsOK says whether st has mode 755 (no setuid, setgid or sticky bit)
// and, when it is known, the owner.
func (o helpOwner) attrsOK(st fs.FileInfo) bool {
	if st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != helpMode {
		return false
	}
	if !o.ok {
		return true
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == o.uid && int(sys.Gid) == o.gid
}

func (s helpLibrary) dir(sc orchestrator.StepContext) string {
	return s.h.Profile.Path(sc.Spec.Params["dir"])
}

func (s helpLibrary) open(sc orchestrator.StepContext) (*helpArchive, error) {
	return openHelpArchive(s.h.Profile.Path(sc.Spec.Params["zip"]), defaultHelpLimits)
}

// helpDrift is how the library differs from the archive.
type helpDrift struct {
	noLibrary bool        // the library folder itself is missing
	dirs      []helpEntry // folders missing, or with the wrong mode or owner
	newDirs   int         // how many of dirs are missing
	files     []helpEntry // files missing or with other bytes
	attrs     []helpEntry // files with the right bytes and the wrong mode or owner
	zipCopy   string      // a copy of the zip left in the library ("" if none)
}

// writes says whether the library's content must change: the services
// are stopped for that, not for a mode, an owner or a leftover zip.
func (d helpDrift) writes() bool { return d.noLibrary || d.newDirs > 0 || len(d.files) > 0 }

func (d helpDrift) inPlace() bool {
	return !d.writes() && len(d.dirs) == 0 && len(d.attrs) == 0 && d.zipCopy == ""
}

func (d helpDrift) String() string {
	var out []string
	if d.noLibrary {
		out = append(out, "the library folder is missing")
	}
	if len(d.files) > 0 {
		out = append(out, fmt.Sprintf("files that differ from the archive: %d (e.g. %s)", len(d.files), d.files[0].name))
	}
	if len(d.dirs) > 0 {
		out = append(out, fmt.Sprintf("folders missing or not mode 755 with the right owner: %d (e.g. %s)", len(d.dirs), d.dirs[0].name))
	}
	if len(d.attrs) > 0 {
		out = append(out, fmt.Sprintf("files not mode 755 with the right owner: %d (e.g. %s)", len(d.attrs), d.attrs[0].name))
	}
	if d.zipCopy != "" {
		out = append(out, d.zipCopy+" is left in the library")
	}
	return strings.Join(out, "; ")
}

func unsafeLibrary(p, format string, args ...any) error {
	return fmt.Errorf("help library: %s %s: %w", p, fmt.Sprintf(format, args...), errUnsafeLibrary)
}

// lstatKind is Lstat that refuses a symbolic link and anything that is
// not of the kind wanted. It returns nil info when p does not exist.
func lstatKind(p string, dir bool) (fs.FileInfo, error) {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return nil, unsafeLibrary(p, "is a symbolic link (to %s)", target)
	case dir && !st.IsDir():
		return nil, unsafeLibrary(p, "is a %s where the archive has a folder", kindOf(st.Mode()))
	case !dir && !st.Mode().IsRegular():
		return nil, unsafeLibrary(p, "is a %s where the archive has a file", kindOf(st.Mode()))
	}
	return st, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m.IsRegular():
		return "file"
	}
	return describeType(m)
}

// checkChain proves every folder from the library down to (not including)
// rel is a real folder, or missing: none is a link.
func checkChain(lib, rel string) error {
	if _, err := lstatKind(lib, true); err != nil {
		return err
	}
	p := lib
	for _, part := range strings.Split(path.Dir(rel), "/") {
		if part == "." {
			break
		}
		p = filepath.Join(p, part)
		st, err := lstatKind(p, true)
		if err != nil || st == nil {
			return err
		}
	}
	return nil
}

// inspect compares the library with the archive without changing it.
func (s helpLibrary) inspect(lib string, a *helpArchive, own helpOwner) (helpDrift, error) {
	var d helpDrift
	st, err := lstatKind(lib, true)
	if err != nil {
		return d, err
	}
	if st == nil {
		d.noLibrary = true
		d.dirs, d.newDirs, d.files = a.dirs, len(a.dirs), a.files
		return d, nil
	}
	// Folders first, parents before children: a link is found before
	// anything is looked up through it.
	for _, e := range a.dirs {
		p := filepath.Join(lib, filepath.FromSlash(e.name))
		st, err := lstatKind(p, true)
		switch {
		case err != nil:
			return d, err
		case st == nil:
			d.dirs = append(d.dirs, e)
			d.newDirs++
		case !own.attrsOK(st):
			d.dirs = append(d.dirs, e)
		}
	}
	for _, e := range a.files {
		p := filepath.Join(lib, filepath.FromSlash(e.name))
		st, err := lstatKind(p, false)
		if err != nil {
			return d, err
		}
		if st == nil {
			d.files = append(d.files, e)
			continue
		}
		same, err := sameContent(p, e)
		switch {
		case err != nil:
			return d, err
		case !same:
			d.files = append(d.files, e)
		case !own.attrsOK(st):
			d.attrs = append(d.attrs, e)
		}
	}
	base := filepath.Base(a.path)
	if !a.names[base] {
		p := filepath.Join(lib, base)
		// Not when the library is where the media is: that is the archive.
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			if src, err := os.Stat(a.path); err != nil || !os.SameFile(st, src) {
				d.zipCopy = p
			}
		}
	}
	return d, nil
}

// openNoFollow opens p for reading without following a link and without
// blocking on a fifo, and checks it is of the kind wanted.
func openNoFollow(p string, dir bool) (*os.File, fs.FileInfo, error) {
	flag := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if dir {
		flag |= syscall.O_DIRECTORY
	}
	f, err := os.OpenFile(p, flag, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, unsafeLibrary(p, "is a symbolic link")
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && ((dir && !st.IsDir()) || (!dir && !st.Mode().IsRegular())) {
		want := "file"
		if dir {
			want = "folder"
		}
		err = unsafeLibrary(p, "is a %s, not a %s", kindOf(st.Mode()), want)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// sameContent says whether the file at p holds exactly the entry's bytes.
func sameContent(p string, e helpEntry) (bool, error) {
	f, st, err := openNoFollow(p, false)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if st.Size() != e.size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, e.size+1)); err != nil {
		return false, err
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum == e.sum, nil
}

// fixAttrs gives p mode 755 and, when known, the owner, through a
// descriptor opened without following a link.
func fixAttrs(p string, dir bool, own helpOwner) error {
	f, st, err := openNoFollow(p, dir)
	if errors.Is(err, fs.ErrPermission) && !dir {
		// Not root and the file is not readable: only a regular file
		// (checked just now, with Lstat) gets its mode set by name.
		if _, lerr := lstatKind(p, false); lerr != nil {
			return lerr
		}
		if err := os.Chmod(p, helpMode); err != nil {
			return err
		}
		f, st, err = openNoFollow(p, dir)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if own.ok {
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != own.uid || int(sys.Gid) != own.gid {
			if err := f.Chown(own.uid, own.gid); err != nil {
				return err
			}
		}
	}
	// Mode last: chown may clear setuid and setgid bits.
	if st.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != helpMode {
		if err := f.Chmod(helpMode); err != nil {
			return err
		}
	}
	return nil
}

// mkdirOne makes one folder whose parent is known to be a real folder,
// and proves what is there afterwards is a folder, not a link.
func mkdirOne(p string) error {
	st, err := lstatKind(p, true)
	if err != nil || st != nil {
		return err
	}
	if err := os.Mkdir(p, helpMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if st, err = lstatKind(p, true); err == nil && st == nil {
		err = fmt.Errorf("help library: %s vanished after it was made", p)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// isTempOf says whether name is a temp file WriteFileAtomic leaves behind
// when it is interrupted while writing base.
func isTempOf(name, base string) bool {
	rest, ok := strings.CutPrefix(name, "."+base+".tmp-")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// removeTemps removes the temp files an interrupted write of an archive
// file left behind; nothing else is touched.
func removeTemps(lib string, a *helpArchive) error {
	byDir := map[string][]string{}
	for _, e := range a.files {
		byDir[path.Dir(e.name)] = append(byDir[path.Dir(e.name)], path.Base(e.name))
	}
	for dir, bases := range byDir {
		p := filepath.Join(lib, filepath.FromSlash(dir))
		if err := checkChain(lib, path.Join(dir, "x")); err != nil {
			return err
		}
		if st, err := lstatKind(p, true); err != nil || st == nil {
			return err
		}
		list, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, de := range list {
			for _, base := range bases {
				if isTempOf(de.Name(), base) && !de.IsDir() {
					if err := os.Remove(filepath.Join(p, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
			}
		}
	}
	return nil
}

func (s helpLibrary) Probe(ctx context.Context, sc orchestrator.StepContext) (bool, error) {
	own, err := s.owner(sc)
	if err != nil {
		return false, err
	}
	a, err := s.open(sc)
	if err != nil {
		return false, err
	}
	defer a.Close()
	d, err := s.inspect(s.dir(sc), a, own)
	if err != nil || !d.inPlace() {
		return false, err
	}
	// Without the services running the update is not done: a run that
	// stopped after unpacking must still start them.
	return services{h: s.h, want: serviceRunning}.Probe(ctx, sc)
}

func (s helpLibrary) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	own, err := s.owner(sc)
	if err != nil {
		return err
	}
	a, err := s.open(sc)
	if err != nil {
		return err
	}
	defer a.Close()
	lib := s.dir(sc)
	d, err := s.inspect(lib, a, own)
	if err != nil {
		return err
	}
	if d.writes() {
		if err := (services{h: s.h, want: serviceStopped}).Apply(ctx, sc); err != nil {
			return err
		}
	}
	if err := a.install(lib, d, own, sc.Progress); err != nil {
		return err
	}
	if d.writes() || len(d.dirs) > 0 || len(d.attrs) > 0 || d.zipCopy != "" {
		sc.Log.Info().Int("written", len(d.files)).Int("folders", len(d.dirs)).Int("fixed", len(d.attrs)).
			Bool("zip_copy_removed", d.zipCopy != "").Msg("help library updated")
	}
	return (services{h: s.h, want: serviceRunning}).Apply(ctx, sc)
}

// install makes the library what the archive holds, given how it differs
// (d, from inspect): folders parents first, files through a temp file and
// a rename, modes and owners, the temp files of an interrupted write and
// a leftover copy of the zip removed. Nothing is written through a link.
func (a *helpArchive) install(lib string, d helpDrift, own helpOwner, progress orchestrator.Progress) error {
	if d.noLibrary {
		if err := mkdirAllDurable(filepath.Dir(lib), 0o755); err != nil {
			return err
		}
		if err := mkdirOne(lib); err != nil {
			return err
		}
		if err := fixAttrs(lib, true, own); err != nil {
			return err
		}
	}
	for _, e := range d.dirs {
		p := filepath.Join(lib, filepath.FromSlash(e.name))
		if err := checkChain(lib, e.name); err != nil {
			return err
		}
		if err := mkdirOne(p); err != nil {
			return err
		}
		if err := fixAttrs(p, true, own); err != nil {
			return err
		}
	}
	total := int64(len(d.files) + len(d.attrs))
	for i, e := range d.files {
		p := filepath.Join(lib, filepath.FromSlash(e.name))
		data, err := a.read(e)
		if err != nil {
			return err
		}
		if err := checkChain(lib, e.name); err != nil {
			return err
		}
		if _, err := lstatKind(p, false); err != nil {
			return err
		}
		// A rename replaces a link rather than follows it; one is refused
		// just above all the same.
		if err := WriteFileAtomic(p, data, helpMode); err != nil {
			return err
		}
		if err := fixAttrs(p, false, own); err != nil {
			return err
		}
		if progress != nil {
			progress("help library", int64(i+1), total)
		}
	}
	for i, e := range d.attrs {
		p := filepath.Join(lib, filepath.FromSlash(e.name))
		if err := checkChain(lib, e.name); err != nil {
			return err
		}
		if err := fixAttrs(p, false, own); err != nil {
			return err
		}
		if progress != nil {
			progress("help library", int64(len(d.files)+i+1), total)
		}
	}
	if err := removeTemps(lib, a); err != nil {
		return err
	}
	if d.zipCopy != "" {
		// Left by an earlier manual attempt: the notes delete it. Remove
		// does not follow a link.
		if err := os.Remove(d.zipCopy); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Durable: a power cut must not bring it back.
		if err := syncDir(filepath.Dir(d.zipCopy)); err != nil {
			return err
		}
	}
	return nil
}

func (s helpLibrary) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	own, err := s.owner(sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	a, err := s.open(sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	defer a.Close()
	d, err := s.inspect(s.dir(sc), a, own)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if !d.inPlace() {
		return orchestrator.Outputs{}, fmt.Errorf("help library %s is not the archive's: %s", s.dir(sc), d)
	}
	out, err := services{h: s.h, want: serviceRunning}.Verify(ctx, sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	out.Values["files"] = strconv.Itoa(len(a.files))
	out.Values["folders"] = strconv.Itoa(len(a.dirs))
	return out, nil
}
