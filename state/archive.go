package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// Finished runs leave the state file: when a new run is created, every
// run that is over is written to a file of its own under ArchiveDir
// (durably, before the state file forgets it), then removed from the state
// file in the commit that creates the new run. The state file, which every
// commit rewrites pages of and every open checks whole, so keeps one or two
// runs whatever the history: its cost does not grow. LoadRun, Journal and
// Runs read the archive for a run the state file no longer holds.

// ArchiveDir is the directory of finished runs, in the state directory.
const ArchiveDir = "archive"

// archiveExt ends the name of an archived run: <run id>.run.
const archiveExt = ".run"

// maxArchived bounds what is read of one archived run.
const maxArchived = 256 << 20

func (d *DB) archiveDir() string { return filepath.Join(filepath.Dir(d.path), ArchiveDir) }

// archiveFinished writes every finished run of the state file to the
// archive and returns their ids, for the caller's commit to remove. What
// cannot be archived stays in the state file (a warning, not a failure).
func (d *DB) archiveFinished() []string {
	var recs []RunRecord
	err := d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			var run orchestrator.Run
			if err := getJSON(v, &run, "run "+string(k)); err != nil || !run.State.Terminal() {
				return err
			}
			run, steps, err := loadRun(tx, string(k))
			if err != nil {
				return err
			}
			journal, err := journalOf(tx, string(k), 0)
			if err != nil {
				return err
			}
			recs = append(recs, RunRecord{Run: run, Steps: steps, Journal: journal})
			return nil
		})
	})
	if err == nil && len(recs) > 0 {
		err = securefs.MkdirPrivate(d.archiveDir(), "archive directory")
	}
	var ids []string
	for _, r := range recs {
		if err != nil {
			break
		}
		var data []byte
		if data, err = json.Marshal(r); err == nil {
			// A durable replace: an earlier copy (a crash between this and
			// the commit that forgets the run) is replaced by this one.
			err = securefs.WriteFile(filepath.Join(d.archiveDir(), r.Run.ID+archiveExt), seal(data), 0o600)
		}
		if err == nil {
			ids = append(ids, r.Run.ID)
		}
	}
	if err != nil && d.Warn != nil {
		d.Warn(fmt.Errorf("finished runs not archived (they stay in the state file): %w", err))
	}
	return ids
}

// forget removes the runs ids from the state file (they are archived).
func forget(tx *bolt.Tx, ids []string) error {
	for _, id := range ids {
		k := []byte(id)
		if err := tx.Bucket(bucketRuns).Delete(k); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPlans).Delete(k); err != nil {
			return err
		}
		if err := tx.DeleteBucket(runBucketName(id)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
	}
	return nil
}

// readArchived reads the archived run id from the state directory dir.
func readArchived(dir, id string) (RunRecord, error) {
	var r RunRecord
	if err := orchestrator.ValidRunID(id); err != nil {
		return r, err
	}
	path := filepath.Join(dir, ArchiveDir, id+archiveExt)
	f, err := securefs.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("%w: %s", orchestrator.ErrRunNotFound, id)
	}
	if err != nil {
		return r, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxArchived))
	if err != nil {
		return r, err
	}
	if err := getJSON(data, &r, "archived run "+path); err != nil {
		return r, err
	}
	if r.Run.ID != id || len(r.Steps) != len(r.Run.Plan.Steps) {
		return r, fmt.Errorf("%w: archived run %s holds run %q with %d step records for %d steps", ErrCorrupt, path, r.Run.ID, len(r.Steps), len(r.Run.Plan.Steps))
	}
	return r, nil
}

// archivedIDs lists the runs archived in the state directory dir.
func archivedIDs(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, ArchiveDir))
	var ids []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), archiveExt)
		if ok && e.Type().IsRegular() && orchestrator.ValidRunID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// archivedSteps runs fn on each archived run's step records (the fallback's
// evidence, fallback.go).
func (d *DB) archivedSteps(fn func(orchestrator.StepRecord)) error {
	dir := filepath.Dir(d.path)
	for _, id := range archivedIDs(dir) {
		r, err := readArchived(dir, id)
		if err != nil {
			return err
		}
		for _, s := range r.Steps {
			fn(s)
		}
	}
	return nil
}

// mergeIDs merges two sorted id lists, once each.
func mergeIDs(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.SortFunc(out, func(x, y string) int { return bytes.Compare([]byte(x), []byte(y)) })
	return slices.Compact(out)
}
