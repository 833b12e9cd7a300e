# Shared helpers of the simulated host's fake vendor tools.
# Control files in $SIM_ROOT/sim/control (each consumed when it fires):
#   pause-at  "NAME:N"  at checkpoint N of tool NAME, write control/paused and sleep until killed
#   fail-at   "NAME:N"  at checkpoint N of tool NAME, fail with exit 1
#   delay     seconds to sleep at every checkpoint (default 0.1)
# Every completed non-idempotent effect is appended to var/log/sim-ledger.log and fsynced.

SIM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIM_CONTROL=$SIM_ROOT/sim/control
SIM_LEDGER=$SIM_ROOT/var/log/sim-ledger.log

# Every tool run appends its argv and environment to sim/control/exec.log, so that tests can
# prove no secret reached a child process.
{ printf 'argv:'; printf ' %q' "$0" "$@"; printf '\n'; env | sed 's/^/env: /'; } >> "$SIM_CONTROL/exec.log"

sim_checkpoint() { # tool n
	local here="$1:$2" delay=0.1
	if [ -f "$SIM_CONTROL/pause-at" ] && [ "$(cat "$SIM_CONTROL/pause-at")" = "$here" ]; then
		mv "$SIM_CONTROL/pause-at" "$SIM_CONTROL/pause-at.hit"
		# Written whole, then renamed: whoever sees the file sees its content.
		echo "$here $$" > "$SIM_CONTROL/paused.tmp"
		mv "$SIM_CONTROL/paused.tmp" "$SIM_CONTROL/paused"
		while :; do sleep 1; done
	fi
	if [ -f "$SIM_CONTROL/fail-at" ] && [ "$(cat "$SIM_CONTROL/fail-at")" = "$here" ]; then
		mv "$SIM_CONTROL/fail-at" "$SIM_CONTROL/fail-at.hit"
		echo "simulated failure at $here" >&2
		exit 1
	fi
	[ -f "$SIM_CONTROL/delay" ] && delay=$(cat "$SIM_CONTROL/delay")
	sleep "$delay"
}

sim_ledger() { # text...
	mkdir -p "$(dirname "$SIM_LEDGER")"
	echo "$*" >> "$SIM_LEDGER"
	sync "$SIM_LEDGER"
}

# sim_put FILE CONTENT: replace a file atomically and durably.
sim_put() {
	mkdir -p "$(dirname "$1")"
	printf '%s\n' "$2" > "$1.sim-tmp"
	sync "$1.sim-tmp"
	mv -f "$1.sim-tmp" "$1"
	sync "$(dirname "$1")"
}

# sim_new_boot_id: the host restarted. The new boot id is derived from the old one, so that
# two runs of the same procedure end on the same host tree.
sim_new_boot_id() {
	local boot=$SIM_ROOT/proc/sys/kernel/random/boot_id h
	h=$( (cat "$boot" 2>/dev/null; echo restarted) | sha256sum)
	sim_put "$boot" "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}
