// Package api is upgrader's control socket: HTTP+JSON over a Unix socket,
// a table of routes with the caller's permission checked first (the peer's
// uid from SO_PEERCRED), size limits and deadlines.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// MaxRequest bounds a request body: every request is a few fields.
const MaxRequest = 64 << 10

// Peer is the process at the other end of the socket.
type Peer struct {
	UID, GID, PID int
}

// Actor names the caller in the journal.
func (p Peer) Actor() string {
	if u, err := user.LookupId(strconv.Itoa(p.UID)); err == nil {
		return fmt.Sprintf("uid=%d(%s) via socket", p.UID, u.Username)
	}
	return fmt.Sprintf("uid=%d via socket", p.UID)
}

// Backend is what the API drives; the daemon provides it.
type Backend interface {
	// Plan builds the plan for this host now.
	Plan() (orchestrator.Plan, error)
	Supervisor() *orchestrator.Supervisor
	Store() orchestrator.Store
	// NewRunID names a new run; ProfilePath is recorded with it.
	NewRunID() string
	ProfilePath() string
}

// Server serves the control API.
type Server struct {
	Backend Backend
	// Group may use the API besides root (gid), -1 for none.
	Group int
	Log   zerolog.Logger
	// Degraded, when set, is why the daemon cannot serve runs (a damaged
	// state file): every route answers 503 with it, nothing is started.
	Degraded error
}

type peerKey struct{}

type route struct {
	method, path string
	mutating     bool
	handle       func(s *Server, w http.ResponseWriter, r *http.Request, p Peer)
}

// routes is the whole API; permission is checked before any handler.
var routes = []route{
	{"GET", "/v1/status", false, (*Server).status},
	{"GET", "/v1/plan", false, (*Server).plan},
	{"GET", "/v1/journal", false, (*Server).journal},
	{"GET", "/v1/watch", false, (*Server).watch},
	{"POST", "/v1/start", true, (*Server).start},
	{"POST", "/v1/confirm", true, (*Server).confirm},
	{"POST", "/v1/retry", true, (*Server).retry},
	{"POST", "/v1/skip", true, (*Server).skip},
	{"POST", "/v1/abort", true, (*Server).abort},
}

// Error is the body of every refusal.
type Error struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) { writeJSON(w, code, Error{Error: err.Error()}) }

func (s *Server) allowed(p Peer) bool {
	if p.UID == 0 || (s.Group >= 0 && p.GID == s.Group) {
		return true
	}
	if s.Group < 0 {
		return false
	}
	u, err := user.LookupId(strconv.Itoa(p.UID))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, strconv.Itoa(s.Group))
}

// ServeHTTP checks the caller, then dispatches by the route table.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(*deadlineConn); ok {
		c.handling()
	}
	p, ok := r.Context().Value(peerKey{}).(Peer)
	if !ok || !s.allowed(p) {
		fail(w, http.StatusForbidden, fmt.Errorf("uid %d may not use upgrader's control socket: use root or the configured group", p.UID))
		return
	}
	if s.Degraded != nil {
		fail(w, http.StatusServiceUnavailable, fmt.Errorf("needs operator: %w", s.Degraded))
		return
	}
	for _, rt := range routes {
		if rt.path != r.URL.Path {
			continue
		}
		if rt.method != r.Method {
			fail(w, http.StatusMethodNotAllowed, fmt.Errorf("%s wants %s", rt.path, rt.method))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequest)
		if rt.mutating {
			s.Log.Info().Str("route", rt.path).Str("actor", p.Actor()).Msg("request")
		}
		rt.handle(s, w, r, p)
		return
	}
	fail(w, http.StatusNotFound, fmt.Errorf("no route %s", r.URL.Path))
}

// Request is the body of a mutating call: decoded strictly, then checked.
type Request interface {
	// Check says what is wrong with the decoded request, nil if nothing.
	Check() error
}

// DecodeRequest reads one request body: at most MaxRequest bytes, one JSON
// object with only the request's fields and nothing after it, whose values
// pass the request's Check. On a refusal it returns the HTTP status (413
// too large, 400 otherwise) and a message that says what to send instead.
func DecodeRequest(body []byte, v Request) (int, error) {
	if len(body) > MaxRequest {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes: send only the request's fields", MaxRequest)
	}
	switch trimmed := bytes.TrimSpace(body); {
	case len(trimmed) == 0:
		return http.StatusBadRequest, errors.New("bad request: empty body; send a JSON object ({} when there is nothing to say)")
	case string(trimmed) == "null":
		// encoding/json decodes null into a struct as "nothing to set":
		// without this, null would pass for {} (and start a run).
		return http.StatusBadRequest, errors.New("bad request: null is not a request: send a JSON object ({} when there is nothing to say)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return http.StatusBadRequest, fmt.Errorf("bad request: %v; send one JSON object of the route's fields", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return http.StatusBadRequest, errors.New("bad request: more after the JSON object; send exactly one")
	}
	if err := v.Check(); err != nil {
		return http.StatusBadRequest, fmt.Errorf("bad request: %w", err)
	}
	return http.StatusOK, nil
}

// decode reads the request's body (already bounded to MaxRequest bytes by
// ServeHTTP) and decodes it, or answers the refusal.
func decode(w http.ResponseWriter, r *http.Request, v Request) bool {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes: send only the request's fields", MaxRequest))
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		fail(w, http.StatusRequestTimeout, fmt.Errorf("request body not received within %s: send the whole request at once", readTimeout))
		return false
	case err != nil:
		fail(w, http.StatusBadRequest, fmt.Errorf("bad request: reading the body: %v", err))
		return false
	}
	if code, err := DecodeRequest(body, v); err != nil {
		fail(w, code, err)
		return false
	}
	return true
}

// checkText refuses a control character in a request's text: it would go
// into the journal and onto operators' terminals as it is.
func checkText(field, s string, most int) error {
	if len(s) > most {
		return fmt.Errorf("%s is %d bytes, more than %d", field, len(s), most)
	}
	for _, c := range s {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) || c == 0x2028 || c == 0x2029 {
			return fmt.Errorf("%s has a control character (%U): send it on one line, without escape sequences", field, c)
		}
	}
	return nil
}

// statusCode maps an operation's error to an HTTP status.
func statusCode(err error) int {
	switch {
	case errors.Is(err, orchestrator.ErrActiveRun), errors.Is(err, orchestrator.ErrBusy),
		errors.Is(err, orchestrator.ErrTransition), errors.Is(err, orchestrator.ErrPastPointOfNoReturn),
		errors.Is(err, orchestrator.ErrSkipNotAllowed), errors.Is(err, orchestrator.ErrAttestation):
		return http.StatusConflict
	case errors.Is(err, orchestrator.ErrNoActiveRun), errors.Is(err, orchestrator.ErrRunNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// Status is where the daemon's run stands.
type Status struct {
	Run   orchestrator.Run          `json:"run"`
	Steps []orchestrator.StepRecord `json:"steps"`
	Busy  bool                      `json:"busy"`
}

func (s *Server) currentRun() (orchestrator.Run, []orchestrator.StepRecord, error) {
	st := s.Backend.Store()
	id, err := st.ActiveRun()
	if errors.Is(err, orchestrator.ErrNoActiveRun) {
		id, err = st.LatestRun()
	}
	if err != nil {
		return orchestrator.Run{}, nil, err
	}
	return st.LoadRun(id)
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request, _ Peer) {
	run, recs, err := s.currentRun()
	if err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, Status{Run: run, Steps: recs, Busy: s.Backend.Supervisor().Busy()})
}

func (s *Server) plan(w http.ResponseWriter, _ *http.Request, _ Peer) {
	plan, err := s.Backend.Plan()
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) journal(w http.ResponseWriter, r *http.Request, _ Peer) {
	run, _, err := s.currentRun()
	if err != nil {
		fail(w, statusCode(err), err)
		return
	}
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	entries, err := s.Backend.Store().Journal(run.ID, after)
	if err != nil {
		fail(w, statusCode(err), err)
		return
	}
	if entries == nil {
		entries = []orchestrator.JournalEntry{}
	}
	writeJSON(w, http.StatusOK, entries)
}

// watch streams the engine's notices as JSON lines until the client goes.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, _ Peer) {
	ch, stop := s.Backend.Supervisor().Subscribe()
	defer stop()
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	// The first line says where the run stands now.
	if run, _, err := s.currentRun(); err == nil {
		enc.Encode(orchestrator.Notice{Kind: "hello", Run: run.ID, Text: string(run.State)})
		if !s.Backend.Supervisor().Busy() {
			enc.Encode(orchestrator.Notice{Kind: "stopped", Run: run.ID, Text: string(run.State)})
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case n := <-ch:
			if enc.Encode(n) != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// StartRequest starts a run of the plan the daemon makes now, which must
// have the fingerprint the operator reviewed (if given).
type StartRequest struct {
	ExpectFingerprint string `json:"expect_fingerprint"`
}

// Check accepts no fingerprint, or the plan's ("sha256:" and 64 hex
// digits) or a prefix of its digits.
func (r StartRequest) Check() error {
	fp := trimAlg(r.ExpectFingerprint)
	if r.ExpectFingerprint != "" && (fp == "" || len(fp) > 64 || strings.Trim(fp, "0123456789abcdef") != "") {
		return fmt.Errorf("expect_fingerprint %.80q is not a plan fingerprint: send the one `upgrader plan` prints", r.ExpectFingerprint)
	}
	return nil
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, p Peer) {
	var req StartRequest
	if !decode(w, r, &req) {
		return
	}
	plan, err := s.Backend.Plan()
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	if req.ExpectFingerprint != "" && !hasPrefix(plan.Fingerprint, req.ExpectFingerprint) {
		fail(w, http.StatusConflict, fmt.Errorf("the plan's fingerprint is %s, not the %s you reviewed: review it again",
			orchestrator.ShortFingerprint(plan.Fingerprint), req.ExpectFingerprint))
		return
	}
	if plan.NothingToDo {
		writeJSON(w, http.StatusOK, map[string]any{"nothing_to_do": true, "plan": plan})
		return
	}
	run, err := s.Backend.Supervisor().Start(plan, s.Backend.NewRunID(), s.Backend.ProfilePath(), p.Actor())
	if err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, run)
}

func hasPrefix(fp, want string) bool {
	fp, want = trimAlg(fp), trimAlg(want)
	return want != "" && len(want) <= len(fp) && fp[:len(want)] == want
}

func trimAlg(s string) string {
	if len(s) > 7 && s[:7] == "sha256:" {
		return s[7:]
	}
	return s
}

// ConfirmRequest confirms the gate the run waits at.
type ConfirmRequest struct {
	Step        string            `json:"step"`
	Attestation map[string]string `json:"attestation"`
}

// Check needs the step, and plain one-line attestations.
func (r ConfirmRequest) Check() error {
	if r.Step == "" {
		return errors.New("confirm needs the step of the gate")
	}
	if len(r.Attestation) > 64 {
		return fmt.Errorf("%d attestation fields: a gate asks for a few", len(r.Attestation))
	}
	errs := []error{checkText("step", r.Step, 200)}
	for k, v := range r.Attestation {
		if k == "" {
			errs = append(errs, errors.New("an attestation field has no name"))
		}
		errs = append(errs, checkText("attestation field name", k, 200), checkText("attestation "+k, v, 4096))
	}
	return errors.Join(errs...)
}

// retryRequest carries nothing: {}.
type retryRequest struct{}

func (retryRequest) Check() error { return nil }

func (s *Server) confirm(w http.ResponseWriter, r *http.Request, p Peer) {
	var req ConfirmRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.Backend.Supervisor().Confirm(req.Step, p.Actor(), req.Attestation); err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"confirmed": req.Step})
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request, p Peer) {
	var req retryRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.Backend.Supervisor().Retry(p.Actor()); err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"retrying": "yes"})
}

// SkipRequest skips a with-reason step; the reason is required.
type SkipRequest struct {
	Step   string `json:"step"`
	Reason string `json:"reason"`
}

// Check needs the step and a one-line reason.
func (r SkipRequest) Check() error {
	if r.Step == "" || r.Reason == "" {
		return errors.New("skip needs the step and a reason")
	}
	return errors.Join(checkText("step", r.Step, 200), checkText("reason", r.Reason, 4096))
}

func (s *Server) skip(w http.ResponseWriter, r *http.Request, p Peer) {
	var req SkipRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.Backend.Supervisor().Skip(req.Step, p.Actor(), req.Reason); err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"skipped": req.Step})
}

// AbortRequest aborts the run; the reason is required.
type AbortRequest struct {
	Reason string `json:"reason"`
}

// Check needs a one-line reason.
func (r AbortRequest) Check() error {
	if r.Reason == "" {
		return errors.New("abort needs a reason")
	}
	return checkText("reason", r.Reason, 4096)
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request, p Peer) {
	var req AbortRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.Backend.Supervisor().Abort(p.Actor(), req.Reason); err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"aborted": "yes"})
}

// Listen opens the socket. Its directory, and every one above it, must be
// root's and not writable by others (securefs.CheckDir); a missing one is
// made 0700. Whoever can write the directory could move the socket aside
// and listen in its place, so a directory of another user is refused
// whatever its mode. A root-owned 0750 or 0755 directory (the unit's
// RuntimeDirectoryMode for --group) is fine: the socket's own mode is the
// gate. A symlink at the path is refused, and a stale socket left by a
// dead daemon is replaced; a live one is not.
func Listen(path string, group int) (net.Listener, error) {
	if err := securefs.MkdirPrivate(filepath.Dir(path), "socket directory"); err != nil {
		return nil, fmt.Errorf("refusing to put the control socket there: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			return nil, fmt.Errorf("%s is a symlink: refusing it as the control socket; remove it", path)
		case st.Mode()&os.ModeSocket == 0:
			return nil, fmt.Errorf("%s exists and is not a socket: remove it or choose another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another upgrader daemon answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove the stale socket %s: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	if group >= 0 {
		mode = 0o660
		if err := os.Chown(path, 0, group); err != nil && os.Geteuid() == 0 {
			l.Close()
			return nil, err
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, err
	}
	return deadlineListener{l}, nil
}

// The deadlines of a request: its headers, and the whole of it.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
)

// HTTPServer wraps s with deadlines, and the peer's credentials in each
// request's context.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if dc, ok := c.(*deadlineConn); ok {
				ctx = context.WithValue(ctx, connKey{}, dc)
			}
			if p, err := peerOf(c); err == nil {
				return context.WithValue(ctx, peerKey{}, p)
			}
			return ctx
		},
	}
}

type connKey struct{}

// deadlineListener hands out deadlineConns.
type deadlineListener struct{ net.Listener }

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c}, nil
}

// deadlineConn answers a client whose request headers do not arrive
// before the deadline with 408 and a message: net/http closes such a
// connection without a word. A connection that is merely idle between
// requests is closed silently, and a request whose handler runs is
// answered by the handler.
type deadlineConn struct {
	net.Conn
	mu      sync.Mutex
	pending int  // bytes read since the last response began
	handler bool // a handler has run since then
}

// headerTimeout is the answer to headers that came too slowly.
var headerTimeout = func() string {
	body, _ := json.Marshal(Error{Error: fmt.Sprintf("request headers not received within %s: send the whole request at once", readHeaderTimeout)})
	return fmt.Sprintf("HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		len(body)+1, body)
}()

func (c *deadlineConn) handling() {
	c.mu.Lock()
	c.handler = true
	c.mu.Unlock()
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.pending += n
	unanswered := c.pending > 0 && !c.handler
	if err != nil && unanswered && errors.Is(err, os.ErrDeadlineExceeded) {
		c.pending = 0 // once
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.Conn, headerTimeout)
	}
	c.mu.Unlock()
	return n, err
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.pending, c.handler = 0, false
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// ImpostorError says the process that listens on the control socket is
// neither root nor the client's own user: not upgrader's daemon.
type ImpostorError struct {
	Path     string
	UID, PID int
}

func (e *ImpostorError) Error() string {
	return fmt.Sprintf("the control socket %s is served by uid %d (pid %d), not root: not upgrader's daemon, nothing was sent to it; "+
		"stop that process, check who can write %s, then start upgrader's daemon (systemctl restart upgrader)",
		e.Path, e.UID, e.PID, filepath.Dir(e.Path))
}

// Dial connects to the control socket at path and proves who listens
// there before the caller sends a byte: the listener's uid (SO_PEERCRED
// on the client's side) must be root's, as the daemon runs as root, or the
// client's own (a daemon a user runs for themselves: tests, a non-root
// trial). Anyone else who put a socket there would read what the client
// sends (attestations) and could answer with a forged status.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	p, err := peerOf(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: cannot tell who listens: %w", path, err)
	}
	if p.UID != 0 && p.UID != os.Geteuid() {
		c.Close()
		return nil, &ImpostorError{Path: path, UID: p.UID, PID: p.PID}
	}
	return c, nil
}

func peerOf(c net.Conn) (Peer, error) {
	if dc, ok := c.(*deadlineConn); ok {
		c = dc.Conn
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, cerr
	}
	return Peer{UID: int(cred.Uid), GID: int(cred.Gid), PID: int(cred.Pid)}, nil
}
