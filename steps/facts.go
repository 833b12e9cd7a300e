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
	"time"

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
	gatherMPPFacts(ctx, h, f)
	if p.Media.ISO != "" {
		iso := p.ISOPath()
		set(orchestrator.FactMediaSize, strconv.FormatInt(fileSize(iso), 10), iso)
		crt, sig := fileSize(iso+".sha256.crt"), fileSize(iso+".sha256.sig")
		set(orchestrator.FactMediaSigned, strconv.FormatBool(crt >= 0 && sig >= 0), iso+".sha256.{crt,sig}")
		set(orchestrator.FactMediaCrtSize, strconv.FormatInt(crt, 10), iso+".sha256.crt")
		set(orchestrator.FactMediaSigSize, strconv.FormatInt(sig, 10), iso+".sha256.sig")
	}
	if p.Media.Dir != "" {
		// The file list's other files and the help library, where they are.
		for _, name := range orchestrator.POMMediaFiles() {
			path := filepath.Join(p.Path(p.Media.Dir), name)
			set(orchestrator.MediaFileFact(name), strconv.FormatInt(fileSize(path), 10), path)
		}
	}
	if p.DB.Name != "" {
		exists, size, source := databaseFacts(ctx, h)
		setVolatile(orchestrator.FactDBExists, exists, source)
		if size >= 0 {
			setVolatile(orchestrator.FactDBSize, strconv.FormatInt(size, 10), source)
		}
		if exists == "true" {
			if c, err := h.dbConnections(ctx); err == nil {
				setVolatile(orchestrator.FactDBConnAvailable, strconv.FormatInt(c.Available, 10), source+" (pg_settings)")
				setVolatile(orchestrator.FactDBConnUsed, strconv.FormatInt(c.Used, 10), source+" (pg_stat_activity)")
			}
		}
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

// fileSize is the size of the regular file at path, -1 when there is none.
func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return st.Size()
	}
	return -1
}

// databaseFacts asks PostgreSQL whether the profile's database exists, and
// its size: the database itself first; where it does not answer, the
// server's catalogue through the maintenance database "postgres". Neither
// answering (the server down, a password file for the database alone,
// Oracle or SQL Server) is "unknown": a database that may be there is never
// said to be absent. The size is -1 when not known.
func databaseFacts(ctx context.Context, h *Host) (exists string, size int64, source string) {
	db := h.Profile.DB
	source = fmt.Sprintf("psql %s:%d/%s", db.Host, db.Port, db.Name)
	if db.Kind != "" && db.Kind != "postgres" {
		return "unknown", -1, "db.kind " + db.Kind + ": not read"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if v, err := psqlNumber(ctx, h, db.Name, "SELECT pg_database_size(current_database())"); err == nil && v >= 0 {
		return "true", v, source
	}
	name := strings.ReplaceAll(db.Name, "'", "''")
	v, err := psqlNumber(ctx, h, "postgres", "SELECT pg_database_size(datname) FROM pg_database WHERE datname = '"+name+"'")
	switch {
	case err != nil:
		return "unknown", -1, source
	case v < 0:
		return "false", -1, source + " (pg_database)"
	}
	return "true", v, source + " (pg_database)"
}

// psqlNumber runs one query with psql as the backup does (the password only
// through PGPASSFILE) and returns the number it answers, -1 for no row.
func psqlNumber(ctx context.Context, h *Host, database, query string) (int64, error) {
	b := &backupDB{h: h}
	argv := append([]string{b.tool("psql", h.Profile.DB.PSQLCommand)}, b.conn(database)...)
	argv = append(argv, "--no-psqlrc", "--tuples-only", "--no-align", "--command="+query)
	var rows []int64
	err := h.Run.Run(ctx, argv, append(b.env(), "PGCONNECT_TIMEOUT=10"), func(l string) {
		if n, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64); err == nil {
			rows = append(rows, n)
		}
	})
	switch {
	case err != nil:
		return 0, err
	case len(rows) > 1:
		return 0, fmt.Errorf("psql answered %d rows", len(rows))
	case len(rows) == 0:
		return -1, nil
	}
	return rows[0], nil
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
