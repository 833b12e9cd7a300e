#!/bin/sh
# upgrader package, after a removal (deb postrm remove or purge, rpm
# %postun 0). /var/lib/upgrader is the record of every run, the one a
# failed upgrade is recovered from: it is never deleted, not even by a
# purge, unless it is empty. DPKG_ROOT: dpkg --root without a chroot.
set -e
root=${DPKG_ROOT:-}
state=$root/var/lib/upgrader
case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
fi
if [ "$1" = purge ]; then
	rmdir "$state" 2>/dev/null || true
	rmdir "$root/run/upgrader" 2>/dev/null || true
fi
if [ -d "$state" ]; then
	echo "upgrader: kept $state, the record of every run; delete it by hand once no run's record is needed"
fi
exit 0
