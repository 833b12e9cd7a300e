#!/usr/bin/env bash
# make demo-daemon: the guided POM 3.1.1 → SP1 upgrade through the daemon,
# on the bundled simulated host: start, lose the terminal, watch again.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-bin/upgrader}")
work=$(mktemp -d "${TMPDIR:-/tmp}/upgrader-demo-daemon.XXXXXX")
go run ./testdata/simhost/mksim pom "$work" >/dev/null
echo 0.3 >"$work/root/sim/control/delay"
export UPGRADER_PROFILE=$work/profile.yaml UPGRADER_STATE_DIR=$work/state UPGRADER_SOCKET=$work/run/upgrader.sock
banner() { if [ -t 1 ]; then printf '\n\033[1m== %s ==\033[0m\n' "$1"; else printf '\n== %s ==\n' "$1"; fi; }

banner "1. The daemon (systemd runs it as deploy/upgrader.service; here in the background)"
echo "\$ upgrader daemon --socket $UPGRADER_SOCKET"
"$bin" daemon >"$work/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$UPGRADER_SOCKET" ] && break; sleep 0.1; done

banner "2. Start the upgrade, then lose the terminal during the installer"
echo "\$ upgrader start --yes"
"$bin" start --yes &
starter=$!
for _ in $(seq 200); do grep -q "installer begin" "$work/root/var/log/sim-ledger.log" 2>/dev/null && break; sleep 0.1; done
kill $starter 2>/dev/null; wait $starter 2>/dev/null || true
echo "(the SSH session dropped; the daemon carries on)"

banner "3. Back again: where does it stand?"
echo "\$ upgrader status"
"$bin" status || true
banner "4. Re-attach until it stops"
echo "\$ upgrader watch --yes"
"$bin" watch --yes
echo "\$ upgrader journal"
"$bin" journal
