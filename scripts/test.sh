#!/usr/bin/env bash
# Install everything ismon's tests need on a Debian 12 machine, then run the
# whole suite: ruff, mypy, the demo as a newcomer runs it, trial, pytest.
# This is what CI runs (.ci/run).
#
#   bash scripts/test.sh                 # as root on a fresh machine
#   bash scripts/test.sh -k http -x      # extra arguments go to pytest
#   ISMON_SKIP_INSTALL=1 ISMON_ONLY=demo bash scripts/test.sh
#
# Environment:
#   PYTHON=python3           interpreter to install into and test with
#   ISMON_SKIP_INSTALL=1     skip apt and pip (everything already installed)
#   ISMON_ONLY=a,b           run only these steps: ruff, mypy, demo, trial,
#                            pytest (default: all)
#   ISMON_VENV=DIR           venv used when the interpreter is "externally
#                            managed" (Debian's own python3); default
#                            ~/.cache/ismon-venv
#   ISMON_PYTEST_TIMEOUT=S   hard limit for the pytest run (default 3600 s: CI allows 90 minutes in all)
#
# Exit status: 0 only when every step passed; otherwise 1 (the summary at the
# end says which steps failed).  pytest collecting no tests is a failure.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore
export PYTHONDONTWRITEBYTECODE=1
PYTHON=${PYTHON:-python3}

section() {
    printf '\n==== %s ==== (%s)\n' "$*" "$(date -u +%H:%M:%S)"
}
die() {
    printf '\nscripts/test.sh: %s\n' "$*" >&2
    exit 1
}

APT_PACKAGES=(
    nginx-light opensmtpd rsyslog faketime libfaketime
    monitoring-plugins-basic monitoring-plugins-standard
    curl libxml2-utils resource-agents
    iptables nftables iproute2 procps
    pacemaker corosync pacemaker-cli-utils shellcheck keepalived
    prometheus prometheus-node-exporter
    dovecot-pop3d dovecot-imapd
    vsftpd
    unbound redis-server bind9-dnsutils
    systemd-container debootstrap dh-virtualenv debhelper build-essential lintian
)

POLICY_RC=/usr/sbin/policy-rc.d
MADE_POLICY=0
remove_policy() {
    if [ "$MADE_POLICY" = 1 ]; then
        rm -f "$POLICY_RC"
        MADE_POLICY=0
    fi
}
trap remove_policy EXIT

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

externally_managed() {
    "$PYTHON" - <<'EOF' 2>/dev/null
import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)
EOF
}

# PID files the Debian init scripts use; a daemon apt starts is stopped again.
SERVICE_PIDFILES=(/run/nginx.pid /run/smtpd.pid /run/rsyslogd.pid /run/keepalived.pid /run/dovecot/master.pid
    /run/unbound.pid /run/redis/redis-server.pid)
declare -A RUNNING_BEFORE=()

alive_from_pidfile() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

remember_services() {
    local f pid
    for f in "${SERVICE_PIDFILES[@]}"; do
        if pid=$(alive_from_pidfile "$f"); then RUNNING_BEFORE[$f]=$pid; fi
    done
}

stop_services_apt_started() {
    local f pid sig
    for f in "${SERVICE_PIDFILES[@]}"; do
        pid=$(alive_from_pidfile "$f") || continue
        [ "${RUNNING_BEFORE[$f]:-}" = "$pid" ] && continue
        sig=TERM
        [ "$f" = /run/nginx.pid ] && sig=QUIT
        echo "stopping $(basename "$f" .pid) (pid $pid) started by its package"
        kill -s "$sig" "$pid" 2>/dev/null || true
    done
}

install_system_packages() {
    section "System packages (apt)"
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        missing+=(python3 python3-pip python3-venv)
    elif ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        missing+=(python3-pip python3-venv)
    elif externally_managed && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all present: ${APT_PACKAGES[*]}"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
    echo "installing: ${missing[*]}"
    remember_services
    # Keep the packages' init scripts from starting system-wide daemons: the
    # tests start their own on private ports.  Only if no policy exists yet.
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC" && chmod 755 "$POLICY_RC" && MADE_POLICY=1
    fi
    local rc=0
    apt-get update -q </dev/null || rc=$?
    if [ $rc -eq 0 ]; then
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null || rc=$?
    fi
    remove_policy
    stop_services_apt_started
    [ $rc -eq 0 ] || die "apt-get failed (exit $rc)"
}

VENV=${ISMON_VENV:-${HOME:-/root}/.cache/ismon-venv}
use_venv() {
    PYTHON="$VENV/bin/python"
    export PATH="$VENV/bin:$PATH"
}

install_python_packages() {
    section "Python packages (pip)"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is older than 3.11"
    if externally_managed; then
        # Debian's python3 refuses system-wide pip installs (PEP 668).
        if [ ! -x "$VENV/bin/python" ]; then
            echo "creating venv $VENV (the interpreter is externally managed)"
            "$PYTHON" -m venv "$VENV" || die "cannot create venv $VENV"
        fi
        use_venv
    fi
    # From the lock (uv.lock, hashes checked), ismon itself editable in compat
    # mode: twistd only finds twisted/plugins in a compat editable install.
    "$PYTHON" scripts/locked.py install --extra test --editable </dev/null ||
        die "installing from the lock (scripts/locked.py install) failed"
    "$PYTHON" -m pip --version
}

FAILED=()
step() {
    # step NAME COMMAND...: run, remember a failure, go on with the next step.
    local name=$1 rc=0
    shift
    section "$name"
    "$@" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "---- $name FAILED (exit $rc)"
        FAILED+=("$name (exit $rc)")
    fi
    return 0
}

run_trial() {
    local tmp out rc=0 ran
    tmp=$(mktemp -d /tmp/ismon-trial.XXXXXX)
    out="$tmp/output"
    "$PYTHON" -m twisted.trial --temp-directory="$tmp/_trial_temp" tests </dev/null 2>&1 |
        tee "$out" || rc=$?
    ran=$(sed -n 's/^Ran \([0-9][0-9]*\) tests\{0,1\} in .*/\1/p' "$out" | tail -1)
    rm -rf "$tmp"
    if [ $rc -eq 0 ] && [ "${ran:-0}" -eq 0 ]; then
        echo "trial ran no tests"
        rc=5
    fi
    return $rc
}

run_pytest() {
    local rc=0
    # As root every server the fixtures start was installed above: a server
    # that cannot start is then a failure, not a skip.
    if [ "$(id -u)" -eq 0 ] && [ "${ISMON_SKIP_INSTALL:-}" != 1 ]; then
        export ISMON_REQUIRE_SERVERS=${ISMON_REQUIRE_SERVERS:-1}
    fi
    timeout --kill-after=30 "${ISMON_PYTEST_TIMEOUT:-3600}" \
        "$PYTHON" -m pytest -q -ra -p no:cacheprovider "$@" </dev/null || rc=$?
    case $rc in
        0) ;;
        5) echo "pytest collected no tests" ;;
        124) echo "pytest did not finish within ${ISMON_PYTEST_TIMEOUT:-3600} s" ;;
    esac
    return $rc
}

# The README's first command, run the way a newcomer runs it: from a clean
# copy of the tracked tree, with an empty HOME and a python3 that has neither
# ismon nor Twisted.  It must install what it needs, show both watches
# exiting with code 1, and on a second run start without installing.
run_newcomer_demo() {
    local tmp rc=0 run out started name
    tmp=$(mktemp -d /tmp/ismon-newcomer.XXXXXX) || return 1
    mkdir "$tmp/home" "$tmp/ismon"
    copy_tracked_tree "$tmp/ismon" || rc=$?
    # Without system site-packages and made from the base interpreter: the
    # ismon and Twisted this script installed above are not importable here.
    if [ $rc -eq 0 ]; then
        "$PYTHON" -m venv --without-pip "$tmp/python" || rc=$?
    fi
    if [ $rc -eq 0 ] && (cd / && "$tmp/python/bin/python" -c 'import twisted') 2>/dev/null; then
        echo "the newcomer's python can import Twisted: not a clean machine"
        rc=1
    fi
    for run in 1 2; do
        [ $rc -eq 0 ] || break
        out="$tmp/output$run"
        started=$(date +%s)
        (
            cd "$tmp/ismon" &&
                env -u PYTHON -u ISMON_VENV -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME \
                    -u PIP_CACHE_DIR -u XDG_CACHE_HOME HOME="$tmp/home" \
                    PATH="$tmp/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
                    timeout --kill-after=30 600 bash scripts/demo.sh
        ) </dev/null 2>&1 | tee "$out" || rc=$?
        echo "---- newcomer demo run $run: exit $rc after $(($(date +%s) - started)) s"
        [ $rc -ne 124 ] || echo "the demo did not finish within 600 s"
        for name in web mail; do
            if ! grep -q "^=== watch $name exited with code 1 " "$out"; then
                echo "the demo did not show watch $name exiting with code 1"
                rc=1
            fi
        done
        if [ $run = 1 ] && ! grep -q "^installing ismon and Twisted into " "$out"; then
            echo "the first run did not install ismon and Twisted (on a clean machine it must)"
            rc=1
        elif [ $run = 2 ] && grep -q "^installing ismon" "$out"; then
            echo "the second run installed again"
            rc=1
        fi
    done
    rm -rf "$tmp"
    return $rc
}

copy_tracked_tree() {
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # The working tree's tracked files, edits included; not what pip,
        # twistd or the tests left behind.
        git -C "$ROOT" ls-files -z |
            tar -C "$ROOT" --null --ignore-failed-read -T - -cf - | tar -C "$1" -xf -
    else
        tar -C "$ROOT" --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ \
            --exclude=dropin.cache --exclude=.venv -cf - . | tar -C "$1" -xf -
    fi
}

ONLY=${ISMON_ONLY:-}
for name in ${ONLY//,/ }; do
    case $name in
        ruff | mypy | demo | trial | pytest) ;;
        *) die "ISMON_ONLY: unknown step '$name' (steps: ruff, mypy, demo, trial, pytest)" ;;
    esac
done
wanted() {
    [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]
}

START=$(date +%s)
section "ismon test suite in $ROOT"
# shellcheck source=/dev/null
echo "CI=${CI:-} user=$(id -un) $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"

if [ "${ISMON_SKIP_INSTALL:-}" = 1 ]; then
    echo "ISMON_SKIP_INSTALL=1: not installing anything"
    if externally_managed && [ -x "$VENV/bin/python" ]; then
        use_venv
    fi
else
    install_system_packages
    install_python_packages
fi
"$PYTHON" --version

wanted ruff && step "ruff check" "$PYTHON" -m ruff check .
wanted ruff && step "ruff format --check" "$PYTHON" -m ruff format --check .
wanted mypy && step "mypy" "$PYTHON" -m mypy
wanted demo && step "demo (as a newcomer)" run_newcomer_demo
wanted trial && step "trial" run_trial
wanted pytest && step "pytest" run_pytest "$@"

section "Summary ($(($(date +%s) - START)) s)"
if [ ${#FAILED[@]} -ne 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[@]}"
    exit 1
fi
echo "all steps passed"
