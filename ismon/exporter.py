# -*- test-case-name: tests.test_exporter -*-
# Much of twisted.web and twisted.internet.endpoints is untyped.
# mypy: disallow-untyped-calls=False
"""
C{ismon exporter}: the watches of a state folder as Prometheus metrics,
served over HTTP on C{/metrics} and nothing else (docs/prometheus.md).

At each scrape it lists the watches in the state folder and asks every
running one for its status over its control socket (L{ismon.control}),
all at once, each within C{--watch-timeout}: a watch that does not answer
costs one timeout and shows C{ismon_up 0}, never the whole scrape.  For a
watch that does not run it reads the C{ID.last} record beside it.  It never
takes a watch's lock (a lock it held for a moment could make a watch
starting just then fail): a watch runs while its pidfile names a live
process.
L{ismon.metrics} turns what it found into the text.

A scraper may be anybody who can reach the port, so the HTTP side
defends itself: request heads are small and must arrive whole within a
few seconds, request bodies are dropped unread, idle connections are cut,
and the connections open at once are capped, the least recently active
idle one making room for a new one (docs/prometheus.md, "Hostile
clients").  Scrapes that arrive while the watches are being asked share
that round of answers, so however many clients scrape, each watch gets
one status request at a time.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ismon.control import status as watch_status
from ismon.control_client import ControlError
from ismon.control_commands import ended_snapshot
from ismon.exit_status import ExitStatus
from ismon.metrics import (
    CLASSIC_CONTENT_TYPE,
    OPENMETRICS_CONTENT_TYPE,
    WatchSnapshot,
    render,
)
from ismon.options import plain_usage_error, quote
from ismon.state import StateDir, StateDirError, list_watch_ids, pidfile_pid

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "DEFAULT_WATCH_TIMEOUT",
    "Collector",
    "Exporter",
    "ExporterConfig",
    "ExporterOptions",
    "Listen",
    "main",
    "parse_listen",
    "parse_watch_timeout",
    "wants_openmetrics",
]

# A reactor providing IReactorTime, IReactorTCP and IReactorUNIX.
ReactorType = Any

_log = Logger(namespace="ismon.exporter")

#: Inside Prometheus's exporter range 9100-9999 (docs/prometheus.md, "Port").
DEFAULT_PORT = 9785
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
#: Well under Prometheus's default scrape timeout of 10 s, so that a stuck
#: watch still leaves the scrape time to answer.
DEFAULT_WATCH_TIMEOUT = 2.0
MIN_WATCH_TIMEOUT = 0.1
MAX_WATCH_TIMEOUT = 60.0

#: Connections served at once.  Each costs a few kB; a scraper needs one.
MAX_CONNECTIONS = 128
#: Seconds a connection may stay silent between requests.  Over the 15 s
#: scrape interval most setups use, so Prometheus keeps its connection.
IDLE_TIMEOUT = 30.0
#: Seconds from a request's first byte to its last: Twisted's idle timeout
#: restarts on every byte, so one byte a second would hold a connection for
#: ever; a real scraper sends its few hundred bytes at once.
REQUEST_DEADLINE = 10.0
#: Bytes of request line plus headers.  Prometheus sends about 300;
#: Twisted's own limit is 16 kB.
MAX_HEAD_BYTES = 8192
#: Control connections open at once during a scrape: the watches are asked
#: all together up to this many, well within the default 1024 descriptors.
MAX_PARALLEL_ASKS = 256

_PROMETHEUS_ACCEPT = "application/openmetrics-text"


# -- pure parsing ----------------------------------------------------------------


@attrs.frozen
class Listen:
    """Where the exporter listens: an IP address (v4 or v6) and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def ipv6(self) -> bool:
        return ":" in self.host


@attrs.frozen
class ExporterConfig:
    """What C{ismon exporter} was asked to do."""

    listen: Listen = Listen("127.0.0.1", DEFAULT_PORT)
    #: The watches' state folder; L{None}: L{ismon.state.default_state_dir}.
    state_dir: Path | None = None
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT


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


def wants_openmetrics(accept: str | None) -> bool:
    """
    Whether an C{Accept} header asks for OpenMetrics: it names
    C{application/openmetrics-text} with a quality above 0 (Prometheus
    sends it first, with C{text/plain} as its fallback).
    """
    for media_range in (accept or "").split(","):
        kind, *parameters = (part.strip() for part in media_range.split(";"))
        if kind.lower() != _PROMETHEUS_ACCEPT:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            return True
    return False


# -- asking the watches ----------------------------------------------------------


class Collector:
    """
    Asks the watches of a state folder for their status, each within
    C{watch_timeout} seconds, all at once.

    Callers of L{snapshots} while a round of asking is under way wait for
    that round instead of starting one: answers at most C{watch_timeout}
    old, and at most one status request per watch at a time however many
    scrapers there are.
    """

    def __init__(self, reactor: ReactorType, state_dir: Path | None, watch_timeout: float) -> None:
        self._reactor = reactor
        self._state_dir = state_dir
        self._timeout = watch_timeout
        self._waiters: list[Deferred[list[WatchSnapshot]]] = []
        self._asking = False
        self._limit = DeferredSemaphore(MAX_PARALLEL_ASKS)

    def snapshots(self) -> Deferred[list[WatchSnapshot]]:
        """What every watch in the folder said (or not), sorted by ID."""
        waiter: Deferred[list[WatchSnapshot]] = Deferred()
        self._waiters.append(waiter)
        if not self._asking:
            self._asking = True
            Deferred.fromCoroutine(self._ask_all()).addBoth(self._deliver)
        return waiter

    def _deliver(self, result: list[WatchSnapshot] | Failure) -> None:
        waiters, self._waiters = self._waiters, []
        self._asking = False
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _ask_all(self) -> list[WatchSnapshot]:
        # Checked at every scrape: the folder may appear, or be replaced,
        # after the exporter started; an unsafe one is refused (StateDirError).
        state = StateDir.open(self._state_dir, create=False)
        asking = [self._limit.run(self._ask, state, w) for w in list_watch_ids(state)]
        return list(await gatherResults(asking))

    async def _ask(self, state: StateDir, watch_id: str) -> WatchSnapshot:
        try:
            status = await watch_status(self._reactor, state.socket_path(watch_id), self._timeout)
        except (ControlError, OSError) as e:
            # Not running, or not answering in time: ismon_up 0.
            _log.debug("watch {watch} did not answer: {why}", watch=watch_id, why=str(e))
        except Exception:
            _log.failure("Asking watch {watch} for its status failed.", watch=watch_id)
        else:
            return WatchSnapshot(watch_id, status, None)
        if pidfile_pid(state, watch_id) is not None:
            # Running but silent: the record of an earlier run says nothing
            # of this one (ismon.metrics.WatchSnapshot).
            return WatchSnapshot(watch_id, None, None)
        try:
            return ended_snapshot(state, watch_id)
        except OSError as e:  # one watch's files must not fail the scrape
            _log.warn("watch {watch}: {why}", watch=watch_id, why=str(e))
            return WatchSnapshot(watch_id, None, None)


# -- HTTP ------------------------------------------------------------------------


class _Request(Request):
    """A request whose body, which a GET or HEAD has no use for, is never kept."""

    def gotLength(self, length: int | None) -> None:
        # Twisted spools a large body to a temporary file; drop it instead.
        import io

        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        pass


class _Channel(HTTPChannel):
    """
    One HTTP connection with the limits twisted.web lacks: the whole
    request within L{REQUEST_DEADLINE} of its first byte, and what the
    site needs to pick a connection to close when it is full.
    """

    totalHeadersSize = MAX_HEAD_BYTES
    MAX_LENGTH = MAX_HEAD_BYTES
    maxHeaders = 64
    # After an idle timeout, seconds for the goodbye to be read before the
    # connection is aborted (Twisted waits 15 s for a client that never reads).
    abortTimeout = 2

    def __init__(self) -> None:
        super().__init__()
        self.busy = False  # a request is being answered
        self.last_active = 0.0
        self._deadline: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self.last_active = self.factory.reactor.seconds()
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        self.last_active = self.factory.reactor.seconds()
        if self._deadline is None and not self.busy:
            self._deadline = self.callLater(REQUEST_DEADLINE, self._too_slow)
        super().dataReceived(data)

    def _too_slow(self) -> None:
        self._deadline = None
        _abort(self)

    def allContentReceived(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.busy = True
        super().allContentReceived()

    def requestDone(self, request: Request) -> None:
        self.busy = False
        self.last_active = self.factory.reactor.seconds()
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.factory.channels.discard(self)
        super().connectionLost(reason)


class _Site(Site):
    protocol = _Channel  # type: ignore[assignment]  # plain HTTP/1.1: no HTTP/2 to defend
    requestFactory = _Request
    noisy = False  # no "Starting factory" lines

    def __init__(self, resource: Resource, reactor: ReactorType, max_connections: int) -> None:
        super().__init__(resource, timeout=IDLE_TIMEOUT, reactor=reactor)
        self.max_connections = max_connections
        self.channels: set[_Channel] = set()

    def buildProtocol(self, addr: object) -> Any:
        if len(self.channels) >= self.max_connections:
            # Full: close the connection that has been idle longest rather
            # than refuse the new one, so held-open idle connections cannot
            # lock the scraper out.  A connection whose request is being
            # answered is never closed for another.
            idle = [channel for channel in self.channels if not channel.busy]
            if not idle:
                return None  # the port closes the new connection
            victim = min(idle, key=lambda channel: channel.last_active)
            self.channels.discard(victim)
            _abort(victim)
        channel = super().buildProtocol(addr)
        self.channels.add(channel)
        return channel

    def log(self, request: Any) -> None:
        # No access log: a scrape every few seconds would bury the exporter's
        # own lines.
        pass


class _MetricsPage(Resource):
    """C{GET|HEAD /metrics}; everything else is refused."""

    isLeaf = True

    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self._collector = collector

    def render(self, request: Request) -> bytes | int:
        if request.path != b"/metrics":
            return _plain(request, 404, "Not found: this exporter serves /metrics only.\n")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return _plain(request, 405, "Method not allowed: use GET or HEAD.\n")
        accept = request.getHeader(b"accept")
        openmetrics = wants_openmetrics(accept.decode("latin-1") if accept else None)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(snapshots: list[WatchSnapshot]) -> None:
            if gone:
                return  # the client left; nothing to write to
            body = render(snapshots, openmetrics=openmetrics).encode("utf-8")
            content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else CLASSIC_CONTENT_TYPE
            request.setHeader(b"Content-Type", content_type.encode("ascii"))
            request.setHeader(b"Content-Length", b"%d" % len(body))
            request.write(body)  # dropped for a HEAD
            request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(StateDirError):
                _log.error("Cannot read the state folder: {why}", why=str(failure.value))
            else:
                _log.failure("A scrape failed.", failure)
            if not gone:
                body = _plain(
                    request, 500, "The exporter could not read the watches; see its log.\n"
                )
                request.write(body)
                request.finish()

        self._collector.snapshots().addCallback(answer).addErrback(failed)
        return NOT_DONE_YET


def _abort(channel: HTTPChannel) -> None:
    if channel.transport is not None:
        channel.transport.abortConnection()  # type: ignore[attr-defined]


def _plain(request: Request, code: int, text: str) -> bytes:
    body = text.encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


class Exporter:
    """The web site of one exporter and where it listens."""

    def __init__(
        self,
        config: ExporterConfig,
        reactor: ReactorType,
        *,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.collector = Collector(reactor, config.state_dir, config.watch_timeout)
        self.site = _Site(_MetricsPage(self.collector), reactor, max_connections)

    def endpoint(self) -> IStreamServerEndpoint:
        from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint

        listen = self.config.listen
        kind = TCP6ServerEndpoint if listen.ipv6 else TCP4ServerEndpoint
        return kind(self.reactor, listen.port, interface=listen.host)

    def listen(self) -> Deferred[IListeningPort]:
        return self.endpoint().listen(self.site)

    def describe(self) -> str:
        folder = self.config.state_dir or "the default state folder"
        return (
            f"serving http://{self.config.listen}/metrics for the watches in {folder}"
            f" (each has {self.config.watch_timeout:g} s to answer)"
        )

    def service(self) -> Any:
        """
        A service for twistd: listens when started, stops listening when
        stopped.  A port that cannot be bound is one error line and exit 4
        (set from an atexit hook: twistd cannot choose its exit status, see
        L{ismon.process.make_twistd_service}), not a traceback.
        """
        return _ExporterService(self)


class _ExporterService(Service):
    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self._exporter.listen().addCallbacks(self._listening, self._cannot_listen)

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        _log.info("ismon exporter: {what}", what=self._exporter.describe())

    def _cannot_listen(self, failure: Failure) -> None:
        import atexit

        from ismon.process import exit_now

        where = self._exporter.config.listen
        _log.error(
            "ismon exporter: cannot listen on {where}: {why}",
            where=str(where),
            why=_reason(failure),
        )
        atexit.register(exit_now, ExitStatus.SYSTEM_ERROR)
        reactor = self._exporter.reactor
        reactor.callWhenRunning(reactor.stop)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None  # type: ignore[return-value]


# -- the command -----------------------------------------------------------------


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
        from ismon import __version__

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
        StateDir.open(config.state_dir, create=False)
    except StateDirError as e:
        _say(f"cannot use the state folder: {e}")
        return ExitStatus.SYSTEM_ERROR
    # Our own lines, and only warnings and errors of Twisted's: it logs
    # every client it times out at info level, and hostile clients are many.
    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    levels.setLogLevelForNamespace("ismon.exporter", LogLevel.info)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stdout), [levels])],
        redirectStandardIO=False,
    )
    exporter = Exporter(config, reactor)
    code = [int(ExitStatus.STOPPED)]

    def listening(port: IListeningPort) -> None:
        _log.info("ismon exporter: {what}", what=exporter.describe())

    def cannot_listen(failure: Failure) -> None:
        _say(f"cannot listen on {config.listen}: {_reason(failure)}")
        code[0] = ExitStatus.SYSTEM_ERROR
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: exporter.listen().addCallbacks(listening, cannot_listen)
    )
    # Twisted takes over SIGINT only from Python's default handler; started
    # in the background by a shell, we inherit it ignored (as a watch does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.run()  # type: ignore[attr-defined]
    sys.stdout.flush()
    return code[0]


def _reason(failure: Failure) -> str:
    number = getattr(getattr(failure.value, "socketError", None), "errno", None)
    if isinstance(number, int):
        return os.strerror(number)
    return str(failure.value)
