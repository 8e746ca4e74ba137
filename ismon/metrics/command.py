# -*- test-case-name: tests.test_metrics_cli -*-
"""
C{ismon metrics [--state-dir DIR] [--openmetrics] [--textfile DIR]}
(docs/metrics.md): the metrics of every watch in the state folder, printed,
or written for node_exporter's textfile collector.  Standard library only:
L{ismon.entry} runs it before anything imports Twisted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ismon.control.commands import exit_with, open_folder, system_error
from ismon.core.exit_status import ExitStatus
from ismon.core.text import quote
from ismon.metrics.render import render
from ismon.metrics.snapshots import metric_snapshots
from ismon.state.files import replace_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["TEXTFILE_NAME", "metrics", "metrics_and_exit", "wants_help"]

#: The file node_exporter's textfile collector reads (it reads C{*.prom}
#: only, so the temporary file beside it is never read half-written).
TEXTFILE_NAME = "ismon.prom"

_SYNOPSIS = "ismon metrics [--state-dir DIR] [--openmetrics] [--textfile DIR]"
_NO_VALUE = ""
_METRICS_FLAGS = ("openmetrics", "help")


_METRICS_PARAMETERS = ("state-dir", "textfile")


def _metrics_options(argv: list[str]) -> tuple[dict[str, str], str]:
    """The options of C{ismon metrics}, and what is wrong with them ("" if nothing)."""
    given: dict[str, str] = {}
    at = 0
    while at < len(argv):
        arg = argv[at]
        at += 1
        if arg == "--":
            if at < len(argv):
                return given, f"unexpected argument {quote(argv[at])}: metrics takes no watch ID"
            break
        if arg == "-h":
            arg = "--help"
        if not arg.startswith("--"):
            return given, f"unexpected argument {quote(arg)}: metrics takes no watch ID"
        name, equals, value = arg[2:].partition("=")
        if name in _METRICS_FLAGS:
            if equals:
                return given, f"--{name} takes no value"
            given[name] = _NO_VALUE
        elif name in _METRICS_PARAMETERS:
            if not equals:
                if at == len(argv):
                    return given, f"--{name} needs a folder"
                value = argv[at]
                at += 1
            if not value or "\0" in value:
                return given, f"--{name} needs a folder, not {quote(value)}"
            given[name] = value
        else:
            return given, f"unknown option {quote(arg)}"
    if "openmetrics" in given and "textfile" in given:
        return given, "--textfile writes the classic format: leave out --openmetrics"
    textfile = given.get("textfile")
    if textfile is not None and not os.path.isdir(textfile):
        return given, f"--textfile {quote(textfile)} is not a folder"
    return given, ""


def wants_help(argv: list[str]) -> bool:
    """
    Whether C{ismon metrics argv} asks for help: the page is the manual's
    (L{ismon.cmdline.manual}), so the long way answers it.
    """
    given, problem = _metrics_options(argv)
    return not problem and "help" in given


def metrics(argv: list[str]) -> int:
    """
    C{ismon metrics [--state-dir DIR] [--openmetrics] [--textfile DIR]}:
    print the metrics of every watch in the state folder, or write them
    to C{DIR/ismon.prom}; return the exit status.
    """
    given, problem = _metrics_options(argv)
    if problem:
        sys.stderr.write(f"ismon metrics: {problem} (see ismon --help)\n")
        return ExitStatus.INVALID_PARAMETER
    if "help" in given:
        # ismon.entry hands a request for help to the long way (wants_help),
        # which prints the manual's page; a direct caller gets its pointer.
        sys.stdout.write(f"{_SYNOPSIS}: see ismon --help\n")
        return ExitStatus.STOPPED
    state_dir = given.get("state-dir")
    try:
        folder = open_folder(Path(state_dir) if state_dir is not None else None)
        snapshots = metric_snapshots(folder)
    except OSError as e:
        return system_error("ismon", "-", "state", e)
    textfile = given.get("textfile")
    if textfile is None:
        sys.stdout.write(render(snapshots, openmetrics="openmetrics" in given))
        return ExitStatus.STOPPED
    path = Path(textfile) / TEXTFILE_NAME
    try:
        # Atomic (README "Records" writes ID.last the same way), and
        # readable by node_exporter, which seldom runs as our user.
        replace_file(path, render(snapshots).encode("utf-8"), kind="prom", sync=True, mode=0o644)
    except OSError as e:
        return system_error("ismon", "-", "textfile", e, what=f"{path}: ")
    return ExitStatus.STOPPED


def metrics_and_exit(argv: list[str]) -> NoReturn:
    """Run C{ismon metrics argv} and exit with its status."""
    exit_with(lambda: metrics(argv))
