# -*- test-case-name: tests.test_cli_params,tests.test_watch,tests.test_control_commands -*-
"""
The Twisted side of the commands: C{clp_httpmon}, C{clp_smtpmon} (the 2004
command lines) and C{ismon} (C{ismon http|smtp ID ...}: one per protocol of
L{ismon.core.protocols}; and the control
verbs C{stop|pause|continue|status|disp|del} when L{ismon.entry} could not
hand them to L{ismon.control.commands} first: help, and every refusal; and
C{ismon exporter}, L{ismon.metrics.exporter}).

Of the command modules, this is the only one that runs the global reactor.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from twisted.python import usage

from ismon import __version__
from ismon.cmdline.manual import full_help
from ismon.cmdline.options import (
    OPTIONS,
    ParameterError,
    WatchOptions,
    control_request,
    plain_usage_error,
)
from ismon.cmdline.pages import MANUALS
from ismon.control.request import VERBS, ControlRequest
from ismon.core.catalogue import MessageId, render
from ismon.core.config import WatchConfig
from ismon.core.exit_status import ExitStatus
from ismon.core.protocols import PROTOCOLS, by_command
from ismon.core.text import quote

__all__ = [
    "clp",
    "main",
    "run_command",
]


def clp(command: str, argv: list[str] | None = None) -> NoReturn:
    """Run a 2004 command (C{clp_httpmon} ...) of L{ismon.core.protocols}."""
    protocol = by_command(command)
    assert protocol is not None, command
    _exit_quietly_on_broken_pipe(
        lambda: run_command(OPTIONS[protocol.name], sys.argv[1:] if argv is None else argv)
    )


def _exit_quietly_on_broken_pipe(run: Callable[[], int]) -> NoReturn:
    """
    Exit with C{run()}'s status; when the reader of our output left early
    (C{clp_httpmon --help | head}), exit 0 without a traceback: that is
    not our error.
    """
    code: object
    try:
        try:
            code = run()
        except SystemExit as e:  # --help and --version print, then exit
            code = e.code
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = ExitStatus.STOPPED
    sys.exit(code)


def _refuse(options: WatchOptions, error: usage.UsageError, *, to_syslog: bool = True) -> int:
    return _refuse_as(options.command, options.watch_id, error, to_syslog=to_syslog)


def _refuse_as(
    command: str, watch_id: str | None, error: usage.UsageError, *, to_syslog: bool = True
) -> int:
    """One line on stderr: the catalogue message, then what was wrong."""
    message = error.message if isinstance(error, ParameterError) else MessageId.INVALID_PARAMETER
    detail = error.detail if isinstance(error, ParameterError) else str(error)
    # getopt's own errors quote the raw option ("--bo\ngus"): keep ONE line.
    detail = "".join(c if c.isprintable() else repr(c)[1:-1] for c in detail)
    shown = watch_id if watch_id is not None else ""
    if len(shown) > 40 or not shown.isascii() or not shown.isalnum():
        shown = "?"
    text = render(message, command=command, watch_id=shown)
    sys.stderr.write(f"{text} {detail} (see --help)\n")
    if to_syslog:
        _syslog_best_effort(command, text)
    return ExitStatus.INVALID_PARAMETER


def _syslog_best_effort(command: str, text: str) -> None:
    from ismon.watch.report import SyslogObserver

    observer = SyslogObserver("/dev/log", command)
    observer.send(text, 3)
    observer.close()


def parse(options_class: type[WatchOptions], argv: list[str]) -> WatchConfig | ControlRequest | int:
    """
    A watch to run, a control command, or an exit status: of a refusal, or
    0 for a C{--check} that passed.
    """
    options = options_class()
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        # --check touches nothing but the files it must read (--ca-file):
        # its verdict goes to stderr only (README "Running a watch").
        return _refuse(options, e, to_syslog="--check" not in argv)
    if options.check:
        return ExitStatus.STOPPED
    parsed = options.config or options.control
    assert parsed is not None
    return parsed


def run_command(options_class: type[WatchOptions], argv: list[str]) -> int:
    parsed = parse(options_class, argv)
    if isinstance(parsed, int):
        return parsed
    if isinstance(parsed, WatchConfig):
        return run_watch(parsed)
    return control_command(parsed)


# -- running a watch in the foreground --------------------------------------


def run_watch(config: WatchConfig) -> int:
    """Run the watch until it ends; return its exit status."""
    from ismon.cmdline import room

    # No room to watch: one line and exit 4 now, before anything is
    # imported or created (docs/failure-rules.md, "The monitor's own
    # failures").  Without it, a few descriptors short made the probes
    # fail (a healthy server reported failed), fewer gave tracebacks.
    shortfall = room.descriptor_shortfall() or room.memory_shortfall(room.MEMORY_TO_START)
    if shortfall is not None:
        return _no_room(config, shortfall)
    try:
        return _run_watch(config)
    except MemoryError:
        # Importing or setting up ran out of address space: no traceback.
        return _no_room(
            config, room.Shortfall("memory", errno.ENOMEM, "out of memory while starting")
        )


def _no_room(config: WatchConfig, shortfall: Any) -> int:
    """Message 42 for a watch the limits leave no room for, one line on stderr."""
    from ismon.cmdline.room import refusal

    try:
        sys.stderr.write(refusal(config.command, config.watch_id, shortfall) + "\n")
        sys.stderr.flush()
    except (OSError, MemoryError):
        pass
    return ExitStatus.SYSTEM_ERROR


def _run_watch(config: WatchConfig) -> int:
    from ismon.cmdline import room
    from ismon.cmdline.startup import leave_out_tls_stack

    leave_out_tls_stack(config)  # decided here, before the reactor is imported
    from twisted.internet import reactor
    from twisted.logger import FilteringLogObserver, globalLogBeginner, textFileLogObserver

    from ismon.cmdline.process import exit_now, use_monotonic_clock
    from ismon.probes.table import make_probe
    from ismon.watch.report import CatalogueFilter
    from ismon.watch.service import WatchService

    # Everything is imported: what is left to come must fit as well.
    shortfall = room.memory_shortfall(room.MEMORY_TO_RUN)
    if shortfall is not None:
        return _no_room(config, shortfall)
    use_monotonic_clock(reactor)
    # The log is the message catalogue; --debug adds Twisted's own events.
    only = [CatalogueFilter(config.debug)]
    observers: list[Any] = [FilteringLogObserver(textFileLogObserver(sys.stdout), only)]
    logfile = None
    if config.logfile:
        try:
            logfile = open(config.logfile, "a", encoding="utf-8")
        except OSError as e:
            return _system_error(
                config.command, config.watch_id, "open", e, what=f"--logfile {config.logfile}: "
            )
        observers.append(FilteringLogObserver(textFileLogObserver(logfile), only))
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)

    def on_exit(code: int) -> None:
        reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]

    service = WatchService(config, reactor, make_probe=make_probe, on_exit=on_exit)
    reactor.callWhenRunning(service.startService)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    # Twisted takes over SIGINT only from Python's default handler; a watch
    # started in the background by a non-interactive shell inherits it
    # ignored, and README "Exit codes" promises that SIGINT stops a watch.
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()  # type: ignore[attr-defined]
    code = service.exit_code if service.exit_code is not None else ExitStatus.STOPPED
    exit_now(code, logfile)


# -- talking to a running watch ----------------------------------------------


def control_command(request: ControlRequest) -> int:
    """--stop / --pause / --continue / --disp / --del, or status, for one ID."""
    from ismon.control import commands

    # The one implementation of what the control commands print and return;
    # ismon.entry runs the command lines it recognises there directly.
    return commands.run(request)


# -- the ismon command -------------------------------------------------------

# `ismon --help` and the ismon(8) page come from the same text (ismon.cmdline.manual).
_USAGE = full_help(MANUALS["ismon"])


class _ControlOptions(usage.Options):
    optFlags: Any = [["json", None, "Print JSON."]]
    optParameters: Any = [
        ["state-dir", None, None, "State folder."],
        ["timeout", "r", "10", "With stop: seconds to wait for the exit."],
        ["kill-after", None, None, "With stop: SIGTERM, then SIGKILL after this many s."],
        ["for", None, None, "With pause: end the pause by itself after this long."],
        ["reason", None, None, "With pause: why (shown by status)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.watch_id: str | None = None
        # The ID was moved behind the options (getopt stops at it).
        self.id_moved = False

    def parseArgs(self, *args: str) -> None:
        if self.id_moved and args:
            args = (args[-1], *args[:-1])
        if len(args) > 1:
            extra = " ".join(quote(arg) for arg in args[1:])
            noun = "argument" if len(args) == 2 else "arguments"
            raise usage.UsageError(f"unexpected {noun} {extra}: give one watch ID")
        self.watch_id = args[0] if args else None


def main(argv: list[str] | None = None) -> NoReturn:
    _exit_quietly_on_broken_pipe(lambda: _main(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_USAGE)
        return ExitStatus.STOPPED if argv else ExitStatus.INVALID_PARAMETER
    if argv[0] == "--version":
        print(f"ismon {__version__}")
        return 0
    verb, rest = argv[0], argv[1:]
    if verb in PROTOCOLS:
        return run_command(OPTIONS[verb], rest)
    if verb == "exporter":
        from ismon.cmdline import exporter

        return exporter.main(rest)
    if verb == "metrics":
        # ismon.entry runs every other metrics command line (ismon.metrics.command).
        from ismon.metrics import command as metrics_command

        if metrics_command.wants_help(rest):
            sys.stdout.write(_USAGE)
            return ExitStatus.STOPPED
        return metrics_command.metrics(rest)
    if verb not in (*VERBS, "status"):
        sys.stderr.write(f"ismon: unknown command {quote(verb)} (see ismon --help)\n")
        return ExitStatus.INVALID_PARAMETER
    parsed = parse_control(verb, rest)
    return parsed if isinstance(parsed, int) else control_command(parsed)


def parse_control(verb: str, argv: list[str]) -> ControlRequest | int:
    """
    C{ismon VERB ...} for a control verb (C{status}, C{stop} ...): the request,
    or the exit status of its refusal, told in one line on stderr.  The fast
    parser (L{ismon.control.recognise}) is this one's twin:
    C{tests/test_control_parsers.py} holds them equal.
    """
    options = _ControlOptions()
    # Let the ID come first, as in the 2004 syntax.
    if argv and not argv[0].startswith("-"):
        argv = [*argv[1:], argv[0]]
        options.id_moved = True
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        return _refuse_plainly(verb, plain_usage_error(str(e), options.longOpt))
    if options["kill-after"] is not None and verb != "stop":
        return _refuse_plainly(verb, "--kill-after goes with stop")
    if (options["for"] is not None or options["reason"] is not None) and verb != "pause":
        return _refuse_plainly(verb, "--for and --reason go with pause")
    try:
        return control_request(
            "ismon",
            options.watch_id,
            None if verb == "status" else verb,
            stop_wait=options["timeout"],
            state_dir=options["state-dir"],
            kill_after=options["kill-after"],
            as_json=bool(options["json"]),
            pause_for=options["for"],
            pause_reason=options["reason"],
            every=verb == "status" and options.watch_id is None,
        )
    except ParameterError as e:
        return _refuse_as("ismon", options.watch_id, e)


def _refuse_plainly(verb: str, why: str) -> int:
    sys.stderr.write(f"ismon {verb}: {why} (see --help)\n")
    return ExitStatus.INVALID_PARAMETER


def _system_error(
    command: str, watch_id: str, function: str, error: OSError, *, what: str = ""
) -> int:
    """Message 42 with the failing step and errno, the reason after it."""
    from ismon.control import commands

    return commands.system_error(command, watch_id, function, error, what=what)
