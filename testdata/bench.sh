#!/usr/bin/env bash
# make bench: engine overhead per step on plans of 50 no-op steps, with an
# empty state and with 1,000 finished runs already in it, against the raw
# fsync floor (200 B + fdatasync) on the same disk, in the same run. Prints
# the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
export TMPDIR=${TMPDIR:-/tmp}
out=$(mktemp)
# The benchmarks' own files (the state with 1,000 runs) go in here.
btmp=$(mktemp -d "${TMPDIR}/upgrader-bench-XXXXXX")
trap 'rm -rf "$out" "$btmp"' EXIT
TMPDIR=$btmp go test -run '^$' -bench 'BenchmarkEngineSideBySide$' -benchtime 30x ./orchestrator/ | tee -a "$out"
TMPDIR=$btmp go test -run '^$' -bench 'BenchmarkBoltCommit$' -benchtime 1000x ./state/ | tee -a "$out"
TMPDIR=$btmp go test -run '^$' -bench 'BenchmarkFsyncFloor$' -benchtime 1000x ./orchestrator/ | tee -a "$out"
awk '
	/^BenchmarkEngineSideBySide/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "ns/step-empty") empty = $i; if ($(i+1) == "ns/step-1000runs") full = $i; if ($(i+1) == "ns/fsync-floor") floor = $i } }
	/^BenchmarkBoltCommit/       { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") commit = $i }
	/^BenchmarkFsyncFloor/       { for (i = 1; i <= NF; i++) if ($(i+1) == "ns/op") floor2 = $i }
	END {
		if (!empty || !full || !floor || !commit || !floor2) { print "bench: missing results" > "/dev/stderr"; exit 1 }
		printf "\nengine per step (50 no-op steps; taking turns with the floor in the same loop): empty state %.0f µs, %.1fx the fsync floor (200 B + fdatasync, %.0f µs)\n", empty/1000, empty/floor, floor/1000
		printf "  with 1,000 finished runs in the state: %.0f µs, %.1fx the floor, %.2fx the empty state (targets 4x, 1.2x)\n", full/1000, full/floor, full/empty
		printf "one bbolt commit of a small value (pages, fdatasync, meta page, fdatasync): %.0f µs, %.1fx the floor measured beside it (%.0f µs); a step commits once (its intent, with the result of the step before): 2 fdatasyncs and the pages of its run\n", commit/1000, commit/floor2, floor2/1000
	}' "$out"

# Resume latency: a daemon started on a state with 1,000 finished runs and
# an active run, from its process start to the next step's start in the
# journal, beside the cost of opening that state (see testdata/resumebench).
rwork=$(mktemp -d "${btmp}/resume-XXXXXX")
go build -tags failpoints -o "$rwork/upgrader-fp" ./cmd/upgrader
go run ./testdata/simhost/mksim pom "$rwork/host" >/dev/null
go run ./testdata/resumebench "$rwork/upgrader-fp" "$rwork/host"

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
trap 'rm -rf "$out" "$media" "$btmp"' EXIT
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

# The support bundle: `upgrader bundle` of a synthetic POM host with about
# 500 MB of logs (log4j lines, stack traces, rotated files) against
# `tar czf` of the same log tree (gzip -6), in the same run, warm cache,
# best of 3 each, taking turns, on 2 CPUs (pinned when the machine has
# more). CPU time (getrusage, with tar's gzip) is shown beside: on a busy
# machine the bundle, which wants both CPUs, loses more wall time than tar,
# which wants one.
bwork=$(mktemp -d "${TMPDIR}/upgrader-bench-bundle-XXXXXX")
trap 'rm -rf "$out" "$media" "$bwork" "$btmp"' EXIT
go build -o "$bwork/bundlebench" ./testdata/bundlebench
"$bwork/bundlebench" tree "$bwork/host" 500
logs=$bwork/host/root/opt/Avaya/avpom/POManager/logs
cat "$logs"/* >/dev/null
pin=()
cpus=$(nproc)
if [ "$cpus" -gt 2 ] && command -v taskset >/dev/null; then pin=(taskset -c 0,1); cpus="2 of $cpus"; fi
# once NAME ARGV...: runs ARGV and keeps, for NAME, the best wall time
# (NAME_ms) with its CPU time (NAME_cpu) and the largest peak RSS (NAME_rss,
# kB). tar and the bundle take turns, so that both meet the same load.
tar_ms=999999 bundle_ms=999999 tar_rss=0 bundle_rss=0
once() {
	local name=$1 w c r best rss
	shift
	rm -rf "$bwork/out" "$bwork/tar.tar.gz"
	read -r w c r < <("$bwork/bundlebench" run "${pin[@]}" "$@" 2>"$bwork/err" | sed 's/[a-z_]*=//g') || true
	[ -n "$w" ] || { echo "bench: $* failed:" >&2; cat "$bwork/err" >&2; exit 1; }
	best=${name}_ms rss=${name}_rss
	if [ "$w" -lt "${!best}" ]; then printf -v "${name}_ms" %s "$w"; printf -v "${name}_cpu" %s "$c"; fi
	if [ "$r" -gt "${!rss}" ]; then printf -v "${name}_rss" %s "$r"; fi
}
for _ in 1 2 3; do
	once tar tar czf "$bwork/tar.tar.gz" -C "$(dirname "$logs")" logs
	tar_bytes=$(stat -c %s "$bwork/tar.tar.gz")
	once bundle "$bin" bundle --profile "$bwork/host/profile.yaml" --state-dir "$bwork/state" --out "$bwork/out"
done
archive=$(ls "$bwork"/out/*.tar.gz)
tar tzf "$archive" >/dev/null # plain tar reads it
bundle_bytes=$(stat -c %s "$archive")
awk -v b="$bundle_ms" -v t="$tar_ms" -v bc="$bundle_cpu" -v tc="$tar_cpu" -v bb="$bundle_bytes" -v tb="$tar_bytes" -v rss="$bundle_rss" -v cpus="$cpus" 'BEGIN {
	printf "\nsupport bundle of 500 MB of POM logs (%s CPUs): upgrader bundle %.2f s, tar czf %.2f s: %.1fx faster (target 4x)\n", cpus, b / 1000, t / 1000, t / b
	printf "  CPU time: bundle %.2f s, tar czf %.2f s; archive %.1f MB, tar czf %.1f MB: %+.1f%% (target at most +10%%)\n", bc / 1000, tc / 1000, bb / 1e6, tb / 1e6, (bb / tb - 1) * 100
	printf "  bundle peak RSS %.1f MB (target under 100 MB)\n", rss / 1024 }'

# MPPs on other servers: a plan with 20 remote MPPs against one with 1,
# and the remote edit of one MPP against `ssh cat` + `ssh 'cat > tmp && mv'`,
# on one real sshd on loopback (see testdata/mppbench).
go build -o "$bwork/mppbench" ./testdata/mppbench
"$bwork/mppbench" "$bin" 7

# The database backup: the backup-db step (the real step code, see
# testdata/dbbench) against a default `pg_dump -Fc` of the same ~1.2 GB
# POM-like database, taking turns, and the restore rehearsal beside them.
# The cluster is made once and kept under /var/tmp/upgrader-dbbench
# (DBBENCH_DIR), started for the bench and stopped after it.
dbdir=${DBBENCH_DIR:-/var/tmp/upgrader-dbbench}
# The dumps go to a directory of root's beside it (the cluster's own is the
# postgres user's, which backup-db refuses for a backup).
dbwork=$(mktemp -d "${dbdir}-work-XXXXXX")
trap 'testdata/dbbench/cluster.sh "$dbdir" stop; rm -rf "$out" "$media" "$bwork" "$dbwork"' EXIT
read -r dbport dbpass < <(testdata/dbbench/cluster.sh "$dbdir" | tail -1)
go build -o "$bwork/dbbench" ./testdata/dbbench
"$bwork/dbbench" "$dbport" "$dbpass" "$dbwork" "${DBBENCH_ROUNDS:-3}"
