package steps

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"upgrader/orchestrator"
)

// progressLine is how installers report progress: "PROGRESS 3/7 text".
var progressLine = regexp.MustCompile(`^PROGRESS (\d+)/(\d+)\s*(.*)$`)

// vendorInstall runs the vendor's installer. The installer is not
// idempotent, so Probe reads the installed version and Apply only runs
// when the target is not in place yet.
type vendorInstall struct{ h *Host }

// InstalledPOMVersion reads the POM version as the profile says to.
func InstalledPOMVersion(h *Host) (orchestrator.Version, error) {
	src := h.Profile.POM.Version
	b, err := os.ReadFile(h.Profile.Path(src.File))
	if err != nil {
		return orchestrator.Version{}, err
	}
	re, err := regexp.Compile(src.Pattern)
	if err != nil {
		return orchestrator.Version{}, err
	}
	m := re.FindSubmatch(b)
	if m == nil {
		return orchestrator.Version{}, fmt.Errorf("%s: no line matches %q", src.File, src.Pattern)
	}
	return orchestrator.ParseVersion(string(m[1]))
}

func (s vendorInstall) target(sc orchestrator.StepContext) (orchestrator.Version, error) {
	return orchestrator.ParseVersion(sc.Spec.Params["target"])
}

func (s vendorInstall) Probe(_ context.Context, sc orchestrator.StepContext) (bool, error) {
	want, err := s.target(sc)
	if err != nil {
		return false, err
	}
	have, err := InstalledPOMVersion(s.h)
	if err != nil {
		return false, fmt.Errorf("read installed version: %w", err)
	}
	return have.Compare(want) >= 0, nil
}

func (s vendorInstall) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	iso := s.h.Profile.Path(sc.Spec.Params["iso"])
	argv := make([]string, 0, len(s.h.Profile.POM.Installer))
	for _, a := range s.h.Profile.POM.Installer {
		argv = append(argv, strings.ReplaceAll(a, "{iso}", iso))
	}
	argv = s.h.Profile.Command(argv)
	sc.Log.Info().Strs("argv", argv).Msg("running vendor installer")
	return s.h.Run.Run(ctx, argv, nil, func(line string) {
		if m := progressLine.FindStringSubmatch(line); m != nil {
			done, _ := strconv.ParseInt(m[1], 10, 64)
			total, _ := strconv.ParseInt(m[2], 10, 64)
			sc.Progress(m[3], done, total)
			return
		}
		sc.Log.Info().Str("installer", line).Send()
	})
}

func (s vendorInstall) Verify(_ context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	want, err := s.target(sc)
	if err != nil {
		return orchestrator.Outputs{}, err
	}
	have, err := InstalledPOMVersion(s.h)
	if err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("read installed version: %w", err)
	}
	if have.Compare(want) < 0 {
		return orchestrator.Outputs{}, fmt.Errorf("installed version is %s after the installer ran, expected %s", have, want)
	}
	return orchestrator.Outputs{Values: map[string]string{"installed_version": have.String()}}, nil
}
