package steps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

func TestGatherFacts(t *testing.T) {
	e := newSim(t, nil)
	if err := os.WriteFile(e.path("sys/class/dmi/id/product_name"), []byte("System x3650 M2 -[7947AC1]-\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := GatherFacts(context.Background(), e.host)
	for _, tc := range []struct {
		key, want string
	}{
		{orchestrator.FactPOMVersion, "POM.03.01.01.00.00.039"},
		{orchestrator.FactMediaSize, "270336"},
		{orchestrator.FactMediaSigned, "true"},
		{orchestrator.FactHostModel, "System x3650 M2 -[7947AC1]-"},
		{orchestrator.FactEPVersion, "7.2.0.0.0318"},
		{orchestrator.FactEPMPPPatch, "7.2.0.0.1202"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			got, ok := f.Get(tc.key)
			if !ok || got != tc.want {
				t.Errorf("fact %s = %q (known %v), want %q", tc.key, got, ok, tc.want)
			}
			if f[tc.key].Source == "" {
				t.Errorf("fact %s has no source", tc.key)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		change func(tb testing.TB)
		key    string
		want   string
	}{
		{"signature removed", func(tb testing.TB) { removeFile(tb, e.sim.ISO+".sha256.sig") }, orchestrator.FactMediaSigned, "false"},
		{"ISO removed", func(tb testing.TB) { removeFile(tb, e.sim.ISO) }, orchestrator.FactMediaSize, "-1"},
		{"password file private", func(tb testing.TB) { chmod(tb, e.path("etc/upgrader/pgpass"), 0o600) }, orchestrator.FactDBPasswordFileMode, "0600"},
		{"password file readable by others", func(tb testing.TB) { chmod(tb, e.path("etc/upgrader/pgpass"), 0o644) }, orchestrator.FactDBPasswordFileMode, "0644"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change(t)
			if got, _ := GatherFacts(context.Background(), e.host).Get(tc.key); got != tc.want {
				t.Errorf("fact %s = %q, want %q", tc.key, got, tc.want)
			}
		})
	}

	// The sim's own DMI name is read as it ships.
	e2 := newSim(t, nil)
	want, err := os.ReadFile(filepath.Join(e2.sim.Root, "sys/class/dmi/id/product_name"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := GatherFacts(context.Background(), e2.host).Get(orchestrator.FactHostModel); got != strings.TrimSpace(string(want)) || got == "" {
		t.Errorf("host.model = %q, want %q", got, strings.TrimSpace(string(want)))
	}
}

func removeFile(tb testing.TB, path string) {
	tb.Helper()
	if err := os.Remove(path); err != nil {
		tb.Fatal(err)
	}
}

func chmod(tb testing.TB, path string, mode os.FileMode) {
	tb.Helper()
	if err := os.Chmod(path, mode); err != nil {
		tb.Fatal(err)
	}
}
