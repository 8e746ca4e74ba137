# -*- test-case-name: tests.test_http -*-
"""
Tests for L{ismon.probes.http}: the HEAD request bytes and the HTTP probe's
verdicts (docs/failure-rules.md, HTTP), on a L{MemoryReactorClock}.
"""

from __future__ import annotations

import errno
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from ismon import __version__
from ismon.core.catalogue import MessageId
from ismon.core.requests import HttpRequest, StatusSet, TLSSettings
from ismon.core.result import Phase
from ismon.probes.http import HttpProbe, build_request
from ismon.probes.probe import IProbe
from tests.test_probe import (
    ConnectionFailureTests,
    ProbeCase,
    aborted,
    closed,
    collect,
    connect,
    reset,
    resolving,
    v4,
    v6,
)


def _tail() -> bytes:
    return (
        b"User-Agent: ismon/" + __version__.encode() + b"\r\n"
        b"Accept: */*\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )


class BuildRequestTests(SynchronousTestCase):
    """
    The exact bytes of the C{HEAD} request.
    """

    def test_default(self) -> None:
        self.assertEqual(
            build_request(HttpRequest()),
            b"HEAD / HTTP/1.1\r\nHost: localhost\r\n" + _tail(),
        )

    def test_http10_sends_host_too(self) -> None:
        self.assertEqual(
            build_request(HttpRequest(host="www.example", version="1.0", uri="/index.html")),
            b"HEAD /index.html HTTP/1.0\r\nHost: www.example\r\n" + _tail(),
        )

    def test_non_default_port(self) -> None:
        self.assertTrue(
            build_request(HttpRequest(host="www.example", port=8080)).startswith(
                b"HEAD / HTTP/1.1\r\nHost: www.example:8080\r\n"
            )
        )

    def test_ipv6_brackets(self) -> None:
        for host, port, header in [
            ("::1", 80, b"Host: [::1]\r\n"),
            ("[::1]", 80, b"Host: [::1]\r\n"),
            ("::1", 8080, b"Host: [::1]:8080\r\n"),
            ("[2001:db8::1]", 81, b"Host: [2001:db8::1]:81\r\n"),
            ("192.0.2.1", 8080, b"Host: 192.0.2.1:8080\r\n"),
        ]:
            with self.subTest(host=host, port=port):
                request = build_request(HttpRequest(host=host, port=port))
                self.assertEqual(request.split(b"\r\n")[1] + b"\r\n", header)

    def test_tls_uses_servername_and_port443(self) -> None:
        request = HttpRequest(host="192.0.2.7", port=443, tls=TLSSettings(servername="www.example"))
        self.assertIn(b"\r\nHost: www.example\r\n", build_request(request))
        request = HttpRequest(
            host="192.0.2.7", port=8443, tls=TLSSettings(servername="www.example")
        )
        self.assertIn(b"\r\nHost: www.example:8443\r\n", build_request(request))

    def test_port80_with_tls_is_not_default(self) -> None:
        request = HttpRequest(host="h", port=80, tls=TLSSettings(servername="h"))
        self.assertIn(b"\r\nHost: h:80\r\n", build_request(request))

    def test_ends_with_blank_line(self) -> None:
        self.assertTrue(build_request(HttpRequest()).endswith(b"\r\n\r\n"))
        self.assertEqual(build_request(HttpRequest()).count(b"\r\n\r\n"), 1)


class HttpProbeTests(ConnectionFailureTests, ProbeCase):
    """
    L{HttpProbe} against a scripted server.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        probe = HttpProbe(self.reactor, HttpRequest(**request), resolver or resolving())
        self.assertTrue(IProbe.providedBy(probe))
        return collect(probe.probe())

    def test_request_bytes(self) -> None:
        self.start(host="www.example", port=8080, uri="/status")
        _, transport = connect(self.reactor)
        self.assertEqual(
            transport.value(),
            b"HEAD /status HTTP/1.1\r\nHost: www.example:8080\r\n" + _tail(),
        )

    def test_resolves_host_and_port(self) -> None:
        resolver = resolving(v4("192.0.2.1", 8080))
        self.start(resolver, host="www.example", port=8080)
        self.assertEqual(resolver.asked, [("www.example", 8080)])
        self.assertEqual(self.reactor.tcpClients[0][:2], ("192.0.2.1", 8080))

    def test_ipv6_literal(self) -> None:
        self.start(resolving(v6("::1", 8080)), host="::1", port=8080)
        _, transport = connect(self.reactor)
        self.assertIn(b"\r\nHost: [::1]:8080\r\n", transport.value())

    def test_success200(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        self.reactor.advance(0.25)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "HTTP/1.1 200 OK")
        self.assertEqual(result.latency, 0.25)
        self.assertEqual(result.address, "127.0.0.1:80")

    def test_success_in_pieces(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        for byte in b"HTTP/1.0 200 OK\n\n":
            self.assertEqual(results, [])
            protocol.dataReceived(bytes([byte]))
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_unauthorized_for_uri(self) -> None:
        """
        401 for a URI other than C{/} is message 83 with 401.
        """
        results = self.start(uri="/secret")
        protocol, transport = connect(self.reactor)
        self.assertTrue(transport.value().startswith(b"HEAD /secret HTTP/1.1\r\n"))
        protocol.dataReceived(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=x\r\n\r\n"
        )
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_STATUS, 401, Phase.PARSE)
        self.assertEqual(result.reply, "HTTP/1.1 401 Unauthorized")

    def test_unauthorized_for_root_is_fine(self) -> None:
        results = self.start(uri="/")
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
        protocol.connectionLost(closed())
        self.assertTrue(self.assertOnlyResult(results).ok)

    def test_server_error_for_uri(self) -> None:
        results = self.start(uri="/app")
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 503, Phase.PARSE
        )

    def test_expect_status(self) -> None:
        results = self.start(expect_status=StatusSet.parse("200-299"))
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n")
        protocol.connectionLost(aborted())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 302, Phase.PARSE
        )

    def test_non_http_banner(self) -> None:
        """
        A server that is not HTTP (an SSH daemon on port 80) is message 82,
        decided on its first bytes, not at the deadline.
        """
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"SSH-2.")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_RESPONSE, None, Phase.PARSE)
        self.assertEqual(result.reply, "SSH-2.")
        self.assertEqual(result.detail, "answer does not begin with HTTP/")

    def test_non_http_first_byte(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"2")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertEqual(self.assertOnlyResult(results).message, MessageId.INVALID_RESPONSE)

    def test_malformed_status_line(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 20 OK\r\n\r\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_RESPONSE, None, Phase.PARSE)

    def test_control_bytes_in_reply_are_neutralised(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"\x1b[2J\r\nfake log line\r\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.reply.isprintable(), repr(result.reply))

    def test_oversize_headers(self) -> None:
        results = self.start()
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        filler = b"X-Filler: " + b"a" * 100 + b"\r\n"
        for _ in range(1000):
            protocol.dataReceived(filler)
            if transport.aborted:
                break
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_RESPONSE, None, Phase.PARSE)
        self.assertEqual(result.detail, "header block too large")

    def test_close_after_status_line(self) -> None:
        """
        A server that closes before the blank line is judged on its status.
        """
        results = self.start(uri="/x")
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nServer: x\r\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "HTTP/1.1 200 OK")

    def test_close_after_bad_status_line(self) -> None:
        results = self.start(uri="/x")
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 404 Not Found")
        protocol.connectionLost(closed())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 404, Phase.PARSE
        )

    def test_close_mid_status_line(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_RESPONSE, None, Phase.PARSE)

    def test_reset_after_status_line(self) -> None:
        """
        Only a clean close leaves a partial answer to judge: a reset after
        the status line is a failed connection, 75 with ECONNRESET.
        """
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        protocol.connectionLost(reset())
        self.assertFailure_(
            self.assertOnlyResult(results),
            MessageId.RECV_ERROR,
            errno.ECONNRESET,
            Phase.RECEIVE,
        )

    # -- connection failures: ConnectionFailureTests ----------------------------

    # -- the deadline (also in ConnectionFailureTests) -------------------------

    def test_deadline_while_connecting(self) -> None:
        results = self.start(timeout=10)
        self.reactor.advance(9.5)
        self.assertEqual(results, [])
        self.reactor.advance(0.5)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.CONNECT)

    def test_deadline_while_trickling(self) -> None:
        """
        One byte per simulated second: the answer is not complete within
        the timeout, so the probe fails though bytes keep coming.
        """
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        answer = b"HTTP/1.1 200 OK\r\n\r\n"
        for byte in answer[:10]:
            self.assertEqual(results, [])
            self.assertFalse(transport.aborted)
            protocol.dataReceived(bytes([byte]))
            self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.dataReceived(answer[10:])  # Too late: ignored.
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.RECEIVE)

    def test_repeated_probes_are_independent(self) -> None:
        """
        One L{HttpProbe} asks again with a fresh parser and connection.
        """
        probe = HttpProbe(self.reactor, HttpRequest(), resolving())
        first = collect(probe.probe())
        protocol, _ = connect(self.reactor, 0)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\n\r\n")
        protocol.connectionLost(closed())
        second = collect(probe.probe())
        protocol, _ = connect(self.reactor, 1)
        protocol.dataReceived(b"garbage")
        protocol.connectionLost(aborted())
        self.assertTrue(first[0].ok)
        self.assertEqual(second[0].message, MessageId.INVALID_RESPONSE)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
