package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"upgrader/orchestrator"
	"upgrader/steps/remote"
	"upgrader/testdata/simhost"
	"upgrader/testdata/sshd"
)

// The MPPs on their own servers: the test binary's one sshd answers on
// 127.0.0.2 up, each address an MPP's server with its own known_hosts
// entry; each MPP's files live under the simulated host's tree
// (simhost.Sim.MPPHostDir), their config path the absolute path there.

func testSSHD(t testing.TB) *sshd.Server {
	t.Helper()
	s, err := sshd.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// remoteMPPs moves the simulated POM host's MPPs onto the test sshd.
func (s *sim) remoteMPPs(mpps ...simhost.RemoteMPP) *sshd.Server {
	s.t.Helper()
	srv := testSSHD(s.t)
	h := simhost.Sim{Dir: s.dir, Root: s.root, Profile: s.profile}
	if err := h.RemoteMPPs(srv, srv.Port, srv.UserKey, mpps...); err != nil {
		s.t.Fatal(err)
	}
	return srv
}

func (s *sim) mppFile(name string) string {
	return filepath.Join(simhost.Sim{Root: s.root}.MPPHostDir(name), "config/mppconfig.xml")
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestPlanShowsEveryMPPWhereItIs: three MPPs, two on their own servers
// and one that does not answer: the plan counts them, shows each with its
// server, and blocks naming the one it cannot reach.
func TestPlanShowsEveryMPPWhereItIs(t *testing.T) {
	s := newSim(t)
	srv := s.remoteMPPs(simhost.RemoteMPP{Name: "mpp1", Host: "127.0.0.2", Patch: "7.2.0.0.1202"}, simhost.RemoteMPP{Name: "mpp2", Host: "127.0.0.3"})
	// A third MPP, on a server where nothing listens.
	b, _ := os.ReadFile(s.profile)
	third := "  - name: mpp3\n    host: 127.0.0.4\n    port: 1\n    config: /opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml\n"
	os.WriteFile(s.profile, []byte(strings.Replace(string(b), "media:\n", third+"media:\n", 1)), 0o644)

	r := s.mustRun(exitBlocked, "plan")
	port := strconv.Itoa(srv.Port)
	for _, want := range []string{
		"the profile lists 3", "mpp1 on root@127.0.0.2:" + port + " (over SSH)", "mpp2 on root@127.0.0.3:" + port + " (over SSH)",
		"mpp3 on root@127.0.0.4:1 (over SSH)", "mpp-unreachable-mpp3", "MPP mpp3 (root@127.0.0.4:1) cannot be", "connection refused",
		"--override mpp-unreachable-mpp3=REASON", "127.0.0.2", "127.0.0.3",
		// mpp1's patch read on it; mpp2's is the profile's word.
		"the MPP patch level of mpp2, mpp3 is ep.mpp_patch",
	} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), want) {
			t.Errorf("plan does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "mpp-config-mpp1    auto      this host") {
		t.Errorf("the plan says mpp1 is this host:\n%s", r.stdout)
	}
	var p orchestrator.Plan
	json.Unmarshal([]byte(s.mustRun(exitBlocked, "plan", "-o", "json").stdout), &p)
	if v, _ := p.Facts.Get(orchestrator.MPPFact("mpp1", orchestrator.MPPPatch)); v != "7.2.0.0.1202" {
		t.Errorf("mpp1's patch fact %q, want the one read on it", v)
	}
	if v, _ := p.Facts.Get(orchestrator.MPPFact("mpp2", orchestrator.MPPFactRuntimeSize)); v != "16777216" {
		t.Errorf("mpp2's runtimesize fact %q, want the one read on it", v)
	}
	// The MPP's patch is the MPP's, whatever the profile says.
	os.WriteFile(filepath.Join(filepath.Dir(s.mppFile("mpp1")), "mpp.version"), []byte("Patch=7.2.0.0.1100\n"), 0o644)
	r = s.mustRun(exitBlocked, "plan")
	if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "MPP mpp1 (root@127.0.0.2:"+port+"): 7.2.0.0.1100 (read on the MPP)") {
		t.Errorf("an old patch on mpp1 is not named:\n%s", r.stdout)
	}
}

// TestUpgradeWithRemoteMPPs: the whole POM upgrade, both MPPs on their own
// servers: each file changed over SSH with its original kept there and a
// hashed copy in the state directory, the hashes in the journal; a second
// run changes nothing.
func TestUpgradeWithRemoteMPPs(t *testing.T) {
	s := newSim(t)
	s.remoteMPPs(simhost.RemoteMPP{Name: "mpp1", Host: "127.0.0.2", Patch: "7.2.0.0.1202"}, simhost.RemoteMPP{Name: "mpp2", Host: "127.0.0.3", Patch: "7.2.0.0.1300"})
	orig := map[string][]byte{}
	for _, m := range []string{"mpp1", "mpp2"} {
		orig[m], _ = os.ReadFile(s.mppFile(m))
	}
	s.mustRun(exitOK, "run", "--yes")
	id := s.runID()
	for _, m := range []string{"mpp1", "mpp2"} {
		got, _ := os.ReadFile(s.mppFile(m))
		if !strings.Contains(string(got), ">33554432<") || !strings.Contains(string(got), ">262144<") {
			t.Errorf("%s on its server:\n%s", m, got)
		}
		if b, _ := os.ReadFile(s.mppFile(m) + ".upgrader-orig"); string(b) != string(orig[m]) {
			t.Errorf("%s: the original kept on the MPP is not the file as it was", m)
		}
		kept := filepath.Join(s.state, "artifacts", id, "mpp-"+m+"-mppconfig.xml")
		st, err := os.Stat(kept)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: upgrader's copy %s: %v", m, kept, err)
		}
		if b, _ := os.ReadFile(kept); string(b) != string(orig[m]) {
			t.Errorf("%s: upgrader's copy is not the original", m)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(s.mppFile(m)), ".mppconfig.xml"+remote.TempSuffix)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a temporary file is left: %v", m, err)
		}
		var st2 struct {
			Steps []orchestrator.StepRecord `json:"steps"`
		}
		json.Unmarshal([]byte(s.mustRun(exitOK, "status", "-o", "json").stdout), &st2)
		for _, rec := range st2.Steps {
			if rec.StepID != "mpp-config-"+m {
				continue
			}
			after, _ := os.ReadFile(s.mppFile(m))
			v := rec.Outputs.Values
			if v["before_sha256"] != sum(orig[m]) || v["after_sha256"] != sum(after) || !strings.HasPrefix(v["server"], "root@127.0.0.") {
				t.Errorf("%s recorded %v", m, v)
			}
			if a := rec.Outputs.Artifacts["mpp-original"]; a.SHA256 != sum(orig[m]) {
				t.Errorf("%s: artifact %+v", m, a)
			}
		}
	}
	journal := s.mustRun(exitOK, "journal", "-o", "json").stdout
	if !strings.Contains(journal, sum(orig["mpp2"])) {
		t.Errorf("the journal does not have mpp2's SHA-256 before the change")
	}
	// Again: the plan is nothing to do, and the MPP files stay as they are.
	before, _ := os.Stat(s.mppFile("mpp1"))
	s.mustRun(exitOK, "plan")
	if after, _ := os.Stat(s.mppFile("mpp1")); !after.ModTime().Equal(before.ModTime()) {
		t.Error("planning again touched an MPP's file")
	}
}

// TestChangedHostKeyRefused: an MPP server whose key is not the one
// known_hosts lists, or not listed at all, is refused: the plan blocks
// with the key's fingerprint and the commands to check and add it, and
// nothing on the MPP is touched.
func TestChangedHostKeyRefused(t *testing.T) {
	s := newSim(t)
	srv := s.remoteMPPs(simhost.RemoteMPP{Name: "mpp1", Host: "127.0.0.2"}, simhost.RemoteMPP{Name: "mpp2", Host: "127.0.0.3"})
	kh := filepath.Join(s.root, "etc/upgrader/ssh/known_hosts")
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	pub, _ := ssh.NewPublicKey(other.Public())
	lines := srv.KnownHostsLine("127.0.0.2") + "\n[127.0.0.3]:" + strconv.Itoa(srv.Port) + " " + string(ssh.MarshalAuthorizedKey(pub))
	os.WriteFile(kh, []byte(lines), 0o600)
	before, _ := os.ReadFile(s.mppFile("mpp2"))
	fp := ssh.FingerprintSHA256(srv.HostKey)

	flat := blockers(s)
	for _, want := range []string{"mpp-unreachable-mpp2", "REFUSED: it changed", fp, kh + ":2", "ssh-keygen -R '[127.0.0.3]:"} {
		if !strings.Contains(flat, want) {
			t.Errorf("plan does not say %q:\n%s", want, flat)
		}
	}
	if strings.Contains(flat, "mpp-unreachable-mpp1") {
		t.Errorf("mpp1, whose key is known, is blocked too:\n%s", flat)
	}
	s.mustRun(exitBlocked, "run", "--yes")
	if b, _ := os.ReadFile(s.mppFile("mpp2")); string(b) != string(before) {
		t.Error("the MPP's file changed")
	}
	// Unknown: never trusted on first use; known_hosts is left alone.
	os.WriteFile(kh, []byte(srv.KnownHostsLine("127.0.0.2")+"\n"), 0o600)
	flat = blockers(s)
	for _, want := range []string{"mpp-unreachable-mpp2", "never trusts a host key on first use", fp, "ssh-keyscan -p " + strconv.Itoa(srv.Port)} {
		if !strings.Contains(flat, want) {
			t.Errorf("plan does not say %q:\n%s", want, flat)
		}
	}
	if b, _ := os.ReadFile(kh); strings.Count(string(b), "\n") != 1 {
		t.Errorf("known_hosts was changed:\n%s", b)
	}
}

// blockers is the blockers of the host's plan, id and message, one a line.
func blockers(s *sim) string {
	s.t.Helper()
	var p orchestrator.Plan
	if err := json.Unmarshal([]byte(s.mustRun(exitBlocked, "plan", "-o", "json").stdout), &p); err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, b := range p.Blockers {
		out = append(out, b.ID+": "+b.Message)
	}
	return strings.Join(out, "\n")
}

// TestConnectionCutMidWriteResumes: the connection to an MPP is cut (its
// sshd session killed) after the new file is written beside the old and
// before the rename: the step fails saying so, the MPP keeps its original
// file, and `upgrader resume` converges with the original kept.
func TestConnectionCutMidWriteResumes(t *testing.T) {
	s := newSim(t)
	srv := s.remoteMPPs(simhost.RemoteMPP{Name: "mpp1", Host: "127.0.0.2"}, simhost.RemoteMPP{Name: "mpp2", Host: "127.0.0.7"})
	orig, _ := os.ReadFile(s.mppFile("mpp2"))
	mark := filepath.Join(t.TempDir(), "mark")
	c := s.cmd("run", "--yes")
	c.Env = append(c.Env, "UPGRADER_FAILPOINT=mpp-config-before-rename:mpp-config-mpp2", "UPGRADER_FAILPOINT_ACTION=wait",
		"UPGRADER_FAILPOINT_MARK="+mark)
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	if !waitFile(t, mark, 60*time.Second) {
		c.Process.Kill()
		t.Fatalf("the failpoint was not reached:\n%s", out.String())
	}
	tmp := filepath.Join(filepath.Dir(s.mppFile("mpp2")), ".mppconfig.xml"+remote.TempSuffix)
	if b, _ := os.ReadFile(tmp); !strings.Contains(string(b), ">33554432<") {
		t.Fatalf("the new file is not written beside the old: %q", b)
	}
	if n, err := srv.KillSessions("127.0.0.7"); n != 1 || err != nil {
		t.Fatalf("cut %d connections: %v", n, err)
	}
	os.WriteFile(mark+".go", nil, 0o644)
	err := <-done
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitFailed {
		t.Fatalf("upgrader after the cut: %v, want exit %d\n%s", err, exitFailed, out.String())
	}
	if !strings.Contains(out.String(), "mpp-config-mpp2") || !strings.Contains(out.String(), "127.0.0.7") {
		t.Errorf("the failure does not name the MPP and its server:\n%s", out.String())
	}
	if b, _ := os.ReadFile(s.mppFile("mpp2")); string(b) != string(orig) {
		t.Fatalf("the MPP's file is not its original after the cut:\n%s", b)
	}
	s.mustRun(exitOK, "resume", "--yes")
	got, _ := os.ReadFile(s.mppFile("mpp2"))
	if !strings.Contains(string(got), ">33554432<") || !strings.Contains(string(got), ">262144<") {
		t.Errorf("after resume:\n%s", got)
	}
	if b, _ := os.ReadFile(s.mppFile("mpp2") + ".upgrader-orig"); string(b) != string(orig) {
		t.Error("the original kept on the MPP is not the file as it was")
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file is left after resume: %v", err)
	}
}
