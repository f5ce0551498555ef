#!/bin/sh
# fileward package: after removal.
# deb postrm:  $1 = remove | purge | upgrade | failed-upgrade | abort-install | abort-upgrade | disappear
# rpm %postun: $1 = how many fileward packages remain (0 = erase, 1 = upgrade)
#
# remove (and rpm erase): disable the unit, keep the data: the spool in
#   /var/lib/fileward still holds what was not delivered, and a reinstall
#   ships it.
# purge (deb only): delete the data, the logs and /etc/fileward.
#   rpm has no purge: rm -rf /var/lib/fileward /var/log/fileward /etc/fileward by hand.
set -e

unit=fileward.service
wants=/etc/systemd/system/multi-user.target.wants/$unit
data=/var/lib/fileward

disable() {
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable "$unit" >/dev/null 2>&1 || true
	fi
	rm -f "$wants" # systemctl may be gone, or refuse offline
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
}

case "${1:-}" in
remove | 0)
	disable
	if [ -d "$data" ]; then
		echo "fileward: the spool in $data was kept; purge the package (or rm -rf $data) to delete it."
	fi
	;;
purge)
	disable
	rm -rf "$data" /var/log/fileward /etc/fileward
	;;
upgrade | 1)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	;;
esac
exit 0
