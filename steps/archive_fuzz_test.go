package steps

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzArchiveEntryName checks the name rule the help library and the PC
// backup share: an accepted name is clean, relative, free of ".." and of
// control characters, lands inside any root it is joined to, and is
// accepted again as itself; a refused name says why.
// Seeds are in testdata/fuzz/FuzzArchiveEntryName.
func FuzzArchiveEntryName(f *testing.F) {
	for _, s := range []string{"index.html", "topics/", "./a//b/", "../x", "/etc/passwd", "a/../b", "C:/x", "a\x00b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		clean, why := archiveEntryName(raw)
		if why != "" {
			if clean != "" {
				t.Fatalf("refused (%s) but cleaned to %q", why, clean)
			}
			return
		}
		if clean == "" || path.Clean(clean) != clean || path.IsAbs(clean) {
			t.Fatalf("%q cleaned to %q", raw, clean)
		}
		for _, part := range strings.Split(clean, "/") {
			if part == ".." || part == "" {
				t.Fatalf("%q cleaned to %q, with a %q component", raw, clean, part)
			}
		}
		for _, r := range clean {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("%q cleaned to %q, with control character %U", raw, clean, r)
			}
		}
		for _, root := range []string{"/srv/lib", "/"} {
			if p := filepath.Join(root, clean); p != root && !strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/") {
				t.Fatalf("%q lands at %s, outside %s", raw, p, root)
			}
		}
		if again, why := archiveEntryName(clean); again != clean || why != "" {
			t.Fatalf("%q cleaned to %q, which cleans to %q (%s)", raw, clean, again, why)
		}
	})
}

// fuzzZipEntry is one entry of a zip built from fuzz input.
type fuzzZipEntry struct {
	name string
	mode fs.FileMode
	data []byte
}

// fuzzLine is one entry described by fuzz input: a line whose first byte
// is the kind and the rest the name, "name>target" for a link.
type fuzzLine struct {
	kind         byte
	name, target string
	line         string // the whole line: a file's content
}

// fuzzLines reads at most most entries from fuzz input, one per line.
func fuzzLines(desc string, most int) []fuzzLine {
	var out []fuzzLine
	for _, line := range strings.Split(desc, "\n") {
		if line == "" || len(out) == most {
			continue
		}
		l := fuzzLine{kind: line[0], name: line[1:], line: line}
		if l.kind == 'l' || l.kind == 'h' {
			l.name, l.target, _ = strings.Cut(l.name, ">")
		}
		out = append(out, l)
	}
	return out
}

// fuzzZipEntries reads a zip's entries from fuzz input (fuzzLines): d
// folder, l symlink, c character device, p fifo, anything else a file.
func fuzzZipEntries(desc string) []fuzzZipEntry {
	var out []fuzzZipEntry
	for _, l := range fuzzLines(desc, 64) {
		e := fuzzZipEntry{name: l.name, data: []byte(l.line)}
		switch l.kind {
		case 'd':
			e.mode, e.data = fs.ModeDir|0o755, nil
		case 'l':
			e.mode, e.data = fs.ModeSymlink|0o777, []byte(l.target)
		case 'c':
			e.mode, e.data = fs.ModeDevice|fs.ModeCharDevice|0o666, nil
		case 'p':
			e.mode, e.data = fs.ModeNamedPipe|0o644, nil
		}
		out = append(out, e)
	}
	return out
}

// FuzzHelpArchive builds a zip from fuzz input (see fuzzZipEntries) and
// unpacks it as the help-library step does, into root/lib with a file
// outside it. Whatever the names and kinds: a refusal writes nothing;
// an accepted archive writes only inside the library, never a link, every
// file with the archive's bytes and mode 755, and a second pass finds
// everything in place.
// Seeds are in testdata/fuzz/FuzzHelpArchive.
func FuzzHelpArchive(f *testing.F) {
	for _, s := range []string{
		"findex.html\ndtopics/\nftopics/dnc.html",
		"f../../outside/secret",
		"ltopics>../../outside\nftopics/secret",
		"f/tmp/evil\ncdev/null",
	} {
		f.Add(s)
	}
	lim := helpLimits{entries: 64, file: 1 << 16, total: 1 << 20, ratioMin: 1 << 10, ratio: 200}
	f.Fuzz(func(t *testing.T, desc string) {
		dir := t.TempDir()
		root, lib, outside := filepath.Join(dir, "root"), filepath.Join(dir, "root", "lib"), filepath.Join(dir, "outside")
		writeFile(t, filepath.Join(outside, "secret"), []byte("secret"), 0o600)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		zipPath := filepath.Join(dir, "UsingPOM.zip")
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		entries := fuzzZipEntries(desc)
		for _, e := range entries {
			fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
			fh.SetMode(e.mode)
			w, err := zw.CreateHeader(fh)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(e.data) // a folder takes none: refused by the writer
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		writeFile(t, zipPath, buf.Bytes(), 0o644)
		before := snapshot(t, dir, false)

		a, err := openHelpArchive(zipPath, lim)
		if err != nil {
			if !errors.Is(err, errUnsafeArchive) && !strings.Contains(err.Error(), "holds no files") {
				t.Fatalf("refused without saying it is unsafe: %v", err)
			}
			if d := snapshotDiff(before, snapshot(t, dir, false)); d != "" {
				t.Fatalf("a refused archive changed the disk:\n%s", d)
			}
			return
		}
		defer a.Close()
		for _, e := range append(append([]helpEntry(nil), a.dirs...), a.files...) {
			if clean, why := archiveEntryName(e.name); clean != e.name || why != "" {
				t.Fatalf("accepted entry %q as %q (%s)", e.raw, e.name, why)
			}
		}
		d, err := helpLibrary{}.inspect(lib, a, helpOwner{})
		if err != nil {
			t.Fatalf("inspect: %v", err)
		}
		if err := a.install(lib, d, helpOwner{}, nil); err != nil {
			t.Fatalf("install: %v", err)
		}
		want := map[string][]byte{}
		for _, e := range entries {
			if e.mode == 0 {
				clean, _ := archiveEntryName(e.name)
				want[clean] = e.data
			}
		}
		after := snapshot(t, dir, false)
		for p, desc := range after {
			if _, ok := before[p]; ok {
				if before[p] != desc && p != root {
					t.Errorf("changed outside the library: %s", p)
				}
				continue
			}
			if p != lib && !strings.HasPrefix(p, lib+"/") {
				t.Errorf("written outside the library: %s", p)
			}
			if strings.Contains(desc, " -> ") {
				t.Errorf("a link in the library: %s %s", p, desc)
			}
		}
		for _, e := range a.files {
			p := filepath.Join(lib, filepath.FromSlash(e.name))
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, want[e.name]) {
				t.Errorf("%s holds %q (%v), want %q", e.name, got, err, want[e.name])
			}
			if st, err := os.Lstat(p); err != nil || st.Mode() != helpMode {
				t.Errorf("%s: mode %v (%v)", e.name, st.Mode(), err)
			}
		}
		if d, err := (helpLibrary{}).inspect(lib, a, helpOwner{}); err != nil || !d.inPlace() {
			t.Fatalf("after install, not in place: %v %v", d, err)
		}
	})
}

// fuzzTarEntries reads a backup's entries from fuzz input (fuzzLines): d
// folder, l symlink, h hard link, c character device, p fifo, s setuid
// file, anything else a file.
func fuzzTarEntries(desc string) []tarEnt {
	var out []tarEnt
	for _, l := range fuzzLines(desc, 32) {
		e := tarEnt{name: l.name, link: l.target}
		switch l.kind {
		case 'd':
			e.typ = tar.TypeDir
		case 'l':
			e.typ = tar.TypeSymlink
		case 'h':
			e.typ = tar.TypeLink
		case 'c':
			e.typ = tar.TypeChar
		case 'p':
			e.typ = tar.TypeFifo
		case 's':
			e.mode, e.data = 0o4755, l.line
		default:
			e.data = l.line
		}
		out = append(out, e)
	}
	return out
}

// resolveIn follows rel from root through the folders and links on disk,
// as a tar that follows every link would (the last one too when
// followLast), and returns where it lands and whether that is inside
// root. It never writes; ok is false on a loop.
func resolveIn(root, rel string, followLast bool) (at string, inside, ok bool) {
	within := func(p string) bool { return p == root || strings.HasPrefix(p, root+"/") }
	cur := root
	parts := strings.Split(rel, "/")
	for hops := 0; len(parts) > 0; {
		part := parts[0]
		parts = parts[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if cur = filepath.Dir(cur); !within(cur) {
				return cur, false, true
			}
			continue
		}
		next := filepath.Join(cur, part)
		st, err := os.Lstat(next)
		if err == nil && st.Mode()&fs.ModeSymlink != 0 && (len(parts) > 0 || followLast) {
			if hops++; hops > 40 {
				return next, true, false
			}
			target, _ := os.Readlink(next)
			if filepath.IsAbs(target) {
				return target, false, true
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		cur = next
	}
	return cur, within(cur), true
}

// FuzzCheckBackupTar builds a backup from fuzz input (see fuzzTarEntries)
// and lists it with checkBackupTar. When it is accepted, it is unpacked
// the worst way a restore tool running as root could: following every
// link, the last one of a file's path too. Property: no entry of an
// accepted backup lands outside the folder it is restored into, and no
// link it leaves there leads outside. (The unpacking stops before any
// write that would land outside: the property fails first.)
// Seeds are in testdata/fuzz/FuzzCheckBackupTar.
func FuzzCheckBackupTar(f *testing.F) {
	for _, s := range []string{
		"ddata/\nfdata/a\nletc>../data\nhdata/b>data/a",
		"ldata/x>../..\nfdata/x/evil",
		"ldata/a>..\nldata/b>a/../..",
		"fdata/../../evil\nl/abs>/etc",
	} {
		f.Add(s)
	}
	lim := backupLimits{entries: 64, file: 1 << 16, total: 1 << 20, totalWhy: "fuzz", trailer: 1 << 10}
	f.Fuzz(func(t *testing.T, desc string) {
		dir := t.TempDir()
		root := filepath.Join(dir, "home")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		var ents []tarEnt
		for _, e := range fuzzTarEntries(desc) {
			hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: cmp.Or(e.mode, 0o644), Size: int64(len(e.data))}
			if hdr.Typeflag == 0 {
				hdr.Typeflag = tar.TypeReg
			}
			if tw.WriteHeader(hdr) != nil {
				continue // what the tar writer cannot write is no test
			}
			tw.Write([]byte(e.data))
			ents = append(ents, e)
		}
		tw.Close()
		gz.Close()
		backup := filepath.Join(dir, "backup.tar.gz")
		writeFile(t, backup, buf.Bytes(), 0o600)
		if _, err := checkBackupTar(backup, lim); err != nil {
			if !errors.Is(err, errUnsafeBackup) {
				t.Fatalf("refused without saying so: %v", err)
			}
			return
		}
		for _, e := range ents {
			last := e.typ != tar.TypeSymlink && e.typ != tar.TypeLink
			at, inside, ok := resolveIn(root, e.name, last)
			if !ok {
				continue // a loop: the tool fails on it, writes nothing
			}
			if !inside {
				t.Fatalf("entry %q of an accepted backup lands at %s, outside %s", e.name, at, root)
			}
			if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
				continue // a file where a folder goes: the tool fails on it
			}
			switch e.typ {
			case tar.TypeDir:
				os.MkdirAll(at, 0o755)
			case tar.TypeSymlink:
				os.RemoveAll(at)
				os.Symlink(e.link, at)
			case tar.TypeLink:
				src, inside, ok := resolveIn(root, e.link, false)
				if ok && !inside {
					t.Fatalf("hard link %q of an accepted backup links to %s, outside %s", e.name, src, root)
				}
				os.RemoveAll(at)
				os.Link(src, at)
			default:
				os.WriteFile(at, []byte(e.data), 0o644)
			}
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink != 0 {
				rel, _ := filepath.Rel(root, p)
				if at, inside, ok := resolveIn(root, rel, true); ok && !inside {
					t.Fatalf("the link %s left by an accepted backup leads to %s, outside %s", rel, at, root)
				}
			}
			return nil
		})
	})
}
