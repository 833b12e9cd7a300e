package steps

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkHashFile hashes the file named by UPGRADER_BENCH_FILE (make bench
// makes a 300 MB one, and hashes it with openssl and sha256sum in the same
// run), or a 64 MB file of its own.
func BenchmarkHashFile(b *testing.B) {
	path := os.Getenv("UPGRADER_BENCH_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "media.iso")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(f, zeroReader{}, 64<<20); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := HashFile(path, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
