//go:build failpoints

package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// failpoint stops the process at a named point for crash tests, when
// UPGRADER_FAILPOINT is "point:step". UPGRADER_FAILPOINT_ACTION says how:
// pause (write UPGRADER_FAILPOINT_MARK and wait to be killed), kill
// (SIGKILL itself) or panic.
var failpoint = func(point, step string) {
	if os.Getenv("UPGRADER_FAILPOINT") != point+":"+step {
		return
	}
	switch os.Getenv("UPGRADER_FAILPOINT_ACTION") {
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	case "panic":
		panic("failpoint " + point + ":" + step)
	default:
		if mark := os.Getenv("UPGRADER_FAILPOINT_MARK"); mark != "" {
			// Written whole, then renamed: whoever sees the mark sees its content.
			os.WriteFile(mark+".tmp", []byte(fmt.Sprintf("%s:%s %d\n", point, step, os.Getpid())), 0o644)
			os.Rename(mark+".tmp", mark)
		}
		for {
			time.Sleep(time.Second)
		}
	}
}
