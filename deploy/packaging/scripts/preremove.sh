#!/bin/sh
# fileward package: before removal.
# deb prerm:  $1 = remove | upgrade | deconfigure | failed-upgrade
# rpm %preun: $1 = how many fileward packages remain (0 = erase, 1 = upgrade)
#
# On removal, stop the agent: SIGTERM makes it flush into the spool and try
# the sinks for agent.shutdown_timeout, so what it has not delivered stays in
# /var/lib/fileward. On upgrade, nothing: postinstall restarts it.
set -e

unit=fileward.service
case "${1:-}" in
remove | 0) ;;
*) exit 0 ;;
esac

# Tell a later install that it is a first install again (deb cannot: its
# postinst gets the last configured version either way). Written before dpkg
# removes the files, so /var/lib/fileward is never empty and stays.
if [ -d /var/lib/fileward ]; then
	: >/var/lib/fileward/.package-removed
fi

if [ -d /run/systemd/system ]; then
	systemctl stop "$unit" || echo "fileward: stopping $unit failed: see journalctl -u fileward" >&2
else
	echo "fileward: systemd is not running here: nothing to stop (stop fileward yourself if you started it)."
fi
exit 0
