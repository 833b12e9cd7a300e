// Package bundle collects POM logs and upgrader's evidence into a tar.gz support archive.
//
// It does what getpomlogs.sh does (POM 3.1.1 SP1 release notes, "Serviceability
// enhancement - POM logging enhancement"): -a adds this server's application
// server logs, -c the MPP CXI logs. The notes' text reads -c as MPP CXI logs
// (collected by the script only when MPP and POM share a server); one example
// calling "--logs -c" "POM logs with appserver logs" is a copy-paste slip.
// upgrader's -c collects every MPP's logs it can reach: today, the MPP
// directories on this server and, over SSH, on the MPPs' own servers. What
// the Contact Support Checklist asks for and
// no archive of this server can hold is listed in every archive
// (SupportAlsoAsks).
package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/orchestrator/profile"
	"upgrader/steps"
	"upgrader/steps/remote"
)

// Evidence is upgrader's own record, always in the archive under upgrader/.
type Evidence struct {
	Docs  []Doc     // made by upgrader (JSON, the redacted profile)
	Files []FileRef // copied from disk (upgrader's log)
	Notes []string  // what could not be had, and why
}

// Doc is a document written into the archive as is.
type Doc struct {
	Name string
	Data []byte
}

// FileRef is a file copied into the archive under Name.
type FileRef struct {
	Name, Path string
}

// Options say what to collect and where the archive goes.
type Options struct {
	Profile   profile.Profile
	Dir       string // the archive's directory
	Name      string // its file name (default: DefaultName)
	Selection Selection
	AppServer bool // this server's application server and Tomcat logs (getpomlogs.sh --logs -a)
	// MPP adds the MPP CXI logs (getpomlogs.sh --logs -c). The release
	// notes' text says -c collects MPP CXI logs, the script only where MPP
	// and POM share the server; one of their examples calls "--logs -c"
	// "POM logs with appserver logs", a copy-paste slip, not followed.
	// Here -c collects every MPP's logs that are reachable: on this
	// server, and on other servers over SSH (see Sources).
	MPP bool
	// ThisHost is this server's name: an MPP whose host it is, is here.
	ThisHost string
	// Pool holds the connections to MPPs on other servers; nil for one of
	// the collection's own, closed when Write ends.
	Pool     *remote.Pool
	Evidence Evidence
	Now      time.Time
	Version  string
	// Failpoint, when set (crash tests), is called at named points.
	Failpoint func(point string)
}

// Result is the archive written.
type Result struct {
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"` // the files' bytes before compression
	Logs      string    `json:"logs"`  // logs or selectedlogs
	Selection Selection `json:"selection"`
	Entries   []Entry   `json:"entries"`
	Skipped   []Skip    `json:"skipped"`
	Notes     []string  `json:"notes"`
	// SupportAlsoAsks is what support's checklist also asks for that this
	// archive cannot hold (SupportAlsoAsks).
	SupportAlsoAsks []string `json:"support_also_asks"`
}

// Collection is what a bundle with given options will read.
type Collection struct {
	opts    Options
	top     string
	sources []Source
	pool    *remote.Pool
	ownPool bool
	ssh     remote.Config
	found
}

// Collect walks the log directories, those of other servers in parallel,
// and applies the selection. Nothing is read or written yet.
func Collect(ctx context.Context, o Options) *Collection {
	top := "logs"
	if o.Selection.Any() {
		top = "selectedlogs"
	}
	var secrets []string
	if pw := o.Profile.DB.PasswordFile; pw != "" {
		p := o.Profile.Path(pw)
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		secrets = append(secrets, p)
	}
	c := &Collection{opts: o, top: top, sources: Sources(o.Profile, o.ThisHost, o.AppServer, o.MPP), pool: o.Pool, ssh: sshConfig(o.Profile)}
	each := make([]found, len(c.sources))
	var wg sync.WaitGroup
	for i, src := range c.sources {
		if src.Remote == nil {
			continue
		}
		if c.pool == nil {
			c.pool, c.ownPool = remote.NewPool(), true
		}
		m := &remoteMPP{name: strings.TrimPrefix(src.Name, "mpp/"), target: *src.Remote}
		wg.Go(func() { each[i] = c.walkRemote(ctx, src, m) })
	}
	seen := map[string]bool{}
	for i, src := range c.sources {
		if src.Remote == nil {
			each[i] = walkLocal(src, o.Selection, top, secrets, o.Profile.Unroot, seen)
		}
	}
	wg.Wait()
	for _, f := range each {
		c.found.add(f)
	}
	return c
}

// Bytes is the size of the files to read.
func (c *Collection) Bytes() int64 { return c.bytes }

// Estimate is the archive size to make room for: logs compress to well
// under a quarter, so a quarter of the bytes plus upgrader's evidence.
func (c *Collection) Estimate() int64 { return c.bytes/4 + 1<<20 }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DefaultName names an archive after the site (or host) and the time.
func DefaultName(site string, now time.Time) string {
	if site == "" {
		site, _ = os.Hostname()
	}
	return "pomlogs-" + unsafeName.ReplaceAllString(site, "_") + "-" + now.Format("20060102-150405") + ".tar.gz"
}

// Write reads the collection into the archive: a temporary file in the
// directory, renamed to its name once complete and on disk. A file that
// cannot be read is listed as skipped; any other error, or ctx ending,
// leaves nothing under the archive's name. progress, if not nil, hears
// the bytes read so far of the total to read.
func (c *Collection) Write(ctx context.Context, progress func(done, total int64)) (Result, error) {
	o := c.opts
	if o.Name == "" {
		o.Name = DefaultName(o.Profile.Site, o.Now)
	}
	if c.ownPool {
		defer c.pool.Close()
	}
	a, err := createArchive(filepath.Join(o.Dir, o.Name))
	if err != nil {
		return Result{}, err
	}
	w := &writer{ctx: ctx, a: a, c: c, progress: progress, entries: []Entry{}, skipped: []Skip{}, notes: []string{}}
	if err := w.all(); err != nil {
		a.abort()
		return Result{}, err
	}
	size, sum, err := a.commit()
	if err != nil {
		return Result{}, err
	}
	res := Result{Path: a.final, Size: size, SHA256: sum, Files: len(w.entries), Bytes: w.bytes, Logs: c.top,
		Selection: o.Selection, Entries: w.entries, Skipped: w.skipped, Notes: w.notes, SupportAlsoAsks: SupportAlsoAsks}
	return res, nil
}

// writer carries one Write.
type writer struct {
	ctx      context.Context
	a        *archive
	c        *Collection
	progress func(done, total int64)
	done     int64
	bytes    int64
	excluded int
	entries  []Entry
	skipped  []Skip
	notes    []string
}

func (w *writer) all() error {
	c, o := w.c, w.c.opts
	w.skipped = append(w.skipped, c.skipped...)
	w.notes = append(w.notes, c.notes...)
	for _, f := range c.files {
		if err := w.file(f); err != nil {
			return err
		}
	}
	for _, d := range o.Evidence.Docs {
		if err := w.entry(Entry{Name: "upgrader/" + d.Name}, int64(len(d.Data)), 0o644, o.Now, &ctxReader{w.ctx, bytes.NewReader(d.Data)}, reason); err != nil {
			return err
		}
	}
	for _, f := range o.Evidence.Files {
		st, err := os.Lstat(f.Path)
		if err != nil {
			w.skipped = append(w.skipped, Skip{o.Profile.Unroot(f.Path), reason(err)})
			continue
		}
		if err := w.file(candidate{name: "upgrader/" + f.Name, path: f.Path, shown: o.Profile.Unroot(f.Path), size: st.Size(),
			mode: st.Mode().Perm(), modTime: st.ModTime()}); err != nil {
			return err
		}
	}
	w.notes = append(w.notes, o.Evidence.Notes...)
	if o.Failpoint != nil {
		o.Failpoint("before-manifest")
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	sort.SliceStable(w.skipped, func(i, j int) bool { return w.skipped[i].Path < w.skipped[j].Path })
	m := manifest{created: o.Now, version: o.Version, site: o.Profile.Site, sel: o.Selection, top: c.top, sources: c.sources,
		entries: w.entries, skipped: w.skipped, notes: w.notes, excluded: w.excluded, unroot: o.Profile.Unroot}
	data := m.render()
	_, _, err := w.a.add(ManifestName, int64(len(data)), 0o644, o.Now, bytes.NewReader(data))
	return err
}

// file adds one file, from disk or from an MPP's server: whole, or cut
// to the date range. A file that cannot be opened is skipped with the
// reason.
func (w *writer) file(f candidate) error {
	fd, size, err := w.open(f)
	if err != nil {
		if ctxErr := w.ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		w.skipped = append(w.skipped, Skip{f.shown, err.Error()})
		w.tick(f.size)
		return nil
	}
	defer fd.Close()
	src := io.Reader(io.NewSectionReader(fd, 0, size))
	e := Entry{Name: f.name}
	if f.cut {
		spans, timed, err := cutSpans(w.counted(&ctxReader{w.ctx, io.NewSectionReader(fd, 0, size)}), w.c.opts.Selection.Range)
		if err != nil {
			w.skipped = append(w.skipped, Skip{f.shown, "read: " + w.reason(f, err)})
			return w.ctx.Err()
		}
		if timed {
			if len(spans) == 0 {
				w.excluded++
				return nil
			}
			e.Cut, size, src = true, 0, spansReader(fd, spans)
			for _, s := range spans {
				size += s.end - s.off
			}
		}
	} else {
		src = w.counted(src)
	}
	return w.entry(e, size, int64(f.mode), f.modTime, &ctxReader{w.ctx, src}, func(err error) string { return w.reason(f, err) })
}

// entry writes one entry and lists it. A source that ends early (a file
// truncated while read) or fails (an I/O error) is padded with zeros to
// the size announced, and noted (why says the read error).
func (w *writer) entry(e Entry, size, mode int64, mtime time.Time, r io.Reader, why func(error) string) error {
	src := &softReader{r: r}
	sum, short, err := w.a.add(e.Name, size, mode, mtime, src)
	if ctxErr := w.ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err != nil {
		return err
	}
	switch {
	case src.err != nil:
		w.notes = append(w.notes, fmt.Sprintf("%s: read failed (%s); the rest is zeros", e.Name, why(src.err)))
	case short:
		w.notes = append(w.notes, e.Name+": the file got shorter while it was read; its end is zeros")
	}
	e.Size, e.SHA256 = size, sum
	w.entries = append(w.entries, e)
	w.bytes += size
	return nil
}

// fileReader is an open file of either host: read by offsets (the cut
// reads a log twice, its timestamps then its kept ranges).
type fileReader interface {
	io.ReaderAt
	io.Closer
}

// open opens a candidate and returns its size now; the error is the
// reason to list it as skipped.
func (w *writer) open(f candidate) (fileReader, int64, error) {
	if f.mpp == nil {
		fd, size, err := openRegular(f.path)
		if err != nil {
			return nil, 0, errors.New(reason(err))
		}
		return fd, size, nil
	}
	m := f.mpp
	if m.lost != nil {
		return nil, 0, fmt.Errorf("not read: MPP %s cannot be reached (%v)", m.name, m.lost)
	}
	// The connection is opened again if it dropped since the last file.
	conn, err := w.c.pool.Get(w.ctx, w.c.ssh, m.target)
	if err != nil {
		m.lost = err
		return nil, 0, fmt.Errorf("not read: MPP %s cannot be reached any more (%v); its other files left are skipped", m.name, err)
	}
	r, st, err := conn.Open(w.ctx, f.path)
	if err != nil {
		return nil, 0, errors.New(remoteReason(err, m.target))
	}
	return r, st.Size(), nil
}

func (w *writer) reason(f candidate, err error) string {
	if f.mpp != nil {
		return remoteReason(err, f.mpp.target)
	}
	return reason(err)
}

// softReader turns a read error into the end of the data and keeps it:
// one bad file must not cost the whole archive.
type softReader struct {
	r   io.Reader
	err error
}

func (s *softReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		s.err = err
		err = io.EOF
	}
	return n, err
}

func (w *writer) tick(n int64) {
	w.done += n
	if w.progress != nil {
		w.progress(w.done, w.c.bytes)
	}
}

// counted reports progress as r is read.
func (w *writer) counted(r io.Reader) io.Reader { return &progressReader{r: r, w: w} }

type progressReader struct {
	r io.Reader
	w *writer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.w.tick(int64(n))
	return n, err
}

// ctxReader stops a copy when the context ends (Ctrl-C).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// spansReader reads the kept byte ranges of a file one after the other.
func spansReader(f io.ReaderAt, spans []span) io.Reader {
	rs := make([]io.Reader, len(spans))
	for i, s := range spans {
		rs[i] = io.NewSectionReader(f, s.off, s.end-s.off)
	}
	return io.MultiReader(rs...)
}

// openRegular opens a file for reading without following a symlink or
// blocking on a FIFO put in its place since the walk, and returns its
// size now.
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, 0, fmt.Errorf("open: replaced by a symlink since it was listed: not followed")
		}
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("open: not a regular file any more (%s)", steps.FileType(st.Mode().Type()))
	}
	return f, st.Size(), nil
}
