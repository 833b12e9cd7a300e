// Package api is upgrader's control socket: HTTP+JSON over a Unix socket.
// The server is a thin adapter over the run service (orchestrator.Service):
// a table of routes with the caller's permission checked first (the peer's
// uid from SO_PEERCRED), size limits and deadlines. The client speaks the
// same routes and is itself an orchestrator.Service, so the CLI behaves
// the same whether a daemon runs or not.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
)

// MaxRequest bounds a request body: every request is a few fields, but
// an import carries a whole exported run.
const MaxRequest = 64 << 10

// Server serves the control API over a run service.
type Server struct {
	Service orchestrator.Service
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
	limit        int64 // body bytes, MaxRequest when 0
	handle       func(s *Server, w http.ResponseWriter, r *http.Request, p Peer)
}

// routes is the whole API; permission is checked before any handler.
var routes = []route{
	{"GET", "/v1/status", false, 0, (*Server).status},
	{"POST", "/v1/plan", false, 0, (*Server).plan},
	{"GET", "/v1/journal", false, 0, (*Server).journal},
	{"GET", "/v1/steptimes", false, 0, (*Server).stepTimes},
	{"GET", "/v1/history", false, 0, (*Server).history},
	{"GET", "/v1/watch", false, 0, (*Server).watch},
	{"GET", "/v1/export", false, 0, (*Server).export},
	{"POST", "/v1/start", true, 0, (*Server).start},
	{"POST", "/v1/resume", true, 0, (*Server).resume},
	{"POST", "/v1/confirm", true, 0, (*Server).confirm},
	{"POST", "/v1/retry", true, 0, (*Server).retry},
	{"POST", "/v1/skip", true, 0, (*Server).skip},
	{"POST", "/v1/abort", true, 0, (*Server).abort},
	{"POST", "/v1/exported", true, 0, (*Server).exported},
	{"POST", "/v1/import", true, orchestrator.MaxExportSize + MaxRequest, (*Server).importRun},
}

// Error is the body of every refusal: the message, and the kind of error
// the client turns back into the same sentinel (see kinds).
type Error struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error(), Kind: kindOf(err)})
}

// failErr answers an operation's error with its status and kind.
func failErr(w http.ResponseWriter, err error) { fail(w, statusOf(err), err) }

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
		limit := rt.limit
		if limit == 0 {
			limit = MaxRequest
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if rt.mutating {
			s.Log.Info().Str("route", rt.path).Str("actor", p.Actor()).Msg("request")
		}
		rt.handle(s, w, r.WithContext(orchestrator.WithActor(r.Context(), p.Actor())), p)
		return
	}
	fail(w, http.StatusNotFound, fmt.Errorf("no route %s", r.URL.Path))
}

// Request is the body of a call: decoded strictly, then checked.
type Request interface {
	// Check says what is wrong with the decoded request, nil if nothing.
	Check() error
}

// DecodeRequest reads one request body: at most limit bytes, one JSON
// object with only the request's fields and nothing after it, whose values
// pass the request's Check. On a refusal it returns the HTTP status (413
// too large, 400 otherwise) and a message that says what to send instead.
func DecodeRequest(body []byte, v Request, limit int64) (int, error) {
	if int64(len(body)) > limit {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes: send only the request's fields", limit)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return http.StatusBadRequest, errors.New("bad request: empty body; send a JSON object ({} when there is nothing to say)")
	}
	// JSON null decodes into a struct as nothing at all: it would pass as
	// an empty request ({}), so a confused or hostile client could start a
	// run with a body that says nothing. Only an object is a request.
	if trimmed[0] != '{' {
		return http.StatusBadRequest, fmt.Errorf("bad request: %.20s is not a request: send a JSON object ({} when there is nothing to say)", trimmed)
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

// decode reads the request's body (already bounded by ServeHTTP) and
// decodes it, or answers the refusal.
func decode(w http.ResponseWriter, r *http.Request, v Request) bool {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request larger than %d bytes: send only the request's fields", tooBig.Limit))
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		fail(w, http.StatusRequestTimeout, fmt.Errorf("request body not received within %s: send the whole request at once", readTimeout))
		return false
	case err != nil:
		fail(w, http.StatusBadRequest, fmt.Errorf("bad request: reading the body: %v", err))
		return false
	}
	if code, err := DecodeRequest(body, v, int64(len(body))); err != nil {
		fail(w, code, err)
		return false
	}
	return true
}

// profileAllowed refuses a site profile named by a caller other than root:
// a profile names the commands the daemon runs as root.
func profileAllowed(w http.ResponseWriter, p Peer, path string) bool {
	if path == "" || p.UID == 0 {
		return true
	}
	fail(w, http.StatusForbidden, fmt.Errorf("only root may name another site profile than the daemon's (%s): leave --profile out", path))
	return false
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, _ Peer) {
	st, err := s.Service.Status(r.Context(), r.URL.Query().Get("run"))
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, p Peer) {
	var req orchestrator.PlanRequest
	if !decode(w, r, &req) || !profileAllowed(w, p, req.Profile) {
		return
	}
	plan, err := s.Service.Plan(r.Context(), req)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) journal(w http.ResponseWriter, r *http.Request, _ Peer) {
	q := r.URL.Query()
	var after uint64
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			fail(w, http.StatusBadRequest, fmt.Errorf("%w: after=%.20q is not a sequence number", orchestrator.ErrInvalidRequest, a))
			return
		}
		after = n
	}
	entries, err := s.Service.Journal(r.Context(), q.Get("run"), after)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, entries)
}

func (s *Server) stepTimes(w http.ResponseWriter, r *http.Request, _ Peer) {
	t, err := s.Service.StepTimes(r.Context(), r.URL.Query().Get("procedure"))
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, _ Peer) {
	runs, err := s.Service.History(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, runs)
}

// watch streams the run's notices as JSON lines until the client goes.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, _ Peer) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	ch, err := s.Service.Watch(r.Context(), after)
	if err != nil {
		failErr(w, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for n := range ch {
		if enc.Encode(n) != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, _ Peer) {
	x, err := s.Service.Export(r.Context())
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

// mutate decodes a request, carries it out and answers the run's status.
func mutate[R Request](s *Server, w http.ResponseWriter, r *http.Request, do func(context.Context, R) (orchestrator.Status, error), ok func(R) bool) {
	mutateAnswering(http.StatusOK, w, r, do, ok)
}

// mutateAnswering is mutate, answering code on success.
func mutateAnswering[R Request](code int, w http.ResponseWriter, r *http.Request, do func(context.Context, R) (orchestrator.Status, error), ok func(R) bool) {
	var req R
	// *R has R's Check: the request is decoded in place, then checked.
	if !decode(w, r, any(&req).(Request)) || (ok != nil && !ok(req)) {
		return
	}
	st, err := do(r.Context(), req)
	if err != nil {
		failErr(w, err)
		return
	}
	writeJSON(w, code, st)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, p Peer) {
	mutateAnswering(http.StatusCreated, w, r, s.Service.Start, func(req orchestrator.StartRequest) bool { return profileAllowed(w, p, req.Plan.Profile) })
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request, p Peer) {
	mutate(s, w, r, s.Service.Resume, func(req orchestrator.ResumeRequest) bool { return profileAllowed(w, p, req.Profile) })
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request, p Peer) {
	mutate(s, w, r, s.Service.Confirm, func(req orchestrator.ConfirmRequest) bool { return profileAllowed(w, p, req.Profile) })
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request, p Peer) {
	mutate(s, w, r, s.Service.Retry, func(req orchestrator.RetryRequest) bool { return profileAllowed(w, p, req.Profile) })
}

func (s *Server) skip(w http.ResponseWriter, r *http.Request, p Peer) {
	mutate(s, w, r, s.Service.Skip, func(req orchestrator.SkipRequest) bool { return profileAllowed(w, p, req.Profile) })
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request, _ Peer) {
	mutate(s, w, r, s.Service.Abort, nil)
}

func (s *Server) exported(w http.ResponseWriter, r *http.Request, _ Peer) {
	mutate(s, w, r, s.Service.MarkExported, nil)
}

func (s *Server) importRun(w http.ResponseWriter, r *http.Request, p Peer) {
	mutate(s, w, r, s.Service.Import, func(req orchestrator.ImportRequest) bool { return profileAllowed(w, p, req.Profile) })
}
