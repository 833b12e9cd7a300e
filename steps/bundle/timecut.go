package bundle

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// DateLayout is the date format getpomlogs.sh asks for (%Y-%m-%d %H:%M:%S).
const DateLayout = "2006-01-02 15:04:05"

// ParseDate reads a date the engineer typed: DateLayout in the host's time
// zone, or RFC 3339.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.ParseInLocation(DateLayout, s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date: use YYYY-MM-DD HH:MM:SS, e.g. 2026-11-22 08:00:00", s)
}

// Range is the date range of a selection; a zero bound is open. Until is
// inclusive to the second: until 10:00:00 keeps a line at 10:00:00,999.
type Range struct {
	Since, Until time.Time
}

// Set reports whether the range restricts anything.
func (r Range) Set() bool { return !r.Since.IsZero() || !r.Until.IsZero() }

// Check refuses an end before the start.
func (r Range) Check() error {
	if !r.Since.IsZero() && !r.Until.IsZero() && r.Until.Before(r.Since) {
		return fmt.Errorf("the end %s is before the start %s", r.Until.Format(DateLayout), r.Since.Format(DateLayout))
	}
	return nil
}

// Holds reports whether t falls in the range.
func (r Range) Holds(t time.Time) bool {
	if !r.Since.IsZero() && t.Before(r.Since) {
		return false
	}
	return r.Until.IsZero() || t.Before(r.Until.Truncate(time.Second).Add(time.Second))
}

// ParseLogTime reads the timestamp a log line starts with, if any:
//
//	2026-11-21 10:01:00,123   log4j (also "T", ".", a zone, a leading "[")
//	21-Nov-2026 10:01:00.123  Tomcat
//	Nov 21, 2026 10:01:00 AM  java.util.logging
//
// Times without a zone are in the host's zone, as the logs write them.
func ParseLogTime(line []byte) (time.Time, bool) {
	if len(line) > 0 && line[0] == '[' {
		line = line[1:]
	}
	if len(line) < 19 {
		return time.Time{}, false
	}
	switch {
	case line[4] == '-':
		return parseISO(line)
	case line[2] == '-' || line[1] == '-':
		return parseTomcat(line)
	default:
		return parseJUL(line)
	}
}

// scanner reads fixed-width fields off the front of a line.
type scanner struct {
	b  []byte
	ok bool
}

// num reads between min and max digits.
func (s *scanner) num(min, max int) int {
	n, i := 0, 0
	for ; i < max && i < len(s.b) && s.b[i] >= '0' && s.b[i] <= '9'; i++ {
		n = n*10 + int(s.b[i]-'0')
	}
	if i < min {
		s.ok = false
	}
	s.b = s.b[i:]
	return n
}

// lit reads one of the given bytes.
func (s *scanner) lit(chars string) byte {
	if len(s.b) == 0 || strings.IndexByte(chars, s.b[0]) < 0 {
		s.ok = false
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

var months = []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func (s *scanner) month() int {
	if len(s.b) >= 3 {
		for i, m := range months {
			if string(s.b[:3]) == m {
				s.b = s.b[3:]
				return i + 1
			}
		}
	}
	s.ok = false
	return 0
}

// clock reads HH:MM:SS with an optional fraction (. or ,).
func (s *scanner) clock(minHourDigits int) (h, m, sec, nsec int) {
	h = s.num(minHourDigits, 2)
	s.lit(":")
	m = s.num(2, 2)
	s.lit(":")
	sec = s.num(2, 2)
	if len(s.b) > 1 && (s.b[0] == '.' || s.b[0] == ',') && s.b[1] >= '0' && s.b[1] <= '9' {
		s.b = s.b[1:]
		before := len(s.b)
		frac := s.num(1, 9)
		for d := before - len(s.b); d < 9; d++ {
			frac *= 10
		}
		nsec = frac
	}
	return
}

// zone reads an optional Z, ±HH:MM or ±HHMM right after the time.
func (s *scanner) zone() *time.Location {
	if len(s.b) == 0 {
		return time.Local
	}
	switch s.b[0] {
	case 'Z':
		s.b = s.b[1:]
		return time.UTC
	case '+', '-':
		sign := 1
		if s.b[0] == '-' {
			sign = -1
		}
		t := scanner{b: s.b[1:], ok: true}
		h := t.num(2, 2)
		if len(t.b) > 0 && t.b[0] == ':' {
			t.b = t.b[1:]
		}
		m := t.num(2, 2)
		if t.ok && h < 24 && m < 60 {
			s.b = t.b
			return time.FixedZone("", sign*(h*3600+m*60))
		}
	}
	return time.Local
}

func parseISO(line []byte) (time.Time, bool) {
	s := scanner{b: line, ok: true}
	y := s.num(4, 4)
	s.lit("-")
	mo := s.num(2, 2)
	s.lit("-")
	d := s.num(2, 2)
	s.lit(" T")
	h, mi, sec, ns := s.clock(2)
	if !s.ok {
		return time.Time{}, false
	}
	return build(y, mo, d, h, mi, sec, ns, s.zone())
}

func parseTomcat(line []byte) (time.Time, bool) {
	s := scanner{b: line, ok: true}
	d := s.num(1, 2)
	s.lit("-")
	mo := s.month()
	s.lit("-")
	y := s.num(4, 4)
	s.lit(" ")
	h, mi, sec, ns := s.clock(2)
	if !s.ok {
		return time.Time{}, false
	}
	return build(y, mo, d, h, mi, sec, ns, time.Local)
}

func parseJUL(line []byte) (time.Time, bool) {
	s := scanner{b: line, ok: true}
	mo := s.month()
	s.lit(" ")
	d := s.num(1, 2)
	s.lit(",")
	s.lit(" ")
	y := s.num(4, 4)
	s.lit(" ")
	h, mi, sec, ns := s.clock(1)
	s.lit(" ")
	ampm := s.lit("AP")
	s.lit("M")
	if !s.ok || h < 1 || h > 12 {
		return time.Time{}, false
	}
	h %= 12
	if ampm == 'P' {
		h += 12
	}
	return build(y, mo, d, h, mi, sec, ns, time.Local)
}

// build refuses what time.Date would quietly normalise (13th month, 31 Feb).
func build(y, mo, d, h, mi, sec, ns int, loc *time.Location) (time.Time, bool) {
	if mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	if d > time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, ns, loc), true
}

// span is a byte range [off, end) of a file kept by a cut.
type span struct{ off, end int64 }

// maxLine bounds the part of a line read for its timestamp; the rest of a
// longer line is skipped, not buffered.
const maxLine = 64 << 10

// cutSpans reads a log and returns the byte ranges whose entries fall in
// r. An entry is a line with a timestamp and the lines without one that
// follow it (a stack trace); lines before the first timestamp go with the
// first entry. timed is false when no line has a timestamp.
func cutSpans(rd io.Reader, r Range) (spans []span, timed bool, err error) {
	br := bufio.NewReaderSize(rd, maxLine)
	var off, entry int64
	var at time.Time
	keep := func(end int64) {
		if end <= entry || !r.Holds(at) {
			return
		}
		if n := len(spans); n > 0 && spans[n-1].end == entry {
			spans[n-1].end = end
			return
		}
		spans = append(spans, span{entry, end})
	}
	startOfLine := true
	for {
		chunk, err := br.ReadSlice('\n')
		if startOfLine && len(chunk) > 0 {
			if t, ok := ParseLogTime(chunk); ok {
				if timed {
					keep(off)
					entry = off
				}
				at, timed = t, true
			}
		}
		off += int64(len(chunk))
		startOfLine = err == nil
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, timed, err
		}
	}
	if timed {
		keep(off)
	}
	return spans, timed, nil
}
