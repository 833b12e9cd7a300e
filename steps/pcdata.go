package steps

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"upgrader/orchestrator"
)

// The PC data backup a migration carries from the old server to the new
// one, made and restored by the vendor's tools named in the profile.

func (h *Host) pcBackupPath(runID string) string {
	return filepath.Join(h.Profile.Path(h.Profile.PC.BackupDir), "pc-data-"+runID+".tar.gz")
}

func (h *Host) pcTool(argv []string, backup, what string) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("the profile names no %s command (pc.%s)", what, what)
	}
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, "{backup}", backup)
	}
	return h.Profile.Command(out), nil
}

// pcBackup runs the backup tool on the old server. The tool writes under a
// temporary name and renames, so a file with the final name is complete.
type pcBackup struct{ h *Host }

func (s pcBackup) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	if unsettled, err := s.h.jobUnsettled(sc, ""); unsettled || err != nil {
		return false, err
	}
	st, err := os.Stat(s.h.pcBackupPath(sc.RunID))
	return err == nil && st.Size() > 0, nil
}

// Apply runs the vendor's backup tool as a supervised job (it lives on if
// upgrader dies, and a resumed step follows it).
func (s pcBackup) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	path := s.h.pcBackupPath(sc.RunID)
	if err := privateBackupDir(filepath.Dir(path), "pc.backup_dir"); err != nil {
		return err
	}
	argv, err := s.h.pcTool(s.h.Profile.PC.Backup, path, "backup")
	if err != nil {
		return err
	}
	err = s.h.runJob(ctx, sc, jobRun{what: "pc-backup", argv: argv, private: true,
		// It reads the PC data and writes its archive under a temporary
		// name: one interrupted is run again.
		rerun: true,
		line:  func(l string) { sc.Log.Info().Str("pc-backup", l).Send() }})
	if err != nil {
		return err
	}
	return makePrivate(path)
}

func (s pcBackup) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	a, err := s.h.record(s.h.pcBackupPath(sc.RunID), sc.Progress)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if a.Size == 0 {
		return orchestrator.Outputs{}, fmt.Errorf("%s is empty", a.Path)
	}
	return orchestrator.Outputs{Artifacts: map[string]orchestrator.Artifact{"pc-backup": a}}, nil
}

// pcRestore restores the backup on the new server. Its guard has already
// proved the file is the one backed up; the restore tool marks the data
// as restored last, which is what Probe reads.
//
// The restore tool unpacks the archive as root: before it runs, the
// archive is listed (checkBackupTar) and refused if an entry would land
// outside the PC home, write through a link, make a device, or unpack to
// more than the PC home's filesystem has free.
type pcRestore struct{ h *Host }

func (s pcRestore) marker() string {
	return s.h.Profile.Path(filepath.Join(s.h.Profile.PC.Home, "data", ".restored-from"))
}

func (s pcRestore) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	if unsettled, err := s.h.jobUnsettled(sc, ""); unsettled || err != nil {
		return false, err
	}
	_, err := os.Stat(s.marker())
	return err == nil, nil
}

func (s pcRestore) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	a, ok := sc.Artifacts["pc-backup"]
	if !ok {
		return fmt.Errorf("no verified backup recorded")
	}
	backup := s.h.Profile.Path(a.Path)
	argv, err := s.h.pcTool(s.h.Profile.PC.Restore, backup, "restore")
	if err != nil {
		return err
	}
	// The archive is listed before a new start only: a restore an earlier
	// upgrader started is followed, not checked again under it.
	err = s.h.runJob(ctx, sc, jobRun{what: "pc-restore", argv: argv,
		line: func(l string) { sc.Log.Info().Str("pc-restore", l).Send() },
		prepare: func() error {
			lim := defaultBackupLimits
			freeSpace(func(_, v, source string) {
				if free, err := strconv.ParseInt(v, 10, 64); err == nil && free < lim.total {
					lim.total, lim.totalWhy = free, "the free space of the PC home's filesystem ("+source+")"
				}
			}, "", s.h.Profile.Path(s.h.Profile.PC.Home))
			list, err := checkBackupTar(backup, lim)
			if err != nil {
				return err
			}
			sc.Log.Info().Int("files", list.files).Int("folders", list.dirs).Int("links", list.links).Int64("bytes", list.bytes).
				Msg("PC backup listed: nothing in it lands outside the PC home")
			return nil
		}})
	return err
}

func (s pcRestore) Verify(context.Context, orchestrator.StepContext) (orchestrator.Outputs, error) {
	b, err := os.ReadFile(s.marker())
	if err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("the restore left no %s: %w", s.marker(), err)
	}
	return orchestrator.Outputs{Values: map[string]string{"restored_from": strings.TrimSpace(string(b))}}, nil
}
