// Package sshd runs a real OpenSSH server for tests: its own sshd on
// loopback, with host and user keys made on the spot and a config of its
// own in a temporary directory (no system sshd, no real network). Linux
// answers on all of 127.0.0.0/8, so one server listening on 127.0.0.2,
// 127.0.0.3, … stands for several hosts ("MPPs"), each with its own
// known_hosts entry (past 16 addresses, OpenSSH's limit for one sshd, the
// server is several sshd processes sharing keys and port). Tests of several packages share it: Shared starts one
// per test binary, StopShared (from TestMain) stops it.
package sshd

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Binary is where Debian's openssh-server puts the daemon (`make deps`
// installs it).
const Binary = "/usr/sbin/sshd"

// Server is one running sshd.
type Server struct {
	Dir   string   // config, keys, authorized_keys, log
	Port  int      // the same on every address
	Hosts []string // the loopback addresses it answers on: 127.0.0.2, …
	// UserKey is the private key file (OpenSSH format, 0600) that logs in
	// as the user running the tests; UserSigner is the same key.
	UserKey    string
	UserSigner ssh.Signer
	HostKey    ssh.PublicKey
	Log        string // sshd's own output (-e)
	daemons    []*daemon
}

// daemon is one sshd process of the server.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// maxListen is OpenSSH's MAX_LISTEN_SOCKS: one sshd listens on at most 16
// addresses. A server of more runs one sshd per 16 addresses, all with
// the same keys, port and log: to a client, one server.
const maxListen = 16

// Start runs an sshd answering on n loopback addresses (127.0.0.2 up).
func Start(n int) (*Server, error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("no OpenSSH server at %s: run `make deps` (apt-get install openssh-server)", Binary)
	}
	// sshd's privilege separation needs its empty directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "upgrader-sshd-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Log: filepath.Join(dir, "sshd.log"), UserKey: filepath.Join(dir, "id_ed25519")}
	for i := range n {
		s.Hosts = append(s.Hosts, fmt.Sprintf("127.0.0.%d", i+2))
	}
	hostKey, err := writeKey(filepath.Join(dir, "ssh_host_ed25519_key"))
	if err != nil {
		return nil, s.fail(err)
	}
	s.HostKey = hostKey.PublicKey()
	if s.UserSigner, err = writeKey(s.UserKey); err != nil {
		return nil, s.fail(err)
	}
	auth := ssh.MarshalAuthorizedKey(s.UserSigner.PublicKey())
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), auth, 0o600); err != nil {
		return nil, s.fail(err)
	}
	// A port free on the first address may be taken on another: try again.
	for try := 0; ; try++ {
		if s.Port, err = freePort(s.Hosts[0]); err != nil {
			return nil, s.fail(err)
		}
		if err = s.start(); err == nil {
			return s, nil
		}
		if try == 4 {
			return nil, s.fail(err)
		}
	}
}

func (s *Server) fail(err error) error {
	os.RemoveAll(s.Dir)
	return err
}

// config is the sshd_config of the sshd listening on hosts: keys only, no
// PAM, no password. SHLVL=1 keeps the test machine's own ~/.bashrc out of
// every command's time: bash reads it when sshd starts it at level 1, and
// a developer's (a pyenv init: 0.3 s here) is not the server under test.
func (s *Server) config(hosts []string) string {
	var b strings.Builder
	for _, h := range hosts {
		fmt.Fprintf(&b, "ListenAddress %s:%d\n", h, s.Port)
	}
	fmt.Fprintf(&b, `HostKey %s
PidFile none
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
MaxStartups 100
MaxSessions 50
LogLevel VERBOSE
Subsystem sftp internal-sftp
SetEnv SHLVL=1
`, filepath.Join(s.Dir, "ssh_host_ed25519_key"), filepath.Join(s.Dir, "authorized_keys"))
	return b.String()
}

// start runs one sshd per maxListen hosts.
func (s *Server) start() error {
	s.daemons = nil
	for i := 0; i < len(s.Hosts); i += maxListen {
		cfg := filepath.Join(s.Dir, "sshd_config")
		if i > 0 {
			cfg += "." + strconv.Itoa(i/maxListen)
		}
		if err := s.startDaemon(cfg, s.Hosts[i:min(i+maxListen, len(s.Hosts))]); err != nil {
			s.stop()
			return err
		}
	}
	return nil
}

func (s *Server) startDaemon(cfg string, hosts []string) error {
	if err := os.WriteFile(cfg, []byte(s.config(hosts)), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command(Binary, "-t", "-f", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("sshd -t: %v: %s", err, out)
	}
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	// -r: a connection is served by a fork of the listener, not a new
	// sshd executed for it (the protocol is the same): a third less CPU
	// per connection on the test machine, which also runs the client.
	d := &daemon{cmd: exec.Command(Binary, "-D", "-e", "-r", "-f", cfg), exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// A test binary that dies (a timeout panic) takes its sshd along.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	s.daemons = append(s.daemons, d)
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range hosts {
		for {
			if banner(h, s.Port) {
				break
			}
			select {
			case <-d.exited:
				b, _ := os.ReadFile(s.Log)
				return fmt.Errorf("sshd exited: %s", lastLines(string(b), 5))
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sshd did not answer on %s:%d within 10s", h, s.Port)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// banner says whether an SSH server answers on host:port.
func banner(host string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeKey makes an ed25519 key and writes it in OpenSSH's format, 0600.
func writeKey(path string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "upgrader test key")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// Addr is host:port of one of the server's hosts.
func (s *Server) Addr(host string) string { return net.JoinHostPort(host, strconv.Itoa(s.Port)) }

// KnownHostsLine is the known_hosts entry of one host with the server's key.
func (s *Server) KnownHostsLine(host string) string {
	return fmt.Sprintf("[%s]:%d %s", host, s.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostKey))))
}

// WriteKnownHosts writes a known_hosts file (0600) trusting the server's
// key for the hosts given (all of them when none is).
func (s *Server) WriteKnownHosts(path string, hosts ...string) error {
	if len(hosts) == 0 {
		hosts = s.Hosts
	}
	var b strings.Builder
	for _, h := range hosts {
		b.WriteString(s.KnownHostsLine(h) + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// SessionPIDs returns the per-connection sshd processes (children of the
// listener) that hold an established connection to host on the server's
// port: killing one drops that client's connection.
func (s *Server) SessionPIDs(host string) ([]int, error) {
	inodes, err := establishedInodes(host, s.Port)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range s.sessions() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err == nil && inodes[target] {
				out = append(out, pid)
				break
			}
		}
	}
	return out, nil
}

// KillSessions kills, with SIGKILL, every per-connection sshd holding a
// connection to host, and their own children; it returns how many
// connections it cut.
func (s *Server) KillSessions(host string) (int, error) {
	pids, err := s.SessionPIDs(host)
	if err != nil {
		return 0, err
	}
	for _, pid := range pids {
		for _, c := range children(pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(pids), nil
}

// children lists the processes whose parent is pid (pgrep -P).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so read after ')'.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) > 1 {
			if ppid, _ := strconv.Atoi(fields[1]); ppid == pid {
				out = append(out, child)
			}
		}
	}
	return out
}

// establishedInodes reads /proc/net/tcp for the established connections
// whose local end is host:port, as "socket:[inode]" link targets.
func establishedInodes(host string, port int) (map[string]bool, error) {
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("%s is not an IPv4 address", host)
	}
	// /proc/net/tcp writes the address as a little-endian word.
	want := strings.ToUpper(hex.EncodeToString([]byte{ip[3], ip[2], ip[1], ip[0]})) + fmt.Sprintf(":%04X", port)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == want && f[3] == "01" {
			out["socket:["+f[9]+"]"] = true
		}
	}
	return out, nil
}

// LogTail is the end of sshd's output, for test failures.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.Log)
	return lastLines(string(b), 20)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// sessions are the per-connection sshd processes of every listener.
func (s *Server) sessions() []int {
	var out []int
	for _, d := range s.daemons {
		out = append(out, children(d.cmd.Process.Pid)...)
	}
	return out
}

// WaitIdle waits until no session is left (every client gone, its sshd
// ended and reaped).
func (s *Server) WaitIdle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for len(s.sessions()) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d sshd sessions still open after %s", len(s.sessions()), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// CPU is the processor time the server's sshd processes have used, the
// sessions that ended included (their listener reaped them): what the
// servers cost this machine.
func (s *Server) CPU() (time.Duration, error) {
	var total time.Duration
	for _, d := range s.daemons {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
		if err != nil {
			return 0, err
		}
		// After "pid (comm)": state is field 3, utime..cstime 14 to 17.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		for _, v := range f[11:15] {
			ticks, _ := strconv.ParseInt(v, 10, 64)
			total += time.Duration(ticks) * time.Second / clockTicks
		}
	}
	return total, nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat's times.
const clockTicks = 100

// Close stops the listeners and the sessions they still serve, and
// removes the server's directory.
func (s *Server) Close() error {
	s.stop()
	return os.RemoveAll(s.Dir)
}

// stop ends every sshd of the server and its sessions.
func (s *Server) stop() {
	for _, pid := range s.sessions() {
		for _, c := range children(pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, d := range s.daemons {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	s.daemons = nil
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// SharedHosts is how many addresses the shared server answers on.
const SharedHosts = 8

// Shared returns the test binary's one server, starting it on first use.
func Shared() (*Server, error) {
	sharedOnce.Do(func() { shared, sharedErr = Start(SharedHosts) })
	if sharedErr != nil {
		return nil, sharedErr
	}
	return shared, nil
}

// StopShared stops the shared server if it was started; TestMain calls it.
func StopShared() {
	if shared != nil {
		shared.Close()
	}
}
