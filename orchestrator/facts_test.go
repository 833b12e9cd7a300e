package orchestrator_test

import (
	"maps"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

func TestParseAssumptions(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		want   map[string]string
		errHas []string // substrings of the error; nil means no error
	}{
		{name: "none", args: nil, want: map[string]string{}},
		{name: "every kind", args: []string{
			"pom.version=3.1.0", "ep.version=7.2.1.0.0622", "ep.mpp_patch=7.2.0.0.1202", "pc.version=4.1",
			"host.model=IBM x3650 M2", "host.name=pom01", "components=supervisor,agent",
			"media.iso.size=-1", "media.iso.signed=false",
		}, want: map[string]string{
			"pom.version": "3.1.0", "ep.version": "7.2.1.0.0622", "ep.mpp_patch": "7.2.0.0.1202", "pc.version": "4.1",
			"host.model": "IBM x3650 M2", "host.name": "pom01", "components": "supervisor,agent",
			"media.iso.size": "-1", "media.iso.signed": "false",
		}},
		{name: "spaces around key and value are trimmed", args: []string{" pom.version = 3.1.1 SP1 "},
			want: map[string]string{"pom.version": "3.1.1 SP1"}},
		{name: "POM build form", args: []string{"pom.version=POM.03.01.01.00.00.039"},
			want: map[string]string{"pom.version": "POM.03.01.01.00.00.039"}},
		{name: "value may contain '='", args: []string{"host.model=a=b"}, want: map[string]string{"host.model": "a=b"}},
		{name: "empty component list", args: []string{"components="}, want: map[string]string{"components": ""}},
		{name: "unknown key lists known keys", args: []string{"pom.verison=3.1.1"},
			errHas: append([]string{`unknown fact "pom.verison"`}, orchestrator.FactKeys()...)},
		{name: "bad version", args: []string{"pom.version=three"}, errHas: []string{"pom.version=three"}},
		{name: "v-prefixed version", args: []string{"ep.version=v7.2"}, errHas: []string{"ep.version=v7.2"}},
		{name: "missing '='", args: []string{"pom.version"}, errHas: []string{"expected key=value"}},
		{name: "empty key", args: []string{"=3.1.1"}, errHas: []string{"expected key=value"}},
		{name: "size not a number", args: []string{"media.iso.size=big"}, errHas: []string{"not a whole number"}},
		{name: "signed not a bool", args: []string{"media.iso.signed=maybe"}, errHas: []string{"not true or false"}},
		{name: "list with empty item", args: []string{"components=agent,,supervisor"}, errHas: []string{"empty item"}},
		{name: "text with newline", args: []string{"host.name=pom01\nevil"}, errHas: []string{"newline"}},
		{name: "one bad among good", args: []string{"pom.version=3.1.1", "nope=1"}, errHas: []string{`"nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := orchestrator.ParseAssumptions(tt.args)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("ParseAssumptions(%q) = %v, want an error", tt.args, got)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAssumptions(%q): %v", tt.args, err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFactKeysAllAccepted(t *testing.T) {
	// One valid sample per key: a key added to the catalog without a
	// value check shows up here.
	samples := map[string]string{
		orchestrator.FactPOMVersion: "3.1.1", orchestrator.FactEPVersion: "7.2", orchestrator.FactEPMPPPatch: "7.2.0.0.1202",
		orchestrator.FactPCVersion: "4.1.1", orchestrator.FactHostModel: "ProLiant DL385 G5", orchestrator.FactHostName: "pc01",
		orchestrator.FactComponents: "agent", orchestrator.FactMediaSize: "288784384", orchestrator.FactMediaSigned: "true",
		orchestrator.FactFreeBackup: "1073741824", orchestrator.FactFreeInstall: "1073741824", orchestrator.FactPCDataSize: "4096",
		orchestrator.FactDBSize: "52428800", orchestrator.FactDBPasswordFileMode: "0600", orchestrator.FactDBExists: "unknown",
		orchestrator.FactMediaCrtSize: "5459", orchestrator.FactMediaSigSize: "-1",
		orchestrator.FactDBConnAvailable: "97", orchestrator.FactDBConnUsed: "12",
	}
	for _, name := range orchestrator.POMMediaFiles() {
		samples[orchestrator.MediaFileFact(name)] = "-1"
	}
	for what, v := range map[string]string{orchestrator.MPPReachable: "false", orchestrator.MPPError: "connection refused",
		orchestrator.MPPConfigError: "missing", orchestrator.MPPPatch: "7.2.0.0.1202", orchestrator.MPPPatchError: "no match",
		orchestrator.MPPFactRuntimeSize: "33554432", orchestrator.MPPFactContextSize: ""} {
		samples[orchestrator.MPPFact("NAME", what)] = v
	}
	keys := orchestrator.FactKeys()
	for i, k := range keys {
		if i > 0 && keys[i-1] >= k {
			t.Fatalf("FactKeys not sorted and unique: %v", keys)
		}
		v, ok := samples[k]
		if !ok {
			t.Errorf("FactKeys has %s with no sample here", k)
			continue
		}
		if _, err := orchestrator.ParseAssumptions([]string{k + "=" + v}); err != nil {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
	if len(keys) != len(samples) {
		t.Errorf("FactKeys has %d keys, the samples %d: %v", len(keys), len(samples), keys)
	}
}

func TestWithAssumptions(t *testing.T) {
	orig := orchestrator.Facts{
		orchestrator.FactPOMVersion: {Value: "3.1.1", Source: "version.properties"},
		orchestrator.FactHostName:   {Value: "pom01", Source: "hostname"},
	}
	before := maps.Clone(orig)
	tests := []struct {
		name   string
		assume map[string]string
		want   orchestrator.Facts
	}{
		{"no overrides copies", nil, before},
		{"override marks assumed", map[string]string{orchestrator.FactPOMVersion: "3.1.0"}, orchestrator.Facts{
			orchestrator.FactPOMVersion: {Value: "3.1.0", Source: "--assume", Assumed: true},
			orchestrator.FactHostName:   {Value: "pom01", Source: "hostname"},
		}},
		{"new key added", map[string]string{orchestrator.FactEPVersion: "7.2"}, orchestrator.Facts{
			orchestrator.FactPOMVersion: {Value: "3.1.1", Source: "version.properties"},
			orchestrator.FactHostName:   {Value: "pom01", Source: "hostname"},
			orchestrator.FactEPVersion:  {Value: "7.2", Source: "--assume", Assumed: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := orig.WithAssumptions(tt.assume)
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if !maps.Equal(orig, before) {
				t.Errorf("input changed to %v", orig)
			}
			// A copy, not a view: writing to it leaves the input alone.
			got["scratch"] = orchestrator.Fact{Value: "x"}
			if _, ok := orig["scratch"]; ok {
				t.Error("result shares its map with the input")
			}
			if v, ok := got.Get(orchestrator.FactHostName); !ok || v != "pom01" {
				t.Errorf("Get(host.name) = %q, %v", v, ok)
			}
		})
	}
}
