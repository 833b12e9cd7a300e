#!/usr/bin/env bash
# make demo: a guided POM 3.1.1 → 3.1.1 SP1 upgrade on the bundled simulated
# host, in a scratch copy so it can be run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-bin/upgrader}")
work=$(mktemp -d "${TMPDIR:-/tmp}/upgrader-demo.XXXXXX")
go run ./testdata/simhost/mksim "$work" >/dev/null
echo 0.3 > "$work/root/sim/control/delay" # slow enough to watch the installer
export UPGRADER_PROFILE=$work/profile.yaml UPGRADER_STATE_DIR=$work/state
up() { echo; echo "\$ upgrader $*"; "$bin" "$@"; }
banner() { if [ -t 1 ]; then printf '\n\033[1m== %s ==\033[0m\n' "$1"; else printf '\n== %s ==\n' "$1"; fi; }

banner "A simulated POM 3.1.1 server in $work"
grep POMVersion "$work/root/opt/Avaya/avpom/POManager/config/version.properties"
echo "media: $(ls "$work/root/media" | paste -sd" " -)"

banner "1. Before the window: the dry-run plan (changes nothing)"
up plan
fp=$("$bin" plan -o json | sed -n 's/.*"fingerprint": "sha256:\([0-9a-f]\{16\}\).*/\1/p')

banner "2. What if the server were still on 3.1.0?"
up plan --assume pom.version=3.1.0 | sed -n '1,/^BLOCKERS/d;/^$/q;p' || true

banner "3. The guided upgrade"
if [ -t 0 ]; then
	echo "(the run stops at the operator gate at the end: type yes there)"
	set +e; up run --expect-fingerprint "$fp"; rc=$?; set -e
	if [ $rc = 5 ]; then up resume --yes; fi
else
	up run --expect-fingerprint "$fp" --yes
fi

banner "4. The result"
grep POMVersion "$work/root/opt/Avaya/avpom/POManager/config/version.properties"
echo "mpp1 mppconfig.xml changes (original kept as mppconfig.xml.upgrader-orig):"
diff "$work/root/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml.upgrader-orig" \
	"$work/root/opt/Avaya/ExperiencePortal/mpp1/config/mppconfig.xml" || true
echo "database backup: $(ls "$work/root/var/backups/upgrader")"
echo "service log: $(grep service "$work/root/var/log/sim-ledger.log" | paste -sd, -)"
up journal

banner "Try it yourself"
echo "export UPGRADER_PROFILE=$work/profile.yaml UPGRADER_STATE_DIR=$work/state"
echo "$bin status; $bin journal -o json; $bin lifecycle --mermaid"
