package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"upgrader/orchestrator"
)

// DMIProductName is where Linux exposes the hardware model.
const DMIProductName = "/sys/class/dmi/id/product_name"

// GatherFacts reads what the catalog needs to know about the host. A fact
// that cannot be read is left out; the plan then says what is missing.
func GatherFacts(ctx context.Context, h *Host) orchestrator.Facts {
	p := h.Profile
	f := orchestrator.Facts{}
	set := func(key, value, source string) { f[key] = orchestrator.Fact{Value: value, Source: source} }
	setVolatile := func(key, value, source string) {
		f[key] = orchestrator.Fact{Value: value, Source: source, Volatile: true}
	}

	if name, err := os.Hostname(); err == nil {
		set(orchestrator.FactHostName, name, "hostname")
	}
	if b, err := os.ReadFile(p.Path(DMIProductName)); err == nil {
		set(orchestrator.FactHostModel, strings.TrimSpace(string(b)), DMIProductName)
	}
	if p.POM.Version.File != "" || len(p.POM.Version.Command) > 0 {
		if v, err := h.ProductVersion(ctx, "pom"); err == nil {
			set(orchestrator.FactPOMVersion, v.String(), "pom.version")
		}
	}
	if _, ok := p.PC.Products["dialer"]; ok {
		if v, err := h.ProductVersion(ctx, "dialer"); err == nil {
			set(orchestrator.FactPCVersion, v.String(), "pc.products.dialer")
		}
		var installed []string
		for _, c := range orchestrator.PCComponents {
			if _, ok := p.PC.Products[c]; !ok {
				continue
			}
			if _, err := h.ProductVersion(ctx, c); err == nil {
				installed = append(installed, c)
			}
		}
		set(orchestrator.FactComponents, strings.Join(installed, ","), "pc.products.{"+strings.Join(orchestrator.PCComponents, ",")+"}")
		if size, err := treeSize(p.Path(filepath.Join(p.PC.Home, "data"))); err == nil {
			setVolatile(orchestrator.FactPCDataSize, strconv.FormatInt(size, 10), filepath.Join(p.PC.Home, "data"))
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
	if p.DB.PasswordFile != "" {
		// libpq ignores a password file others may read; the plan says so.
		if st, err := os.Stat(p.Path(p.DB.PasswordFile)); err == nil {
			set(orchestrator.FactDBPasswordFileMode, fmt.Sprintf("%04o", st.Mode().Perm()), p.DB.PasswordFile)
		}
	}
	freeSpace(setVolatile, orchestrator.FactFreeBackup, p.Path(firstNonEmpty(p.DB.BackupDir, p.PC.BackupDir)))
	freeSpace(setVolatile, orchestrator.FactFreeInstall, p.Path(firstNonEmpty(p.POM.Home, p.PC.Home)))
	return f
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// freeSpace records the free bytes of the filesystem that holds path.
func freeSpace(set func(key, value, source string), key, path string) {
	if free, at, ok := FreeBytesAt(path); ok {
		set(key, strconv.FormatInt(free, 10), "statfs "+at)
	}
}

// FreeBytesAt is the space left for an unprivileged writer in the
// filesystem that holds path, or its nearest existing parent (the
// directory may not exist yet), and the directory it was read at.
func FreeBytesAt(path string) (free int64, at string, ok bool) {
	if path == "" {
		return 0, "", false
	}
	for dir := path; ; dir = filepath.Dir(dir) {
		if free, ok := freeBytes(dir); ok {
			return free, dir, true
		}
		if dir == filepath.Dir(dir) {
			return 0, "", false
		}
	}
}

// treeSize adds up the sizes of the regular files under dir.
func treeSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	return total, err
}

// Model is the host's hardware model (DMI product name), "" if unknown.
func (h *Host) Model() string {
	b, err := os.ReadFile(h.Profile.Path(DMIProductName))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
