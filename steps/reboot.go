package steps

import (
	"context"
	"fmt"
	"os"
	"strings"

	"upgrader/orchestrator"
)

// reboot restarts the host and proves it came back: the boot id read
// before the reboot is saved on the step, and the step is done once the
// host reports another one.
type reboot struct{ h *Host }

func (s reboot) bootID() (string, error) {
	b, err := os.ReadFile(s.h.Profile.BootIDFile())
	if err != nil {
		return "", fmt.Errorf("read the boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (s reboot) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	before := sc.Saved["boot_id"]
	if before == "" {
		return false, nil
	}
	now, err := s.bootID()
	return err == nil && now != before, err
}

func (s reboot) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	if sc.Saved["boot_id"] == "" {
		id, err := s.bootID()
		if err != nil {
			return err
		}
		// Saved before the reboot is asked for: after it, the old id is
		// the only proof the host restarted.
		if err := sc.Save(map[string]string{"boot_id": id}); err != nil {
			return err
		}
	}
	argv := s.h.Profile.RebootCommand()
	sc.Log.Warn().Strs("argv", argv).Msg("asking the host to reboot")
	if err := s.h.Run.Run(ctx, argv, nil, nil); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return orchestrator.ErrRebootRequested
}

func (s reboot) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	now, err := s.bootID()
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	if now == sc.Saved["boot_id"] || sc.Saved["boot_id"] == "" {
		return orchestrator.Outputs{}, fmt.Errorf("the host has not rebooted (boot id %s)", now)
	}
	return orchestrator.Outputs{Values: map[string]string{"boot_id_before": sc.Saved["boot_id"], "boot_id_after": now}}, nil
}
