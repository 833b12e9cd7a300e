package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
)

// progressLine is how installers report progress: "PROGRESS 3/7 text".
var progressLine = regexp.MustCompile(`^PROGRESS (\d+)/(\d+)\s*(.*)$`)

// ErrNotInstalled means a product's version source does not exist.
var ErrNotInstalled = errors.New("not installed")

// versionSource says how to read a product's installed version: "pom"
// from the POM section, anything else from pc.products.
func (h *Host) versionSource(product string) (profile.VersionSource, error) {
	if product == "pom" {
		return h.Profile.POM.Version, nil
	}
	src, ok := h.Profile.PC.Products[product]
	if !ok {
		return src, fmt.Errorf("the profile says nothing of how to read the %s version (pc.products.%s)", product, product)
	}
	return src, nil
}

// ProductVersion reads a product's installed version as the profile says,
// from a file or a command's output. ErrNotInstalled when the file is not
// there.
func (h *Host) ProductVersion(ctx context.Context, product string) (orchestrator.Version, error) {
	src, err := h.versionSource(product)
	if err != nil {
		return orchestrator.Version{}, err
	}
	var out []byte
	where := src.File
	if len(src.Command) > 0 {
		where = strings.Join(src.Command, " ")
		var buf bytes.Buffer
		err = h.Run.Run(ctx, h.Profile.Command(src.Command), nil, func(l string) { buf.WriteString(l + "\n") })
		out = buf.Bytes()
	} else {
		out, err = os.ReadFile(h.Profile.Path(src.File))
		if errors.Is(err, fs.ErrNotExist) {
			return orchestrator.Version{}, fmt.Errorf("%s: %w (%s is missing)", product, ErrNotInstalled, src.File)
		}
	}
	if err != nil {
		return orchestrator.Version{}, err
	}
	re, err := regexp.Compile(src.Pattern)
	if err != nil {
		return orchestrator.Version{}, err
	}
	m := re.FindSubmatch(out)
	if m == nil {
		return orchestrator.Version{}, fmt.Errorf("%s: no line matches %q", where, src.Pattern)
	}
	return orchestrator.ParseVersion(string(m[1]))
}

// InstalledPOMVersion reads the POM version as the profile says to.
func InstalledPOMVersion(h *Host) (orchestrator.Version, error) {
	return h.ProductVersion(context.Background(), "pom")
}

// vendorInstall runs a vendor installer. Installers are not idempotent, so
// Probe reads the product's installed version and Apply only runs when the
// target is not in place yet.
type vendorInstall struct{ h *Host }

func (s vendorInstall) versions(ctx context.Context, sc orchestrator.StepContext) (have, want orchestrator.Version, err error) {
	want, err = orchestrator.ParseVersion(sc.Spec.Params["target"])
	if err != nil {
		return have, want, err
	}
	have, err = s.h.ProductVersion(ctx, s.product(sc))
	if errors.Is(err, ErrNotInstalled) {
		return orchestrator.Version{}, want, nil
	}
	return have, want, err
}

func (s vendorInstall) product(sc orchestrator.StepContext) string {
	if p := sc.Spec.Params["product"]; p != "" {
		return p
	}
	return "pom"
}

func (s vendorInstall) Probe(ctx context.Context, sc orchestrator.StepContext) (bool, error) {
	// An installer still at work, or one cut short, may have written its
	// version already.
	if unsettled, err := s.h.jobUnsettled(sc, ""); unsettled || err != nil {
		return false, err
	}
	have, want, err := s.versions(ctx, sc)
	if err != nil {
		return false, fmt.Errorf("read installed version: %w", err)
	}
	return !have.IsZero() && have.Compare(want) >= 0, nil
}

// installer returns the argv of the step's installer with {iso} filled in.
func (s vendorInstall) installer(sc orchestrator.StepContext) ([]string, error) {
	key := sc.Spec.Params["installer"]
	var argv []string
	if key == "" || key == "pom" {
		argv = s.h.Profile.POM.Installer
	} else {
		argv = s.h.Profile.PC.Installers[key]
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("the profile names no installer for %s (pc.installers.%s)", sc.Spec.ID, key)
	}
	iso := s.h.Profile.Path(sc.Spec.Params["iso"])
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = strings.ReplaceAll(a, "{iso}", iso)
	}
	return s.h.Profile.Command(out), nil
}

// Apply runs the installer as a supervised job: it lives on if upgrader
// dies, and a resumed step follows it rather than start a second one.
// Interrupted (a power loss), it is not started again without the
// operator: a vendor installer run over a half-finished one can damage
// the product.
func (s vendorInstall) Apply(ctx context.Context, sc orchestrator.StepContext) error {
	argv, err := s.installer(sc)
	if err != nil {
		return err
	}
	timeout := 4 * time.Hour
	if d, err := time.ParseDuration(s.h.Profile.InstallerTimeout); err == nil && d > 0 {
		timeout = d
	}
	sc.Log.Info().Strs("argv", argv).Dur("timeout", timeout).Msg("vendor installer")
	err = s.h.runJob(ctx, sc, jobRun{what: "the installer", argv: argv, timeout: timeout, line: func(line string) {
		sc.Log.Info().Str("installer", line).Send()
		if m := progressLine.FindStringSubmatch(line); m != nil {
			done, _ := strconv.ParseInt(m[1], 10, 64)
			total, _ := strconv.ParseInt(m[2], 10, 64)
			sc.Progress(m[3], done, total)
			return
		}
		sc.Progress(line, 0, 0) // shown on the terminal as it comes
	}})
	if code, ok := exitCode(err); ok && code >= 0 {
		sc.Log.Error().Int("exit_code", code).Msg("installer failed")
		return fmt.Errorf("installer exited with code %d: %w", code, err)
	}
	return err
}

func (s vendorInstall) Verify(ctx context.Context, sc orchestrator.StepContext) (orchestrator.Outputs, error) {
	have, want, err := s.versions(ctx, sc)
	if err != nil {
		return orchestrator.Outputs{}, fmt.Errorf("read installed version: %w", err)
	}
	if have.IsZero() || have.Compare(want) < 0 {
		return orchestrator.Outputs{}, fmt.Errorf("%s version is %q after the installer ran, expected %s", s.product(sc), have, want)
	}
	return orchestrator.Outputs{Values: map[string]string{"installed_version": have.String()}}, nil
}
