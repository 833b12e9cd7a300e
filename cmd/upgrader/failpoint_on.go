//go:build failpoints

package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// failpoint stops the process at a named point for crash tests, when
// UPGRADER_FAILPOINT is "point:step". UPGRADER_FAILPOINT_ACTION says how:
// pause (write UPGRADER_FAILPOINT_MARK and wait to be killed), wait (write
// the mark, then go on once the test writes MARK.go: a test does
// something to the world in between, such as cutting a connection), kill
// (SIGKILL itself) or panic. UPGRADER_FAILPOINT_TRACE names a file that
// every point passed is appended to, so that a sweep knows the points of
// a run.
var failpoint = func(point, step string) {
	name := point + ":" + step
	if trace := os.Getenv("UPGRADER_FAILPOINT_TRACE"); trace != "" {
		if f, err := os.OpenFile(trace, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(f, name)
			f.Close()
		}
	}
	if os.Getenv("UPGRADER_FAILPOINT") != name {
		return
	}
	if mark := os.Getenv("UPGRADER_FAILPOINT_MARK"); mark != "" {
		// Written whole, then renamed: whoever sees the mark sees its content.
		os.WriteFile(mark+".tmp", []byte(fmt.Sprintf("%s %d\n", name, os.Getpid())), 0o644)
		os.Rename(mark+".tmp", mark)
	}
	switch os.Getenv("UPGRADER_FAILPOINT_ACTION") {
	case "wait":
		for mark := os.Getenv("UPGRADER_FAILPOINT_MARK") + ".go"; ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(mark); err == nil {
				return
			}
		}
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "panic":
		panic("failpoint " + name)
	default:
		for {
			time.Sleep(time.Second)
		}
	}
}

var (
	stateWritesMu sync.Mutex
	stateWrites   = map[string]int{}
)

// stateFailpoint numbers the state's durable writes of this process:
// "before-commit:3" is the point before its third commit.
var stateFailpoint = func(point string) {
	stateWritesMu.Lock()
	stateWrites[point]++
	n := stateWrites[point]
	stateWritesMu.Unlock()
	failpoint(point, strconv.Itoa(n))
}
