package state

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"upgrader/state/securefs"
)

// LogName is upgrader's detailed log (JSON lines), beside the state file.
const LogName = "upgrader.log"

// OpenLog opens the detailed log in the state directory dir for
// appending, never through a symlink. A log must not go quiet unnoticed:
// the first write that fails (a full disk) is said on warn, once; the
// events lost are then counted in the log as soon as it takes writes
// again.
func OpenLog(dir string, warn io.Writer) (io.WriteCloser, error) {
	if err := checkDir(dir, true); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LogName)
	f, err := securefs.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	return &logFile{f: f, warn: warn}, nil
}

type logFile struct {
	f    *os.File
	warn io.Writer

	mu      sync.Mutex
	lost    int       // events not written since since
	since   time.Time // the first failed write
	failure error     // its error
	torn    bool      // a failed write left part of an event
}

// Write appends one event. A failed write is reported, not returned: the
// logger would otherwise print its own complaint for every event.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost > 0 && l.write(l.lostNote()) {
		l.lost, l.torn = 0, false
	}
	if l.lost > 0 || !l.write(p) {
		l.lost++
	}
	return len(p), nil
}

// write appends b, noting the first failure of a run of them.
func (l *logFile) write(b []byte) bool {
	n, err := l.f.Write(b)
	if err == nil {
		return true
	}
	l.torn = l.torn || n > 0
	if l.failure == nil || l.lost == 0 {
		l.failure, l.since = err, time.Now().UTC()
		fmt.Fprintf(l.warn, "warning: upgrader's detailed log misses events from now on: %v (the run's journal, 'upgrader journal', still records every step)\n", err)
	}
	return false
}

// lostNote is the log line that counts the events lost.
func (l *logFile) lostNote() []byte {
	b, _ := json.Marshal(map[string]any{"level": "warn", "time": time.Now().UTC().Format(time.RFC3339),
		"message": fmt.Sprintf("%d log events lost since %s: %v", l.lost, l.since.Format(time.RFC3339), l.failure)})
	if l.torn {
		b = append([]byte("\n"), b...)
	}
	return append(b, '\n')
}

// Close flushes the log to disk: a write the disk refused later (a full
// disk found at writeback) is said here, if no failure was said yet.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.f.Sync(); err != nil && l.failure == nil {
		fmt.Fprintf(l.warn, "warning: upgrader's detailed log may have lost events: %v (the run's journal, 'upgrader journal', still records every step)\n", err)
	}
	return l.f.Close()
}
