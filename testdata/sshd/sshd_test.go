package sshd

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestServerAnswersEachHostAndDropsAKilledSession: the harness's server
// logs in with the user key on every address, checks the host key the
// known_hosts line names, and a killed session cuts that connection only.
func TestServerAnswersEachHostAndDropsAKilledSession(t *testing.T) {
	s, err := Start(2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kh := t.TempDir() + "/known_hosts"
	if err := s.WriteKnownHosts(kh); err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*ssh.Client{}
	for _, h := range s.Hosts {
		c, err := ssh.Dial("tcp", s.Addr(h), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(s.UserSigner)},
			HostKeyCallback: cb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v\n%s", h, err, s.LogTail())
		}
		defer c.Close()
		sess, _ := c.NewSession()
		out, err := sess.Output("echo ok")
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Fatalf("%s: %q %v", h, out, err)
		}
		clients[h] = c
	}
	pids, err := s.SessionPIDs(s.Hosts[1])
	if err != nil || len(pids) != 1 {
		t.Fatalf("sessions of %s: %v %v", s.Hosts[1], pids, err)
	}
	if n, err := s.KillSessions(s.Hosts[1]); n != 1 || err != nil {
		t.Fatalf("killed %d: %v", n, err)
	}
	done := make(chan error, 1)
	go func() { done <- clients[s.Hosts[1]].Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the killed session's connection is still up")
	}
	sess, err := clients[s.Hosts[0]].NewSession()
	if err != nil {
		t.Fatalf("the other host's connection was cut too: %v", err)
	}
	sess.Close()
}

// TestServerOfMoreHostsThanOneSSHDListensOn: 17 addresses, past OpenSSH's
// 16 listening sockets, still answer as one server (same port, same key),
// and Close stops every sshd.
func TestServerOfMoreHostsThanOneSSHDListensOn(t *testing.T) {
	s, err := Start(17)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.daemons) != 2 {
		t.Errorf("%d sshd processes, want 2", len(s.daemons))
	}
	kh := t.TempDir() + "/known_hosts"
	if err := s.WriteKnownHosts(kh); err != nil {
		t.Fatal(err)
	}
	cb, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{s.Hosts[0], s.Hosts[15], s.Hosts[16]} {
		c, err := ssh.Dial("tcp", s.Addr(h), &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(s.UserSigner)},
			HostKeyCallback: cb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v\n%s", h, err, s.LogTail())
		}
		c.Close()
	}
	daemons := s.daemons
	s.Close()
	for _, d := range daemons {
		select {
		case <-d.exited:
		default:
			t.Errorf("sshd %d still runs after Close", d.cmd.Process.Pid)
		}
	}
}
