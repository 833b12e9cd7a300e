package steps

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// helpLib is where the release notes put the online help.
const helpLib = "/opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary"

func helpSpec() orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "help-library", Action: "help-library", Params: map[string]string{
		"zip": "/media/UsingPOM.zip", "dir": helpLib, "owner": "avayavp", "group": "avayavpgroup", "services": "vpms"}}
}

// helpSim is the bare POM host (EP 7.2, vpms running) with its UsingPOM.zip.
type helpSim struct {
	simEnv
	st orchestrator.Step
	sc orchestrator.StepContext
}

func newHelpSim(tb testing.TB) helpSim {
	tb.Helper()
	e := newHostSim(tb, "pombare")
	return helpSim{simEnv: e, st: e.build(tb, helpSpec()), sc: stepContext(helpSpec(), nil)}
}

func (h helpSim) lib(rel string) string {
	return filepath.Join(h.path(helpLib), filepath.FromSlash(rel))
}

func (h helpSim) vpms(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(h.path("var/lib/sim/services/vpms"))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (h helpSim) setVPMS(tb testing.TB, state string) {
	tb.Helper()
	if err := os.WriteFile(h.path("var/lib/sim/services/vpms"), []byte(state+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func (h helpSim) probe(tb testing.TB) bool {
	tb.Helper()
	ok, err := h.st.Probe(context.Background(), h.sc)
	if err != nil {
		tb.Fatalf("Probe: %v", err)
	}
	return ok
}

func (h helpSim) apply(tb testing.TB) {
	tb.Helper()
	if err := h.st.Apply(context.Background(), h.sc); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

func (h helpSim) verify(tb testing.TB) orchestrator.Outputs {
	tb.Helper()
	out, err := h.st.Verify(context.Background(), h.sc)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return out
}

// refusedByAll runs Probe, Apply and Verify, hands each one's error to
// check, and returns Verify's.
func (h helpSim) refusedByAll(check func(what string, err error)) error {
	_, err := h.st.Probe(context.Background(), h.sc)
	check("Probe", err)
	check("Apply", h.st.Apply(context.Background(), h.sc))
	_, err = h.st.Verify(context.Background(), h.sc)
	check("Verify", err)
	return err
}

// archive returns the files of the sim's UsingPOM.zip.
func (h helpSim) archive(tb testing.TB) map[string][]byte {
	tb.Helper()
	zr, err := zip.OpenReader(h.path("media/UsingPOM.zip"))
	if err != nil {
		tb.Fatal(err)
	}
	defer zr.Close()
	out := map[string][]byte{}
	for _, f := range zr.File {
		if f.Mode().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		out[f.Name] = b
	}
	if len(out) == 0 {
		tb.Fatal("the sim's UsingPOM.zip is empty")
	}
	return out
}

// mustMatchArchive checks every file of the archive is in the library with
// its bytes and mode 755, and so are the folders.
func (h helpSim) mustMatchArchive(tb testing.TB) {
	tb.Helper()
	for name, want := range h.archive(tb) {
		p := h.lib(name)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			tb.Errorf("%s: %q %v, want the archive's %q", name, got, err, want)
		}
		for q := p; q != h.lib(""); q = filepath.Dir(q) {
			st, err := os.Lstat(q)
			if err != nil || st.Mode()&(fs.ModeType|fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != st.Mode().Type()|0o755 {
				tb.Errorf("%s: %v %v, want mode 755", q, st.Mode(), err)
			}
		}
	}
}

func writeFile(tb testing.TB, p string, data []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		tb.Fatal(err)
	}
}

// snapshot describes every path under root without following links:
// kind, mode, owner, size, content hash, link target, and the times
// (modification and change) when withTimes. The simulated tools' record
// of their own runs (sim/control/exec.log, for the secrets canary) is
// left out: running a tool to ask is not a change to the host.
func snapshot(tb testing.TB, root string, withTimes bool) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, "/sim/control/exec.log") || strings.HasSuffix(p, "/sim/control") {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid=%d gid=%d size=%d", st.Mode(), sys.Uid, sys.Gid, st.Size())
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case st.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		}
		if withTimes {
			desc += fmt.Sprintf(" mtime=%d ctime=%d.%d", st.ModTime().UnixNano(), sys.Ctim.Sec, sys.Ctim.Nsec)
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func snapshotDiff(before, after map[string]string) string {
	var out []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			out = append(out, "removed "+p)
		} else if a != b {
			out = append(out, fmt.Sprintf("changed %s: %s -> %s", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "added "+p+": "+after[p])
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// makeZip writes a zip made by build to p.
func makeZip(tb testing.TB, p string, build func(tb testing.TB, zw *zip.Writer)) {
	tb.Helper()
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	zw := zip.NewWriter(f)
	build(tb, zw)
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// zipFile adds an entry with mode (0 for a plain file) and data.
func zipFile(tb testing.TB, zw *zip.Writer, name string, mode os.FileMode, data []byte) {
	tb.Helper()
	fh := &zip.FileHeader{Name: name, Method: zip.Deflate}
	if mode != 0 {
		fh.SetMode(mode)
	}
	w, err := zw.CreateHeader(fh)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		tb.Fatal(err)
	}
}

// zipZeros adds an entry of n zero bytes, deflated.
func zipZeros(tb testing.TB, zw *zip.Writer, name string, n int) {
	tb.Helper()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		tb.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			tb.Fatal(err)
		}
		n -= k
	}
}

// zipRaw adds an entry whose header says what the caller wants, whatever
// the data: data is deflated as is, and declared is written as its
// unpacked size.
func zipRaw(tb testing.TB, zw *zip.Writer, name string, data []byte, declared uint64, crc uint32) {
	tb.Helper()
	var packed bytes.Buffer
	fw, err := flate.NewWriter(&packed, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	fw.Write(data)
	fw.Close()
	w, err := zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(packed.Len()), UncompressedSize64: declared})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(packed.Bytes()); err != nil {
		tb.Fatal(err)
	}
}

// goodStart adds the first entries of a real library: a hostile entry
// after them must still keep them from being written.
func goodStart(tb testing.TB, zw *zip.Writer) {
	zipFile(tb, zw, "index.html", 0, []byte("<html>index</html>"))
	zipFile(tb, zw, "topics/", 0, nil)
	zipFile(tb, zw, "topics/dnc.html", 0, []byte("<html>dnc</html>"))
}

// The size limits hold over the whole archive, not only per entry.
func TestHelpArchiveLimits(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "UsingPOM.zip")
	makeZip(t, p, func(tb testing.TB, zw *zip.Writer) {
		for _, n := range []string{"a.html", "b.html", "c.html", "d.html"} {
			zipFile(tb, zw, n, 0, bytes.Repeat([]byte("x"), 1000))
		}
	})
	lim := helpLimits{entries: 100, file: 1 << 20, total: 3500, ratioMin: 1 << 20, ratio: 200}
	_, err := openHelpArchive(p, lim)
	if !errors.Is(err, errUnsafeArchive) || !strings.Contains(err.Error(), `entry "d.html"`) || !strings.Contains(err.Error(), "3500") {
		t.Fatalf("total over the limit: %v", err)
	}
	lim.total, lim.file = 4000, 999
	if _, err = openHelpArchive(p, lim); !errors.Is(err, errUnsafeArchive) || !strings.Contains(err.Error(), `entry "a.html"`) {
		t.Fatalf("file over the limit: %v", err)
	}
	lim.file, lim.entries = 1000, 3
	if _, err = openHelpArchive(p, lim); !errors.Is(err, errUnsafeArchive) || !strings.Contains(err.Error(), `entry "d.html"`) {
		t.Fatalf("entries over the limit: %v", err)
	}
	lim.entries = 4
	a, err := openHelpArchive(p, lim)
	if err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	a.Close()
}

// A link planted in the library (by whoever can write there) is never
// followed: the step refuses before it stops anything or writes anything,
// and what the link points to is untouched.
func TestHelpLibraryRefusesPlantedLinks(t *testing.T) {
	for _, tc := range []struct {
		name, link string // link: path inside the library made a link to the outside folder
		target     string // relative to the outside folder
		zip        func(tb testing.TB, zw *zip.Writer)
	}{
		{name: "folder", link: "topics", target: "."},
		{name: "file", link: "index.html", target: "passwd"},
		{name: "dangling file", link: "topics/dnc.html", target: "not-there"},
		{name: "the library itself", link: "", target: "."},
		{name: "deep folder", link: "a/b", target: ".", zip: func(tb testing.TB, zw *zip.Writer) {
			zipFile(tb, zw, "index.html", 0, []byte("index"))
			zipFile(tb, zw, "a/b/c/page.html", 0, []byte("page"))
		}},
		{name: "link to a folder inside", link: "topics", target: "inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHelpSim(t)
			if tc.zip != nil {
				makeZip(t, h.path("media/UsingPOM.zip"), tc.zip)
			}
			outside := filepath.Join(t.TempDir(), "outside")
			writeFile(t, filepath.Join(outside, "passwd"), []byte("root:x:0:0"), 0o600)
			writeFile(t, filepath.Join(outside, "dnc.html"), []byte("outside"), 0o644)
			target := filepath.Join(outside, tc.target)
			if tc.target == "inside" {
				target = h.lib("inside")
				writeFile(t, filepath.Join(target, "keep.html"), []byte("keep"), 0o644)
			}
			link := h.lib(tc.link)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			outBefore, hostBefore := snapshot(t, outside, true), snapshot(t, h.sim.Dir, true)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, errUnsafeLibrary) || !strings.Contains(err.Error(), link+" is a symbolic link") {
					t.Fatalf("%s: %v\nwant a refusal naming the link %s", what, err, link)
				}
			}
			t.Logf("refused: %v", h.refusedByAll(check))
			if d := snapshotDiff(outBefore, snapshot(t, outside, true)); d != "" {
				t.Errorf("the outside folder changed:\n%s", d)
			}
			if d := snapshotDiff(hostBefore, snapshot(t, h.sim.Dir, true)); d != "" {
				t.Errorf("the host changed:\n%s", d)
			}
			if l := h.ledger(t); len(l) > 0 || h.vpms(t) != "running" {
				t.Errorf("vpms was touched: %v", l)
			}
		})
	}
}

// What is in the library where the archive has something of another kind
// is not replaced: it is someone's, and the step says so.
func TestHelpLibraryRefusesWrongKinds(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
		make             func(tb testing.TB, p string)
	}{
		{"file where a folder goes", "topics", "is a file where the archive has a folder", func(tb testing.TB, p string) {
			writeFile(tb, p, []byte("notes"), 0o644)
		}},
		{"folder where a file goes", "index.html", "is a folder where the archive has a file", func(tb testing.TB, p string) {
			writeFile(tb, filepath.Join(p, "x"), []byte("x"), 0o644)
		}},
		{"fifo where a file goes", "topics/dnc.html", "is a named pipe where the archive has a file", func(tb testing.TB, p string) {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				tb.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHelpSim(t)
			tc.make(t, h.lib(tc.path))
			before := snapshot(t, h.sim.Dir, true)
			err := h.st.Apply(context.Background(), h.sc)
			if !errors.Is(err, errUnsafeLibrary) || !strings.Contains(err.Error(), h.lib(tc.path)+" "+tc.want) {
				t.Fatalf("Apply: %v", err)
			}
			if d := snapshotDiff(before, snapshot(t, h.sim.Dir, true)); d != "" {
				t.Errorf("the host changed:\n%s", d)
			}
			if h.vpms(t) != "running" {
				t.Error("vpms was touched")
			}
		})
	}
}

// The update as the release notes do it: vpms stopped, the archive
// unpacked, mode 755, vpms started. Run again, it changes nothing: no file
// is rewritten (times unchanged), vpms is not stopped again.
func TestHelpLibraryUpdatesAndIsIdempotent(t *testing.T) {
	h := newHelpSim(t)
	pr := &progressRecorder{}
	h.sc = stepContext(helpSpec(), pr)
	if h.probe(t) {
		t.Fatal("Probe: in place before anything was done")
	}
	h.apply(t)
	h.mustMatchArchive(t)
	if got := h.ledger(t); !slices.Equal(got, []string{"service stop vpms", "service start vpms"}) {
		t.Errorf("effects %v, want vpms stopped then started", got)
	}
	out := h.verify(t)
	if out.Values["files"] != "3" || out.Values["folders"] != "1" || out.Values["service.vpms"] != "running" {
		t.Errorf("Verify outputs %v", out.Values)
	}
	if calls := pr.all(); len(calls) != 3 || calls[2] != (progressCall{"help library", 3, 3}) {
		t.Errorf("progress %v", calls)
	}
	if _, err := os.Lstat(h.lib("UsingPOM.zip")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a copy of the zip is in the library: %v", err)
	}
	if !h.probe(t) {
		t.Fatal("Probe does not see the update just made")
	}

	before, ledger := snapshot(t, h.sim.Root, true), h.ledger(t)
	time.Sleep(20 * time.Millisecond) // a rewrite would show in the times
	h.apply(t)
	h.verify(t)
	if d := snapshotDiff(before, snapshot(t, h.sim.Root, true)); d != "" {
		t.Errorf("the second Apply changed the host:\n%s", d)
	}
	if got := h.ledger(t); !slices.Equal(got, ledger) {
		t.Errorf("the second Apply did effects again: %v", got[len(ledger):])
	}
}

// From every state an interrupted or manual attempt can leave, Apply
// converges to the archive with vpms running, touching only what differs.
func TestHelpLibraryConvergesFromPartialStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup leaves the host in the partial state; the library has
		// the archive's content first when complete is set.
		complete bool
		setup    func(tb testing.TB, h helpSim)
		probe    bool     // what Probe says of the partial state
		effects  []string // the ledger lines the convergence adds
		kept     []string // library paths whose mtime must not change
		gone     []string // library paths that must be gone after
		extra    []string // library paths that must still be there after
	}{
		{name: "half unpacked, vpms stopped, temp files of a crash", setup: func(tb testing.TB, h helpSim) {
			writeFile(tb, h.lib("index.html"), h.archive(tb)["index.html"], 0o644)
			writeFile(tb, h.lib("topics/campaigns.html"), []byte("<html>trunc"), 0o755)
			writeFile(tb, h.lib("topics/.dnc.html.tmp-123456"), []byte("<html>half a page"), 0o600)
			writeFile(tb, h.lib(".index.html.tmp-99"), []byte("<html>"), 0o600)
			h.setVPMS(tb, "stopped")
		}, effects: []string{"service start vpms"}, kept: []string{"index.html"},
			gone: []string{"topics/.dnc.html.tmp-123456", ".index.html.tmp-99"}},
		{name: "unpacked, then vpms failed to start", setup: func(tb testing.TB, h helpSim) {
			h.control(tb, "fail-at", "service-start:1")
			if err := h.st.Apply(context.Background(), h.sc); err == nil {
				tb.Fatal("Apply did not fail to start vpms")
			}
			if h.vpms(tb) != "stopped" {
				tb.Fatal("vpms is not left stopped")
			}
		}, effects: []string{"service start vpms"}, kept: []string{"index.html", "topics/dnc.html", "topics"}},
		{name: "complete, vpms stopped by hand", complete: true, setup: func(tb testing.TB, h helpSim) {
			h.setVPMS(tb, "stopped")
		}, effects: []string{"service start vpms"}, kept: []string{"index.html", "topics/dnc.html"}},
		{name: "the zip copy left by a manual update", complete: true, setup: func(tb testing.TB, h helpSim) {
			b, err := os.ReadFile(h.path("media/UsingPOM.zip"))
			if err != nil {
				tb.Fatal(err)
			}
			writeFile(tb, h.lib("UsingPOM.zip"), b, 0o644)
		}, kept: []string{"index.html", "topics/dnc.html"}, gone: []string{"UsingPOM.zip"}},
		{name: "modes changed", complete: true, setup: func(tb testing.TB, h helpSim) {
			os.Chmod(h.lib("topics"), 0o700)
			os.Chmod(h.lib("index.html"), 0o755|os.ModeSetuid)
			os.Chmod(h.lib("topics/dnc.html"), 0o644)
		}, kept: []string{"index.html", "topics/dnc.html", "topics"}},
		{name: "a page edited by hand", complete: true, setup: func(tb testing.TB, h helpSim) {
			writeFile(tb, h.lib("topics/dnc.html"), []byte("<html>local edit, same mode"), 0o755)
		}, effects: []string{"service stop vpms", "service start vpms"}, kept: []string{"index.html", "topics/campaigns.html"}},
		{name: "temp files only: not counted", complete: true, probe: true, setup: func(tb testing.TB, h helpSim) {
			writeFile(tb, h.lib("topics/.dnc.html.tmp-42"), []byte("<html>"), 0o600)
		}, kept: []string{"index.html", "topics/dnc.html"}, gone: []string{"topics/.dnc.html.tmp-42"}},
		{name: "files not in the archive are kept", complete: true, probe: true, setup: func(tb testing.TB, h helpSim) {
			writeFile(tb, h.lib("custom.html"), []byte("site page"), 0o644)
			writeFile(tb, h.lib("topics/.custom.html.tmp-1"), []byte("not ours"), 0o644)
			writeFile(tb, h.lib("topics/.dnc.html.tmp-abc"), []byte("not ours either"), 0o644)
		}, kept: []string{"index.html"}, extra: []string{"custom.html", "topics/.custom.html.tmp-1", "topics/.dnc.html.tmp-abc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHelpSim(t)
			if tc.complete {
				h.apply(t)
				h.mustMatchArchive(t)
			}
			tc.setup(t, h)
			if got := h.probe(t); got != tc.probe {
				t.Fatalf("Probe of the partial state: %v, want %v", got, tc.probe)
			}
			if _, err := h.st.Verify(context.Background(), h.sc); (err == nil) != tc.probe {
				t.Fatalf("Verify of the partial state: %v", err)
			} else if err != nil {
				t.Logf("Verify of the partial state: %v", err)
			}
			times := map[string]time.Time{}
			for _, p := range tc.kept {
				st, err := os.Stat(h.lib(p))
				if err != nil {
					t.Fatal(err)
				}
				times[p] = st.ModTime()
			}
			ledger := h.ledger(t)
			time.Sleep(20 * time.Millisecond)
			h.apply(t)
			h.mustMatchArchive(t)
			h.verify(t)
			if !h.probe(t) {
				t.Error("Probe after Apply: not in place")
			}
			if got := h.ledger(t)[len(ledger):]; !slices.Equal(got, tc.effects) {
				t.Errorf("effects %v, want %v", got, tc.effects)
			}
			for p, want := range times {
				if st, err := os.Stat(h.lib(p)); err != nil || !st.ModTime().Equal(want) {
					t.Errorf("%s was rewritten although it was already right", p)
				}
			}
			for _, p := range tc.gone {
				if _, err := os.Lstat(h.lib(p)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s is still there: %v", p, err)
				}
			}
			for _, p := range tc.extra {
				if _, err := os.Lstat(h.lib(p)); err != nil {
					t.Errorf("%s was removed: %v", p, err)
				}
			}
			// And once converged, once more changes nothing.
			before, ledger := snapshot(t, h.sim.Root, true), h.ledger(t)
			h.apply(t)
			if d := snapshotDiff(before, snapshot(t, h.sim.Root, true)); d != "" {
				t.Errorf("Apply after convergence changed the host:\n%s", d)
			}
			if got := h.ledger(t); len(got) != len(ledger) {
				t.Errorf("Apply after convergence did effects: %v", got[len(ledger):])
			}
		})
	}
}

// setAccounts writes the simulated host's /etc/passwd and /etc/group.
func (h helpSim) setAccounts(tb testing.TB, passwd, group string) {
	tb.Helper()
	if err := os.MkdirAll(h.path("etc"), 0o755); err != nil {
		tb.Fatal(err)
	}
	writeTestFile(tb, h.path("etc/passwd"), []byte(passwd))
	writeTestFile(tb, h.path("etc/group"), []byte(group))
}

// The host's own accounts: root, and the owner the release notes chown the
// help library to.
const (
	simPasswd = "root:x:0:0:root:/root:/bin/bash\n# Experience Portal's account\navayavp:x:5501:5502:Avaya VP:/home/avayavp:/bin/bash\n"
	simGroup  = "root:x:0:\navayavpgroup:x:5502:avayavp\n"
)

// With the owner and group on the host (its /etc/passwd and /etc/group,
// under the profile's root), every file and folder unpacked gets them, as
// the release notes' chown avayavp.avayavpgroup does, and Probe checks
// them; a file chowned away is given back without being rewritten.
func TestHelpLibraryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	h := newHelpSim(t)
	h.setAccounts(t, simPasswd, simGroup)
	h.apply(t)
	h.verify(t)
	owned := func(p string) bool {
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		return sys.Uid == 5501 && sys.Gid == 5502
	}
	for _, p := range []string{"index.html", "topics", "topics/dnc.html", "topics/campaigns.html", ""} {
		if !owned(h.lib(p)) {
			t.Errorf("%s is not avayavp:avayavpgroup (5501:5502)", p)
		}
	}
	if err := os.Lchown(h.lib("topics/dnc.html"), 0, 0); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(h.lib("topics/dnc.html"))
	if h.probe(t) {
		t.Fatal("Probe: in place with a file owned by root")
	}
	h.apply(t)
	if !owned(h.lib("topics/dnc.html")) || !h.probe(t) {
		t.Error("the owner was not given back")
	}
	if st2, _ := os.Stat(h.lib("topics/dnc.html")); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("the file was rewritten to change its owner")
	}
	if got := h.ledger(t); len(got) != 2 {
		t.Errorf("vpms was stopped for a chown: %v", got)
	}
}

// The release notes end the update with chown avayavp.avayavpgroup: on a
// host without that user or group the step fails, before anything is
// changed, saying what is missing, why it matters and what to do.
func TestHelpLibraryRefusesWithoutOwner(t *testing.T) {
	for _, tc := range []struct {
		name, passwd, group string
		missing             string
	}{
		{"no user", "root:x:0:0::/root:/bin/sh\n", simGroup, "user avayavp does not exist on this host"},
		{"no group", simPasswd, "root:x:0:\n", "group avayavpgroup does not exist on this host"},
		{"neither", "root:x:0:0::/root:/bin/sh\n", "root:x:0:\n", "neither user avayavp nor group avayavpgroup exists on this host"},
		{"no account files", "", "", "neither user avayavp nor group avayavpgroup exists on this host"},
		{"a name that only starts the same", "avayavpx:x:1:1::/:/bin/sh\n", "avayavpgroupx:x:1:\n", "neither user avayavp nor group avayavpgroup exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHelpSim(t)
			if tc.passwd == "" {
				os.Remove(h.path("etc/passwd"))
				os.Remove(h.path("etc/group"))
			} else {
				h.setAccounts(t, tc.passwd, tc.group)
			}
			before := treeState(t, h.sim.Root)
			h.refusedByAll(func(what string, err error) {
				if err == nil {
					t.Fatalf("%s succeeded without the owner the release notes chown the library to", what)
				}
				for _, want := range []string{tc.missing, "chown avayavp.avayavpgroup", "nothing was changed",
					"upgrader retry", "upgrader skip help-library --reason"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not say %q", what, err, want)
					}
				}
			})
			if got := h.ledger(t); len(got) != 0 {
				t.Errorf("vpms was touched: %v", got)
			}
			if after := treeState(t, h.sim.Root); after != before {
				t.Error("the host changed")
			}
		})
	}
}

// The real archive of the simulated host passes every check, with every
// file hashed.
func TestHelpArchiveAcceptsTheRealOne(t *testing.T) {
	h := newHelpSim(t)
	a, err := openHelpArchive(h.path("media/UsingPOM.zip"), defaultHelpLimits)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := h.archive(t)
	if len(a.files) != len(want) || len(a.dirs) != 1 || a.dirs[0].name != "topics" {
		t.Fatalf("files %d dirs %v", len(a.files), a.dirs)
	}
	for _, e := range a.files {
		if sha256.Sum256(want[e.name]) != e.sum {
			t.Errorf("%s: hash differs", e.name)
		}
	}
}

// When the library is the media folder, the archive there is the source,
// not a copy left behind: it is kept.
func TestHelpLibraryKeepsTheSourceZip(t *testing.T) {
	h := newHelpSim(t)
	spec := helpSpec()
	spec.Params["dir"] = "/media"
	h.st, h.sc = h.build(t, spec), stepContext(spec, nil)
	h.apply(t)
	h.verify(t)
	if _, err := os.Stat(h.path("media/UsingPOM.zip")); err != nil {
		t.Fatalf("the source archive was removed: %v", err)
	}
	if !h.probe(t) {
		t.Error("Probe: not in place")
	}
}
