#!/bin/sh
# upgrader package, before a removal (deb prerm remove, rpm %preun 0).
# Refuses while a run is in flight: without the binary the run could not be
# resumed, its supervised jobs could not report, and the site would be left
# half-upgraded. The state directory is never removed either way (see
# postremove). An upgrade of the package is not refused. DPKG_ROOT: dpkg
# --root without a chroot.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
root=${DPKG_ROOT:-}
state=$root/var/lib/upgrader
if [ -e "$state/state.db" ] && [ -z "${UPGRADER_FORCE_REMOVE:-}" ]; then
	if out=$("$root/usr/sbin/upgrader" status -o json --state-dir "$state" --socket "$root/run/upgrader/upgrader.sock" 2>&1); then
		# The run's own state is the first "state" key (steps come later).
		run_state=$(printf '%s\n' "$out" | sed -n 's/^ *"state": "\([a-z-]*\)".*/\1/p' | head -n 1)
		run=$(printf '%s\n' "$out" | sed -n 's/^ *"run": "\([^"]*\)".*/\1/p' | head -n 1)
		case "$run_state" in
		completed | aborted | blocked | exported) ;;
		*)
			echo "upgrader: run $run is $run_state: removing the package now would strand it. Finish it (upgrader status says what is next) or abort it, then remove the package. Nothing was removed." >&2
			exit 1
			;;
		esac
	else
		case "$out" in
		*"no runs in"*) ;;
		*)
			echo "upgrader: cannot tell whether a run is in flight in $state: $out" >&2
			echo "upgrader: fix that, or set UPGRADER_FORCE_REMOVE=1 to remove the package anyway (the state directory is kept). Nothing was removed." >&2
			exit 1
			;;
		esac
	fi
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl disable --now --quiet upgrader.service 2>/dev/null || true
fi
exit 0
