#!/usr/bin/env bash
# Builds the Debian package from this checkout into dist/ (dist/dongled_VERSION_all.deb), in a
# copy of the tree, so nothing of the build lands in the checkout or next to it. As root it
# first installs the build dependencies of debian/control (apt-get build-dep).
#
#   sudo ./build-deb.sh                    build dist/dongled_*.deb; then: sudo apt install ./dist/dongled_*.deb
#   ./build-deb.sh                         the same, when the build dependencies are already there
#   sudo ./build-deb.sh --version V        with a changelog entry for version V on top (CI builds
#                                          an upgrade of the same source this way)
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }
die() { echo "build-deb.sh: $*" >&2; exit 1; }

version=""
while [ $# -gt 0 ]; do
    case "$1" in
        --version) [ $# -ge 2 ] || { usage >&2; exit 2; }; version=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

# Debian's own tools and interpreter, never a pyenv/conda python3 first in PATH: pybuild
# builds for the python3 versions Debian's python3 package supports.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends dpkg-dev >/dev/null
    apt-get build-dep -y -q -o DPkg::Lock::Timeout=600 ./ >/dev/null
fi
command -v dpkg-buildpackage >/dev/null || die "no dpkg-buildpackage: run as root (sudo ./build-deb.sh)"
dpkg-checkbuilddeps || die "build dependencies missing: run as root (sudo ./build-deb.sh)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # what is committed or about to be, never venvs, caches or an earlier build
    git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - -cf - | tar -xf - -C "$work/src"
else
    tar --exclude='./.venv*' --exclude=./dist --exclude=./.git -cf - . | tar -xf - -C "$work/src"
fi

if [ -n "$version" ]; then
    who=$(dpkg-parsechangelog -l debian/changelog -S Maintainer)
    {
        printf 'dongled (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Rebuilt from the same source (build-deb.sh --version).\n\n'
        printf ' -- %s  %s\n\n' "$who" "$(date -R)"
        cat debian/changelog
    } > "$work/src/debian/changelog"
fi

(cd "$work/src" && dpkg-buildpackage -us -uc -b) > "$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "dpkg-buildpackage failed (its log is above)"; }
mkdir -p dist
for deb in "$work"/*.deb; do
    install -m 0644 "$deb" dist/
    echo "dist/$(basename "$deb")"
done
