package steps

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"upgrader/orchestrator"
)

func TestArchiveEntryName(t *testing.T) {
	for _, tc := range []struct{ raw, clean, why string }{
		{"index.html", "index.html", ""},
		{"topics/", "topics", ""},
		{"topics//dnc.html", "topics/dnc.html", ""},
		{"./index.html", "index.html", ""},
		{"./", ".", ""},
		{"a/./b/", "a/b", ""},
		{`back\slash`, `back\slash`, ""}, // a file name on Unix; the zip check refuses it on its own
		{"..hidden/x..y", "..hidden/x..y", ""},
		{"", "", "empty name"},
		{"../x", "", "climbs out"},
		{"a/../b", "", "climbs out"},
		{"a/..", "", "climbs out"},
		{"..", "", "climbs out"},
		{"/etc/passwd", "", "absolute path"},
		{"//x", "", "absolute path"},
		{"C:/x", "", "drive letter"},
		{"c:x", "", "drive letter"},
		{"a\x00b", "", "NUL byte"},
		{"a\nb", "", "control character (U+000A)"},
		{"a\u0085b", "", "control character (U+0085)"},
		{"a\xffb", "", "not valid UTF-8"},
		{strings.Repeat("a", 256), "", "component longer than 255"},
		{strings.Repeat("a/", 513), "", "longer than 1024"},
	} {
		clean, why := archiveEntryName(tc.raw)
		if clean != tc.clean || !strings.Contains(why, tc.why) || (tc.why == "") != (why == "") {
			t.Errorf("archiveEntryName(%q) = %q, %q; want %q, %q", tc.raw, clean, why, tc.clean, tc.why)
		}
	}
	if got, _ := helpEntryName(`topics\a.html`); got != "" {
		t.Errorf("the help library takes a backslash: %q", got)
	}
}

// escape is where a hostile entry aims: a folder outside the root the
// archive is unpacked into, by absolute path and relative to the root.
type escape struct{ abs, up string }

// expand fills in {abs} and {up} in s.
func (x escape) expand(s string) string {
	return strings.NewReplacer("{abs}", x.abs, "{up}", x.up).Replace(s)
}

// newEscape makes the outside folder, with a file in it, and the way up
// to it from root.
func newEscape(tb testing.TB, root string) escape {
	tb.Helper()
	abs := filepath.Join(tb.TempDir(), "outside")
	writeFile(tb, filepath.Join(abs, "secret"), []byte("root:x:0:0"), 0o600)
	up, err := filepath.Rel(root, abs)
	if err != nil {
		tb.Fatal(err)
	}
	return escape{abs: abs, up: filepath.ToSlash(up)}
}

// hostileZips are help library archives that must be refused whole; the
// entry is the one the error names. goodStart's entries come first.
var hostileZips = []struct {
	name  string
	entry string
	build func(tb testing.TB, zw *zip.Writer, x escape)
}{
	{"dot-dot escape", "../../etc/cron.d/evil", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "../../etc/cron.d/evil", 0, []byte("* * * * * root sh"))
	}},
	{"dot-dot to the outside folder", "{up}/evil", func(tb testing.TB, zw *zip.Writer, x escape) {
		zipFile(tb, zw, x.expand("{up}/evil"), 0, []byte("evil"))
	}},
	{"dot-dot inside a path", "topics/../../evil.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/../../evil.html", 0, []byte("evil"))
	}},
	{"dot-dot that stays inside", "topics/../other.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/../other.html", 0, []byte("evil"))
	}},
	{"dot-dot folder", "../", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "../", 0, nil)
	}},
	{"absolute path", "/etc/evil", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "/etc/evil", 0, []byte("evil"))
	}},
	{"absolute path to the outside folder", "{abs}/evil", func(tb testing.TB, zw *zip.Writer, x escape) {
		zipFile(tb, zw, x.expand("{abs}/evil"), 0, []byte("evil"))
	}},
	{"drive letter", "C:/evil.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "C:/evil.html", 0, []byte("evil"))
	}},
	{"backslash escape", `..\..\evil.html`, func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, `..\..\evil.html`, 0, []byte("evil"))
	}},
	{"backslash separator", `topics\campaigns.html`, func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, `topics\campaigns.html`, 0, []byte("evil"))
	}},
	{"symlink entry out", "topics/passwd.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/passwd.html", os.ModeSymlink|0o777, []byte("/etc/passwd"))
	}},
	{"symlink entry inside", "docs", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "docs", os.ModeSymlink|0o777, []byte("topics"))
	}},
	{"symlink then a file through it", "out", func(tb testing.TB, zw *zip.Writer, x escape) {
		zipFile(tb, zw, "out", os.ModeSymlink|0o777, []byte(x.abs))
		zipFile(tb, zw, "out/evil", 0, []byte("evil"))
	}},
	{"relative symlink then a file through it", "up", func(tb testing.TB, zw *zip.Writer, x escape) {
		zipFile(tb, zw, "up", os.ModeSymlink|0o777, []byte(x.up))
		zipFile(tb, zw, "up/evil", 0, []byte("evil"))
	}},
	{"duplicate name", "index.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "index.html", 0, []byte("second"))
	}},
	{"duplicate after cleaning", "topics//dnc.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics//dnc.html", 0, []byte("second"))
	}},
	{"duplicate with dot", "./index.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "./index.html", 0, []byte("second"))
	}},
	{"file named like the library", ".", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, ".", 0, []byte("x"))
	}},
	{"file and folder of one name", "topics", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics", 0, []byte("a file"))
	}},
	{"file where files need a folder", "media", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "media", 0, []byte("a file"))
		zipFile(tb, zw, "media/a.png", 0, []byte("png"))
	}},
	{"folder that carries bytes", "full", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "full", fs.ModeDir|0o755, []byte("data"))
	}},
	{"block device", "topics/sda", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/sda", os.ModeDevice|0o644, nil)
	}},
	{"character device", "topics/null", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/null", os.ModeDevice|os.ModeCharDevice|0o666, nil)
	}},
	{"fifo", "topics/pipe", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/pipe", os.ModeNamedPipe|0o644, nil)
	}},
	{"socket", "topics/sock", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/sock", os.ModeSocket|0o644, nil)
	}},
	{"bomb: 100 MB of zeros", "topics/bomb.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipZeros(tb, zw, "topics/bomb.html", 100_000_000)
	}},
	{"bomb: ratio", "topics/ratio.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipZeros(tb, zw, "topics/ratio.html", 10<<20) // under 64 MiB, but about 1000:1
	}},
	{"bomb: total", "topics/p009.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		// 9 entries of 60 MB each, packed to 400 kB: under the ratio; the
		// ninth brings the archive over 512 MiB. Only headers are read.
		noise := make([]byte, 400_000)
		rand.NewChaCha8([32]byte{1}).Read(noise)
		for i := 1; i <= 9; i++ {
			zipRaw(tb, zw, fmt.Sprintf("topics/p%03d.html", i), noise, 60_000_000, 0)
		}
	}},
	{"too many entries", "p10000.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		for i := 3; i <= 10_000; i++ { // 3 good entries before these
			w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("p%05d.html", i), Method: zip.Store})
			if err != nil {
				tb.Fatal(err)
			}
			w.Write([]byte("x"))
		}
	}},
	{"lying header: larger than it says", "topics/liar.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		large := bytes.Repeat([]byte{0}, 4<<20)
		zipRaw(tb, zw, "topics/liar.html", large, 16, crc32.ChecksumIEEE(large))
	}},
	{"lying header: smaller than it says", "topics/short.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipRaw(tb, zw, "topics/short.html", []byte("short"), 1000, crc32.ChecksumIEEE([]byte("short")))
	}},
	{"wrong checksum", "topics/crc.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipRaw(tb, zw, "topics/crc.html", []byte("content"), 7, 12345)
	}},
	{"NUL in a name", "topics/evil\x00.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/evil\x00.html", 0, []byte("evil"))
	}},
	{"newline in a name", "topics/evil\n.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/evil\n.html", 0, []byte("evil"))
	}},
	{"escape character in a name", "topics/\x1b[31mred.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/\x1b[31mred.html", 0, []byte("evil"))
	}},
	{"C1 control character in a name", "topics/\u009bred.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/\u009bred.html", 0, []byte("evil"))
	}},
	{"name not UTF-8", "topics/\xff\xfe.html", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/\xff\xfe.html", 0, []byte("evil"))
	}},
	{"name component over 255 bytes", "topics/" + strings.Repeat("a", 256), func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "topics/"+strings.Repeat("a", 256), 0, []byte("evil"))
	}},
	{"empty name", "", func(tb testing.TB, zw *zip.Writer, _ escape) {
		zipFile(tb, zw, "", 0, []byte("evil"))
	}},
}

// tarEnt is one entry of a test backup.
type tarEnt struct {
	name string
	typ  byte // tar.TypeReg when 0
	link string
	data string
	mode int64 // 0o644 when 0
	// size, when larger than data, is declared in the header and the
	// archive ends after the data: cut short.
	size int64
}

// writeTarGz writes a gzip-compressed tar of ents to p, filling in {abs}
// and {up} with x.
func writeTarGz(tb testing.TB, p string, x escape, ents []tarEnt) {
	tb.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	cut := false
	for _, e := range ents {
		hdr := &tar.Header{Name: x.expand(e.name), Linkname: x.expand(e.link), Typeflag: e.typ, Mode: e.mode,
			Size: int64(len(e.data)), ModTime: testTarTime}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if e.size > hdr.Size {
			hdr.Size, cut = e.size, true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("tar header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			tb.Fatal(err)
		}
		if cut {
			break
		}
	}
	if !cut {
		if err := tw.Close(); err != nil {
			tb.Fatal(err)
		}
	} else {
		tw.Flush()
	}
	if err := gz.Close(); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, p, buf.Bytes(), 0o600)
}

// testTarTime is the time of every entry of a test backup.
var testTarTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// simBackupStart is what a real backup starts with; a hostile entry after
// it must still keep the restore tool from running.
var simBackupStart = []tarEnt{
	{name: "data/", typ: tar.TypeDir, mode: 0o755},
	{name: "data/jobs/", typ: tar.TypeDir, mode: 0o755},
	{name: "data/jobs/outbound1.job", data: "job outbound1\n"},
	{name: "etc/", typ: tar.TypeDir, mode: 0o755},
	{name: "etc/dialer.version", data: "VERSION=4.1\n"},
}

// hostileTars are PC backups that must be refused before the restore tool
// runs. Names are relative to the PC home, where the tool unpacks them.
// With lim set, the case checks the listing alone under those limits
// (the defaults need gigabytes to reach).
var hostileTars = []struct {
	name  string
	entry string // the entry the error names; "" for a damaged archive
	ents  []tarEnt
	raw   func(tb testing.TB, p string, x escape) // instead of ents
	lim   *backupLimits
}{
	{name: "dot-dot escape", entry: "data/../../../../etc/cron.d/evil", ents: []tarEnt{{name: "data/../../../../etc/cron.d/evil", data: "* * * * * root sh"}}},
	{name: "dot-dot to the outside folder", entry: "{up}/evil", ents: []tarEnt{{name: "{up}/evil", data: "evil"}}},
	{name: "dot-dot in a long (pax) name", entry: "data/" + strings.Repeat("x", 120) + "/../../../{up}/evil",
		ents: []tarEnt{{name: "data/" + strings.Repeat("x", 120) + "/../../../{up}/evil", data: "evil"}}},
	{name: "absolute path", entry: "/etc/cron.d/evil", ents: []tarEnt{{name: "/etc/cron.d/evil", data: "evil"}}},
	{name: "absolute path to the outside folder", entry: "{abs}/evil", ents: []tarEnt{{name: "{abs}/evil", data: "evil"}}},
	{name: "drive letter", entry: "C:/evil", ents: []tarEnt{{name: "C:/evil", data: "evil"}}},
	{name: "symlink to an absolute path", entry: "data/passwd", ents: []tarEnt{{name: "data/passwd", typ: tar.TypeSymlink, link: "/etc/passwd"}}},
	{name: "symlink to the outside folder", entry: "data/out", ents: []tarEnt{{name: "data/out", typ: tar.TypeSymlink, link: "{abs}"}}},
	{name: "symlink climbing out", entry: "data/out", ents: []tarEnt{{name: "data/out", typ: tar.TypeSymlink, link: "../{up}"}}},
	{name: "symlink then a file through it (outside)", entry: "data/out", ents: []tarEnt{
		{name: "data/out", typ: tar.TypeSymlink, link: "{abs}"}, {name: "data/out/secret", data: "evil"}}},
	{name: "symlink then a file through it (inside)", entry: "data/etc/dialer.version", ents: []tarEnt{
		{name: "data/etc", typ: tar.TypeSymlink, link: "../etc"}, {name: "data/etc/dialer.version", data: "VERSION=9\n"}}},
	{name: "file under a symlink that comes later", entry: "data/late/x", ents: []tarEnt{
		{name: "data/late/x", data: "x"}, {name: "data/late", typ: tar.TypeSymlink, link: "../etc"}}},
	{name: "symlink then a file of the same name", entry: "data/jobs/outbound2.job", ents: []tarEnt{
		{name: "data/jobs/outbound2.job", typ: tar.TypeSymlink, link: "{abs}/secret"}, {name: "data/jobs/outbound2.job", data: "evil"}}},
	{name: "symlink through another symlink", entry: "data/b", ents: []tarEnt{
		{name: "data/a", typ: tar.TypeSymlink, link: ".."}, {name: "data/b", typ: tar.TypeSymlink, link: "a/../.."}}},
	{name: "symlink to nothing", entry: "data/empty", ents: []tarEnt{{name: "data/empty", typ: tar.TypeSymlink, link: ""}}},
	{name: "symlink with a newline in its target", entry: "data/nl", ents: []tarEnt{{name: "data/nl", typ: tar.TypeSymlink, link: "jobs\n"}}},
	{name: "hard link to an absolute path", entry: "data/shadow", ents: []tarEnt{{name: "data/shadow", typ: tar.TypeLink, link: "/etc/shadow"}}},
	{name: "hard link to the outside folder", entry: "data/secret", ents: []tarEnt{{name: "data/secret", typ: tar.TypeLink, link: "{up}/secret"}}},
	{name: "hard link to a file not in the backup", entry: "data/hosts", ents: []tarEnt{{name: "data/hosts", typ: tar.TypeLink, link: "etc/hosts"}}},
	{name: "hard link to a later file", entry: "data/early", ents: []tarEnt{
		{name: "data/early", typ: tar.TypeLink, link: "data/later"}, {name: "data/later", data: "x"}}},
	{name: "hard link to a folder", entry: "data/dir", ents: []tarEnt{{name: "data/dir", typ: tar.TypeLink, link: "data/jobs"}}},
	{name: "hard link then a file through it", entry: "data/hl/x", ents: []tarEnt{
		{name: "data/hl", typ: tar.TypeLink, link: "etc/dialer.version"}, {name: "data/hl/x", data: "x"}}},
	{name: "character device", entry: "data/null", ents: []tarEnt{{name: "data/null", typ: tar.TypeChar}}},
	{name: "block device", entry: "data/sda", ents: []tarEnt{{name: "data/sda", typ: tar.TypeBlock}}},
	{name: "fifo", entry: "data/pipe", ents: []tarEnt{{name: "data/pipe", typ: tar.TypeFifo}}},
	{name: "contiguous file", entry: "data/cont", ents: []tarEnt{{name: "data/cont", typ: tar.TypeCont}}},
	{name: "setuid file", entry: "data/sh", ents: []tarEnt{{name: "data/sh", data: "#!/bin/sh\n", mode: 0o4755}}},
	{name: "setgid file", entry: "data/sg", ents: []tarEnt{{name: "data/sg", data: "x", mode: 0o2755}}},
	{name: "the same file twice", entry: "etc/dialer.version", ents: []tarEnt{{name: "etc/dialer.version", data: "VERSION=9\n"}}},
	{name: "a folder then a file of its name", entry: "data/jobs", ents: []tarEnt{{name: "data/jobs", data: "x"}}},
	{name: "file where a folder is needed", entry: "data/f/x", ents: []tarEnt{{name: "data/f", data: "x"}, {name: "data/f/x", data: "y"}}},
	{name: "file named like the restore folder", entry: "./", ents: []tarEnt{{name: "./", typ: tar.TypeSymlink, link: "/"}}},
	{name: "newline in a name", entry: "data/evil\n", ents: []tarEnt{{name: "data/evil\n", data: "x"}}},
	{name: "escape character in a name", entry: "data/\x1b[31mred", ents: []tarEnt{{name: "data/\x1b[31mred", data: "x"}}},
	{name: "name over 1024 bytes", entry: strings.Repeat("d/", 520), ents: []tarEnt{{name: strings.Repeat("d/", 520), typ: tar.TypeDir}}},
	{name: "header of 100 GiB", entry: "data/huge", ents: []tarEnt{{name: "data/huge", size: 100 << 30}}},
	{name: "cut short in a file", entry: "data/lists/cut.lst", ents: []tarEnt{{name: "data/lists/cut.lst", data: "half", size: 10_000}}},
	{name: "not gzip-compressed", raw: func(tb testing.TB, p string, _ escape) {
		writeFile(tb, p, []byte("data/ etc/ not a tar.gz\n"), 0o600)
	}},
	{name: "empty file", raw: func(tb testing.TB, p string, _ escape) { writeFile(tb, p, nil, 0o600) }},
	{name: "gzip of no tar", raw: func(tb testing.TB, p string, _ escape) {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		gz.Write(bytes.Repeat([]byte("not a tar header "), 100))
		gz.Close()
		writeFile(tb, p, buf.Bytes(), 0o600)
	}},
	{name: "damaged gzip checksum", raw: func(tb testing.TB, p string, x escape) {
		writeTarGz(tb, p, x, simBackupStart)
		b, _ := os.ReadFile(p)
		b[len(b)-8] ^= 0xff // the CRC-32 of the trailer
		writeFile(tb, p, b, 0o600)
	}},
	{name: "cut short in the gzip stream", raw: func(tb testing.TB, p string, x escape) {
		writeTarGz(tb, p, x, append(simBackupStart[:len(simBackupStart):len(simBackupStart)], tarEnt{name: "data/big", data: strings.Repeat("0123456789", 10_000)}))
		b, _ := os.ReadFile(p)
		writeFile(tb, p, b[:len(b)/2], 0o600)
	}},
	{name: "2 MiB after the archive's end", raw: func(tb testing.TB, p string, _ escape) {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		tw := tar.NewWriter(gz)
		tw.WriteHeader(&tar.Header{Name: "etc/dialer.version", Mode: 0o644, Size: 12})
		tw.Write([]byte("VERSION=4.1\n"))
		tw.Close()
		gz.Write(make([]byte, 2<<20))
		gz.Close()
		writeFile(tb, p, buf.Bytes(), 0o600)
	}},
	{name: "bomb: one file", entry: "data/zeros", lim: &backupLimits{entries: 100, file: 1 << 20, total: 8 << 20, totalWhy: "test", trailer: 1024},
		ents: []tarEnt{{name: "data/zeros", data: string(make([]byte, 2<<20))}}},
	{name: "bomb: total", entry: "data/z5", lim: &backupLimits{entries: 100, file: 1 << 20, total: 4<<20 + 26, totalWhy: "test", trailer: 1024},
		ents: []tarEnt{{name: "data/z1", data: string(make([]byte, 1<<20))}, {name: "data/z2", data: string(make([]byte, 1<<20))},
			{name: "data/z3", data: string(make([]byte, 1<<20))}, {name: "data/z4", data: string(make([]byte, 1<<20))},
			{name: "data/z5", data: "x"}}},
	{name: "too many entries", entry: "data/f96", lim: &backupLimits{entries: 100, file: 1 << 20, total: 4 << 20, totalWhy: "test", trailer: 1024},
		ents: manyTarFiles(200)},
}

// manyTarFiles is n small files.
func manyTarFiles(n int) []tarEnt {
	var out []tarEnt
	for i := 1; i <= n; i++ {
		out = append(out, tarEnt{name: fmt.Sprintf("data/f%d", i), data: "x"})
	}
	return out
}

// The hostile archive corpus, zips and tars: every one refused whole with
// an error that names the entry (or says how the archive is damaged),
// nothing written on the host or outside it, the help library's vpms
// left running, the PC restore tool never run.
func TestHostileArchives(t *testing.T) {
	var tried, refused, outside atomic.Int64
	t.Cleanup(func() {
		fmt.Printf("hostile input (zip/tar): %d tried, %d refused with a message, %d wrote outside the root\n",
			tried.Load(), refused.Load(), outside.Load())
	})
	// unchanged checks the host and the outside folder after a refusal.
	unchanged := func(t *testing.T, hostDir string, hostBefore map[string]string, x escape, outBefore map[string]string) {
		t.Helper()
		if d := snapshotDiff(outBefore, snapshot(t, x.abs, true)); d != "" {
			outside.Add(1)
			t.Errorf("the outside folder changed:\n%s", d)
		}
		if d := snapshotDiff(hostBefore, snapshot(t, hostDir, true)); d != "" {
			t.Errorf("the host changed:\n%s", d)
		}
	}
	t.Run("zip", func(t *testing.T) {
		for _, tc := range hostileZips {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tried.Add(1)
				h := newHelpSim(t)
				x := newEscape(t, h.lib(""))
				makeZip(t, h.path("media/UsingPOM.zip"), func(tb testing.TB, zw *zip.Writer) {
					goodStart(tb, zw)
					tc.build(tb, zw, x)
				})
				hostBefore, outBefore := snapshot(t, h.sim.Dir, true), snapshot(t, x.abs, true)
				entry := fmt.Sprintf("entry %s", entryLabel(x.expand(tc.entry)))
				ok := true
				check := func(what string, err error) {
					t.Helper()
					if !errors.Is(err, errUnsafeArchive) || !strings.Contains(err.Error(), entry) {
						ok = false
						t.Errorf("%s: %v\nwant a refusal naming %s", what, err, entry)
					}
				}
				t.Logf("refused: %v", h.refusedByAll(check))
				unchanged(t, h.sim.Dir, hostBefore, x, outBefore)
				if l := h.ledger(t); len(l) > 0 || h.vpms(t) != "running" {
					t.Errorf("vpms was touched: %v", l)
				}
				if ok {
					refused.Add(1)
				}
			})
		}
	})
	t.Run("tar", func(t *testing.T) {
		for _, tc := range hostileTars {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tried.Add(1)
				e := newHostSim(t, "x3650")
				home := e.path(e.host.Profile.PC.Home)
				x := newEscape(t, home)
				const backup = "/var/backups/upgrader/pc-data-" + testRunID + ".tar.gz"
				if tc.raw != nil {
					tc.raw(t, e.path(backup), x)
				} else {
					writeTarGz(t, e.path(backup), x, append(simBackupStart[:len(simBackupStart):len(simBackupStart)], tc.ents...))
				}
				hostBefore, outBefore := snapshot(t, e.sim.Dir, true), snapshot(t, x.abs, true)
				var err error
				if tc.lim != nil {
					_, err = checkBackupTar(e.path(backup), *tc.lim)
				} else {
					spec := pcRestoreSpec()
					sc := stepContext(spec, nil)
					sc.Artifacts = map[string]orchestrator.Artifact{"pc-backup": {Path: backup}}
					err = e.build(t, spec).Apply(context.Background(), sc)
				}
				want := "PC backup " + e.path(backup)
				if tc.entry != "" {
					want += ": entry " + entryLabel(x.expand(tc.entry))
				}
				if !errors.Is(err, errUnsafeBackup) || !strings.HasPrefix(err.Error(), want) {
					t.Errorf("%v\nwant a refusal starting %q", err, want)
				} else {
					refused.Add(1)
				}
				t.Logf("refused: %v", err)
				unchanged(t, e.sim.Dir, hostBefore, x, outBefore)
				if l := e.ledger(t); countLines(l, "pc-restore done") != 0 {
					t.Errorf("the restore tool ran: %v", l)
				}
			})
		}
	})
}

// What a real backup may hold passes: the sim's own backup, links that
// stay inside, hard links to earlier files, a pax global header, the
// folder itself, repeated folders.
func TestCheckBackupTarAccepts(t *testing.T) {
	src, a := backupOnSource(t, "source")
	list, err := checkBackupTar(src.path(a.Path), defaultBackupLimits)
	if err != nil {
		t.Fatalf("the sim's backup: %v", err)
	}
	if list.files == 0 || list.dirs == 0 || list.links != 0 || list.bytes == 0 {
		t.Errorf("the sim's backup listed as %+v", list)
	}
	p := filepath.Join(t.TempDir(), "b.tar.gz")
	writeTarGz(t, p, escape{}, append(simBackupStart[:len(simBackupStart):len(simBackupStart)],
		tarEnt{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEnt{name: "data/", typ: tar.TypeDir, mode: 0o1777},
		tarEnt{name: "data/current", typ: tar.TypeSymlink, link: "jobs/outbound1.job"},
		tarEnt{name: "data/version", typ: tar.TypeSymlink, link: "../etc/./dialer.version"},
		tarEnt{name: "data/home", typ: tar.TypeSymlink, link: ".."},
		tarEnt{name: "data/to-link", typ: tar.TypeSymlink, link: "current"},
		tarEnt{name: "data/jobs/copy.job", typ: tar.TypeLink, link: "data/jobs/outbound1.job"},
		tarEnt{name: "data/..dots..", data: "x"},
		tarEnt{name: `data/back\slash`, data: "x"},
		tarEnt{name: "data/" + strings.Repeat("l", 200), data: "long (pax) name"},
	))
	list, err = checkBackupTar(p, defaultBackupLimits)
	if err != nil {
		t.Fatalf("inside links: %v", err)
	}
	if list.links != 5 || list.files != 5 {
		t.Errorf("listed as %+v", list)
	}
	// At the limits, not over.
	lim := backupLimits{entries: len(simBackupStart), file: 14, total: 26, totalWhy: "test", trailer: 1 << 20}
	writeTarGz(t, p, escape{}, simBackupStart)
	if _, err := checkBackupTar(p, lim); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}
