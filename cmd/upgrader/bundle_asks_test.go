package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The bundle's output says what support also asks for and no archive of
// this server can hold; its help says how -c is read.
func TestBundleSaysWhatSupportAlsoAsks(t *testing.T) {
	s := newSim(t)
	r := s.mustRun(exitOK, "bundle", "--out", t.TempDir(), "-a", "-c")
	for _, want := range []string{"Support also asks for (not in this archive", "FINEST level logs", "POM Agent API logs", "external application server"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bundle output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = s.mustRun(exitOK, "bundle", "--out", t.TempDir(), "-o", "json")
	var doc struct {
		Asks []string `json:"support_also_asks"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Asks) < 3 {
		t.Errorf("json support_also_asks = %q (%v)", doc.Asks, err)
	}
	help := s.mustRun(exitOK, "bundle", "--help").stdout
	for _, want := range []string{"MPP CXI logs", "copy-paste slip", "share a server", "FINEST"} {
		if !strings.Contains(help, want) {
			t.Errorf("bundle --help lacks %q:\n%s", want, help)
		}
	}
}
