package bundle

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func local(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05.000", s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseLogTime(t *testing.T) {
	tests := []struct {
		name, line string
		want       time.Time // zero: no timestamp
	}{
		{"log4j comma", "2026-11-23 09:14:07,220 ERROR [x] y - z", local("2026-11-23 09:14:07.220")},
		{"log4j dot", "2026-11-23 09:14:07.220 INFO", local("2026-11-23 09:14:07.220")},
		{"no fraction", "2026-11-23 09:14:07 INFO", local("2026-11-23 09:14:07.000")},
		{"ISO T and Z", "2026-11-23T09:14:07.5Z up", time.Date(2026, 11, 23, 9, 14, 7, 5e8, time.UTC)},
		{"ISO offset", "2026-11-23T09:14:07+01:00 up", time.Date(2026, 11, 23, 8, 14, 7, 0, time.UTC)},
		{"ISO offset without colon", "2026-11-23 09:14:07,001-0500 up", time.Date(2026, 11, 23, 14, 14, 7, 1e6, time.UTC)},
		{"kafka bracket", "[2026-11-22 23:58:00,420] INFO [KafkaServer id=0] started", local("2026-11-22 23:58:00.420")},
		{"tomcat", "23-Nov-2026 08:00:00.010 INFO [main] start", local("2026-11-23 08:00:00.010")},
		{"tomcat one-digit day", "3-Nov-2026 08:00:00.010 INFO", local("2026-11-03 08:00:00.010")},
		{"JUL afternoon", "Nov 22, 2026 11:57:50 PM org.apache.catalina", local("2026-11-22 23:57:50.000")},
		{"JUL one-digit hour", "Nov 23, 2026 9:14:10 AM org.apache", local("2026-11-23 09:14:10.000")},
		{"JUL midnight", "Nov 23, 2026 12:00:01 AM x", local("2026-11-23 00:00:01.000")},
		{"JUL noon", "Nov 23, 2026 12:00:01 PM x", local("2026-11-23 12:00:01.000")},
		{"stack frame", "\tat org.postgresql.Driver.connect(Driver.java:252)", time.Time{}},
		{"caused by", "Caused by: java.net.ConnectException: Connection refused", time.Time{}},
		{"month 13", "2026-13-01 10:00:00,000 x", time.Time{}},
		{"31 February", "2026-02-31 10:00:00,000 x", time.Time{}},
		{"hour 24", "2026-02-01 24:00:00,000 x", time.Time{}},
		{"date only", "2026-11-23 and some text here", time.Time{}},
		{"JUL hour 13", "Nov 23, 2026 13:00:01 PM x", time.Time{}},
		{"short", "2026-11-23", time.Time{}},
		{"empty", "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseLogTime([]byte(tt.line))
			if ok != !tt.want.IsZero() || ok && !got.Equal(tt.want) {
				t.Errorf("ParseLogTime(%q) = %v, %v; want %v", tt.line, got, ok, tt.want)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	if got, err := ParseDate(" 2026-11-22 08:00:00 "); err != nil || !got.Equal(local("2026-11-22 08:00:00.000")) {
		t.Errorf("layout: %v, %v", got, err)
	}
	if got, err := ParseDate("2026-11-22T08:00:00Z"); err != nil || !got.Equal(time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("RFC 3339: %v, %v", got, err)
	}
	for _, bad := range []string{"2026-11-22", "22/11/2026 08:00:00", "2026-11-22 25:00:00", "yesterday"} {
		_, err := ParseDate(bad)
		if err == nil || !strings.Contains(err.Error(), "YYYY-MM-DD HH:MM:SS") {
			t.Errorf("ParseDate(%q): %v, want an error naming the format", bad, err)
		}
	}
}

func TestRange(t *testing.T) {
	r := Range{Since: local("2026-11-23 09:00:00.000"), Until: local("2026-11-23 09:15:00.000")}
	for _, c := range []struct {
		at   string
		want bool
	}{
		{"2026-11-23 08:59:59.999", false}, {"2026-11-23 09:00:00.000", true},
		{"2026-11-23 09:15:00.999", true}, {"2026-11-23 09:15:01.000", false},
	} {
		if got := r.Holds(local(c.at)); got != c.want {
			t.Errorf("Holds(%s) = %v", c.at, got)
		}
	}
	if err := (Range{Since: r.Until, Until: r.Since}).Check(); err == nil || !strings.Contains(err.Error(), "before the start") {
		t.Errorf("end before start: %v", err)
	}
	if (Range{}).Set() || !(Range{Until: r.Until}).Set() {
		t.Error("Set")
	}
}

// cut applies cutSpans to a log and returns what the archive would hold.
func cut(t *testing.T, log string, r Range) (string, bool) {
	t.Helper()
	spans, timed, err := cutSpans(strings.NewReader(log), r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, s := range spans {
		if i > 0 && spans[i-1].end >= s.off {
			t.Fatalf("spans overlap or touch unmerged: %v", spans)
		}
		b.WriteString(log[s.off:s.end])
	}
	return b.String(), timed
}

const cmpMgrLog = `CmpMgr console banner
2026-11-23 09:00:00,000 INFO start
2026-11-23 09:14:07,220 ERROR job 4711 lost its database connection
java.sql.SQLException: Connection refused
	at org.postgresql.Driver.connect(Driver.java:252)
Caused by: java.net.ConnectException: Connection refused
	... 4 more
2026-11-23 09:14:37,221 WARN job 4711 paused
2026-11-23 09:20:01,003 INFO job 4711 resumed
`

func TestCutSpans(t *testing.T) {
	lines := strings.SplitAfter(cmpMgrLog, "\n")
	join := func(from, to int) string { return strings.Join(lines[from:to], "") }
	tests := []struct {
		name         string
		since, until string
		want         string
	}{
		{"a stack trace stays with the line it follows", "2026-11-23 09:14:00", "2026-11-23 09:14:10", join(2, 7)},
		{"leading lines go with the first entry", "", "2026-11-23 09:00:00", join(0, 2)},
		{"until is inclusive to the second", "2026-11-23 09:14:37", "2026-11-23 09:14:37", join(7, 8)},
		{"open end", "2026-11-23 09:14:30", "", join(7, 9)},
		{"adjacent entries merge", "2026-11-23 09:14:00", "2026-11-23 09:30:00", join(2, 9)},
		{"nothing in range", "2026-11-24 00:00:00", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Range
			if tt.since != "" {
				r.Since = local(tt.since + ".000")
			}
			if tt.until != "" {
				r.Until = local(tt.until + ".000")
			}
			got, timed := cut(t, cmpMgrLog, r)
			if !timed || got != tt.want {
				t.Errorf("cut = %q (timed %v)\nwant %q", got, timed, tt.want)
			}
		})
	}
}

func TestCutSpansUntimedAndLongLines(t *testing.T) {
	if got, timed := cut(t, "POM services starting\nall started\n", Range{Since: local("2026-11-23 09:00:00.000")}); timed || got != "" {
		t.Errorf("a log without timestamps: %q, timed %v", got, timed)
	}
	// A line longer than the read buffer: its tail must not be taken for
	// the start of a line, and the entry stays whole.
	long := "2026-11-23 09:00:00,000 INFO " + strings.Repeat("x", maxLine+100) + "2026-11-23 10:00:00,000 not a line start\n"
	log := long + "2026-11-23 11:00:00,000 INFO next\n"
	got, timed := cut(t, log, Range{Until: local("2026-11-23 09:30:00.000")})
	if !timed || got != long {
		t.Errorf("long line: got %d bytes, want %d", len(got), len(long))
	}
	// No newline at the end of the file.
	if got, _ := cut(t, "2026-11-23 09:00:00,000 last", Range{Since: local("2026-11-23 08:00:00.000")}); got != "2026-11-23 09:00:00,000 last" {
		t.Errorf("no final newline: %q", got)
	}
}

// FuzzParseLogTime: any input is read without panicking, and a time read
// is a real one that reads back the same from its own text.
func FuzzParseLogTime(f *testing.F) {
	for _, s := range []string{"2026-11-23 09:14:07,220 ERROR", "[2026-11-22 23:58:00,420] INFO", "23-Nov-2026 08:00:00.010 INFO",
		"Nov 22, 2026 11:57:50 PM x", "2026-11-23T09:14:07.123456789+05:30", "\tat x", "2026-02-29 00:00:00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, ok := ParseLogTime(line)
		if !ok {
			if !got.IsZero() {
				t.Fatalf("not ok but %v", got)
			}
			return
		}
		if y := got.Year(); y < 0 || y > 9999 {
			t.Fatalf("year %d from %q", y, line)
		}
		layout := "2006-01-02T15:04:05.000000000-07:00"
		if got.Location() == time.Local {
			layout = "2006-01-02 15:04:05.000000000" // read back in the same zone (old local offsets have seconds)
		}
		text := got.Format(layout)
		again, ok := ParseLogTime([]byte(text))
		if !ok || !again.Equal(got) {
			t.Fatalf("%q read as %v, whose text %q reads as %v, %v", line, got, text, again, ok)
		}
		if _, _, err := cutSpans(bytes.NewReader(line), Range{Since: got}); err != nil {
			t.Fatal(err)
		}
	})
}
