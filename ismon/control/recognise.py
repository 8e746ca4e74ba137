# -*- test-case-name: tests.test_control_commands,tests.test_control_parsers -*-
"""
The fast recogniser of control command lines: L{recognise} reads the
command lines it fully understands, in the standard library alone, so that
L{ismon.entry} can run them before anything imports Twisted (cluster
software runs these every few seconds: docs/performance.md, "Control
commands").  Every other command line, including every invalid one, goes
the long way through L{ismon.cmdline.cli}, whose parsers print the
catalogue's refusals; both build the same L{ControlRequest}, and
C{tests/test_control_parsers.py} proves the two agree.
"""

from __future__ import annotations

from pathlib import Path

from ismon.control.request import VERBS, ControlRequest, parse_duration, reason_problem
from ismon.state.folder import is_watch_id

__all__ = ["recognise"]


def _is_clp_command(program: str) -> bool:
    # ismon.entry.clp() passes only the commands of ismon.core.protocols; that
    # registry is not imported here (it costs attrs, ~20 ms, on every call).
    return program.startswith("clp_") and program.endswith("mon")


_NO_VALUE = ""


def _scan(
    args: list[str], flags: tuple[str, ...], parameters: tuple[str, ...]
) -> tuple[dict[str, str], list[str]] | None:
    """
    Options in the manner of C{getopt.getopt} as Twisted's C{usage.Options}
    uses it: they end at the first positional argument or at C{--}; C{-r}
    is C{--timeout}.  Returns the options given (a flag maps to "") and the
    positional arguments, or L{None} for anything not exactly one of
    C{flags} / C{parameters} (getopt's abbreviations, C{--help}, a
    missing value...): the long way judges those.
    """
    given: dict[str, str] = {}
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            at += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        at += 1
        if arg.startswith("--"):
            name, equals, value = arg[2:].partition("=")
            if name in flags and not equals:
                given[name] = _NO_VALUE
                continue
            if name not in parameters:
                return None
        elif arg[1] == "r" and "timeout" in parameters:
            name, equals, value = "timeout", "", arg[2:]
            equals = "=" if value else ""
        else:
            return None
        if not equals:
            if at >= len(args):
                return None
            value = args[at]
            at += 1
        given[name] = value
    return given, args[at:]


def _stop_wait(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 10000:
        return None
    return int(text)


def _watch_id(text: str) -> str | None:
    return text if is_watch_id(text) else None


def _state_dir(given: dict[str, str]) -> tuple[bool, Path | None]:
    value = given.get("state-dir")
    if value is None:
        return True, None
    if not value or "\0" in value:
        return False, None
    return True, Path(value)


def _kill_after(given: dict[str, str], action: str | None) -> tuple[bool, int | None]:
    value = given.get("kill-after")
    if value is None:
        return True, None
    seconds = _stop_wait(value)
    return seconds is not None and action == "stop", seconds


def recognise(program: str, argv: list[str]) -> ControlRequest | None:
    """
    The control command that C{program argv} asks for, or L{None} when the
    command line is anything else: a watch to start, or something the
    Twisted parsers must refuse.  Only exact, valid forms are taken, so the
    catalogue's refusals stay in one place (L{ismon.cmdline.cli}).
    """
    if program == "ismon":
        return _recognise_ismon(argv)
    if _is_clp_command(program):
        return _recognise_clp(program, argv)
    return None


def _recognise_clp(command: str, argv: list[str]) -> ControlRequest | None:
    # ismon.cmdline.options.WatchOptions: the ID may come first, before the options.
    leading = [argv[0]] if argv and not argv[0].startswith("-") else []
    scanned = _scan(argv[len(leading) :], VERBS, ("timeout", "state-dir", "kill-after"))
    if scanned is None:
        return None
    given, rest = scanned
    positional = leading + rest
    actions = [verb for verb in VERBS if verb in given]
    if len(positional) != 1 or len(actions) != 1:
        return None
    watch_id = _watch_id(positional[0])
    stop_wait = _stop_wait(given.get("timeout", "10"))
    ok, state_dir = _state_dir(given)
    if watch_id is None or stop_wait is None or not ok:
        return None
    ok, kill_after = _kill_after(given, actions[0])
    if not ok:
        return None
    return ControlRequest(
        command, watch_id, actions[0], stop_wait, state_dir, kill_after=kill_after
    )


def _recognise_ismon(argv: list[str]) -> ControlRequest | None:
    if not argv or argv[0] not in (*VERBS, "status"):
        return None
    verb, rest = argv[0], argv[1:]
    # ismon.cmdline.cli._main: the ID may come first, as in the 2004 syntax.
    if rest and not rest[0].startswith("-"):
        rest = [*rest[1:], rest[0]]
    scanned = _scan(rest, ("json",), ("timeout", "state-dir", "kill-after", "for", "reason"))
    if scanned is None:
        return None
    given, positional = scanned
    ok, pause_for, pause_reason = _pause_arguments(given, verb)
    if not ok:
        return None
    stop_wait = _stop_wait(given.get("timeout", "10"))
    ok, state_dir = _state_dir(given)
    if len(positional) > 1 or stop_wait is None or not ok:
        return None
    action = None if verb == "status" else verb
    ok, kill_after = _kill_after(given, action)
    if not ok:
        return None
    as_json = "json" in given
    if not positional:
        if action is not None:
            return None  # no ID: message 13 comes from the long way
        return ControlRequest("ismon", None, None, stop_wait, state_dir, as_json)
    watch_id = _watch_id(positional[0])
    if watch_id is None:
        return None
    # The watch's protocol is not known here: what is said is said as ismon.
    return ControlRequest(
        "ismon",
        watch_id,
        action,
        stop_wait,
        state_dir,
        as_json,
        kill_after,
        pause_for,
        pause_reason,
    )


def _pause_arguments(given: dict[str, str], verb: str) -> tuple[bool, int | None, str | None]:
    """C{--for} and C{--reason}: valid, and given with pause only."""
    text, reason = given.get("for"), given.get("reason")
    if text is None and reason is None:
        return True, None, None
    if verb != "pause" or (reason is not None and reason_problem(reason) is not None):
        return False, None, None
    seconds = None if text is None else parse_duration(text)
    return (text is None or seconds is not None), seconds, reason
