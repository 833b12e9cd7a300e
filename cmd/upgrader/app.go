package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"golang.org/x/term"

	"upgrader/orchestrator"
	"upgrader/orchestrator/profile"
	"upgrader/state"
	"upgrader/state/securefs"
	"upgrader/steps"
)

// app holds the flags every command shares and wires the packages together.
type app struct {
	stdin       io.Reader
	profilePath string
	procedure   string
	stateDir    string
	assume      []string
	with        []string
	override    []string
	attest      []string
	socket      string
	answersPath string
	answers     map[string]map[string]string // gate id → attestation
	output      string
	yes         bool
	code        int // exit code for a command that succeeded but must say more
}

// setup is a loaded profile, the host it describes and its facts.
type setup struct {
	profile profile.Profile
	host    *steps.Host
	facts   orchestrator.Facts
}

func (a *app) loadProfile(path string) (profile.Profile, error) {
	data, err := securefs.ReadRegular(path, profile.MaxProfileSize)
	if err != nil {
		return profile.Profile{}, usagef("site profile: %v (give the site's profile with --profile)", err)
	}
	abs, _ := filepath.Abs(path)
	p, err := profile.Decode(data, filepath.Dir(abs))
	if err != nil {
		return p, usagef("%s: %v", path, err)
	}
	return p, nil
}

func (a *app) loadSetup(path string) (setup, error) {
	p, err := a.loadProfile(path)
	if err != nil {
		return setup{}, err
	}
	assumed, err := orchestrator.ParseAssumptions(a.assume)
	if err != nil {
		return setup{}, usagef("%v", err)
	}
	h := &steps.Host{Profile: p, Run: steps.ExecRunner{}, Jobs: a.jobsDir()}
	return setup{profile: p, host: h, facts: steps.GatherFacts(context.Background(), h).WithAssumptions(assumed)}, nil
}

func (a *app) procedureFor(p profile.Profile) (string, error) {
	id := a.procedure
	if id == "" {
		id = p.Procedure
	}
	if id == "" {
		return "", usagef("no procedure: give --procedure or set procedure in the profile")
	}
	if _, err := orchestrator.LookupProcedure(id); err != nil {
		return "", usagef("%v", err)
	}
	return id, nil
}

// planHere reads the profile and the host and plans the procedure.
func (a *app) planHere() (setup, orchestrator.Plan, error) {
	s, err := a.loadSetup(a.profilePath)
	if err != nil {
		return s, orchestrator.Plan{}, err
	}
	id, err := a.procedureFor(s.profile)
	if err != nil {
		return s, orchestrator.Plan{}, err
	}
	overrides, err := a.overrides()
	if err != nil {
		return s, orchestrator.Plan{}, err
	}
	plan, err := orchestrator.BuildPlan(orchestrator.PlanInput{Procedure: id, Facts: s.facts, Profile: s.profile,
		Options: orchestrator.Options{With: a.with, Overrides: overrides}})
	return s, plan, err
}

// maxAnswersSize bounds the answers file: a few attestations.
const maxAnswersSize = 1 << 20

// loadAnswers reads the answers file: gate id → attestation fields, as
// Leapp's answerfile does, so a run can go unattended.
func (a *app) loadAnswers() error {
	if a.answersPath == "" {
		return nil
	}
	data, err := securefs.ReadRegular(a.answersPath, maxAnswersSize)
	if err != nil {
		return usagef("answers file: %v (give a YAML file of gate-id: {field: value})", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	a.answers = map[string]map[string]string{}
	if err := dec.Decode(&a.answers); err != nil && !errors.Is(err, io.EOF) {
		return usagef("answers file %s: %v (expected: gate-id: {field: value})", a.answersPath, err)
	}
	return nil
}

// overrides parses --override ID=REASON flags.
func (a *app) overrides() (map[string]string, error) {
	if len(a.override) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, o := range a.override {
		id, reason, ok := strings.Cut(o, "=")
		if !ok || strings.TrimSpace(id) == "" || strings.TrimSpace(reason) == "" {
			return nil, usagef("--override %q: use ID=REASON; the reason is journaled", o)
		}
		out[strings.TrimSpace(id)] = strings.TrimSpace(reason)
	}
	return out, nil
}

func (a *app) openState() (*state.DB, error) {
	db, err := state.Open(a.stateDir, time.Second)
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return nil, withCode(exitError, fmt.Errorf("%w\n(a foreground 'upgrader run' or 'resume' in another terminal holds it)", err))
		}
		return nil, withCode(exitError, err)
	}
	db.Failpoint = stateFailpoint
	db.Warn = func(err error) { fmt.Fprintln(os.Stderr, "warning:", err) }
	return db, nil
}

// logger writes the detailed log to upgrader.log in the state directory;
// a write that fails is said once on stderr.
func (a *app) logger() (zerolog.Logger, io.Closer, error) {
	f, err := state.OpenLog(a.stateDir, os.Stderr)
	if err != nil {
		return zerolog.Nop(), nil, err
	}
	return zerolog.New(f).With().Timestamp().Logger(), f, nil
}

func (a *app) engine(db *state.DB, host *steps.Host, log zerolog.Logger, notify func(orchestrator.Notice)) *orchestrator.Engine {
	return &orchestrator.Engine{Store: db, Steps: host, Checker: host, Log: log, Notify: notify, Failpoint: failpoint}
}

// actor names the operator for the journal.
func actor() string {
	uid := os.Getuid()
	if u, err := user.LookupId(fmt.Sprint(uid)); err == nil {
		return fmt.Sprintf("uid=%d(%s)", uid, u.Username)
	}
	return fmt.Sprintf("uid=%d", uid)
}

func newRunID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// isTerminal reports whether f is an interactive terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	// A character device is not enough: /dev/null is one.
	return ok && term.IsTerminal(int(f.Fd()))
}
