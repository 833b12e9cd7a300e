package bundle

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Entry is one file of the archive as the MANIFEST lists it.
type Entry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Cut says the file holds only the lines of the date range.
	Cut bool `json:"cut,omitempty"`
}

// ManifestName is the manifest's name in the archive, its last entry.
const ManifestName = "MANIFEST"

// manifest is the archive's table of contents.
type manifest struct {
	created  time.Time
	version  string
	site     string
	sel      Selection
	top      string
	sources  []Source
	entries  []Entry
	skipped  []Skip
	notes    []string
	excluded int // files the date range left empty
	unroot   func(string) string
}

// quote writes a name as is unless it has spaces or control characters.
func quote(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func (m manifest) render() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# upgrader support bundle: every file in this archive with its SHA-256 and size\n")
	fmt.Fprintf(&b, "# created %s by upgrader %s for site %s\n", m.created.Format(time.RFC3339), m.version, m.site)
	fmt.Fprintf(&b, "# selection: %s (in %s/)\n", m.sel.describe(), m.top)
	for _, s := range m.sources {
		fmt.Fprintf(&b, "# %s/%s/ <- %s\n", m.top, s.Name, s.Shown(m.unroot))
	}
	if m.sel.Range.Set() {
		fmt.Fprintf(&b, "# \"cut\": only the lines of the date range (a line without a timestamp stays with the line before it);\n")
		fmt.Fprintf(&b, "# \"whole\": the whole file (no timestamps: kept when modified since the start); %d files had no line in the range\n", m.excluded)
	}
	fmt.Fprintf(&b, "#\n# sha256 size kind name\n")
	for _, e := range m.entries {
		kind := "whole"
		if e.Cut {
			kind = "cut"
		}
		fmt.Fprintf(&b, "%s %d %s %s\n", e.SHA256, e.Size, kind, quote(e.Name))
	}
	if len(m.skipped) > 0 {
		fmt.Fprintf(&b, "#\n# skipped: not in this archive\n")
		for _, s := range m.skipped {
			fmt.Fprintf(&b, "SKIPPED %s: %s\n", quote(s.Path), s.Reason)
		}
	}
	if len(m.notes) > 0 {
		fmt.Fprintf(&b, "#\n# notes\n")
		for _, n := range m.notes {
			fmt.Fprintf(&b, "NOTE %s\n", n)
		}
	}
	fmt.Fprintf(&b, "#\n# what support also asks for (release notes, Contact Support Checklist) and no archive of this server can hold\n")
	for _, n := range SupportAlsoAsks {
		fmt.Fprintf(&b, "NOTE support also asks for: %s\n", n)
	}
	return b.Bytes()
}

// describe says what the selection keeps, in words.
func (s Selection) describe() string {
	var parts []string
	if len(s.Processes) > 0 {
		parts = append(parts, "processes "+strings.Join(s.Processes, ", "))
	}
	if !s.Since.IsZero() {
		parts = append(parts, "from "+s.Since.Format(DateLayout))
	}
	if !s.Until.IsZero() {
		parts = append(parts, "until "+s.Until.Format(DateLayout))
	}
	if len(parts) == 0 {
		return "all logs"
	}
	return strings.Join(parts, ", ")
}
