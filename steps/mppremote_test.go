package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/testdata/sshd"
)

// remoteMPPHost is a Host whose profile logs in to the shared test sshd
// with its user key, trusting its host key for every one of its hosts;
// each MPP's files live under a directory of its own on this machine.
func remoteMPPHost(t *testing.T) (*Host, *sshd.Server) {
	t.Helper()
	s, err := sshd.Shared()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := s.WriteKnownHosts(kh); err != nil {
		t.Fatal(err)
	}
	h := &Host{Run: ExecRunner{}, Jobs: jobsDir(t), Artifacts: filepath.Join(dir, "state", "artifacts")}
	h.Profile.Root = "/"
	h.Profile.SSH = profile.SSH{KeyFile: s.UserKey, KnownHosts: kh, Port: s.Port}
	t.Cleanup(func() {
		if h.SSH != nil {
			h.SSH.Close()
		}
	})
	return h, s
}

// mppOn lays an mppconfig.xml out for one MPP "host" and returns its path.
func mppOn(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "opt/Avaya/ExperiencePortal/MPP/config/mppconfig.xml")
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func remoteSpec(s *sshd.Server, host, name, config string) orchestrator.StepSpec {
	return orchestrator.StepSpec{ID: "mpp-config-" + name, Action: "mpp-config", Params: map[string]string{
		"mpp": name, "config": config, "host": host, "port": strconv.Itoa(s.Port), "user": "root",
		runtimeParam: "33554432", contextParam: "262144"}}
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestMPPConfigOverSSH: the step on an MPP of its own server backs the
// file up there, keeps a hashed copy in the artifacts, splices the values
// into the original bytes, and records both hashes; a second run changes
// nothing.
func TestMPPConfigOverSSH(t *testing.T) {
	h, s := remoteMPPHost(t)
	config := mppOn(t, mppXML)
	spec := remoteSpec(s, s.Hosts[1], "mpp2", config)
	st, err := h.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	sc := stepContext(spec, nil)
	ctx := context.Background()
	mustProbe(t, st, sc, false)
	if err := st.Apply(ctx, sc); err != nil {
		t.Fatal(err)
	}
	out, err := st.Verify(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	want := afterLine(t, strings.Replace(mppXML, ">16777216<", ">33554432<", 1), "ccxml.jsi.stacksize", contextLine)
	got, _ := os.ReadFile(config)
	if string(got) != want {
		t.Fatalf("the MPP's file:\n%s\nwant:\n%s", got, want)
	}
	orig, _ := os.ReadFile(config + OriginalSuffix)
	if string(orig) != mppXML {
		t.Errorf("the original on the MPP is not the file as it was:\n%s", orig)
	}
	if st, _ := os.Stat(config); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %04o, want the original's 0640", st.Mode().Perm())
	}
	a, ok := out.Artifacts["mpp-original"]
	kept := filepath.Join(h.Artifacts, testRunID, "mpp-mpp2-mppconfig.xml")
	if !ok || a.Path != kept || a.SHA256 != hexSum([]byte(mppXML)) || a.Size != int64(len(mppXML)) {
		t.Errorf("artifact %+v, want %s with the original's SHA-256", a, kept)
	}
	if st, err := os.Stat(kept); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("upgrader's copy: %v, want 0600", err)
	}
	v := out.Values
	if v["before_sha256"] != hexSum([]byte(mppXML)) || v["after_sha256"] != hexSum([]byte(want)) ||
		v["server"] != "root@"+s.Addr(s.Hosts[1]) || v["original"] != config+OriginalSuffix {
		t.Errorf("values %v", v)
	}
	// Again: nothing to do, nothing written.
	before, _ := os.Stat(config)
	mustProbe(t, st, sc, true)
	if _, err := st.Verify(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(config); !after.ModTime().Equal(before.ModTime()) {
		t.Error("a second run touched the file")
	}
}

// TestMPPConfigRefusesAChangedHostKey: the step does not touch an MPP
// whose host key is not the one known_hosts lists, and says which key it
// was shown.
func TestMPPConfigRefusesAChangedHostKey(t *testing.T) {
	h, s := remoteMPPHost(t)
	os.WriteFile(h.Profile.SSH.KnownHosts, []byte("["+s.Hosts[2]+"]:"+strconv.Itoa(s.Port)+
		" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o600)
	config := mppOn(t, mppXML)
	spec := remoteSpec(s, s.Hosts[2], "mpp3", config)
	st, _ := h.Build(spec)
	_, err := st.Probe(context.Background(), stepContext(spec, nil))
	if err == nil || !strings.Contains(err.Error(), "MPP mpp3") || !strings.Contains(err.Error(), ssh.FingerprintSHA256(s.HostKey)) ||
		!strings.Contains(err.Error(), "REFUSED") {
		t.Fatalf("Probe with a changed host key: %v", err)
	}
	if b, _ := os.ReadFile(config); string(b) != mppXML {
		t.Error("the file was touched")
	}
}

// TestMPPFactsReadOnEachMPP: reachability, the patch read where the
// profile says, and the current values, for MPPs here and on their own
// servers; an MPP that does not answer is said with the reason.
func TestMPPFactsReadOnEachMPP(t *testing.T) {
	h, s := remoteMPPHost(t)
	local := mppOn(t, mppXML)
	set := strings.Replace(mppXML, ">16777216<", ">33554432<", 1)
	remote2 := mppOn(t, afterLine(t, set, "ccxml.jsi.runtimesize", contextLine))
	version := filepath.Join(filepath.Dir(remote2), "mpp.version")
	os.WriteFile(version, []byte("Name=MPP\nPatch=7.2.0.0.1202\n"), 0o644)
	h.Profile.MPPs = []profile.MPP{
		{Name: "mpp1", Host: "localhost", Config: local},
		{Name: "mpp2", Host: s.Hosts[3], Config: remote2, Version: profile.VersionSource{File: version, Pattern: `Patch=(\S+)`}},
		{Name: "mpp3", Host: s.Hosts[4], Port: 1, Config: "/x"},
		{Name: "mpp4", Host: s.Hosts[3], Config: "/nowhere/mppconfig.xml", Version: profile.VersionSource{
			Command: []string{"/bin/echo", "patch 7.2.0.0.1100"}, Pattern: `patch (\S+)`}},
	}
	f := orchestrator.Facts{}
	gatherMPPFacts(context.Background(), h, f)
	get := func(name, what string) string { v, _ := f.Get(orchestrator.MPPFact(name, what)); return v }
	for _, c := range []struct{ name, what, want string }{
		{"mpp1", orchestrator.MPPReachable, "true"}, {"mpp1", orchestrator.MPPFactRuntimeSize, "16777216"},
		{"mpp1", orchestrator.MPPFactContextSize, ""},
		{"mpp2", orchestrator.MPPReachable, "true"}, {"mpp2", orchestrator.MPPPatch, "7.2.0.0.1202"},
		{"mpp2", orchestrator.MPPFactContextSize, "262144"},
		{"mpp3", orchestrator.MPPReachable, "false"},
		{"mpp4", orchestrator.MPPReachable, "true"}, {"mpp4", orchestrator.MPPPatch, "7.2.0.0.1100"},
	} {
		if got := get(c.name, c.what); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.name, c.what, got, c.want)
		}
	}
	if e := get("mpp3", orchestrator.MPPError); !strings.Contains(e, "connection refused") {
		t.Errorf("mpp3's error %q", e)
	}
	if e := get("mpp4", orchestrator.MPPConfigError); !strings.Contains(e, "/nowhere/mppconfig.xml") {
		t.Errorf("mpp4's config error %q", e)
	}
	if src := f[orchestrator.MPPFact("mpp2", orchestrator.MPPReachable)].Source; src != "root@"+s.Addr(s.Hosts[3]) {
		t.Errorf("mpp2's source %q", src)
	}
}
