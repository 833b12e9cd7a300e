package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"upgrader/orchestrator"
	"upgrader/steps/durable"
	"upgrader/steps/job"
)

// jobRun is a long child of a step whose interruption would harm the host
// (an installer, pg_dump, a backup, a service start or stop): it runs as a
// supervised job (package job), lives on if upgrader dies, and a resumed
// step follows it, or reads how it ended, instead of starting another.
type jobRun struct {
	name      string // tells the jobs of one step apart (a service); "" for its only one
	what      string // for messages: "the installer", "pg_dump"
	argv, env []string
	line      func(string) // each line of its output, as it comes
	// rerun says an interrupted run may simply be started again: the tool
	// only reads the product and writes a file upgrader discards, or the
	// service manager converges. Never a vendor installer.
	rerun bool
	// converges says the caller runs the job only when the host is not as
	// wanted (a service's status): a job an earlier process saw end is
	// never taken for this one's result, a new one runs.
	converges bool
	private   bool          // what it writes is for root only (a backup: umask 077)
	timeout   time.Duration // from the command's start; 0 for none
	// prepare runs before a new start, never before following a job that
	// an earlier process started.
	prepare func() error
	// writes, when set, are the only trees the tool writes (pg_dump: the
	// backup directory): they alone are made durable at its end, file by
	// file, without a syncfs of the whole file system. Unset: the
	// product's trees, which a vendor tool may change anywhere.
	writes []string
	// command, when set, gives argv for a new start once prepare has run:
	// a command chosen by what prepare found (pg_dump's format and jobs).
	// argv stays what messages name.
	command func() []string
}

// JobRoom is the free space upgrader asks for in the filesystem of its jobs
// directory before it starts a job: room for the job's log and the record
// of its end. A command whose log cannot be written may die half-way (a
// vendor installer among them), and an end that cannot be recorded is
// lost: the step would then fail as interrupted. Upgrader's own margin.
const JobRoom = 8 << 20

func savedJobKey(name string) string {
	if name == "" {
		return "job"
	}
	return "job." + name
}

func (h *Host) jobDir() (job.Dir, error) {
	if h.Jobs == "" {
		return "", errors.New("no jobs directory: a long command cannot run without a place to record it")
	}
	return job.Dir(h.Jobs), nil
}

// stepJobs reads how the step's jobs on record stand: the one named name,
// or all of them if name is "*".
func (h *Host) stepJobs(sc orchestrator.StepContext, name string) ([]job.Info, error) {
	var infos []job.Info
	for k, key := range sc.Saved {
		if k != savedJobKey(name) && !(name == "*" && (k == "job" || strings.HasPrefix(k, "job."))) {
			continue
		}
		dir, err := h.jobDir()
		if err != nil {
			return nil, err
		}
		info, err := dir.Look(key)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// jobLive reports whether a job of the step (one named name, or any if
// name is "*") may still be at work: until it ends, the step's effect is
// not in place, whatever the host shows.
func (h *Host) jobLive(sc orchestrator.StepContext, name string) (bool, error) {
	infos, err := h.stepJobs(sc, name)
	return slices.ContainsFunc(infos, func(i job.Info) bool { return i.State.Live() }), err
}

// jobUnsettled reports whether what the host shows of a step's effect is
// no proof of it: a job of the step may still be at work, or, on a
// resume, one was cut short (its end never recorded, as a power cut
// leaves it). A tool cut half-way can leave its last mark (an installer's
// version file) with earlier work lost; Apply then reads how the job
// stands. The operator's retry after that failure looks at the host again
// (interrupted says so).
func (h *Host) jobUnsettled(sc orchestrator.StepContext, name string) (bool, error) {
	infos, err := h.stepJobs(sc, name)
	return slices.ContainsFunc(infos, func(i job.Info) bool {
		return i.State.Live() || (sc.Resumed && i.State == job.Interrupted)
	}), err
}

// runJob runs j for the step and waits for its end. The job's key is
// saved on the step before it starts; a step found started (sc.Resumed)
// follows that job if it still runs, takes its recorded end if it ended
// unseen, and fails if it was interrupted and may not simply run again.
// A job that still runs is followed whatever the attempt: never two at once.
func (h *Host) runJob(ctx context.Context, sc orchestrator.StepContext, j jobRun) error {
	dir, err := h.jobDir()
	if err != nil {
		return err
	}
	saved := savedJobKey(j.name)
	if key := sc.Saved[saved]; key != "" {
		info, err := dir.Look(key)
		if err != nil {
			return err
		}
		switch {
		case info.State.Live():
			pid := fmt.Sprintf("pid %d", info.Pid)
			if info.Pid == 0 {
				pid = "its supervisor is starting it"
			}
			msg := fmt.Sprintf("%s started earlier is still running (%s): following it to its end; its log: %s", j.what, pid, info.Log)
			sc.Log.Info().Str("job", key).Int("pid", info.Pid).Msg(msg)
			sc.Progress(msg, 0, 0)
			return h.follow(ctx, sc, j, key, true)
		case sc.Resumed && info.State == job.Ended && !j.converges:
			sc.Log.Info().Str("job", key).Str("status", info.Status.String()).Str("log", info.Log).
				Msg(j.what + " ended while no upgrader was following it")
			return h.follow(ctx, sc, j, key, false)
		case sc.Resumed && info.State == job.Interrupted && !j.rerun:
			return interrupted(j, info)
		}
		// Never started, interrupted and safe to run again, or the
		// operator's retry after a recorded failure: a new job.
	}
	if j.prepare != nil {
		if err := j.prepare(); err != nil {
			return err
		}
	}
	if free, at, ok := FreeBytesAt(string(dir)); ok && free < JobRoom {
		return fmt.Errorf("%s not started: no space left for its log and the record of its end: %s has %s free, "+
			"upgrader keeps %s free there for a job (its own margin); free space, then upgrader retry",
			j.what, at, orchestrator.BytesText(free), orchestrator.BytesText(JobRoom))
	}
	if j.command != nil {
		j.argv = j.command()
	}
	prefix := sc.RunID + "-" + sc.Spec.ID
	if j.name != "" {
		prefix += "-" + j.name
	}
	key, err := dir.NewKey(prefix)
	if err != nil {
		return err
	}
	// Persist before act: a later upgrader knows which job to look for.
	if err := sc.Save(map[string]string{saved: key}); err != nil {
		return err
	}
	sc.Log.Info().Str("job", key).Strs("argv", j.argv).Str("log", dir.Log(key)).Msg("starting " + j.what)
	env := append(append([]string(nil), baseEnv...), j.env...)
	spec := job.Spec{Key: key, Argv: j.argv, Env: env, Private: j.private}
	if !j.converges {
		// The supervisor makes the tool's work durable before it records
		// the end: an end on record never stands for work a power cut took.
		spec.Durable, spec.SyncFS = h.jobWrites(j)
	}
	if err := dir.Start(spec); err != nil {
		return fmt.Errorf("%s: %w", j.what, err)
	}
	return h.follow(ctx, sc, j, key, true)
}

// follow waits for a job's end, with its lines if lines.
func (h *Host) follow(ctx context.Context, sc orchestrator.StepContext, j jobRun, key string, lines bool) error {
	dir, err := h.jobDir()
	if err != nil {
		return err
	}
	o := job.FollowOptions{Timeout: j.timeout, Stop: sc.Stopped}
	if lines {
		o.Line = j.line
	}
	res, err := dir.Follow(ctx, key, o)
	switch {
	case errors.Is(err, job.ErrDetached):
		return fmt.Errorf("%w: %s goes on (pid %d, log %s); 'upgrader resume' follows it again", orchestrator.ErrDetached, j.what, res.Pid, res.Log)
	case errors.Is(err, job.ErrInterrupted):
		return interrupted(j, res.Info)
	case err != nil:
		return fmt.Errorf("%s: %w (its log: %s)", j.what, err, res.Log)
	}
	if h.Failpoint != nil {
		h.Failpoint("job-ended", sc.Spec.ID)
	}
	if !j.converges {
		// Whatever its end, what the tool changed is durable before the
		// step's result is recorded (its supervisor made it so before it
		// recorded the end; this covers a job whose supervisor did not).
		if err := h.makeDurable(sc, j, res.StartedAt); err != nil {
			return err
		}
	}
	if res.TimedOut {
		return fmt.Errorf("%s ran longer than %s (installer_timeout) and was stopped: read its log %s before resuming", j.what, j.timeout, res.Log)
	}
	if err := res.Status.Err(); err != nil {
		return &CommandError{Path: j.argv[0], Err: err, Tail: res.Tail, Log: res.Log}
	}
	return nil
}

// interrupted is the failure of a job that started and whose end was never
// recorded: upgrader cannot know how far it got.
func interrupted(j jobRun, info job.Info) error {
	if j.rerun {
		return fmt.Errorf("%s (pid %d) was interrupted before it finished (its log: %s): 'upgrader resume' runs it again",
			j.what, info.Pid, info.Log)
	}
	return fmt.Errorf("%s (pid %d) was interrupted before it finished: it was running when the host or upgrader went down, "+
		"and its end was never recorded. upgrader does not start it again on its own (upgrader's own rule: the release notes "+
		"describe no recovery from a half-finished run, and a vendor installer run over one can damage the product). "+
		"Read its log %s and the vendor's instructions. Once the host is made right, 'upgrader resume' looks at it again: "+
		"a step whose effect shows in place is taken as done (a tool cut half-way can show its last mark, an installer its "+
		"version, with earlier work lost: check before), otherwise %s runs again",
		j.what, info.Pid, info.Log, j.what)
}

// durableRoots are the product's trees a tool changes.
func (h *Host) durableRoots() []string {
	p := h.Profile
	return []string{p.Path(p.POM.Home), p.Path(p.PC.Home), p.Path(p.PC.BackupDir), p.Path(p.DB.BackupDir)}
}

// jobWrites are the trees a job's work is made durable in, and the paths
// whose file systems are synced first (durable.Make): the job's own trees
// when it names them, else the product's and the host's root.
func (h *Host) jobWrites(j jobRun) (roots, syncFS []string) {
	if len(j.writes) > 0 {
		return j.writes, nil
	}
	roots = h.durableRoots()
	return roots, append(slices.Clone(roots), h.Profile.Path("/"))
}

// makeDurable makes a tool's changes durable (durable.Make, jobWrites); a
// job started at an unknown time counts as started at the beginning of
// time.
func (h *Host) makeDurable(sc orchestrator.StepContext, j jobRun, started time.Time) error {
	since := time.Time{}
	if !started.IsZero() {
		since = started.Add(-durable.Slack)
	}
	roots, syncFS := h.jobWrites(j)
	st, err := durable.Make(roots, syncFS, since)
	if err != nil {
		return fmt.Errorf("%s ended, but what it changed could not be made durable: %w; fix the cause, then upgrader resume", j.what, err)
	}
	sc.Log.Info().Int("entries", st.Entries).Int("synced", st.Synced).Dur("took", st.Took).Msg("made " + j.what + "'s changes durable")
	return nil
}
