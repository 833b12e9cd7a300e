package steps

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"unicode/utf8"
)

// The checks of archives unpacked on this host: the help library's zip,
// which upgrader unpacks itself, and the PC migration's tar.gz backup,
// which the vendor's restore tool unpacks as root. Both refuse an entry
// whose name would land outside the folder it is unpacked into, with the
// same rules (archiveEntryName).

// archiveEntryName cleans an archive entry's name (slash separated, a
// trailing slash for a folder), or says why it cannot be unpacked inside
// the folder it is unpacked into. A clean name is relative, has no ".."
// and no empty or "." component, and is "." for the folder itself.
func archiveEntryName(raw string) (string, string) {
	if raw == "" {
		return "", "has an empty name"
	}
	if len(raw) > 1024 {
		return "", "has a name longer than 1024 bytes"
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			if r == 0 {
				return "", "has a NUL byte in its name"
			}
			return "", fmt.Sprintf("has a control character (%U) in its name", r)
		}
	}
	if !utf8.ValidString(raw) {
		return "", "has a name that is not valid UTF-8"
	}
	if strings.HasPrefix(raw, "/") {
		return "", "is an absolute path: it would land outside the folder it is unpacked into"
	}
	trimmed := strings.TrimSuffix(raw, "/")
	for _, part := range strings.Split(trimmed, "/") {
		if part == ".." {
			return "", "climbs out of its folder with ..: it would land outside the folder it is unpacked into"
		}
		if len(part) > 255 {
			return "", "has a path component longer than 255 bytes"
		}
	}
	// The drive letter is looked for after cleaning too: "./C:" is "C:".
	clean := path.Clean(trimmed)
	for _, name := range []string{raw, clean} {
		if len(name) >= 2 && name[1] == ':' && (name[0]|0x20 >= 'a' && name[0]|0x20 <= 'z') {
			return "", "starts with a drive letter"
		}
	}
	return clean, ""
}

// entryLabel quotes an entry's name for a message, cut short when it is
// long enough to drown the message.
func entryLabel(raw string) string {
	const most = 200
	if len(raw) <= most {
		return fmt.Sprintf("%q", raw)
	}
	return fmt.Sprintf("%q... (%d bytes)", raw[:most], len(raw))
}

// backupLimits bound what a PC data backup may unpack to: far above the
// data of a dialer, far below what fills a disk or takes a day to list.
type backupLimits struct {
	entries  int    // entries in the archive
	file     int64  // bytes of one file
	total    int64  // bytes of all files
	totalWhy string // what total is
	trailer  int64  // bytes after the archive's end
}

var defaultBackupLimits = backupLimits{entries: 1_000_000, file: 64 << 30, total: 1 << 40,
	totalWhy: "upgrader's limit for a PC backup", trailer: 1 << 20}

// errUnsafeBackup marks a PC backup refused before the restore tool ran.
var errUnsafeBackup = errors.New("nothing was restored: list it with tar -tvzf, fix the data on the old server and back it up again")

// backupEntry is one checked entry of a backup.
type backupEntry struct {
	name, raw string // cleaned and as the archive spells it
	kind      byte   // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	link      string // a link's target, as the archive spells it
	index     int
}

// backupListing is what the check found in a backup that passed it.
type backupListing struct {
	files, dirs, links int
	bytes              int64
}

// checkBackupTar lists the gzip-compressed tar at file with archive/tar,
// reading it to the end, and refuses what the restore tool must not be
// given: names outside the folder it is restored into, links that point
// out of it or that other entries are written through, hard links to
// anything but an earlier file of the archive, devices, fifos and other
// special entries, setuid and setgid files, the same path twice, a damaged
// or cut short archive, and more entries or bytes than lim allows.
func checkBackupTar(file string, lim backupLimits) (backupListing, error) {
	var out backupListing
	refuse := func(raw, format string, args ...any) error {
		return fmt.Errorf("PC backup %s: entry %s %s: %w", file, entryLabel(raw), fmt.Sprintf(format, args...), errUnsafeBackup)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("PC backup %s %s: %w", file, fmt.Sprintf(format, args...), errUnsafeBackup)
	}
	f, err := os.Open(file)
	if err != nil {
		return out, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return out, damaged("is not gzip-compressed (%v)", err)
	}
	tr := tar.NewReader(gz)
	seen := map[string]backupEntry{}
	var entries []backupEntry
	for n := 1; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			// ErrInsecurePath (GODEBUG=tarinsecurepath=0) comes with the
			// header: the checks below name the entry.
			return out, damaged("cannot be read after %d entries (%v): it is damaged, cut short or not a tar archive", len(entries), err)
		}
		if n > lim.entries {
			return out, refuse(hdr.Name, "is number %d: a PC backup has at most %d entries", n, lim.entries)
		}
		name, why := archiveEntryName(hdr.Name)
		if why != "" {
			return out, refuse(hdr.Name, "%s", why)
		}
		e := backupEntry{name: name, raw: hdr.Name, kind: hdr.Typeflag, link: hdr.Linkname, index: len(entries)}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			e.kind = tar.TypeReg
			switch {
			case hdr.Size > lim.file:
				return out, refuse(hdr.Name, "is %d bytes, more than the %d one file of a PC backup may have", hdr.Size, lim.file)
			case hdr.Size > lim.total-out.bytes:
				return out, refuse(hdr.Name, "brings the backup to more than %d bytes unpacked, %s", lim.total, lim.totalWhy)
			}
			out.bytes += hdr.Size
			out.files++
		case tar.TypeDir:
			out.dirs++
		case tar.TypeSymlink, tar.TypeLink:
			out.links++
		case tar.TypeXGlobalHeader:
			continue // pax defaults for what follows, no file
		default:
			return out, refuse(hdr.Name, "is a %s: a PC backup holds only files, folders and links", tarTypeName(hdr.Typeflag))
		}
		if hdr.Mode&(0o4000|0o2000) != 0 && e.kind != tar.TypeDir {
			return out, refuse(hdr.Name, "has the setuid or setgid bit (mode %o): a data backup carries no program that runs as its owner", hdr.Mode)
		}
		if name == "." {
			if e.kind == tar.TypeDir {
				continue // "./": the folder itself
			}
			return out, refuse(hdr.Name, "is a %s named like the folder it is restored into", tarTypeName(hdr.Typeflag))
		}
		if prev, ok := seen[name]; ok && !(prev.kind == tar.TypeDir && e.kind == tar.TypeDir) {
			return out, refuse(hdr.Name, "names the same path as entry %q: the second would replace the first", prev.raw)
		}
		// Read the data now: a backup cut short names the entry.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return out, refuse(hdr.Name, "cannot be read (%v): the backup is damaged or cut short", err)
		}
		seen[name] = e
		entries = append(entries, e)
	}
	// What follows the archive's end is read too: the gzip checksum is
	// at the very end.
	if n, err := io.Copy(io.Discard, io.LimitReader(gz, lim.trailer+1)); err != nil {
		return out, damaged("is damaged after the end of the archive (%v)", err)
	} else if n > lim.trailer {
		return out, damaged("carries more than %d bytes after the end of the archive", lim.trailer)
	}
	if len(entries) == 0 {
		return out, damaged("holds no entries")
	}
	// With every name known: nothing is written through a link, nothing
	// lives in a file, links stay inside.
	for _, e := range entries {
		if err := backupParents(e.name, e.raw, seen, refuse); err != nil {
			return out, err
		}
		switch e.kind {
		case tar.TypeSymlink:
			if err := backupSymlink(e, seen, refuse); err != nil {
				return out, err
			}
		case tar.TypeLink:
			target, why := archiveEntryName(e.link)
			if why != "" {
				return out, refuse(e.raw, "is a hard link to %q, which %s", e.link, why)
			}
			if t, ok := seen[target]; !ok || t.kind != tar.TypeReg || t.index > e.index {
				return out, refuse(e.raw, "is a hard link to %q, which is not a file earlier in the backup", e.link)
			}
			if err := backupParents(target, e.raw, seen, refuse); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// backupParents refuses name when a folder it lives in is a link or a
// file of the archive: the entry would be written through the link.
func backupParents(name, raw string, seen map[string]backupEntry, refuse func(string, string, ...any) error) error {
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		switch prev, ok := seen[p]; {
		case !ok || prev.kind == tar.TypeDir:
		case prev.kind == tar.TypeSymlink:
			return refuse(raw, "lies under entry %q, a link: it would be written through the link", prev.raw)
		default:
			return refuse(raw, "lies under entry %q, which is a file, not a folder", prev.raw)
		}
	}
	return nil
}

// backupSymlink refuses a symbolic link whose target is absolute, climbs
// out of the folder the backup is restored into, or goes through another
// link of the archive (which could take a ".." after it anywhere).
func backupSymlink(e backupEntry, seen map[string]backupEntry, refuse func(string, string, ...any) error) error {
	switch {
	case e.link == "":
		return refuse(e.raw, "is a link to nothing")
	case strings.HasPrefix(e.link, "/"):
		return refuse(e.raw, "is a link to the absolute path %q: it would point outside the restored data", e.link)
	}
	for _, r := range e.link {
		if r < 0x20 || r == 0x7f {
			return refuse(e.raw, "is a link whose target has a control character (%U)", r)
		}
	}
	var at []string
	if dir := path.Dir(e.name); dir != "." {
		at = strings.Split(dir, "/")
	}
	parts := strings.Split(e.link, "/")
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return refuse(e.raw, "is a link to %q, which climbs out of the folder the backup is restored into", e.link)
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, part)
		if prev, ok := seen[strings.Join(at, "/")]; ok && prev.kind == tar.TypeSymlink && i < len(parts)-1 {
			return refuse(e.raw, "is a link to %q, which goes through entry %q, another link", e.link, prev.raw)
		}
	}
	return nil
}

// tarTypeName names a tar entry type in messages.
func tarTypeName(t byte) string {
	switch t {
	case tar.TypeReg, tar.TypeGNUSparse:
		return "file"
	case tar.TypeDir:
		return "folder"
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "named pipe"
	case tar.TypeCont:
		return "contiguous file"
	}
	return fmt.Sprintf("special entry (tar type %q)", t)
}
