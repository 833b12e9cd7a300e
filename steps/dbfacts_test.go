package steps

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"upgrader/orchestrator"
	"upgrader/testdata/simhost"
)

// The POM database's existence is a fact the install plan needs: read
// from a real PostgreSQL server, "unknown" whenever it cannot be read,
// and never "false" for a database that may be there.
func TestGatherFactsDatabaseExistsRealPostgres(t *testing.T) {
	c := postgres(t)
	onlyPOM := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(onlyPOM, []byte("127.0.0.1:"+c.Port+":pom:postgres:"+canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(h *Host)
		exists string
		sized  bool
	}{
		{"the database is there", func(*Host) {}, "true", true},
		{"another name: the catalogue says it is not there", func(h *Host) { h.Profile.DB.Name = "pom_missing" }, "false", false},
		{"no server on the port", func(h *Host) { h.Profile.DB.Port = 1 }, "unknown", false},
		{"a password file for the POM database alone, which is there", func(h *Host) { h.Profile.DB.PasswordFile = onlyPOM }, "true", true},
		{"a password file for the POM database alone, another name", func(h *Host) {
			h.Profile.DB.PasswordFile = onlyPOM
			h.Profile.DB.Name = "pom_missing"
		}, "unknown", false},
		{"no psql", func(h *Host) { h.Profile.DB.PSQLCommand = "/nonexistent/psql" }, "unknown", false},
		{"Oracle is not read", func(h *Host) { h.Profile.DB.Kind = "oracle" }, "unknown", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingRunner{inner: ExecRunner{}}
			h := pgHost(t, c, t.TempDir(), rec)
			tc.change(h)
			f := GatherFacts(context.Background(), h)
			got := f[orchestrator.FactDBExists]
			if got.Value != tc.exists || got.Source == "" || !got.Volatile {
				t.Errorf("db.exists = %+v, want %q from a named source, volatile", got, tc.exists)
			}
			size, sized := f.Int(orchestrator.FactDBSize)
			if sized != tc.sized || (sized && size < 1<<20) {
				t.Errorf("db.size = %d (known %v), want known %v and the size of 20,000 contacts", size, sized, tc.sized)
			}
			for _, call := range rec.recorded() {
				checkNoSecret(t, call)
			}
		})
	}
}

// On the simulated hosts: the POM host has its database, the bare one has
// none, and a server that does not answer leaves it unknown. The media
// files are read with their sizes, the signature files at the file list's.
func TestGatherFactsSimulatedDatabaseAndMedia(t *testing.T) {
	e := newSim(t, nil)
	f := GatherFacts(context.Background(), e.host)
	sqlSize, err := os.Stat(e.path("var/lib/sim/pomdb/tables.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		orchestrator.FactDBExists:                    "true",
		orchestrator.FactDBSize:                      strconv.FormatInt(sqlSize.Size(), 10),
		orchestrator.FactMediaCrtSize:                strconv.Itoa(simhost.CertSize),
		orchestrator.FactMediaSigSize:                "256",
		orchestrator.MediaFileFact("UsingPOM.zip"):   "-1",
		orchestrator.MediaFileFact("POMPDC_311.zip"): "-1",
	} {
		if got, _ := f.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	e.control(t, "db-down", "1")
	if got, _ := GatherFacts(context.Background(), e.host).Get(orchestrator.FactDBExists); got != "unknown" {
		t.Errorf("database down: db.exists = %q, want unknown", got)
	}

	bare, err := simhost.SetupHost("pombare", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := newSim(t, nil)
	b.sim = bare
	b.host.Profile.Root = bare.Root
	f = GatherFacts(context.Background(), b.host)
	zip, err := os.Stat(filepath.Join(bare.Root, "media/UsingPOM.zip"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		orchestrator.FactDBExists:                  "false",
		orchestrator.MediaFileFact("UsingPOM.zip"): strconv.FormatInt(zip.Size(), 10),
	} {
		if got, _ := f.Get(key); got != want {
			t.Errorf("bare host: %s = %q, want %q", key, got, want)
		}
	}
	if _, ok := f.Get(orchestrator.FactDBSize); ok {
		t.Error("bare host: a size for a database that is not there")
	}
}
