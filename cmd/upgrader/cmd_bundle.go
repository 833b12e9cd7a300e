package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"upgrader/orchestrator"
	"upgrader/steps"
	"upgrader/steps/bundle"
	"upgrader/steps/remote"
)

// freeSpaceAt reads a directory's free space (a test build can fake it:
// see bundle_failpoint.go).
var freeSpaceAt = func(dir string) (int64, bool) {
	free, _, ok := steps.FreeBytesAt(dir)
	return free, ok
}

// bundleFailpoint passes the bundle's named points to the crash tests'
// failpoint ("bundle:before-manifest").
func bundleFailpoint(point string) {
	if failpoint != nil {
		failpoint("bundle", point)
	}
}

// isTTY reports whether v is a terminal: a character device that answers
// the terminal ioctl (/dev/null is a character device, not a terminal).
func isTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

type bundleFlags struct {
	out          string
	processes    []string
	since, until string
	appServer    bool
	mpp          bool
	yes          bool
}

func newBundleCmd(a *app) *cobra.Command {
	var f bundleFlags
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Collect POM logs and upgrader's own record into a support archive (replaces getpomlogs.sh)",
		Long: `bundle writes a tar.gz for support: the POM logs (all of them under logs/,
or a selection by process and date under selectedlogs/), this server's
application server and Tomcat logs with -a, the MPP CXI logs with -c, and always
upgrader's own record under upgrader/: the runs with their step records,
journal and plan, the plan for this host now, its facts, and the site
profile with its commands reduced to their program (arguments may hold a
password). MANIFEST lists every file with its size
and SHA-256, and every file left out with the reason.

On a terminal, with none of --out, --process, --since, --until, --yes or
-o json, it asks as getpomlogs.sh does: the directory (default
$POM_HOME/Temp/tmpdir), the processes, the date range. Otherwise it never
asks. Dates are "YYYY-MM-DD HH:MM:SS" in the host's time zone (or RFC 3339);
--until is inclusive to the second. A date range keeps the lines of that
range (a stack trace stays with the line it follows) and the files without
timestamps that were modified since the start.

-a and -c are getpomlogs.sh's --logs -a and --logs -c. One example of the
release notes describes "--logs -c" as "POM logs with appserver logs": a
copy-paste slip. upgrader reads -c as their text does, MPP CXI logs ("You
can also collect MPP CXI logs if MPP and POM co-exists in single server
deployment"; "--logs -a -c" is "appserver and MPP-CXI logs"). getpomlogs.sh
collects MPP CXI logs only when MPP and POM share a server; upgrader's -c
collects the logs of every MPP of the profile (else $AVAYA_MPP_HOME here):
the logs directory beside the directory of its mppconfig.xml, read here for
an MPP on this server and over SSH (the profile's ssh section: keys only,
host keys from known_hosts) for an MPP on another, streamed into the archive
under logs/mpp/NAME/ with the same date selection. An MPP that cannot be
reached, or whose host key is refused, is listed in MANIFEST with the
reason; the archive is still written.

Support's checklist also asks for what no archive made here can hold: FINEST
level logs (upgrader cannot change or check POM's log level), the POM Agent
API logs on the affected agent's desktop, an external application server's
logs on that server, and custom OD application logs. MANIFEST, the JSON
result and the output list them.

The archive is written to a temporary name beside the final one and renamed
when complete; it ends by printing its path and size.

Exit codes:
  0  archive written (files it could not read are listed in MANIFEST)
  1  error (I/O, not enough free space)
  2  usage error (bad flag, process name or date)`,
		Example: `  upgrader bundle                                  # on a terminal: asks, as getpomlogs.sh does
  upgrader bundle --out /var/tmp -a -c             # every log, app server and MPPs too
  upgrader bundle --process CmpMgr --process "PIM Web" \
      --since "2026-11-22 08:00:00" --until "2026-11-22 12:00:00" -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.bundle(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "directory for the archive (default $POM_HOME/Temp/tmpdir)")
	fl.StringArrayVar(&f.processes, "process", nil, "collect only this POM process's logs (repeatable): "+strings.Join(bundle.Processes, ", "))
	fl.StringVar(&f.since, "since", "", `only log lines from this date, "YYYY-MM-DD HH:MM:SS"`)
	fl.StringVar(&f.until, "until", "", `only log lines until this date (inclusive), "YYYY-MM-DD HH:MM:SS"`)
	fl.BoolVarP(&f.appServer, "appserver", "a", false, "add this server's application server and Tomcat logs (getpomlogs.sh --logs -a)")
	fl.BoolVarP(&f.mpp, "mpp", "c", false, "add the MPP CXI logs of every MPP, here or over SSH (getpomlogs.sh --logs -c)")
	fl.BoolVarP(&f.yes, "yes", "y", false, "ask nothing: the default directory, every process, every date")
	return cmd
}

// selection reads the selection flags.
func (f bundleFlags) selection() (bundle.Selection, error) {
	var sel bundle.Selection
	for _, arg := range f.processes {
		for _, name := range strings.Split(arg, ",") {
			p, err := bundle.ParseProcess(name)
			if err != nil {
				return sel, usagef("--process: %v", err)
			}
			sel.Processes = append(sel.Processes, p)
		}
	}
	var err error
	if f.since != "" {
		if sel.Since, err = bundle.ParseDate(f.since); err != nil {
			return sel, usagef("--since: %v", err)
		}
	}
	if f.until != "" {
		if sel.Until, err = bundle.ParseDate(f.until); err != nil {
			return sel, usagef("--until: %v", err)
		}
	}
	if err := sel.Range.Check(); err != nil {
		return sel, usagef("--until: %v", err)
	}
	return sel, nil
}

func (a *app) bundle(cmd *cobra.Command, f bundleFlags) error {
	p, _, err := a.planner().LoadProfile(a.profilePath)
	if err != nil {
		return codeOf(err)
	}
	sel, err := f.selection()
	if err != nil {
		return err
	}
	pool := remote.NewPool()
	defer pool.Close()
	thisHost, _ := os.Hostname()
	opts := bundle.Options{Profile: p, Dir: f.out, Selection: sel, AppServer: f.appServer, MPP: f.mpp, ThisHost: thisHost, Pool: pool,
		Now: time.Now(), Version: version + " (catalog " + orchestrator.CatalogVersion + ")", Failpoint: bundleFailpoint}
	if opts.Dir == "" {
		if p.POM.Home == "" {
			return usagef("the profile has no pom.home for the default directory: give --out DIR")
		}
		opts.Dir = p.Path(filepath.Join(p.POM.Home, "Temp", "tmpdir"))
	}
	out := a.humanOut(cmd)
	flagsGiven := false
	for _, name := range []string{"out", "process", "since", "until", "yes"} {
		flagsGiven = flagsGiven || cmd.Flags().Changed(name)
	}
	if isTTY(a.stdin) && !flagsGiven && a.output != "json" {
		d := &dialog{in: bufio.NewReader(a.stdin), out: out}
		if opts.Dir, err = d.directory(opts.Dir, bundle.Collect(context.Background(), opts).Estimate()); err != nil {
			return err
		}
		if opts.Selection.Processes, err = d.processes(); err != nil {
			return err
		}
		if opts.Selection.Range, err = d.dates(); err != nil {
			return err
		}
	}
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return withCode(exitError, err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return withCode(exitError, fmt.Errorf("archive directory: %v (choose another with --out)", err))
	}
	ev, cleanup := a.bundleEvidence(p)
	defer cleanup()
	opts.Evidence = ev
	// From here Ctrl-C stops the bundle cleanly (before, the questions
	// are read, and the default action of the signal ends them).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := bundle.Collect(ctx, opts)
	if free, ok := freeSpaceAt(opts.Dir); ok && free < c.Estimate() {
		return withCode(exitError, fmt.Errorf("not enough free space in %s: the archive needs about %s, %s is free; choose another directory with --out",
			opts.Dir, orchestrator.BytesText(c.Estimate()), orchestrator.BytesText(free)))
	}
	var progress func(done, total int64)
	var bar *progressbar.ProgressBar
	if isTTY(cmd.OutOrStdout()) && a.output != "json" {
		bar = progressbar.NewOptions64(c.Bytes(), progressbar.OptionSetWriter(out), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("Collecting"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
		progress = func(done, total int64) { bar.Set64(min(done, total)) }
	}
	res, err := c.Write(ctx, progress)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return withCode(exitError, errors.New("interrupted: no archive was written"))
		}
		return withCode(exitError, fmt.Errorf("archive not written: %w", err))
	}
	if a.output == "json" {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	printBundle(out, res)
	return nil
}

// printBundle ends as getpomlogs.sh does: the archive's path and size.
func printBundle(w io.Writer, r bundle.Result) {
	fmt.Fprintf(w, "Collected %d files, %s, into %s/ and upgrader/", r.Files, orchestrator.BytesText(r.Bytes), r.Logs)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "; %d left out, listed in MANIFEST", len(r.Skipped))
	}
	fmt.Fprintln(w, ".")
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(r.SupportAlsoAsks) > 0 {
		fmt.Fprintln(w, "Support also asks for (not in this archive; listed in MANIFEST):")
		for _, n := range r.SupportAlsoAsks {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	fmt.Fprintf(w, "Archive: %s\nSize: %s\n", r.Path, orchestrator.BytesText(r.Size))
}
