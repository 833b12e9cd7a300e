package bundle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"upgrader/orchestrator/profile"
	"upgrader/steps"
	"upgrader/steps/remote"
)

// Processes are the POM processes getpomlogs.sh offers, in its order.
var Processes = []string{"CmpDir", "CmpMgr", "AgtMgr", "kafkaserver", "PIM RestService", "PIM RuleEngine",
	"PIM Web", "PIM WebService", "PIM ActMQ", "zookeeperserver"}

// compact is a process name for comparing names: PIM RestService is
// pimrestservice.
func compact(s string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "_", "").Replace(s))
}

// ParseProcess returns the process a name means: its name as listed or
// without spaces, in any case.
func ParseProcess(name string) (string, error) {
	for _, p := range Processes {
		if compact(p) == compact(strings.TrimSpace(name)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no POM process %q: use one of %s", name, strings.Join(quoted(Processes), ", "))
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if strings.Contains(n, " ") {
			out[i] = `"` + n + `"`
		}
	}
	return out
}

// belongsTo reports whether a log (its path inside its log directory) is
// one of the process's: a file or directory named after it, its words
// joined or separated by one of " _-" (PIM_Web.log, PIMWeb/web.log,
// CmpMgr_console.out, CmpMgr.log.1), but not PIMWebService.log for PIM Web.
func belongsTo(rel, process string) bool {
	words := strings.Fields(strings.ToLower(process))
	for _, part := range strings.Split(strings.ToLower(rel), "/") {
		if rest, ok := cutWords(part, words); ok && (rest == "" || !isLetter(rest[0])) {
			return true
		}
	}
	return false
}

// cutWords removes the words from the front of s, allowing one separator
// between them.
func cutWords(s string, words []string) (string, bool) {
	for i, w := range words {
		if i > 0 && s != "" && strings.IndexByte(" _-", s[0]) >= 0 {
			s = s[1:]
		}
		var ok bool
		if s, ok = strings.CutPrefix(s, w); !ok {
			return "", false
		}
	}
	return s, true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Where the support checklist's sources are on an Experience Portal
// server, under the profile's root ($AVAYA_MPP_HOME when the profile has no
// MPP, $APPSERVER_HOME, $CATALINA_HOME).
const (
	DefaultMPPHome       = "/opt/Avaya/ExperiencePortal/MPP"
	DefaultAppServerHome = "/opt/AppServer/tomcat"
	DefaultCatalinaHome  = "/opt/Tomcat/tomcat"
)

// Source is one log directory and where its files go in the archive.
type Source struct {
	Name string `json:"name"` // e.g. pom, mpp/mpp1, appserver/webapps/VP_POM
	// Dir is on this host, under the profile's root; or, for a Remote
	// source, the path on that server.
	Dir string `json:"dir"`
	// POM logs are the ones a process selection applies to.
	POM bool `json:"pom"`
	// Remote is the server of an MPP that is not this one, read over SSH.
	Remote *remote.Target `json:"remote,omitempty"`
}

// Shown is the directory as MANIFEST names it: this host's path, or
// ssh://user@host:port/path for another server's.
func (s Source) Shown(unroot func(string) string) string {
	if s.Remote != nil {
		return remoteURL(*s.Remote, s.Dir)
	}
	return unroot(s.Dir)
}

// remoteURL names a path on another server.
func remoteURL(t remote.Target, p string) string { return "ssh://" + t.String() + p }

// Sources lists the log directories to collect: POM's always, the
// application server's and Tomcat's with appServer, every MPP's with mpp.
// An MPP on this server (its host empty, localhost or thisHost) is read
// here; any other over SSH, from the same place on its own server.
func Sources(p profile.Profile, thisHost string, appServer, mpp bool) []Source {
	var out []Source
	if p.POM.Home != "" {
		out = append(out, Source{Name: "pom", Dir: p.Path(filepath.Join(p.POM.Home, "logs")), POM: true})
	}
	if appServer {
		home := p.Path(DefaultAppServerHome)
		out = append(out, Source{Name: "appserver", Dir: filepath.Join(home, "logs")})
		apps, _ := os.ReadDir(filepath.Join(home, "webapps"))
		for _, app := range apps {
			if dir := filepath.Join(home, "webapps", app.Name(), "data", "log"); isDir(dir) {
				out = append(out, Source{Name: "appserver/webapps/" + app.Name(), Dir: dir})
			}
		}
		out = append(out, Source{Name: "catalina", Dir: filepath.Join(p.Path(DefaultCatalinaHome), "logs")})
	}
	if mpp {
		// An MPP's home holds config/mppconfig.xml and logs/ (the CXI
		// logs are under logs/process/CXI).
		for _, m := range p.MPPs {
			if m.OnThisServer(thisHost) {
				out = append(out, Source{Name: "mpp/" + m.Name, Dir: filepath.Join(filepath.Dir(filepath.Dir(p.Path(m.Config))), "logs")})
				continue
			}
			host, port, user := p.SSHTarget(m)
			out = append(out, Source{Name: "mpp/" + m.Name, Dir: path.Join(path.Dir(path.Dir(m.Config)), "logs"),
				Remote: &remote.Target{Host: host, Port: port, User: user}})
		}
		if len(p.MPPs) == 0 {
			out = append(out, Source{Name: "mpp", Dir: filepath.Join(p.Path(DefaultMPPHome), "logs")})
		}
	}
	return out
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// Selection narrows the logs: by POM process and by date.
type Selection struct {
	Processes []string `json:"processes,omitempty"`
	Range
}

// Any reports whether anything is selected: the logs then go under
// selectedlogs/ instead of logs/.
func (s Selection) Any() bool { return len(s.Processes) > 0 || s.Range.Set() }

// Skip is a file left out of the archive, and why.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// candidate is a file found to collect.
type candidate struct {
	name    string // in the archive
	path    string // on its server (this host's: under the profile's root)
	shown   string // as MANIFEST names it
	size    int64
	mode    fs.FileMode
	modTime time.Time
	cut     bool       // cut to the date range where its lines carry timestamps
	mpp     *remoteMPP // the other server it is on; nil for this host
}

// found is what a walk of the sources found.
type found struct {
	files   []candidate
	skipped []Skip
	notes   []string
	bytes   int64
}

func (f *found) add(g found) {
	f.files = append(f.files, g.files...)
	f.skipped = append(f.skipped, g.skipped...)
	f.notes = append(f.notes, g.notes...)
	f.bytes += g.bytes
}

// secretFile reports whether a file holds a password: the profile's
// password file, or any pgpass file. Its content is never read.
func secretFile(path string, secrets []string) bool {
	base := filepath.Base(path)
	return base == "pgpass" || base == ".pgpass" || slices.Contains(secrets, path)
}

// walkLocal lists the files of a source on this host that the selection
// keeps. It never follows a symlink: one that leads out of its source is
// skipped and listed, one that stays inside names a file collected as
// itself. seen holds the directories already walked.
func walkLocal(src Source, sel Selection, top string, secrets []string, unroot func(string) string, seen map[string]bool) found {
	var f found
	dir, err := filepath.EvalSymlinks(src.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.notes = append(f.notes, fmt.Sprintf("%s/: no %s on this host", src.Name, unroot(src.Dir)))
		return f
	case err != nil:
		f.skipped = append(f.skipped, Skip{unroot(src.Dir), reason(err)})
		return f
	}
	if seen[dir] {
		return f
	}
	seen[dir] = true
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			f.skipped = append(f.skipped, Skip{unroot(path), reason(err)})
			return nil // WalkDir skips the unreadable directory
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			f.skipped = append(f.skipped, Skip{unroot(path), symlinkReason(dir, path, unroot)})
			return nil
		case !d.Type().IsRegular():
			f.skipped = append(f.skipped, Skip{unroot(path), "not a regular file (" + steps.FileType(d.Type()) + ")"})
			return nil
		case secretFile(path, secrets):
			f.skipped = append(f.skipped, Skip{unroot(path), "a password file: never collected"})
			return nil
		}
		info, err := d.Info()
		if err != nil {
			f.skipped = append(f.skipped, Skip{unroot(path), reason(err)})
			return nil
		}
		if !keeps(sel, src, rel, info.ModTime()) {
			return nil
		}
		f.files = append(f.files, candidate{name: top + "/" + src.Name + "/" + rel, path: path, shown: unroot(path), size: info.Size(),
			mode: info.Mode().Perm(), modTime: info.ModTime(), cut: sel.Range.Set()})
		f.bytes += info.Size()
		return nil
	})
	return f
}

// keeps applies the selection to what the walk knows of a file. A file
// last written before the start holds nothing after it.
func keeps(sel Selection, src Source, rel string, mtime time.Time) bool {
	if src.POM && len(sel.Processes) > 0 && !slices.ContainsFunc(sel.Processes, func(p string) bool { return belongsTo(rel, p) }) {
		return false
	}
	return sel.Since.IsZero() || !mtime.Before(sel.Since)
}

func symlinkReason(dir, path string, unroot func(string) string) string {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "symlink whose target cannot be read (" + reason(err) + "): not followed"
	}
	if rel, err := filepath.Rel(dir, target); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return "symlink to " + unroot(target) + ", inside the log directory: collected as itself"
	}
	return "symlink to " + unroot(target) + ", outside the log directory: not followed"
}

// reason is an error without the path the listing already shows.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
