# -*- test-case-name: tests.test_probe -*-
"""
Tests for L{ismon.probes.probe}: one deadline over resolve / connect / conversation,
exactly one result, no timer or socket left behind, and the mapping of
connection errors to catalogue messages.

Everything runs on a L{MemoryReactorClock}: connections are made by hand
from the factories the probe passed to C{connectTCP}, time moves only when a
test advances it.

The helpers at the top (L{RecordingTransport}, L{connect}, L{collect},
L{resolving}, L{never_resolving}) are shared with the HTTP and SMTP tests.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import error as neterror
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IProtocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.catalogue import MessageId
from ismon.core.result import Phase, ProbeResult
from ismon.probes.probe import ProbeProtocol, _connect_failure, lost_failure, run_probe
from ismon.probes.resolve import Address, ResolveError, _getaddrinfo, _literal, system_resolver

# ---------------------------------------------------------------------------
# Shared helpers.


class RecordingTransport(StringTransport):
    """A L{StringTransport} that remembers an abort apart from a close."""

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class TLSRecordingTransport(RecordingTransport):
    """A transport that records C{startTLS} (for STARTTLS conversations)."""

    tls_started_with: Any = None

    def startTLS(self, contextFactory: Any) -> None:
        self.tls_started_with = contextFactory


def v4(host: str = "127.0.0.1", port: int = 80) -> Address:
    return Address(socket.AF_INET, host, port)


def v6(host: str = "::1", port: int = 80) -> Address:
    return Address(socket.AF_INET6, host, port)


class RecordingResolver:
    """A resolver that answers from a list and records what it was asked."""

    def __init__(self, *addresses: Address) -> None:
        self.addresses = list(addresses)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Deferred[list[Address]]:
        self.asked.append((host, port))
        return succeed(list(self.addresses))


def resolving(*addresses: Address) -> RecordingResolver:
    return RecordingResolver(*(addresses or (v4(),)))


class NeverResolving:
    """A resolver whose answer never comes; remembers being cancelled."""

    def __init__(self) -> None:
        self.cancelled = False

    def __call__(self, host: str, port: int) -> Deferred[list[Address]]:
        def cancel(d: Deferred[list[Address]]) -> None:
            self.cancelled = True

        return Deferred(cancel)


def never_resolving() -> NeverResolving:
    return NeverResolving()


def connect(
    reactor: MemoryReactorClock,
    index: int = 0,
    transport: RecordingTransport | None = None,
) -> tuple[IProtocol, RecordingTransport]:
    """
    Complete the C{index}th C{connectTCP} the probe asked for: build the
    protocol from its factory and connect it to a fresh transport.
    """
    host, port, factory, _, _ = reactor.tcpClients[index]
    address = IPv6Address("TCP", host, port) if ":" in host else IPv4Address("TCP", host, port)
    protocol = factory.buildProtocol(address)
    transport = transport if transport is not None else RecordingTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def refuse(reactor: MemoryReactorClock, index: int = 0) -> None:
    """Fail the C{index}th connection attempt with ECONNREFUSED."""
    factory = reactor.tcpClients[index][2]
    factory.clientConnectionFailed(
        reactor.connectors[index], Failure(neterror.ConnectionRefusedError())
    )


def collect(d: Deferred[ProbeResult]) -> list[Any]:
    """Every result C{d} fires with (there must never be more than one)."""
    results: list[Any] = []
    d.addBoth(results.append)
    return results


def closed() -> Failure:
    return Failure(neterror.ConnectionDone("closed cleanly"))


def reset() -> Failure:
    return Failure(neterror.ConnectionLost("connection reset by peer"))


def aborted() -> Failure:
    return Failure(neterror.ConnectionAborted())


class ProbeCase(SynchronousTestCase):
    """Assertions shared by the protocol tests."""

    reactor: MemoryReactorClock

    def assertOnlyResult(self, results: list[Any]) -> ProbeResult:
        """
        Exactly one result arrived, a L{ProbeResult}, and no timer is left.
        """
        self.assertEqual(len(results), 1, results)
        (result,) = results
        self.assertIsInstance(result, ProbeResult)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        # Time passing afterwards changes nothing.
        self.reactor.advance(1000)
        self.assertEqual(len(results), 1, results)
        return result

    def assertFailure_(
        self,
        result: ProbeResult,
        message: MessageId,
        number: int | None,
        phase: Phase,
    ) -> None:
        self.assertFalse(result.ok, result)
        self.assertEqual(
            (result.message, result.number, result.phase), (message, number, phase), result
        )

    def assertTimedOut(self, result: ProbeResult, phase: Phase) -> None:
        self.assertFailure_(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT, phase)


class ConnectionFailureTests:
    """
    What every protocol's probe does when the connection fails, or the
    deadline passes, before the server has sent a byte (an HTTP status
    line, an SMTP greeting).  Mixed into a protocol's L{ProbeCase} (before
    it), whose C{start(resolver=None, **request)} starts one probe on
    C{self.reactor} and returns the list its result arrives in.
    """

    reactor: MemoryReactorClock
    assertTrue: Any
    assertFailure_: Any
    assertTimedOut: Any
    assertOnlyResult: Any

    def start(self, resolver: Any = None, **request: Any) -> list[Any]:
        raise NotImplementedError()

    # -- connection failures ---------------------------------------------------

    def test_refused(self) -> None:
        results = self.start()
        refuse(self.reactor)
        self.assertFailure_(
            self.assertOnlyResult(results),
            MessageId.CONNECT_ERROR,
            errno.ECONNREFUSED,
            Phase.CONNECT,
        )

    def test_clean_close_before_any_byte(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.connectionLost(closed())
        self.assertFailure_(self.assertOnlyResult(results), MessageId.RECV_ERROR, 0, Phase.WAIT)

    def test_reset(self) -> None:
        results = self.start()
        protocol, _ = connect(self.reactor)
        protocol.connectionLost(reset())
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.RECV_ERROR, errno.ECONNRESET, Phase.WAIT
        )

    # -- the deadline ----------------------------------------------------------

    def test_deadline_while_resolving(self) -> None:
        resolver = never_resolving()
        results = self.start(resolver, timeout=10)
        self.reactor.advance(10)
        self.assertTrue(resolver.cancelled)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.RESOLVE)

    def test_deadline_while_waiting(self) -> None:
        """
        The stalled server of the manual: it accepts, then never answers.
        """
        results = self.start(timeout=10)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(10)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)


# ---------------------------------------------------------------------------
# A minimal conversation to test run_probe by itself.


class PingProtocol(ProbeProtocol):
    """Send C{ping}, expect C{pong}."""

    def begin(self) -> None:
        self.phase = Phase.SEND
        self.transport.write(b"ping\n")  # type: ignore[union-attr]
        self.phase = Phase.WAIT

    def dataReceived(self, data: bytes) -> None:
        if self.decided:
            return
        self.phase = Phase.RECEIVE
        if data == b"pong\n":
            self.succeed("pong")
        elif not b"pong\n".startswith(data):
            self.phase = Phase.PARSE
            self.fail(MessageId.INVALID_RESPONSE, reply=data.decode("ascii", "replace"))


class RunProbeTests(ProbeCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def probe(
        self,
        resolver: Callable[[str, int], Deferred[list[Address]]],
        timeout: float = 10,
        host: str = "server.example",
        port: int = 80,
        protocol_factory: Callable[[], ProbeProtocol] = PingProtocol,
    ) -> list[Any]:
        return collect(
            run_probe(
                self.reactor,
                resolver,
                host=host,
                port=port,
                timeout=timeout,
                protocol_factory=protocol_factory,
            )
        )

    def test_success(self) -> None:
        resolver = resolving(v4("192.0.2.1", 8080))
        results = self.probe(resolver, port=8080)
        self.assertEqual(resolver.asked, [("server.example", 8080)])
        host, port, _, timeout, _ = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("192.0.2.1", 8080))
        # The TCP connect timeout lies beyond the probe's own deadline, so
        # the deadline (message 74) is what a silent network produces.
        self.assertGreater(timeout, 10)
        protocol, transport = connect(self.reactor)
        self.assertEqual(transport.value(), b"ping\n")
        self.reactor.advance(2.5)
        protocol.dataReceived(b"pong\n")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.aborted)
        # The result waits until the connection is really gone.
        self.assertEqual(results, [])
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.reply, "pong")
        self.assertEqual(result.latency, 2.5)
        self.assertEqual(result.address, "192.0.2.1:8080")
        self.assertIsNone(result.cert_days_left)
        self.assertEqual(result.describe(), "ok in 2500.0 ms (pong)")

    def test_ipv6(self) -> None:
        results = self.probe(resolving(v6("2001:db8::1")))
        self.assertEqual(self.reactor.tcpClients[0][:2], ("2001:db8::1", 80))
        protocol, _ = connect(self.reactor)
        protocol.dataReceived(b"pong\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertEqual(result.address, "[2001:db8::1]:80")

    def test_bad_answer_aborts(self) -> None:
        results = self.probe(resolving())
        protocol, transport = connect(self.reactor)
        protocol.dataReceived(b"nope")
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.INVALID_RESPONSE, None, Phase.PARSE)
        self.assertEqual(result.reply, "nope")
        self.assertEqual(result.address, "127.0.0.1:80")

    def test_first_verdict_counts(self) -> None:
        """
        A conversation that fails then (wrongly) succeeds keeps the failure.
        """
        results = self.probe(resolving())
        protocol, _ = connect(self.reactor)
        probe_protocol = protocol._wrappedProtocol  # type: ignore[attr-defined]
        probe_protocol.fail(MessageId.INVALID_RESPONSE)
        probe_protocol.succeed("late")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertEqual(result.message, MessageId.INVALID_RESPONSE)

    # -- the deadline in each phase ------------------------------------------

    def test_deadline_while_resolving(self) -> None:
        resolver = never_resolving()
        results = self.probe(resolver, timeout=10)
        self.reactor.advance(9.999)
        self.assertEqual(results, [])
        self.reactor.advance(0.001)
        self.assertTrue(resolver.cancelled)
        self.assertEqual(self.reactor.tcpClients, [])
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.RESOLVE)
        self.assertEqual(result.latency, 10)
        self.assertEqual(result.address, "")

    def test_deadline_while_resolving_uncancellable(self) -> None:
        """
        A resolver Deferred that ignores cancel (getaddrinfo in a thread) is
        cancelled all the same: Deferred.cancel errbacks it, and a late
        answer is ignored.
        """
        pending: Deferred[list[Address]] = Deferred()
        results = self.probe(lambda host, port: pending, timeout=3)
        self.reactor.advance(3)
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.RESOLVE)
        self.assertTrue(pending.called)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_deadline_while_connecting(self) -> None:
        results = self.probe(resolving(), timeout=10)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(10)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.CONNECT)
        self.assertEqual(result.address, "127.0.0.1:80")
        # The connect failing later (the reactor reporting the cancellation)
        # changes nothing.
        refuse(self.reactor)
        self.assertEqual(len(results), 1)

    def test_deadline_while_waiting(self) -> None:
        results = self.probe(resolving(), timeout=10)
        self.reactor.advance(4)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(5.9)
        self.assertEqual(results, [])
        self.assertFalse(transport.aborted)
        self.reactor.advance(0.1)
        self.assertTrue(transport.aborted)
        # The result waits for the transport to report the abort.
        self.assertEqual(results, [])
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.WAIT)
        self.assertEqual(result.latency, 10)

    def test_deadline_while_trickling(self) -> None:
        """
        A server that sends one byte per second never completes in time: the
        deadline is not reset by traffic.
        """
        results = self.probe(resolving(), timeout=10)
        protocol, transport = connect(self.reactor)
        answer = b"ppppppppppppppppppppong\n"
        for i in range(10):
            self.assertEqual(results, [])
            self.assertFalse(transport.aborted)
            protocol.dataReceived(answer[i : i + 1])
            self.reactor.advance(1)
        self.assertTrue(transport.aborted)
        protocol.dataReceived(b"p")  # Still arriving: ignored.
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.RECEIVE)

    def test_deadline_after_verdict(self) -> None:
        """
        A verdict given before the deadline stands even if the connection
        only ends after it (a server slow to close).
        """
        results = self.probe(resolving(), timeout=10)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(1)
        protocol.dataReceived(b"pong\n")
        self.assertTrue(transport.disconnecting)
        self.reactor.advance(9)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.latency, 1)

    def test_deadline_with_synchronous_abort(self) -> None:
        """
        A transport whose abort reports the loss at once (as some do) still
        gives exactly one result.
        """
        results = self.probe(resolving(), timeout=2)

        class Immediate(RecordingTransport):
            def abortConnection(self) -> None:
                super().abortConnection()
                self.protocol.connectionLost(aborted())

        transport = Immediate()
        protocol, _ = connect(self.reactor, transport=transport)
        transport.protocol = protocol
        self.reactor.advance(2)
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.WAIT)

    # -- failures ------------------------------------------------------------

    def test_refused(self) -> None:
        results = self.probe(resolving())
        refuse(self.reactor)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT)
        self.assertEqual(result.address, "127.0.0.1:80")

    def test_refused_then_next_address(self) -> None:
        """
        Each resolved address is tried in turn, under the same deadline.
        """
        results = self.probe(resolving(v6("::1"), v4("127.0.0.1")))
        self.assertEqual(self.reactor.tcpClients[0][0], "::1")
        self.reactor.advance(3)
        refuse(self.reactor, 0)
        self.assertEqual(results, [])
        self.assertEqual(self.reactor.tcpClients[1][0], "127.0.0.1")
        # The second attempt's connect timeout is what is left of the deadline.
        self.assertLess(self.reactor.tcpClients[1][3], self.reactor.tcpClients[0][3])
        protocol, _ = connect(self.reactor, 1)
        protocol.dataReceived(b"pong\n")
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.address, "127.0.0.1:80")

    def test_all_addresses_refused(self) -> None:
        results = self.probe(resolving(v6("::1"), v4("127.0.0.1")))
        refuse(self.reactor, 0)
        refuse(self.reactor, 1)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT)
        self.assertEqual(result.address, "127.0.0.1:80")

    def test_deadline_spans_addresses(self) -> None:
        results = self.probe(resolving(v6("::1"), v4("127.0.0.1")), timeout=10)
        self.reactor.advance(6)
        refuse(self.reactor, 0)
        self.reactor.advance(4)
        self.assertTrue(self.reactor.connectors[1].stoppedConnecting)
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.CONNECT)

    def test_clean_close_before_any_byte(self) -> None:
        results = self.probe(resolving())
        protocol, _ = connect(self.reactor)
        protocol.connectionLost(closed())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, 0, Phase.WAIT)

    def test_reset(self) -> None:
        results = self.probe(resolving())
        protocol, _ = connect(self.reactor)
        protocol.connectionLost(reset())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RECV_ERROR, errno.ECONNRESET, Phase.WAIT)

    def test_resolve_error(self) -> None:
        results = self.probe(
            lambda host, port: fail(ResolveError(socket.EAI_NONAME, "Name or service not known"))
        )
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RESOLVE_ERROR, socket.EAI_NONAME, Phase.RESOLVE)
        self.assertIn("not known", result.detail)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_resolve_other_error(self) -> None:
        results = self.probe(lambda host, port: fail(RuntimeError("resolver broke")))
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RESOLVE_ERROR, 0, Phase.RESOLVE)

    def test_resolver_finds_nothing(self) -> None:
        """
        A resolver answering with no address at all is a resolution failure
        (81, EAI_NONAME) at once, not a crash that waits for the deadline.
        """
        results = self.probe(lambda host, port: succeed([]))
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.RESOLVE_ERROR, socket.EAI_NONAME, Phase.RESOLVE)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_resolver_raises(self) -> None:
        """
        A resolver that raises (a programming error) gives message 42 and
        leaves no deadline timer behind.
        """

        def broken(host: str, port: int) -> Deferred[list[Address]]:
            raise RuntimeError("boom")

        results = self.probe(broken)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.SYSTEM_ERROR, 0, Phase.CONNECT)
        self.assertIn("boom", result.detail)

    def test_connect_raises(self) -> None:
        """
        connectTCP raising at once is a connect failure, not a hang until
        the deadline; raising EMFILE (the watch out of descriptors) is the
        monitor's own failure, message 42 (socket 24), not the server's.
        """

        def connectTCP(*args: object, **kwargs: object) -> None:
            raise neterror.ConnectError(osError=errno.EMFILE)

        self.reactor.connectTCP = connectTCP  # type: ignore[method-assign]
        results = self.probe(resolving())
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.SYSTEM_ERROR, errno.EMFILE, Phase.CONNECT)
        self.assertEqual((result.function, result.monitor_failed), ("socket", True))


class ConnectFailureTests(SynchronousTestCase):
    """
    L{_connect_failure} maps Twisted's connect errors to 72 (or 71).
    """

    def test_table(self) -> None:
        table: list[tuple[BaseException, MessageId, int]] = [
            (neterror.ConnectionRefusedError(), MessageId.CONNECT_ERROR, errno.ECONNREFUSED),
            (neterror.TCPTimedOutError(), MessageId.CONNECT_ERROR, errno.ETIMEDOUT),
            (neterror.TimeoutError(), MessageId.CONNECT_ERROR, errno.ETIMEDOUT),
            (neterror.NoRouteError(), MessageId.CONNECT_ERROR, errno.EHOSTUNREACH),
            # Twisted raises NoRouteError for ENETUNREACH too: keep the errno.
            (
                neterror.NoRouteError(osError=errno.ENETUNREACH),
                MessageId.CONNECT_ERROR,
                errno.ENETUNREACH,
            ),
            (
                neterror.ConnectError(osError=errno.ENETUNREACH),
                MessageId.CONNECT_ERROR,
                errno.ENETUNREACH,
            ),
            (neterror.ConnectError(), MessageId.CONNECT_ERROR, 0),
            (OSError(errno.EACCES, "Permission denied"), MessageId.SOCKET_ERROR, errno.EACCES),
            (RuntimeError("?"), MessageId.CONNECT_ERROR, 0),
        ]
        # The monitor's own resources: message 42 (socket N), never 71/72
        # (docs/failure-rules.md, "The monitor's own failures").
        for number in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS):
            table.append((neterror.ConnectError(osError=number), MessageId.SYSTEM_ERROR, number))
            table.append(
                (neterror.ConnectBindError(osError=number), MessageId.SYSTEM_ERROR, number)
            )
            table.append((OSError(number, os.strerror(number)), MessageId.SYSTEM_ERROR, number))
        table.append((MemoryError(), MessageId.SYSTEM_ERROR, errno.ENOMEM))
        for exception, message, number in table:
            with self.subTest(exception=exception):
                result = _connect_failure(Failure(exception))
                self.assertEqual(
                    (result.message, result.number, result.phase),
                    (message, number, Phase.CONNECT),
                )
                self.assertEqual(result.monitor_failed, message is MessageId.SYSTEM_ERROR)
                if result.monitor_failed:
                    self.assertIn(result.function, ("socket", "memory"))

    def test_real_refusal(self) -> None:
        """
        What the reactor really builds for ECONNREFUSED maps to 111.
        """
        value = neterror.getConnectError((errno.ECONNREFUSED, "Connection refused"))
        result = _connect_failure(Failure(value))
        self.assertEqual((result.message, result.number), (MessageId.CONNECT_ERROR, 111))


class LostFailureTests(SynchronousTestCase):
    def test_table(self) -> None:
        table: list[tuple[Failure, Phase, MessageId, int]] = [
            (closed(), Phase.WAIT, MessageId.RECV_ERROR, 0),
            (closed(), Phase.RECEIVE, MessageId.RECV_ERROR, 0),
            (reset(), Phase.WAIT, MessageId.RECV_ERROR, errno.ECONNRESET),
            (reset(), Phase.RECEIVE, MessageId.RECV_ERROR, errno.ECONNRESET),
            (reset(), Phase.SEND, MessageId.SEND_ERROR, errno.ECONNRESET),
            (aborted(), Phase.WAIT, MessageId.RECV_ERROR, errno.ECONNRESET),
            (Failure(RuntimeError("odd")), Phase.WAIT, MessageId.RECV_ERROR, errno.ECONNRESET),
        ]
        for reason, phase, message, number in table:
            with self.subTest(reason=reason, phase=phase):
                result = lost_failure(reason, phase)
                self.assertEqual(
                    (result.message, result.number, result.phase), (message, number, phase)
                )

    def test_tls_errors(self) -> None:
        """
        A TLS error ending the connection is message 90 (or 91 when the
        certificate was not trusted), whatever the phase.
        """
        from OpenSSL import SSL
        from service_identity import VerificationError

        from ismon.core.requests import TLSSettings
        from ismon.probes.tls import client_tls

        tls = client_tls(TLSSettings("server.example", insecure=True))

        handshake = Failure(SSL.Error([("SSL routines", "", "sslv3 alert handshake failure")]))
        verify = Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        name = Failure(VerificationError(errors=[]))
        for reason, phase, message in [
            (handshake, Phase.TLS, MessageId.TLS_HANDSHAKE_ERROR),
            (verify, Phase.TLS, MessageId.TLS_VERIFY_ERROR),
            (name, Phase.TLS, MessageId.TLS_VERIFY_ERROR),
            (handshake, Phase.WAIT, MessageId.TLS_HANDSHAKE_ERROR),
        ]:
            with self.subTest(reason=reason, phase=phase):
                result = lost_failure(reason, phase, tls)
                self.assertEqual((result.message, result.phase), (message, Phase.TLS))

    def test_close_during_tls(self) -> None:
        """
        A plain close during the handshake is still 75 with 0.
        """
        result = lost_failure(closed(), Phase.TLS)
        self.assertEqual((result.message, result.number), (MessageId.RECV_ERROR, 0))


class AddressTests(SynchronousTestCase):
    def test_str(self) -> None:
        self.assertEqual(str(v4("192.0.2.1", 25)), "192.0.2.1:25")
        self.assertEqual(str(v6("2001:db8::1", 25)), "[2001:db8::1]:25")

    def test_literal(self) -> None:
        self.assertEqual(_literal("192.0.2.1", 80), v4("192.0.2.1", 80))
        self.assertEqual(_literal("::1", 80), v6("::1", 80))
        self.assertEqual(_literal("[::1]", 80), v6("::1", 80))
        self.assertEqual(_literal("2001:DB8::0:1", 80), v6("2001:db8::1", 80))
        self.assertIsNone(_literal("localhost", 80))
        self.assertIsNone(_literal("mail.example", 80))
        self.assertIsNone(_literal("", 80))


class _ThreadedReactor:
    """Just enough of a reactor for the resolver's threads, run synchronously."""

    def __init__(self) -> None:
        self.pool_used = False

    def run_in_thread(self, work: Callable[[], None]) -> None:
        self.pool_used = True
        work()

    def callFromThread(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        f(*a, **kw)


class SystemResolverTests(SynchronousTestCase):
    def fake_getaddrinfo(self, answers: list[tuple[Any, ...]] | Exception) -> list[tuple[str, int]]:
        asked: list[tuple[str, int]] = []

        def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> Any:
            asked.append((host, port))
            if isinstance(answers, Exception):
                raise answers
            return answers

        self.patch(socket, "getaddrinfo", getaddrinfo)
        return asked

    def test_literal_skips_the_pool(self) -> None:
        reactor = _ThreadedReactor()
        asked = self.fake_getaddrinfo([])
        resolve = system_resolver(reactor, reactor.run_in_thread)
        self.assertEqual(self.successResultOf(resolve("::1", 25)), [v6("::1", 25)])
        self.assertEqual(self.successResultOf(resolve("10.1.2.3", 25)), [v4("10.1.2.3", 25)])
        self.assertFalse(reactor.pool_used)
        self.assertEqual(asked, [])

    def test_name_uses_the_pool(self) -> None:
        reactor = _ThreadedReactor()
        stream, proto = socket.SOCK_STREAM, socket.IPPROTO_TCP
        asked = self.fake_getaddrinfo(
            [
                (socket.AF_INET6, stream, proto, "", ("::1", 25, 0, 0)),
                (socket.AF_INET, stream, proto, "", ("127.0.0.1", 25)),
                (socket.AF_INET, stream, proto, "", ("127.0.0.1", 25)),
            ]
        )
        addresses = self.successResultOf(
            system_resolver(reactor, reactor.run_in_thread)("localhost", 25)
        )
        self.assertTrue(reactor.pool_used)
        self.assertEqual(asked, [("localhost", 25)])
        self.assertEqual(addresses, [v6("::1", 25), v4("127.0.0.1", 25)])

    def test_pending_lookups_are_bounded(self) -> None:
        """
        Lookups stuck behind a dead name server do not pile up threads: past
        the limit a probe fails at once with EAI_AGAIN, and a lookup that
        finishes makes room again.
        """
        from ismon.probes.resolve import MAX_PENDING_LOOKUPS

        parked: list[Callable[[], None]] = []
        reactor = _ThreadedReactor()
        resolve = system_resolver(reactor, parked.append)
        waiting = [resolve(f"h{i}.example", 80) for i in range(MAX_PENDING_LOOKUPS)]
        error = self.failureResultOf(resolve("one-more.example", 80), ResolveError)
        self.assertEqual(error.value.code, socket.EAI_AGAIN)
        self.fake_getaddrinfo([(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))])
        parked.pop(0)()
        self.assertEqual(self.successResultOf(waiting[0]), [v4("192.0.2.1", 80)])
        self.assertNoResult(resolve("again.example", 80))

    def test_late_answer_after_cancel_is_ignored(self) -> None:
        parked: list[Callable[[], None]] = []
        reactor = _ThreadedReactor()
        lookup = system_resolver(reactor, parked.append)("slow.example", 80)
        lookup.cancel()
        self.failureResultOf(lookup, CancelledError)
        self.fake_getaddrinfo([(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 80))])
        parked.pop()()  # delivers into an already-cancelled Deferred: no error

    def test_gaierror(self) -> None:
        self.fake_getaddrinfo(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
        error = self.assertRaises(ResolveError, _getaddrinfo, "nowhere.invalid", 80)
        self.assertEqual(error.code, socket.EAI_NONAME)

    def test_no_usable_address(self) -> None:
        self.fake_getaddrinfo([])
        error = self.assertRaises(ResolveError, _getaddrinfo, "empty.example", 80)
        self.assertEqual(error.code, socket.EAI_NONAME)

    def test_resolve_error_through_probe(self) -> None:
        """
        getaddrinfo's error number reaches message 81.
        """
        self.fake_getaddrinfo(socket.gaierror(socket.EAI_AGAIN, "Temporary failure"))
        reactor = MemoryReactorClock()
        threaded = _ThreadedReactor()
        results = collect(
            run_probe(
                reactor,
                system_resolver(threaded, threaded.run_in_thread),
                host="mail.example",
                port=25,
                timeout=5,
                protocol_factory=PingProtocol,
            )
        )
        self.assertEqual(len(results), 1)
        (result,) = results
        self.assertEqual(
            (result.message, result.number, result.phase),
            (MessageId.RESOLVE_ERROR, socket.EAI_AGAIN, Phase.RESOLVE),
        )
        self.assertEqual(reactor.getDelayedCalls(), [])


class CancellationTests(SynchronousTestCase):
    """
    The deadline cancels what is pending; a cancellation never surfaces as
    an errback of the probe's Deferred.
    """

    def test_never_errbacks(self) -> None:
        reactor = MemoryReactorClock()
        d = run_probe(
            reactor,
            lambda host, port: Deferred(),
            host="h",
            port=1,
            timeout=1,
            protocol_factory=PingProtocol,
        )
        reactor.advance(1)
        result = self.successResultOf(d)
        self.assertEqual(result.message, MessageId.SELECT_ERROR)

    def test_cancelled_error_ignored(self) -> None:
        """
        A resolver that fails with CancelledError on its own (not through
        the deadline) is still a resolution failure, reported once.
        """
        reactor = MemoryReactorClock()
        d = run_probe(
            reactor,
            lambda host, port: fail(CancelledError()),
            host="h",
            port=1,
            timeout=1,
            protocol_factory=PingProtocol,
        )
        result = self.successResultOf(d)
        self.assertEqual(result.message, MessageId.RESOLVE_ERROR)
        self.assertEqual(reactor.getDelayedCalls(), [])
