"""
Tests for the decisions of L{ismon.cmdline.startup} that the console entry
points (L{ismon.entry}) make before anything imports Twisted; the modules
each way loads are in C{tests/test_startup.py}.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ismon.cmdline import startup


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["web", "--stop"], True),
        (["web", "--sto"], True),  # getopt takes prefixes
        (["web", "--del=1"], True),
        (["web", "-s", "host", "-i", "5"], False),
        (["web", "--", "--stop"], False),
        (["web", "--state-dir", "/x", "--pause"], True),
        (["web", "--me", "GET"], False),  # --method, not metrics
    ],
)
def test_a_clp_line_that_may_be_a_control_command(argv: list[str], expected: bool) -> None:
    assert startup._names_a_control_option(argv) is expected


def _run_if_fast(program: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """startup.run_if_fast in a process of its own: it exits when it runs a command."""
    code = (
        "import sys\n"
        "from ismon.cmdline import startup\n"
        f"startup.run_if_fast({program!r}, sys.argv[1:])\n"
        "print('the long way')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize(
    ("program", "argv", "fast"),
    [
        ("ismon", ["status", "--state-dir", "/nonexistent/ismon"], True),
        ("ismon", ["metrics", "--state-dir", "/nonexistent/ismon"], True),
        ("ismon", ["metrics", "--bogus"], True),  # refused the fast way too
        ("ismon", ["metrics", "--help"], False),  # the manual's page: the long way
        ("ismon", ["http", "web"], False),
        ("ismon", ["--help"], False),
        ("ismon", [], False),
        ("ismon", ["status", "web", "--kill", "3"], False),  # a prefix: the long way judges
        ("clp_httpmon", ["web", "--disp", "--state-dir", "/nonexistent/ismon"], True),
        ("clp_httpmon", ["web", "-s", "host"], False),
    ],
)
def test_which_lines_take_the_fast_way(program: str, argv: list[str], fast: bool) -> None:
    done = _run_if_fast(program, *argv)
    assert "Traceback" not in done.stderr
    assert (done.stdout == "the long way\n") is not fast, (done.stdout, done.stderr)


def test_deferred_cookiejar_loads_on_first_use() -> None:
    """
    The command lines defer C{http.cookiejar}; whatever reads it later still
    gets the real module's attributes.
    """
    code = (
        "import sys\n"
        "from ismon.cmdline import startup\n"
        "startup.defer_cookiejar()\n"
        "import twisted.python.compat\n"
        "assert 'urllib.request' not in sys.modules and 'ssl' not in sys.modules\n"
        "from http import cookiejar\n"
        "assert cookiejar.CookieJar.__module__ == 'http.cookiejar'\n"
        "import http.cookiejar as real\n"
        "assert real.CookieJar is cookiejar.CookieJar\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
