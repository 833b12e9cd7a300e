package steps

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"upgrader/orchestrator"
)

// A help archive with an entry that climbs out of the library is refused
// whole, and nothing is written anywhere.
func TestHelpLibraryRefusesEscapingEntries(t *testing.T) {
	for _, name := range []string{"../../etc/cron.d/evil", "/etc/evil", "topics/../../evil"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			zipPath := filepath.Join(root, "media", "UsingPOM.zip")
			os.MkdirAll(filepath.Dir(zipPath), 0o755)
			f, _ := os.Create(zipPath)
			zw := zip.NewWriter(f)
			w, _ := zw.Create("index.html")
			w.Write([]byte("ok"))
			w, _ = zw.Create(name)
			w.Write([]byte("evil"))
			zw.Close()
			f.Close()
			h := &Host{Run: ExecRunner{}}
			h.Profile.Root = root
			s := helpLibrary{h}
			sc := orchestrator.StepContext{Spec: orchestrator.StepSpec{Params: map[string]string{
				"zip": "/media/UsingPOM.zip", "dir": "/help"}}}
			_, err := s.Probe(context.Background(), sc)
			if err == nil || !strings.Contains(err.Error(), "outside the library") {
				t.Fatalf("Probe: %v", err)
			}
			if err := s.Apply(context.Background(), sc); err == nil {
				t.Fatal("Apply accepted the archive")
			}
			var written []string
			filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() && p != zipPath {
					written = append(written, p)
				}
				return nil
			})
			if len(written) > 0 {
				t.Fatalf("files written: %v", written)
			}
		})
	}
}
