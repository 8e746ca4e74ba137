#!/usr/bin/env bash
# Run ismon against an embedded demo HTTP + SMTP server: start two watches,
# show status, pause and continue, then stall the server (SIGSTOP) and show
# each watch exiting with code 1 within its detection bound.
#
#   bash scripts/demo.sh
#
# The first run installs this checkout of ismon, with Twisted, into a private
# venv (no system-wide pip install); later runs reuse it and start at once.
#
# Environment:
#   PYTHON=python3    Python 3.11+ the venv is made from
#   ISMON_VENV=DIR    the venv; default ~/.cache/ismon-venv
#
# Exit status: the demo's (0 when both watches exited as expected); 1 with a
# one-line message when nothing could be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
PYTHON=${PYTHON:-python3}
VENV=${ISMON_VENV:-${HOME:-/root}/.cache/ismon-venv}
VENV_PYTHON="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

die() {
    printf 'scripts/demo.sh: %s\n' "$*" >&2
    exit 1
}

# Debian's own python3 needs python3-venv for "python3 -m venv"; a root user
# on a fresh machine gets it (or python3 itself) installed here.
apt_install() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    echo "installing $* with apt-get (needed to make a Python venv) ..."
    local log
    # --no-upgrade: a package that is already there is left as it is.
    if ! log=$(
        export DEBIAN_FRONTEND=noninteractive
        {
            apt-get update -qq &&
                apt-get install -y -qq --no-install-recommends --no-upgrade "$@"
        } </dev/null 2>&1
    ); then
        printf '%s\n' "$log" | tail -n 5 >&2
        return 1
    fi
}

python_version() {
    "$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

# Asked from / so that the checkout on sys.path cannot answer for the venv:
# from the checkout root, "import twisted" finds its twisted/plugins folder.
installed() {
    [ -x "$VENV_PYTHON" ] || return 1
    (cd / && "$VENV_PYTHON" - "$ROOT" >/dev/null 2>&1) <<'EOF'
import importlib.metadata, os, re, sys, tomllib

root = sys.argv[1]
import twisted.internet
import ismon.cmdline.cli, ismon.demo

if os.path.realpath(os.path.dirname(os.path.dirname(ismon.__file__))) != root:
    sys.exit("ismon comes from another checkout")
# A lock changed since the venv was made (another version of a dependency)
# means install again: every locked dependency must be there at its version.
with open(os.path.join(root, "uv.lock"), "rb") as f:
    locked = {p["name"]: p.get("version") for p in tomllib.load(f)["package"]}
with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    for requirement in tomllib.load(f)["project"]["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group()).lower()
        if importlib.metadata.version(name) != locked.get(name):
            sys.exit(f"{name} is not at its locked version")
EOF
}

make_venv() {
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        if [ "$PYTHON" != python3 ] || ! apt_install python3 python3-venv; then
            die "no $PYTHON found: install Python 3.11 or newer, or set PYTHON=/path/to/python3"
        fi
    fi
    local version
    version=$(python_version) || die "$PYTHON does not run"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "ismon needs Python 3.11 or newer; $PYTHON is $version (set PYTHON=/path/to/python3.11)"
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        if ! apt_install "python$version-venv" || ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
            die "$PYTHON cannot make a venv: install python3-venv (apt-get install python3-venv) or set PYTHON to another Python 3.11+"
        fi
    fi
    if [ -e "$VENV" ] && [ ! -e "$VENV/pyvenv.cfg" ]; then
        die "$VENV exists and is not a venv; move it away or set ISMON_VENV to another folder"
    fi
    echo "creating a Python venv in $VENV ..."
    # --clear: a venv left broken by an interrupted first run is made anew.
    "$PYTHON" -m venv --clear "$VENV" || die "could not create the venv $VENV"
}

if ! installed; then
    if ! "$VENV_PYTHON" -m pip --version >/dev/null 2>&1; then
        make_venv
    fi
    echo "installing ismon and Twisted into $VENV (first run only, about 20 s) ..."
    # The versions of the lock (uv.lock, hashes checked); ismon editable in
    # compat mode: twistd only finds twisted/plugins in a compat editable install.
    "$VENV_PYTHON" "$ROOT/scripts/locked.py" install --editable </dev/null ||
        die "could not install ismon into $VENV from the lock (see above)"
    installed || die "ismon is still not importable from $VENV after installing it"
fi
cd /
exec "$VENV_PYTHON" -m ismon.demo
