#!/usr/bin/env bash
# make bench: engine overhead per step on plans of 50 no-op steps,
# against the raw fsync floor (200 B + fdatasync) on the same disk, in the
# same run. Prints the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export TMPDIR=${TMPDIR:-/tmp}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench 'BenchmarkEngineNoopSteps$' -benchtime 40x ./orchestrator/ | tee -a "$out"
go test -run '^$' -bench 'BenchmarkFsyncFloor$' -benchtime 3000x ./orchestrator/ | tee -a "$out"
awk '
	/^BenchmarkEngineNoopSteps/ { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/step") step = $i }
	/^BenchmarkFsyncFloor/      { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") floor = $i }
	END {
		if (!step || !floor) { print "bench: missing results" > "/dev/stderr"; exit 1 }
		printf "\nengine: %.0f µs per step; fsync floor (200 B + fdatasync): %.0f µs; ratio %.1fx\n", step/1000, floor/1000, step/floor
		printf "(each step commits twice, intent and result, at two fsyncs per bbolt commit, then snapshots the state: file and directory fsynced: 6x is the floor for this design)\n"
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

# Hashing a 300 MB file: upgrader's SHA-256 against openssl and sha256sum on
# the same file, in the same run, warm cache for all (best of 3 each).
media=$(mktemp "${TMPDIR}/upgrader-bench-XXXXXX.iso")
trap 'rm -f "$out" "$media"' EXIT
head -c 300M /dev/urandom >"$media"
cat "$media" >/dev/null
best_ms() {
	local best=999999 start end ms
	for _ in 1 2 3; do
		start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N)
		ms=$(( (end - start) / 1000000 )); [ "$ms" -lt "$best" ] && best=$ms
	done
	echo "$best"
}
openssl_ms=$(best_ms openssl dgst -sha256 "$media")
sha256sum_ms=$(best_ms sha256sum "$media")
go_ns=$(UPGRADER_BENCH_FILE=$media go test -run '^$' -bench 'BenchmarkHashFile$' -benchtime 3x ./steps/ | awk '/^BenchmarkHashFile/ { print $3 }')
go_ms=$(( ${go_ns%.*} / 1000000 ))
awk -v g="$go_ms" -v o="$openssl_ms" -v s="$sha256sum_ms" 'BEGIN {
	printf "\nSHA-256 of 300 MB: upgrader %d ms (%.0f MB/s), openssl %d ms, sha256sum %d ms; upgrader/openssl %.2fx, upgrader/sha256sum %.2fx (target: within 10%% of openssl)\n",
		g, 300 * 1.048576 * 1000 / g, o, s, g / o, g / s }'

# The daemon at rest: resident memory and CPU over 5 idle seconds (no
# polling: an idle daemon should use no CPU at all).
dwork=$(mktemp -d "${TMPDIR}/upgrader-bench-daemon-XXXXXX")
go run ./testdata/simhost/mksim pom "$dwork" >/dev/null
bin/upgrader daemon --profile "$dwork/profile.yaml" --state-dir "$dwork/state" --socket "$dwork/run/upgrader.sock" >/dev/null 2>&1 &
dpid=$!
for _ in $(seq 100); do [ -S "$dwork/run/upgrader.sock" ] && break; sleep 0.1; done
sleep 1
ticks() { awk '{ print $14 + $15 }' "/proc/$dpid/stat"; }
t0=$(ticks); sleep 5; t1=$(ticks)
rss_kb=$(awk '/^VmRSS/ { print $2 }' "/proc/$dpid/status")
kill "$dpid"; wait "$dpid" 2>/dev/null || true
rm -rf "$dwork"
printf '\ndaemon idle: RSS %d.%d MB, CPU %d ticks (1/100 s) in 5 s (targets: under 20 MB, 0 ticks)\n' \
	$((rss_kb / 1024)) $(((rss_kb % 1024) * 10 / 1024)) $((t1 - t0))
