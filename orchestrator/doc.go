// Package orchestrator is the core of upgrader: vendor versions, host facts,
// the procedure catalog, plan building, the run lifecycle and the engine
// loop that carries a persisted plan out step by step.
//
// # Pure core, I/O at the edge
//
// Plan building ([BuildPlan]) and lifecycle decisions ([Transition],
// [PastPointOfNoReturn], [NextStep]) are pure functions: values in, values
// out, no clock reads, no files, no processes. Side effects live in package
// steps, persistence in package state; the [Engine] is the thin shell that
// calls them in the right order.
//
// # The engine's duties
//
//  1. Persist before act: a step's intent (step id, attempt, plan
//     fingerprint) is committed, with fsync, before the step's Probe, Apply
//     or Verify runs; its result is committed, in the same transaction as
//     its journal entry, after Verify succeeds.
//  2. A step found "started" on resume is probed, never assumed done or not
//     done: Probe decides whether Apply runs again.
//  3. Every step is idempotent: Probe says whether the effect is in place,
//     Apply converges, Verify proves it and returns the step's outputs.
//  4. The plan that was printed is the plan that runs: a run stores its plan
//     and fingerprint, and resume refuses when the plan rebuilt from the
//     stored facts and today's profile and catalog no longer matches.
//  5. Safety rules are data: skip policy, point of no return and required
//     artifacts are declared on each [StepSpec] and enforced here, not in
//     the steps.
//  6. The FSM library only decides which lifecycle transitions are allowed;
//     nothing runs and nothing is saved inside its callbacks.
//  7. Cancellation never interrupts an irreversible step's own work: its
//     context is not cancelled. A step whose work goes on outside upgrader
//     (a supervised installer) may stop waiting for it when
//     [StepContext.Stopped] closes, returning [ErrDetached]; it stays
//     started, and the next Execute gives it [StepContext.Resumed] so that
//     it follows that work instead of starting it again.
package orchestrator
