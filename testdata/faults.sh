#!/usr/bin/env bash
# make faults: the whole fault-injection and hostile-input suite, at full
# size (UPGRADER_FAULTS=full), then one summary line per family. `make test`
# runs a seeded sample of the same tests.
#   UPGRADER_FAULT_SEED=N   replay the random cases of a run (its seed is printed)
#   FUZZTIME=10s            how long each fuzz target runs
set -uo pipefail
cd "$(dirname "$0")/.."
export UPGRADER_FAULTS=full
fuzztime=${FUZZTIME:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0

run() { # title, go test arguments...
	local title=$1
	shift
	echo "== $title"
	go test -count=1 -v -timeout 90m "$@" 2>&1 | tee -a "$log" | grep -E '^(--- FAIL|FAIL|ok|panic:)|^[a-z][a-z -]*( \([^)]*\))?: [0-9]'
	if [ "${PIPESTATUS[0]}" -ne 0 ]; then
		failed=1
	fi
}

run "corrupt state" ./state/ -run 'TestCorruptStateDetectedAtOpen|TestSnapshotAfterEachCompletedStep|TestOpenSchema|TestOpenDamagedFile'
run "full disk, concurrent open" ./state/ -run 'TestDiskFullAtFirstCommit|TestOpenWhileCommitting'
run "lifecycle model" ./orchestrator/ -run 'TestLifecycleModel'
run "hostile input" ./steps/... ./orchestrator/... -run 'Hostile|Refuses|Limits|MPPConfigReplaced'
run "crashes, upgrader killed alone, torn artifacts, secrets" ./cmd/upgrader/ -run 'TestFaultPointsEveryProcedure|TestFaultDoubleCrash|TestCrashResumeEveryPoint|TestUpgraderKilledAlone|TestTornArtifacts|TestRestoreStateAfterDamage|TestSecretsCanary|TestDaemon'

run "power cuts (lossy disk)" -p 1 ./testdata/lossyfs/ ./state/securefs/ ./cmd/upgrader/ -run 'TestPowerCut|Survives|Lost|Kept|Gone|Undone|Prefix|Torn|ChildProcessSync|StaleMount'

# Fuzzing: every target for a bounded time.
echo "== fuzzing ($fuzztime per target)"
targets=0 execs=0 fuzzfailed=0
while read -r pkg target; do
	out=$(go test "$pkg" -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" 2>&1)
	status=$?
	n=$(printf '%s\n' "$out" | sed -n 's/.*execs: \([0-9]*\).*/\1/p' | tail -1)
	printf '%s\n' "$out" >>"$log"
	targets=$((targets + 1)) execs=$((execs + ${n:-0}))
	if [ $status -ne 0 ]; then
		failed=1 fuzzfailed=$((fuzzfailed + 1))
		echo "--- FAIL fuzz $pkg $target"
		printf '%s\n' "$out" | tail -20
	else
		echo "ok   fuzz $pkg $target: ${n:-0} execs"
	fi
done < <(grep -l '^func Fuzz' $(git ls-files '*_test.go') | while read -r f; do
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do echo "./$(dirname "$f")/ $t"; done
done)
echo "fuzzing: $targets targets ($fuzztime each, seed corpora in testdata/fuzz), $execs executions, $fuzzfailed failures" | tee -a "$log"

echo
echo "== summary"
for family in 'fault points' 'double crash' 'mid-effect kills' 'upgrader killed alone' 'corrupt state' 'full disk' 'concurrent open' 'torn artifacts' 'lifecycle model' 'fuzzing' 'hostile input' 'secrets canary'; do
	grep -E "^$family( \([^)]*\))?: " "$log" | sort -u
done
if [ $failed -ne 0 ]; then
	echo "make faults: FAILED (full output above)"
	exit 1
fi
