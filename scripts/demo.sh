#!/usr/bin/env bash
# Run ismon against an embedded demo HTTP + SMTP server: start two watches,
# show status, pause and continue, then stall the server (SIGSTOP) and show
# each watch exiting with code 1 within its detection bound.
#
#   bash scripts/demo.sh
#
# Installs ismon first when it is not importable (no system packages needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${ISMON_VENV:-$HOME/.cache/ismon-venv}
if [ -x "$VENV/bin/python" ]; then
    PYTHON="$VENV/bin/python"
fi
if ! "$PYTHON" -c 'import ismon.demo' 2>/dev/null; then
    if "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        "$PYTHON" -m venv "$VENV"
        PYTHON="$VENV/bin/python"
    fi
    echo "installing ismon into $("$PYTHON" -c 'import sys; print(sys.prefix)') ..."
    "$PYTHON" -m pip install -q --disable-pip-version-check -e . --config-settings editable_mode=compat
fi
exec "$PYTHON" -m ismon.demo
