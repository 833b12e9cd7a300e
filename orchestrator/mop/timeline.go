package mop

import (
	"fmt"
	"html"
	"strings"
	"unicode/utf8"
)

// textTimeline draws the steps one a line, with the service's state, the
// point of no return and the downtime window marked: the markdown's
// timeline, readable as plain text.
func textTimeline(d doc) string {
	p := d.Plan
	if len(p.Steps) == 0 {
		return "(no steps)"
	}
	idw := len("step")
	for _, s := range p.Steps {
		idw = max(idw, utf8.RuneCountInString(s.ID))
	}
	var b strings.Builder
	line := func(num, id, who, svc, mark string) {
		fmt.Fprintf(&b, "%3s  %-*s  %-8s  %-5s  %s", num, idw, id, who, svc, mark)
	}
	line("#", "step", "who", d.product, "")
	b.WriteString("\n")
	for i, s := range p.Steps {
		if i == d.pnr {
			fmt.Fprintf(&b, "     %s\n", strings.Repeat("=", 8)+" POINT OF NO RETURN: nothing after this line can be undone "+strings.Repeat("=", 8))
		}
		svc, mark := "up", ""
		if s.Downtime {
			svc = "DOWN"
		}
		for _, st := range d.down {
			switch {
			case st[0] == i && st[len(st)-1] == i:
				mark = "<- downtime window (this step only)"
			case st[0] == i:
				mark = "<- downtime window starts"
			case st[len(st)-1] == i:
				mark = "<- downtime window ends"
			}
		}
		if w := where(s.RunsOn); w != "" {
			mark = strings.TrimSpace("[" + w + "] " + mark)
		}
		w := "upgrader"
		if who(s) == "operator" {
			w = "operator"
		}
		line(itoa(i+1), s.ID, w, svc, mark)
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n ")
}

// svgTimeline draws the steps as a row of boxes: the downtime window in
// red under them, the point of no return as a heavy line before its step.
func svgTimeline(d doc) string {
	p := d.Plan
	n := len(p.Steps)
	if n == 0 {
		return `<p class="timeline-none">No steps.</p>`
	}
	const width, left, top, boxH = 1000, 20, 48, 44
	bw := float64(width-2*left) / float64(n)
	x := func(i int) float64 { return float64(left) + float64(i)*bw }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" viewBox="0 0 %d 262" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="timeline of the steps">`, width)
	b.WriteString(`<title>Timeline: point of no return and downtime window</title>`)
	for i, s := range p.Steps {
		class := "auto"
		switch {
		case s.Downtime:
			class = "down"
		case who(s) == "operator":
			class = "gate"
		}
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%d" width="%.1f" height="%d" rx="4"/>`, class, x(i)+2, top, bw-4, boxH)
		fmt.Fprintf(&b, `<text class="num" x="%.1f" y="%d" text-anchor="middle">%d</text>`, x(i)+bw/2, top+boxH/2+6, i+1)
		id := s.ID
		if r := []rune(id); len(r) > 22 {
			id = string(r[:21]) + "…"
		}
		fmt.Fprintf(&b, `<text class="id" x="%.1f" y="%d" transform="rotate(28 %.1f %d)">%s</text>`,
			x(i)+bw/2-4, top+boxH+14, x(i)+bw/2-4, top+boxH+14, html.EscapeString(id))
	}
	for _, st := range d.down {
		x0, x1 := x(st[0])+2, x(st[len(st)-1])+bw-2
		label := fmt.Sprintf("%s down: step %d", d.product, st[0]+1)
		if len(st) > 1 {
			label = fmt.Sprintf("%s down: steps %d–%d", d.product, st[0]+1, st[len(st)-1]+1)
		}
		fmt.Fprintf(&b, `<rect class="window" x="%.1f" y="%d" width="%.1f" height="8"/>`, x0, top-14, x1-x0)
		fmt.Fprintf(&b, `<text class="window-label" x="%.1f" y="%d">%s</text>`, x0, top-20, html.EscapeString(label))
	}
	if d.pnr >= 0 {
		px := x(d.pnr)
		fmt.Fprintf(&b, `<line class="pnr" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`, px, top-4, px, 242)
		anchor, lx := "start", px+6
		if d.pnr > n/2 {
			anchor, lx = "end", px-6
		}
		fmt.Fprintf(&b, `<text class="pnr-label" x="%.1f" y="%d" text-anchor="%s">point of no return: step %d</text>`, lx, 256, anchor, d.pnr+1)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
