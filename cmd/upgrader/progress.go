package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"upgrader/orchestrator"
)

// noticePrinter shows the engine's progress: a progress bar per long step
// on a terminal, plain lines otherwise (logs, pipes, CI).
type noticePrinter struct {
	w        io.Writer
	tty      bool
	bar      *progressbar.ProgressBar
	barKey   string
	lastPct  int64
	lastText string
	gate     string // the gate whose header was just shown
}

func (p *noticePrinter) endBar() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
		p.bar = nil
	}
}

func (p *noticePrinter) notify(n orchestrator.Notice) {
	switch n.Kind {
	case "step-start":
		p.endBar()
		p.lastPct, p.lastText = -1, ""
		if p.gate != n.Step {
			fmt.Fprintf(p.w, "[%d/%d] %s: %s\n", n.Index+1, n.Total, n.Step, n.Title)
		}
		p.gate = ""
		if strings.HasPrefix(n.Text, "found") {
			fmt.Fprintf(p.w, "      %s\n", n.Text)
		}
	case "progress":
		p.progress(n)
	case "step-done":
		p.endBar()
		if strings.HasSuffix(n.Text, "(already in place)") {
			fmt.Fprintln(p.w, "      ok (already in place)")
		} else {
			fmt.Fprintln(p.w, "      ok")
		}
	case "step-failed":
		p.endBar()
		fmt.Fprintf(p.w, "      FAILED: %s\n", n.Text)
	case "paused":
		p.endBar()
		fmt.Fprintf(p.w, "[%d/%d] %s: %s\n      OPERATOR: %s\n", n.Index+1, n.Total, n.Step, n.Title, n.Text)
		p.gate = n.Step
	}
}

func (p *noticePrinter) progress(n orchestrator.Notice) {
	if n.Of <= 0 {
		if n.Text != p.lastText {
			fmt.Fprintf(p.w, "      %s\n", n.Text)
			p.lastText = n.Text
		}
		return
	}
	// Few units (installer stages): one line per stage everywhere.
	if n.Of <= 50 {
		if n.Text != p.lastText {
			fmt.Fprintf(p.w, "      %d/%d %s\n", n.Done, n.Of, n.Text)
			p.lastText = n.Text
		}
		return
	}
	if p.tty {
		key := n.Step + n.Text
		if p.bar == nil || p.barKey != key {
			p.endBar()
			p.bar = progressbar.NewOptions64(n.Of, progressbar.OptionSetWriter(p.w), progressbar.OptionShowBytes(true),
				progressbar.OptionSetDescription("      "+n.Text), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetWidth(30))
			p.barKey = key
		}
		p.bar.Set64(n.Done)
		return
	}
	pct := n.Done * 100 / n.Of
	if pct/25 != p.lastPct/25 || (pct == 100 && p.lastPct != 100) {
		fmt.Fprintf(p.w, "      %s %3d%% (%d/%d bytes)\n", n.Text, pct, n.Done, n.Of)
		p.lastPct = pct
	}
}
