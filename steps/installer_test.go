package steps

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The installer's own lines reach the terminal as they come, and a
// failure says the exit code.
func TestVendorInstallStreamsOutputAndRecordsExitCode(t *testing.T) {
	e := newSim(t, nil)
	spec := installSpec()
	st := e.build(t, spec)
	pr := &progressRecorder{}
	sc := stepContext(spec, pr)
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "exited with code 1") {
		t.Fatalf("Apply with vpms running: %v, want the exit code", err)
	}
	if !slices.ContainsFunc(pr.lines(), func(l string) bool { return strings.Contains(l, "vpms is running") }) {
		t.Errorf("the installer's complaint was not streamed: %q", pr.lines())
	}
}

// A hung installer is stopped at the profile's installer_timeout and the
// step fails saying so, instead of holding the window.
func TestVendorInstallTimeout(t *testing.T) {
	e := newSim(t, nil)
	e.host.Profile.InstallerTimeout = "1s"
	stopVPMS(t, e)
	e.control(t, "pause-at", "installer:2")
	spec := installSpec()
	st := e.build(t, spec)
	start := time.Now()
	err := st.Apply(context.Background(), stepContext(spec, nil))
	if err == nil || !strings.Contains(err.Error(), "installer_timeout") {
		t.Fatalf("Apply: %v, want the timeout", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
}

// systemctl sites: VERB NAME, and is-active for the status.
func TestServiceArgvSystemctl(t *testing.T) {
	h := &Host{}
	h.Profile.Root = "/"
	h.Profile.ServiceManager = "systemctl"
	s := services{h: h}
	if got := s.serviceArgv("vpms", "stop"); !slices.Equal(got, []string{"/usr/bin/systemctl", "stop", "vpms"}) {
		t.Errorf("stop: %q", got)
	}
	if got := s.serviceArgv("vpms", "status"); !slices.Equal(got, []string{"/usr/bin/systemctl", "is-active", "--quiet", "vpms"}) {
		t.Errorf("status: %q", got)
	}
	h.Profile.ServiceManager = ""
	if got := s.serviceArgv("vpms", "start"); !slices.Equal(got, []string{"/usr/sbin/service", "vpms", "start"}) {
		t.Errorf("SysV start: %q", got)
	}
}

func stopVPMS(tb testing.TB, e simEnv) {
	tb.Helper()
	if err := os.WriteFile(e.path("var/lib/sim/services/vpms"), []byte("stopped\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
}
