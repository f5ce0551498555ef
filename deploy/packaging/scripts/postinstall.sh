#!/bin/sh
# fileward package: after install or upgrade.
# deb postinst: $1 = configure, $2 = the previously configured version ("" on a first install)
# rpm %post:    $1 = how many fileward packages are installed now (1 = install, 2 = upgrade)
#
# First install: enable fileward.service for the next boot, but do not start
# it: the packaged config ships example sinks, and the admin sets the real ones
# first. Upgrade: restart the agent if it was running (the spool is kept and the
# new binary reads it). Without a running systemd (a container, a chroot), say
# so and carry on: a maintainer script that fails leaves a half-installed package.
set -e

unit=fileward.service
data=/var/lib/fileward
marker=$data/.package-removed   # left by preremove on remove: a later install is a first install again

case "${1:-}" in
configure) if [ -z "${2:-}" ] || [ -e "$marker" ]; then action=install; else action=upgrade; fi ;;
1) action=install ;;
[0-9]*) action=upgrade ;;
*) exit 0 ;; # abort-upgrade, abort-remove, ...: nothing was changed
esac
rm -f "$marker"

# The spool and cursors hold paths and user names: root only.
mkdir -p "$data"
chmod 0700 "$data"

have_systemctl=no
command -v systemctl >/dev/null 2>&1 && have_systemctl=yes
systemd_running=no
[ -d /run/systemd/system ] && systemd_running=yes

if [ "$systemd_running" = yes ]; then
	systemctl daemon-reload || true
fi

if [ "$action" = install ]; then
	if [ "$have_systemctl" = yes ] && systemctl enable "$unit" >/dev/null 2>&1; then
		echo "fileward: $unit is enabled (it starts at the next boot) but was not started."
	else
		echo "fileward: could not enable $unit (no systemctl here?): enable it yourself."
	fi
	echo "fileward: set your sinks in /etc/fileward/config.yaml (credentials in /etc/fileward/fileward.env),"
	echo "fileward: check them with: fileward check-config -c /etc/fileward/config.yaml"
	if [ "$systemd_running" = yes ]; then
		echo "fileward: then start it: systemctl start fileward"
	else
		echo "fileward: systemd is not running here (a container?): nothing was started."
		echo "fileward: to run it without systemd: /usr/bin/fileward run -c /etc/fileward/config.yaml"
	fi
	exit 0
fi

# Upgrade.
if [ "$systemd_running" = yes ]; then
	if systemctl is-active --quiet "$unit"; then
		if systemctl restart "$unit"; then
			echo "fileward: restarted $unit on the new version; the spool was kept."
		else
			echo "fileward: restarting $unit failed: see journalctl -u fileward" >&2
		fi
	else
		echo "fileward: $unit was not running: not started."
	fi
else
	echo "fileward: systemd is not running here (a container?): restart fileward yourself to run the new version."
fi
exit 0
