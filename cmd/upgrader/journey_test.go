package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"upgrader/orchestrator"
)

// The journey tests: every user journey is one function of a driver, run
// once in the foreground (every command's --socket has nothing listening:
// the command does the work in its own process) and once through a real
// daemon process per simulated host (every command goes through its
// socket). Each run records every command with its exit code, and at the
// end each host's run state, step statuses and journal events (the actor
// aside); the two records must be identical. Where the operator's next
// action is what a command's "Next:" line says, the driver types that line
// (parsed from the output, placeholders filled) rather than a command of
// its own, so a Next: line that does not work fails the journey.
// In daemon mode the daemon holds the state's lock for its whole life: a
// command that did the work itself instead of asking the daemon would fail.

const (
	foreground = "foreground"
	viaDaemon  = "daemon"
)

var journeyModes = []string{foreground, viaDaemon}

// journey is one user journey: the simulated hosts it needs (name →
// template) and what the operator does.
type journey struct {
	name  string
	hosts [][2]string
	do    func(d *driver)
}

// driver carries out a journey in one mode and records what happened.
type driver struct {
	t      *testing.T
	mode   string
	hosts  map[string]*jhost
	order  []string
	record []string
	// lost is, per host, the step a foreground process left in flight
	// when the operator lost it (a hangup, Ctrl-C): the resume probes it,
	// which a daemon, never lost, has no need to (see finish).
	lost map[string]string
}

// jhost is one simulated host of a journey and, in daemon mode, the daemon
// serving it.
type jhost struct {
	name   string
	s      *sim
	daemon *daemonProc
}

func newDriver(t *testing.T, mode string, hosts [][2]string) *driver {
	d := &driver{t: t, mode: mode, hosts: map[string]*jhost{}, lost: map[string]string{}}
	for _, nt := range hosts {
		h := &jhost{name: nt[0], s: newSimHost(t, nt[1])}
		s := h.s
		t.Cleanup(func() { killTools(s) }) // a held tool never outlives a failed test
		if mode == viaDaemon {
			h.daemon = s.startDaemonWith(t, nil)
		}
		d.hosts[nt[0]] = h
		d.order = append(d.order, nt[0])
	}
	return d
}

func (d *driver) host(name string) *jhost { return d.hosts[name] }

// command prepares upgrader against h: its profile, state and socket (a
// daemon's in daemon mode, nothing listening in the foreground).
func (h *jhost) command(args ...string) *exec.Cmd {
	return h.s.cmd(append([]string{"--socket", h.s.socketPath()}, args...)...)
}

// exec runs upgrader against h with no terminal, unrecorded.
func (d *driver) exec(h *jhost, args ...string) result {
	d.t.Helper()
	c := h.command(args...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// note records one action of the journey and its exit code.
func (d *driver) note(h *jhost, what string, code int) {
	d.record = append(d.record, fmt.Sprintf("%s: %s → %d", h.name, d.normal(what), code))
}

// normal takes out what differs between two copies of a journey: the
// hosts' folders, run ids and plan fingerprints.
var (
	runIDPattern       = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)
	fingerprintPattern = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
)

func (d *driver) normal(s string) string {
	for _, name := range d.order {
		s = strings.ReplaceAll(s, d.hosts[name].s.dir, "<"+name+">")
	}
	s = runIDPattern.ReplaceAllString(s, "RUN")
	return fingerprintPattern.ReplaceAllString(s, "FP")
}

// must runs a command the operator types by hand and wants its exit code.
func (d *driver) must(h *jhost, want int, args ...string) result {
	d.t.Helper()
	r := d.exec(h, args...)
	d.note(h, commandLine(args), r.code)
	d.expectCode(h, want, commandLine(args), r)
	return r
}

func (d *driver) expectCode(h *jhost, want int, what string, r result) {
	d.t.Helper()
	if r.code != want {
		d.t.Fatalf("%s on %s (%s): exit %d, want %d\nstdout:\n%s\nstderr:\n%s%s", what, h.name, d.mode, r.code, want, r.stdout, r.stderr, d.daemonLog(h))
	}
}

func (d *driver) daemonLog(h *jhost) string {
	if h.daemon == nil {
		return ""
	}
	return "\ndaemon log:\n" + h.daemon.log.String()
}

// typed runs the command of verb that r's Next: line offers, exactly as
// printed, with its placeholders filled from fill ("..." the reason,
// SITE.yaml the profile, VALUE an attested field).
func (d *driver) typed(h *jhost, want int, r result, verb string, fill map[string]string) result {
	d.t.Helper()
	args := d.offered(r, verb, fill)
	out := d.exec(h, args...)
	line := commandLine(args)
	d.note(h, "typed Next: "+line, out.code)
	d.expectCode(h, want, "the Next: line's "+line, out)
	return out
}

// offered is the command of verb in r's Next: line, placeholders filled.
func (d *driver) offered(r result, verb string, fill map[string]string) []string {
	d.t.Helper()
	next, ok := nextText(r.stdout + "\n" + r.stderr)
	if !ok {
		d.t.Fatalf("no Next: line where the journey expects 'upgrader %s':\nstdout:\n%s\nstderr:\n%s", verb, r.stdout, r.stderr)
	}
	for _, args := range nextCommands(next) {
		if len(args) == 0 || args[0] != verb {
			continue
		}
		for i, a := range args {
			for k, v := range fill {
				if a == k || strings.HasSuffix(a, "="+k) {
					args[i] = strings.TrimSuffix(a, k) + v
				}
			}
			if a := args[i]; strings.Contains(a, "...") || a == "SITE.yaml" || strings.HasSuffix(a, "=VALUE") {
				d.t.Fatalf("the Next: line's placeholder %q is not filled: %s", a, next)
			}
		}
		return args
	}
	d.t.Fatalf("the Next: line does not offer 'upgrader %s': %s", verb, next)
	return nil
}

// commandLine is args as an operator types them.
func commandLine(args []string) string {
	line := "upgrader"
	for _, a := range args {
		line += " " + shellQuote(a)
	}
	return line
}

// nextText is the text of the last "Next:" line in out, its shell
// continuation lines joined.
func nextText(out string) (string, bool) {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		text, ok := strings.CutPrefix(lines[i], "Next: ")
		if !ok {
			continue
		}
		for j := i + 1; strings.HasSuffix(text, "\\") && j < len(lines); j++ {
			text = strings.TrimSuffix(text, "\\") + strings.TrimSpace(lines[j])
		}
		return text, true
	}
	return "", false
}

// nextCommands finds each "upgrader ..." command in a Next: text and splits
// it as a shell would (quotes, backslashes); a command ends at ";", "&&",
// a word opening a parenthesis (the explanation after it), or a closing
// one (the end of an "(or: ...)").
func nextCommands(text string) [][]string {
	var cmds [][]string
	for i := 0; i < len(text); i++ {
		if !strings.HasPrefix(text[i:], "upgrader ") || i > 0 && !strings.ContainsRune(" :(", rune(text[i-1])) {
			continue
		}
		args, n := shellWords(text[i+len("upgrader "):])
		cmds = append(cmds, args)
		i += len("upgrader ") + n - 1
	}
	return cmds
}

// shellWords splits s into words up to the end of its command; it returns
// the words and how much of s they took.
func shellWords(s string) ([]string, int) {
	var words []string
	var w strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			end()
		case c == ';' || c == ')' || strings.HasPrefix(s[i:], "&&") || (c == '(' && !inWord):
			end()
			return words, i
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				w.WriteByte(s[i])
			}
		case c == '\'':
			inWord = true
			for i++; i < len(s) && s[i] != '\''; i++ {
				w.WriteByte(s[i])
			}
		case c == '\\' && i+1 < len(s):
			inWord = true
			i++
			w.WriteByte(s[i])
		default:
			inWord = true
			w.WriteByte(c)
		}
		i++
	}
	end()
	return words, i
}

// statusOf is `status -o json` of h.
func (d *driver) statusOf(h *jhost) statusDoc {
	d.t.Helper()
	return d.decodeStatus(h, d.exec(h, "status", "-o", "json"))
}

func (d *driver) decodeStatus(h *jhost, r result) statusDoc {
	d.t.Helper()
	var st statusDoc
	if r.code != exitOK {
		d.t.Fatalf("status on %s: exit %d\n%s%s", h.name, r.code, r.stderr, d.daemonLog(h))
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		d.t.Fatalf("status -o json on %s: %v\n%s", h.name, err, r.stdout)
	}
	return st
}

// finish records where each host's run ended: its state, each step's
// status, and its journal's events (who did them aside). The probe of a
// step left in flight by a foreground process that died (a step.resume
// event, one more attempt) is checked, then left out: with a daemon the
// run was never lost, and the rest must be the same.
func (d *driver) finish() {
	d.t.Helper()
	for _, name := range d.order {
		h := d.hosts[name]
		r := d.exec(h, "status", "-o", "json")
		if r.code == exitUsage && strings.Contains(r.stderr, "no runs") {
			d.record = append(d.record, name+": no run")
			continue
		}
		st := d.decodeStatus(h, r)
		lost := d.lost[name]
		d.record = append(d.record, fmt.Sprintf("%s: run %s (%s)", name, st.State, st.Outcome.Class))
		for _, rec := range st.Steps {
			tries := rec.Attempts
			if rec.StepID == lost {
				tries--
			}
			d.record = append(d.record, fmt.Sprintf("%s:   step %s %s, %d tries", name, rec.StepID, rec.Status, tries))
		}
		j := d.exec(h, "journal", "-o", "json")
		var entries []orchestrator.JournalEntry
		if err := json.Unmarshal([]byte(j.stdout), &entries); j.code != exitOK || err != nil {
			d.t.Fatalf("journal -o json on %s: exit %d %v\n%s", name, j.code, err, j.stderr)
		}
		probed := false
		for _, e := range entries {
			if e.Event == "step.resume" && e.Step == lost && !probed {
				probed = true
				continue
			}
			d.record = append(d.record, strings.TrimRight(fmt.Sprintf("%s:   journal %s %s", name, e.Event, e.Step), " "))
		}
		if lost != "" && !probed {
			d.t.Errorf("%s: the resume did not probe %s, left in flight by the process that lost its terminal", name, lost)
		}
	}
}

// reboot is the host coming back after a reboot step, and the operator
// typing what the reboot's Next: line says, `upgrader resume`, once the
// host is up. In the foreground that carries the run on; with a daemon,
// systemd started it at boot and it carries the run on by itself: the
// operator's resume comes while the daemon is at the next step (held at
// hold) and must follow it. Then the operator looks again: `upgrader
// watch`, and the reboot's `upgrader resume` typed once more, late, both
// report the finished run.
func (d *driver) reboot(h *jhost, r result, hold string) {
	d.t.Helper()
	t, s := d.t, h.s
	resume := d.offered(r, "resume", nil)
	s.control("hold-at", hold)
	held := filepath.Join(s.root, "sim/control/held")
	if d.mode == viaDaemon {
		h.daemon.kill()           // the host goes down
		os.Remove(s.socketPath()) // a stale socket is left behind
		h.daemon = s.startDaemonWith(t, nil)
		if !waitFile(t, held, 30*time.Second) {
			t.Fatalf("the daemon did not carry the run on after the reboot:%s", d.daemonLog(h))
		}
	}
	c := h.command(resume...)
	var out syncBuffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := watchExit(c)
	// Let the held tool go once the operator's command is in: in the
	// foreground it is what reached the hold; with a daemon, it has had
	// its answer.
	deadline := time.Now().Add(30 * time.Second)
	for !(fileExists(held) && (d.mode == foreground || out.String() != "")) && !exited.done() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.control("release", "")
	select {
	case <-exited.ch:
	case <-time.After(2 * time.Minute):
		c.Process.Kill()
		t.Fatalf("%s did not end after the reboot:\n%s", commandLine(resume), out.String())
	}
	d.note(h, "the host rebooted; typed Next: "+commandLine(resume), c.ProcessState.ExitCode())
	d.expectCode(h, exitOK, "after the reboot, "+commandLine(resume), result{code: c.ProcessState.ExitCode(), stdout: out.String()})
	d.must(h, exitOK, "watch")
	late := d.exec(h, resume...)
	d.note(h, "typed Next: "+commandLine(resume)+" again, late", late.code)
	d.expectCode(h, exitOK, "the reboot's "+commandLine(resume)+" typed once the run has ended", late)
}

// How the operator loses a command that follows a run (interrupt).
const (
	hangup = "hangup" // its terminal goes away (a dropped SSH session)
	ctrlC  = "ctrl-c" // the operator presses Ctrl-C
)

// interrupt runs upgrader ARGS while the installer of step, held at hold,
// runs, and loses it the way how says. The operator then types a Next:
// line: after a hangup, the one `upgrader status` prints once they are
// logged in again; after Ctrl-C, the command's own. It is `upgrader
// resume` in the foreground (the run stopped with the process) and
// `upgrader watch` with a daemon (the run never stopped), and it must see
// the run to its end. The installer goes on by itself and runs once.
func (d *driver) interrupt(h *jhost, how, hold, step string, args ...string) {
	d.t.Helper()
	t, s := d.t, h.s
	s.control("hold-at", hold)
	held := filepath.Join(s.root, "sim/control/held")
	c := h.command(args...)
	var first syncBuffer
	lose := func() { c.Process.Signal(os.Interrupt) }
	if how == hangup {
		lose = startHangupTerminal(t, c, &first)
	} else {
		c.Stdout, c.Stderr = &first, &first
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	exited := watchExit(c)
	deadline := time.Now().Add(60 * time.Second)
	for !fileExists(held) {
		if exited.done() || time.Now().After(deadline) {
			t.Fatalf("%s never reached %s:\n%s%s", commandLine(args), hold, first.String(), d.daemonLog(h))
		}
		time.Sleep(5 * time.Millisecond)
	}
	lose()
	select {
	case <-exited.ch:
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		t.Fatalf("%s outlived its %s:\n%s", commandLine(args), how, first.String())
	}
	code, died := c.ProcessState.ExitCode(), "exit"
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		died = ws.Signal().String()
	}
	d.note(h, fmt.Sprintf("%s, %s at %s: %s", commandLine(args), how, hold, died), code)
	if d.mode == foreground {
		d.lost[h.name] = step
	}
	next := result{code: code, stdout: first.String()}
	if how == hangup {
		next = d.exec(h, "status")
		d.expectCode(h, exitOK, "upgrader status after the lost terminal", next)
	} else {
		d.expectCode(h, exitError, commandLine(args)+" stopped by Ctrl-C", next)
	}

	verb := map[string]string{foreground: "resume", viaDaemon: "watch"}[d.mode]
	again := h.command(d.offered(next, verb, nil)...)
	var back syncBuffer
	again.Stdout, again.Stderr = &back, &back
	if err := again.Start(); err != nil {
		t.Fatal(err)
	}
	backExit := watchExit(again)
	// The installer is let go once upgrader, back, follows it.
	for d.mode == foreground && !strings.Contains(back.String(), "still running") && !backExit.done() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if d.mode == foreground && !strings.Contains(back.String(), "still running") {
		t.Errorf("upgrader %s did not say it follows the live installer:\n%s", verb, back.String())
	}
	s.control("release", "")
	select {
	case <-backExit.ch:
	case <-time.After(2 * time.Minute):
		again.Process.Kill()
		t.Fatalf("upgrader %s did not end after the installer was released:\n%s", verb, back.String())
	}
	code = again.ProcessState.ExitCode()
	d.note(h, "the operator types the Next: line", code)
	d.expectCode(h, exitOK, "upgrader "+verb+" after the "+how, result{code: code, stdout: back.String()})
	waitToolsGone(t, s)
	ledger := strings.Join(s.ledger(), " ")
	if strings.Count(ledger, "installer_begin") != 1 || strings.Count(ledger, "installer_done") != 1 || strings.Contains(ledger, "CORRUPTED") {
		t.Errorf("the installer must run once, whole: ledger %s", ledger)
	}
}

// journeys is every user journey.
var journeys = []journey{
	{"plan", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		r := d.must(h, exitOK, "plan")
		if args := d.offered(r, "run", nil); !slices.Contains(args, "--expect-fingerprint") {
			d.t.Errorf("the plan's Next: line runs no reviewed plan: %v", args)
		}
		w := d.must(h, exitBlocked, "plan", "--assume", "pom.version=3.1.0")
		if !strings.Contains(w.stdout, "upgrade to 3.1.1 first") {
			d.t.Errorf("the what-if plan does not say what blocks it:\n%s", w.stdout)
		}
		before := h.s.treeHash("")
		d.must(h, exitUsage, "status") // planning made no run
		if h.s.treeHash("") != before || len(h.s.ledger()) > 0 {
			d.t.Error("planning changed the host")
		}
	}},

	{"gate-confirm", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		r := d.typed(h, exitPaused, d.must(h, exitOK, "plan"), "run", nil)
		d.typed(h, exitOK, r, "confirm", nil)
	}},

	{"skip-gate", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		r := d.typed(h, exitPaused, d.must(h, exitOK, "plan"), "run", nil)
		d.must(h, exitUsage, "skip", "enable-dnc-import") // a skip needs a reason
		d.typed(h, exitOK, r, "skip", map[string]string{"...": "site has no DNC lists"})
		if st := d.statusOf(h); st.State != orchestrator.StateCompleted || st.Steps[len(st.Steps)-1].SkipReason != "site has no DNC lists" {
			d.t.Errorf("after skipping the last gate: run %s, last step %+v", st.State, st.Steps[len(st.Steps)-1])
		}
	}},

	{"retry-failed-step", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		h.s.control("fail-at", "pg_dump:2")
		r := d.typed(h, exitFailed, d.must(h, exitOK, "plan"), "run", nil)
		r = d.typed(h, exitPaused, r, "retry", nil)
		d.typed(h, exitOK, r, "confirm", nil)
		if n := strings.Count(strings.Join(h.s.ledger(), " "), "pg_dump_done"); n != 1 {
			d.t.Errorf("pg_dump completed %d times", n)
		}
	}},

	{"abort-before-point-of-no-return", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		h.s.control("fail-at", "pg_dump:2")
		r := d.must(h, exitFailed, "run", "--yes")
		r = d.typed(h, exitOK, r, "abort", map[string]string{"...": "maintenance window closed"})
		if st := d.statusOf(h); st.State != orchestrator.StateAborted {
			d.t.Errorf("after abort: run %s", st.State)
		}
		d.typed(h, exitOK, d.must(h, exitOK, "status"), "plan", nil)
		if l := strings.Join(h.s.ledger(), " "); strings.Contains(l, "installer") || strings.Contains(l, "service_stop") {
			d.t.Errorf("the aborted run went past its backup: %s", l)
		}
	}},

	{"abort-refused-past-point-of-no-return", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		h.s.control("fail-at", "installer:3")
		r := d.must(h, exitFailed, "run", "--yes")
		if next, _ := nextText(r.stdout); strings.Contains(next, "abort") {
			d.t.Errorf("past the point of no return the Next: line offers abort: %s", next)
		}
		a := d.must(h, exitBlocked, "abort", "--reason", "maintenance window closed")
		if !strings.Contains(a.stderr, "point of no return") {
			d.t.Errorf("the refused abort does not say why: %s", a.stderr)
		}
		d.must(h, exitBlocked, "skip", "upgrade-pom", "--reason", "try")
		d.typed(h, exitOK, r, "retry", nil)
		if n := strings.Count(strings.Join(h.s.ledger(), " "), "installer_done"); n != 1 {
			d.t.Errorf("the installer completed %d times", n)
		}
	}},

	{"reboot-resume", [][2]string{{"pcbare", "pcbare"}}, func(d *driver) {
		h := d.host("pcbare")
		r := d.typed(h, exitPaused, d.must(h, exitOK, "plan", "--with", "supervisor"), "run", nil)
		h.s.tool("operator", "install-linux-es", "4.1.2")
		r = d.typed(h, exitPaused, r, "confirm", nil)
		if !strings.Contains(r.stdout, ": rebooting") {
			d.t.Fatalf("the confirmed gate did not lead to the reboot:\n%s", r.stdout)
		}
		d.reboot(h, r, "pc-install-dialer:1")
		if l := strings.Join(h.s.ledger(), " "); !strings.Contains(l, "reboot pc-install_dialer_4.1_begin") || !strings.Contains(l, "supervisor") {
			d.t.Errorf("effects after the reboot: %s", l)
		}
	}},

	{"lost-terminal", [][2]string{{"pom", "pom"}}, func(d *driver) {
		d.interrupt(d.host("pom"), hangup, "installer:2", "upgrade-pom", "run", "--yes")
	}},

	{"ctrl-c", [][2]string{{"pom", "pom"}}, func(d *driver) {
		d.interrupt(d.host("pom"), ctrlC, "installer:3", "upgrade-pom", "run", "--yes")
	}},

	{"migration", [][2]string{{"dl385", "dl385"}, {"x3650", "x3650"}}, func(d *driver) {
		src, dst := d.host("dl385"), d.host("x3650")
		r := d.must(src, exitPaused, "start", "--yes")
		next, _ := nextText(r.stdout)
		if !strings.Contains(next, "upgrader export") {
			d.t.Fatalf("the source's hand-over does not say how to export:\n%s", r.stdout)
		}
		exported := d.offered(r, "export", nil)
		d.t.Cleanup(func() { os.Remove(exported[len(exported)-1]) })
		x := d.typed(src, exitOK, r, "export", nil)
		// The hand-over and the export say the same on the other server.
		fill := map[string]string{"SITE.yaml": dst.s.profile}
		for _, verb := range []string{"import", "resume"} {
			if a, b := d.offered(r, verb, fill), d.offered(x, verb, fill); !slices.Equal(a, b) {
				d.t.Errorf("the hand-over says 'upgrader %s', the export 'upgrader %s'", strings.Join(a, " "), strings.Join(b, " "))
			}
		}
		// "copy it and FILES to the same paths there"
		_, files, _ := strings.Cut(next, "copy it and ")
		files, _, _ = strings.Cut(files, " to the same paths")
		for _, f := range strings.Split(files, ", ") {
			copyFile(d.t, filepath.Join(src.s.root, f), filepath.Join(dst.s.root, f))
		}
		im := d.typed(dst, exitOK, x, "import", fill)
		if a, b := d.offered(x, "resume", nil), d.offered(im, "resume", nil); !slices.Equal(a, b) {
			d.t.Errorf("the export says 'upgrader %s', the import 'upgrader %s'", strings.Join(a, " "), strings.Join(b, " "))
		}
		// The new server's gate is its operator's: the old server's --yes
		// does not answer it.
		r = d.typed(dst, exitPaused, x, "resume", nil)
		if st := d.statusOf(dst); st.Outcome.Step != "linux-es" {
			d.t.Fatalf("resume on the new server stopped at %q, not at its Linux ES gate:\n%s", st.Outcome.Step, r.stdout)
		}
		dst.s.tool("operator", "install-linux-es", "4.1.2") // the new server's operator step
		r = d.typed(dst, exitPaused, r, "confirm", nil)
		d.reboot(dst, r, "pc-install-dialer:1")
	}},

	{"with-options", [][2]string{{"pc41", "pc41"}, {"pombare", "pombare"}}, func(d *driver) {
		pc, pom := d.host("pc41"), d.host("pombare")
		var p orchestrator.Plan
		if err := json.Unmarshal([]byte(d.must(pc, exitOK, "plan", "--with", "supervisor", "-o", "json").stdout), &p); err != nil {
			d.t.Fatal(err)
		}
		d.must(pc, exitOK, "start", "--with", "supervisor", "--yes")
		if st := d.statusOf(pc); st.Fingerprint != p.Fingerprint {
			d.t.Errorf("start --with supervisor ran plan %s, not the plan --with supervisor %s",
				orchestrator.ShortFingerprint(st.Fingerprint), orchestrator.ShortFingerprint(p.Fingerprint))
		}
		r := d.typed(pom, exitPaused, d.must(pom, exitOK, "plan", "--with", "pdc"), "run", nil)
		if st := d.statusOf(pom); st.Outcome.Step != "pdc" {
			d.t.Fatalf("run --with pdc stopped at %q, not at the pdc step:\n%s", st.Outcome.Step, r.stdout)
		}
		r = d.typed(pom, exitPaused, r, "confirm", nil)
		d.typed(pom, exitOK, r, "confirm", nil)
	}},

	{"no-consent-without-terminal", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		before := h.s.treeHash("")
		for _, verb := range []string{"run", "start"} {
			r := d.must(h, exitUsage, verb)
			if !strings.Contains(r.stderr, "nothing was started") {
				d.t.Errorf("%s without consent says: %s", verb, r.stderr)
			}
		}
		d.must(h, exitUsage, "status") // no run was made
		if h.s.treeHash("") != before || len(h.s.ledger()) > 0 {
			d.t.Errorf("the host changed: %v", h.s.ledger())
		}
	}},

	{"consent-on-terminal", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		// Enter at the first question starts nothing.
		no := startTerminal(d.t, h.command("run"))
		no.answer("? [y/N] ", "")
		code, rest := no.wait()
		d.note(h, "upgrader run on a terminal, answered Enter", code)
		d.expectCode(h, exitUsage, "upgrader run on a terminal answered Enter", result{code: code, stdout: rest})
		d.must(h, exitUsage, "status")

		tm := startTerminal(d.t, h.command("run"))
		tm.answer("? [y/N] ", "y")
		pnr := tm.answer("Type yes to start upgrade-pom (ENTER leaves the run waiting): ", "yes")
		tm.answer("Type yes when done (ENTER leaves the run waiting): ", "yes")
		code, rest = tm.wait()
		d.note(h, "upgrader run on a terminal, answered y, yes at the point of no return, yes at the gate", code)
		d.expectCode(h, exitOK, "upgrader run on a terminal", result{code: code, stdout: rest})
		// The point of no return showed the verified backup.
		shown := strings.Join(strings.Fields(pnr), " ")
		backup := d.statusOf(h).Steps[1].Outputs.Artifacts
		if !strings.Contains(shown, "POINT OF NO RETURN") || len(backup) == 0 {
			d.t.Fatalf("the point of no return (backup %v):\n%s", backup, pnr)
		}
		for _, a := range backup {
			for _, want := range []string{a.Path, orchestrator.BytesText(a.Size), a.SHA256} {
				if !strings.Contains(shown, want) {
					d.t.Errorf("the point of no return does not show the backup's %q:\n%s", want, pnr)
				}
			}
		}
	}},

	{"point-of-no-return-later", [][2]string{{"pom", "pom"}}, func(d *driver) {
		h := d.host("pom")
		// A yes to the plan on a terminal, Enter at the point of no
		// return: the run waits there, and its Next: line consents later.
		tm := startTerminal(d.t, h.command("run"))
		tm.answer("? [y/N] ", "y")
		tm.answer("Type yes to start upgrade-pom (ENTER leaves the run waiting): ", "")
		code, rest := tm.wait()
		d.note(h, "upgrader run on a terminal, answered y, Enter at the point of no return", code)
		d.expectCode(h, exitPaused, "upgrader run left waiting at the point of no return", result{code: code, stdout: rest})
		if l := strings.Join(h.s.ledger(), " "); strings.Contains(l, "installer") {
			d.t.Fatalf("the installer ran without consent to the point of no return: %s", l)
		}
		r := d.must(h, exitOK, "status")
		r = d.typed(h, exitPaused, r, "confirm", nil)
		d.typed(h, exitOK, r, "confirm", nil)
	}},
}

// TestJourneys runs every journey in both modes and compares the records.
func TestJourneys(t *testing.T) {
	for _, j := range journeys {
		t.Run(j.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			records := map[string][]string{}
			for _, mode := range journeyModes {
				t.Run(mode, func(t *testing.T) {
					t.Parallel()
					d := newDriver(t, mode, j.hosts)
					j.do(d)
					d.finish()
					if !t.Failed() {
						mu.Lock()
						records[mode] = d.record
						mu.Unlock()
					}
				})
			}
			t.Cleanup(func() {
				mu.Lock()
				fg, dm := records[foreground], records[viaDaemon]
				mu.Unlock()
				if fg == nil || dm == nil {
					return // a mode failed on its own
				}
				if !slices.Equal(fg, dm) {
					t.Errorf("the journey differs between the foreground and the daemon (- foreground, + daemon):\n%s", lineDiff(fg, dm))
					return
				}
				t.Logf("the same in both modes:\n%s", strings.Join(fg, "\n"))
			})
		})
	}
}

// lineDiff shows two records line by line: common lines indented, the
// others marked - (a only) and + (b only).
func lineDiff(a, b []string) string {
	// Longest common subsequence, then walk it.
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			fmt.Fprintf(&out, "  %s\n", a[i])
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+ %s\n", b[j])
			j++
		default:
			fmt.Fprintf(&out, "- %s\n", a[i])
			i++
		}
	}
	return out.String()
}

// The journeys' reading of Next: lines, on the lines upgrader prints.
func TestNextCommands(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want [][]string
	}{
		{"Next: do the operator step \"Enable \\\"Record successful DNC Import\\\" if the site needs it\", then: upgrader confirm enable-dnc-import   (or: upgrader skip enable-dnc-import --reason \"...\")",
			[][]string{{"confirm", "enable-dnc-import"}, {"skip", "enable-dnc-import", "--reason", "..."}}},
		{"Next: fix the cause shown above, then: upgrader retry   (or: upgrader abort --reason \"...\")",
			[][]string{{"retry"}, {"abort", "--reason", "..."}}},
		{"Next: the host was asked to reboot; once it is back up: upgrader resume (the daemon, started at boot, carries on by itself)",
			[][]string{{"resume"}}},
		{"Next: the next step runs on the new server (IBM System x3650 M2). Here: upgrader export --out /var/tmp/upgrader-R.json; copy it and /var/backups/b.tar.gz to the same paths there; there: upgrader import /var/tmp/upgrader-R.json --profile SITE.yaml && upgrader resume",
			[][]string{{"export", "--out", "/var/tmp/upgrader-R.json"}, {"import", "/var/tmp/upgrader-R.json", "--profile", "SITE.yaml"}, {"resume"}}},
		{"stderr: interrupted\nNext: upgrader resume", [][]string{{"resume"}}},
		{"Next: upgrader run --profile '/tmp/a b/site.yaml' --state-dir /s \\\n        --with supervisor --expect-fingerprint 0123456789abcdef\n",
			[][]string{{"run", "--profile", "/tmp/a b/site.yaml", "--state-dir", "/s", "--with", "supervisor", "--expect-fingerprint", "0123456789abcdef"}}},
	} {
		next, ok := nextText(tc.out)
		if got := nextCommands(next); !ok || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
			t.Errorf("%q:\ngot  %q\nwant %q", tc.out, got, tc.want)
		}
	}
}
