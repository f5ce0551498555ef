#!/bin/sh
# Prints the version of this checkout as packages and the binary carry it.
#
#   version.sh                 from `git describe` of the working tree
#   version.sh DESCRIBE        maps a given `git describe` output (tests)
#
# Release tags are vX.Y.Z (or vX.Y.Z-PRE, e.g. v1.2.0-rc.1). deb and rpm need
# a version that starts with a digit and sorts in build order, so:
#
#   v1.2.3                  -> 1.2.3
#   v1.2.3-rc.1             -> 1.2.3~rc.1            (~ sorts before 1.2.3)
#   v1.2.3-4-gabc1234       -> 1.2.3+4.gabc1234      (4 commits after the tag)
#   v1.2.3-4-gabc1234-dirty -> 1.2.3+4.gabc1234.dirty
#   no tag at all           -> 0.0.0+N.gSHA          (N = commits in history)
#
# PKG_VERSION in the environment wins over all of this.
set -eu

if [ -n "${PKG_VERSION:-}" ]; then
	echo "$PKG_VERSION"
	exit 0
fi

if [ $# -ge 1 ]; then
	describe=$1
else
	describe=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
	if [ -z "$describe" ]; then
		sha=$(git rev-parse --short HEAD 2>/dev/null || true)
		if [ -z "$sha" ]; then
			echo "version.sh: not a git checkout and no PKG_VERSION set" >&2
			exit 1
		fi
		count=$(git rev-list --count HEAD)
		dirty=
		git diff --quiet HEAD 2>/dev/null || dirty=-dirty
		describe="v0.0.0-$count-g$sha$dirty"
	fi
fi

v=${describe#v}
meta=
case $v in
*-dirty) v=${v%-dirty}; meta=dirty ;;
esac
# N-gSHA after the tag: commits since the tag.
after=$(echo "$v" | sed -n 's/^.*-\([0-9][0-9]*\)-g\([0-9a-f][0-9a-f]*\)$/\1.g\2/p')
if [ -n "$after" ]; then
	v=$(echo "$v" | sed 's/-[0-9][0-9]*-g[0-9a-f][0-9a-f]*$//')
	meta=$after${meta:+.$meta}
fi
# What is left is the tag: X.Y.Z, or X.Y.Z-PRE.
base=${v%%-*}
pre=
[ "$base" = "$v" ] || pre=${v#*-}
if ! echo "$base" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$'; then
	echo "version.sh: tag v$v is not vX.Y.Z or vX.Y.Z-PRE" >&2
	exit 1
fi
if [ -n "$pre" ] && ! echo "$pre" | grep -Eq '^[0-9A-Za-z.]+$'; then
	echo "version.sh: pre-release \"$pre\" of v$v may only hold letters, digits and dots" >&2
	exit 1
fi
echo "$base${pre:+~$pre}${meta:++$meta}"
