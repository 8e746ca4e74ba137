# -*- test-case-name: tests.test_exporter -*-
# Much of twisted.internet is untyped.
# mypy: disallow-untyped-calls=False
"""
C{ismon exporter [--listen ADDR:PORT] [--state-dir DIR] [--watch-timeout S]}
and C{twistd -n ismon-exporter}: the command line of the exporter
(L{ismon.metrics.exporter}, docs/prometheus.md).  It runs the same service
twistd runs; a bad command line is one line and exit 2, a port or state
folder that cannot be used one line and exit 4.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.python import usage

from ismon import __version__
from ismon.cmdline.options import plain_usage_error
from ismon.core.exit_status import ExitStatus
from ismon.core.text import quote
from ismon.metrics.exporter import (
    DEFAULT_LISTEN,
    DEFAULT_WATCH_TIMEOUT,
    MAX_WATCH_TIMEOUT,
    MIN_WATCH_TIMEOUT,
    Exporter,
    ExporterConfig,
    Listen,
)
from ismon.state.folder import StateDir, StateDirError

__all__ = ["ExporterOptions", "main", "parse_listen", "parse_watch_timeout", "run"]


def parse_listen(text: str) -> Listen:
    """
    C{A.B.C.D:PORT} or C{[IPv6]:PORT}, port 1-65535.  Only IP addresses:
    what the exporter binds must be plain to see (C{0.0.0.0} or C{[::]} for
    every interface), not the result of a name lookup.

    @raise ValueError: anything else; the message says what is wrong.
    """
    want = "ADDRESS:PORT with an IP address (127.0.0.1:9785, [::1]:9785, 0.0.0.0:9785)"
    if text.startswith("[") and "]:" not in text:
        raise ValueError(f"--listen must be {want}, not {quote(text)}: give the port")
    host, colon, port_text = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"--listen must be {want}, not {quote(text)}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    elif ":" in host:
        raise ValueError(f"--listen: put an IPv6 address in brackets, [{host}]:{port_text}")
    else:
        version = 4
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--listen must be {want}, not {quote(text)}") from None
    if address.version != version:
        raise ValueError(f"--listen: {quote(host)} is not an IPv{version} address")
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(
            f"--listen: the port must be a whole number from 1 to 65535, not {quote(port_text)}"
        )
    return Listen(str(address), int(port_text))


def parse_watch_timeout(text: str) -> float:
    """Seconds, L{MIN_WATCH_TIMEOUT} to L{MAX_WATCH_TIMEOUT}; L{ValueError} otherwise."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not MIN_WATCH_TIMEOUT <= seconds <= MAX_WATCH_TIMEOUT:  # NaN fails too
        raise ValueError(
            f"--watch-timeout must be seconds from {MIN_WATCH_TIMEOUT:g} to"
            f" {MAX_WATCH_TIMEOUT:g}, not {quote(text)}"
        )
    return seconds


class ExporterOptions(usage.Options):
    synopsis = "ismon exporter [--listen ADDR:PORT] [--state-dir DIR] [--watch-timeout S]"
    longdesc = (
        "Serve the watches of a state folder as Prometheus metrics on "
        "http://ADDR:PORT/metrics (classic text format, or OpenMetrics 1.0 when "
        "the Accept header asks for application/openmetrics-text); every other "
        "path is 404.  At each scrape every running watch is asked over its "
        "control socket, all at once, each within --watch-timeout seconds; a "
        "watch that does not answer shows ismon_up 0.  It binds 127.0.0.1 unless "
        "told otherwise, takes no watch's lock, and ends on SIGTERM or SIGINT "
        "(exit 0).  Exit 2: a bad command line; 4: the port or the state folder "
        "cannot be used.  See docs/prometheus.md."
    )
    optParameters: Any = [
        [
            "listen",
            None,
            DEFAULT_LISTEN,
            "IP address and TCP port to serve on: A.B.C.D:PORT or [IPv6]:PORT;"
            " 0.0.0.0:PORT or [::]:PORT for every interface.",
        ],
        [
            "state-dir",
            None,
            None,
            "The watches' state folder (default: $ISMON_STATE_DIR, else /run/ismon"
            " for root, as the watches choose).",
        ],
        [
            "watch-timeout",
            None,
            f"{DEFAULT_WATCH_TIMEOUT:g}",
            f"Seconds each watch has to answer a scrape"
            f" ({MIN_WATCH_TIMEOUT:g}-{MAX_WATCH_TIMEOUT:g}); keep it under the scrape timeout.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.config = ExporterConfig()

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"ismon {__version__}")
        sys.exit(0)

    def parseArgs(self, *args: str) -> None:
        if args:
            raise usage.UsageError(f"unexpected argument {quote(args[0])}")

    def postOptions(self) -> None:
        try:
            listen = parse_listen(self["listen"])
            timeout = parse_watch_timeout(self["watch-timeout"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        folder = self["state-dir"]
        if folder is not None and not folder:
            raise usage.UsageError("--state-dir must name a folder")
        self.config = ExporterConfig(listen, Path(folder) if folder else None, timeout)


def _say(text: str) -> None:
    sys.stderr.write(f"ismon exporter: {text}\n")


def main(argv: Sequence[str]) -> int:
    """C{ismon exporter ...}: run until SIGTERM or SIGINT; the exit status."""
    options = ExporterOptions()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        _say(f"{plain_usage_error(str(e), options.longOpt)} (see ismon exporter --help)")
        return ExitStatus.INVALID_PARAMETER
    return run(options.config)


def run(config: ExporterConfig) -> int:
    from twisted.internet import reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    try:
        StateDir.open(config.state_dir, create=False, of_other_user=True)
    except StateDirError as e:
        _say(f"cannot use the state folder: {e}")
        return ExitStatus.SYSTEM_ERROR
    # Our own lines, and only warnings and errors of Twisted's: it logs
    # every client it times out at info level, and hostile clients are many.
    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    levels.setLogLevelForNamespace("ismon.metrics.exporter", LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stdout), [levels])],
        redirectStandardIO=False,
    )
    code = [int(ExitStatus.STOPPED)]

    def cannot_listen(why: str) -> None:
        _say(f"cannot listen on {config.listen}: {why}")
        code[0] = ExitStatus.SYSTEM_ERROR
        reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]

    service = Exporter(config, reactor).service(cannot_listen)
    reactor.callWhenRunning(service.startService)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
    # Twisted takes over SIGINT only from Python's default handler; started
    # in the background by a shell, we inherit it ignored (as a watch does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()  # type: ignore[attr-defined]
    sys.stdout.flush()
    return code[0]
