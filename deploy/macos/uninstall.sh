#!/bin/bash
# Removes the Fileward agent installed by the .pkg (build-pkg.sh):
#   sudo /usr/local/share/fileward/uninstall.sh            keeps the spool and the config
#   sudo /usr/local/share/fileward/uninstall.sh --purge    deletes them and the logs too
# Through an MDM, run it as a script payload. The PPPC profile is removed with
# the MDM profile, not here.
set -euo pipefail

purge=no
case "${1:-}" in
--purge) purge=yes ;;
"") ;;
*) echo "uninstall.sh: unknown argument $1 (--purge deletes the data too)" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "uninstall.sh: run it as root (sudo)" >&2
	exit 1
fi

label=com.fileward.agent
if launchctl print "system/$label" >/dev/null 2>&1; then
	# SIGTERM: the agent flushes its pipeline into the spool before exiting.
	launchctl bootout "system/$label" || true
fi
rm -f /Library/LaunchDaemons/com.fileward.agent.plist /usr/local/bin/fileward
rm -rf /usr/local/share/fileward
pkgutil --forget "$label" >/dev/null 2>&1 || true

if [ "$purge" = yes ]; then
	rm -rf /usr/local/var/fileward /usr/local/etc/fileward /var/log/fileward
	echo "fileward: removed, with its data, config and logs"
else
	echo "fileward: removed; kept /usr/local/var/fileward (spool), /usr/local/etc/fileward and /var/log/fileward"
	echo "fileward: (uninstall.sh --purge deletes them)"
fi
