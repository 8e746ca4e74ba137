# -*- test-case-name: tests.test_http,tests.test_http_checks -*-
"""
The HTTP probe: C{HEAD <uri> HTTP/1.x} (or C{GET}, its body read up to
--max-body), judged on the status line, the expected header fields and body
(docs/failure-rules.md, HTTP).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.error import ConnectionDone

from ismon import __version__
from ismon.core.catalogue import MessageId
from ismon.core.requests import HttpRequest
from ismon.core.result import Phase, ProbeResult
from ismon.core.text import printable
from ismon.probes.conversation import ConversationProbe
from ismon.probes.probe import ProbeProtocol, ReactorType
from ismon.probes.resolve import Resolver
from ismon.wire.http import (
    HttpBodyReader,
    HttpHeadParser,
    InvalidResponse,
    body_framing,
    judge_http_body,
    judge_http_headers,
    judge_http_status,
)

__all__ = ["HttpProbe", "build_request"]


def _host_header(host: str, port: int, default_port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        is_v6 = False
    name = f"[{host.strip('[]')}]" if is_v6 else host
    return name if port == default_port else f"{name}:{port}"


def build_request(request: HttpRequest) -> bytes:
    """
    The bytes of the request.  C{Host} goes out for 1.0 too: name-based
    virtual hosts answer 400 without it (--host-header names another one).
    """
    default_port = 443 if request.tls else 80
    host_name = request.tls.servername if request.tls else request.host
    host = request.host_header or _host_header(host_name, request.port, default_port)
    lines = [
        f"{request.method} {request.uri} HTTP/{request.version}",
        f"Host: {host}",
        f"User-Agent: ismon/{__version__}",
        "Accept: */*",
        "Connection: close",
    ]
    if request.credentials is not None:
        lines.append(f"Authorization: {request.credentials.authorization()}")
    return "\r\n".join([*lines, "", ""]).encode("utf-8")


class _HeadProtocol(ProbeProtocol):
    def __init__(self, request: HttpRequest, payload: bytes) -> None:
        self._request = request
        self._payload = payload
        self._parser = HttpHeadParser()
        self._body: HttpBodyReader | None = None

    def begin(self) -> None:
        self.phase = Phase.SEND
        self.transport.write(self._payload)  # type: ignore[union-attr]
        self.phase = Phase.WAIT

    def dataReceived(self, data: bytes) -> None:
        if self.decided:
            return
        self.phase = Phase.RECEIVE
        try:
            if self._body is not None:
                if self._body.feed(data):
                    self._judge_body()
                return
            status = self._parser.feed(data)
            if status is not None:
                self._judge()
        except InvalidResponse as e:
            self._invalid(e)

    def _invalid(self, e: InvalidResponse) -> None:
        self.phase = Phase.PARSE
        self.fail(MessageId.INVALID_RESPONSE, reply=printable(e.received, 120), detail=e.reason)

    def _judge(self) -> None:
        status = self._parser.status
        assert status is not None
        request = self._request
        message, number = judge_http_status(
            status,
            request.uri,
            request.expect_status,
            authenticated=request.credentials is not None,
        )
        if message is not None:
            self.phase = Phase.PARSE
            self.fail(message, number=number, reply=status.raw)
            return
        missing = judge_http_headers(self._parser.headers, request.expect_headers)
        if missing is not None:
            self.phase = Phase.PARSE
            self.fail(MessageId.HEADER_MISSING, reply=status.raw, detail=missing)
            return
        framing, length = body_framing(request.method, status, self._parser)
        self._body = HttpBodyReader(framing, length, request.max_body)
        # The body read with the status line, under the same deadline.
        if self._body.feed(self._parser.rest):
            self._judge_body()

    def _judge_body(self) -> None:
        assert self._body is not None and self._parser.status is not None
        missing = judge_http_body(self._body.body, self._body.truncated, self._request.expect_body)
        if missing is None:
            self.succeed(self._parser.status.raw)
        else:
            self.phase = Phase.PARSE
            self.fail(MessageId.BODY_MISSING, reply=self._parser.status.raw, detail=missing)

    def ended(self, reason: Any) -> ProbeResult:
        # Only a clean close leaves a partial answer to judge; a reset (or a
        # TLS connection cut without close_notify) is a failed connection
        # (docs/failure-rules.md, HTTP rule 2): message 75 with ECONNRESET.
        if self._body is not None:
            # Status and headers passed; the body was being read.
            if reason.check(ConnectionDone) and self._body.end():
                assert self._parser.status is not None
                missing = judge_http_body(
                    self._body.body, self._body.truncated, self._request.expect_body
                )
                reply = self._parser.status.raw
                if missing is None:
                    return ProbeResult(ok=True, latency=self.elapsed(), reply=reply)
                return ProbeResult.failure(
                    MessageId.BODY_MISSING, Phase.PARSE, reply=reply, detail=missing
                )
            # Closed before the framing's end, or reset: message 75.
            return super().ended(reason)
        if self._parser.received and reason.check(ConnectionDone):
            try:
                status = self._parser.end()
            except InvalidResponse as e:
                return ProbeResult.failure(
                    MessageId.INVALID_RESPONSE,
                    Phase.PARSE,
                    reply=printable(e.received, 120),
                    detail=e.reason,
                )
            if status is not None and not (
                self._request.expect_headers or self._request.expect_body
            ):
                # The server closed before the blank line, but it told us its
                # status; judge that rather than fail a server that answered
                # (unless its headers or body were to be checked).
                message, number = judge_http_status(
                    status,
                    self._request.uri,
                    self._request.expect_status,
                    authenticated=self._request.credentials is not None,
                )
                if message is None:
                    return ProbeResult(ok=True, latency=self.elapsed(), reply=status.raw)
                return ProbeResult.failure(message, Phase.PARSE, number=number, reply=status.raw)
        return super().ended(reason)


class HttpProbe(ConversationProbe[HttpRequest]):
    """Probe an HTTP(S) server with HEAD (or GET)."""

    def __init__(
        self, reactor: ReactorType, request: HttpRequest, resolver: Resolver | None = None
    ) -> None:
        super().__init__(reactor, request, resolver)
        self._payload = build_request(request)

    def conversation(self) -> ProbeProtocol:
        return _HeadProtocol(self.request, self._payload)
