"""
The watch contract: L{ismon.testing.FakeWatch} (a real L{WatchService} on a
fake clock, probing a L{FakeProbe}) logs the same catalogue messages, with
the same numbers, and ends with the same exit status within the same bound
as a real C{clp_httpmon} process watching a real server on loopback.

A mixin holds the contract's tests; one subclass scripts the fake watch,
the other starts the real process against a server in a thread of the test
(a socket that answers, one that answers once and then never accepts
again, one that refuses).
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.timing import Timing
from ismon.testing import STALL, FakeWatch, answered, refused
from tests.watchproc import Processes, command

#: interval 2, retries 2, timeout 1, retry interval 1: a stall is detected within 5 s.
TIMING = Timing(interval=2, retries=2, timeout=1, retry_interval=1)
#: How much later than the bound a real process may end on a loaded 2-core box.
SLACK = 3.0

HEALTHY = "healthy"
ANSWERS_THEN_STALLS = "answers once, then stalls"
REFUSES = "refuses"


@attrs.frozen
class Outcome:
    """How a watch ended: (message id, number) in order, exit status, seconds from message 1."""

    messages: list[tuple[int, int | None]]
    exit_code: int | None
    took: float


class WatchContract:
    """
    What a watch does with a server that stalls, refuses or answers (README
    "Timing", "Exit codes", "Messages"); a subclass runs a watch of the
    given server (L{watch}) for at most C{limit} seconds, or until stopped
    by request after C{stop_after}.
    """

    #: How much later than the bound the watch may end.
    slack = 0.0

    assertEqual: Any
    assertLessEqual: Any

    def watch(self, server: str, *, limit: float, stop_after: float | None = None) -> Outcome:
        raise NotImplementedError

    def test_stalled_server_ends_the_watch_with_1(self) -> None:
        outcome = self.watch(ANSWERS_THEN_STALLS, limit=TIMING.detection_bound + 30)
        self.assertEqual(
            outcome.messages,
            [(2, None), (99, None), (1, None)]
            + [(74, 110), (96, None)] * 2
            + [(74, 110), (6, None)],
        )
        self.assertEqual(outcome.exit_code, 1)
        self.assertLessEqual(outcome.took, TIMING.detection_bound + self.slack)

    def test_refusing_server_ends_the_watch_with_1(self) -> None:
        outcome = self.watch(REFUSES, limit=TIMING.detection_bound + 30)
        self.assertEqual(
            outcome.messages,
            [(2, None), (99, None), (1, None)]
            + [(72, 111), (96, None)] * 2
            + [(72, 111), (6, None)],
        )
        self.assertEqual(outcome.exit_code, 1)

    def test_stop_on_request_ends_with_0(self) -> None:
        outcome = self.watch(HEALTHY, limit=30, stop_after=3)
        self.assertEqual(outcome.messages, [(2, None), (99, None), (1, None), (3, None), (6, None)])
        self.assertEqual(outcome.exit_code, 0)


class FakeWatchContractTests(WatchContract, SynchronousTestCase):
    """L{FakeWatch}, scripted as each server."""

    def watch(self, server: str, *, limit: float, stop_after: float | None = None) -> Outcome:
        script, then = {
            HEALTHY: ([], answered()),
            ANSWERS_THEN_STALLS: ([answered()], STALL),
            REFUSES: ([], refused()),
        }[server]
        with FakeWatch(script, then=then, timing=TIMING) as watch:
            if stop_after is not None:
                watch.advance(stop_after)
                watch.service.stop()
            code = watch.run_until_exit(limit)
            messages = [
                (e["ismon_message_id"], e["ismon_number"])
                for e in watch.events
                if "ismon_message_id" in e
            ]
            return Outcome(messages, code, watch.clock.seconds())


class _Server:
    """A loopback server in a thread: answers HEAD with 200 (or, after C{answers}, never again)."""

    def __init__(self, answers: int | None) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.socket.settimeout(0.1)
        self.port = int(self.socket.getsockname()[1])
        self._answers = answers
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        answered = 0
        while not self._done.is_set() and (self._answers is None or answered < self._answers):
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    received += chunk
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            answered += 1
        # From here on the kernel still accepts into the backlog: a stall.

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self.socket.close()


class RealWatchContractTests(WatchContract, SynchronousTestCase):
    """A real C{clp_httpmon} process; its JSON log holds the messages."""

    slack = SLACK

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ismon-cw-"))
        self.processes = Processes(self.dir)
        self.addCleanup(self.processes.end_all)

    def server_port(self, server: str) -> int:
        if server == REFUSES:
            sock = socket.socket()
            self.addCleanup(sock.close)
            sock.bind(("127.0.0.1", 0))  # bound, not listening: refused
            return int(sock.getsockname()[1])
        running = _Server(None if server == HEALTHY else 1)
        self.addCleanup(running.close)
        return running.port

    def watch(self, server: str, *, limit: float, stop_after: float | None = None) -> Outcome:
        port = self.server_port(server)
        state = self.dir / "state"
        log = self.dir / "watch.json"
        timing = [
            *("-i", f"{TIMING.interval:g}", "-c", str(TIMING.retries)),
            *("-r", f"{TIMING.timeout:g}", "--retry-interval", f"{TIMING.retry_gap:g}"),
        ]
        process = self.processes.start(
            [
                *command("clp_httpmon"),
                "web",
                *("-s", "127.0.0.1", "-n", str(port), *timing),
                *("--state-dir", str(state), "--syslog-socket", "none", "--json-log", str(log)),
            ],
            name="watch",
        )
        process.wait_for(r"has started watching", timeout=30)
        if stop_after is not None:
            time.sleep(stop_after)
            done = self.processes.run(
                [*command("clp_httpmon"), "web", "--stop", "--state-dir", str(state)]
            )
            self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        code = process.wait(limit)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        records = [r for r in records if r["id"] is not None]
        started = next(r["time"] for r in records if r["id"] == 1)
        messages = [(r["id"], r["number"]) for r in records]
        return Outcome(messages, code, records[-1]["time"] - started)
