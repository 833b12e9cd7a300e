package steps

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"upgrader/orchestrator/profile"
	"upgrader/testdata/lossyfs"
	"upgrader/testdata/simhost"
)

// newLossySim is newSim with the host on a lossy disk (testdata/lossyfs):
// what is not synced is lost at a power cut. The host as set up is
// durable; the jobs directory is not on the lossy disk.
func newLossySim(tb testing.TB, name string) (simEnv, *lossyfs.FS) {
	tb.Helper()
	dir := tb.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	if _, err := simhost.SetupHost(name, backing); err != nil {
		tb.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	disk, err := lossyfs.Mount(backing, mnt)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { disk.Unmount() })
	sim := simhost.Sim{Dir: mnt, Root: filepath.Join(mnt, "root"), Profile: filepath.Join(mnt, "profile.yaml")}
	data, err := os.ReadFile(sim.Profile)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := profile.Decode(data, sim.Dir)
	if err != nil {
		tb.Fatal(err)
	}
	e := simEnv{sim: sim, host: &Host{Profile: p, Run: shellRunner{mnt}, Jobs: jobsDir(tb)}}
	e.control(tb, "delay", "0.01")
	disk.Sync()
	return e, disk
}

// shellRunner runs the simulated tools on the lossy mount through
// /bin/bash: this process serves the mount, and a child exec'ing a file
// there can deadlock it (see lossyfs.Mount). Jobs are safe: their
// supervisor, another process, execs the tool.
type shellRunner struct{ mnt string }

func (r shellRunner) argv(argv []string) []string {
	if len(argv) > 0 && strings.HasPrefix(argv[0], r.mnt+"/") {
		return append([]string{"/bin/bash"}, argv...)
	}
	return argv
}

func (r shellRunner) Run(ctx context.Context, argv, env []string, line func(string)) error {
	return ExecRunner{}.Run(ctx, r.argv(argv), env, line)
}

func (r shellRunner) RunInput(ctx context.Context, argv, env []string, in io.Reader, line func(string)) error {
	return ExecRunner{}.RunInput(ctx, r.argv(argv), env, in, line)
}

// treeOf lists every file and directory under dir with its content's hash.
func treeOf(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			tb.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		b, _ := os.ReadFile(p)
		out = append(out, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		return nil
	})
	return out
}

func powerCut(tb testing.TB, disk *lossyfs.FS) {
	tb.Helper()
	if _, err := disk.PowerCut(lossyfs.LoseAll, rand.New(rand.NewPCG(1, 2))); err != nil {
		tb.Fatal(err)
	}
}

// A vendor installer syncs nothing; once its step has passed Apply and
// Verify (the engine then records it done) a power cut must not undo any
// of its work: the upgrade's removed jar stays removed, its new files stay.
func TestVendorInstallDurableBeforeDone(t *testing.T) {
	e, disk := newLossySim(t, "pom")
	stopVPMS(t, e)
	spec := installSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	home := e.host.Profile.Path(e.host.Profile.POM.Home)
	want := treeOf(t, home)
	powerCut(t, disk)
	if got := treeOf(t, home); !slices.Equal(got, want) {
		t.Errorf("after a power cut the installed product is not what the step verified:\n got %s\nwant %s",
			strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	mustProbe(t, st, sc, true)
}

// The end of a vendor installer's job is recorded only once what it
// changed is durable: a power cut right after the job ended, before
// upgrader itself looked (upgrader killed, or the cut in between), must
// not leave an end on record over work it took. Found by the power-cut
// sweep: a resumed run probed the installer "already in place" (its
// version file survived) while its removal of the old jar was lost.
func TestJobEndRecordedOnlyWhenDurable(t *testing.T) {
	e, disk := newLossySim(t, "pom")
	stopVPMS(t, e)
	spec := installSpec()
	home := e.host.Profile.Path(e.host.Profile.POM.Home)
	var want []string
	cut := errors.New("power cut")
	e.host.Failpoint = func(point, step string) {
		if point == "job-ended" && step == spec.ID {
			want = treeOf(t, home)
			powerCut(t, disk)
			panic(cut)
		}
	}
	st := e.build(t, spec)
	sc := stepContext(spec, nil)
	func() {
		defer func() {
			if r := recover(); r != cut {
				panic(r)
			}
		}()
		st.Apply(context.Background(), sc)
	}()
	if want == nil {
		t.Fatal("the installer's job never ended")
	}
	if got := treeOf(t, home); !slices.Equal(got, want) {
		t.Errorf("a power cut right after the installer's end was recorded took some of its work:\n got %s\nwant %s",
			strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// The help library is upgrader's own write: once its step has passed Apply
// and Verify, a power cut keeps it whole, the folders above it that the
// step made (webapps/VP_POM/help on a fresh POM) included.
func TestHelpLibraryDurableBeforeDone(t *testing.T) {
	e, disk := newLossySim(t, "pombare")
	h := helpSim{simEnv: e, st: e.build(t, helpSpec()), sc: stepContext(helpSpec(), nil)}
	h.apply(t)
	h.verify(t)
	want := treeOf(t, h.path("/opt"))
	powerCut(t, disk)
	if got := treeOf(t, h.path("/opt")); !slices.Equal(got, want) {
		t.Errorf("after a power cut the help library is not what the step verified:\n got %s\nwant %s",
			strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// A migration's backup is copied to the new server by the engineer (scp
// syncs nothing). Once a guard has proved it, a power cut must not lose it:
// the resumed step's guard would then fail on a file upgrader had checked.
func TestRecheckMakesArtifactDurable(t *testing.T) {
	e, disk := newLossySim(t, "pom")
	e.host.Role = "target"
	p := e.path("/var/backups/upgrader/pc-data.tar.gz")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("the source's data"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := artifactOf(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Path, a.Host = "/var/backups/upgrader/pc-data.tar.gz", "source"
	if err := e.host.Recheck(context.Background(), "pc-backup", a); err != nil {
		t.Fatal(err)
	}
	powerCut(t, disk)
	if err := e.host.Recheck(context.Background(), "pc-backup", a); err != nil {
		t.Errorf("the backup the guard proved is gone after a power cut: %v", err)
	}
}
