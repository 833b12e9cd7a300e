# Shared helpers of the simulated host's fake vendor tools.
# Control files in $SIM_ROOT/sim/control (each consumed when it fires):
#   pause-at  "NAME:N"  at checkpoint N of tool NAME, write control/paused and sleep until killed
#   hold-at   "NAME:N"  at checkpoint N of tool NAME, write control/held ("NAME:N pid") and wait
#                       until control/release exists (then remove both and go on)
#   fail-at   "NAME:N"  at checkpoint N of tool NAME, fail with exit 1
#   delay     seconds to sleep at every checkpoint (default 0.1)
# Every completed non-idempotent effect is appended to var/log/sim-ledger.log and fsynced.
#
# Like the vendors' tools, the installers and pg_dump are not idempotent (sim_begin): each
# keeps an in-progress marker in var/lib/sim/inprogress while it works. A second instance
# started beside a live one, or (installers) a run started over the marker of one that was
# interrupted half-way, damages the host: it appends the reason to var/lib/sim/CORRUPTED,
# which no comparison with an undisturbed run survives, and goes on as if nothing happened.

# Plain bash where it does the job: every process a simulated tool starts
# is paid for by every test run (tens of them per run).
# (A fork costs about 3.5 ms here, a tool's whole run 9 ms.)
case ${BASH_SOURCE[0]} in
/*/sim/bin/simlib.sh) SIM_ROOT=${BASH_SOURCE[0]%/sim/bin/simlib.sh} ;;
*) SIM_ROOT=$(cd "${BASH_SOURCE[0]%/*}/../.." && pwd) ;;
esac
SIM_CONTROL=$SIM_ROOT/sim/control
SIM_LEDGER=$SIM_ROOT/var/log/sim-ledger.log

# Every tool run appends its argv and environment to sim/control/exec.log, so that tests can
# prove no secret reached a child process.
{
	printf 'argv:'; printf ' %q' "$0" "$@"; printf '\n'
	# The environment the tool was started with, as the kernel holds it.
	while IFS= read -r -d '' sim_v; do printf 'env: %s\n' "$sim_v"; done < /proc/$$/environ
} >> "$SIM_CONTROL/exec.log"

# sim_is FILE TEXT: FILE exists and its first line is TEXT.
sim_is() {
	local line=
	[ -f "$1" ] || return 1
	IFS= read -r line < "$1" || true
	[ "$line" = "$2" ]
}

sim_checkpoint() { # tool n
	local here="$1:$2" delay=0.1
	if sim_is "$SIM_CONTROL/pause-at" "$here"; then
		mv "$SIM_CONTROL/pause-at" "$SIM_CONTROL/pause-at.hit"
		# Written whole, then renamed: whoever sees the file sees its content.
		echo "$here $$" > "$SIM_CONTROL/paused.tmp"
		mv "$SIM_CONTROL/paused.tmp" "$SIM_CONTROL/paused"
		while :; do sleep 1; done
	fi
	if sim_is "$SIM_CONTROL/hold-at" "$here"; then
		mv "$SIM_CONTROL/hold-at" "$SIM_CONTROL/hold-at.hit"
		echo "$here $$" > "$SIM_CONTROL/held.tmp"
		mv "$SIM_CONTROL/held.tmp" "$SIM_CONTROL/held"
		until [ -f "$SIM_CONTROL/release" ]; do sleep 0.02; done
		rm -f "$SIM_CONTROL/release" "$SIM_CONTROL/held"
	fi
	if sim_is "$SIM_CONTROL/fail-at" "$here"; then
		mv "$SIM_CONTROL/fail-at" "$SIM_CONTROL/fail-at.hit"
		echo "simulated failure at $here" >&2
		# A failure the tool itself reports leaves nothing half-done: it may be run again.
		sim_end
		exit 1
	fi
	[ ! -f "$SIM_CONTROL/delay" ] || IFS= read -r delay < "$SIM_CONTROL/delay" || true
	sleep "$delay"
}

sim_ledger() { # text...
	local new=
	[ -e "$SIM_LEDGER" ] || new=1
	[ -d "${SIM_LEDGER%/*}" ] || mkdir -p "${SIM_LEDGER%/*}"
	echo "$*" >> "$SIM_LEDGER"
	sync "$SIM_LEDGER"
	# A new ledger is made durable in its directory: a power cut must not
	# lose the record of effects that happened.
	[ -z "$new" ] || sync "${SIM_LEDGER%/*}" "${SIM_LEDGER%/*/*}"
}

# sim_put FILE CONTENT: replace a file atomically and durably.
sim_put() {
	[ -d "${1%/*}" ] || mkdir -p "${1%/*}"
	printf '%s\n' "$2" > "$1.sim-tmp"
	sync "$1.sim-tmp"
	mv -f "$1.sim-tmp" "$1"
	sync "${1%/*}"
}

# sim_new_boot_id: the host restarted. The new boot id is derived from the old one, so that
# two runs of the same procedure end on the same host tree.
sim_new_boot_id() {
	local boot=$SIM_ROOT/proc/sys/kernel/random/boot_id h
	h=$( (cat "$boot" 2>/dev/null; echo restarted) | sha256sum)
	sim_put "$boot" "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}

# sim_alive PID START: the process PID still runs and is the one that started at START
# (clock ticks since boot, /proc/PID/stat field 22): pids are reused, zombies do not count.
sim_alive() {
	local want=$2 stat
	IFS= read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
	stat=${stat##*) }
	set -- $stat
	[ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "$want" ]
}

sim_starttime() { # PID
	local stat
	IFS= read -r stat < "/proc/$1/stat" && stat=${stat##*) } && set -- $stat && echo "${20}"
}

# sim_corrupt REASON: the host is damaged.
sim_corrupt() {
	[ -d "$SIM_ROOT/var/lib/sim" ] || mkdir -p "$SIM_ROOT/var/lib/sim"
	echo "$1" >> "$SIM_ROOT/var/lib/sim/CORRUPTED"
	sync "$SIM_ROOT/var/lib/sim/CORRUPTED" "$SIM_ROOT/var/lib/sim"
	sim_ledger "CORRUPTED $1"
}

# sim_begin NAME MODE: the tool starts its non-idempotent work. MODE "exclusive": a second
# instance beside a live one damages the host (two writers of one file); "once": so does a
# run over the marker of an interrupted one (an installer with no rollback).
sim_begin() {
	local marker=$SIM_ROOT/var/lib/sim/inprogress/$1 pid start
	if [ -f "$marker" ]; then
		read -r pid start < "$marker" || true
		if sim_alive "$pid" "$start"; then
			sim_corrupt "$1 started beside a running $1 (pid $pid)"
		elif [ "$2" = once ]; then
			sim_corrupt "$1 run again over an interrupted $1 (pid $pid)"
		fi
	fi
	sim_put "$marker" "$$ $(sim_starttime $$)"
	SIM_BEGUN=$marker
}

# sim_end: the work begun with sim_begin is complete (or cleanly refused).
sim_end() {
	if [ -n "${SIM_BEGUN:-}" ]; then
		rm -f "$SIM_BEGUN"
		sync "${SIM_BEGUN%/*}"
		SIM_BEGUN=
	fi
}

# sim_pgpass_has HOST PORT DB USER: PGPASSFILE has their line (fields
# compared as written, as libpq does short of its * wildcard).
sim_pgpass_has() {
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		[[ $line == "$1:$2:$3:$4:"* ]] && return 0
	done < "$PGPASSFILE"
	return 1
}
