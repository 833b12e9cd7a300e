package state

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkBoltCommit is what one bbolt commit of a small value costs on
// this disk, as upgrader opens it (fsync on): the pages, an fdatasync, the
// meta page, another fdatasync. The file is warmed first, so that commits
// reuse freed pages as a long-lived state file does.
func BenchmarkBoltCommit(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	put := func(i int) error {
		return db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return bk.Put([]byte("k"), make([]byte, 200+i%7))
		})
	}
	for i := range 200 {
		if err := put(i); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := put(i); err != nil {
			b.Fatal(err)
		}
	}
}
