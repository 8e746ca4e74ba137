# -*- test-case-name: tests.test_exporter -*-
# Much of twisted.web is untyped.
# mypy: disallow-untyped-calls=False
"""
A twisted.web site that defends itself against the clients anybody who can
reach its port may be (docs/prometheus.md, "Hostile clients"): request
heads are small and must arrive whole within a few seconds, request bodies
are dropped unread, idle connections are cut, and the connections open at
once are capped, the least recently active idle one making room for a new
one.  twisted.web has the parsing but not these limits.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "REQUEST_DEADLINE",
    "GuardedSite",
    "plain",
]

# A reactor providing IReactorTime.
ReactorType = Any

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


class _Request(Request):
    """A request whose body, which a GET or HEAD has no use for, is never kept."""

    def gotLength(self, length: int | None) -> None:
        # Twisted spools a large body to a temporary file; drop it instead.
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


class GuardedSite(Site):
    """
    A site with the limits above, serving C{resource}; at most
    C{max_connections} connections at once.
    """

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


def _abort(channel: HTTPChannel) -> None:
    if channel.transport is not None:
        channel.transport.abortConnection()  # type: ignore[attr-defined]


def plain(request: Request, code: int, text: str) -> bytes:
    """Answer C{request} with C{code} and a short plain-text body; the body."""
    body = text.encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body
