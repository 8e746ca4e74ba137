# -*- test-case-name: tests.test_exporter -*-
# Much of twisted.web and twisted.internet.endpoints is untyped.
# mypy: disallow-untyped-calls=False
"""
The exporter: the watches of a state folder as Prometheus metrics, served
over HTTP on C{/metrics} and nothing else (docs/prometheus.md).  Its
command line is L{ismon.cmdline.exporter} (C{ismon exporter}, C{twistd -n
ismon-exporter}).

At each scrape the L{Collector} asks every running watch for its status,
all at once, each within C{--watch-timeout}; L{ismon.metrics.render} turns
what it found into the text.  Scrapes that arrive while the watches are
being asked share that round of answers, so however many clients scrape,
each watch gets one status request at a time.  The site defends itself
against hostile clients (L{ismon.metrics.site}).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ismon.metrics.collector import Collector
from ismon.metrics.render import (
    CLASSIC_CONTENT_TYPE,
    OPENMETRICS_CONTENT_TYPE,
    WatchSnapshot,
    render,
)
from ismon.metrics.site import MAX_CONNECTIONS, GuardedSite, plain
from ismon.state.folder import StateDirError

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "DEFAULT_WATCH_TIMEOUT",
    "MAX_WATCH_TIMEOUT",
    "MIN_WATCH_TIMEOUT",
    "Exporter",
    "ExporterConfig",
    "Listen",
    "listen_failure",
    "wants_openmetrics",
]

# A reactor providing IReactorTime, IReactorTCP and IReactorUNIX.
ReactorType = Any

_log = Logger(namespace="ismon.metrics.exporter")

#: Inside Prometheus's exporter range 9100-9999 (docs/prometheus.md, "Port").
DEFAULT_PORT = 9785


DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"


#: Well under Prometheus's default scrape timeout of 10 s, so that a stuck
#: watch still leaves the scrape time to answer.
DEFAULT_WATCH_TIMEOUT = 2.0


MIN_WATCH_TIMEOUT = 0.1


MAX_WATCH_TIMEOUT = 60.0

_PROMETHEUS_ACCEPT = "application/openmetrics-text"


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
    #: The watches' state folder; L{None}: L{ismon.state.folder.default_state_dir}.
    state_dir: Path | None = None
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT


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


class _MetricsPage(Resource):
    """C{GET|HEAD /metrics}; everything else is refused."""

    isLeaf = True

    def __init__(self, collector: Collector) -> None:
        super().__init__()
        self._collector = collector

    def render(self, request: Request) -> bytes | int:
        if request.path != b"/metrics":
            return plain(request, 404, "Not found: this exporter serves /metrics only.\n")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return plain(request, 405, "Method not allowed: use GET or HEAD.\n")
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
                body = plain(
                    request, 500, "The exporter could not read the watches; see its log.\n"
                )
                request.write(body)
                request.finish()

        self._collector.snapshots().addCallback(answer).addErrback(failed)
        return NOT_DONE_YET


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
        self.site = GuardedSite(_MetricsPage(self.collector), reactor, max_connections)

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

    def service(self, cannot_listen: Callable[[str], object]) -> Service:
        """
        A service: listens when started, stops listening when stopped.  A
        port that cannot be bound is no traceback but C{cannot_listen} with
        the reason: the command line says it in one line and ends the
        process with status 4.
        """
        return _ExporterService(self, cannot_listen)


class _ExporterService(Service):
    def __init__(self, exporter: Exporter, cannot_listen: Callable[[str], object]) -> None:
        self._exporter = exporter
        self._cannot_listen_hook = cannot_listen
        self._port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self._exporter.listen().addCallbacks(self._listening, self._cannot_listen)

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        _log.info("ismon exporter: {what}", what=self._exporter.describe())

    def _cannot_listen(self, failure: Failure) -> None:
        self._cannot_listen_hook(listen_failure(failure))

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None  # type: ignore[return-value]


def listen_failure(failure: Failure) -> str:
    """Why a port could not be bound, in a few words (its errno's text)."""
    number = getattr(getattr(failure.value, "socketError", None), "errno", None)
    if isinstance(number, int):
        return os.strerror(number)
    return str(failure.value)
