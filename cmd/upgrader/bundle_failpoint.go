//go:build failpoints

package main

import (
	"os"
	"strconv"
	"strings"
)

// UPGRADER_FAILPOINT_FREE=BYTES:DIR makes the directory DIR report BYTES
// free, so that the bundle's "not enough free space" answer can be tested
// without filling a real disk.
func init() {
	v := os.Getenv("UPGRADER_FAILPOINT_FREE")
	n, dir, ok := strings.Cut(v, ":")
	bytes, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		return
	}
	real := freeSpaceAt
	freeSpaceAt = func(d string) (int64, bool) {
		if d == dir {
			return bytes, true
		}
		return real(d)
	}
}
