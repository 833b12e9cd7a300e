package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// editExport rewrites an exported run file through edit, as someone with
// a text editor would: the JSON as a generic document. With reseal, the
// seal is computed again, as a forger who read upgrader's code would.
func editExport(t *testing.T, from, to string, reseal bool, edit func(doc map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if reseal {
		var x orchestrator.RunExport
		if err := json.Unmarshal(b, &x); err != nil {
			t.Fatal(err)
		}
		if b, err = json.MarshalIndent(x.Sealed(), "", "  "); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// setRunID gives the exported run another id everywhere it appears.
func setRunID(doc map[string]any, id string) {
	doc["run"].(map[string]any)["id"] = id
	for _, r := range doc["steps"].([]any) {
		r.(map[string]any)["run_id"] = id
	}
	for _, j := range doc["journal"].([]any) {
		j.(map[string]any)["run_id"] = id
	}
}

// A POM upgrade stopped at verify-media (a damaged ISO), exported: its run
// id edited (and the file resealed) to climb out of the backup folder, or
// to hold an escape sequence, is refused at import; nothing is imported,
// nothing written.
func TestImportRefusesHostileRunID(t *testing.T) {
	src := newSim(t)
	iso := filepath.Join(src.root, "media", "POM.03.01.01.01.00.003-r35434-x86_64.iso")
	tamper(t, iso, false, 1000)
	src.mustRun(exitFailed, "run", "--yes")
	exported := filepath.Join(t.TempDir(), "run.json")
	src.mustRun(exitOK, "export", "--out", exported)
	for _, tc := range []struct{ name, id string }{
		{"climbs out of the backup folder", "x/../../../../../escaped"},
		{"escape sequence", "r1\x1b[2J\x1b]0;owned\x07"},
		{"too long", strings.Repeat("r", 65)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newSim(t)
			edited := filepath.Join(t.TempDir(), "run.json")
			editExport(t, exported, edited, true, func(doc map[string]any) { setRunID(doc, tc.id) })
			r := dst.run("import", edited)
			if r.code != exitUsage || !strings.Contains(r.stderr, "run id") || strings.Contains(r.stdout+r.stderr, "\x1b") {
				// Show what the accepted import does next.
				res := dst.run("resume", "--yes")
				escaped, _ := filepath.Glob(filepath.Join(dst.dir, "escaped*"))
				t.Fatalf("import of run id %q: exit %d, want %d naming the run id, without raw escapes\nstdout: %q\nstderr: %q\n"+
					"resume then: exit %d; files written outside the host root: %v", tc.id, r.code, exitUsage, r.stdout, r.stderr, res.code, escaped)
			}
			if r := dst.run("status"); r.code != exitUsage {
				t.Errorf("a run was imported anyway: exit %d\n%s", r.code, r.stdout)
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
		})
	}
}

// A migration exported on the DL385: the new server's steps flipped to
// done, the journal or a step record edited, is refused at import by the
// seal; the new server's steps flipped to done and the file resealed, by
// the rule that only the exporting server's steps carry progress. The
// file as exported is accepted.
func TestImportRefusesEditedExport(t *testing.T) {
	old := newSimHost(t, "dl385")
	old.mustRun(exitPaused, "run", "--yes")
	exported := filepath.Join(t.TempDir(), "run.json")
	old.mustRun(exitOK, "export", "--out", exported)
	flipped := func(doc map[string]any) {
		for _, r := range doc["steps"].([]any)[1:] {
			r.(map[string]any)["status"] = "done"
			r.(map[string]any)["attempts"] = 1
		}
	}
	for _, tc := range []struct {
		name, want string
		reseal     bool
		edit       func(doc map[string]any)
	}{
		{"the new server's steps flipped to done", "seal does not match", false, flipped},
		{"the new server's steps flipped to done, resealed", "linux-es is done in the file, but it runs on the target server", true, flipped},
		{"a journal line edited", "seal does not match", false, func(doc map[string]any) {
			j := doc["journal"].([]any)
			j[0].(map[string]any)["actor"] = "uid=1000(mallory)"
		}},
		{"a step record edited", "seal does not match", false, func(doc map[string]any) {
			r := doc["steps"].([]any)[0].(map[string]any)
			r["attempts"] = 7
		}},
		{"written by an older upgrader", "exported by an older upgrader", false, func(doc map[string]any) {
			doc["format"] = "upgrader-run/1"
			delete(doc, "seal")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			new := newSimHost(t, "x3650")
			edited := filepath.Join(t.TempDir(), "run.json")
			editExport(t, exported, edited, tc.reseal, tc.edit)
			r := new.run("import", edited)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				res := new.run("resume", "--yes")
				t.Fatalf("edited export: exit %d, want %d with %q\nstdout: %s\nstderr: %s\nresume then: exit %d\n%s\nthe new server's effects: %v",
					r.code, exitUsage, tc.want, r.stdout, r.stderr, res.code, res.stdout, new.ledger())
			}
			if r := new.run("status"); r.code != exitUsage {
				t.Errorf("a run was imported anyway: exit %d\n%s", r.code, r.stdout)
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
		})
	}
	new := newSimHost(t, "x3650")
	new.mustRun(exitOK, "import", exported)
}

// --run takes only a run id: an escape sequence is refused, and shown
// quoted, never played on the terminal.
func TestRunFlagChecked(t *testing.T) {
	s := newSim(t)
	for _, cmd := range []string{"status", "journal"} {
		r := s.run(cmd, "--run", "r1\x1b[2J../x")
		if r.code != exitUsage || !strings.Contains(r.stderr, `run id "r1\x1b[2J../x"`) || strings.ContainsRune(r.stderr, 0x1b) {
			t.Errorf("%s --run with an escape sequence: exit %d\n%q", cmd, r.code, r.stderr)
		}
	}
}
