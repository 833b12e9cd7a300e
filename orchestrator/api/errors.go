package api

import (
	"errors"
	"net/http"

	"upgrader/orchestrator"
)

// kinds names the errors the run service returns that callers branch on,
// with the HTTP status each is answered with. The client turns a kind
// back into an error that wraps the same sentinel, so the CLI maps an
// error to its exit code the same way whatever the transport. The first
// match wins: an error may wrap several.
var kinds = []struct {
	kind   string
	err    error
	status int
}{
	{"invalid-request", orchestrator.ErrInvalidRequest, http.StatusBadRequest},
	{"no-consent", orchestrator.ErrNoConsent, http.StatusBadRequest},
	{"invalid-run-id", orchestrator.ErrInvalidRunID, http.StatusBadRequest},
	{"bad-export", orchestrator.ErrBadExport, http.StatusBadRequest},
	{"fingerprint", orchestrator.ErrFingerprintMismatch, http.StatusConflict},
	{"blocked-plan", orchestrator.ErrBlockedPlan, http.StatusConflict},
	{"active-run", orchestrator.ErrActiveRun, http.StatusConflict},
	{"busy", orchestrator.ErrBusy, http.StatusConflict},
	{"past-point-of-no-return", orchestrator.ErrPastPointOfNoReturn, http.StatusConflict},
	{"skip-not-allowed", orchestrator.ErrSkipNotAllowed, http.StatusConflict},
	{"attestation", orchestrator.ErrAttestation, http.StatusConflict},
	{"transition", orchestrator.ErrTransition, http.StatusConflict},
	{"no-active-run", orchestrator.ErrNoActiveRun, http.StatusNotFound},
	{"run-not-found", orchestrator.ErrRunNotFound, http.StatusNotFound},
}

func kindOf(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return ""
}

func statusOf(err error) int {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status
		}
	}
	return http.StatusInternalServerError
}

// remoteError is a refusal the daemon sent: its message as the daemon
// wrote it, and the sentinel of its kind.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// errorOf rebuilds the error of a refusal.
func errorOf(e Error) error {
	for _, k := range kinds {
		if k.kind == e.Kind {
			return &remoteError{msg: e.Error, kind: k.err}
		}
	}
	return errors.New(e.Error)
}
