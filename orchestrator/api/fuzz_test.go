package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"upgrader/orchestrator"
)

// fuzzRequests makes an empty request of each kind a route decodes.
var fuzzRequests = []func() Request{
	func() Request { return &orchestrator.StartRequest{} },
	func() Request { return &orchestrator.ConfirmRequest{} },
	func() Request { return &orchestrator.RetryRequest{} },
	func() Request { return &orchestrator.SkipRequest{} },
	func() Request { return &orchestrator.AbortRequest{} },
}

// FuzzDecodeRequest decodes arbitrary bodies as each kind of request.
// A body over MaxRequest is refused with 413, any other refusal is a 400
// with a message; an accepted request passes its Check, holds no control
// character, and encoded again decodes to the same value.
// Seeds are in testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	for i, body := range []string{`{"expect_fingerprint": "sha256:abc", "consent": {"via": "fingerprint"}}`, `{"step": "backup-db", "attestation": {"backup_path": "/b"}}`,
		`{}`, `{"step": "x", "reason": "r"}`, `{"reason": "r"}`} {
		f.Add(uint8(i), []byte(body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		newReq := fuzzRequests[int(kind)%len(fuzzRequests)]
		v := newReq()
		code, err := DecodeRequest(body, v, MaxRequest)
		if err != nil {
			switch {
			case len(body) > MaxRequest && code != http.StatusRequestEntityTooLarge:
				t.Fatalf("oversized body: %d %v", code, err)
			case code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge:
				t.Fatalf("refused with %d: %v", code, err)
			case err.Error() == "":
				t.Fatal("refused without a message")
			}
			return
		}
		if code != http.StatusOK || len(body) > MaxRequest {
			t.Fatalf("accepted %d bytes with %d", len(body), code)
		}
		if trimmed := bytes.TrimSpace(body); len(trimmed) == 0 || trimmed[0] != '{' {
			t.Fatalf("accepted a body that is not a JSON object: %.80q", body)
		}
		if err := v.Check(); err != nil {
			t.Fatalf("accepted, but Check says %v", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range string(b) {
			if c < 0x20 {
				t.Fatalf("accepted a control character: %q", b)
			}
		}
		again := newReq()
		if code, err := DecodeRequest(b, again, MaxRequest); err != nil {
			t.Fatalf("an accepted request, encoded again, is refused (%d): %v\n%s", code, err, b)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip changed the request: %#v -> %#v", v, again)
		}
	})
}

// fuzzStatuses are the answers the API gives.
var fuzzStatuses = []int{200, 201, 400, 403, 404, 405, 408, 409, 413, 422, 500, 503}

// FuzzServeHTTP sends arbitrary methods, paths and bodies from root and
// from another uid to a daemon with no run. Another uid gets 403 whatever
// it sends; root gets 404 for what is not a route, 405 for the wrong
// method, 413 for a body over the limit, and every refusal is JSON with a
// message. Nothing panics.
// Seeds are in testdata/fuzz/FuzzServeHTTP.
func FuzzServeHTTP(f *testing.F) {
	for _, rt := range routes {
		f.Add(rt.method, rt.path, []byte(`{}`), false)
	}
	f.Add("POST", "/v1/abort", []byte(`{"reason":"r"}`), true)
	f.Add("GET", "/v1/../v1/status", []byte(nil), false)
	srv := &Server{Service: emptyService{}, Group: -1, Log: zerolog.Nop()}
	done, cancel := context.WithCancel(context.Background())
	cancel() // a watch ends at once
	f.Fuzz(func(t *testing.T, method, path string, body []byte, other bool) {
		peer := Peer{UID: 0, PID: 1}
		if other {
			peer = Peer{UID: 1000, GID: 1000, PID: 2}
		}
		r := (&http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{},
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}).
			WithContext(context.WithValue(done, peerKey{}, peer))
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		code := w.Code
		if !slices.Contains(fuzzStatuses, code) {
			t.Fatalf("%s %q answered %d", method, path, code)
		}
		want := 0
		i := slices.IndexFunc(routes, func(rt route) bool { return rt.path == path })
		switch {
		case other:
			want = http.StatusForbidden
		case i < 0:
			want = http.StatusNotFound
		case routes[i].method != method:
			want = http.StatusMethodNotAllowed
		case routes[i].method == "POST" && len(body) > MaxRequest:
			want = http.StatusRequestEntityTooLarge
		}
		if want != 0 && code != want {
			t.Fatalf("%s %q (%d bytes, other uid %v) answered %d, want %d: %s", method, path, len(body), other, code, want, w.Body)
		}
		if code >= 400 {
			var e Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || strings.TrimSpace(e.Error) == "" {
				t.Fatalf("refusal %d without a JSON message: %q", code, w.Body)
			}
		}
	})
}
