// Command resumebench measures how soon a daemon started on a state with
// 1,000 finished runs and one active run dispatches the active run's next
// step, beside the cost of opening that state:
//
//	go run ./testdata/resumebench UPGRADER DIR
//
// UPGRADER is upgrader built with -tags failpoints, DIR a simulated POM
// host made by mksim. It fills DIR/state with 1,000 finished runs, runs the
// POM upgrade until the result of mpp-config-mpp1 is committed (with the
// next step's intent: one commit per step) and kills it there, then, five
// times over from that same state, starts `upgrader daemon` and takes the
// time from just before the process starts to the journal's start (or, as
// here, resume) of the next step (mpp-config-mpp2), read from the daemon
// over its socket.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"upgrader/orchestrator/api"
	"upgrader/state"
	"upgrader/testdata/history"
)

const (
	finishedRuns = 1000
	stopAfter    = "mpp-config-mpp1"
	rounds       = 5
	target       = 50 * time.Millisecond
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: resumebench UPGRADER DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "resumebench:", err)
		os.Exit(1)
	}
}

func run(bin, dir string) error {
	stateDir := filepath.Join(dir, "state")
	db, err := state.Open(stateDir, time.Second)
	if err != nil {
		return err
	}
	err = history.Fill(db, finishedRuns, history.Plan(30))
	db.Close()
	if err != nil {
		return err
	}
	args := []string{"--profile", filepath.Join(dir, "profile.yaml"), "--state-dir", stateDir}
	c := exec.Command(bin, append(args, "run", "--yes")...)
	c.Env = append(os.Environ(), "UPGRADER_FAILPOINT=after-result:"+stopAfter, "UPGRADER_FAILPOINT_ACTION=kill")
	if out, err := c.CombinedOutput(); err == nil {
		return fmt.Errorf("the run was not stopped after %s:\n%s", stopAfter, out)
	}
	saved := filepath.Join(dir, "state.saved")
	if err := exec.Command("cp", "-a", stateDir, saved).Run(); err != nil {
		return err
	}
	var opens, starts []time.Duration
	for range rounds {
		if err := os.RemoveAll(stateDir); err != nil {
			return err
		}
		if err := exec.Command("cp", "-a", saved, stateDir).Run(); err != nil {
			return err
		}
		t := time.Now()
		db, err := state.Open(stateDir, time.Second)
		if err != nil {
			return err
		}
		opens = append(opens, time.Since(t))
		if ids, _ := db.Runs(); len(ids) != finishedRuns+1 {
			return fmt.Errorf("%d runs in the state, want %d", len(ids), finishedRuns+1)
		}
		db.Close()
		d, err := startToStep(bin, args, filepath.Join(dir, "run", "upgrader.sock"))
		if err != nil {
			return err
		}
		starts = append(starts, d)
	}
	slices.Sort(opens)
	slices.Sort(starts)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("\nresume with %d finished runs and one active: daemon start to the next step's start %.1f ms (median of %d, %.1f-%.1f; target %.0f ms); opening that state (lock, check, verify) %.1f ms\n",
		finishedRuns, ms(starts[rounds/2]), rounds, ms(starts[0]), ms(starts[rounds-1]), ms(target), ms(opens[rounds/2]))
	return nil
}

// startToStep starts the daemon and returns the time from just before its
// process starts to the journal's start of the step after stopAfter.
func startToStep(bin string, args []string, socket string) (time.Duration, error) {
	os.Remove(socket)
	d := exec.Command(bin, append(args, "daemon", "--socket", socket)...)
	t0 := time.Now()
	if err := d.Start(); err != nil {
		return 0, err
	}
	defer func() {
		d.Process.Signal(syscall.SIGTERM)
		d.Wait()
	}()
	c := api.NewClient(socket)
	for deadline := t0.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		entries, err := c.Journal(ctx, "", 0)
		cancel()
		if err != nil {
			continue
		}
		for _, e := range entries {
			if (e.Event == "step.start" || e.Event == "step.resume") && e.Step == "mpp-config-mpp2" && e.Time.After(t0) {
				return e.Time.Sub(t0), nil
			}
		}
	}
	return 0, fmt.Errorf("the daemon did not start mpp-config-mpp2 within 30 s")
}
