"""
Tests for L{ismon.control}: the AMP control channel over a real UNIX socket
with the real reactor, and its defences against hostile clients.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from ismon.control import amp as control
from ismon.control.amp import (
    Continue,
    ControlError,
    ControlFactory,
    ControlRefused,
    ControlUnavailable,
    IWatchControl,
    Pause,
    Status,
    Stop,
    listen_control,
    peer_allowed,
    peer_credentials,
)
from ismon.testing import FakeWatchControl

reactor: Any = _reactor
_T = TypeVar("_T")
NOBODY = 65534
#: Seconds to wait for what should happen at once.  Generous: on a loaded
#: machine "at once" can take seconds, and only a broken test waits this long.
PATIENCE = 20.0


def async_test(
    method: Callable[[Any], Coroutine[Any, Any, _T]],
) -> Callable[[Any], Deferred[_T]]:
    """Let a trial test method be a coroutine."""

    @functools.wraps(method)
    def wrapper(self: Any) -> Deferred[_T]:
        return Deferred.fromCoroutine(method(self))

    return wrapper


class RawClient(Protocol):
    """A client that sends exactly what the test says."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[None] = Deferred()
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.reason = reason
        self.lost.callback(None)


def _box(**fields: bytes) -> bytes:
    return amp.AmpBox({k.encode(): v for k, v in fields.items()}).serialize()


class _Base(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ismon-ctl-"))
        os.chmod(self.dir, 0o700)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = self.dir / "web.sock"
        self.watch = FakeWatchControl(reactor)
        self.raw_clients: list[RawClient] = []

    async def listen(self, path: Path | None = None, **options: Any) -> ControlFactory:
        port: IListeningPort = await listen_control(
            reactor, path or self.path, self.watch, **options
        )
        factory = port.factory  # type: ignore[attr-defined]
        assert isinstance(factory, ControlFactory)
        self.close_when_done(port, factory)
        return factory

    def listen_with_clock(self, clock: Clock, **options: Any) -> ControlFactory:
        """
        Serve on a real socket with the real reactor, but with the idle
        timers on C{clock}: a connection is cut for silence only when the
        test advances C{clock}, however slow the machine is.
        """
        factory = control.control_factory(self.watch, clock, **options)
        port = reactor.listenUNIX(os.fspath(self.path), factory, mode=0o600)
        self.close_when_done(port, factory)
        return factory

    def close_when_done(self, port: IListeningPort, factory: ControlFactory) -> None:
        async def close() -> None:
            for client in self.raw_clients:
                if client.transport is not None:
                    client.transport.abortConnection()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 10
            while factory.connections and time.monotonic() < deadline:
                await deferLater(reactor, 0.01, lambda: None)
            self.assertEqual(factory.connections, set(), "connections left open")
            await port.stopListening()

        self.addCleanup(lambda: Deferred.fromCoroutine(close()))

    async def raw(self, path: Path | None = None) -> RawClient:
        client = RawClient()
        endpoint = UNIXClientEndpoint(reactor, os.fspath(path or self.path))
        await connectProtocol(endpoint, client)
        self.raw_clients.append(client)
        return client

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait (on the real reactor) until C{predicate()} holds."""
        deadline = time.monotonic() + PATIENCE
        while not predicate():
            self.assertLess(time.monotonic(), deadline, f"no {what} within {PATIENCE} s")
            await deferLater(reactor, 0.01, lambda: None)

    async def lost_within(self, client: RawClient, seconds: float) -> float:
        started = time.monotonic()
        client.lost.addTimeout(seconds, reactor)
        await client.lost
        return time.monotonic() - started


class CommandTests(_Base):
    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IWatchControl, self.watch))

    def test_wire_names(self) -> None:
        self.assertEqual(Stop.commandName, b"stop")
        self.assertEqual(Pause.commandName, b"pause")
        self.assertEqual(Continue.commandName, b"continue")
        self.assertEqual(Status.commandName, b"status")
        for command in (Stop, Pause, Continue, Status):
            self.assertIn(ControlRefused, command.errors)
            for name, _ in command.response:
                self.assertIsInstance(name, bytes)

    @async_test
    async def test_socket_mode(self) -> None:
        await self.listen()
        st = os.lstat(self.path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

    @async_test
    async def test_pause_continue_idempotent(self) -> None:
        await self.listen()
        self.assertTrue(await control.pause(reactor, self.path))
        self.assertFalse(await control.pause(reactor, self.path))
        self.assertEqual(self.watch.state, "paused")
        self.assertTrue(await control.resume(reactor, self.path))
        self.assertFalse(await control.resume(reactor, self.path))
        self.assertEqual(self.watch.state, "watching")
        self.assertEqual(self.watch.calls, ["pause", "pause", "resume", "resume"])
        self.assertNotIn("stop", self.watch.calls)

    @async_test
    async def test_call_directly(self) -> None:
        await self.listen()
        self.assertEqual(await control.call(reactor, self.path, Pause), {"changed": True})
        self.assertEqual(await control.call(reactor, self.path, Continue), {"changed": True})

    @async_test
    async def test_status_round_trip(self) -> None:
        await self.listen()
        self.watch.extra_status = document = {
            "watch_id": "web",
            "pid": 1234,
            "latency": 0.25,
            "last": None,
            "ok": True,
            "text": '日本語 \u2603 "quoted"\n',
            "nested": {"list": [1, 2, {"x": "y"}]},
        }
        got = await control.status(reactor, self.path)
        self.assertEqual({key: got[key] for key in document}, document)
        self.assertEqual(set(got), set(self.watch.status()))

    @async_test
    async def test_status_not_serialisable_fields(self) -> None:
        await self.listen()
        self.watch.extra_status = {"path": Path("/x"), "tags": {1}}
        got = await control.status(reactor, self.path)
        self.assertEqual(got["path"], "/x")
        self.assertEqual(got["tags"], "{1}")

    @async_test
    async def test_status_too_large(self) -> None:
        await self.listen()
        self.watch.extra_status = {"blob": "x" * 70000}
        with self.assertRaises(ControlRefused):
            await control.status(reactor, self.path)
        self.watch.extra_status = {}
        self.assertEqual((await control.status(reactor, self.path))["state"], "watching")

    @async_test
    async def test_refused(self) -> None:
        await self.listen()
        self.watch.raises = ControlRefused("the watch is stopping")
        for wrapper in (control.pause, control.resume, control.status):
            with self.assertRaises(ControlRefused) as caught:
                await wrapper(reactor, self.path)
            self.assertIn("the watch is stopping", str(caught.exception))
            self.assertIsInstance(caught.exception, ControlError)

    @async_test
    async def test_watch_bug(self) -> None:
        await self.listen()
        self.watch.raises = RuntimeError("bug in the watch")
        with self.assertRaises(ControlError) as caught:
            await control.status(reactor, self.path)
        self.assertNotIsInstance(caught.exception, ControlUnavailable)
        self.assertNotIsInstance(caught.exception, ControlRefused)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.watch.raises = None
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_stop(self) -> None:
        factory = await self.listen()
        self.assertIsNone(await control.stop(reactor, self.path))
        deadline = time.monotonic() + PATIENCE
        while "stop" not in self.watch.calls and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.watch.calls.count("stop"), 1)
        # Stopping is idempotent from the watch's point of view.
        await control.stop(reactor, self.path)
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.watch.calls.count("stop"), 1)
        self.assertEqual((self.watch.state, self.watch.exit_code), ("stopped", 0))
        self.assertEqual(factory.connections, set())

    @async_test
    async def test_stop_without_asking(self) -> None:
        """A Stop box that wants no answer still stops the watch."""
        await self.listen()
        client = await self.raw()
        client.transport.write(_box(_command=b"stop"))  # type: ignore[union-attr]
        await self.lost_within(client, PATIENCE)
        self.assertEqual(self.watch.calls.count("stop"), 1)


class HostileClientTests(_Base):
    @async_test
    async def test_garbage(self) -> None:
        """
        Bytes that cannot start a box are dropped at once.  The idle timers
        run on a clock that never moves here, so every drop is the parser's.
        """
        self.listen_with_clock(Clock())
        # Random bytes begin with a key length over 255 in 255 of 256 draws
        # (the first byte is not zero); the other draws are in
        # test_incomplete_boxes.  Seeded, so every run sends the same bytes.
        rng = random.Random(9)
        noise = bytes([rng.randrange(1, 256)]) + rng.randbytes(4095)
        garbage = [
            b"\x00\x00",  # an empty box
            b"GET / HTTP/1.0\r\n\r\n",  # a key longer than 255
            noise,
            b"\x00\x01k\x00\x01v\x7f\xff",  # a good pair, then a key longer than 255
            _box(_answer=b"77", changed=b"True"),  # an answer nobody asked for
            _box(_error=b"1", _error_code=b"X", _error_description=b"y"),
            _box(hello=b"world"),  # neither command nor answer
            b"\x00\x05_ask\x00\x01",  # cut short, then the client goes
        ]
        for payload in garbage:
            client = await self.raw()
            client.transport.write(payload)  # type: ignore[union-attr]
            if payload.startswith(b"\x00\x05_ask"):
                client.transport.loseConnection()  # type: ignore[union-attr]
            await self.lost_within(client, PATIENCE)
            self.assertIn(await control.pause(reactor, self.path), (True, False))
        self.assertNotIn("stop", self.watch.calls)

    @async_test
    async def test_incomplete_boxes(self) -> None:
        """
        A valid start of a box is held until the client goes silent for the
        idle timeout, and the watch goes on answering others meanwhile.
        """
        clock = Clock()
        factory = self.listen_with_clock(clock)
        rng = random.Random(9)
        key = b"k" * rng.randrange(1, 256)
        partial = [
            b"\x00",  # half a key length
            b"\x00\x10" + b"k" * 15,  # a key one byte short
            # What a random draw that begins with a zero byte most often is:
            # a key, then a value length longer than the rest of the bytes.
            b"\x00" + bytes([len(key)]) + key + b"\xff\xff" + rng.randbytes(4096 - len(key) - 4),
            _box(_command=b"pause", _ask=b"1")[:-2],  # a whole box but its end
        ]
        clients = [await self.raw() for _ in partial]
        await self.until(lambda: len(factory.connections) == len(partial), "server side")
        # Every idle timer is due at 30 now.  A timer restarts when its
        # connection's bytes arrive: with the clock moved on first, a timer
        # due at 1 + 30 shows they arrived.
        clock.advance(1)
        for client, payload in zip(clients, partial, strict=True):
            client.transport.write(payload)  # type: ignore[union-attr]
        due = 1 + control.DEFAULT_IDLE_TIMEOUT
        await self.until(
            lambda: [c.getTime() for c in clock.getDelayedCalls()] == [due] * len(partial),
            "bytes at the server",
        )

        # Held, not dropped; and other clients are served meanwhile.
        for _ in range(3):
            self.assertIn("state", await control.status(reactor, self.path))
        self.assertFalse([c for c in clients if c.lost.called], "an incomplete box was dropped")

        clock.advance(control.DEFAULT_IDLE_TIMEOUT - 0.5)
        await deferLater(reactor, 0.1, lambda: None)
        self.assertFalse([c for c in clients if c.lost.called], "cut before the idle timeout")
        clock.advance(0.5)
        for client in clients:
            await self.lost_within(client, PATIENCE)
        # The box without its end never became a command.
        self.assertEqual(self.watch.calls, ["status"] * 3)
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_unknown_command(self) -> None:
        await self.listen()
        client = await self.raw()
        client.transport.write(_box(_command=b"reboot", _ask=b"1"))  # type: ignore[union-attr]
        deadline = time.monotonic() + PATIENCE
        while b"_error_code" not in client.received and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertIn(b"UNHANDLED", client.received)
        client.transport.loseConnection()  # type: ignore[union-attr]
        await self.lost_within(client, PATIENCE)

    @async_test
    async def test_huge_box(self) -> None:
        self.listen_with_clock(Clock())  # so no idle cut: the byte cap drops it
        client = await self.raw()
        # Keys and values within AMP's limits, but a box without end.
        chunk = b"".join(_box(**{f"k{i}": b"v" * 65000})[:-2] for i in range(4))
        client.transport.write(chunk)  # type: ignore[union-attr]
        await self.lost_within(client, PATIENCE)
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_many_small_commands(self) -> None:
        """Pipelined commands are answered; the byte budget is per box."""
        await self.listen()
        client = await self.raw()
        count = 3000
        client.transport.write(  # type: ignore[union-attr]
            b"".join(_box(_command=b"pause", _ask=str(i).encode()) for i in range(count))
        )
        deadline = time.monotonic() + 3 * PATIENCE
        while client.received.count(b"_answer") < count and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(client.received.count(b"_answer"), count)
        client.transport.loseConnection()  # type: ignore[union-attr]
        await self.lost_within(client, PATIENCE)

    @async_test
    async def test_idle_client_cut(self) -> None:
        await self.listen(idle_timeout=0.5)
        silent = await self.raw()
        partial = await self.raw()
        partial.transport.write(b"\x00\x04_a")  # type: ignore[union-attr]
        for client in (silent, partial):
            # Cut by the 0.5 s timer, long before the default 30 s.
            await self.lost_within(client, PATIENCE)
        # The watch still answers.
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_idle_timer_reset_by_traffic(self) -> None:
        # The idle timers run on a clock that moves only when told to, so a
        # slow machine cannot stretch the pauses between requests.
        clock = Clock()
        self.listen_with_clock(clock, idle_timeout=0.5)
        client = await self.raw()
        for i in range(4):
            clock.advance(0.3)
            client.transport.write(_box(_command=b"status", _ask=str(i).encode()))  # type: ignore[union-attr]
            deadline = time.monotonic() + PATIENCE
            while client.received.count(b"_answer") <= i and time.monotonic() < deadline:
                await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(client.received.count(b"_answer"), 4)
        self.assertFalse(client.lost.called, "cut although it spoke within every 0.5 s")
        clock.advance(0.5)
        await self.lost_within(client, PATIENCE)

    @async_test
    async def test_connection_limit(self) -> None:
        # Idle timers on a clock that does not move: the third connection
        # can only be closed by the limit.
        factory = self.listen_with_clock(Clock(), max_connections=2)
        first, second = await self.raw(), await self.raw()
        deadline = time.monotonic() + PATIENCE
        while len(factory.connections) < 2 and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        third = await self.raw()
        await self.lost_within(third, PATIENCE)
        with self.assertRaises(ControlUnavailable):
            await control.status(reactor, self.path, timeout=PATIENCE)
        for client in (first, second):
            client.transport.loseConnection()  # type: ignore[union-attr]
            await self.lost_within(client, PATIENCE)
        deadline = time.monotonic() + PATIENCE
        while factory.connections and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertIn("state", await control.status(reactor, self.path))


_AS_NOBODY = """
    import os, socket, sys
    path, box = sys.argv[1], bytes.fromhex(sys.argv[2])
    sock = socket.socket(socket.AF_UNIX)
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)
    sock.settimeout(10)
    sock.connect(path)
    data = b""
    try:
        sock.sendall(box)
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            if b"_answer" in data:
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    print("answered" if b"_answer" in data else "closed")
"""


class PeerCredentialTests(_Base):
    def test_peer_credentials(self) -> None:
        left, right = socket.socketpair(socket.AF_UNIX)
        self.addCleanup(left.close)
        self.addCleanup(right.close)
        self.assertEqual(peer_credentials(left), (os.getpid(), os.getuid(), os.getgid()))

    def test_peer_allowed(self) -> None:
        self.assertTrue(peer_allowed(0, 1000))
        self.assertTrue(peer_allowed(1000, 1000))
        self.assertFalse(peer_allowed(1001, 1000))
        self.assertFalse(peer_allowed(NOBODY, 0))
        self.assertTrue(peer_allowed(0, 0))

    async def as_nobody(self) -> str:
        # Make the socket reachable for this test only.
        os.chmod(self.dir, 0o711)
        os.chmod(self.path, 0o666)
        box = _box(_command=b"status", _ask=b"1").hex()
        code = textwrap.dedent(_AS_NOBODY)

        done = await threads.deferToThread(
            subprocess.run,
            [sys.executable, "-c", code, os.fspath(self.path), box],
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return str(done.stdout.strip())

    def skip_unless_root(self) -> None:
        if os.geteuid() != 0:
            self.skipTest("needs root to switch to another uid")

    @async_test
    async def test_other_uid_refused(self) -> None:
        self.skip_unless_root()
        await self.listen()  # the watch runs as root: only root may control it
        self.assertEqual(await self.as_nobody(), "closed")
        self.assertEqual(self.watch.calls, [])
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_own_uid_allowed(self) -> None:
        self.skip_unless_root()
        await self.listen(own_uid=NOBODY)  # a watch run by "nobody"
        self.assertEqual(await self.as_nobody(), "answered")
        self.assertEqual(self.watch.calls, ["status"])
        # Root may always control it.
        self.assertIn("state", await control.status(reactor, self.path))

    @async_test
    async def test_third_uid_refused(self) -> None:
        self.skip_unless_root()
        await self.listen(own_uid=4242)
        self.assertEqual(await self.as_nobody(), "closed")


class ClientTests(_Base):
    @async_test
    async def test_no_socket(self) -> None:
        started = time.monotonic()
        for wrapper in (control.stop, control.pause, control.resume, control.status):
            with self.assertRaises(ControlUnavailable) as caught:
                await wrapper(reactor, self.path, timeout=3 * PATIENCE)
            self.assertIn(str(self.path), str(caught.exception))
            self.assertIn("No such file", str(caught.exception))
        # At once, not after a timeout.
        self.assertLess(time.monotonic() - started, PATIENCE)

    @async_test
    async def test_nobody_listening(self) -> None:
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(os.fspath(self.path))  # bound, never listening: refused
        with self.assertRaises(ControlUnavailable) as caught:
            await control.status(reactor, self.path)
        self.assertIn("refused", str(caught.exception).lower())

    @async_test
    async def test_no_answer_in_time(self) -> None:
        port = reactor.listenUNIX(os.fspath(self.path), Factory.forProtocol(Protocol))
        self.addCleanup(port.stopListening)
        started = time.monotonic()
        with self.assertRaises(ControlUnavailable) as caught:
            await control.status(reactor, self.path, timeout=0.5)
        elapsed = time.monotonic() - started
        self.assertIn("within 0.5 s", str(caught.exception))
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, PATIENCE)  # gave up instead of waiting for ever
        # Let the server side see the close before the reactor is checked.
        await deferLater(reactor, 0.05, lambda: None)

    @async_test
    async def test_server_hangs_up(self) -> None:
        class HangUp(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                self.transport.loseConnection()

        port = reactor.listenUNIX(os.fspath(self.path), Factory.forProtocol(HangUp))
        self.addCleanup(port.stopListening)
        with self.assertRaises(ControlUnavailable) as caught:
            await control.pause(reactor, self.path)
        self.assertIn("closed the connection without answering", str(caught.exception))

    @async_test
    async def test_malformed_status(self) -> None:
        class Liar(amp.AMP):
            @Status.responder
            def status(self) -> dict[str, object]:
                return {"status": "[1, 2]"}

        port = reactor.listenUNIX(os.fspath(self.path), Factory.forProtocol(Liar))
        self.addCleanup(port.stopListening)
        with self.assertRaises(ControlError):
            await control.status(reactor, self.path)
        await deferLater(reactor, 0.05, lambda: None)

    @async_test
    async def test_path_with_colon_and_backslash(self) -> None:
        odd = self.dir / "we:ird\\dir"
        odd.mkdir(mode=0o700)
        path = odd / "x.sock"
        await self.listen(path)
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        self.assertTrue(await control.pause(reactor, path))

    @async_test
    async def test_socket_removed_when_port_stops(self) -> None:
        port = await listen_control(reactor, self.path, self.watch)
        self.assertTrue(self.path.exists())
        await port.stopListening()
        self.assertFalse(os.path.lexists(self.path))

    def test_factory_adapts(self) -> None:
        with self.assertRaises(TypeError):
            control.control_factory(object(), reactor)  # type: ignore[arg-type]
        factory = control.control_factory(self.watch, reactor, own_uid=7)
        self.assertEqual(factory.own_uid, 7)
        self.assertEqual(control.control_factory(self.watch, reactor).own_uid, os.geteuid())


class StringTransportTests(TestCase):
    """The protocol on an in-memory transport (no socket, no peer check)."""

    def connect(self, verify_peer: bool) -> tuple[Any, Any, FakeWatchControl]:
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        clock = Clock()
        watch = FakeWatchControl(clock)
        factory = control.control_factory(watch, clock, verify_peer=verify_peer, idle_timeout=5)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport, watch

    def test_peer_check_needs_a_socket(self) -> None:
        protocol, transport, watch = self.connect(verify_peer=True)
        self.assertTrue(transport.disconnecting or transport.disconnected)
        protocol.dataReceived(_box(_command=b"pause", _ask=b"1"))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(watch.calls, [])

    def test_without_peer_check(self) -> None:
        protocol, transport, watch = self.connect(verify_peer=False)
        protocol.dataReceived(_box(_command=b"pause", _ask=b"1"))
        self.assertEqual(watch.calls, ["pause"])
        self.assertIn(b"_answer", transport.value())
        self.assertIn(b"changed", transport.value())
        protocol.connectionLost(Failure(Exception("gone")))
