"""
Tests for L{ismon.entry}: what the console entry points decide before
anything imports Twisted.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ismon import entry


@pytest.mark.parametrize(
    ("program", "argv", "expected"),
    [
        ("ismon", ["status", "web"], True),
        ("ismon", ["stop", "web", "-r", "5"], True),
        ("ismon", ["http", "web", "-s", "x"], False),
        ("ismon", ["--help"], False),
        ("ismon", [], False),
        ("clp_httpmon", ["web", "--stop"], True),
        ("clp_httpmon", ["web", "--sto"], True),  # getopt takes prefixes
        ("clp_httpmon", ["web", "--del=1"], True),
        ("clp_httpmon", ["web", "-s", "host", "-i", "5"], False),
        ("clp_httpmon", ["web", "--", "--stop"], False),
        ("clp_smtpmon", ["web", "--state-dir", "/x", "--pause"], True),
        ("ismon", ["metrics", "--openmetrics"], True),
        ("clp_httpmon", ["web", "--me", "GET"], False),  # --method, not metrics
    ],
)
def test_may_be_control(program: str, argv: list[str], expected: bool) -> None:
    assert entry._may_be_control(program, argv) is expected


def test_deferred_module_loads_on_first_use() -> None:
    """
    A plain watch defers C{http.cookiejar}; whatever reads it later still
    gets the real module's attributes.
    """
    code = (
        "import sys\n"
        "from ismon import entry\n"
        "entry._skip_tls_stack(['w', '-s', 'h'])\n"
        "assert sys.modules.get('ssl', 0) is None\n"
        "from http import cookiejar\n"
        "assert 'urllib.request' not in sys.modules\n"
        "assert cookiejar.CookieJar.__module__ == 'http.cookiejar'\n"
        "import http.cookiejar as real\n"
        "assert real.CookieJar is cookiejar.CookieJar\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_tls_watch_keeps_ssl() -> None:
    code = (
        "import sys\n"
        "from ismon import entry\n"
        "entry._skip_tls_stack(['w', '--tls'])\n"
        "import ssl, http.cookiejar\n"
        "print(type(sys.modules['http.cookiejar']).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "module\n"), done.stderr
