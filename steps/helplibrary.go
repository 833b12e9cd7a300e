package steps

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"upgrader/orchestrator"
)

// helpLibrary updates POM's online help from UsingPOM.zip the way the
// release notes do by hand (stop vpms, unzip over the library, owner
// avayavp.avayavpgroup, mode 755, start vpms), without a shell, and
// refusing archive entries that would land outside the library.
type helpLibrary struct{ h *Host }

// maxHelpFile bounds one extracted file: the whole library is a few MB.
const maxHelpFile = 64 << 20

type helpFile struct {
	name string // path inside the library
	data []byte
}

func (s helpLibrary) dir(sc orchestrator.StepContext) string {
	return s.h.Profile.Path(sc.Spec.Params["dir"])
}

// entries reads the zip and returns its regular files, refusing any entry
// that is absolute, climbs out with .., or is not a plain file or folder.
func (s helpLibrary) entries(sc orchestrator.StepContext) ([]helpFile, error) {
	zipPath := s.h.Profile.Path(sc.Spec.Params["zip"])
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, fmt.Errorf("help library %s: %w", zipPath, err)
	}
	defer zr.Close()
	var out []helpFile
	for _, f := range zr.File {
		name := f.Name
		clean := path.Clean("/" + name)[1:]
		if name == "" || strings.HasPrefix(name, "/") || clean != strings.TrimSuffix(name, "/") || strings.HasPrefix(clean, "../") || clean == ".." {
			return nil, fmt.Errorf("%s: entry %q would land outside the library: refusing the archive", zipPath, name)
		}
		mode := f.Mode()
		if mode.IsDir() {
			continue
		}
		if !mode.IsRegular() {
			return nil, fmt.Errorf("%s: entry %q is not a regular file (%s): refusing the archive", zipPath, name, mode.Type())
		}
		if f.UncompressedSize64 > maxHelpFile {
			return nil, fmt.Errorf("%s: entry %q is %d bytes, more than a help page can be", zipPath, name, f.UncompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(rc, maxHelpFile+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", zipPath, name, err)
		}
		out = append(out, helpFile{name: clean, data: data})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no files", zipPath)
	}
	return out, nil
}

// missing lists the library files that differ from the archive.
func (s helpLibrary) missing(sc orchestrator.StepContext, files []helpFile) []string {
	var out []string
	for _, f := range files {
		p := filepath.Join(s.dir(sc), f.name)
		b, err := os.ReadFile(p)
		st, serr := os.Stat(p)
		if err != nil || serr != nil || !bytes.Equal(b, f.data) || st.Mode().Perm() != 0o755 {
			out = append(out, f.name)
		}
	}
	return out
}

func (s helpLibrary) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	files, err := s.entries(sc)
	if err != nil {
		return false, err
	}
	return len(s.missing(sc, files)) == 0, nil
}

func (s helpLibrary) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	files, err := s.entries(sc)
	if err != nil {
		return err
	}
	svc := services{h: s.h, want: serviceStopped}
	if err := svc.Apply(ctx, sc); err != nil {
		return err
	}
	uid, gid := -1, -1
	if u, err := user.Lookup(sc.Spec.Params["owner"]); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
	}
	if g, err := user.LookupGroup(sc.Spec.Params["group"]); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	if uid < 0 || gid < 0 {
		sc.Log.Warn().Str("owner", sc.Spec.Params["owner"]).Str("group", sc.Spec.Params["group"]).Msg("owner or group not on this host: ownership left as is")
	}
	for i, f := range files {
		p := filepath.Join(s.dir(sc), f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := WriteFileAtomic(p, f.data, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
		if uid >= 0 && gid >= 0 && os.Geteuid() == 0 {
			if err := os.Chown(p, uid, gid); err != nil {
				return err
			}
		}
		sc.Progress("help library", int64(i+1), int64(len(files)))
	}
	start := services{h: s.h, want: serviceRunning}
	return start.Apply(ctx, sc)
}

func (s helpLibrary) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	files, err := s.entries(sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if m := s.missing(sc, files); len(m) > 0 {
		return orchestrator.Outputs{}, fmt.Errorf("%d help files differ from the archive, e.g. %s", len(m), m[0])
	}
	start := services{h: s.h, want: serviceRunning}
	if _, err := start.Verify(ctx, sc); err != nil {
		return orchestrator.Outputs{}, err
	}
	return orchestrator.Outputs{Values: map[string]string{"files": strconv.Itoa(len(files))}}, nil
}
