package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/testdata/simhost/smallfs"
)

// An installer is not started where its log and its end cannot be
// written: on a full jobs filesystem the sim installer (like a vendor one)
// dies at its first line of output, half-way, and its end is lost. The
// step fails before the installer starts, saying so; once space is freed
// the same step runs it, once.
func TestInstallerNotStartedWithoutRoomForItsLog(t *testing.T) {
	e := newSim(t, nil)
	stopVPMS(t, e)
	mnt := smallfs.Mount(t, int(2*JobRoom>>10))
	e.host.Jobs = filepath.Join(mnt, "jobs")
	spec := installSpec()
	st := e.build(t, spec)
	sc := stepContext(spec, nil)

	release := smallfs.Fill(t, mnt, 256<<10)
	err := st.Apply(context.Background(), sc)
	if err == nil || !strings.Contains(err.Error(), "not started: no space left for its log") || !strings.Contains(err.Error(), "upgrader retry") {
		t.Fatalf("Apply with 256 KiB free for the jobs: %v, want the installer not started, saying why", err)
	}
	if n := countLines(e.ledger(t), "installer begin"); n != 0 {
		t.Fatalf("the installer began %d times on the full disk", n)
	}
	if entries, _ := os.ReadDir(e.host.Jobs); len(entries) != 0 {
		t.Errorf("a job was recorded on the full disk: %d files", len(entries))
	}
	release()
	mustApply(t, st, sc)
	mustVerify(t, st, sc)
	checkOnce(t, e, "installer")
}
