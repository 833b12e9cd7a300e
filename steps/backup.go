package steps

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"upgrader/orchestrator"
)

// backupDB dumps the POM database with pg_dump in custom format. The dump
// is written under a temporary name, fsynced and renamed, so a file with
// the final name is always complete. The password reaches pg_dump only
// through PGPASSFILE.
type backupDB struct{ h *Host }

func (s backupDB) path(sc orchestrator.StepContext) string {
	dir := s.h.Profile.Path(sc.Spec.Params["backup_dir"])
	return filepath.Join(dir, fmt.Sprintf("pomdb-%s-%s.dump", sc.Spec.Params["database"], sc.RunID))
}

// checkDump proves the file is a complete pg_dump custom-format archive.
func checkDump(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, 5)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("PGDMP")) {
		return fmt.Errorf("%s is not a pg_dump custom-format archive", path)
	}
	return nil
}

func (s backupDB) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	if _, err := os.Stat(s.path(sc)); os.IsNotExist(err) {
		return false, nil
	}
	return checkDump(s.path(sc)) == nil, nil
}

func (s backupDB) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	final := s.path(sc)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	tmp := final + ".partial"
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return err
	}
	db := s.h.Profile.DB
	dump := db.DumpCommand
	if dump == "" {
		dump = "/usr/bin/pg_dump"
	}
	argv := s.h.Profile.Command([]string{dump, "--format=custom", "--file=" + tmp, "--host=" + db.Host,
		"--port=" + strconv.Itoa(db.Port), "--username=" + db.User, "--no-password", "--dbname=" + sc.Spec.Params["database"]})
	var env []string
	if db.PasswordFile != "" {
		env = append(env, "PGPASSFILE="+s.h.Profile.Path(db.PasswordFile))
	}
	if err := s.h.Run.Run(ctx, argv, env, func(l string) { sc.Log.Info().Str("pg_dump", l).Send() }); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pg_dump: %w", err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	if err := checkDump(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

func (s backupDB) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	p := s.path(sc)
	if err := checkDump(p); err != nil {
		return orchestrator.Outputs{}, err
	}
	a, err := s.h.record(p, sc.Progress)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	return orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"db-backup": a}}, nil
}
