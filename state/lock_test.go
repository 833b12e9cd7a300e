package state

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// While one upgrader commits, a second one that opens the same state must
// be told it is locked, never that a healthy file is damaged: the file is
// read only once its lock is held. The opener uses its own descriptors, as
// a second process does (flock conflicts between open files, not
// processes).
func TestOpenWhileCommitting(t *testing.T) {
	dir := t.TempDir()
	d := openDB(t, dir)
	ids := make([]string, 40)
	for i := range ids {
		ids[i] = fmt.Sprintf("step-%02d", i)
	}
	mustCreate(t, d, newUpdate("r1", orchestrator.StatePlanned, ids...))
	length := 1500 * time.Millisecond
	if fullFaults() {
		length = 20 * time.Second
	}
	var stop atomic.Bool
	var done atomic.Int64 // commits made so far
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for n := 0; !stop.Load(); n++ {
			u := newUpdate("r1", orchestrator.StateRunning, ids...)
			i := n % len(ids)
			u.Steps = []orchestrator.StepRecord{{RunID: "r1", Index: i, StepID: ids[i], Status: orchestrator.StepStarted, Attempts: n}}
			u.Journal = journalEntries("r1", strings.Repeat(fmt.Sprintf("commit %d ", n), 50))
			if err := d.Commit(u); err != nil {
				t.Errorf("commit %d: %v", n, err)
				return
			}
			done.Add(1)
		}
	}()
	var opens, locked int
	// At least length, and on until 10 commits (each fsynced: a loaded
	// disk can take 1.5 s for fewer), for at most 30 s more.
	end, limit := time.Now().Add(length), time.Now().Add(length+30*time.Second)
	for ; time.Now().Before(end) || (done.Load() < 10 && time.Now().Before(limit)); opens++ {
		d2, err := Open(dir, time.Millisecond)
		switch {
		case err == nil:
			d2.Close()
			t.Fatal("a second Open succeeded while the state is held")
		case errors.Is(err, ErrLocked):
			locked++
		default:
			stop.Store(true)
			<-ended
			t.Fatalf("open %d while another handle commits: %v, want ErrLocked", opens, err)
		}
	}
	stop.Store(true)
	<-ended
	n := done.Load()
	fmt.Printf("concurrent open: %d opens during %d commits (%v), %d told the state is in use, 0 told it is damaged\n", opens, n, length, locked)
	if n < 10 || opens < 10 {
		t.Errorf("too little overlap to tell: %d opens during %d commits", opens, n)
	}
}
