package remote

import (
	"context"
	"io"
)

// RealPath is p with every symlink resolved, as the server's realpath(3)
// gives it; a path that does not exist is an error (fs.ErrNotExist).
// Nothing is opened or read: it says where a symlink leads without
// following it.
func (c *Conn) RealPath(ctx context.Context, p string) (string, error) {
	var real string
	err := c.do(ctx, "resolve "+p, func() (err error) {
		real, err = c.sftp.RealPath(p)
		return err
	})
	return real, err
}

// ReadAt reads len(b) bytes at off (a part of a log cut to a date range),
// within the operation time limit; it does not move Read's offset.
func (r *Reader) ReadAt(b []byte, off int64) (int, error) {
	var n int
	var rerr error
	err := r.c.do(r.ctx, "read "+r.p, func() error {
		n, rerr = r.f.ReadAt(b, off)
		if rerr == io.EOF {
			return nil
		}
		return rerr
	})
	if err != nil {
		return n, err
	}
	return n, rerr
}
