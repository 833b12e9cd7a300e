package steps

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/steps/remote"
)

// mppServer is the machine an MPP's files are on: this server, or the
// MPP's own server reached over SSH.
type mppServer struct {
	files MPPFiles
	// path maps the profile's path of a file on that machine to the path
	// to open: under the profile's root here, as written there.
	path  func(string) string
	where string // "this server" or user@host:port
	conn  *remote.Conn
}

// mppServer returns the server of m (ctx bounds the remote operations),
// connecting to it when it is another; step names the step that writes
// there, for the crash tests' failpoints.
func (h *Host) mppServer(ctx context.Context, m profile.MPP, step string) (mppServer, error) {
	this, _ := os.Hostname()
	if m.OnThisServer(this) {
		return mppServer{files: LocalMPPFiles{}, path: h.Profile.Path, where: "this server"}, nil
	}
	host, port, user := h.Profile.SSHTarget(m)
	t := remote.Target{Host: host, Port: port, User: user}
	c, err := h.sshPool().Get(ctx, h.sshConfig(), t)
	if err != nil {
		return mppServer{where: t.String()}, err
	}
	if h.Failpoint != nil && step != "" {
		ctx = remote.WithBeforeRename(ctx, func(_ *remote.Conn, tmp string) {
			point := "mpp-config-before-rename"
			if strings.HasSuffix(strings.TrimSuffix(tmp, remote.TempSuffix), OriginalSuffix) {
				point = "mpp-backup-before-rename"
			}
			h.Failpoint(point, step)
		})
	}
	return mppServer{files: remoteFiles{ctx: ctx, c: c}, path: func(p string) string { return p }, where: t.String(), conn: c}, nil
}

// mppOfSpec is the MPP a planned mpp-config step names: on another server
// when the plan gave it a host.
func mppOfSpec(spec orchestrator.StepSpec) profile.MPP {
	port, _ := strconv.Atoi(spec.Params["port"])
	return profile.MPP{Name: spec.Params["mpp"], Host: spec.Params["host"], Port: port, User: spec.Params["user"], Config: spec.Params["config"]}
}

// sshPool is the run's connections: the planner's, or the host's own.
func (h *Host) sshPool() *remote.Pool {
	h.sshOnce.Do(func() {
		if h.SSH == nil {
			h.SSH = remote.NewPool()
		}
	})
	return h.SSH
}

// sshConfig is how the profile says to log in to other servers.
func (h *Host) sshConfig() remote.Config {
	connect, op := h.Profile.SSHTimeouts()
	cfg := remote.Config{KnownHosts: h.Profile.KnownHostsPath(), AgentSocket: os.Getenv("SSH_AUTH_SOCK"),
		ConnectTimeout: connect, OpTimeout: op}
	if h.Profile.SSH.KeyFile != "" {
		cfg.KeyFile = h.Profile.Path(h.Profile.SSH.KeyFile)
	}
	return cfg
}

// remoteFiles is MPPFiles on another server, over SSH.
type remoteFiles struct {
	ctx context.Context
	c   *remote.Conn
}

var _ MPPFiles = remoteFiles{}

func (r remoteFiles) Stat(path string) (FileStat, error) {
	st, err := r.c.Lstat(r.ctx, path)
	if err != nil {
		return FileStat{}, err
	}
	return FileStat{Mode: st.Mode(), Size: st.Size()}, nil
}

func (r remoteFiles) ReadFile(path string, max int64) ([]byte, error) {
	return r.c.ReadFile(r.ctx, path, max)
}

func (r remoteFiles) WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return r.c.WriteFileAtomic(r.ctx, path, data, mode)
}

func (r remoteFiles) Exists(path string) (bool, error) { return r.c.Exists(r.ctx, path) }

// maxVersionOutput bounds what a version file or command may give.
const maxVersionOutput = 64 << 10

// version reads an installed version on the server as src says: the
// first group of the pattern's first match in the file, or in the
// command's output.
func (s mppServer) version(ctx context.Context, h *Host, src profile.VersionSource) (orchestrator.Version, error) {
	var out []byte
	var err error
	where := src.File
	switch {
	case len(src.Command) > 0:
		where = strings.Join(src.Command, " ")
		if s.conn != nil {
			out, err = s.conn.Output(ctx, src.Command, maxVersionOutput)
		} else {
			var b strings.Builder
			err = h.Run.Run(ctx, h.Profile.Command(src.Command), nil, func(l string) { b.WriteString(l + "\n") })
			out = []byte(b.String())
		}
	default:
		out, err = s.files.ReadFile(s.path(src.File), maxVersionOutput)
	}
	if err != nil {
		return orchestrator.Version{}, fmt.Errorf("%s: %w", where, err)
	}
	return matchVersion(out, src.Pattern, where)
}

// matchVersion is the version the pattern's first group finds in out.
func matchVersion(out []byte, pattern, where string) (orchestrator.Version, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return orchestrator.Version{}, err
	}
	m := re.FindSubmatch(out)
	if m == nil {
		return orchestrator.Version{}, fmt.Errorf("%s: no line matches %q", where, pattern)
	}
	return orchestrator.ParseVersion(string(m[1]))
}

// gatherMPPFacts reads, on every MPP at once, whether its server answers,
// its patch level (where the profile says how) and the current ccxml.jsi
// values of its mppconfig.xml.
func gatherMPPFacts(ctx context.Context, h *Host, f orchestrator.Facts) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range h.Profile.MPPs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := h.mppFacts(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			for what, fact := range got {
				f[orchestrator.MPPFact(m.Name, what)] = fact
			}
		}()
	}
	wg.Wait()
}

// mppFacts reads one MPP; what cannot be read is said in its facts.
func (h *Host) mppFacts(ctx context.Context, m profile.MPP) map[string]orchestrator.Fact {
	out := map[string]orchestrator.Fact{}
	srv, err := h.mppServer(ctx, m, "")
	source := srv.where
	if err != nil {
		out[orchestrator.MPPReachable] = orchestrator.Fact{Value: "false", Source: source}
		out[orchestrator.MPPError] = orchestrator.Fact{Value: oneLine(err), Source: source, Volatile: true}
		return out
	}
	out[orchestrator.MPPReachable] = orchestrator.Fact{Value: "true", Source: source}
	file := mppFile{files: srv.files, path: srv.path(m.Config)}
	if data, _, err := file.read(); err != nil {
		out[orchestrator.MPPConfigError] = orchestrator.Fact{Value: oneLine(err), Source: source + " " + m.Config, Volatile: true}
	} else if doc, err := parseMPPConfig(data); err != nil {
		out[orchestrator.MPPConfigError] = orchestrator.Fact{Value: oneLine(fmt.Errorf("%s: %w", m.Config, err)), Source: source + " " + m.Config, Volatile: true}
	} else {
		for what, name := range map[string]string{orchestrator.MPPFactRuntimeSize: orchestrator.MPPRuntimeSizeParam,
			orchestrator.MPPFactContextSize: orchestrator.MPPContextSizeParam} {
			value := ""
			if els := doc.named(name); len(els) == 1 && els[0].notSimple == "" {
				value = string(data[els[0].valFrom:els[0].valTo])
			}
			out[what] = orchestrator.Fact{Value: value, Source: source + " " + m.Config, Volatile: true}
		}
	}
	if m.Version.File != "" || len(m.Version.Command) > 0 {
		if v, err := srv.version(ctx, h, m.Version); err != nil {
			out[orchestrator.MPPPatchError] = orchestrator.Fact{Value: oneLine(err), Source: source, Volatile: true}
		} else {
			out[orchestrator.MPPPatch] = orchestrator.Fact{Value: v.String(), Source: source + " mpps[].version"}
		}
	}
	return out
}

// oneLine is an error as one line, for a fact.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
