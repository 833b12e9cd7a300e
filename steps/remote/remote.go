// Package remote reaches other servers (an Experience Portal's MPPs) over
// SSH: it opens connections, checks host keys strictly against a
// known_hosts file, and reads and replaces files there over SFTP, durably.
//
// # Trust
//
// A host key must be in the known_hosts file: an unknown or changed key is
// refused (HostKeyError) with its SHA256 fingerprint and the command to
// verify and add it, never trusted on first use. Authentication is by key
// only: a key file, or the keys of the ssh-agent at SSH_AUTH_SOCK. No
// password or passphrase is ever taken.
//
// # Connections
//
// A Pool keeps one connection per user@host:port for the run, opened on
// first use (several hosts in parallel), opened again when it dropped, and
// closed after it stays unused for a while. Every operation has a time
// limit; one that overruns closes its connection, so nothing waits on a
// dead server.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"upgrader/state/securefs"
)

// Defaults of Config.
const (
	DefaultPort           = 22
	DefaultUser           = "root"
	DefaultConnectTimeout = 15 * time.Second
	DefaultOpTimeout      = 60 * time.Second
	// IdleClose is how long an unused connection stays open.
	IdleClose = 2 * time.Minute
	// maxKeyFile bounds a private key file read.
	maxKeyFile = 64 << 10
)

// Config says how to log in: the key (a file, and/or the agent) and the
// known_hosts file that decides which host keys are trusted.
type Config struct {
	// KnownHosts is the known_hosts file (required).
	KnownHosts string
	// KeyFile is an unencrypted private key file, owner-only (0600);
	// "" uses the agent alone.
	KeyFile string
	// AgentSocket is ssh-agent's socket (SSH_AUTH_SOCK); "" for none.
	AgentSocket    string
	ConnectTimeout time.Duration
	OpTimeout      time.Duration
}

type beforeRenameKey struct{}

// WithBeforeRename returns a context under which WriteFileAtomic calls
// fn once the temporary file is durable, right before it replaces the
// file: the point where crash tests cut the connection or the process.
func WithBeforeRename(ctx context.Context, fn func(c *Conn, tmp string)) context.Context {
	return context.WithValue(ctx, beforeRenameKey{}, fn)
}

func (c Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

func (c Config) opTimeout() time.Duration {
	if c.OpTimeout > 0 {
		return c.OpTimeout
	}
	return DefaultOpTimeout
}

// Target is one account on one server.
type Target struct {
	Host string
	Port int
	User string
}

func (t Target) withDefaults() Target {
	if t.Port == 0 {
		t.Port = DefaultPort
	}
	if t.User == "" {
		t.User = DefaultUser
	}
	return t
}

// Addr is host:port.
func (t Target) Addr() string {
	t = t.withDefaults()
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// String is user@host:port, as messages name a target.
func (t Target) String() string {
	t = t.withDefaults()
	return t.User + "@" + t.Addr()
}

// Pool holds the run's connections, one per target and login config.
type Pool struct {
	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
}

type entry struct {
	mu   sync.Mutex // held while dialing: one connection per key
	conn *Conn
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{entries: map[string]*entry{}} }

// Get returns the open connection to t, opening it if there is none or
// the last one dropped.
func (p *Pool) Get(ctx context.Context, cfg Config, t Target) (*Conn, error) {
	t = t.withDefaults()
	key := t.String() + "|" + cfg.KnownHosts + "|" + cfg.KeyFile + "|" + cfg.AgentSocket
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("the connection pool is closed")
	}
	e := p.entries[key]
	if e == nil {
		e = &entry{}
		p.entries[key] = e
	}
	p.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil && e.conn.alive() {
		e.conn.touch()
		return e.conn, nil
	}
	c, err := dial(ctx, cfg, t)
	if err != nil {
		return nil, err
	}
	e.conn = c
	return c, nil
}

// Close closes every connection; Get fails afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, e := range p.entries {
		if e.conn != nil {
			e.conn.Close()
		}
	}
	return nil
}

// Conn is one SSH connection with its SFTP session.
type Conn struct {
	target Target
	cfg    Config
	client *ssh.Client
	sftp   *sftp.Client
	done   chan struct{} // closed when the connection ends
	idle   *time.Timer
	once   sync.Once
	closed atomic.Bool // Close was called (done may close a moment later)
}

// Target is who this connection is logged in as, where.
func (c *Conn) Target() Target { return c.target }

// LocalAddr is this end of the connection.
func (c *Conn) LocalAddr() net.Addr { return c.client.LocalAddr() }

func (c *Conn) alive() bool {
	if c.closed.Load() {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *Conn) touch() { c.idle.Reset(IdleClose) }

// Close ends the connection.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		c.idle.Stop()
		// The transport first: the SFTP client's Close waits for its
		// reader, which a silent server would hold forever.
		c.client.Close()
		c.sftp.Close()
	})
	return nil
}

// dial opens and authenticates a connection within the connect timeout.
func dial(ctx context.Context, cfg Config, t Target) (*Conn, error) {
	hostKeys, algos, err := hostKeyCheck(cfg.KnownHosts, t.Addr())
	if err != nil {
		return nil, err
	}
	signers, closeAgent, err := signers(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	timeout := cfg.connectTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", t, connectError(err, timeout))
	}
	nc = newQuickAckConn(nc)
	// The handshake, the login and the SFTP start share the limit.
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.Addr(), &ssh.ClientConfig{
		User:              t.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) { return signers, nil })},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	})
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("ssh %s: %w", t, loginError(err, cfg, timeout))
	}
	client := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("ssh %s: the SFTP subsystem did not start (%v): the server must offer sftp (Subsystem sftp in its sshd_config)", t, err)
	}
	nc.SetDeadline(time.Time{})
	c := &Conn{target: t, cfg: cfg, client: client, sftp: sc2, done: make(chan struct{})}
	c.idle = time.AfterFunc(IdleClose, func() { c.Close() })
	go func() {
		client.Wait()
		close(c.done)
	}()
	return c, nil
}

func connectError(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer within %s: check the host and port, and that sshd runs there", timeout)
	}
	return err
}

// loginError says what to do about a failed handshake or login.
func loginError(err error, cfg Config, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("the SSH handshake did not finish within %s", timeout)
	}
	var nomatch *ssh.ServerAuthError
	if errors.As(err, &nomatch) || isAuthFailure(err) {
		what := "the key file " + cfg.KeyFile
		switch {
		case cfg.KeyFile == "" && cfg.AgentSocket != "":
			what = "the keys of the ssh-agent at SSH_AUTH_SOCK"
		case cfg.KeyFile != "" && cfg.AgentSocket != "":
			what += " and the keys of the ssh-agent at SSH_AUTH_SOCK"
		}
		return fmt.Errorf("login refused (%v): the server accepts none of %s; add the public key to the account's authorized_keys there", err, what)
	}
	return err
}

func isAuthFailure(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), "no supported methods remain"))
}

// signers are the keys to log in with: the key file's, then the agent's.
// closeAgent ends the agent connection once the login is done.
func signers(cfg Config) (out []ssh.Signer, closeAgent func(), err error) {
	closeAgent = func() {}
	if cfg.KeyFile != "" {
		s, err := keyFile(cfg.KeyFile)
		if err != nil {
			return nil, closeAgent, err
		}
		out = append(out, s)
	}
	if cfg.AgentSocket != "" {
		conn, err := net.DialTimeout("unix", cfg.AgentSocket, cfg.connectTimeout())
		if err != nil {
			return nil, closeAgent, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK=%s: %v: start the agent and add the key (ssh-add), or name a key file (ssh.key_file)", cfg.AgentSocket, err)
		}
		closeAgent = func() { conn.Close() }
		keys, err := agent.NewClient(conn).Signers()
		if err != nil {
			return nil, closeAgent, fmt.Errorf("ssh-agent at SSH_AUTH_SOCK=%s: %v", cfg.AgentSocket, err)
		}
		out = append(out, keys...)
	}
	if len(out) == 0 {
		return nil, closeAgent, errors.New("no SSH key to log in with: name a key file (ssh.key_file in the profile) or run upgrader with SSH_AUTH_SOCK of an ssh-agent holding the key")
	}
	return out, closeAgent, nil
}

// keyFile reads a private key the way ssh does: a file others may read is
// refused, and so is one protected by a passphrase (upgrader takes none).
func keyFile(path string) (ssh.Signer, error) {
	data, err := securefs.ReadRegular(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("SSH key file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("SSH key file %s is readable by others (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	s, err := ssh.ParsePrivateKey(data)
	var pass *ssh.PassphraseMissingError
	if errors.As(err, &pass) {
		return nil, fmt.Errorf("SSH key file %s is protected by a passphrase, and upgrader takes no passphrase: load the key into ssh-agent (ssh-add %s) and run upgrader with its SSH_AUTH_SOCK", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH key file %s: %v", path, err)
	}
	return s, nil
}
