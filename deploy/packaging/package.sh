#!/usr/bin/env bash
# Builds the release artifacts into OUT (default dist/): `make package` runs it.
#
#   fileward_VERSION_ARCH.deb        Debian, Ubuntu            (amd64, arm64)
#   fileward-VERSION-1.ARCH.rpm      RHEL, Fedora, SUSE, Amazon (x86_64, aarch64)
#   fileward_VERSION_OS_ARCH.tar.gz  linux and darwin, amd64 and arm64: the
#                                    binary, an example config, the systemd unit or
#                                    the launchd plist (+ PPPC profile and the macOS
#                                    .pkg scripts), LICENSE, README.md
#   SHA256SUMS                       of all of the above (sha256sum -c SHA256SUMS)
#
# The version comes from git (version.sh) and is stamped into the binary and
# the packages alike. deb and rpm are built by nfpm, run as a Go tool of the
# deploy/packaging module (go -C deploy/packaging tool nfpm): no downloaded
# binary, and nfpm's dependencies stay out of the agent's module.
#
# Environment (all optional):
#   OUT=dist  ARCHS="amd64 arm64"  OSES="linux darwin"  FORMATS="deb rpm tar"
#   GO=go  PKG_VERSION=...  EXTRA_LDFLAGS=...  SOURCE_DATE_EPOCH=... (default: the commit's time)
#   FILEWARD_PREBUILT=path  package this executable instead of building (layout tests only)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

GO=${GO:-go}
OUT=${OUT:-dist}
ARCHS=${ARCHS:-amd64 arm64}
OSES=${OSES:-linux darwin}
FORMATS=${FORMATS:-deb rpm tar}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

version=$("$here/version.sh")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
want() { [[ " $FORMATS " == *" $1 "* ]]; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Only the artifacts of this script are replaced; anything else in OUT stays.
rm -f "$OUT"/fileward_*.deb "$OUT"/fileward-*.rpm "$OUT"/fileward_*.tar.gz "$OUT/SHA256SUMS"

echo "package.sh: fileward $version (commit $commit) into $OUT"

build() { # os arch -> $work/bin-os-arch/fileward
	local os=$1 arch=$2 dir=$work/bin-$1-$2
	mkdir -p "$dir"
	if [ -n "${FILEWARD_PREBUILT:-}" ]; then # tests of the layout: any executable
		install -m 0755 "$FILEWARD_PREBUILT" "$dir/fileward"
		return
	fi
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch "$GO" build -trimpath \
		-ldflags "-X main.version=$version -X main.commit=$commit ${EXTRA_LDFLAGS:-}" \
		-o "$dir/fileward" ./agent/cmd/fileward
}

tarball() { # os arch: the archive's single top directory is its own name
	local os=$1 arch=$2 name=fileward_${version}_$1_$2
	local d=$work/tar/$name
	mkdir -p "$d"
	install -m 0755 "$work/bin-$os-$arch/fileward" "$d/fileward"
	install -m 0644 LICENSE README.md "$d/"
	case $os in
	linux)
		# The unit and config for a manual install (deploy/README.md): the
		# binary goes to /usr/local/bin, as the unit says.
		install -m 0644 deploy/systemd/fileward.service deploy/systemd/config.yaml "$d/"
		install -m 0644 deploy/systemd/fileward.env.example "$d/"
		;;
	darwin)
		# Everything deploy/macos/build-pkg.sh needs, next to it: on a Mac,
		# ./build-pkg.sh in the extracted archive builds the .pkg.
		install -m 0644 deploy/macos/com.fileward.agent.plist deploy/macos/fileward-pppc.mobileconfig \
			deploy/macos/config.yaml "$d/"
		install -m 0755 deploy/macos/build-pkg.sh deploy/macos/uninstall.sh "$d/"
		install -d "$d/pkg-scripts"
		install -m 0755 deploy/macos/pkg-scripts/postinstall "$d/pkg-scripts/"
		;;
	esac
	tar -C "$work/tar" --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9n >"$OUT/$name.tar.gz"
}

for os in $OSES; do
	for arch in $ARCHS; do
		build "$os" "$arch"
		if want tar; then tarball "$os" "$arch"; fi
		[ "$os" = linux ] || continue
		for fmt in deb rpm; do
			want "$fmt" || continue
			stage=$work/stage-$arch
			if [ ! -d "$stage" ]; then
				mkdir -p "$stage"
				cp "$work/bin-linux-$arch/fileward" "$stage/fileward"
				# The packaged binary is /usr/bin/fileward.
				sed 's#/usr/local/bin/fileward#/usr/bin/fileward#g' deploy/systemd/fileward.service >"$stage/fileward.service"
				cp deploy/systemd/config.yaml deploy/systemd/fileward.env.example LICENSE README.md "$stage/"
			fi
			STAGE=$stage PKG_ARCH=$arch PKG_VERSION=$version \
				"$GO" -C "$here" tool nfpm package -f nfpm.yaml -p "$fmt" -t "$OUT/" >/dev/null
		done
	done
done

cd "$OUT"
shopt -s nullglob
artifacts=(fileward_*.deb fileward-*.rpm fileward_*.tar.gz)
mapfile -t artifacts < <(printf '%s\n' "${artifacts[@]}" | LC_ALL=C sort)
sha256sum "${artifacts[@]}" >SHA256SUMS
for f in "${artifacts[@]}" SHA256SUMS; do printf '  %10d  %s\n' "$(stat -c %s "$f")" "$f"; done
