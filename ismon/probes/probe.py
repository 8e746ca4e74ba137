# -*- test-case-name: tests.test_probe -*-
"""
The probe seam (L{IProbe}) and the deadline core every probe shares: one
hard deadline over name resolution, connect, TLS and the whole
conversation, and the mapping of socket errors to catalogue messages.

A protocol's probe is a conversation on top of this (docs/architecture.md,
"Adding a protocol"): subclass L{ProbeProtocol} and hand a factory of it to
L{run_probe} (L{ismon.probes.conversation.ConversationProbe} does that).
L{ProbeProtocol} is the whole seam:

  - what the conversation gets: L{ProbeProtocol.begin} once the connection
    (and implicit TLS) is up, C{dataReceived}, L{ProbeProtocol.ended} when
    the connection ends with no verdict yet, and
    L{ProbeProtocol.startTLSCompleted} after its own STARTTLS;
  - what it may do: set L{ProbeProtocol.phase} as it goes (a timeout is
    reported in the phase it struck), read L{ProbeProtocol.decided} and
    L{ProbeProtocol.elapsed}, call L{ProbeProtocol.start_tls} for STARTTLS;
  - what it must do: give one verdict, L{ProbeProtocol.succeed} or
    L{ProbeProtocol.fail} (only the first counts), or let the connection
    end.  The deadline, the addresses, closing and the result are not its
    business.

A protocol spoken over UDP (DNS) has a datagram conversation instead: a
L{DatagramProbeProtocol} handed to L{run_datagram_probe}, under the same
deadline, on a connected UDP socket of its own for each probe.  It gets
L{DatagramProbeProtocol.begin} once the socket is connected (it sends its
question), C{datagramReceived}, and gives the same verdicts; a refusal
(ICMP port unreachable) is message 72 with ECONNREFUSED, as a refused TCP
connect is.  It may go on over TCP to the same address with
L{DatagramProbeProtocol.over_stream} (DNS after a truncated answer): the
socket is closed, and a stream conversation runs under what is left of the
one deadline.  An answer that comes after the deadline finds the socket
closed, so it never counts, not for the next probe either (which has a
socket of its own).

TLS comes in as an L{ITLSClient} (made by L{ismon.probes.tls.client_tls}),
so that this module never loads the TLS stack.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet import error as neterror
from twisted.internet import udp
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableDescriptor,
    IHandshakeListener,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from ismon.core.catalogue import MessageId
from ismon.core.resources import MONITOR_ERRNOS
from ismon.core.result import Phase, ProbeResult, monitor_failure, timed_out
from ismon.probes.resolve import Address, ResolveError, Resolver, ResolverUnavailable

__all__ = [
    "MAX_DATAGRAM_BYTES",
    "REPLY_LIMIT",
    "DatagramProbeProtocol",
    "IProbe",
    "ITLSClient",
    "ProbeProtocol",
    "ReactorType",
    "lost_failure",
    "run_datagram_probe",
    "run_probe",
]

#: Characters of a server's reply (and of a failure's detail) a result keeps
#: at most: one syslog line's worth, and far below what the status document
#: may carry over the control socket.
REPLY_LIMIT = 400

#: The largest datagram a datagram conversation reads whole (a UDP payload
#: is at most 65507 bytes over IPv4): a longer one would be cut by the
#: socket, and judged as what it is.
MAX_DATAGRAM_BYTES = 65535

# A reactor providing IReactorTime, IReactorTCP and IReactorThreads; Python's
# type system cannot spell that intersection of zope interfaces.
ReactorType = Any


class IProbe(Interface):
    """One question to a server, asked on demand."""

    def probe() -> Deferred[ProbeResult]:
        """
        Ask once.  The Deferred always fires with a L{ProbeResult} (never an
        errback) within the probe's timeout plus scheduling slack, and leaves
        no socket or timer behind.
        """


# Seconds a probe that has its verdict waits for the connection to close
# before it aborts it.
LINGER = 0.25


class ITLSClient(Interface):
    """
    TLS as a probe speaks it: L{ismon.probes.tls.client_tls} makes one from the
    watch's L{ismon.core.requests.TLSSettings}.
    """

    def connection_creator() -> Any:
        """The C{IOpenSSLClientConnectionCreator} for the server's connections."""

    def days_left(transport: object) -> int | None:
        """Whole days until the peer certificate expires; None without one."""

    def not_after(transport: object) -> float | None:
        """When the peer certificate expires (epoch seconds); None without one."""

    def describe_failure(reason: Failure) -> tuple[bool, str] | None:
        """
        C{(True, text)} for an untrusted certificate, C{(False, text)} for
        another TLS error, None when C{reason} is no TLS error.
        """


def _connect_failure(reason: Failure) -> ProbeResult:
    """
    Map a failed TCP connect to message 72 (or 71) with the errno; or, when
    the monitor's own resources failed (no descriptor, no memory, no socket
    buffer: L{MONITOR_ERRNOS}), to message 42 (C{socket 24}): the server
    was never asked.
    """
    value = reason.value
    own = _own_failure(value)
    if own is not None:
        return own
    if isinstance(value, neterror.ConnectionRefusedError):
        number = errno.ECONNREFUSED
    elif isinstance(value, neterror.TCPTimedOutError | neterror.TimeoutError):
        number = errno.ETIMEDOUT
    elif isinstance(value, neterror.NoRouteError):
        # Twisted raises NoRouteError for ENETUNREACH (101) as well: report
        # the errno the socket gave, not always EHOSTUNREACH.
        os_error = value.osError
        number = os_error if isinstance(os_error, int) else errno.EHOSTUNREACH
    elif isinstance(value, neterror.ConnectError) and isinstance(value.osError, int):
        number = value.osError
    elif isinstance(value, OSError) and value.errno is not None:
        return ProbeResult.failure(
            MessageId.SOCKET_ERROR, Phase.CONNECT, number=value.errno, detail=str(value)
        )
    else:
        number = 0
    return ProbeResult.failure(
        MessageId.CONNECT_ERROR, Phase.CONNECT, number=number, detail=str(value)[:200]
    )


def _own_failure(value: object) -> ProbeResult | None:
    """Message 42 for an error of the monitor's own resources; else None."""
    if isinstance(value, MemoryError):
        return monitor_failure("memory", errno.ENOMEM, Phase.CONNECT, "out of memory")
    number: object = None
    if isinstance(value, neterror.ConnectError):
        # Twisted keeps the errno of socket() or connect() (a "Couldn't bind").
        number = value.osError
    elif isinstance(value, OSError):
        number = value.errno
    if isinstance(number, int) and number in MONITOR_ERRNOS:
        return monitor_failure("socket", number, Phase.CONNECT, os.strerror(number))
    return None


def _tls_failure(reason: Failure, tls: ITLSClient | None) -> ProbeResult | None:
    """Map a TLS failure to message 90/91, or None if it is not one."""
    # Without TLS (a plain-TCP watch) no failure is a TLS one.
    described = None if tls is None else tls.describe_failure(reason)
    if described is None:
        return None
    verify, text = described
    message = MessageId.TLS_VERIFY_ERROR if verify else MessageId.TLS_HANDSHAKE_ERROR
    return ProbeResult.failure(message, Phase.TLS, detail=text)


def lost_failure(reason: Failure, phase: Phase, tls: ITLSClient | None = None) -> ProbeResult:
    """
    The connection ended before an answer was complete: a TLS error (when
    the probe speaks TLS), a reset (75 ECONNRESET), or a clean close (75
    with 0: recv() returned 0).
    """
    if phase is Phase.TLS or not isinstance(
        reason.value, neterror.ConnectionDone | neterror.ConnectionLost
    ):
        tls_result = _tls_failure(reason, tls)
        if tls_result is not None:
            return tls_result
    if isinstance(reason.value, neterror.ConnectionDone):
        return ProbeResult.failure(
            MessageId.RECV_ERROR, phase, number=0, detail="connection closed by the server"
        )
    message = MessageId.SEND_ERROR if phase is Phase.SEND else MessageId.RECV_ERROR
    return ProbeResult.failure(
        message, phase, number=errno.ECONNRESET, detail="connection reset by the server"
    )


class _Verdicts:
    """
    What every conversation, over a stream or datagrams, may read and
    report: the phase, whether a verdict is in, the time, and the verdicts
    (kept to L{shown} text).
    """

    # Set by the machinery before the connection is made; a conversation
    # uses the methods below, never this.
    _attempt: _Attempt

    #: The last reply a conversation read; a verdict given by the connection's
    #: end (L{ProbeProtocol.ended}) carries it, so the status shows what the
    #: server said last.
    last_reply: str = ""

    #: What a server might echo but no one may read (a login's password):
    #: shown as C{***} in every reply and detail a verdict carries.
    hidden: tuple[str, ...] = ()

    def shown(self, text: str) -> str:
        """
        C{text} as a verdict may carry it: the L{hidden} strings replaced,
        then cut to L{REPLY_LIMIT} characters, so that no server can put a
        password, or a reply too large for the status document, in it.
        """
        for secret in self.hidden:
            if secret:
                text = text.replace(secret, "***")
        if len(text) > REPLY_LIMIT:
            text = text[: REPLY_LIMIT - 1] + "\u2026"
        return text

    @property
    def phase(self) -> Phase:
        """Where the conversation is: a timeout is reported in this phase."""
        return self._attempt.phase

    @phase.setter
    def phase(self, value: Phase) -> None:
        self._attempt.phase = value

    @property
    def decided(self) -> bool:
        """A verdict is in (or the deadline struck): ignore what still arrives."""
        return self._attempt.decided

    def elapsed(self) -> float:
        """Seconds since the probe began (name resolution included)."""
        return self._attempt.elapsed()

    def _passed(self, reply: str) -> None:
        self._attempt.decide(ProbeResult(ok=True, latency=self.elapsed(), reply=self.shown(reply)))

    def _failed(self, message: MessageId, number: int | None, reply: str, detail: str) -> None:
        self._attempt.decide(
            ProbeResult.failure(
                message,
                self._attempt.phase,
                number=number,
                reply=self.shown(reply),
                detail=self.shown(detail),
            )
        )


class ProbeProtocol(_Verdicts, Protocol):
    """
    A probe's conversation: the public seam between the shared deadline
    machinery and a protocol (see the module docstring).  Subclasses
    implement C{dataReceived}, L{begin} (unless the server speaks first)
    and, when a partial answer can still be judged, L{ended}; they report
    with L{succeed} or L{fail}.  Only the first verdict counts.
    """

    def connectionMade(self) -> None:
        self._attempt.connected(self)
        if self._attempt.implicit_tls:
            self._attempt.phase = Phase.TLS
        else:
            self.begin()

    def handshakeCompleted(self) -> None:
        self._attempt.tls_done(self)
        if self._attempt.implicit_tls:
            self.begin()
        else:
            self.startTLSCompleted()

    def begin(self) -> None:
        """
        The connection (and implicit TLS, if any) is up: start talking.  By
        default the server speaks first (a greeting), so wait for it.
        """
        self.phase = Phase.WAIT

    def startTLSCompleted(self) -> None:
        """A STARTTLS begun with L{start_tls} has finished."""

    def ended(self, reason: Failure) -> ProbeResult:
        """The verdict when the connection ends before one was given."""
        result = lost_failure(reason, self._attempt.phase, self._attempt.tls)
        if self.last_reply and not result.reply:
            result = attrs.evolve(result, reply=self.shown(self.last_reply))
        return result

    def connectionLost(self, reason: Failure = neterror.ConnectionDone) -> None:  # type: ignore[assignment]
        if not self._attempt.decided:
            self._attempt.decide(self.ended(reason))
        self._attempt.disconnected()

    def start_tls(self) -> None:
        """
        Upgrade the connection to TLS now (STARTTLS); L{startTLSCompleted}
        follows the handshake.  Only for a probe given TLS settings.
        """
        self.phase = Phase.TLS
        tls = self._attempt.tls
        assert tls is not None, "start_tls without TLS settings"
        self.transport.startTLS(tls.connection_creator())  # type: ignore[union-attr]

    def succeed(self, reply: str = "") -> None:
        self._passed(reply)
        self.transport.loseConnection()  # type: ignore[union-attr]
        self._attempt.linger()

    def fail(
        self, message: MessageId, *, number: int | None = None, reply: str = "", detail: str = ""
    ) -> None:
        self._failed(message, number, reply, detail)
        # No reason to read more from a server that already answered wrongly.
        self.transport.abortConnection()  # type: ignore[union-attr]


implementer(IHandshakeListener)(ProbeProtocol)


class DatagramProbeProtocol(_Verdicts, DatagramProtocol):
    """
    A probe's conversation over datagrams (the module docstring): the
    machinery gives it a UDP socket connected to the server, then calls
    L{begin}, which sends the question with L{send}; C{datagramReceived}
    judges what comes (from that server only: the socket is connected) and
    reports with L{succeed} or L{fail}, or goes on over TCP with
    L{over_stream}.  Only the first verdict counts; what arrives after it is
    not read.
    """

    # One port per probe: its start/stop lines would flood the log.
    noisy = False

    def begin(self) -> None:
        """The socket is connected to the server: send the question."""
        raise NotImplementedError

    def send(self, datagram: bytes) -> None:
        """Send one datagram to the server; an error sending it is message 73."""
        self.phase = Phase.SEND
        try:
            self.transport.write(datagram)  # type: ignore[union-attr,call-arg]
        except (OSError, neterror.MessageLengthError) as e:
            own = _own_failure(e)
            if own is not None:
                # ENOBUFS, ENOMEM: the monitor's own socket buffers, not the server.
                self._attempt.decide(attrs.evolve(own, latency=self.elapsed(), phase=Phase.SEND))
                self._attempt.close_datagram()
                return
            number = e.errno if isinstance(e, OSError) and e.errno is not None else 0
            self.fail(MessageId.SEND_ERROR, number=number, detail=str(e)[:200])
            return
        if not self.decided:
            self.phase = Phase.WAIT

    def connectionRefused(self) -> None:
        # ICMP port unreachable, reported by the connected socket.
        self.socket_failed(errno.ECONNREFUSED)

    def socket_failed(self, number: int) -> None:
        """
        The socket reported error C{number} (ECONNREFUSED for an ICMP port
        unreachable, EHOSTUNREACH ...): message 72 with it, and the next
        address.
        """
        self._attempt.socket_failed(number)

    def over_stream(self, protocol_factory: Callable[[], ProbeProtocol]) -> None:
        """
        Close the socket and go on with a conversation of C{protocol_factory}
        over TCP to the same address and port, under what is left of the
        deadline (a truncated DNS answer).
        """
        self._attempt.over_stream(protocol_factory)

    def succeed(self, reply: str = "") -> None:
        self._passed(reply)
        self._attempt.close_datagram()

    def fail(
        self, message: MessageId, *, number: int | None = None, reply: str = "", detail: str = ""
    ) -> None:
        self._failed(message, number, reply, detail)
        self._attempt.close_datagram()


@implementer(IHalfCloseableDescriptor)
class _DatagramPort(udp.Port):
    """
    Twisted's UDP port, made to report every error the kernel queues on a
    connected socket to its L{DatagramProbeProtocol}.  An ICMP refusal
    makes epoll (and poll) report EPOLLERR alone, without EPOLLIN; the
    reactor then takes the socket for closed instead of reading it, so
    Twisted's own C{connectionRefused} (reached only when a read fails)
    never comes, the port closes in silence, and the probe would wait for
    its deadline.  As a half-closeable descriptor, this port is told
    instead (L{readConnectionLost}), and reads the error itself.  An error
    a read raises other than a refusal is reported the same way, instead of
    being logged as a crash.
    """

    protocol: DatagramProbeProtocol

    def doRead(self) -> Any:
        try:
            return super().doRead()
        except OSError as e:
            self.stopReading()
            self.protocol.socket_failed(e.errno or 0)
            return None

    def readConnectionLost(self, reason: Failure) -> None:
        # The reactor has stopped reading already: the probe closes the port.
        number = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self.protocol.socket_failed(number)

    def writeConnectionLost(self, reason: Failure) -> None:
        """Never called: the reactor reports a failed UDP socket as a read."""


def _listen_udp(reactor: ReactorType, protocol: DatagramProbeProtocol, interface: str) -> Any:
    """A L{_DatagramPort} on an ephemeral port of C{interface}, reading."""
    port = _DatagramPort(0, protocol, interface, MAX_DATAGRAM_BYTES, reactor)
    port.startListening()
    return port


class _Attempt:
    """
    One run of one probe: resolve, connect (each address in turn), speak,
    and give exactly one result, all under one deadline.  The conversation
    is over a stream (C{stream}: TCP, maybe TLS) or over datagrams
    (C{datagram}: a connected UDP socket), which may hand over to a stream
    (L{over_stream}).
    """

    def __init__(
        self,
        reactor: ReactorType,
        resolver: Resolver,
        host: str,
        port: int,
        timeout: float,
        *,
        stream: Callable[[], ProbeProtocol] | None = None,
        datagram: Callable[[], DatagramProbeProtocol] | None = None,
        tls: ITLSClient | None = None,
        implicit_tls: bool = False,
    ) -> None:
        self._reactor = reactor
        self._resolver = resolver
        self._host = host
        self._port_number = port
        self._timeout = timeout
        self._stream_factory = stream
        self._datagram_factory = datagram
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.phase = Phase.RESOLVE
        self.decided = False
        self._result: ProbeResult | None = None
        self._pending: Deferred[Any] | None = None
        self._addresses: list[Address] = []
        # The stream conversation, while its connection is open.
        self._protocol: ProbeProtocol | None = None
        self._connected = False
        # The datagram socket (a udp.Port) while open; then whether it is
        # still closing (its close completes on the reactor's next turn),
        # and what to do once it is closed (another address, or TCP).
        self._udp: Any = None
        self._udp_closing = False
        self._then: Callable[[], None] | None = None
        self._deadline: IDelayedCall | None = None
        self._linger_call: IDelayedCall | None = None
        self._done: Deferred[ProbeResult] = Deferred()
        self._address: Address | None = None
        self._cert_days_left: int | None = None
        self._cert_not_after: float | None = None
        self._start = 0.0

    def run(self) -> Deferred[ProbeResult]:
        self._start = self._reactor.seconds()
        self._deadline = self._reactor.callLater(self._timeout, self._expire)
        self._pending = self._resolver(self._host, self._port_number)
        self._pending.addCallbacks(self._resolved, self._resolve_failed)
        return self._done

    def elapsed(self) -> float:
        now: float = self._reactor.seconds()
        return max(0.0, now - self._start)

    def _resolve_failed(self, reason: Failure) -> None:
        self._pending = None
        if self.decided:
            return
        value = reason.value
        if isinstance(value, ResolverUnavailable):
            # No thread, descriptor or memory to ask with: the monitor's.
            self.decide(monitor_failure(value.function, value.number, Phase.RESOLVE, str(value)))
            self._finish()
            return
        code = value.code if isinstance(value, ResolveError) else 0
        self.decide(
            ProbeResult.failure(
                MessageId.RESOLVE_ERROR, Phase.RESOLVE, number=code, detail=str(value)
            )
        )
        self._finish()

    def _resolved(self, addresses: Sequence[Address]) -> None:
        self._pending = None
        if self.decided:
            return
        if not addresses:
            # An empty answer is a failed lookup (81), not something to connect to.
            self.decide(
                ProbeResult.failure(
                    MessageId.RESOLVE_ERROR,
                    Phase.RESOLVE,
                    number=socket.EAI_NONAME,
                    detail="no address found",
                )
            )
            self._finish()
            return
        self.phase = Phase.CONNECT
        self._addresses = list(addresses)
        self._try(None)

    def _try(self, last: ProbeResult | None) -> None:
        """Connect to the next address; with none left, C{last} is the verdict."""
        if self.decided:
            self._finish()
            return
        if not self._addresses:
            assert last is not None
            self.decide(attrs.evolve(last, latency=self.elapsed()))
            self._finish()
            return
        address = self._addresses.pop(0)
        self._address = address
        if self._datagram_factory is not None:
            self._open_datagram(address, self._datagram_factory)
            return
        endpoint = self._endpoint(address)
        factory = Factory.forProtocol(self._make_protocol)
        # One factory per probe: its start/stop lines would flood the log.
        factory.noisy = False
        self._pending = endpoint.connect(factory)

        def failed(reason: Failure) -> None:
            self._pending = None
            if isinstance(reason.value, CancelledError | neterror.ConnectingCancelledError):
                # Only _expire cancels, and it finishes once cancel() has
                # returned: the endpoint errbacks *before* it closes the
                # socket and cancels its connect timer (stopConnecting).
                return
            self._try(_connect_failure(reason))

        def succeeded(_: object) -> None:
            self._pending = None

        self._pending.addCallbacks(succeeded, failed)

    def _endpoint(self, address: Address) -> IStreamClientEndpoint:
        endpoint_type = (
            TCP6ClientEndpoint if address.family == socket.AF_INET6 else TCP4ClientEndpoint
        )
        remaining = max(1, int(self._timeout - self.elapsed() + 1))
        endpoint: IStreamClientEndpoint = endpoint_type(
            self._reactor, address.host, address.port, timeout=remaining
        )
        if self.implicit_tls:
            from twisted.internet.endpoints import wrapClientTLS

            assert self.tls is not None
            endpoint = wrapClientTLS(self.tls.connection_creator(), endpoint)
        return endpoint

    def _make_protocol(self) -> ProbeProtocol:
        assert self._stream_factory is not None
        protocol = self._stream_factory()
        protocol._attempt = self
        return protocol

    # -- datagrams ------------------------------------------------------------

    def _open_datagram(
        self, address: Address, factory: Callable[[], DatagramProbeProtocol]
    ) -> None:
        """A UDP socket of this probe's own, connected to C{address}; then L{begin}."""
        protocol = factory()
        protocol._attempt = self
        any_address = "::" if address.family == socket.AF_INET6 else "0.0.0.0"
        try:
            self._udp = _listen_udp(self._reactor, protocol, any_address)
        except neterror.CannotListenError as e:
            error = e.socketError
            # No descriptor or memory for the socket is the monitor's own
            # failure (message 42), as for a TCP connect: the server was
            # never asked.
            own = _own_failure(error)
            if own is not None:
                self._try(own)
                return
            number = error.errno if isinstance(error, OSError) and error.errno else 0
            self._try(
                ProbeResult.failure(
                    MessageId.SOCKET_ERROR, Phase.CONNECT, number=number, detail=str(error)[:200]
                )
            )
            return
        try:
            # Connected: the kernel drops datagrams from anyone else, and
            # reports an ICMP refusal (connectionRefused).
            self._udp.connect(address.host, address.port)
        except OSError as e:
            failed = _own_failure(e) or ProbeResult.failure(
                MessageId.CONNECT_ERROR, Phase.CONNECT, number=e.errno or 0, detail=str(e)[:200]
            )
            self.close_datagram(then=lambda: self._try(failed))
            return
        self.phase = Phase.SEND
        protocol.begin()

    def close_datagram(self, then: Callable[[], None] | None = None) -> None:
        """
        Close the datagram socket; once it is closed, C{then} (unless a
        verdict is in by then), else the result.
        """
        port, self._udp = self._udp, None
        if port is None:
            return
        self._udp_closing = True
        self._then = then
        closed = port.stopListening()
        if closed is None:
            self._datagram_closed()
        else:
            closed.addCallback(lambda _: self._datagram_closed())

    def _datagram_closed(self) -> None:
        self._udp_closing = False
        then, self._then = self._then, None
        if then is not None and not self.decided:
            then()
        else:
            self._finish()

    def socket_failed(self, number: int) -> None:
        """
        The datagram socket reported an error: a refusal (the server's
        port is closed: ICMP port unreachable) or an unreachable host or
        network is message 72 with its errno, as a failed TCP connect is;
        then the next address.
        """
        if self.decided or self._udp is None:
            return
        own = _own_failure(OSError(number, os.strerror(number)))
        if own is not None:
            self.close_datagram(then=lambda: self._try(own))
            return
        if number == errno.ECONNREFUSED:
            detail = "port unreachable (ICMP)"
        else:
            detail = os.strerror(number) if number else "the socket failed"
        failed = ProbeResult.failure(
            MessageId.CONNECT_ERROR if number else MessageId.SOCKET_ERROR,
            Phase.CONNECT,
            number=number,
            detail=detail,
        )
        self.close_datagram(then=lambda: self._try(failed))

    def over_stream(self, protocol_factory: Callable[[], ProbeProtocol]) -> None:
        """Close the datagram socket, then connect over TCP to the same address."""
        if self.decided or self._udp is None:
            return
        assert self._address is not None
        self._datagram_factory = None
        self._stream_factory = protocol_factory
        self._addresses = [self._address]
        self.phase = Phase.CONNECT
        self.close_datagram(then=lambda: self._try(None))

    def connected(self, protocol: ProbeProtocol) -> None:
        self._protocol = protocol
        self._connected = True
        self.phase = Phase.SEND

    def tls_done(self, protocol: ProbeProtocol) -> None:
        if self.tls is not None:
            self._cert_days_left = self.tls.days_left(protocol.transport)
            self._cert_not_after = self.tls.not_after(protocol.transport)

    def decide(self, result: ProbeResult) -> None:
        if self.decided:
            return
        self.decided = True
        self._result = attrs.evolve(
            result,
            latency=result.latency or self.elapsed(),
            address=str(self._address) if self._address else "",
            cert_days_left=self._cert_days_left,
            cert_not_after=self._cert_not_after,
        )

    def linger(self) -> None:
        """
        After a polite close, give the peer a moment, then abort.  Over TLS
        loseConnection waits for the server's close_notify, which a server
        that keeps the connection open never sends: the verdict must not
        wait for the deadline (and push the next probe off its slot).
        """
        if self._connected and self._linger_call is None:
            self._linger_call = self._reactor.callLater(LINGER, self._abort_lingering)

    def _abort_lingering(self) -> None:
        self._linger_call = None
        if self._connected and self._protocol is not None:
            self._protocol.transport.abortConnection()  # type: ignore[union-attr]

    def disconnected(self) -> None:
        if self._linger_call is not None and self._linger_call.active():
            self._linger_call.cancel()
        self._linger_call = None
        self._connected = False
        self._protocol = None
        self._finish()

    def _expire(self) -> None:
        self._deadline = None
        self.decide(timed_out(self.phase, self.elapsed()))
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.cancel()
        if self._udp is not None:
            self.close_datagram()
        elif self._udp_closing:
            pass  # the result follows the close (_datagram_closed)
        elif self._connected and self._protocol is not None:
            self._protocol.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self._finish()

    def cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _finish(self) -> None:
        """Fire the result once a verdict exists and nothing is left open."""
        if not self.decided or self._connected or self._pending is not None:
            return
        if self._udp is not None or self._udp_closing:
            return
        if self._done.called:
            return
        self.cancel_deadline()
        assert self._result is not None
        self._done.callback(self._result)


def run_probe(
    reactor: ReactorType,
    resolver: Resolver,
    *,
    host: str,
    port: int,
    timeout: float,
    protocol_factory: Callable[[], ProbeProtocol],
    tls: ITLSClient | None = None,
    implicit_tls: bool = False,
) -> Deferred[ProbeResult]:
    """
    Run one probe conversation against C{host}:C{port} under a single
    deadline of C{timeout} seconds.  C{tls} (from L{ismon.probes.tls.client_tls})
    is spoken from the first byte with C{implicit_tls}, or when the
    conversation calls L{ProbeProtocol.start_tls}.  The Deferred never
    errbacks.
    """
    attempt = _Attempt(
        reactor,
        resolver,
        host,
        port,
        timeout,
        stream=protocol_factory,
        tls=tls,
        implicit_tls=implicit_tls,
    )
    return _run(attempt)


def run_datagram_probe(
    reactor: ReactorType,
    resolver: Resolver,
    *,
    host: str,
    port: int,
    timeout: float,
    protocol_factory: Callable[[], DatagramProbeProtocol],
) -> Deferred[ProbeResult]:
    """
    Run one datagram conversation with C{host}:C{port} (UDP), each address
    in turn, under a single deadline of C{timeout} seconds, which also
    covers a conversation it goes on with over TCP
    (L{DatagramProbeProtocol.over_stream}).  The Deferred never errbacks.
    """
    attempt = _Attempt(reactor, resolver, host, port, timeout, datagram=protocol_factory)
    return _run(attempt)


def _run(attempt: _Attempt) -> Deferred[ProbeResult]:
    try:
        return attempt.run()
    except Exception as e:  # a programming error, no memory: not the server's
        # Leave no timer behind (IProbe): run() may have armed the deadline.
        attempt.cancel_deadline()
        if isinstance(e, MemoryError):
            return succeed(monitor_failure("memory", errno.ENOMEM, Phase.CONNECT, "out of memory"))
        return succeed(monitor_failure("probe", 0, Phase.CONNECT, repr(e)[:200]))
