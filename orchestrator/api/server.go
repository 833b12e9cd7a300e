// Package api is upgrader's control socket: HTTP+JSON over a Unix socket,
// a table of routes with the caller's permission checked first (the peer's
// uid from SO_PEERCRED), size limits and deadlines.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"upgrader/orchestrator"
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

// decode reads a JSON request strictly.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes", MaxRequest))
		} else {
			fail(w, http.StatusBadRequest, fmt.Errorf("bad request: %v", err))
		}
		return false
	}
	return true
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
	var req struct{}
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

func (s *Server) abort(w http.ResponseWriter, r *http.Request, p Peer) {
	var req AbortRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Reason == "" {
		fail(w, http.StatusBadRequest, errors.New("abort needs a reason"))
		return
	}
	if err := s.Backend.Supervisor().Abort(p.Actor(), req.Reason); err != nil {
		fail(w, statusCode(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"aborted": "yes"})
}

// Listen opens the socket: its directory is made 0700 (or must be owned by
// root and not writable by others), a symlink at the path is refused, and a
// stale socket left by a dead daemon is replaced; a live one is not.
func Listen(path string, group int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	} else if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by others (%v): refusing to put the control socket there", dir, st.Mode().Perm())
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
	return l, nil
}

// HTTPServer wraps s with deadlines, and the peer's credentials in each
// request's context.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p, err := peerOf(c); err == nil {
				return context.WithValue(ctx, peerKey{}, p)
			}
			return ctx
		},
	}
}

func peerOf(c net.Conn) (Peer, error) {
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
