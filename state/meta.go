package state

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// The layout of a bbolt meta page (go.etcd.io/bbolt/internal/common.Meta
// after the 16-byte page header), read here because bbolt silently falls
// back to the older meta page when the newer one fails its checksum: that
// may be a torn write of a commit never acknowledged (safe to undo), or a
// page damaged after its commit was acknowledged (not safe). upgrader
// tells them apart as far as the evidence allows (fallback.go).
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	pageHeader    = 16
	metaSumOffset = 56 // magic, version, pageSize, flags (4 each), root (16), freelist, pgid, txid (8 each)
)

// metaPage is what one meta page says; bad, when not "", why it is not
// to be trusted.
type metaPage struct {
	bad                        string
	root, freelist, pgid, txid uint64
	pageSize                   uint32
}

// readMeta decodes the meta page at index i of buf (the file's first two
// pages).
func readMeta(buf []byte, pageSize int64, i int) metaPage {
	m := buf[int64(i)*pageSize+pageHeader:]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	p := metaPage{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	switch {
	case le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion:
		p.bad = "is not a bbolt meta page"
	case h.Sum64() != le.Uint64(m[metaSumOffset:]):
		p.bad = "fails its checksum"
	case int64(p.pageSize) != pageSize:
		p.bad = fmt.Sprintf("says pages are %d bytes, not %d", p.pageSize, pageSize)
	}
	return p
}

// metaFallback says the state opens at the one whole meta page: the other
// (page Damaged) failed its check. Opened is the txid of the whole one,
// Lost the commit bbolt would have written to the damaged page next. The
// damaged page may instead have held the commit before Opened (its own
// txid field cannot be trusted to say which): then nothing is undone.
type metaFallback struct {
	Damaged      int
	Why          string
	Opened, Lost uint64
}

// checkMetaPages proves the meta page the state opens at is intact and
// that the file holds every page it counts and a tree bbolt can walk. Both
// pages whole: the newest is used, as bbolt does. One damaged: the other
// is used (fb says so; the caller weighs the evidence, fallback.go). Both
// damaged: refused. The caller holds the file's lock: no commit is under
// way while it is read.
func checkMetaPages(f *os.File, path string) (fb *metaFallback, err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pageSize := int64(os.Getpagesize())
	buf := make([]byte, 2*pageSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("%w: %s is %d bytes, too short for a state file", ErrCorrupt, path, st.Size())
	}
	metas := [2]metaPage{readMeta(buf, pageSize, 0), readMeta(buf, pageSize, 1)}
	use := 0
	switch {
	case metas[0].bad != "" && metas[1].bad != "":
		return nil, fmt.Errorf("%w: %s: meta page 0 %s and meta page 1 %s: no whole commit to open", ErrCorrupt, path, metas[0].bad, metas[1].bad)
	case metas[0].bad != "" || metas[1].bad != "":
		if metas[0].bad != "" {
			use = 1
		}
		good, bad := metas[use], metas[1-use]
		// bbolt writes commit N to meta page N%2: the damaged page held
		// either the commit after the whole one or the one before it.
		if good.txid%2 != uint64(use) || good.txid == 0 {
			return nil, fmt.Errorf("%w: %s: meta page %d %s and meta page %d names commit %d, which bbolt never writes there", ErrCorrupt, path, 1-use, bad.bad, use, good.txid)
		}
		fb = &metaFallback{Damaged: 1 - use, Why: bad.bad, Opened: good.txid, Lost: good.txid + 1}
	case metas[1].txid > metas[0].txid:
		use = 1
	}
	m := metas[use]
	highWater := max(metas[0].pgid, metas[1].pgid)
	if fb != nil {
		highWater = m.pgid
	}
	if m.root >= m.pgid || m.freelist >= m.pgid && m.freelist != ^uint64(0) {
		return nil, fmt.Errorf("%w: %s: meta page %d points past the end of its pages", ErrCorrupt, path, use)
	}
	for i, o := range metas {
		if o.bad == "" && (o.root >= o.pgid || o.freelist >= o.pgid && o.freelist != ^uint64(0)) {
			return nil, fmt.Errorf("%w: %s: meta page %d points past the end of its pages", ErrCorrupt, path, i)
		}
	}
	if need := int64(highWater) * pageSize; st.Size() < need {
		return nil, fmt.Errorf("%w: %s is %d bytes, its pages need %d: the file was cut short", ErrCorrupt, path, st.Size(), need)
	}
	data := make([]byte, highWater*uint64(pageSize))
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	if err := checkPages(data, int(pageSize), m.root, m.freelist); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return fb, nil
}

// metaTxid is the newest commit a whole meta page of the file f names, 0
// if none.
func metaTxid(f *os.File) uint64 {
	pageSize := int64(os.Getpagesize())
	buf := make([]byte, 2*pageSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0
	}
	var txid uint64
	for i := range 2 {
		if m := readMeta(buf, pageSize, i); m.bad == "" {
			txid = max(txid, m.txid)
		}
	}
	return txid
}
