#!/usr/bin/env bash
# make demo [PROCEDURE=id]: a guided run of a procedure on the bundled
# simulated host(s), in a scratch copy so it can be run again and again.
# Default: the POM 3.1.1 → 3.1.1 SP1 upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-bin/upgrader}")
procedure=${2:-pom-3.1.1-sp1-upgrade}
work=$(mktemp -d "${TMPDIR:-/tmp}/upgrader-demo.XXXXXX")

banner() { if [ -t 1 ]; then printf '\n\033[1m== %s ==\033[0m\n' "$1"; else printf '\n== %s ==\n' "$1"; fi; }
say() { printf '(%s)\n' "$*"; }
# host NAME: set up a simulated host and point upgrader at it.
host() {
	go run ./testdata/simhost/mksim "$1" "$work/$1" >/dev/null
	echo 0.3 >"$work/$1/root/sim/control/delay" # slow enough to watch the installers
	export UPGRADER_PROFILE=$work/$1/profile.yaml UPGRADER_STATE_DIR=$work/$1/state
}
# up ARGS: show and run an upgrader command; EXPECT=code allows that exit code.
up() {
	echo; echo "\$ upgrader $*"
	set +e; "$bin" "$@"; local rc=$?; set -e
	if [ "$rc" != 0 ] && [ "$rc" != "${EXPECT:-0}" ]; then echo "demo: exit $rc" >&2; exit "$rc"; fi
	return 0
}
operator() { say "the operator: $*"; "$work/$1/root/sim/bin/operator" "${@:2}"; }
fingerprint() { "$bin" plan -o json "$@" | sed -n 's/.*"fingerprint": "sha256:\([0-9a-f]\{16\}\).*/\1/p'; }

case $procedure in
pom-3.1.1-sp1-upgrade)
	# With an OpenSSH server here, MPP mpp2 runs on its own "server" (a
	# local sshd on 127.0.0.2) and upgrader changes it over SSH.
	remote_mpp=
	if [ -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
		go build -o "$work/mksim" ./testdata/simhost/mksim
		"$work/mksim" -serve-mpps pom "$work/pom" >/dev/null &
		mksim_pid=$!
		trap 'kill "$mksim_pid" 2>/dev/null; wait "$mksim_pid" 2>/dev/null' EXIT
		for _ in $(seq 200); do [ -e "$work/pom/mpp-sshd.ready" ] && break; sleep 0.05; done
		[ -e "$work/pom/mpp-sshd.ready" ] || { echo "demo: the MPP's sshd did not start" >&2; exit 1; }
		remote_mpp=$(cut -d' ' -f3 "$work/pom/mpp-sshd.ready")
		echo 0.3 >"$work/pom/root/sim/control/delay"
		export UPGRADER_PROFILE=$work/pom/profile.yaml UPGRADER_STATE_DIR=$work/pom/state
	else
		host pom
	fi
	banner "A simulated POM 3.1.1 server in $work/pom"
	grep POMVersion "$work/pom/root/opt/Avaya/avpom/POManager/config/version.properties"
	if [ -n "$remote_mpp" ]; then
		echo "MPPs: mpp1 on this server (local files); mpp2 on its own server, $(cut -d' ' -f2 "$work/pom/mpp-sshd.ready") over SSH" \
			"(a local sshd; its host key in root/etc/upgrader/ssh/known_hosts)"
	else
		echo "MPPs: mpp1 and mpp2 on this server (local files): no OpenSSH server here (or not root) to put one on its own server"
	fi
	echo "media: $(ls "$work/pom/root/media" | paste -sd" " -)"
	banner "1. Before the window: the dry-run plan (changes nothing)"
	up plan
	fp=$(fingerprint)
	banner "2. What if the server were still on 3.1.0?"
	EXPECT=3 up plan --assume pom.version=3.1.0 -o json >/dev/null
	"$bin" plan --assume pom.version=3.1.0 | grep -A3 '^BLOCKERS' || true
	banner "3. The guided upgrade"
	if [ -t 0 ]; then
		say "the run stops at the operator gate at the end: type yes there"
		EXPECT=5 up run --expect-fingerprint "$fp"
		"$bin" status -o json | grep -q '"state": "completed"' || up resume --yes
	else
		up run --expect-fingerprint "$fp" --yes
	fi
	banner "4. The result"
	grep POMVersion "$work/pom/root/opt/Avaya/avpom/POManager/config/version.properties"
	echo "mpp1 mppconfig.xml changes (original kept as mppconfig.xml.upgrader-orig):"
	diff "$work/pom/root/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml.upgrader-orig" \
		"$work/pom/root/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml" || true
	if [ -n "$remote_mpp" ]; then
		echo "mpp2 (changed over SSH) mppconfig.xml changes, on its server:"
		diff "$remote_mpp/config/mppconfig.xml.upgrader-orig" "$remote_mpp/config/mppconfig.xml" || true
		echo "upgrader's copies of the originals: $(ls "$UPGRADER_STATE_DIR"/artifacts/*/ | paste -sd' ' -)"
	fi
	echo "database backup: $(ls "$work/pom/root/var/backups/upgrader")"
	echo "service log: $(grep service "$work/pom/root/var/log/sim-ledger.log" | paste -sd, -)"
	up journal
	;;
pom-3.1.1-sp1-install)
	host pombare
	banner "A server with Experience Portal 7.2 and no POM: $work/pombare"
	up plan
	banner "The install"
	up run --yes
	grep POMVersion "$work/pombare/root/opt/Avaya/avpom/POManager/config/version.properties"
	;;
pc-4.1.2-upgrade)
	host pc41
	banner "A Proactive Contact 4.1 server: $work/pc41"
	up plan
	banner "What if it ran 4.1.1? (no database step)"
	up plan --assume pc.version=4.1.1 --assume components=agent-api | sed -n '/^STEPS/,/^$/p'
	banner "The upgrade"
	up run --yes
	;;
pc-4.1.2-install)
	host pcbare
	banner "A bare IBM x3650 M2: $work/pcbare"
	up plan --with supervisor,agent
	banner "The install"
	say "no terminal here: the plan's fingerprint is the consent to exactly that plan"
	EXPECT=5 up run --with supervisor,agent --expect-fingerprint "$(fingerprint --with supervisor,agent)" </dev/null
	operator pcbare install-linux-es 4.1.2
	EXPECT=5 up resume --yes
	say "the host rebooted; upgrader resumes (the daemon does this at boot)"
	up resume --yes
	;;
pc-4.1.2-migrate)
	host x3650
	target_profile=$UPGRADER_PROFILE target_state=$UPGRADER_STATE_DIR
	host dl385
	banner "The old server, an HP ProLiant DL385 G5 with PC 4.1: $work/dl385"
	up plan
	banner "On the old server: the backup, then the hand-over"
	EXPECT=5 up run --yes
	up export --out "$work/run.json"
	say "copy the run and the backup to the IBM x3650 M2"
	mkdir -p "$work/x3650/root/var/backups/upgrader"
	cp -p "$work"/dl385/root/var/backups/upgrader/*.tar.gz "$work/x3650/root/var/backups/upgrader/"
	export UPGRADER_PROFILE=$target_profile UPGRADER_STATE_DIR=$target_state
	banner "On the new server, an IBM System x3650 M2"
	up import "$work/run.json"
	EXPECT=5 up resume </dev/null
	operator x3650 install-linux-es 4.1.2
	EXPECT=5 up resume --yes
	say "the host rebooted; upgrader resumes (the daemon does this at boot)"
	up resume --yes
	up journal
	;;
*)
	echo "demo: unknown procedure $procedure; try: $("$bin" procedures | cut -d' ' -f1 | paste -sd' ' -)" >&2
	exit 2
	;;
esac

banner "Try it yourself"
echo "export UPGRADER_PROFILE=$UPGRADER_PROFILE UPGRADER_STATE_DIR=$UPGRADER_STATE_DIR"
echo "$bin status; $bin journal -o json; $bin lifecycle --mermaid"
