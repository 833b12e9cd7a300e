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
