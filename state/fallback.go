package state

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"upgrader/orchestrator"
	"upgrader/state/securefs"
)

// A torn write of the newest meta page is what bbolt's two meta pages are
// for: bbolt writes a commit's pages, fdatasyncs, then writes its meta page
// and fdatasyncs again, and only then returns. A torn meta page is a commit
// that never returned, and the engine's persist-before-act rule makes the
// commit before it a safe place to resume (an intent never acknowledged:
// the step never started; a result lost: the step is probed again).
//
// The same checksum failure can also be a meta page damaged after its
// commit returned (the disk). Falling back would then silently undo an
// acknowledged commit, perhaps the intent of an irreversible step, which a
// resume could repeat. So the fallback is taken only when no durable
// evidence says a later commit was acknowledged (weighFallback); otherwise
// the file is refused as damaged, with the advice.

// JobsDir is where supervised jobs keep their records, in the state
// directory (steps/job).
const JobsDir = "jobs"

// weighFallback refuses the fallback fb when something written only after
// a commit returned shows a commit later than the one the file opens at:
// the snapshot (taken after a commit, at its txid), or a supervised job
// whose key no step record holds (a job's key is committed before it
// starts).
func (d *DB) weighFallback(fb *metaFallback) error {
	dir := filepath.Dir(d.path)
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: meta page %d %s, and %s: a commit after txid %d was acknowledged, so the page was damaged after it was written (the disk, not a power cut); opening the older commit would undo it",
			ErrCorrupt, d.path, fb.Damaged, fb.Why, fmt.Sprintf(format, a...), fb.Opened)
	}
	if snap := snapshotTxid(filepath.Join(dir, SnapshotName)); snap > fb.Opened {
		return refuse("the snapshot beside it was taken at txid %d", snap)
	}
	known, err := d.jobKeys()
	if err != nil {
		return err
	}
	names, _ := filepath.Glob(filepath.Join(dir, JobsDir, "*.lock"))
	for _, n := range names {
		key := strings.TrimSuffix(filepath.Base(n), ".lock")
		if !known.explains(key) {
			return refuse("the supervised job %s (%s) is not in the state it would open", key, n)
		}
	}
	return nil
}

// jobSet is the supervised jobs step records hold: for each job key's
// prefix (run, step and name), the highest number saved. A job's key is its
// prefix and a number, the lowest free one (steps/job NewKey): a step run
// again saves a higher one in place of the last.
type jobSet map[string]int

func splitJobKey(key string) (prefix string, n int) {
	i := strings.LastIndexByte(key, '-')
	if i < 0 {
		return key, 0
	}
	n, err := strconv.Atoi(key[i+1:])
	if err != nil {
		return key, 0
	}
	return key[:i], n
}

func (s jobSet) add(key string) {
	p, n := splitJobKey(key)
	if m, ok := s[p]; !ok || n > m {
		s[p] = n
	}
}

// explains says whether the job key is one a step record holds, or an
// earlier one of the same step (replaced when the step ran again).
func (s jobSet) explains(key string) bool {
	p, n := splitJobKey(key)
	m, ok := s[p]
	return ok && n <= m
}

// snapshotTxid is the txid of the snapshot at path, 0 if there is none.
func snapshotTxid(path string) uint64 {
	f, err := securefs.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0
	}
	defer f.Close()
	return metaTxid(f)
}

// jobKeys is every supervised job key a step record holds (saved as "job"
// or "job.NAME"), in the live file and the archive.
func (d *DB) jobKeys() (jobSet, error) {
	keys := jobSet{}
	collect := func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte(runPrefix)) {
				return nil
			}
			return forEachPrefixed(b, prefixStep, 0, func(_ uint64, v []byte) error {
				var r orchestrator.StepRecord
				if err := getJSON(v, &r, "step record"); err != nil {
					return err
				}
				for name, key := range r.Saved {
					if name == "job" || strings.HasPrefix(name, "job.") {
						keys.add(key)
					}
				}
				return nil
			})
		})
	}
	if err := d.db.View(collect); err != nil {
		return nil, err
	}
	return keys, d.archivedSteps(func(r orchestrator.StepRecord) {
		for name, key := range r.Saved {
			if name == "job" || strings.HasPrefix(name, "job.") {
				keys.add(key)
			}
		}
	})
}

// recordFallback journals what Open did, in the latest run (when there is
// one), and keeps it in d.Recovered. The commit rewrites the damaged meta
// page: bbolt writes the next commit there.
func (d *DB) recordFallback(fb *metaFallback, readOnly bool) error {
	text := fmt.Sprintf("the last commit to the state file (txid %d) was incomplete, a power cut during a write: its meta page (page %d) %s. "+
		"The state was opened at txid %d, the commit before it, which bbolt keeps for this; a step that commit had started is probed again, "+
		"none had begun (upgrader's own recovery: nothing durable shows a later commit was acknowledged). "+
		"Had the page held the commit before txid %d instead, damaged since, nothing was undone. The next commit rewrites the page",
		fb.Lost, fb.Damaged, fb.Why, fb.Opened, fb.Opened)
	event := "state.fallback"
	d.Recovered = text
	if readOnly {
		return nil
	}
	id, err := d.ActiveRun()
	if err != nil {
		id, err = d.LatestRun()
	}
	if err != nil {
		return nil // no run to tell: d.Recovered says it
	}
	j := orchestrator.JournalEntry{RunID: id, Time: time.Now().UTC(), Actor: "state", Event: event, Text: text,
		Fields: map[string]string{"txid_opened": fmt.Sprint(fb.Opened), "txid_lost": fmt.Sprint(fb.Lost), "meta_page": fmt.Sprint(fb.Damaged)}}
	return d.update(func(tx *bolt.Tx) error {
		b := runBucket(tx, id)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.Seq = seq
		return putJSON(b, journalKey(seq), j)
	})
}
