"""
The stdlib control client (L{ismon.control.client}) against the real
control server (L{ismon.control.amp.listen_control} on a real UNIX socket, real
reactor), side by side with the Twisted AMP client of L{ismon.control}:
the same questions get the same answers and the same errors, word for
word, and both clients put the same bytes on the wire.

The stdlib client blocks, so it runs in a reactor thread while the reactor
serves it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase

from ismon.control import amp as control
from ismon.control import client as control_client
from ismon.control.amp import ControlError, ControlRefused, ControlUnavailable, listen_control
from ismon.testing import FakeWatchControl
from tests.test_control import async_test

reactor: Any = _reactor
_T = TypeVar("_T")


class _Server(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ismon-cc-"))
        os.chmod(self.dir, 0o700)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = self.dir / "web.sock"
        # A clock that stands still: two clients asking in turn get the same status.
        self.watch = FakeWatchControl(Clock())

    async def listen(self) -> None:
        port: IListeningPort = await listen_control(reactor, self.path, self.watch)
        factory = port.factory  # type: ignore[attr-defined]

        async def close() -> None:
            deadline = time.monotonic() + 10
            while factory.connections and time.monotonic() < deadline:
                await deferLater(reactor, 0.01, lambda: None)
            self.assertEqual(factory.connections, set(), "connections left open")
            await port.stopListening()

        self.addCleanup(lambda: Deferred.fromCoroutine(close()))

    def listen_plain(self, protocol: type[Protocol]) -> None:
        port = reactor.listenUNIX(os.fspath(self.path), Factory.forProtocol(protocol))
        self.addCleanup(port.stopListening)

    async def stdlib(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        result: _T = await threads.deferToThread(function, self.path, *args, **kwargs)
        return result

    async def both_fail(
        self, name: str, expected: type[Exception], **kwargs: Any
    ) -> tuple[Exception, Exception]:
        """Call C{name} with both clients; both must raise C{expected}, same text."""
        with self.assertRaises(expected) as ours:
            await self.stdlib(getattr(control_client, name), **kwargs)
        with self.assertRaises(expected) as theirs:
            await getattr(control, name)(reactor, self.path, **kwargs)
        self.assertEqual(str(ours.exception), str(theirs.exception))
        self.assertIs(type(ours.exception), type(theirs.exception))
        return ours.exception, theirs.exception


class SameAnswersTests(_Server):
    def test_one_set_of_errors(self) -> None:
        self.assertIs(control.ControlError, control_client.ControlError)
        self.assertIs(control.ControlRefused, control_client.ControlRefused)
        self.assertIs(control.ControlUnavailable, control_client.ControlUnavailable)

    @async_test
    async def test_status(self) -> None:
        await self.listen()
        self.watch.extra_status = {
            "watch_id": "web",
            "pid": 1234,
            "latency": 0.25,
            "last": None,
            "text": '日本語 \u2603 "quoted"\n',
            "nested": {"list": [1, 2, {"x": "y"}]},
            "path": Path("/x"),
        }
        ours = await self.stdlib(control_client.status)
        theirs = await control.status(reactor, self.path)
        self.assertEqual(ours, theirs)
        self.assertEqual(ours["path"], "/x")
        self.assertEqual(ours["text"], '日本語 \u2603 "quoted"\n')

    @async_test
    async def test_large_status(self) -> None:
        await self.listen()
        self.watch.extra_status = {"blob": "x" * 60000}  # several reads
        self.assertEqual(
            await self.stdlib(control_client.status), await control.status(reactor, self.path)
        )

    @async_test
    async def test_pause_continue_interleaved(self) -> None:
        await self.listen()
        steps = [
            (control_client.pause, None, True),
            (None, control.pause, False),
            (control_client.pause, None, False),
            (None, control.resume, True),
            (control_client.resume, None, False),
            (None, control.pause, True),
            (control_client.resume, None, True),
        ]
        for ours, theirs, expected in steps:
            if ours is not None:
                got = await self.stdlib(ours)
            else:
                assert theirs is not None
                got = await theirs(reactor, self.path)
            self.assertIs(got, expected)
        self.assertEqual(len(self.watch.calls), len(steps))

    @async_test
    async def test_stop(self) -> None:
        await self.listen()
        self.assertIsNone(await self.stdlib(control_client.stop))
        deadline = time.monotonic() + 10
        while "stop" not in self.watch.calls and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.watch.calls.count("stop"), 1)
        self.assertIsNone(await control.stop(reactor, self.path))
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(self.watch.calls.count("stop"), 1)


class SameErrorsTests(_Server):
    @async_test
    async def test_refused(self) -> None:
        await self.listen()
        self.watch.raises = ControlRefused("the watch is stopping")
        for name in ("pause", "resume", "status"):
            ours, _ = await self.both_fail(name, ControlRefused)
            self.assertEqual(str(ours), "the watch is stopping")

    @async_test
    async def test_status_too_large(self) -> None:
        await self.listen()
        self.watch.extra_status = {"blob": "x" * 70000}
        await self.both_fail("status", ControlRefused)

    @async_test
    async def test_watch_bug(self) -> None:
        await self.listen()
        self.watch.raises = RuntimeError("bug in the watch")
        ours, _ = await self.both_fail("status", ControlError)
        self.assertNotIsInstance(ours, ControlUnavailable)
        self.assertNotIsInstance(ours, ControlRefused)
        self.assertIn("reported an error", str(ours))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        # The watch drops such a connection; it still serves the next one.
        self.watch.raises = None
        self.assertIn("state", await self.stdlib(control_client.status))

    @async_test
    async def test_no_socket(self) -> None:
        for name in ("stop", "pause", "resume", "status"):
            ours, _ = await self.both_fail(name, ControlUnavailable)
            self.assertIn("No such file", str(ours))

    @async_test
    async def test_nobody_listening(self) -> None:
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(os.fspath(self.path))
        ours, _ = await self.both_fail("status", ControlUnavailable)
        self.assertIn("refused", str(ours).lower())

    @async_test
    async def test_no_answer_in_time(self) -> None:
        self.listen_plain(Protocol)
        started = time.monotonic()
        with self.assertRaises(ControlUnavailable) as caught:
            await self.stdlib(control_client.status, timeout=0.5)
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 5)
        with self.assertRaises(ControlUnavailable) as reference:
            await control.status(reactor, self.path, timeout=0.5)
        self.assertEqual(str(caught.exception), str(reference.exception))
        self.assertIn("within 0.5 s", str(caught.exception))
        await deferLater(reactor, 0.05, lambda: None)

    @async_test
    async def test_server_hangs_up(self) -> None:
        class HangUp(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                self.transport.loseConnection()

        self.listen_plain(HangUp)
        ours, _ = await self.both_fail("pause", ControlUnavailable)
        self.assertIn("closed the connection without answering", str(ours))

    @async_test
    async def test_garbage_answer(self) -> None:
        class Garbage(Protocol):
            def dataReceived(self, data: bytes) -> None:
                assert self.transport is not None
                self.transport.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")

        self.listen_plain(Garbage)
        with self.assertRaises(ControlError):
            await self.stdlib(control_client.status, timeout=5)
        await deferLater(reactor, 0.05, lambda: None)


class SameBytesTests(_Server):
    @async_test
    async def test_requests_are_byte_identical(self) -> None:
        received: list[bytes] = []

        class Record(Protocol):
            """Keeps one request (up to the empty key ending its box), then hangs up."""

            buffer = b""

            def dataReceived(self, data: bytes) -> None:
                self.buffer += data
                if self.buffer.endswith(b"\x00\x00"):
                    received.append(self.buffer)
                    assert self.transport is not None
                    self.transport.loseConnection()

        self.listen_plain(Record)
        for name in ("stop", "pause", "resume", "status"):
            received.clear()
            with self.assertRaises(ControlUnavailable):
                await self.stdlib(getattr(control_client, name))
            with self.assertRaises(ControlUnavailable):
                await getattr(control, name)(reactor, self.path)
            self.assertEqual(len(received), 2, name)
            self.assertEqual(received[0], received[1], name)
