package orchestrator

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Fact is one thing known about the host, with where it came from.
type Fact struct {
	Value  string `json:"value"`
	Source string `json:"source"`
	// Assumed marks a value given with --assume instead of read from the host.
	Assumed bool `json:"assumed,omitempty"`
	// Volatile marks a value that changes by itself (free space): the plan
	// fingerprint leaves it out, and keeps what the plan concluded from it.
	Volatile bool `json:"volatile,omitempty"`
}

// Facts maps fact keys (see FactKeys) to values. JSON encoding sorts the
// keys, so a Facts value hashes the same way every time.
type Facts map[string]Fact

// Get returns a fact's value and whether it is known.
func (f Facts) Get(key string) (string, bool) {
	v, ok := f[key]
	return v.Value, ok
}

// Fact keys the catalog reads. Each can be overridden with --assume.
const (
	FactPOMVersion  = "pom.version"      // installed POM version
	FactEPVersion   = "ep.version"       // Experience Portal version
	FactEPMPPPatch  = "ep.mpp_patch"     // newest MPP patch installed on EP
	FactPCVersion   = "pc.version"       // installed PC dialer version
	FactHostModel   = "host.model"       // DMI product name
	FactHostName    = "host.name"        // host name
	FactComponents  = "components"       // comma list of installed optional components
	FactMediaSize   = "media.iso.size"   // ISO size in bytes, -1 when absent
	FactMediaSigned = "media.iso.signed" // "true" when .sha256.crt and .sha256.sig are present
	// Sizes in bytes of the ISO's .sha256.crt and .sha256.sig, -1 when absent.
	FactMediaCrtSize = "media.iso.crt.size"
	FactMediaSigSize = "media.iso.sig.size"
	// Free bytes in the filesystem that holds the backup / the product.
	FactFreeBackup  = "disk.free.backup"
	FactFreeInstall = "disk.free.install"
	FactPCDataSize  = "pc.data.size" // bytes of PC data a migration backs up
	FactDBSize      = "db.size"      // bytes of the POM database
	// FactDBExists says whether the profile's database exists: "true",
	// "false", or "unknown" when it cannot be read.
	FactDBExists = "db.exists"
	// The client connections the database allows (max_connections less
	// superuser_reserved_connections) and those open when it was read;
	// absent when it could not be asked.
	FactDBConnAvailable = "db.connections.available"
	FactDBConnUsed      = "db.connections.used"
	// FactDBPasswordFileMode is the permission bits of db.password_file,
	// in octal (0600).
	FactDBPasswordFileMode = "db.password_file.mode"
)

// factKinds says how each known key's value is checked.
var factKinds = map[string]string{
	FactPOMVersion:      "version",
	FactEPVersion:       "version",
	FactEPMPPPatch:      "version",
	FactPCVersion:       "version",
	FactHostModel:       "text",
	FactHostName:        "text",
	FactComponents:      "list",
	FactMediaSize:       "int",
	FactMediaSigned:     "bool",
	FactFreeBackup:      "int",
	FactFreeInstall:     "int",
	FactPCDataSize:      "int",
	FactDBSize:          "int",
	FactDBExists:        "known-bool",
	FactDBConnAvailable: "int",
	FactDBConnUsed:      "int",
	FactMediaCrtSize:    "int",
	FactMediaSigSize:    "int",
	// An octal mode: 0600.
	FactDBPasswordFileMode: "mode",
}

// What is read on each MPP, under the key MPPFact(name, what).
const (
	// MPPReachable is "true" when upgrader logged in to the MPP's server
	// (always, for an MPP on this server), "false" when it could not.
	MPPReachable = "reachable"
	// MPPError says why the MPP's server could not be reached.
	MPPError = "error"
	// MPPConfigError says why its mppconfig.xml could not be read.
	MPPConfigError = "config_error"
	// MPPPatch is the patch level read on the MPP (mpps[].version).
	MPPPatch = "patch"
	// MPPPatchError says why the patch level could not be read.
	MPPPatchError = "patch_error"
	// MPPFactRuntimeSize and MPPFactContextSize are the current ccxml.jsi values
	// in its mppconfig.xml; absent when the parameter is.
	MPPFactRuntimeSize = "runtimesize"
	MPPFactContextSize = "contextsize"
)

// mppFactKinds says how each MPP fact's value is checked.
var mppFactKinds = map[string]string{
	MPPReachable: "bool", MPPError: "text", MPPConfigError: "text", MPPPatch: "version", MPPPatchError: "text",
	MPPFactRuntimeSize: "text", MPPFactContextSize: "text",
}

// MPPFact is the key of a fact read on the MPP named name.
func MPPFact(name, what string) string { return "mpp." + name + "." + what }

// factKind is how a key's value is checked, and whether the key is known:
// the fixed keys, and mpp.NAME.WHAT for any MPP name.
func factKind(key string) (string, bool) {
	if kind, ok := factKinds[key]; ok {
		return kind, true
	}
	if rest, ok := strings.CutPrefix(key, "mpp."); ok {
		if i := strings.LastIndexByte(rest, '.'); i > 0 {
			kind, ok := mppFactKinds[rest[i+1:]]
			return kind, ok
		}
	}
	return "", false
}

// MediaFileFact is the fact key of a file's size in media.dir (bytes, -1
// when absent), for each of POMMediaFiles.
func MediaFileFact(name string) string { return "media.file." + name }

func init() {
	for _, name := range POMMediaFiles() {
		factKinds[MediaFileFact(name)] = "int"
	}
}

// Int returns a whole-number fact, and whether it is known.
func (f Facts) Int(key string) (int64, bool) {
	v, ok := f.Get(key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// List returns a comma-list fact as its items.
func (f Facts) List(key string) []string {
	v, _ := f.Get(key)
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// FactKeys lists every key --assume accepts, sorted; the facts of each
// MPP appear as mpp.NAME.WHAT.
func FactKeys() []string {
	keys := make([]string, 0, len(factKinds)+len(mppFactKinds))
	for k := range factKinds {
		keys = append(keys, k)
	}
	for what := range mppFactKinds {
		keys = append(keys, MPPFact("NAME", what))
	}
	sort.Strings(keys)
	return keys
}

// ParseAssumptions checks "key=value" overrides and returns them as a map.
func ParseAssumptions(args []string) (map[string]string, error) {
	out := make(map[string]string, len(args))
	for _, a := range args {
		key, value, ok := strings.Cut(a, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("--assume %q: expected key=value, e.g. pom.version=3.1.0", a)
		}
		kind, known := factKind(key)
		if !known {
			return nil, fmt.Errorf("--assume %q: unknown fact %q; known facts: %s", a, key, strings.Join(FactKeys(), ", "))
		}
		if err := checkFactValue(kind, value); err != nil {
			return nil, fmt.Errorf("--assume %q: %w", a, err)
		}
		out[key] = value
	}
	return out, nil
}

func checkFactValue(kind, value string) error {
	switch kind {
	case "version":
		_, err := ParseVersion(value)
		return err
	case "int":
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Errorf("%q is not a whole number", value)
		}
	case "mode":
		if m, err := strconv.ParseUint(value, 8, 32); err != nil || m > 0o7777 {
			return fmt.Errorf("%q is not a file mode (octal, e.g. 0600)", value)
		}
	case "bool":
		if _, err := strconv.ParseBool(value); err != nil {
			return fmt.Errorf("%q is not true or false", value)
		}
	case "known-bool":
		if value != "true" && value != "false" && value != "unknown" {
			return fmt.Errorf("%q is not true, false or unknown", value)
		}
	case "list":
		for _, item := range strings.Split(value, ",") {
			if strings.TrimSpace(item) == "" && value != "" {
				return fmt.Errorf("%q has an empty item", value)
			}
		}
	case "text":
		if strings.ContainsAny(value, "\x00\n") {
			return fmt.Errorf("value contains a NUL or newline")
		}
	}
	return nil
}

// WithAssumptions returns a copy of f with the overrides applied and marked.
func (f Facts) WithAssumptions(assume map[string]string) Facts {
	out := make(Facts, len(f)+len(assume))
	for k, v := range f {
		out[k] = v
	}
	for k, v := range assume {
		out[k] = Fact{Value: v, Source: "--assume", Assumed: true}
	}
	return out
}
