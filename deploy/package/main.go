// Command package builds upgrader's .deb and .rpm with nfpm (as a library):
// the static binary, the systemd unit made for /usr/sbin, the tmpfiles
// entry, the sample profiles as configuration an upgrade never replaces,
// man pages and bash and zsh completions written by the binary itself from
// its command tree, the README, and the maintainer scripts beside this file.
//
//	go run ./deploy/package -bin bin/upgrader -version 0.412 -out dist
//
// `make package` runs it.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Where `make install` puts things (deploy/upgrader.service names them)
// and where a package does: packages own /usr, /usr/local is the admin's.
const (
	makeBin    = "/usr/local/sbin/upgrader"
	makeDocDir = "/usr/local/share/doc/upgrader"
	pkgBin     = "/usr/sbin/upgrader"
	pkgDocDir  = "/usr/share/doc/upgrader"
	pkgUnit    = "/usr/lib/systemd/system/upgrader.service"
)

// formats are the package formats built, each with its file name pattern.
var formats = []string{"deb", "rpm"}

type options struct {
	bin, version, release, out, src string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/upgrader", "the static upgrader binary (make build)")
	flag.StringVar(&o.version, "version", "", "package version: digits and dots, e.g. 0.412")
	flag.StringVar(&o.release, "release", "1", "package release")
	flag.StringVar(&o.out, "out", "dist", "directory for the packages")
	flag.StringVar(&o.src, "src", ".", "the source tree (deploy/, README.md)")
	flag.Parse()
	names, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
	for _, n := range names {
		fmt.Println(n)
	}
}

// build writes one package per format into o.out and returns their paths.
func build(o options) ([]string, error) {
	if o.version == "" || strings.Trim(o.version, "0123456789.") != "" || o.version[0] == '.' {
		return nil, fmt.Errorf("-version %q: give digits and dots, e.g. 0.412 (both rpm and dpkg order them)", o.version)
	}
	if fi, err := os.Stat(o.bin); err != nil || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("-bin %s: not an executable (run make build): %v", o.bin, err)
	}
	stage, err := os.MkdirTemp("", "upgrader-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	contents, err := stageFiles(o, stage)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	var out []string
	for _, format := range formats {
		name, err := write(o, format, contents)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", format, err)
		}
		out = append(out, name)
	}
	return out, nil
}

// stageFiles writes the generated files (unit, man pages, completions) to
// stage and lists every file of the package.
func stageFiles(o options, stage string) (files.Contents, error) {
	src := func(p string) string { return filepath.Join(o.src, p) }
	unit, err := os.ReadFile(src("deploy/upgrader.service"))
	if err != nil {
		return nil, err
	}
	if unit, err = packagedUnit(unit); err != nil {
		return nil, err
	}
	unitFile := filepath.Join(stage, "upgrader.service")
	if err := os.WriteFile(unitFile, unit, 0o644); err != nil {
		return nil, err
	}
	// The binary writes its own man pages and completions: they describe
	// exactly the commands and flags it has.
	docs := filepath.Join(stage, "docs")
	if res, err := exec.Command(o.bin, "docs", docs).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s docs: %v\n%s", o.bin, err, res)
	}
	c := files.Contents{
		file(o.bin, pkgBin, 0o755),
		file(unitFile, pkgUnit, 0o644),
		file(src("deploy/upgrader.tmpfiles"), "/usr/lib/tmpfiles.d/upgrader.conf", 0o644),
		{Destination: "/etc/upgrader", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o750}},
		file(src("README.md"), pkgDocDir+"/README.md", 0o644),
		file(filepath.Join(docs, "completion/upgrader.bash"), "/usr/share/bash-completion/completions/upgrader", 0o644),
		// Each family's zsh directory for packaged completions.
		withPackager("deb", file(filepath.Join(docs, "completion/_upgrader"), "/usr/share/zsh/vendor-completions/_upgrader", 0o644)),
		withPackager("rpm", file(filepath.Join(docs, "completion/_upgrader"), "/usr/share/zsh/site-functions/_upgrader", 0o644)),
	}
	// The sample profiles: configuration the site may edit, never replaced
	// by an upgrade of the package (rpm: %config(noreplace); deb: conffiles).
	for _, p := range []string{"site.yaml.example", "site-pc.yaml.example"} {
		f := file(src("deploy/"+p), "/etc/upgrader/"+p, 0o644)
		f.Type = files.TypeConfigNoReplace
		c = append(c, f)
	}
	pages, err := filepath.Glob(filepath.Join(docs, "man8", "*.8"))
	if err != nil || len(pages) == 0 {
		return nil, fmt.Errorf("%s docs wrote no man pages (%v)", o.bin, err)
	}
	sort.Strings(pages)
	for _, p := range pages {
		gz, err := gzipFile(p)
		if err != nil {
			return nil, err
		}
		c = append(c, file(gz, "/usr/share/man/man8/"+filepath.Base(gz), 0o644))
	}
	return c, nil
}

func file(src, dst string, mode os.FileMode) *files.Content {
	return &files.Content{Source: src, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
}

func withPackager(p string, c *files.Content) *files.Content {
	c.Packager = p
	return c
}

// gzipFile writes p.gz (no name or time inside: the same page gives the
// same bytes) and returns its path.
func gzipFile(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(data); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return p + ".gz", os.WriteFile(p+".gz", b.Bytes(), 0o644)
}

// packagedUnit is deploy/upgrader.service for a package: the binary in
// /usr/sbin and the README in /usr/share/doc instead of /usr/local. It
// refuses a unit whose ExecStart= or Documentation= does not name the
// /usr/local paths, so a changed unit cannot slip through unchanged.
func packagedUnit(unit []byte) ([]byte, error) {
	var out []string
	exec, doc := 0, 0
	for _, line := range strings.Split(string(unit), "\n") {
		if strings.HasPrefix(line, "ExecStart="+makeBin+" ") {
			exec++
		}
		if line == "Documentation=file:"+makeDocDir+"/README.md" {
			doc++
		}
		line = strings.ReplaceAll(line, makeBin, pkgBin)
		line = strings.ReplaceAll(line, makeDocDir, pkgDocDir)
		out = append(out, line)
	}
	if exec != 1 || doc != 1 {
		return nil, errors.New("deploy/upgrader.service: want one ExecStart=" + makeBin + " … and one Documentation=file:" + makeDocDir + "/README.md line to rewrite for the package")
	}
	return []byte(strings.Join(out, "\n")), nil
}

// write builds one package of the given format and returns its path.
func write(o options, format string, contents files.Contents) (string, error) {
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "upgrader",
		Arch:          "amd64",
		Platform:      "linux",
		Version:       o.version,
		VersionSchema: "none",
		Release:       o.release,
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "upgrader maintainers <upgrader@localhost>",
		Description:   "plan, run and resume Avaya POM and Proactive Contact upgrades\nupgrader plans, runs and resumes installs, upgrades and migrations of\nAvaya Proactive Outreach Manager and Proactive Contact servers; every\nstep is recorded before it starts, so a run survives a crash, a reboot\nor a lost terminal. A daemon (upgrader.service) carries runs out.",
		Vendor:        "upgrader",
		License:       "Proprietary",
		Overridables: nfpm.Overridables{
			Contents: contents,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(o.src, "deploy/package/postinstall.sh"),
				PreRemove:   filepath.Join(o.src, "deploy/package/preremove.sh"),
				PostRemove:  filepath.Join(o.src, "deploy/package/postremove.sh"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, format); err != nil {
		return "", err
	}
	pkgr, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	info.Target = filepath.Join(o.out, pkgr.ConventionalFileName(info))
	f, err := os.Create(info.Target)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(info.Target)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return info.Target, f.Close()
}
