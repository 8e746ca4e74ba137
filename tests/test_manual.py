"""
The man pages and C{--help} come from one source (L{ismon.cmdline.pages}
and the option parsers): the committed pages are what that source
generates, they render without a warning, and every option the parser
knows is in both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ismon import __version__
from ismon.cmdline.manpages import full_help_of, page
from ismon.cmdline.manual import option_rows
from ismon.cmdline.options import OPTIONS
from ismon.cmdline.pages import MANUALS
from ismon.core.protocols import PROTOCOLS
from tests.watchproc import command

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "man" / "man8"
PARSERS = {protocol.command: OPTIONS[name] for name, protocol in PROTOCOLS.items()}


@pytest.mark.parametrize("name", list(MANUALS))
def test_committed_page_is_what_the_source_generates(name: str) -> None:
    committed = (PAGES / f"{name}.8").read_text(encoding="utf-8")
    assert committed == page(name), (
        f"man/man8/{name}.8 is stale: run python -m ismon.cmdline.manpages --write man/man8"
    )


def test_every_protocol_has_a_page() -> None:
    assert set(MANUALS) == {*PARSERS, "ismon"}


def test_pyproject_installs_every_page() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for path in sorted(PAGES.glob("*.8")):
        assert f'"man/man8/{path.name}"' in text, path.name
    assert {p.stem for p in PAGES.glob("*.8")} == set(MANUALS)


@pytest.mark.parametrize("name", list(PARSERS))
def test_every_option_is_in_help_and_page(name: str) -> None:
    roff = page(name)
    text = full_help_of(name)
    rows = option_rows(PARSERS[name]())
    assert {"debug", "version", "help", "stop", "state-dir"} <= {row.long for row in rows}
    for row in rows:
        escaped = row.long.replace("-", "\\-")
        assert f"\\fB\\-\\-{escaped}\\fR" in roff, row.long
        assert f"--{row.long}" in text, row.long
        # The same words (the help wraps them; roff escapes backslashes and hyphens).
        assert row.doc.replace("\\", "\\e").replace("-", "\\-") in roff, row.doc
        assert " ".join(row.doc.split()) in " ".join(text.split()), row.doc


def unformatted(text: str) -> str:
    """man's output without its overstrike bold and underline (C{X\\bX}, C{_\\bX})."""
    return re.sub(".\x08", "", text)


def _groff(page: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("name", list(MANUALS))
def test_page_renders_without_warnings(name: str) -> None:
    result = _groff(PAGES / f"{name}.8")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
@pytest.mark.parametrize("name", list(MANUALS))
def test_man_shows_the_page(name: str) -> None:
    env = dict(os.environ, MANWIDTH="80")
    result = subprocess.run(
        ["man", "-l", str(PAGES / f"{name}.8")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    shown = unformatted(result.stdout)
    for section in ("NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "SEE ALSO"):
        assert f"\n{section}\n" in shown, section
    assert f"ismon {__version__}" in shown
    assert "--version" in shown


@pytest.mark.parametrize("argv", [[name] for name in MANUALS])
def test_help_and_version_of_each_command(argv: list[str]) -> None:
    env = dict(os.environ, COLUMNS="80")
    name = argv[0]
    shown = subprocess.run(
        [*command(name), "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == full_help_of(name), "--help is not the manual's text"
    version = subprocess.run(
        [*command(name), "--version"], capture_output=True, text=True, timeout=60, env=env
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() in (f"ismon {__version__}", f"{name} (ismon) {__version__}")


def test_regenerate_command_writes_the_pages(tmp_path: Path) -> None:
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ismon.cmdline.manpages", "--write", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in MANUALS:
        assert (tmp_path / f"{name}.8").read_text() == (PAGES / f"{name}.8").read_text()
