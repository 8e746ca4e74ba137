#!/usr/bin/env bash
# Build the Debian package: dist/ismon_<version>_<arch>.deb, and nothing
# else in dist/ (an older ismon_*.deb there is replaced).
#
#   bash scripts/build-deb.sh
#
# As root on Debian 12, from a checkout (its tracked files, edits included)
# or an unpacked copy.  It installs its build tools with apt when they are
# missing (debhelper, dh-virtualenv, python3-venv, dpkg-dev, build-essential),
# then builds in a temporary folder:
#   1. a tools venv gets uv and setuptools from the lock (uv.lock, hashes);
#   2. ismon's wheel is built there, without build isolation;
#   3. debian/requirements.txt = the locked runtime packages (uv export,
#      hashes) + that wheel with its hash;
#   4. dpkg-buildpackage: dh-virtualenv makes /usr/lib/ismon, a venv of
#      /usr/bin/python3, from that file alone (pip --require-hashes
#      --no-deps --only-binary :all:), then the rest of debian/.
# About 1-2 minutes; the downloads come from PyPI and Debian.
#
# Environment:
#   ISMON_LINTIAN=1   also run lintian on the result (installs it when missing);
#                     exit 1 when it reports an error
#
# Exit status: 0 when the package was written; 1 with a message otherwise.
set -euo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd -P)
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

die() {
    printf 'scripts/build-deb.sh: %s\n' "$*" >&2
    exit 1
}
step() {
    printf '==== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"
}

[ "$(id -u)" -eq 0 ] || die "run it as root (it installs its build tools with apt)"
command -v dpkg >/dev/null 2>&1 || die "this is no Debian system (no dpkg)"

TOOLS=(debhelper dh-virtualenv python3-venv dpkg-dev build-essential)
[ "${ISMON_LINTIAN:-}" = 1 ] && TOOLS+=(lintian)
installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}
missing=()
for p in "${TOOLS[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
    step "installing the build tools: ${missing[*]}"
    apt-get update -q </dev/null >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

PYTHON=/usr/bin/python3
VERSION=$("$PYTHON" - <<'EOF'
import re
text = open("ismon/__init__.py").read()
print(re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1))
EOF
) || die "cannot read __version__ from ismon/__init__.py"
CHANGELOG=$(dpkg-parsechangelog -S Version) || die "cannot read debian/changelog"
[ "$CHANGELOG" = "$VERSION" ] ||
    die "debian/changelog is at $CHANGELOG, ismon/__init__.py at $VERSION: add a changelog entry (dch -v $VERSION)"
ARCH=$(dpkg --print-architecture)
DEB="ismon_${VERSION}_${ARCH}.deb"

WORK=$(mktemp -d /tmp/ismon-deb.XXXXXX)
cleanup() {
    rm -rf "$WORK"
}
trap cleanup EXIT
SRC="$WORK/ismon-$VERSION"
mkdir "$SRC"

step "copying the source tree"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # The tracked files, edits included; nothing pip, twistd or tests left.
    git -C "$ROOT" ls-files -z | tar -C "$ROOT" --null --ignore-failed-read -T - -cf - |
        tar -C "$SRC" -xf -
else
    tar -C "$ROOT" --exclude=.git --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=dropin.cache --exclude=.venv -cf - . | tar -C "$SRC" -xf -
fi

step "the tools venv: uv and the build backend from the lock"
"$PYTHON" -m venv "$WORK/tools" || die "cannot make a venv (python3-venv)"
TOOL_PYTHON="$WORK/tools/bin/python"
"$TOOL_PYTHON" "$SRC/scripts/locked.py" requirements --group build --only-group -o "$WORK/build.txt" ||
    die "cannot read the lock"
"$TOOL_PYTHON" -m pip install -q --require-hashes --no-deps -r "$WORK/build.txt" </dev/null ||
    die "cannot install the build backend from the lock"

step "ismon's wheel"
"$TOOL_PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheel" "$SRC" </dev/null ||
    die "cannot build ismon's wheel"
WHEEL=$(echo "$WORK"/wheel/ismon-"$VERSION"-*.whl)
[ -f "$WHEEL" ] || die "no wheel ismon-$VERSION-*.whl was built"

step "debian/requirements.txt from the lock"
"$TOOL_PYTHON" "$SRC/scripts/locked.py" requirements -o "$SRC/debian/requirements.txt" ||
    die "cannot export the runtime packages from the lock"
printf 'ismon @ file://%s --hash=sha256:%s\n' "$WHEEL" "$(sha256sum "$WHEEL" | cut -d' ' -f1)" \
    >>"$SRC/debian/requirements.txt"

step "dpkg-buildpackage"
(cd "$SRC" && dpkg-buildpackage -b -us -uc </dev/null) >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    die "dpkg-buildpackage failed (the last lines of its log are above)"
}
[ -f "$WORK/$DEB" ] || die "dpkg-buildpackage wrote no $DEB"

mkdir -p "$ROOT/dist"
rm -f "$ROOT"/dist/ismon_*.deb
cp "$WORK/$DEB" "$ROOT/dist/$DEB"
step "built dist/$DEB ($(du -k "$ROOT/dist/$DEB" | cut -f1) KiB)"

if [ "${ISMON_LINTIAN:-}" = 1 ]; then
    step "lintian"
    lintian --fail-on error "$ROOT/dist/$DEB" || die "lintian reports errors"
fi
