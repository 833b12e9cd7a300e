package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"upgrader/orchestrator"
)

// Client is the run service of the daemon that listens on a control
// socket. Every connection proves who listens before a byte is sent
// (Dial).
type Client struct {
	path string
	http *http.Client
}

var _ orchestrator.Service = (*Client)(nil)

// NewClient talks to the daemon on the socket at path.
func NewClient(path string) *Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) { return Dial(ctx, path) }
	return &Client{path: path, http: &http.Client{Transport: &http.Transport{DialContext: dial}}}
}

// ErrNoDaemon means nothing listens on the control socket.
var ErrNoDaemon = errors.New("no upgrader daemon answers")

// Up reports whether a daemon answers on the socket at path. A socket
// served by anyone but root (or this user) is an error, never "no daemon":
// the CLI must not quietly go around it.
func Up(path string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := Dial(ctx, path)
	var imp *ImpostorError
	switch {
	case errors.As(err, &imp):
		return false, err
	case err != nil:
		return false, nil
	}
	c.Close()
	return true, nil
}

// do sends a request and decodes the answer into out; a refusal comes back
// as the error the daemon's service returned.
func (c *Client) do(ctx context.Context, method, route string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://upgrader"+route, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var imp *ImpostorError
		if errors.As(err, &imp) {
			return imp
		}
		return fmt.Errorf("%w on %s: %v (start it: systemctl start upgrader)", ErrNoDaemon, c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		if err := json.NewDecoder(io.LimitReader(resp.Body, MaxRequest)).Decode(&e); err != nil || e.Error == "" {
			return fmt.Errorf("the daemon answered %s", resp.Status)
		}
		return errorOf(e)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) status(ctx context.Context, route string, body any) (orchestrator.Status, error) {
	var st orchestrator.Status
	err := c.do(ctx, "POST", route, body, &st)
	return st, err
}

// Plan asks the daemon for the plan of its host, with the request's options.
func (c *Client) Plan(ctx context.Context, req orchestrator.PlanRequest) (orchestrator.Plan, error) {
	var p orchestrator.Plan
	err := c.do(ctx, "POST", "/v1/plan", req, &p)
	return p, err
}

func (c *Client) Start(ctx context.Context, req orchestrator.StartRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/start", req)
}

func (c *Client) Resume(ctx context.Context, req orchestrator.ResumeRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/resume", req)
}

func (c *Client) Confirm(ctx context.Context, req orchestrator.ConfirmRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/confirm", req)
}

func (c *Client) Retry(ctx context.Context, req orchestrator.RetryRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/retry", req)
}

func (c *Client) Skip(ctx context.Context, req orchestrator.SkipRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/skip", req)
}

func (c *Client) Abort(ctx context.Context, req orchestrator.AbortRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/abort", req)
}

func (c *Client) Export(ctx context.Context) (orchestrator.RunExport, error) {
	var x orchestrator.RunExport
	err := c.do(ctx, "GET", "/v1/export", nil, &x)
	return x, err
}

func (c *Client) MarkExported(ctx context.Context, req orchestrator.MarkExportedRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/exported", req)
}

func (c *Client) Import(ctx context.Context, req orchestrator.ImportRequest) (orchestrator.Status, error) {
	return c.status(ctx, "/v1/import", req)
}

func (c *Client) Status(ctx context.Context, runID string) (orchestrator.Status, error) {
	var st orchestrator.Status
	err := c.do(ctx, "GET", "/v1/status?run="+url.QueryEscape(runID), nil, &st)
	return st, err
}

func (c *Client) Journal(ctx context.Context, runID string, after uint64) ([]orchestrator.JournalEntry, error) {
	var entries []orchestrator.JournalEntry
	err := c.do(ctx, "GET", "/v1/journal?run="+url.QueryEscape(runID)+"&after="+strconv.FormatUint(after, 10), nil, &entries)
	return entries, err
}

// StepTimes asks the daemon how long the procedure's steps took before.
func (c *Client) StepTimes(ctx context.Context, procedure string) (orchestrator.StepTimes, error) {
	var t orchestrator.StepTimes
	err := c.do(ctx, "GET", "/v1/steptimes?procedure="+url.QueryEscape(procedure), nil, &t)
	return t, err
}

// History asks the daemon for every run of its state.
func (c *Client) History(ctx context.Context) ([]orchestrator.RunSummary, error) {
	var runs []orchestrator.RunSummary
	err := c.do(ctx, "GET", "/v1/history", nil, &runs)
	return runs, err
}

// Watch follows the daemon's notices; the channel closes when ctx ends or
// the daemon closes the stream (it stopped: the caller asks Status).
func (c *Client) Watch(ctx context.Context, after uint64) (<-chan orchestrator.Notice, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://upgrader/v1/watch?after="+strconv.FormatUint(after, 10), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoDaemon, c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e Error
		json.NewDecoder(io.LimitReader(resp.Body, MaxRequest)).Decode(&e)
		return nil, errorOf(e)
	}
	ch := make(chan orchestrator.Notice)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var n orchestrator.Notice
			if json.Unmarshal(sc.Bytes(), &n) != nil {
				return
			}
			select {
			case ch <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}
