package steps

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// dirNames lists a directory's entries.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileAtomic(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []byte      // nil: no file before
		oldMode  os.FileMode // mode of the existing file
		data     []byte
		mode     os.FileMode // mode argument
		wantMode os.FileMode
	}{
		{name: "replaces content, keeps mode 0640", existing: []byte("old content\n"), oldMode: 0o640,
			data: []byte("new content\n"), mode: 0o644, wantMode: 0o640},
		{name: "replaces with shorter content", existing: bytes.Repeat([]byte("x"), 10000), oldMode: 0o600,
			data: []byte("y"), mode: 0o644, wantMode: 0o600},
		{name: "replaces with empty content", existing: []byte("something"), oldMode: 0o644,
			data: []byte{}, mode: 0o600, wantMode: 0o644},
		{name: "keeps an unusual mode 0604", existing: []byte("a"), oldMode: 0o604,
			data: []byte("b"), mode: 0o644, wantMode: 0o604},
		{name: "creates with mode 0600", data: []byte("fresh\n"), mode: 0o600, wantMode: 0o600},
		{name: "creates with mode 0644", data: []byte("fresh\n"), mode: 0o644, wantMode: 0o644},
		{name: "creates with mode 0664 despite the umask", data: []byte("fresh\n"), mode: 0o664, wantMode: 0o664},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mppconfig.xml")
			neighbour := filepath.Join(dir, "other.xml")
			writeTestFile(t, neighbour, []byte("untouched"))
			if tc.existing != nil {
				writeTestFile(t, path, tc.existing)
				if err := os.Chmod(path, tc.oldMode); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFileAtomic(path, tc.data, tc.mode); err != nil {
				t.Fatalf("WriteFileAtomic: %v", err)
			}
			if got := readTestFile(t, path); !bytes.Equal(got, tc.data) {
				t.Errorf("content = %q, want %q", got, tc.data)
			}
			st, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Mode().IsRegular() || st.Mode().Perm() != tc.wantMode {
				t.Errorf("mode = %v, want regular %#o", st.Mode(), tc.wantMode)
			}
			if got, want := dirNames(t, dir), []string{"mppconfig.xml", "other.xml"}; !slices.Equal(got, want) {
				t.Errorf("directory holds %q, want %q (no temp files left)", got, want)
			}
			if got := readTestFile(t, neighbour); string(got) != "untouched" {
				t.Errorf("neighbour changed: %q", got)
			}
		})
	}
}

func TestWriteFileAtomicSymlink(t *testing.T) {
	// A symlink at path is replaced by a regular file with the given mode:
	// its 0777 link mode must not become the file's mode, and the link's
	// target is not written through.
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target.xml")
	writeTestFile(t, target, []byte("target"))
	path := filepath.Join(dir, "link.xml")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatalf("WriteFileAtomic: %v", err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want a regular file 0600", st.Mode())
	}
	if got := readTestFile(t, target); string(got) != "target" {
		t.Errorf("symlink target written through: %q", got)
	}
}

func TestWriteFileAtomicErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(dir string) string
	}{
		{"missing directory", func(dir string) string { return filepath.Join(dir, "nope", "f") }},
		{"path is a directory", func(dir string) string {
			os.Mkdir(filepath.Join(dir, "d"), 0o755)
			os.WriteFile(filepath.Join(dir, "d", "keep"), []byte("k"), 0o644)
			return filepath.Join(dir, "d")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.path(dir)
			before := dirNames(t, dir)
			if err := WriteFileAtomic(path, []byte("data"), 0o644); err == nil {
				t.Fatal("WriteFileAtomic succeeded")
			}
			if got := dirNames(t, dir); !slices.Equal(got, before) {
				t.Errorf("directory holds %q after the failure, had %q", got, before)
			}
		})
	}
}

func TestHashFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"just under a buffer", hashBuf - 1},
		{"one buffer", hashBuf},
		{"two buffers and a bit", 2*hashBuf + 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789abcdef"), tc.size/16+1)[:tc.size]
			path := filepath.Join(t.TempDir(), "media.iso")
			writeTestFile(t, path, data)
			pr := &progressRecorder{}
			sum, n, err := HashFile(path, pr.progress)
			if err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(data)
			if sum != hex.EncodeToString(want[:]) || n != int64(tc.size) {
				t.Errorf("HashFile = %s, %d; want %x, %d", sum, n, want, tc.size)
			}
			calls := pr.all()
			if tc.size > 0 && len(calls) == 0 {
				t.Fatal("no progress reported")
			}
			var last int64
			for i, c := range calls {
				if c.total != int64(tc.size) || c.done <= last || c.label != "sha256 media.iso" {
					t.Errorf("progress call %d = %+v, want increasing done of %d labelled \"sha256 media.iso\"", i, c, tc.size)
				}
				last = c.done
			}
			if len(calls) > 0 && calls[len(calls)-1].done != int64(tc.size) {
				t.Errorf("last progress = %+v, want done == size %d", calls[len(calls)-1], tc.size)
			}
			if sum2, _, err := HashFile(path, nil); err != nil || sum2 != sum {
				t.Errorf("HashFile without progress = %s, %v", sum2, err)
			}
		})
	}
	if _, _, err := HashFile(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("HashFile of a missing file succeeded")
	}
}

func TestRecheckArtifact(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(tb testing.TB, path string, a orchestrator.Artifact)
		wantErr string // "" when the file is still the recorded one
	}{
		{"unchanged", func(testing.TB, string, orchestrator.Artifact) {}, ""},
		{"read but not written", func(tb testing.TB, path string, _ orchestrator.Artifact) { readTestFile(tb, path) }, ""},
		{"size changed", func(tb testing.TB, path string, _ orchestrator.Artifact) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				tb.Fatal(err)
			}
			f.Write([]byte("more"))
			f.Close()
		}, "size"},
		{"mtime changed", func(tb testing.TB, path string, a orchestrator.Artifact) {
			touch(tb, path, a.ModTime.Add(time.Second))
		}, "modified"},
		{"mtime changed by a nanosecond", func(tb testing.TB, path string, a orchestrator.Artifact) {
			touch(tb, path, a.ModTime.Add(time.Nanosecond))
		}, "modified"},
		{"content changed, same size, mtime restored", func(tb testing.TB, path string, a orchestrator.Artifact) {
			b := readTestFile(tb, path)
			b[len(b)/2] ^= 0xff
			writeTestFile(tb, path, b)
			touch(tb, path, a.ModTime)
		}, "sha256"},
		{"removed", func(tb testing.TB, path string, _ orchestrator.Artifact) { removeFile(tb, path) }, "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pomdb.dump")
			writeTestFile(t, path, bytes.Repeat([]byte("PGDMP backup data "), 5000))
			a, err := artifactOf(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, path, a)
			for _, check := range []struct {
				name string
				run  func() error
			}{
				{"recheckArtifact", func() error { return recheckArtifact(a, nil) }},
				{"Host.Recheck", func() error { return (&Host{}).Recheck(t.Context(), "db-backup", a) }},
			} {
				err := check.run()
				switch {
				case tc.wantErr == "" && err != nil:
					t.Errorf("%s: %v, want nil", check.name, err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Errorf("%s: %v, want an error about %s", check.name, err, tc.wantErr)
				case tc.wantErr != "" && !strings.Contains(err.Error(), path):
					t.Errorf("%s: error %q does not name the file", check.name, err)
				}
			}
		})
	}
}

func touch(tb testing.TB, path string, mtime time.Time) {
	tb.Helper()
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		tb.Fatal(err)
	}
}
