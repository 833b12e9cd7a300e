#!/bin/sh
# upgrader package, after an install or upgrade (deb postinst configure,
# rpm %post). Creates upgrader's directories and tells systemd about the
# unit where systemd runs. It never starts or restarts the daemon: the site
# writes /etc/upgrader/site.yaml first, and a restart is the site's call
# while a run may be in flight. DPKG_ROOT: dpkg --root without a chroot.
set -e
case "$1" in
configure | 1 | 2) ;; # deb: configure; rpm: 1 install, 2 upgrade
*) exit 0 ;;
esac
root=${DPKG_ROOT:-}
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles ${root:+--root="$root"} --create upgrader.conf
else
	install -d -m 0700 "$root/var/lib/upgrader"
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if systemctl is-active --quiet upgrader.service; then
		echo "upgrader: the daemon still runs the previous version; once no run is in flight (upgrader status): systemctl restart upgrader"
	fi
fi
if [ ! -e "$root/etc/upgrader/site.yaml" ]; then
	echo "upgrader: next, write /etc/upgrader/site.yaml from /etc/upgrader/site.yaml.example, check it with 'upgrader plan', then 'systemctl enable --now upgrader'"
fi
exit 0
