package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
)

// emptyService is a daemon with no run and no plan: whatever a request
// gets past the checks to is answered with a clear "not found".
type emptyService struct{}

var _ orchestrator.Service = emptyService{}

var errNoPlan = fmt.Errorf("%w: no plan in this test", orchestrator.ErrInvalidRequest)

func (emptyService) History(context.Context) ([]orchestrator.RunSummary, error) { return nil, nil }
func (emptyService) Plan(context.Context, orchestrator.PlanRequest) (orchestrator.Plan, error) {
	return orchestrator.Plan{}, errNoPlan
}
func (emptyService) Start(context.Context, orchestrator.StartRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, errNoPlan
}
func (emptyService) Resume(context.Context, orchestrator.ResumeRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Confirm(context.Context, orchestrator.ConfirmRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Retry(context.Context, orchestrator.RetryRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Skip(context.Context, orchestrator.SkipRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Abort(context.Context, orchestrator.AbortRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Export(context.Context) (orchestrator.RunExport, error) {
	return orchestrator.RunExport{}, orchestrator.ErrNoActiveRun
}
func (emptyService) MarkExported(context.Context, orchestrator.MarkExportedRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrRunNotFound
}
func (emptyService) Import(context.Context, orchestrator.ImportRequest) (orchestrator.Status, error) {
	return orchestrator.Status{}, errNoPlan
}
func (emptyService) StepTimes(context.Context, string) (orchestrator.StepTimes, error) {
	return orchestrator.StepTimes{}, nil
}
func (emptyService) Status(context.Context, string) (orchestrator.Status, error) {
	return orchestrator.Status{}, orchestrator.ErrNoActiveRun
}
func (emptyService) Journal(context.Context, string, uint64) ([]orchestrator.JournalEntry, error) {
	return nil, orchestrator.ErrNoActiveRun
}

// Watch says nothing until the client leaves.
func (emptyService) Watch(ctx context.Context, _ uint64) (<-chan orchestrator.Notice, error) {
	ch := make(chan orchestrator.Notice)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// Short deadlines, so the slow clients take a fraction of a second.
const (
	testHeaderTimeout = 300 * time.Millisecond
	testReadTimeout   = 600 * time.Millisecond
)

// serve starts the API on a real socket in a temporary folder that other
// users may reach (the uid check, not the file mode, is what is tested).
func serve(t *testing.T) string {
	t.Helper()
	return serveWith(t, testHeaderTimeout, testReadTimeout)
}

// serveWith is serve with the server's request deadlines given.
func serveWith(t *testing.T, header, read time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	path := filepath.Join(dir, "run", "upgrader.sock")
	l, err := Listen(path, -1)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(path), 0o755)
	os.Chmod(path, 0o666)
	hs := (&Server{Service: emptyService{}, Group: -1, Log: zerolog.Nop()}).HTTPServer()
	hs.ReadHeaderTimeout, hs.ReadTimeout = header, read
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return path
}

// dialAs connects to the socket with the effective uid and gid of another
// user, on one thread only: the process stays root. The thread is never
// given back to the runtime (the goroutine ends locked), so nothing else
// ever runs with those ids.
func dialAs(t *testing.T, path string, uid, gid int) net.Conn {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		setres := func(call uintptr, id int) error {
			if _, _, e := unix.RawSyscall(call, ^uintptr(0), uintptr(id), ^uintptr(0)); e != 0 {
				return e
			}
			return nil
		}
		if err := setres(unix.SYS_SETRESGID, gid); err != nil {
			ch <- result{-1, err}
			return
		}
		if err := setres(unix.SYS_SETRESUID, uid); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
			}
		}
		setres(unix.SYS_SETRESUID, 0)
		setres(unix.SYS_SETRESGID, 0)
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("connect as uid %d: %v", uid, r.err)
	}
	f := os.NewFile(uintptr(r.fd), "peer")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// answer is what the server said to a raw request.
type answer struct {
	code   int
	body   string
	closed bool // the connection ended without an answer
	after  time.Duration
}

// exchange writes raw to c and reads one response; wait bounds the wait.
func exchange(t *testing.T, c net.Conn, raw string, wait time.Duration) answer {
	t.Helper()
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return answer{closed: true, after: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		b = []byte(e.Error) // the message as the client shows it
	}
	return answer{code: resp.StatusCode, body: string(b), after: time.Since(start)}
}

func dial(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func post(route, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", route, len(body), body)
}

// The hostile client corpus, against a real socket: other users, bodies
// too large or never finished, headers never finished or too large,
// malformed and unchecked JSON, unknown routes and methods, and a socket
// path someone prepared. Each is refused with a status and a message that
// says what is wrong; a well-behaved client is served alongside.
func TestHostileAPI(t *testing.T) {
	var tried, refused int
	t.Cleanup(func() { fmt.Printf("hostile input (api): %d tried, %d refused with a message\n", tried, refused) })
	path := serve(t)
	patient := serveWith(t, 10*time.Second, 20*time.Second)
	big := fmt.Sprintf(`{"step": "x", "attestation": {"a": %q}}`, strings.Repeat("x", MaxRequest))
	manyFields := map[string]string{}
	for i := range 65 {
		manyFields[fmt.Sprint("f", i)] = "v"
	}
	many, _ := json.Marshal(orchestrator.ConfirmRequest{Step: "backup-db", Attestation: manyFields})
	chunked := "POST /v1/confirm HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	for range 20 {
		chunked += fmt.Sprintf("%x\r\n%s\r\n", 8<<10, strings.Repeat(" ", 8<<10))
	}
	chunked += "0\r\n\r\n"
	type request struct {
		name string
		conn func(t *testing.T) net.Conn // default: root
		raw  string
		code int
		want string // in the message
	}
	for _, tc := range []request{
		{name: "another user", conn: func(t *testing.T) net.Conn { return dialAs(t, path, 65534, 65534) },
			raw: "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", code: 403, want: "uid 65534 may not use upgrader's control socket"},
		{name: "another user, mutating", conn: func(t *testing.T) net.Conn { return dialAs(t, path, 1000, 1000) },
			raw: post("/v1/abort", `{"reason": "mine now"}`), code: 403, want: "uid 1000 may not"},
		{name: "another user, oversized", conn: func(t *testing.T) net.Conn { return dialAs(t, path, 65534, 65534) },
			raw: post("/v1/confirm", big), code: 403, want: "uid 65534 may not"},
		{name: "oversized body", raw: post("/v1/confirm", big), code: 413, want: "larger than 65536 bytes"},
		{name: "oversized chunked body", raw: chunked, code: 413, want: "larger than 65536 bytes"},
		{name: "oversized headers", raw: "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 32<<10) + "\r\n\r\n",
			code: 431, want: "Request Header Fields Too Large"},
		{name: "headers never finished (slow loris)", raw: "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n",
			code: 408, want: "request headers not received within 5s: send the whole request at once"},
		{name: "body never finished", raw: "POST /v1/confirm HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"step\":",
			code: 408, want: "request body not received within 10s"},
		{name: "empty body", raw: post("/v1/retry", ""), code: 400, want: "empty body"},
		{name: "truncated JSON", raw: post("/v1/confirm", `{"step": "backup-db"`), code: 400, want: "unexpected EOF"},
		{name: "not an object", raw: post("/v1/confirm", `["backup-db"]`), code: 400, want: "is not a request: send a JSON object"},
		{name: "wrong type", raw: post("/v1/confirm", `{"step": 7}`), code: 400, want: "cannot unmarshal number"},
		{name: "unknown field", raw: post("/v1/skip", `{"step": "x", "reason": "r", "force": true}`), code: 400, want: `unknown field "force"`},
		{name: "two objects", raw: post("/v1/abort", `{"reason": "a"} {"reason": "b"}`), code: 400, want: "more after the JSON object"},
		{name: "garbage after the object", raw: post("/v1/abort", `{"reason": "a"}]`), code: 400, want: "more after the JSON object"},
		{name: "null", raw: post("/v1/abort", `null`), code: 400, want: "null is not a request"},
		{name: "null start", raw: post("/v1/start", `null`), code: 400, want: "null is not a request: send a JSON object"},
		{name: "null retry", raw: post("/v1/retry", `null`), code: 400, want: "null is not a request: send a JSON object"},
		{name: "abort without a reason", raw: post("/v1/abort", `{}`), code: 400, want: "abort needs a reason"},
		{name: "skip without a step", raw: post("/v1/skip", `{"reason": "r"}`), code: 400, want: "skip needs the step and a reason"},
		{name: "confirm without a step", raw: post("/v1/confirm", `{}`), code: 400, want: "confirm needs the step"},
		{name: "escape sequence in a reason", raw: post("/v1/abort", `{"reason": "\u001b[2Jall fine"}`), code: 400, want: "control character (U+001B)"},
		{name: "forged journal line in a reason", raw: post("/v1/skip", `{"step": "x", "reason": "ok\nuid=0 confirmed"}`), code: 400, want: "control character (U+000A)"},
		{name: "NUL in an attestation", raw: post("/v1/confirm", `{"step": "backup-db", "attestation": {"backup_path": "/x\u0000y"}}`), code: 400, want: "control character (U+0000)"},
		{name: "65 attestation fields", raw: post("/v1/confirm", string(many)), code: 400, want: "65 attestation fields"},
		{name: "fingerprint not hex", raw: post("/v1/start", `{"expect_fingerprint": "sha256:$(reboot)", "consent": {"via": "fingerprint"}}`), code: 400, want: "is not a plan fingerprint"},
		{name: "start without consent", raw: post("/v1/start", `{}`), code: 400, want: "no consent"},
		{name: "unknown route", raw: "GET /v1/secrets HTTP/1.1\r\nHost: x\r\n\r\n", code: 404, want: "no route /v1/secrets"},
		{name: "dot-dot route", raw: "GET /v1/status/../plan HTTP/1.1\r\nHost: x\r\n\r\n", code: 404, want: "no route"},
		{name: "wrong method", raw: "DELETE /v1/start HTTP/1.1\r\nHost: x\r\n\r\n", code: 405, want: "/v1/start wants POST"},
		{name: "GET of a mutating route", raw: "GET /v1/abort HTTP/1.1\r\nHost: x\r\n\r\n", code: 405, want: "wants POST"},
		{name: "not HTTP", raw: "HELLO\r\n\r\n", code: 400, want: "Bad Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried++
			c := dial
			if tc.conn != nil {
				c = func(t *testing.T, _ string) net.Conn { return tc.conn(t) }
			}
			// Only the cases that wait for a deadline get the short one: a
			// stall of a loaded machine between dial and write must not
			// turn another answer into a 408.
			at := patient
			if tc.code == 408 {
				at = path
			}
			got := exchange(t, c(t, at), tc.raw, 5*time.Second)
			if got.closed || got.code != tc.code || !strings.Contains(got.body, tc.want) {
				t.Fatalf("got %d %q (closed %v), want %d with %q", got.code, got.body, got.closed, tc.code, tc.want)
			}
			if got.code == 408 && got.after > 3*testReadTimeout {
				t.Fatalf("answered after %s", got.after)
			}
			t.Logf("refused: %d %s", got.code, strings.TrimSpace(got.body))
			refused++
		})
	}

	// A socket path someone prepared: refused, left as it was.
	for _, tc := range []struct {
		name, want string
		prepare    func(t *testing.T, path string)
	}{
		{"symlink at the socket path", "is a symlink: refusing it", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere.sock"), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a live socket", "is a symlink: refusing it", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			if err := os.Symlink(serve(t), path); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlinked socket folder", "is a symlink", func(t *testing.T, path string) {
			if err := os.Symlink(t.TempDir(), filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}},
		{"socket folder writable by others", "is writable by others", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.Chmod(filepath.Dir(path), 0o777)
		}},
		// Another user who owns the folder can move root's socket aside and
		// listen there in its place, whatever the folder's mode.
		{"socket folder of another user (0755)", "socket directory " + "%DIR%" + " belongs to uid 65534", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			os.Chown(filepath.Dir(path), 65534, 65534)
		}},
		{"socket folder of another user (0700)", "belongs to uid 65534", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.Chown(filepath.Dir(path), 65534, 65534)
		}},
		{"socket folder inside another user's folder", "belongs to uid 65534", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.Chown(filepath.Dir(filepath.Dir(path)), 65534, 65534)
		}},
		{"socket folder writable by its group", "is writable by others", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.Chmod(filepath.Dir(path), 0o770)
		}},
		{"a file at the socket path", "exists and is not a socket", func(t *testing.T, path string) {
			os.MkdirAll(filepath.Dir(path), 0o700)
			os.WriteFile(path, []byte("keep"), 0o600)
		}},
		{"a live daemon's socket", "another upgrader daemon answers on", func(t *testing.T, path string) {
			l, err := Listen(path, -1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried++
			path := filepath.Join(t.TempDir(), "run", "upgrader.sock")
			tc.prepare(t, path)
			before, _ := os.Lstat(path)
			l, err := Listen(path, -1)
			if err == nil {
				l.Close()
				t.Fatal("Listen accepted the path")
			}
			if want := strings.ReplaceAll(tc.want, "%DIR%", filepath.Dir(path)); !strings.Contains(err.Error(), want) {
				t.Fatalf("Listen: %v, want %q", err, want)
			}
			if after, _ := os.Lstat(path); (before == nil) != (after == nil) || (before != nil && !os.SameFile(before, after)) {
				t.Fatal("the socket path was changed")
			}
			t.Logf("refused: %v", err)
			refused++
		})
	}
}

// Beside a slow client holding its request open, others are served at
// once; a stale socket of a dead daemon is replaced; a watch outlives the
// request deadline.
func TestAPIServesBesideSlowClients(t *testing.T) {
	// A server whose request deadline (10 s) is far beyond the answer's
	// time even on a loaded machine: the other client is answered while
	// the slow one still waits, not after the slow one's deadline.
	beside := serveWith(t, 10*time.Second, 20*time.Second)
	slow := dial(t, beside)
	defer slow.Close()
	io.WriteString(slow, "GET /v1/status HTTP/1.1\r\nHost: x\r\n")
	got := exchange(t, dial(t, beside), "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if got.code != 404 || !strings.Contains(got.body, "no active run") {
		t.Fatalf("status beside a slow client: %+v", got)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if b, err := io.ReadAll(slow); len(b) != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the slow client was answered before the other (%q, %v): one served after the other", b, err)
	}

	path := serve(t)
	// Idle between requests: closed without an answer, not a 408.
	idle := dial(t, path)
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(idle); err != nil || len(b) != 0 {
		t.Fatalf("an idle connection got %q %v", b, err)
	}
	idle.Close()

	// Keep-alive: the second request on a connection is served too, and
	// a partial third one gets its 408.
	c := dial(t, path)
	defer c.Close()
	br := bufio.NewReader(c)
	for range 2 {
		io.WriteString(c, "GET /v1/journal HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("keep-alive request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	io.WriteString(c, "GET /v1/jour")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 408 {
		t.Fatalf("partial request after two: %v %v", resp, err)
	}

	// A stale socket (its daemon died) is replaced.
	stale := filepath.Join(t.TempDir(), "run", "upgrader.sock")
	l, err := Listen(stale, -1)
	if err != nil {
		t.Fatal(err)
	}
	l.(deadlineListener).Listener.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if l, err = Listen(stale, -1); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l.Close()

	// A watch stream is not cut by the request deadline.
	w := dial(t, path)
	defer w.Close()
	io.WriteString(w, "GET /v1/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	wr := bufio.NewReader(w)
	resp, err = http.ReadResponse(wr, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", resp, err)
	}
	buf := make([]byte, 1)
	w.SetReadDeadline(time.Now().Add(3 * testReadTimeout))
	if _, err := resp.Body.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the watch stream ended before its client left: %v", err)
	}
}

func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		body string
		v    Request
		code int
		want string
	}{
		{`{}`, &orchestrator.RetryRequest{}, 200, ""},
		{" {}\n", &orchestrator.RetryRequest{}, 200, ""},
		{`{"expect_fingerprint": "sha256:` + strings.Repeat("ab", 32) + `", "consent": {"via": "fingerprint"}}`, &orchestrator.StartRequest{}, 200, ""},
		{`{"expect_fingerprint": "870742ed", "consent": {"via": "fingerprint"}}`, &orchestrator.StartRequest{}, 200, ""},
		{`{"consent": {"via": "--yes"}}`, &orchestrator.StartRequest{}, 200, ""},
		{`{"consent": {"via": "fingerprint"}}`, &orchestrator.StartRequest{}, 400, "needs expect_fingerprint"},
		{`{"expect_fingerprint": ""}`, &orchestrator.StartRequest{}, 400, "no consent"},
		{`{"step": "backup-db", "attestation": {"backup_path": "/backup/pom.dmp"}}`, &orchestrator.ConfirmRequest{}, 200, ""},
		{`{"step": "x", "reason": "vendor said so — ticket #12"}`, &orchestrator.SkipRequest{}, 200, ""},
		{`{"expect_fingerprint": "sha256:", "consent": {"via": "--yes"}}`, &orchestrator.StartRequest{}, 400, "not a plan fingerprint"},
		{`{"expect_fingerprint": "` + strings.Repeat("a", 65) + `", "consent": {"via": "--yes"}}`, &orchestrator.StartRequest{}, 400, "not a plan fingerprint"},
		{`{"expect_fingerprint": "ABC", "consent": {"via": "--yes"}}`, &orchestrator.StartRequest{}, 400, "not a plan fingerprint"},
		{`{"step": "x", "attestation": {"": "v"}}`, &orchestrator.ConfirmRequest{}, 400, "has no name"},
		{`{"reason": "` + strings.Repeat("r", 4097) + `"}`, &orchestrator.AbortRequest{}, 400, "more than 4096"},
		{`{"reason": "a\u202eb"}`, &orchestrator.AbortRequest{}, 400, "U+202E"},
		{strings.Repeat(" ", MaxRequest) + "{}", &orchestrator.RetryRequest{}, 413, "larger than"},
		{`null`, &orchestrator.StartRequest{}, 400, "null is not a request: send a JSON object"},
		{" null\n", &orchestrator.RetryRequest{}, 400, "null is not a request"},
		{`null`, &orchestrator.ConfirmRequest{}, 400, "null is not a request"},
	} {
		code, err := DecodeRequest([]byte(tc.body), tc.v, MaxRequest)
		if code != tc.code || (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("DecodeRequest(%.60q) = %d, %v; want %d %q", tc.body, code, err, tc.code, tc.want)
		}
	}
}

// listenAs listens on path as another user, on one locked thread as
// dialAs does: the kernel records the listener's credentials at listen(),
// and they are what a client's SO_PEERCRED reads. It returns what each
// connection received before its client closed it.
func listenAs(t *testing.T, path string, uid, gid int) <-chan string {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		setres := func(call uintptr, id int) error {
			if _, _, e := unix.RawSyscall(call, ^uintptr(0), uintptr(id), ^uintptr(0)); e != 0 {
				return e
			}
			return nil
		}
		if err := setres(unix.SYS_SETRESGID, gid); err != nil {
			ch <- result{-1, err}
			return
		}
		if err := setres(unix.SYS_SETRESUID, uid); err != nil {
			ch <- result{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err == nil {
				err = unix.Listen(fd, 8)
			}
		}
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen as uid %d: %v", uid, r.err)
	}
	f := os.NewFile(uintptr(r.fd), "impostor")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			got <- string(b)
		}
	}()
	return got
}

// The client proves who listens before it sends a byte: root's daemon is
// accepted; a socket another user put in its place is refused, named by
// its uid, and receives nothing.
func TestDialChecksWhoListens(t *testing.T) {
	c, err := Dial(context.Background(), serve(t))
	if err != nil {
		t.Fatalf("root's daemon refused: %v", err)
	}
	c.Close()

	dir := filepath.Join(t.TempDir(), "run")
	os.Mkdir(dir, 0o755)
	os.Chown(dir, 65534, 65534)
	path := filepath.Join(dir, "upgrader.sock")
	got := listenAs(t, path, 65534, 65534)
	c, err = Dial(context.Background(), path)
	if err == nil {
		io.WriteString(c, "POST /v1/confirm HTTP/1.1\r\n") // what a client would send next
		c.Close()
		t.Error("Dial accepted a socket served by uid 65534")
	} else if imp := (*ImpostorError)(nil); !errors.As(err, &imp) || imp.UID != 65534 ||
		!strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), path) {
		t.Errorf("Dial: %v; want an ImpostorError naming uid 65534 and the socket", err)
	}
	select {
	case b := <-got:
		if b != "" {
			t.Errorf("the impostor received %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the impostor never saw the connection")
	}
}

// The unit's --group setup: the runtime directory root's and 0750 or 0755
// (so the group reaches the socket), the socket root:GROUP 0660.
func TestListenGroupDirectory(t *testing.T) {
	for _, mode := range []os.FileMode{0o750, 0o755} {
		dir := filepath.Join(t.TempDir(), "run")
		os.Mkdir(dir, mode)
		os.Chmod(dir, mode)
		path := filepath.Join(dir, "upgrader.sock")
		l, err := Listen(path, 100)
		if err != nil {
			t.Fatalf("Listen in a root-owned %04o directory: %v", mode, err)
		}
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 100 {
			t.Errorf("socket mode %v gid %d, want 0660 and gid 100", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid)
		}
		l.Close()
	}
}
