// Package profile decodes and checks a site profile: the YAML file that says
// where a site's products live and how to read and drive them.
package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Profile is a site profile. Every absolute path in it lives under Root,
// which is "/" on a real server and a directory on a simulated host.
type Profile struct {
	Site      string `yaml:"site" json:"site"`
	Procedure string `yaml:"procedure" json:"procedure"`
	Root      string `yaml:"root" json:"root"`
	// ServiceCommand is the argv prefix that controls services:
	// ServiceCommand + [name, start|stop|status].
	ServiceCommand []string `yaml:"service_command" json:"service_command"`
	// ServiceManager is "service" (SysV: command NAME VERB, the default)
	// or "systemctl" (command VERB NAME; status is is-active).
	ServiceManager string `yaml:"service_manager" json:"service_manager,omitempty"`
	// InstallerTimeout bounds one vendor installer run (Go duration,
	// default 4h); a hung installer fails the step instead of the window.
	InstallerTimeout string     `yaml:"installer_timeout" json:"installer_timeout,omitempty"`
	Host             HostConfig `yaml:"host" json:"host"`
	POM              POM        `yaml:"pom" json:"pom"`
	PC               PC         `yaml:"pc" json:"pc"`
	EP               EP         `yaml:"ep" json:"ep"`
	// SSH says how upgrader logs in to the MPPs on other servers.
	SSH   SSH   `yaml:"ssh" json:"ssh,omitzero"`
	MPPs  []MPP `yaml:"mpps" json:"mpps"`
	Media Media `yaml:"media" json:"media"`
	DB    DB    `yaml:"db" json:"db"`
}

// POM says where Proactive Outreach Manager lives and how to upgrade it.
type POM struct {
	Home     string        `yaml:"home" json:"home"`
	Version  VersionSource `yaml:"version" json:"version"`
	Services []string      `yaml:"services" json:"services"`
	// Installer is the vendor installer's argv; "{iso}" is replaced by the
	// ISO's path.
	Installer []string `yaml:"installer" json:"installer"`
}

// HostConfig says how to reboot the host and tell that it rebooted.
type HostConfig struct {
	// BootIDFile changes at every boot (default
	// /proc/sys/kernel/random/boot_id).
	BootIDFile string `yaml:"boot_id_file" json:"boot_id_file"`
	// RebootCommand asks the host to reboot (default [/sbin/reboot]).
	RebootCommand []string `yaml:"reboot_command" json:"reboot_command"`
}

// PC says where Proactive Contact lives and how to install its parts.
type PC struct {
	Home     string   `yaml:"home" json:"home"`
	Services []string `yaml:"services" json:"services"`
	// BackupDir holds the data backup a migration carries to the new server.
	BackupDir string `yaml:"backup_dir" json:"backup_dir"`
	// Products says how to read each installed product's version:
	// linux-es, dialer, database, supervisor, agent, agent-api.
	Products map[string]VersionSource `yaml:"products" json:"products"`
	// Installers maps a step id (dialer-4.1.2, supervisor, …) to the
	// vendor installer's argv.
	Installers map[string][]string `yaml:"installers" json:"installers"`
	// Backup and Restore are the data backup tools' argv; "{backup}" is
	// replaced by the backup file's path.
	Backup  []string `yaml:"backup" json:"backup"`
	Restore []string `yaml:"restore" json:"restore"`
}

// VersionSource reads an installed version: the first match of Pattern's
// first group in File, or in the output of Command.
type VersionSource struct {
	File    string   `yaml:"file" json:"file"`
	Command []string `yaml:"command" json:"command,omitempty"`
	Pattern string   `yaml:"pattern" json:"pattern"`
}

// EP describes the Experience Portal the POM runs on.
type EP struct {
	Version  string `yaml:"version" json:"version"`
	MPPPatch string `yaml:"mpp_patch" json:"mpp_patch"`
	// MovingTo721 says the site will upgrade EP 7.2 to 7.2.1, which makes
	// the mppconfig.xml change unnecessary.
	MovingTo721 bool `yaml:"moving_to_7_2_1" json:"moving_to_7_2_1"`
}

// MPP is one Media Processing Platform and its configuration file.
type MPP struct {
	Name string `yaml:"name" json:"name"`
	// Host is the MPP's server: empty, localhost or this server's name
	// for this server (its files are this server's); any other name or
	// address is reached over SSH (see SSH).
	Host string `yaml:"host" json:"host"`
	// Port and User override ssh.port and ssh.user for this MPP.
	Port int    `yaml:"port" json:"port,omitempty"`
	User string `yaml:"user" json:"user,omitempty"`
	// Config is the mppconfig.xml's path on the MPP's server.
	Config string `yaml:"config" json:"config"`
	// Version reads the MPP's installed patch level (e.g. 7.2.0.0.1202)
	// on the MPP's server: a file there, or a command run there. Without
	// it the plan takes ep.mpp_patch as the profile states it.
	Version VersionSource `yaml:"version" json:"version,omitzero"`
}

// SSH says how upgrader logs in to other servers: by key only (a key file,
// or ssh-agent through SSH_AUTH_SOCK), trusting only the host keys of the
// known_hosts file. Paths are this server's. No password is ever taken.
type SSH struct {
	// User logs in (default root); an MPP's user overrides it.
	User string `yaml:"user" json:"user,omitempty"`
	// KeyFile is an unencrypted private key, readable by root only.
	KeyFile string `yaml:"key_file" json:"key_file,omitempty"`
	// KnownHosts lists the trusted host keys (default
	// /root/.ssh/known_hosts).
	KnownHosts string `yaml:"known_hosts" json:"known_hosts,omitempty"`
	Port       int    `yaml:"port" json:"port,omitempty"`
	// ConnectTimeout bounds a connection's opening and login, Timeout
	// each operation on it (Go durations; defaults 15s and 60s).
	ConnectTimeout string `yaml:"connect_timeout" json:"connect_timeout,omitempty"`
	Timeout        string `yaml:"timeout" json:"timeout,omitempty"`
}

// DefaultKnownHosts is root's own known_hosts, what ssh reads.
const DefaultKnownHosts = "/root/.ssh/known_hosts"

// OnThisServer says whether the MPP's files are this server's: its host
// is empty, localhost (or a loopback address that means it) or thisHost,
// this server's name.
func (m MPP) OnThisServer(thisHost string) bool {
	switch strings.ToLower(m.Host) {
	case "", "localhost", "127.0.0.1", "::1":
		return true
	}
	return thisHost != "" && strings.EqualFold(m.Host, thisHost)
}

// SSHTarget is where and as whom the MPP's server is reached.
func (p Profile) SSHTarget(m MPP) (host string, port int, user string) {
	port, user = m.Port, m.User
	if port == 0 {
		port = p.SSH.Port
	}
	if port == 0 {
		port = 22
	}
	if user == "" {
		user = p.SSH.User
	}
	if user == "" {
		user = "root"
	}
	return m.Host, port, user
}

// KnownHostsPath is the known_hosts file on this server, under Root.
func (p Profile) KnownHostsPath() string {
	if p.SSH.KnownHosts != "" {
		return p.Path(p.SSH.KnownHosts)
	}
	return p.Path(DefaultKnownHosts)
}

// SSHTimeouts are ssh.connect_timeout and ssh.timeout, 0 when unset.
func (p Profile) SSHTimeouts() (connect, op time.Duration) {
	connect, _ = time.ParseDuration(p.SSH.ConnectTimeout)
	op, _ = time.ParseDuration(p.SSH.Timeout)
	return connect, op
}

// Media locates the installation media and what proves it.
type Media struct {
	Dir string `yaml:"dir" json:"dir"`
	ISO string `yaml:"iso" json:"iso"`
	// SHA256 is the published sum; Size overrides the catalog's file list.
	SHA256 string `yaml:"sha256" json:"sha256"`
	Size   int64  `yaml:"size" json:"size"`
	// TrustAnchor is a PEM file the signing certificate must chain to;
	// PinSHA256 is the certificate's expected SHA-256 fingerprint.
	TrustAnchor string `yaml:"trust_anchor" json:"trust_anchor"`
	PinSHA256   string `yaml:"pin_sha256" json:"pin_sha256"`
	// RequireValidCertificate is upgrader's own rule, stricter than the
	// release notes, for a site that wants it: the signing certificate
	// must be valid today and issued for code signing. The vendor's check
	// (sha256sum, openssl x509 -pubkey, openssl dgst -verify) ignores the
	// certificate's dates and usages, and the SP1 certificate of 2018 has
	// long expired: with this set, that media fails verify-media, pinned or
	// not. Off by default: dates and usages are then reported as warnings.
	RequireValidCertificate bool `yaml:"require_valid_certificate" json:"require_valid_certificate,omitempty"`
}

// DB is the POM database and where its backup goes. The password is read
// from PasswordFile (a pgpass file) and never appears in the profile.
type DB struct {
	Kind         string `yaml:"kind" json:"kind"`
	Host         string `yaml:"host" json:"host"`
	Port         int    `yaml:"port" json:"port"`
	Name         string `yaml:"name" json:"name"`
	User         string `yaml:"user" json:"user"`
	PasswordFile string `yaml:"password_file" json:"password_file"`
	BackupDir    string `yaml:"backup_dir" json:"backup_dir"`
	// DumpCommand, RestoreCommand and PSQLCommand are the PostgreSQL
	// client binaries (default /usr/bin/pg_dump, pg_restore, psql).
	DumpCommand string `yaml:"dump_command" json:"dump_command"`
	// BackupCommand backs up an Oracle or SQL Server database: argv with
	// "{backup}" replaced by the backup file's path.
	BackupCommand  []string `yaml:"backup_command" json:"backup_command,omitempty"`
	RestoreCommand string   `yaml:"restore_command" json:"restore_command"`
	PSQLCommand    string   `yaml:"psql_command" json:"psql_command"`
	// RehearseRestore makes the PostgreSQL backup step restore its dump
	// into a scratch database on the same server and compare every
	// table's row count with the source (upgrader's own rule, off by
	// default: it costs about the time of the dump again).
	RehearseRestore bool `yaml:"rehearse_restore" json:"rehearse_restore,omitempty"`
}

// PCProducts are the names pc.products knows.
var PCProducts = []string{"linux-es", "dialer", "database", "supervisor", "agent", "agent-api"}

// MaxProfileSize bounds a profile file: a site profile is a few kB.
const MaxProfileSize = 1 << 20

// Decode reads a profile strictly: unknown keys and bad values are errors
// that name the line. A relative Root is taken relative to baseDir, the
// directory the profile file is in.
func Decode(data []byte, baseDir string) (Profile, error) {
	var p Profile
	if len(data) > MaxProfileSize {
		return p, fmt.Errorf("profile is %d bytes, more than the %d a site profile may have: is it the right file?", len(data), MaxProfileSize)
	}
	// A password for SSH gets its own refusal, before the generic one
	// for an unknown key: it says what to do instead.
	var tree yaml.Node
	if yaml.Unmarshal(data, &tree) == nil {
		if err := refuseSSHPasswords(&tree); err != nil {
			return p, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		if errors.Is(err, io.EOF) {
			return p, errors.New("profile is empty")
		}
		return p, fmt.Errorf("profile: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	// A second document would be ignored: refused, not half read.
	var doc, more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return p, fmt.Errorf("profile: line %d: a second YAML document (---) would be ignored; keep the whole profile in one", max(more.Line, 1))
	}
	if p.Root == "" {
		p.Root = "/"
	}
	if !filepath.IsAbs(p.Root) {
		p.Root = filepath.Join(baseDir, p.Root)
	}
	p.Root = filepath.Clean(p.Root)
	// The same bytes again, as a tree: where each key is, for messages.
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return p, fmt.Errorf("profile: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return p, p.validate(&doc)
}

// validate checks the decoded profile; doc is its YAML tree (or nil), for
// the lines of the keys the new checks name.
func (p Profile) validate(doc *yaml.Node) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("profile: "+format, a...)) }
	errs = append(errs, p.checkCharacters(doc)...)
	for _, f := range []struct{ name, path string }{
		{"pom.home", p.POM.Home}, {"pom.version.file", p.POM.Version.File}, {"media.dir", p.Media.Dir},
		{"db.backup_dir", p.DB.BackupDir}, {"db.password_file", p.DB.PasswordFile},
		{"pc.home", p.PC.Home}, {"pc.backup_dir", p.PC.BackupDir}, {"host.boot_id_file", p.Host.BootIDFile},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			bad("%s %q must be an absolute path", f.name, f.path)
		}
	}
	sources := map[string]VersionSource{"pom.version": p.POM.Version}
	for i, m := range p.MPPs {
		if m.Version.File != "" || len(m.Version.Command) > 0 || m.Version.Pattern != "" {
			sources[fmt.Sprintf("mpps[%d].version", i)] = m.Version
		}
	}
	for name, src := range p.PC.Products {
		if !slices.Contains(PCProducts, name) {
			bad("pc.products.%s: not a PC product; use %s", name, strings.Join(PCProducts, ", "))
		}
		sources["pc.products."+name] = src
	}
	for name, src := range sources {
		if src.File == "" && len(src.Command) == 0 {
			if src.Pattern != "" {
				bad("%s needs a file or a command to read", name)
			}
			continue
		}
		if src.File != "" && len(src.Command) > 0 {
			bad("%s: give a file or a command, not both", name)
		}
		if src.File != "" && !filepath.IsAbs(src.File) {
			bad("%s.file %q must be an absolute path", name, src.File)
		}
		re, err := regexp.Compile(src.Pattern)
		if err != nil {
			bad("%s.pattern: %v", name, err)
		} else if re.NumSubexp() != 1 {
			bad("%s.pattern must have exactly one group (the version), has %d", name, re.NumSubexp())
		}
	}
	if p.Media.ISO != "" && (strings.ContainsRune(p.Media.ISO, '/') || p.Media.ISO == ".." || p.Media.ISO == ".") {
		bad("media.iso %q must be a file name inside media.dir", p.Media.ISO)
	}
	if p.Media.ISO != "" && p.Media.Dir == "" {
		bad("media.iso %q needs media.dir, the folder it is in", p.Media.ISO)
	}
	if s := p.Media.SHA256; s != "" {
		if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
			bad("media.sha256 must be 64 hex digits")
		}
	}
	errs = append(errs, p.checkSSH()...)
	for _, f := range []struct{ name, path string }{
		{"db.dump_command", p.DB.DumpCommand}, {"db.restore_command", p.DB.RestoreCommand}, {"db.psql_command", p.DB.PSQLCommand},
	} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			bad("%s %q must be an absolute path (no PATH lookup)", f.name, f.path)
		}
	}
	commands := [][]string{p.ServiceCommand, p.POM.Installer, p.Host.RebootCommand, p.PC.Backup, p.PC.Restore, p.DB.BackupCommand}
	switch p.ServiceManager {
	case "", "service", "systemctl":
	default:
		bad("service_manager %q: use service or systemctl", p.ServiceManager)
	}
	if p.InstallerTimeout != "" {
		if d, err := time.ParseDuration(p.InstallerTimeout); err != nil || d <= 0 {
			bad("installer_timeout %q: a duration such as 90m or 4h", p.InstallerTimeout)
		}
	}
	switch p.DB.Kind {
	case "", "postgres", "oracle", "sqlserver":
	default:
		bad("db.kind %q: use postgres, oracle or sqlserver", p.DB.Kind)
	}
	for _, src := range sources {
		commands = append(commands, src.Command)
	}
	for _, argv := range p.PC.Installers {
		commands = append(commands, argv)
	}
	for _, c := range commands {
		if len(c) > 0 && !filepath.IsAbs(c[0]) {
			bad("command %q must start with an absolute path (no shell, no PATH lookup)", c[0])
		}
	}
	return errors.Join(errs...)
}

// Path maps a path from the profile onto the host under Root.
func (p Profile) Path(path string) string {
	if path == "" {
		return ""
	}
	return filepath.Join(p.Root, filepath.Clean("/"+path))
}

// Unroot is the inverse of Path: the path as the host sees it, without
// Root. It is how paths are recorded, so that a record made on one server
// means the same file on another.
func (p Profile) Unroot(path string) string {
	rel, err := filepath.Rel(p.Root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return path
	}
	return filepath.Clean("/" + rel)
}

// Command maps a command's argv onto the host: argv[0] lives under Root.
func (p Profile) Command(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	out := append([]string{p.Path(argv[0])}, argv[1:]...)
	return out
}

// BootIDFile is where the boot id is read.
func (p Profile) BootIDFile() string {
	if p.Host.BootIDFile != "" {
		return p.Path(p.Host.BootIDFile)
	}
	return p.Path("/proc/sys/kernel/random/boot_id")
}

// RebootCommand is the argv that asks the host to reboot.
func (p Profile) RebootCommand() []string {
	if len(p.Host.RebootCommand) > 0 {
		return p.Command(p.Host.RebootCommand)
	}
	return p.Command([]string{"/sbin/reboot"})
}

// ISOPath is where the installation ISO is expected.
func (p Profile) ISOPath() string { return filepath.Join(p.Path(p.Media.Dir), p.Media.ISO) }

// Digest is a stable hash of the decoded profile; it enters the plan
// fingerprint so a changed profile is noticed on resume. Root is left out:
// it says where the host's files are, not what the plan does, and the same
// profile moves with a migration from one server to the other.
func (p Profile) Digest() string {
	p.Root = ""
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain struct of strings: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
