#!/usr/bin/env bash
# Builds a signed, notarized installer package for the Fileward agent, ON A MAC
# (pkgbuild, productbuild, productsign, codesign and xcrun notarytool come with Xcode's
# command line tools). It runs from deploy/macos in the repository or from an
# extracted darwin release archive (fileward_VERSION_darwin_ARCH.tar.gz, where this
# script sits next to the binary).
#
#   ./build-pkg.sh --version 1.2.3 \
#       --app-identity "Developer ID Application: Example Corp (TEAMID1234)" \
#       --installer-identity "Developer ID Installer: Example Corp (TEAMID1234)" \
#       --notary-profile fileward-notary        # xcrun notarytool store-credentials fileward-notary ...
#
# Without identities it builds an unsigned package (for a test Mac only: Gatekeeper
# and MDMs refuse it). Output in --out (default ./out):
#   fileward-VERSION.pkg                   the package to deploy through your MDM
#   fileward-pppc.mobileconfig             the Full Disk Access profile with the signed
#                                          binary's code requirement filled in (signed builds)
#
# The package installs (the same paths as com.fileward.agent.plist and the archive):
#   /usr/local/bin/fileward                           the agent (hardened runtime, signed)
#   /Library/LaunchDaemons/com.fileward.agent.plist   the launchd job
#   /usr/local/share/fileward/config.yaml             the example config; postinstall copies it to
#                                                     /usr/local/etc/fileward/config.yaml if none is there
#   /usr/local/share/fileward/uninstall.sh            removes it all (--purge: the data too)
#   /usr/local/share/fileward/LICENSE
# and its postinstall script creates /usr/local/var/fileward (0700) and /var/log/fileward
# and bootstraps the LaunchDaemon (on an upgrade: boots the old one out first).
#
# Deploy the PPPC profile BEFORE the package, or eslogger is refused Full Disk Access
# and the agent backs off until the profile arrives.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version= binary= app_id= inst_id= profile= out=$PWD/out
identifier=com.fileward.agent
while [ $# -gt 0 ]; do
	case $1 in
	--version) version=$2; shift 2 ;;
	--binary) binary=$2; shift 2 ;;
	--app-identity) app_id=$2; shift 2 ;;
	--installer-identity) inst_id=$2; shift 2 ;;
	--notary-profile) profile=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "build-pkg.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

if [ "$(uname -s)" != Darwin ]; then
	echo "build-pkg.sh: needs macOS (pkgbuild, productbuild, productsign, notarytool); this is $(uname -s)" >&2
	exit 1
fi
for tool in pkgbuild productbuild codesign; do
	command -v "$tool" >/dev/null || { echo "build-pkg.sh: $tool not found: install Xcode's command line tools (xcode-select --install)" >&2; exit 1; }
done
if [ -n "$profile" ] && [ -z "$inst_id" ]; then
	echo "build-pkg.sh: --notary-profile needs --installer-identity: Apple notarizes signed packages only" >&2
	exit 2
fi

# Inputs: next to this script (an extracted archive), else the repository's.
binary=${binary:-$here/fileward}
[ -x "$binary" ] || { echo "build-pkg.sh: no fileward binary at $binary (use --binary; build it with GOOS=darwin CGO_ENABLED=0 go build ./agent/cmd/fileward)" >&2; exit 1; }
license=$here/LICENSE
[ -f "$license" ] || license=$here/../../LICENSE
if [ -z "$version" ]; then
	version=$("$binary" version | sed -n '1s/^fileward //p')
fi
case $version in
[0-9]*) ;;
*) echo "build-pkg.sh: version \"$version\" must start with a digit (pass --version X.Y.Z)" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
install -d -m 0755 "$root/usr/local/bin" "$root/Library/LaunchDaemons" "$root/usr/local/share/fileward"
install -m 0755 "$binary" "$root/usr/local/bin/fileward"
install -m 0644 "$here/com.fileward.agent.plist" "$root/Library/LaunchDaemons/com.fileward.agent.plist"
install -m 0644 "$here/config.yaml" "$root/usr/local/share/fileward/config.yaml"
install -m 0755 "$here/uninstall.sh" "$root/usr/local/share/fileward/uninstall.sh"
install -m 0644 "$license" "$root/usr/local/share/fileward/LICENSE"
mkdir -p "$out"

if [ -n "$app_id" ]; then
	# Hardened runtime and a secure timestamp: notarization requires both.
	codesign --force --options runtime --timestamp --identifier "$identifier" \
		--sign "$app_id" "$root/usr/local/bin/fileward"
	codesign --verify --strict --verbose=2 "$root/usr/local/bin/fileward"
	# The PPPC profile grants Full Disk Access to exactly this signature.
	req=$(codesign -dr - "$root/usr/local/bin/fileward" 2>&1 | sed -n 's/^designated => //p')
	[ -n "$req" ] || { echo "build-pkg.sh: no designated requirement from codesign -dr -" >&2; exit 1; }
	esc=$(printf '%s' "$req" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' -e 's/[|\\&]/\\&/g')
	sed "s|REPLACE_WITH_CODE_REQUIREMENT|$esc|" "$here/fileward-pppc.mobileconfig" >"$out/fileward-pppc.mobileconfig"
	echo "build-pkg.sh: code requirement: $req"
else
	echo "build-pkg.sh: no --app-identity: the binary is not signed (test Macs only)" >&2
fi

pkgbuild --root "$root" --identifier "$identifier" --version "$version" \
	--scripts "$here/pkg-scripts" --install-location / "$work/fileward-component.pkg"
productbuild --identifier "$identifier" --version "$version" \
	--package "$work/fileward-component.pkg" "$work/fileward-unsigned.pkg"

pkg=$out/fileward-$version.pkg
if [ -n "$inst_id" ]; then
	productsign --timestamp --sign "$inst_id" "$work/fileward-unsigned.pkg" "$pkg"
	pkgutil --check-signature "$pkg"
else
	cp "$work/fileward-unsigned.pkg" "$pkg"
	echo "build-pkg.sh: no --installer-identity: the package is not signed (test Macs only)" >&2
fi

if [ -n "$profile" ]; then
	xcrun notarytool submit "$pkg" --keychain-profile "$profile" --wait
	xcrun stapler staple "$pkg"
	xcrun stapler validate "$pkg"
fi
echo "build-pkg.sh: $pkg"
