package mop

import (
	"bytes"
	"html"
	"io"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
)

// md is the CommonMark parser with GFM tables; raw HTML stays escaped
// (goldmark's default), so no text of the plan becomes markup.
var md = goldmark.New(goldmark.WithExtensions(extension.Table), goldmark.WithParserOptions(parser.WithAutoHeadingID()))

// RenderMarkdown renders markdown to an HTML fragment as the MOP page does.
func RenderMarkdown(src []byte) ([]byte, error) {
	var out bytes.Buffer
	err := md.Convert(src, &out)
	return out.Bytes(), err
}

// HTML writes the MOP as one self-contained page: the markdown rendered
// by goldmark, the timeline as inline SVG, the styles inline, nothing
// fetched from anywhere, and print styles for a PDF.
func HTML(w io.Writer, in Input) error {
	d := newDoc(in)
	var body bytes.Buffer
	for _, p := range d.parts() {
		if p.timeline {
			body.WriteString(`<section class="timeline-box"><h2 id="timeline">Timeline</h2>` + svgTimeline(d) +
				`<p class="legend"><span class="k auto"></span> upgrader <span class="k gate"></span> operator ` +
				`<span class="k down"></span> ` + html.EscapeString(d.product) + ` down ` +
				`<span class="k pnr"></span> point of no return</p></section>` + "\n")
			continue
		}
		frag, err := RenderMarkdown([]byte(p.md))
		if err != nil {
			return err
		}
		body.Write(frag)
	}
	title := "Method of Procedure: " + d.Plan.Title
	_, err := io.WriteString(w, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>`+html.EscapeString(title)+`</title>
<style>`+css+`</style>
</head>
<body>
<main>
`+body.String()+`</main>
</body>
</html>
`)
	return err
}

// css lays the MOP out on screen and on paper: the summary, the command
// and the timeline on the first page; the steps, the recovery and the
// sign-off each start a page; no table row is split across pages.
const css = `
:root { --ink: #1b1b1b; --muted: #555; --line: #c8c8c8; --down: #c62828; --downbg: #fde8e8; --gate: #f5c542; --auto: #dfe7f2; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.4 "Liberation Sans", Arial, Helvetica, sans-serif; color: var(--ink); margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 17pt; margin: 0 0 .6rem; }
h2 { font-size: 13pt; margin: 1.2rem 0 .4rem; border-bottom: 2px solid var(--ink); padding-bottom: .1rem; }
table { border-collapse: collapse; width: 100%; margin: .3rem 0 .8rem; }
th, td { border: 1px solid var(--line); padding: .25rem .4rem; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #eee; }
code, pre { font-family: "Liberation Mono", "DejaVu Sans Mono", monospace; font-size: 9pt; }
pre { background: #f4f4f4; border: 1px solid var(--line); padding: .5rem; white-space: pre-wrap; overflow-wrap: anywhere; }
blockquote { margin: .4rem 0; padding: .3rem .8rem; border-left: 4px solid var(--down); background: #fafafa; }
h1 + table td:first-child { width: 11rem; white-space: nowrap; }
.timeline { width: 100%; height: auto; }
.timeline rect.auto { fill: var(--auto); stroke: #7a8ca5; }
.timeline rect.gate { fill: var(--gate); stroke: #a07d12; }
.timeline rect.down { fill: var(--downbg); stroke: var(--down); stroke-width: 2; }
.timeline rect.window { fill: var(--down); }
.timeline line.pnr { stroke: var(--ink); stroke-width: 4; stroke-dasharray: 8 4; }
.timeline text { font: 13px "Liberation Sans", Arial, sans-serif; fill: var(--ink); }
.timeline text.num { font-weight: bold; font-size: 16px; }
.timeline text.window-label { fill: var(--down); font-weight: bold; }
.timeline text.pnr-label { font-weight: bold; }
.legend { font-size: 9pt; color: var(--muted); }
.k { display: inline-block; width: .9em; height: .9em; border: 1px solid #777; vertical-align: -.1em; margin-left: .6em; }
.k.auto { background: var(--auto); } .k.gate { background: var(--gate); } .k.down { background: var(--downbg); border-color: var(--down); }
.k.pnr { background: var(--ink); width: .3em; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  main { max-width: none; padding: 0; }
  h2#prerequisites-and-blockers, h2#steps, h2#recovery, h2#sign-off { break-before: page; }
  h2, h3 { break-after: avoid; }
  tr, blockquote, pre, .timeline-box { break-inside: avoid; }
  thead { display: table-header-group; }
  body { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`
