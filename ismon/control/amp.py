# -*- test-case-name: tests.test_control -*-
# Much of twisted.protocols.amp and twisted.internet.endpoints is untyped.
# mypy: disallow-untyped-calls=False
"""
The control channel of a running watch: AMP over a UNIX socket in the
state folder (README "Running a watch": C{--stop}, C{--pause},
C{--continue}, plus a JSON status for C{ismon status}).

Server side: L{listen_control} binds the socket (mode 0600, inside the
0700 state folder) and answers with an L{IWatchControl} provider.  A client
that misbehaves - garbage bytes, oversized boxes, silence, too many
connections, another user - is dropped; it never crashes or blocks the
watch.

Client side: L{call} and the wrappers L{stop}, L{pause}, L{resume} and
L{status}, for code that runs a reactor anyway (the tests' reference
client).  The control commands use L{ismon.control.client}, the same
exchange without Twisted.  Every failure to reach a watch is a
L{ControlUnavailable}; a watch that declines a request answers with
L{ControlRefused}.

Nothing here knows about the command line.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import (
    UNIXClientEndpoint,
    connectProtocol,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import Interface

from ismon.control.client import REFUSED_CODE, ControlError, ControlRefused, ControlUnavailable
from ismon.control.request import MAX_PAUSE_SECONDS, reason_problem

__all__ = [
    "Continue",
    "ControlError",
    "ControlFactory",
    "ControlProtocol",
    "ControlRefused",
    "ControlUnavailable",
    "IWatchControl",
    "Pause",
    "Status",
    "Stop",
    "call",
    "control_factory",
    "listen_control",
    "pause",
    "peer_allowed",
    "peer_credentials",
    "resume",
    "status",
    "stop",
]

# A reactor providing IReactorTime and IReactorUNIX; Python's type system
# cannot spell that intersection of zope interfaces.
ReactorType = Any

_log = Logger(namespace="ismon.control")

#: Seconds a control connection may stay silent before it is cut.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Control connections served at once; further ones are closed at accept.
DEFAULT_MAX_CONNECTIONS = 64
#: Bytes a client may send towards one box.  Our commands carry at most a
#: pause's duration and reason, so real boxes are a few hundred bytes; this
#: only has to exceed one read (64 KiB) comfortably.
MAX_REQUEST_BYTES = 128 * 1024
#: Seconds a Stop answer may take to reach the client before the watch
#: stops anyway.
_STOP_FLUSH_LIMIT = 2.0
#: AMP values are at most 65535 bytes.
_MAX_STATUS_BYTES = 65535


_ERRORS: dict[type[Exception], bytes] = {ControlRefused: REFUSED_CODE}


class Stop(amp.Command):
    """Finish the watch.  Answered first; the watch then stops."""

    commandName = b"stop"
    arguments = []
    response = []
    errors = _ERRORS


class Pause(amp.Command):
    """
    Suspend probing.  C{changed} is false if it was already paused.

    Both arguments are optional, so a client that sends neither (the
    2004-style C{--pause}, or an older ismon) still pauses with no expiry:
    C{duration} is the seconds until the pause ends by itself, C{reason}
    why (README "Maintenance pauses").
    """

    commandName = b"pause"
    arguments = [
        (b"duration", amp.Float(optional=True)),
        (b"reason", amp.Unicode(optional=True)),
    ]
    response = [(b"changed", amp.Boolean())]
    errors = _ERRORS


class Continue(amp.Command):
    """Resume probing.  C{changed} is false if it was not paused."""

    commandName = b"continue"
    arguments = []
    response = [(b"changed", amp.Boolean())]
    errors = _ERRORS


class Status(amp.Command):
    """What the watch is doing: C{status} is a JSON object of its choosing."""

    commandName = b"status"
    arguments = []
    response = [(b"status", amp.Unicode())]
    errors = _ERRORS


class IWatchControl(Interface):
    """What a running watch offers to its control channel."""

    def stop() -> None:
        """
        Begin stopping the watch.  Called after the Stop answer has been
        delivered, at most once per control factory.
        """

    def pause(duration: float | None = None, reason: str = "") -> bool:
        """
        Suspend probing, for C{duration} seconds or until resumed, for
        C{reason}.  Return C{True} if this changed anything, C{False} if
        probing was already suspended (a new expiry and reason replace the
        old ones then).  May raise L{ControlRefused}.
        """

    def resume() -> bool:
        """
        Resume probing (the catalogue's "continue").  Return C{True} if this
        changed anything, C{False} if probing was not suspended.  May raise
        L{ControlRefused}.
        """

    def status() -> dict[str, object]:
        """A JSON-serialisable description of the watch."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """
    C{(pid, uid, gid)} of the process at the other end of a connected
    AF_UNIX socket (Linux C{SO_PEERCRED}, a C{struct ucred}).

    @raise OSError: the platform or the socket cannot tell.
    """
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        raise OSError("SO_PEERCRED is not available on this platform")
    size = struct.calcsize("3i")
    data = sock.getsockopt(socket.SOL_SOCKET, option, size)
    pid, uid, gid = struct.unpack("3i", data[:size])
    return pid, uid, gid


def peer_allowed(uid: int, own_uid: int) -> bool:
    """Only root and the user the watch runs as may control it."""
    return uid == 0 or uid == own_uid


def _check_peer(transport: ITransport | None, own_uid: int) -> str | None:
    """Why the peer of C{transport} may not control us, or L{None} if it may."""
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if not isinstance(handle, socket.socket):
        return "no socket to ask for the peer's credentials"
    try:
        pid, uid, _gid = peer_credentials(handle)
    except OSError as e:
        return f"the peer's credentials are unavailable ({e})"
    if not peer_allowed(uid, own_uid):
        return f"pid {pid} runs as uid {uid}; only uid 0 and {own_uid} may control this watch"
    return None


class ControlProtocol(amp.AMP):
    """
    One control connection, served for an L{IWatchControl}.

    Defensive: the peer's uid is checked on connect, silence is bounded by
    the factory's idle timeout, input per box by L{MAX_REQUEST_BYTES}, and
    any parse error drops the connection without disturbing the watch.
    """

    def __init__(self, factory: ControlFactory) -> None:
        super().__init__()
        self._factory = factory
        self._idle: IDelayedCall | None = None
        self._stop_flush: IDelayedCall | None = None
        self._pending_close: IDelayedCall | None = None
        self._stop_requested = False
        self._dropped = False
        self._request_bytes = 0

    # AMP.makeConnection / connectionLost log every connection at info level;
    # a watch's log should not fill with its own status polls.
    def makeConnection(self, transport: ITransport) -> None:
        self._transportPeer = transport.getPeer()
        self._transportHost = transport.getHost()
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        factory = self._factory
        factory.connections.add(self)
        why = _check_peer(self.transport, factory.own_uid) if factory.verify_peer else None
        if why is not None:
            _log.warn("Refused a control connection: {why}", why=why)
            self._drop()
            return
        self._idle = factory.reactor.callLater(factory.idle_timeout, self._timed_out)

    def _drop(self) -> None:
        self._dropped = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _timed_out(self) -> None:
        self._idle = None
        _log.info("Closed an idle control connection.")
        self._drop()

    def dataReceived(self, data: bytes) -> None:
        if self._dropped or self.transport is None:
            return
        self._request_bytes += len(data)
        if self._request_bytes > MAX_REQUEST_BYTES:
            _log.warn(
                "Dropped a control connection: over {limit} bytes without a complete box.",
                limit=MAX_REQUEST_BYTES,
            )
            self._drop()
            return
        if self._idle is not None:
            self._idle.reset(self._factory.idle_timeout)
        try:
            super().dataReceived(data)
        except Exception as e:
            _log.warn(
                "Dropped a control connection after a malformed request: {error}",
                error=f"{type(e).__name__}: {e}",
            )
            self._drop()

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        self._request_bytes = 0
        super().ampBoxReceived(box)

    def unhandledError(self, failure: Failure) -> None:
        """
        A request failed where AMP cannot answer it: a command without
        C{_ask} that is unknown or refused, or an answer too large to send.
        AMP would log that at critical level with a traceback; a client's
        bad request deserves one warning line.  Anything else is our bug
        and keeps its traceback.  Either way the connection is dropped.
        """
        if failure.check(amp.RemoteAmpError, amp.TooLong):
            _log.warn(
                "Dropped a control connection after a request that cannot be answered: {error}",
                # The first line: a RemoteAmpError's text goes on with a traceback.
                error=f"{type(failure.value).__name__}: "
                + (str(failure.value).splitlines() or [""])[0][:200],
            )
        else:
            _log.failure("A control request failed; dropping the connection.", failure)
        self._drop()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for call_ in (self._idle, self._pending_close, self._stop_flush):
            if call_ is not None and call_.active():
                call_.cancel()
        self._idle = self._pending_close = self._stop_flush = None
        self._factory.connections.discard(self)
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None
        if self._stop_requested:
            self._factory.fire_stop()

    # Responders

    @Stop.responder
    def _on_stop(self) -> dict[str, object]:
        # The answer is written when this returns; close the connection on
        # the next turn so that it is flushed, and stop once it is closed
        # (connectionLost), or after _STOP_FLUSH_LIMIT if the client does
        # not read.
        if not self._stop_requested:
            self._stop_requested = True
            reactor = self._factory.reactor
            self._pending_close = reactor.callLater(0, self._close_after_answer)
            self._stop_flush = reactor.callLater(_STOP_FLUSH_LIMIT, self._flush_limit)
        return {}

    def _close_after_answer(self) -> None:
        self._pending_close = None
        if self.transport is not None:
            self.transport.loseConnection()

    def _flush_limit(self) -> None:
        self._stop_flush = None
        self._drop()
        self._factory.fire_stop()

    @Pause.responder
    def _on_pause(
        self, duration: float | None = None, reason: str | None = None
    ) -> dict[str, object]:
        # Checked again here: a client other than ours may send anything.
        if duration is not None and not 1 <= duration <= MAX_PAUSE_SECONDS:
            raise ControlRefused(f"the pause duration must be 1 s to 7 days, not {duration!r}")
        if reason is not None and (why := reason_problem(reason)) is not None:
            raise ControlRefused(why)
        return {"changed": bool(self._factory.control.pause(duration, reason or ""))}

    @Continue.responder
    def _on_continue(self) -> dict[str, object]:
        return {"changed": bool(self._factory.control.resume())}

    @Status.responder
    def _on_status(self) -> dict[str, object]:
        text = json.dumps(self._factory.control.status(), sort_keys=True, default=str)
        if len(text.encode("utf-8")) > _MAX_STATUS_BYTES:
            raise ControlRefused("the status is too large to send")
        return {"status": text}


class ControlFactory(Factory):
    """
    Builds L{ControlProtocol}s for one watch and keeps count of them.

    @ivar connections: the control connections open right now.
    """

    noisy = False  # no "Starting factory" lines in the watch's log

    def __init__(
        self,
        control: IWatchControl,
        reactor: ReactorType,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        own_uid: int | None = None,
        verify_peer: bool = True,
    ) -> None:
        self.control = control
        self.verify_peer = verify_peer
        self.reactor = reactor
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.own_uid = os.geteuid() if own_uid is None else own_uid
        self.connections: set[ControlProtocol] = set()
        self._stopped = False

    def buildProtocol(self, addr: object) -> ControlProtocol | None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            _log.warn(
                "Refused a control connection: {count} already open.",
                count=len(self.connections),
            )
            return None  # the port closes the socket
        protocol = ControlProtocol(self)
        protocol.factory = self
        return protocol

    def fire_stop(self) -> None:
        """Tell the watch to stop, once."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.control.stop()
        except Exception:
            _log.failure("The watch failed to stop on request.")


def control_factory(
    control: IWatchControl,
    reactor: ReactorType | None = None,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    own_uid: int | None = None,
    verify_peer: bool = True,
) -> ControlFactory:
    """
    A factory serving C{control}.

    @param reactor: for the timers; the global reactor if L{None} (entry
        points and tests should pass one).
    @param idle_timeout: seconds of silence before a connection is cut.
    @param max_connections: connections served at once.
    @param own_uid: besides root, the uid allowed to connect; our effective
        uid if L{None}.
    @param verify_peer: check the peer's uid with SO_PEERCRED; turn off only
        for tests over transports without a socket (C{StringTransport}).
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    return ControlFactory(
        IWatchControl(control),
        reactor,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        own_uid=own_uid,
        verify_peer=verify_peer,
    )


def listen_control(
    reactor: ReactorType,
    socket_path: Path,
    control: IWatchControl,
    *,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    own_uid: int | None = None,
) -> Deferred[IListeningPort]:
    """
    Serve C{control} on the UNIX socket C{socket_path} (mode 0600, no
    Twisted lockfile: the watch's own lock guards the name, and
    L{ismon.state.lock.WatchLock.acquire} clears a stale socket).

    Stopping the returned port removes the socket file.
    """
    description = f"unix:address={quoteStringArgument(os.fspath(socket_path))}:mode=600:lockfile=0"
    endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    factory = control_factory(
        control,
        reactor,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
        own_uid=own_uid,
    )
    return endpoint.listen(factory)


# Client side


class _ClientProtocol(amp.AMP):
    def __init__(self) -> None:
        super().__init__()
        self.closed: Deferred[None] = Deferred()

    def makeConnection(self, transport: ITransport) -> None:
        self._transportPeer = transport.getPeer()
        self._transportHost = transport.getHost()
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None
        self.closed.callback(None)


def _why(error: ConnectError) -> str:
    number = getattr(error, "osError", None)
    if isinstance(number, int):
        return os.strerror(number)
    return str(error)


async def call(
    reactor: ReactorType,
    socket_path: Path,
    command: type[amp.Command],
    timeout: float = 10.0,
    **kwargs: object,
) -> dict[str, Any]:
    """
    Send one C{command} to the watch listening on C{socket_path} and return
    its answer, all within C{timeout} seconds.

    @raise ControlUnavailable: no socket, nobody listening, connection
        closed before the answer (for instance: this user is not allowed),
        or no answer in time.
    @raise ControlRefused: the watch declined.
    @raise ControlError: any other error reported by the watch.
    """
    where = os.fspath(socket_path)
    deadline = reactor.seconds() + timeout
    protocol = _ClientProtocol()
    connecting: Deferred[_ClientProtocol] = connectProtocol(
        UNIXClientEndpoint(reactor, where, timeout=timeout), protocol
    )
    connecting.addTimeout(timeout, reactor)
    try:
        await connecting
    except (defer.TimeoutError, CancelledError):
        raise ControlUnavailable(
            f"no watch answered on {where} within {timeout:g} s (connect)"
        ) from None
    except ConnectError as e:
        raise ControlUnavailable(f"no watch is listening on {where} ({_why(e)})") from None
    try:
        asking: Deferred[dict[str, Any]] = protocol.callRemote(command, **kwargs)
        asking.addTimeout(max(deadline - reactor.seconds(), 0.0), reactor)
        return await asking
    except (defer.TimeoutError, CancelledError):
        raise ControlUnavailable(f"no watch answered on {where} within {timeout:g} s") from None
    except ConnectionClosed as e:
        raise ControlUnavailable(
            f"the watch on {where} closed the connection without answering"
            f" (is this user allowed to control it?): {type(e).__name__}"
        ) from None
    except ControlRefused:
        raise
    except amp.RemoteAmpError as e:
        raise ControlError(f"the watch on {where} reported an error: {e}") from None
    finally:
        if protocol.transport is not None:
            protocol.transport.abortConnection()  # type: ignore[attr-defined]
        await protocol.closed


async def stop(reactor: ReactorType, socket_path: Path, timeout: float = 10.0) -> None:
    """Ask the watch to stop; returns once it has accepted (not exited)."""
    await call(reactor, socket_path, Stop, timeout)


async def pause(
    reactor: ReactorType,
    socket_path: Path,
    timeout: float = 10.0,
    *,
    duration: float | None = None,
    reason: str | None = None,
) -> bool:
    """
    Suspend probing, for C{duration} seconds if given; C{False} if it was
    already suspended.  Arguments not given are not sent.
    """
    arguments: dict[str, object] = {}
    if duration is not None:
        arguments["duration"] = float(duration)
    if reason is not None:
        arguments["reason"] = reason
    answer = await call(reactor, socket_path, Pause, timeout, **arguments)
    return bool(answer["changed"])


async def resume(reactor: ReactorType, socket_path: Path, timeout: float = 10.0) -> bool:
    """Resume probing ("continue"); C{False} if it was not suspended."""
    answer = await call(reactor, socket_path, Continue, timeout)
    return bool(answer["changed"])


async def status(
    reactor: ReactorType, socket_path: Path, timeout: float = 10.0
) -> dict[str, object]:
    """The watch's status object."""
    answer = await call(reactor, socket_path, Status, timeout)
    try:
        decoded = json.loads(answer["status"])
    except (ValueError, RecursionError) as e:
        # RecursionError: nested past the interpreter's depth.
        raise ControlError(f"the watch on {socket_path} sent a malformed status: {e}") from None
    if not isinstance(decoded, dict):
        raise ControlError(f"the watch on {socket_path} sent a status that is not an object")
    return decoded
