// Command bundlebench serves make bench's support bundle section.
//
//	bundlebench tree DIR MB    a synthetic POM host of about MB megabytes of
//	                           logs: DIR/profile.yaml and DIR/root/…
//	bundlebench run ARGV...    runs ARGV and prints its wall time, CPU time
//	                           (with the children it waited for) and peak
//	                           RSS (getrusage)
package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: bundlebench tree DIR MB | bundlebench run ARGV...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "tree":
		mb, _ := strconv.Atoi(os.Args[3])
		err = tree(os.Args[2], int64(mb)<<20)
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundlebench:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := c.Run(); err != nil {
		return err
	}
	wall := time.Since(start)
	ru := c.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	fmt.Printf("wall_ms=%d cpu_ms=%d maxrss_kb=%d\n", wall.Milliseconds(), cpu.Milliseconds(), ru.Maxrss)
	return nil
}

// The ten POM processes' log files, as getpomlogs.sh knows them.
var processes = []string{"CmpDir", "CmpMgr", "AgtMgr", "kafkaserver", "PIM_RestService", "PIM_RuleEngine",
	"PIM_Web", "PIM_WebService", "PIM_ActMQ", "zookeeperserver"}

const rotations = 5 // name.log and name.log.1 … name.log.4

func tree(dir string, total int64) error {
	logs := filepath.Join(dir, "root/opt/Avaya/avpom/POManager/logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	profile := "site: bench\nroot: root\npom:\n  home: /opt/Avaya/avpom/POManager\n"
	if err := os.WriteFile(filepath.Join(dir, "profile.yaml"), []byte(profile), 0o644); err != nil {
		return err
	}
	per := total / int64(len(processes)*rotations)
	rng := rand.New(rand.NewPCG(7, 11))
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.Local)
	for _, p := range processes {
		t := start
		for r := rotations - 1; r >= 0; r-- {
			name := p + ".log"
			if r > 0 {
				name += "." + strconv.Itoa(r)
			}
			var err error
			if t, err = logFile(filepath.Join(logs, name), p, per, t, rng); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	levels  = []string{"INFO ", "INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN ", "ERROR"}
	classes = []string{"com.avaya.pom.cmpmgr.CampaignManager", "com.avaya.pom.cmpdir.ContactDirector",
		"com.avaya.pom.agtmgr.AgentManager", "com.avaya.pom.pim.rest.ContactResource", "com.avaya.pom.dnc.DncCheck",
		"org.apache.kafka.clients.consumer.internals.ConsumerCoordinator", "com.avaya.pom.rule.RuleEvaluator",
		"com.avaya.pom.db.ConnectionPool", "org.apache.zookeeper.server.NIOServerCnxn"}
	messages = []string{
		"Campaign %v job %v dispatched %v contacts to zone %v",
		"Agent %v state changed to READY on job %v (skill %v)",
		"Contact %v attempt %v result ANSWER_HUMAN duration %v ms zone %v",
		"DNC check for contact list %v: %v of %v numbers blocked",
		"Rule %v evaluated for contact %v in %v ms: %v",
		"Committed offset %v for partition pom-events-%v (group %v)",
		"Connection pool: %v active, %v idle, %v waiting (%v)",
		"Session %v closed after %v ms: %v",
	}
	words = []string{"Sales_Q4", "Collections", "Reminder_SMS", "default", "East", "West", "NA", "EMEA", "ok", "timeout", "retry"}
)

// logFile writes a log4j-style log of about size bytes from t on; one entry
// in fifty is an ERROR with a stack trace. It returns the time it reached.
func logFile(path, process string, size int64, t time.Time, rng *rand.Rand) (time.Time, error) {
	f, err := os.Create(path)
	if err != nil {
		return t, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var written int64
	var line []byte
	for written < size {
		t = t.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		line = t.AppendFormat(line[:0], "2006-01-02 15:04:05,000")
		line = fmt.Appendf(line, " %s [pool-%d-thread-%d] %s - ", levels[rng.IntN(len(levels))], rng.IntN(8)+1, rng.IntN(32)+1,
			classes[rng.IntN(len(classes))])
		m := messages[rng.IntN(len(messages))]
		args := make([]any, strings.Count(m, "%v"))
		for i := range args {
			args[i] = arg(rng, i)
		}
		line = fmt.Appendf(line, m, args...)
		line = append(line, '\n')
		if rng.IntN(50) == 0 {
			line = append(line, "java.sql.SQLException: Connection refused to host localhost:5432\n"...)
			for i := rng.IntN(20) + 5; i > 0; i-- {
				line = fmt.Appendf(line, "\tat %s.method%d(%s.java:%d)\n", classes[rng.IntN(len(classes))], rng.IntN(40),
					process, rng.IntN(900)+10)
			}
		}
		n, err := w.Write(line)
		if err != nil {
			f.Close()
			return t, err
		}
		written += int64(n)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return t, err
	}
	return t, f.Close()
}

// arg is a message argument: a word, a number or a session id.
func arg(rng *rand.Rand, i int) any {
	switch (i + rng.IntN(3)) % 3 {
	case 0:
		return words[rng.IntN(len(words))]
	case 1:
		return rng.IntN(100000)
	}
	return rng.Uint32()
}
