package orchestrator

import (
	"fmt"
	"strings"
)

// OutcomeClass says where a run stands, as the operator must act on it.
type OutcomeClass string

const (
	OutcomeRunning     OutcomeClass = "running"     // a step is being carried out now
	OutcomeDone        OutcomeClass = "done"        // every step done or skipped
	OutcomeGate        OutcomeClass = "gate"        // waits for an operator: a gate, or consent before the point of no return
	OutcomeReboot      OutcomeClass = "reboot"      // waits for the host to come back
	OutcomeHandOver    OutcomeClass = "hand-over"   // the next step runs on the other server of a migration
	OutcomeFailed      OutcomeClass = "failed"      // a step failed
	OutcomeBlocked     OutcomeClass = "blocked"     // preflight found a blocker
	OutcomeAborted     OutcomeClass = "aborted"     // stopped for good by an operator
	OutcomeExported    OutcomeClass = "exported"    // carried on on another server
	OutcomeInterrupted OutcomeClass = "interrupted" // nothing executes it: upgrader stopped (a crash, Ctrl-C, a reboot) and resume carries it on
)

// Outcome is a run's class, the step it concerns, and the next action.
type Outcome struct {
	Class OutcomeClass `json:"class"`
	// Step is the step the run is at: the running, waiting, failed or
	// next one; "" when the run is over.
	Step string `json:"step,omitempty"`
	// PointOfNoReturn says the run waits for consent before its first
	// irreversible step (Class gate).
	PointOfNoReturn bool   `json:"point_of_no_return,omitempty"`
	Error           string `json:"error,omitempty"`
	// HandOverTo is the role of the server the next step runs on.
	HandOverTo string `json:"hand_over_to,omitempty"`
	Next       Next   `json:"next"`
}

// Next is what the operator does now: an action, the command to type, and
// the other commands that are allowed here.
type Next struct {
	Action  string   `json:"action"` // none, watch, confirm, resume, retry, wait-reboot, export, plan
	Command string   `json:"command"`
	Or      []string `json:"or,omitempty"`
}

// Text is the Next: line: the command, then its alternatives.
func (n Next) Text() string {
	s := n.Command
	for _, o := range n.Or {
		s += "   (or: " + o + ")"
	}
	return s
}

// Classify says where a run stands for the operator: pure, from the run,
// its records, this server's role in a two-server procedure, and whether
// a step is being carried out right now (busy).
func Classify(run Run, recs []StepRecord, role string, busy bool) Outcome {
	i := NextStep(recs)
	var spec StepSpec
	if i >= 0 && i < len(run.Plan.Steps) {
		spec = run.Plan.Steps[i]
	}
	o := Outcome{Step: spec.ID, Error: recordError(recs, i)}
	prof := ""
	if run.Profile != "" {
		prof = " --profile " + run.Profile
	}
	past, _ := PastPointOfNoReturn(run.Plan, recs)
	skip := func() string {
		if spec.Skip != SkipWithReason {
			return ""
		}
		return fmt.Sprintf("upgrader skip %s --reason \"...\"", spec.ID)
	}
	abort := func() string {
		if past {
			return ""
		}
		return "upgrader abort --reason \"...\""
	}
	or := func(cmds ...string) []string {
		var out []string
		for _, c := range cmds {
			if c != "" {
				out = append(out, c)
			}
		}
		return out
	}
	switch {
	case busy:
		o.Class = OutcomeRunning
		o.Next = Next{Action: "watch", Command: "upgrader watch   (it is carrying out " + spec.ID + ")"}
		return o
	case run.State == StateCompleted:
		o.Class, o.Step, o.Error = OutcomeDone, "", ""
		o.Next = Next{Action: "none", Command: "nothing: the run is complete (upgrader journal shows what was done)"}
	case run.State == StateAborted:
		o.Class, o.Error = OutcomeAborted, run.Reason
		o.Next = Next{Action: "plan", Command: "nothing: the run was aborted; plan again with upgrader plan" + prof}
	case run.State == StateExported:
		o.Class, o.Error = OutcomeExported, ""
		o.Next = Next{Action: "none", Command: "nothing here: the run goes on on the server it was imported on"}
	case run.State == StateBlocked:
		o.Class, o.Step, o.Error = OutcomeBlocked, "", run.Reason
		o.Next = Next{Action: "plan", Command: "fix the blockers, then: upgrader plan" + prof + " && upgrader run" + prof}
	case run.State == StateFailed:
		o.Class = OutcomeFailed
		o.Next = Next{Action: "retry", Command: "fix the cause shown above, then: upgrader retry", Or: or(skip(), abort())}
	case run.State == StateRebooting:
		o.Class = OutcomeReboot
		o.Next = Next{Action: "wait-reboot",
			Command: "the host was asked to reboot; once it is back up: upgrader resume (the daemon, started at boot, carries on by itself)"}
	case run.State == StateWaitingOperator:
		o.Class = OutcomeGate
		o.PointOfNoReturn = spec.Kind != KindGate && spec.Irreversible
		confirm := "upgrader confirm " + spec.ID
		for _, f := range spec.Attest {
			confirm += " --attest " + f + "=VALUE"
		}
		if o.PointOfNoReturn {
			o.Next = Next{Action: "confirm", Command: fmt.Sprintf("check the verified backup and media (upgrader status), then consent to the point of no return: %s", confirm),
				Or: or(abort())}
		} else {
			o.Next = Next{Action: "confirm", Command: fmt.Sprintf("do the operator step %q, then: %s", spec.Title, confirm), Or: or(skip(), abort())}
		}
	case i >= 0 && spec.RunsOn != "" && spec.RunsOn != role && run.State == StateRunning:
		o.Class, o.HandOverTo = OutcomeHandOver, spec.RunsOn
		o.Next = Next{Action: "export", Command: handOverCommand(run, recs)}
	default: // planned, preflight, running with nothing executing it
		o.Class = OutcomeInterrupted
		if i >= 0 && recs[i].Status == StepStarted {
			o.Next = Next{Action: "resume", Command: "upgrader resume   (it probes " + spec.ID + ", which was in flight, before anything else)"}
		} else {
			o.Next = Next{Action: "resume", Command: "upgrader resume   (it carries the run on from " + fromStep(spec.ID) + ")"}
		}
	}
	return o
}

func fromStep(s string) string {
	if s == "" {
		return "where it stopped"
	}
	return s
}

// handOverCommand tells the operator how to carry the run to the server
// its next step runs on.
func handOverCommand(run Run, recs []StepRecord) string {
	var files []string
	for _, r := range recs {
		for _, a := range r.Outputs.Artifacts {
			if a.Dir {
				files = append(files, a.Path+"/ (the whole directory)")
			} else {
				files = append(files, a.Path)
			}
		}
	}
	file := "/var/tmp/upgrader-" + run.ID + ".json"
	copyWhat := "it"
	if len(files) > 0 {
		copyWhat = "it and " + strings.Join(files, ", ")
	}
	return fmt.Sprintf("the next step runs on %s. Here: upgrader export --out %s; copy %s to the same paths there; "+
		"there: upgrader import %s --profile SITE.yaml && upgrader resume", RoleServer(NextRole(run, recs)), file, copyWhat, file)
}

// NextRole is the role of the server the run's next step runs on, "" when
// it runs anywhere (or nothing is left).
func NextRole(run Run, recs []StepRecord) string {
	if i := NextStep(recs); i >= 0 && i < len(run.Plan.Steps) {
		return run.Plan.Steps[i].RunsOn
	}
	return ""
}

// RoleServer names a migration's server for people.
func RoleServer(role string) string {
	if role == RoleTarget {
		return "the new server (IBM System x3650 M2)"
	}
	return "the old server (HP ProLiant DL385)"
}
