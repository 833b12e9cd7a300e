package steps

import (
	"os"
	"strconv"
	"strings"

	"upgrader/orchestrator"
)

// DMIProductName is where Linux exposes the hardware model.
const DMIProductName = "/sys/class/dmi/id/product_name"

// GatherFacts reads what the catalog needs to know about the host. A fact
// that cannot be read is left out; the plan then says what is missing.
func GatherFacts(h *Host) orchestrator.Facts {
	p := h.Profile
	f := orchestrator.Facts{}
	set := func(key, value, source string) { f[key] = orchestrator.Fact{Value: value, Source: source} }

	if name, err := os.Hostname(); err == nil {
		set(orchestrator.FactHostName, name, "hostname")
	}
	if b, err := os.ReadFile(p.Path(DMIProductName)); err == nil {
		set(orchestrator.FactHostModel, strings.TrimSpace(string(b)), DMIProductName)
	}
	if p.POM.Version.File != "" {
		if v, err := InstalledPOMVersion(h); err == nil {
			set(orchestrator.FactPOMVersion, v.String(), p.POM.Version.File)
		}
	}
	if p.EP.Version != "" {
		set(orchestrator.FactEPVersion, p.EP.Version, "profile ep.version")
	}
	if p.EP.MPPPatch != "" {
		set(orchestrator.FactEPMPPPatch, p.EP.MPPPatch, "profile ep.mpp_patch")
	}
	if p.Media.ISO != "" {
		iso := p.ISOPath()
		size := int64(-1)
		if st, err := os.Stat(iso); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		set(orchestrator.FactMediaSize, strconv.FormatInt(size, 10), iso)
		_, crtErr := os.Stat(iso + ".sha256.crt")
		_, sigErr := os.Stat(iso + ".sha256.sig")
		set(orchestrator.FactMediaSigned, strconv.FormatBool(crtErr == nil && sigErr == nil), iso+".sha256.{crt,sig}")
	}
	return f
}
