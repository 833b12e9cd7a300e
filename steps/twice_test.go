package steps

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"upgrader/orchestrator"
	"upgrader/testdata/simhost"
)

// Every step, run a second time right after it converged, changes nothing:
// Probe says its effect is in place, and neither the host's files (content
// and times) nor the record of effects move.
func TestEveryStepTwiceChangesNothing(t *testing.T) {
	type stepCase struct {
		name  string
		host  string
		spec  orchestrator.StepSpec
		setup func(tb testing.TB, e simEnv, sc *orchestrator.StepContext)
	}
	confirmed := func(tb testing.TB, e simEnv, sc *orchestrator.StepContext) {
		sc.Confirmation = &orchestrator.Confirmation{Actor: "uid=0(root)", At: time.Now()}
	}
	for _, tc := range []stepCase{
		{name: "verify-media", host: "pom", spec: orchestrator.StepSpec{ID: "verify-media", Action: "verify-media", Params: map[string]string{
			"iso": "/media/" + simhost.ISOName, "sha256": "4bba4c54aa533f7129361ec262c4343949dc3c8d240d17d217edefc910131193", "size": "270336"}}},
		{name: "backup-db", host: "pom", spec: backupSpec()},
		{name: "service-stop", host: "pom", spec: serviceSpec("service-stop", "vpms")},
		{name: "service-start", host: "pom", spec: serviceSpec("service-start", "vpms"), setup: func(tb testing.TB, e simEnv, _ *orchestrator.StepContext) {
			stopVPMS(tb, e)
		}},
		{name: "vendor-install pom", host: "pom", spec: installSpec(), setup: func(tb testing.TB, e simEnv, _ *orchestrator.StepContext) {
			stopVPMS(tb, e)
		}},
		{name: "vendor-install pc", host: "pc41", spec: pcInstallSpec("dialer-4.1.2", "dialer", "4.1.2")},
		{name: "gate", host: "pom", spec: orchestrator.StepSpec{ID: "enable-dnc-import", Kind: orchestrator.KindGate, Action: "gate"}, setup: confirmed},
		{name: "pc-backup", host: "dl385", spec: orchestrator.StepSpec{ID: "backup-source", Action: "pc-backup"}},
		{name: "mpp-config", host: "pom", spec: orchestrator.StepSpec{ID: "mpp-config-mpp1", Action: "mpp-config", Params: map[string]string{
			"mpp": "mpp1", "config": "/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml",
			orchestrator.MPPRuntimeSizeParam: orchestrator.MPPRuntimeSize, orchestrator.MPPContextSizeParam: orchestrator.MPPContextSize}}},
		{name: "help-library", host: "pombare", spec: orchestrator.StepSpec{ID: "help-library", Action: "help-library", Params: map[string]string{
			"zip": "/media/UsingPOM.zip", "dir": "/opt/Tomcat/tomcat/webapps/VP_POM/help/AvayaPOMDocLibrary",
			"owner": "avayavp", "group": "avayavpgroup", "services": "vpms"}}},
		{name: "reboot", host: "pcbare", spec: orchestrator.StepSpec{ID: "linux-es-reboot", Kind: orchestrator.KindReboot, Action: "reboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHostSim(t, tc.host)
			sc := stepContext(tc.spec, nil)
			saved := map[string]string{}
			sc.Save = func(v map[string]string) error {
				for k, x := range v {
					saved[k] = x
				}
				return nil
			}
			if tc.setup != nil {
				tc.setup(t, e, &sc)
			}
			st := e.build(t, tc.spec)
			converge(t, st, &sc, saved)
			before, ledger := treeState(t, e.sim.Root), strings.Join(e.ledger(t), "\n")
			time.Sleep(10 * time.Millisecond) // a rewrite would show in the times
			done, err := st.Probe(context.Background(), sc)
			if err != nil {
				t.Fatal(err)
			}
			// verify-media and gates change nothing at all: they run again, harmlessly.
			if !done && tc.spec.Action != "verify-media" && tc.spec.Action != "gate" {
				t.Fatal("Probe does not see the effect the step just made")
			}
			if !done {
				mustApply(t, st, sc)
			}
			mustVerify(t, st, sc)
			if after := treeState(t, e.sim.Root); after != before {
				t.Errorf("the second run changed the host:\n%s", diffLines(before, after))
			}
			if got := strings.Join(e.ledger(t), "\n"); got != ledger {
				t.Errorf("the second run did a non-idempotent effect again:\n%s\nthen\n%s", ledger, got)
			}
		})
	}
}

// converge runs a step to its verified effect, through a reboot if the
// step asks for one.
func converge(tb testing.TB, st orchestrator.Step, sc *orchestrator.StepContext, saved map[string]string) {
	tb.Helper()
	done, err := st.Probe(context.Background(), *sc)
	if err != nil {
		tb.Fatal(err)
	}
	if !done {
		if err := st.Apply(context.Background(), *sc); err != nil && !isReboot(err) {
			tb.Fatal(err)
		}
	}
	sc.Saved = saved
	mustVerify(tb, st, *sc)
}

func isReboot(err error) bool { return err == orchestrator.ErrRebootRequested }

// treeState lists every file of the host with its hash and time, leaving
// out the simulator's own control files and ledger.
func treeState(tb testing.TB, root string) string {
	tb.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if rel == "sim/control" {
			return filepath.SkipDir // the simulator's own control files and exec log
		}
		if rel == "var/log/sim-ledger.log" || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %x %s\n", rel, sha256.Sum256(data), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

func diffLines(a, b string) string {
	old := map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		old[l] = true
	}
	var out []string
	for _, l := range strings.Split(b, "\n") {
		if !old[l] {
			out = append(out, "  "+l)
		}
	}
	return strings.Join(out, "\n")
}
