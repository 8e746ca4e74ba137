# -*- test-case-name: tests.test_probe_datagram -*-
"""
Tests for the datagram conversations of L{ismon.probes.probe}
(L{run_datagram_probe}, L{DatagramProbeProtocol}): one deadline over
resolve, the UDP question and its answer, and the TCP conversation it may
hand over to; one result; each address in turn after a refusal; no timer
or socket left behind; an answer after the deadline never counts.

The first part runs on a L{MemoryReactorClock} with a fake UDP port (time
moves only when a test advances it, the port's close takes a turn as
Twisted's does); the second on the real reactor against loopback sockets.
"""

from __future__ import annotations

import errno
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import error as neterror
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.catalogue import MessageId
from ismon.core.result import Phase, ProbeResult
from ismon.probes import probe as probe_module
from ismon.probes.probe import (
    MAX_DATAGRAM_BYTES,
    DatagramProbeProtocol,
    ProbeProtocol,
    run_datagram_probe,
)
from ismon.probes.resolve import Address
from tests.test_hostile import Leaks
from tests.test_probe import ProbeCase, aborted, collect, connect, resolving, v4, v6

# ---------------------------------------------------------------------------
# A fake UDP port on the memory reactor.


class FakeUDPPort:
    """
    What C{listenUDP} gives the probe: records what is written, lets a test
    deliver datagrams and refusals, and closes one reactor turn (or
    C{close_delay} seconds) after C{stopListening}, as Twisted's port does.
    """

    def __init__(
        self,
        reactor: DatagramReactor,
        protocol: DatagramProtocol,
        interface: str,
        max_packet_size: int,
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.interface = interface
        self.max_packet_size = max_packet_size
        self.connected_to: tuple[str, int] | None = None
        self.written: list[bytes] = []
        self.listening = True
        self.closed = False
        self.write_error: Exception | None = None
        protocol.makeConnection(self)  # type: ignore[arg-type]

    def connect(self, host: str, port: int) -> None:
        if self.reactor.connect_error is not None:
            raise self.reactor.connect_error
        self.connected_to = (host, port)

    def write(self, datagram: bytes, addr: Any = None) -> None:
        assert addr is None and self.connected_to is not None
        if self.write_error is not None:
            raise self.write_error
        self.written.append(datagram)

    def deliver(self, datagram: bytes) -> None:
        if self.listening:
            assert self.connected_to is not None
            self.protocol.datagramReceived(datagram, self.connected_to)

    def refuse(self) -> None:
        if self.listening:
            self.protocol.connectionRefused()

    def stopListening(self) -> Deferred[None]:
        assert self.listening, "closed twice"
        self.listening = False
        done: Deferred[None] = Deferred()

        def close() -> None:
            self.closed = True
            self.protocol.doStop()
            done.callback(None)

        self.reactor.callLater(self.reactor.close_delay, close)
        return done


class DatagramReactor(MemoryReactorClock):
    """A memory reactor whose C{listenUDP} makes L{FakeUDPPort}s."""

    def __init__(self) -> None:
        super().__init__()
        self.udp: list[FakeUDPPort] = []
        self.close_delay = 0.0
        self.listen_error: Exception | None = None
        self.connect_error: Exception | None = None

    def listenUDP(  # type: ignore[override]
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
    ) -> FakeUDPPort:
        assert port == 0
        if self.listen_error is not None:
            raise self.listen_error
        udp = FakeUDPPort(self, protocol, interface, maxPacketSize)
        self.udp.append(udp)
        return udp


# ---------------------------------------------------------------------------
# A minimal datagram conversation: send "ping"; "pong" passes, "tcp" goes on
# over TCP, anything else fails.


class PingStream(ProbeProtocol):
    def begin(self) -> None:
        self.phase = Phase.SEND
        self.transport.write(b"ping\n")  # type: ignore[union-attr]
        self.phase = Phase.WAIT

    def dataReceived(self, data: bytes) -> None:
        if not self.decided and data == b"pong\n":
            self.succeed("pong over TCP")


class PingDatagram(DatagramProbeProtocol):
    def begin(self) -> None:
        self.send(b"ping")

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.decided:
            return
        self.phase = Phase.RECEIVE
        if datagram == b"pong":
            self.succeed("pong")
        elif datagram == b"tcp":
            self.over_stream(PingStream)
        else:
            self.phase = Phase.PARSE
            self.fail(MessageId.INVALID_STATUS, number=0, reply=datagram.decode("latin-1"))


class RunDatagramProbeTests(ProbeCase):
    def setUp(self) -> None:
        self.reactor = DatagramReactor()
        # The fake reactor's ports, not the real ones the probe builds.
        self.patch(
            probe_module,
            "_listen_udp",
            lambda reactor, protocol, interface: reactor.listenUDP(
                0, protocol, interface, MAX_DATAGRAM_BYTES
            ),
        )

    def probe(
        self,
        *addresses: Address,
        timeout: float = 10,
        conversation: Callable[[], DatagramProbeProtocol] = PingDatagram,
    ) -> list[Any]:
        return collect(
            run_datagram_probe(
                self.reactor,
                resolving(*addresses) if addresses else resolving(v4(port=53)),
                host="ns.example",
                port=53,
                timeout=timeout,
                protocol_factory=conversation,
            )
        )

    def port(self, index: int = 0) -> FakeUDPPort:
        return self.reactor.udp[index]

    def test_answer(self) -> None:
        results = self.probe()
        udp = self.port()
        self.assertEqual(
            (udp.interface, udp.max_packet_size, udp.connected_to),
            ("0.0.0.0", MAX_DATAGRAM_BYTES, ("127.0.0.1", 53)),
        )
        self.assertEqual(udp.written, [b"ping"])
        self.reactor.advance(0.5)
        udp.deliver(b"pong")
        # The result waits for the socket to be closed: nothing is left open.
        self.assertEqual(results, [])
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(
            (result.reply, result.latency, result.address), ("pong", 0.5, "127.0.0.1:53")
        )
        self.assertTrue(udp.closed)

    def test_ipv6_socket_for_an_ipv6_address(self) -> None:
        self.probe(v6(port=53))
        self.assertEqual((self.port().interface, self.port().connected_to), ("::", ("::1", 53)))

    def test_wrong_answer(self) -> None:
        results = self.probe()
        self.port().deliver(b"garbage")
        self.port().deliver(b"pong")  # after the verdict: not read
        self.reactor.advance(0)
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.INVALID_STATUS, 0, Phase.PARSE
        )

    def test_silence_times_out(self) -> None:
        results = self.probe(timeout=3)
        self.reactor.advance(2.99)
        self.assertEqual(results, [])
        self.reactor.advance(0.01)
        self.reactor.advance(0)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)
        self.assertTrue(self.port().closed)

    def test_an_answer_after_the_deadline_is_not_read(self) -> None:
        results = self.probe(timeout=3)
        self.reactor.advance(3)
        self.port().deliver(b"pong")
        self.reactor.advance(0)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.WAIT)

    def test_refused(self) -> None:
        results = self.probe()
        self.port().refuse()
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT)
        self.assertEqual(result.detail, "port unreachable (ICMP)")

    def test_refused_then_the_next_address(self) -> None:
        results = self.probe(v6(port=53), v4(port=53))
        self.port(0).refuse()
        self.assertEqual(len(self.reactor.udp), 1)  # the next after the close
        self.reactor.advance(0)
        self.assertEqual(self.port(1).connected_to, ("127.0.0.1", 53))
        self.assertEqual(self.port(1).written, [b"ping"])
        self.port(1).deliver(b"pong")
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual(result.address, "127.0.0.1:53")

    def test_refused_while_sending(self) -> None:
        """Twisted reports a refusal from write() synchronously: the same verdict."""

        class RefusedAtOnce(PingDatagram):
            def begin(self) -> None:
                self.connectionRefused()
                self.send(b"ping")

        results = self.probe(conversation=RefusedAtOnce)
        self.reactor.advance(0)
        self.assertFailure_(
            self.assertOnlyResult(results),
            MessageId.CONNECT_ERROR,
            errno.ECONNREFUSED,
            Phase.CONNECT,
        )

    def test_cannot_open_a_socket(self) -> None:
        self.reactor.listen_error = neterror.CannotListenError(
            "0.0.0.0", 0, OSError(errno.EACCES, "Permission denied")
        )
        results = self.probe()
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.SOCKET_ERROR, errno.EACCES, Phase.CONNECT
        )

    def test_no_descriptor_for_the_socket_is_the_monitors_own_failure(self) -> None:
        # Message 42 (socket 24), not 71: the server was never asked.
        self.reactor.listen_error = neterror.CannotListenError(
            "0.0.0.0", 0, OSError(errno.EMFILE, "Too many open files")
        )
        result = self.assertOnlyResult(self.probe())
        self.assertFailure_(result, MessageId.SYSTEM_ERROR, errno.EMFILE, Phase.CONNECT)
        self.assertEqual(result.function, "socket")

    def test_no_buffer_reported_by_the_socket_is_the_monitors_own_failure(self) -> None:
        results = self.probe()
        self.port().protocol.socket_failed(errno.ENOBUFS)  # type: ignore[attr-defined]
        self.reactor.advance(0)
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.SYSTEM_ERROR, errno.ENOBUFS, Phase.CONNECT
        )

    def test_another_socket_error(self) -> None:
        results = self.probe()
        self.port().protocol.socket_failed(errno.EHOSTUNREACH)  # type: ignore[attr-defined]
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.CONNECT_ERROR, errno.EHOSTUNREACH, Phase.CONNECT)
        self.assertEqual(result.detail, "No route to host")

    def test_a_socket_failure_without_an_error(self) -> None:
        results = self.probe()
        self.port().protocol.socket_failed(0)  # type: ignore[attr-defined]
        self.reactor.advance(0)
        self.assertFailure_(
            self.assertOnlyResult(results), MessageId.SOCKET_ERROR, 0, Phase.CONNECT
        )

    def test_cannot_connect_the_socket(self) -> None:
        self.reactor.connect_error = OSError(errno.ENETUNREACH, "Network is unreachable")
        results = self.probe()
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.CONNECT_ERROR, errno.ENETUNREACH, Phase.CONNECT)
        self.assertTrue(self.port().closed)

    def test_send_error(self) -> None:
        class TooLong(PingDatagram):
            def begin(self) -> None:
                self.transport.write_error = neterror.MessageLengthError("message too long")  # type: ignore[union-attr]
                self.send(b"x" * 70000)

        results = self.probe(conversation=TooLong)
        self.reactor.advance(0)
        self.assertFailure_(self.assertOnlyResult(results), MessageId.SEND_ERROR, 0, Phase.SEND)

    def test_no_buffer_to_send_is_the_monitors_own_failure(self) -> None:
        class NoBuffer(PingDatagram):
            def begin(self) -> None:
                self.transport.write_error = OSError(errno.ENOBUFS, "No buffer space available")  # type: ignore[union-attr]
                self.send(b"x")

        results = self.probe(conversation=NoBuffer)
        self.reactor.advance(0)
        result = self.assertOnlyResult(results)
        self.assertFailure_(result, MessageId.SYSTEM_ERROR, errno.ENOBUFS, Phase.SEND)
        self.assertTrue(self.port().closed)

    # -- over TCP, under the same deadline ---------------------------------------

    def test_over_stream_to_the_same_address(self) -> None:
        results = self.probe(v6(port=53), v4(port=53), timeout=10)
        self.reactor.advance(1)
        self.port().deliver(b"tcp")
        self.assertEqual(self.reactor.tcpClients, [])  # after the close
        self.reactor.advance(0)
        self.assertTrue(self.port().closed)
        # The address that answered, not the next one.
        host, port, _, _, _ = self.reactor.tcpClients[0]
        self.assertEqual((host, port), ("::1", 53))
        protocol, transport = connect(self.reactor)
        self.assertEqual(transport.value(), b"ping\n")
        self.reactor.advance(1)
        protocol.dataReceived(b"pong\n")
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTrue(result.ok)
        self.assertEqual((result.reply, result.latency), ("pong over TCP", 2))

    def test_the_deadline_covers_both(self) -> None:
        """Asked at 0 with 3 s: a stall over TCP from 2.5 s ends at 3 s, not 5.5 s."""
        results = self.probe(timeout=3)
        self.reactor.advance(2.5)
        self.port().deliver(b"tcp")
        self.reactor.advance(0)
        protocol, transport = connect(self.reactor)
        self.reactor.advance(0.5)
        self.assertTrue(transport.aborted)
        protocol.connectionLost(aborted())
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.WAIT)
        self.assertEqual(result.latency, 3)

    def test_the_deadline_while_connecting_over_tcp(self) -> None:
        results = self.probe(timeout=3)
        self.port().deliver(b"tcp")
        self.reactor.advance(0)
        self.reactor.advance(3)
        self.assertTimedOut(self.assertOnlyResult(results), Phase.CONNECT)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)  # type: ignore[attr-defined]

    def test_refused_over_tcp(self) -> None:
        results = self.probe(v4(port=53), v4("192.0.2.2", port=53))
        self.port().deliver(b"tcp")
        self.reactor.advance(0)
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(
            self.reactor.connectors[0], neterror.ConnectionRefusedError()
        )
        # No other address is tried over TCP: the answer said "ask me again".
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.assertFailure_(
            self.assertOnlyResult(results),
            MessageId.CONNECT_ERROR,
            errno.ECONNREFUSED,
            Phase.CONNECT,
        )

    def test_the_deadline_while_the_socket_closes(self) -> None:
        """The deadline strikes between the UDP close and the TCP connect: no connect."""
        self.reactor.close_delay = 0.5
        results = self.probe(timeout=3)
        self.reactor.advance(2.8)
        self.port().deliver(b"tcp")
        self.reactor.advance(0.2)
        self.assertEqual(results, [])  # waits for the socket to close
        self.reactor.advance(0.3)
        result = self.assertOnlyResult(results)
        self.assertTimedOut(result, Phase.CONNECT)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_a_result_only_once_the_socket_is_closed(self) -> None:
        self.reactor.close_delay = 0.5
        results = self.probe(timeout=3)
        self.port().deliver(b"pong")
        self.reactor.advance(0.4)
        self.assertEqual(results, [])
        self.reactor.advance(0.1)
        self.assertTrue(self.assertOnlyResult(results).ok)


# ---------------------------------------------------------------------------
# The real reactor and loopback sockets.

TIMEOUT = 0.6
SLACK = 0.5

# The loopback servers of the tests below, in a child process (its sockets
# are not this process's, and its stalls cannot block the reactor): for each
# mode, a UDP socket and a TCP listener on one port.  UDP: "pong" answers
# pong; "silent" never answers; "tcp" answers "tcp" (go on over TCP), whose
# listener answers "ping" with "pong"; "tcp_stall" answers "tcp" after 0.3 s
# and its listener never answers; "late" answers its first query 0.8 s late
# and never another.  It prints {"ports": {...}} and serves until its stdin
# closes.
_SERVER = r"""
import json, socket, sys, threading, time
MODES = ("pong", "silent", "tcp", "tcp_stall", "late")
def udp(mode, sock):
    asked = 0
    while True:
        query, peer = sock.recvfrom(65535)
        asked += 1
        answer = {"pong": (0, b"pong"), "tcp": (0, b"tcp"), "tcp_stall": (0.3, b"tcp"),
                  "late": (0.8, b"pong") if asked == 1 else None}.get(mode)
        if answer:
            threading.Timer(answer[0], sock.sendto, (answer[1], peer)).start()
def tcp(mode, listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(mode, conn), daemon=True).start()
def serve(mode, conn):
    with conn:
        try:
            if conn.recv(100) == b"ping\n" and mode == "tcp":
                conn.sendall(b"pong\n")
            while conn.recv(100):
                pass
        except OSError:
            pass
ports = {}
for mode in MODES:
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        try:
            t = socket.create_server(("127.0.0.1", u.getsockname()[1]))
            break
        except OSError:
            u.close()
    ports[mode] = u.getsockname()[1]
    threading.Thread(target=udp, args=(mode, u), daemon=True).start()
    threading.Thread(target=tcp, args=(mode, t), daemon=True).start()
print(json.dumps({"ports": ports}), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the test servers did not start"
        yield json.loads(process.stdout.readline())["ports"]
    finally:
        process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()  # our own child, by its handle
            process.wait(5)
        process.stdout.close()


def free_udp_port() -> int:
    """A UDP port nothing listens on (bound, then closed: the kernel refuses on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def ask(port: int, timeout: float = TIMEOUT) -> tuple[ProbeResult, float]:
    from twisted.internet import reactor

    def literal(host: str, port: int) -> Deferred[list[Address]]:
        return succeed([Address(socket.AF_INET, host, port)])

    leaks = Leaks()
    start = time.monotonic()
    try:
        result = await run_datagram_probe(
            reactor,
            literal,
            host="127.0.0.1",
            port=port,
            timeout=timeout,
            protocol_factory=PingDatagram,
        )
    finally:
        leaks.check()
    return result, time.monotonic() - start


@pytest_twisted.ensureDeferred
async def test_real_answer(servers: dict[str, int]) -> None:
    result, elapsed = await ask(servers["pong"])
    assert result.ok, result.describe()
    assert elapsed < TIMEOUT


@pytest_twisted.ensureDeferred
async def test_real_silence(servers: dict[str, int]) -> None:
    result, elapsed = await ask(servers["silent"])
    assert (result.message, result.number, result.phase) == (
        MessageId.SELECT_ERROR,
        errno.ETIMEDOUT,
        Phase.WAIT,
    )
    assert TIMEOUT - 0.05 <= elapsed <= TIMEOUT + SLACK


@pytest_twisted.ensureDeferred
async def test_real_refusal() -> None:
    """The kernel's ICMP refusal (EPOLLERR alone under epoll) is seen at once."""
    result, elapsed = await ask(free_udp_port())
    assert (result.message, result.number, result.phase) == (
        MessageId.CONNECT_ERROR,
        errno.ECONNREFUSED,
        Phase.CONNECT,
    ), result.describe()
    assert elapsed < TIMEOUT


@pytest_twisted.ensureDeferred
async def test_real_over_tcp(servers: dict[str, int]) -> None:
    result, elapsed = await ask(servers["tcp"])
    assert result.ok and result.reply == "pong over TCP", result.describe()
    assert elapsed < TIMEOUT


@pytest_twisted.ensureDeferred
async def test_real_over_tcp_stalls_within_the_one_deadline(servers: dict[str, int]) -> None:
    result, elapsed = await ask(servers["tcp_stall"])
    assert (result.message, result.phase) == (MessageId.SELECT_ERROR, Phase.WAIT)
    assert TIMEOUT - 0.05 <= elapsed <= TIMEOUT + SLACK


@pytest_twisted.ensureDeferred
async def test_a_late_answer_never_reaches_the_next_probe(servers: dict[str, int]) -> None:
    """
    The first question's answer comes 0.8 s late, after its 0.6 s deadline,
    while the second probe waits: the second probe's socket is its own, and
    its own answer never comes, so it times out too.
    """
    first, _ = await ask(servers["late"])
    assert first.message is MessageId.SELECT_ERROR
    second, elapsed = await ask(servers["late"], timeout=0.8)
    assert second.message is MessageId.SELECT_ERROR, second.describe()
    assert elapsed >= 0.8 - 0.05


class DatagramSeamTests(SynchronousTestCase):
    def test_a_datagram_conversation_logs_nothing_of_its_own(self) -> None:
        """One port per probe: the protocol's start/stop lines stay out of the log."""
        self.assertFalse(PingDatagram.noisy)
