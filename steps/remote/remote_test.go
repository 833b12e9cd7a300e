package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"upgrader/testdata/sshd"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sshd.StopShared()
	os.Exit(code)
}

// server returns the shared sshd and a config trusting all its hosts.
func server(t *testing.T) (*sshd.Server, Config) {
	t.Helper()
	s, err := sshd.Shared()
	if err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := s.WriteKnownHosts(kh); err != nil {
		t.Fatal(err)
	}
	return s, Config{KnownHosts: kh, KeyFile: s.UserKey, ConnectTimeout: 5 * time.Second, OpTimeout: 5 * time.Second}
}

func target(s *sshd.Server, i int) Target { return Target{Host: s.Hosts[i], Port: s.Port} }

func TestWriteFileAtomicKeepsModeOwnerAndReadsBack(t *testing.T) {
	s, cfg := server(t)
	p := NewPool()
	defer p.Close()
	ctx := context.Background()
	c, err := p.Get(ctx, cfg, target(s, 0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mppconfig.xml")
	os.WriteFile(file, []byte("old"), 0o640)
	os.Chown(file, 65534, 65534)
	// A temporary file left by a write cut off earlier.
	os.WriteFile(filepath.Join(dir, ".mppconfig.xml"+TempSuffix), []byte("half"), 0o600)
	if err := c.WriteFileAtomic(ctx, file, []byte("new content"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	st, _ := os.Stat(file)
	sys := st.Sys().(*syscall.Stat_t)
	if string(b) != "new content" || st.Mode().Perm() != 0o640 || sys.Uid != 65534 || sys.Gid != 65534 {
		t.Errorf("after the write: %q mode %04o owner %d:%d, want the new content, 0640, 65534:65534", b, st.Mode().Perm(), sys.Uid, sys.Gid)
	}
	if _, err := os.Stat(filepath.Join(dir, ".mppconfig.xml"+TempSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
	// A new file gets the mode asked for.
	fresh := filepath.Join(dir, "copy")
	if err := c.WriteFileAtomic(ctx, fresh, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(fresh); st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %04o, want 0600", st.Mode().Perm())
	}
	got, err := c.ReadFile(ctx, file, 100)
	if err != nil || string(got) != "new content" {
		t.Errorf("ReadFile: %q %v", got, err)
	}
	if _, err := c.ReadFile(ctx, file, 5); err == nil || !strings.Contains(err.Error(), "larger than 5 bytes") {
		t.Errorf("ReadFile over the limit: %v", err)
	}
	os.Symlink(file, filepath.Join(dir, "link"))
	if _, err := c.ReadFile(ctx, filepath.Join(dir, "link"), 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("ReadFile of a symlink: %v", err)
	}
	if err := c.WriteFileAtomic(ctx, filepath.Join(dir, "link"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFileAtomic replaced a symlink")
	}
	if ok, err := c.Exists(ctx, filepath.Join(dir, "none")); ok || err != nil {
		t.Errorf("Exists(none) = %v, %v", ok, err)
	}
	if _, err := c.Lstat(ctx, filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat(none) = %v, want ErrNotExist", err)
	}
}

func TestOpenAndWalkStreamRemoteFiles(t *testing.T) {
	s, cfg := server(t)
	p := NewPool()
	defer p.Close()
	ctx := context.Background()
	c, err := p.Get(ctx, cfg, target(s, 1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "logs/CXI"), 0o755)
	big := strings.Repeat("line of a log\n", 20000)
	os.WriteFile(filepath.Join(dir, "logs/CXI/cxi.log"), []byte(big), 0o644)
	os.Symlink("/etc/shadow", filepath.Join(dir, "logs/shadow"))
	r, st, err := c.Open(ctx, filepath.Join(dir, "logs/CXI/cxi.log"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != big || st.Size() != int64(len(big)) {
		t.Fatalf("streamed %d bytes (%v), want %d", len(b), err, len(big))
	}
	if _, _, err := c.Open(ctx, filepath.Join(dir, "logs/shadow")); err == nil {
		t.Error("Open followed a symlink")
	}
	var seen []string
	err = c.Walk(ctx, filepath.Join(dir, "logs"), func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen = append(seen, rel+" "+info.Mode().Type().String())
		return nil
	})
	slices.Sort(seen)
	want := "logs d--------- logs/CXI d--------- logs/CXI/cxi.log ---------- logs/shadow L---------"
	if err != nil || strings.Join(seen, " ") != want {
		t.Errorf("Walk: %v %q, want %q", err, strings.Join(seen, " "), want)
	}
}

// TestOutputQuotesEveryArgument: the remote shell sees each argument as
// one word, whatever it holds.
func TestOutputQuotesEveryArgument(t *testing.T) {
	s, cfg := server(t)
	p := NewPool()
	defer p.Close()
	c, err := p.Get(context.Background(), cfg, target(s, 0))
	if err != nil {
		t.Fatal(err)
	}
	arg := `a'b "c" $(touch /tmp/upgrader-pwned) ; echo x`
	out, err := c.Output(context.Background(), []string{"printf", "%s", arg}, 1024)
	if err != nil || string(out) != arg {
		t.Errorf("Output = %q, %v; want %q", out, err, arg)
	}
	if _, err := c.Output(context.Background(), []string{"false"}, 1024); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("a failing command: %v", err)
	}
	if _, err := c.Output(context.Background(), []string{"head", "-c", "5000", "/dev/zero"}, 1024); err == nil || !strings.Contains(err.Error(), "more than 1024 bytes") {
		t.Errorf("too much output: %v", err)
	}
}

// TestHostKeysCheckedStrictly: an unknown key and a changed key are
// refused with the key's fingerprint and what to do; nothing is trusted
// on first use, and a known_hosts file others can write is refused.
func TestHostKeysCheckedStrictly(t *testing.T) {
	s, cfg := server(t)
	fp := ssh.FingerprintSHA256(s.HostKey)
	ctx := context.Background()

	unknown := cfg
	unknown.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	s.WriteKnownHosts(unknown.KnownHosts, s.Hosts[0]) // the other hosts unknown
	_, err := NewPool().Get(ctx, unknown, target(s, 1))
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Changed || hk.Fingerprint != fp {
		t.Fatalf("unknown host: %v", err)
	}
	for _, want := range []string{fp, "not in " + unknown.KnownHosts, "never trusts a host key on first use", "ssh-keyscan -p", "ssh-keygen -lf"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown host message lacks %q:\n%v", want, err)
		}
	}
	if b, _ := os.ReadFile(unknown.KnownHosts); strings.Count(string(b), "\n") != 1 {
		t.Errorf("known_hosts was changed:\n%s", b)
	}

	changed := cfg
	changed.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other.Public())
	line := "[" + s.Hosts[2] + "]:" + itoa(s.Port) + " " + string(ssh.MarshalAuthorizedKey(otherPub))
	os.WriteFile(changed.KnownHosts, []byte(line), 0o600)
	_, err = NewPool().Get(ctx, changed, target(s, 2))
	if !errors.As(err, &hk) || !hk.Changed || hk.Fingerprint != fp {
		t.Fatalf("changed host key: %v", err)
	}
	for _, want := range []string{"REFUSED: it changed", fp, changed.KnownHosts + ":1", "ssh-keygen -R '[" + s.Hosts[2] + "]:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("changed key message lacks %q:\n%v", want, err)
		}
	}

	missing := cfg
	missing.KnownHosts = filepath.Join(t.TempDir(), "none")
	if _, err := NewPool().Get(ctx, missing, target(s, 0)); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing known_hosts: %v", err)
	}
	loose := cfg
	os.Chmod(loose.KnownHosts, 0o666)
	if _, err := NewPool().Get(ctx, loose, target(s, 0)); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("known_hosts others can write: %v", err)
	}
}

func itoa(n int) string { return (&net.TCPAddr{Port: n}).String()[1:] }

// TestKeysOnly: a key file others can read, a key with a passphrase and
// a key the server does not know are refused saying what to do; the
// agent's keys log in.
func TestKeysOnly(t *testing.T) {
	s, cfg := server(t)
	ctx := context.Background()
	dir := t.TempDir()

	loose := cfg
	loose.KeyFile = filepath.Join(dir, "loose")
	b, _ := os.ReadFile(s.UserKey)
	os.WriteFile(loose.KeyFile, b, 0o644)
	if _, err := NewPool().Get(ctx, loose, target(s, 0)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key others can read: %v", err)
	}

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	locked := cfg
	locked.KeyFile = filepath.Join(dir, "locked")
	os.WriteFile(locked.KeyFile, pem.EncodeToMemory(block), 0o600)
	if _, err := NewPool().Get(ctx, locked, target(s, 0)); err == nil || !strings.Contains(err.Error(), "ssh-add") {
		t.Errorf("a key with a passphrase: %v", err)
	}

	stranger := cfg
	stranger.KeyFile = filepath.Join(dir, "stranger")
	block, _ = ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(stranger.KeyFile, pem.EncodeToMemory(block), 0o600)
	if _, err := NewPool().Get(ctx, stranger, target(s, 0)); err == nil || !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("a key the server does not know: %v", err)
	}

	none := cfg
	none.KeyFile = ""
	if _, err := NewPool().Get(ctx, none, target(s, 0)); err == nil || !strings.Contains(err.Error(), "no SSH key") {
		t.Errorf("no key at all: %v", err)
	}

	// An ssh-agent holding the user's key, on a unix socket.
	keyring := agent.NewKeyring()
	raw, _ := ssh.ParseRawPrivateKey(b)
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	viaAgent := none
	viaAgent.AgentSocket = sock
	c, err := NewPool().Get(ctx, viaAgent, target(s, 0))
	if err != nil {
		t.Fatalf("login with the agent's key: %v", err)
	}
	c.Close()
}

// TestPoolReusesAndReopens: one connection per host for the run, opened
// in parallel; a connection that dropped is opened again.
func TestPoolReusesAndReopens(t *testing.T) {
	s, cfg := server(t)
	p := NewPool()
	defer p.Close()
	ctx := context.Background()
	conns := make([]*Conn, 3)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(ctx, cfg, target(s, 3+i))
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("3 connections in %s", time.Since(start))
	again, _ := p.Get(ctx, cfg, target(s, 3))
	if again != conns[0] {
		t.Error("a second Get opened a second connection")
	}
	if n, err := s.KillSessions(s.Hosts[3]); n != 1 || err != nil {
		t.Fatalf("killed %d sessions: %v", n, err)
	}
	if _, err := conns[0].Lstat(ctx, "/"); err == nil {
		t.Error("an operation on the dropped connection succeeded")
	}
	fresh, err := p.Get(ctx, cfg, target(s, 3))
	if err != nil || fresh == conns[0] {
		t.Fatalf("Get after the drop: %v (same: %v)", err, fresh == conns[0])
	}
	if _, err := fresh.Lstat(ctx, "/"); err != nil {
		t.Errorf("the new connection: %v", err)
	}
}

// TestTimeouts: a server that never speaks fails the connect in its time;
// a server that stops answering mid-way fails the operation in its time
// and the connection is closed.
func TestTimeouts(t *testing.T) {
	s, cfg := server(t)
	ctx := context.Background()
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	short := cfg
	short.ConnectTimeout, short.OpTimeout = 500*time.Millisecond, 500*time.Millisecond
	os.WriteFile(short.KnownHosts, []byte(""), 0o600)
	start := time.Now()
	_, err = NewPool().Get(ctx, short, Target{Host: "127.0.0.1", Port: mute.Addr().(*net.TCPAddr).Port})
	if err == nil || time.Since(start) > 3*time.Second || !strings.Contains(err.Error(), "did not finish within 500ms") {
		t.Errorf("a mute server: %v after %s", err, time.Since(start))
	}

	// The connection itself gets cfg's time (a loaded machine's sshd can
	// take more than 500 ms to fork a session and start sftp); only the
	// operation is held to 500 ms.
	slowOp := cfg
	slowOp.OpTimeout = 500 * time.Millisecond
	s.WriteKnownHosts(slowOp.KnownHosts)
	p := NewPool()
	defer p.Close()
	c, err := p.Get(ctx, slowOp, target(s, 6))
	if err != nil {
		t.Fatal(err)
	}
	pids, err := s.SessionPIDs(s.Hosts[6])
	if err != nil || len(pids) != 1 {
		t.Fatalf("sessions: %v %v", pids, err)
	}
	// The session stopped, not killed: the connection stays open, silent.
	stopped := append([]int{pids[0]}, childrenOf(pids[0])...)
	for _, pid := range stopped {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	defer func() {
		for _, pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	start = time.Now()
	_, err = c.ReadFile(ctx, "/etc/hostname", 100)
	if err == nil || !strings.Contains(err.Error(), "no answer within 500ms") || time.Since(start) > 10*time.Second {
		t.Errorf("a server stopped mid-way: %v after %s", err, time.Since(start))
	}
	if c.alive() {
		// Closed by upgrader's side: the pool opens another.
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			t.Error("the connection that overran is still open")
		}
	}
}

func childrenOf(pid int) []int {
	b, _ := os.ReadFile("/proc/" + itoa(pid) + "/task/" + itoa(pid) + "/children")
	var out []int
	for _, f := range strings.Fields(string(b)) {
		var n int
		for _, ch := range f {
			n = n*10 + int(ch-'0')
		}
		out = append(out, n)
	}
	return out
}

// TestConnectionCutBeforeRenameKeepsTheFile: the connection dropped after
// the temporary file is written and before the rename leaves the file
// whole and unchanged; the next write, on a new connection, replaces it
// and removes the leftover.
func TestConnectionCutBeforeRenameKeepsTheFile(t *testing.T) {
	s, cfg := server(t)
	ctx := context.Background()
	host := s.Hosts[5]
	cutCtx := WithBeforeRename(ctx, func(c *Conn, tmp string) {
		if n, err := s.KillSessions(host); n != 1 || err != nil {
			t.Errorf("killed %d sessions: %v", n, err)
		}
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Error("the connection is still up")
		}
	})
	p := NewPool()
	defer p.Close()
	c, err := p.Get(ctx, cfg, target(s, 5))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mppconfig.xml")
	os.WriteFile(file, []byte("original"), 0o644)
	err = c.WriteFileAtomic(cutCtx, file, []byte("edited"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "rename") {
		t.Fatalf("a write cut before its rename: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "original" {
		t.Fatalf("the file is %q after the cut, want the original", b)
	}
	leftover := filepath.Join(dir, ".mppconfig.xml"+TempSuffix)
	if b, _ := os.ReadFile(leftover); string(b) != "edited" {
		t.Fatalf("the temporary file holds %q", b)
	}
	c, err = p.Get(ctx, cfg, target(s, 5))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFileAtomic(ctx, file, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); string(b) != "edited" {
		t.Errorf("after the second write: %q", b)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover is still there: %v", err)
	}
}
