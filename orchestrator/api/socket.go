package api

import (
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
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"upgrader/state/securefs"
)

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
