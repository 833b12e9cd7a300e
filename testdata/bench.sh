#!/usr/bin/env bash
# make bench: engine overhead per step on a plan of 1,000 no-op steps,
# against the raw fsync floor (200 B + fdatasync) on the same disk, in the
# same run. Prints the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export TMPDIR=${TMPDIR:-/tmp}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench 'BenchmarkEngineNoopSteps$' -benchtime 5x ./orchestrator/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkFsyncFloor$' -benchtime 3000x ./orchestrator/ | tee -a "$out"
awk '
	/^BenchmarkEngineNoopSteps/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/step") step = $i }
	/^BenchmarkFsyncFloor/      { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") floor = $i }
	END {
		if (!step || !floor) { print "bench: missing results" > "/dev/stderr"; exit 1 }
		printf "\nengine: %.0f µs per step; fsync floor (200 B + fdatasync): %.0f µs; ratio %.1fx\n", step/1000, floor/1000, step/floor
		printf "(each step commits twice, intent and result, and a bbolt commit costs two fsyncs: 4x is the floor for this design)\n"
	}' "$out"

# The whole process of `upgrader plan` for the bundled POM host, beside
# `true` (the cost of starting any process), averaged over many runs.
bin=bin/upgrader
[ -x "$bin" ] || make -s build
runs=50
avg_ms() {
	local start end
	start=$(date +%s%N)
	for _ in $(seq $runs); do "$@" >/dev/null 2>&1 || true; done
	end=$(date +%s%N)
	echo $(( (end - start) / runs / 1000 ))
}
plan_us=$(avg_ms "$bin" plan --profile testdata/simhost/pom/profile.yaml --state-dir "$(mktemp -d)")
true_us=$(avg_ms /usr/bin/true)
printf '\nupgrader plan (whole process, bundled POM host): %d.%03d ms per run; `/usr/bin/true`: %d.%03d ms (%d runs each; target under 20 ms)\n' \
	$((plan_us / 1000)) $((plan_us % 1000)) $((true_us / 1000)) $((true_us % 1000)) $runs
