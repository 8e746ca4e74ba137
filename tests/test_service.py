"""
Tests for L{ismon.watch.service.WatchService}: the message sequences, exit
statuses and records of a watch, on a fake clock with a scripted probe
(L{ismon.testing.FakeProbe}).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogPublisher, globalLogPublisher
from twisted.trial.unittest import TestCase

from ismon.core.catalogue import MessageId
from ismon.core.config import WatchConfig
from ismon.core.exit_status import ExitStatus
from ismon.core.requests import HttpRequest
from ismon.core.result import Phase, ProbeResult
from ismon.core.timing import Timing
from ismon.probes.probe import IProbe
from ismon.state.folder import StateDir
from ismon.state.lock import WatchLock
from ismon.testing import FakeProbe
from ismon.watch.health import IMonitorHealth, SystemdHealth
from ismon.watch.notify import SystemdNotifier
from ismon.watch.service import WatchService

OK = ProbeResult(ok=True, latency=0.001, reply="HTTP/1.1 200 OK")
TIMEOUT = ProbeResult.failure(MessageId.SELECT_ERROR, Phase.WAIT, number=errno.ETIMEDOUT)


#: The fields of a watch's status (C{ismon status --json}), in order:
#: pinned, because the OCF agent and scripts read them.
STATUS_KEYS = [
    "watch_id",
    "protocol",
    "command",
    "pid",
    "target",
    "state",
    "paused_since",
    "consecutive_failures",
    "probes",
    "failures",
    "skipped_ticks",
    "last_probe",
    "interval",
    "timeout",
    "retries",
    "retry_interval",
    "detection_bound",
    "started",
    "uptime",
    "paused_until",
    "pause_reason",
    "failures_by_message",
    "http_status_code",
    "cert_not_after",
]


class ServiceCase(TestCase):
    """A watch on a fake clock with a scripted probe, its records in a folder of its own."""

    def setUp(self) -> None:
        # Short: AF_UNIX paths are limited to 107 bytes, trial's are long.
        top = Path(tempfile.mkdtemp(prefix="ismon-svc-"))
        self.addCleanup(shutil.rmtree, top, True)
        self.folder = top / "state"
        self.events: list[dict[str, Any]] = []
        observer = self.events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.reactor = MemoryReactorClock()
        self.exits: list[int] = []

    def scripted(self, *results: ProbeResult) -> FakeProbe:
        """A probe giving C{results} in turn, then the last one again and again."""
        return FakeProbe(self.reactor, results[:-1], then=results[-1])

    def make(
        self,
        probe: IProbe,
        *,
        retries: int = 2,
        notifier: SystemdNotifier | None = None,
        syslog: str | None = None,
        publisher: LogPublisher = globalLogPublisher,
        health: list[IMonitorHealth] | None = None,
        **extra: Any,
    ) -> WatchService:
        config = WatchConfig(
            watch_id="web1",
            protocol="http",
            command="clp_httpmon",
            request=HttpRequest(host="127.0.0.1", port=80, timeout=1),
            timing=Timing(interval=10, retries=retries, timeout=1, retry_interval=2),
            state_dir=self.folder,
            syslog_socket=syslog,
            **extra,
        )
        service = WatchService(
            config,
            self.reactor,
            probe=probe,
            on_exit=self.exits.append,
            # No loop watchdog: it measures real time, and this clock is fake.
            health=health
            if health is not None
            else [SystemdHealth(self.reactor, notifier or SystemdNotifier({}))],
            log_publisher=publisher,
        )
        self.addCleanup(lambda: service._end(0, stop_reactor=False))
        return service

    def messages(self) -> list[int]:
        return [e["ismon_message_id"] for e in self.events if "ismon_message_id" in e]


class WatchServiceTests(ServiceCase):
    def test_server_failure_sequence_and_exit_1(self) -> None:
        service = self.make(self.scripted(OK, TIMEOUT))
        service.startService()
        self.reactor.pump([0] + [0.5] * 40)
        self.assertEqual(self.exits, [ExitStatus.SERVER_FAILED])
        self.assertEqual(self.messages(), [2, 99, 1, 74, 96, 74, 96, 74, 6])
        # The last failure is an error, the ones before it warnings.
        levels = [e["log_level"].name for e in self.events if e.get("ismon_message_id") == 74]
        self.assertEqual(levels, ["warn", "warn", "error"])
        state = StateDir.open(self.folder, create=False)
        self.assertFalse(state.pid_path("web1").exists())

    def test_messages_go_to_the_publisher_given(self) -> None:
        """
        A watch given a log publisher publishes there, and its syslog
        observer listens there, not on the global one.
        """
        publisher = LogPublisher()
        seen: list[dict[str, Any]] = []
        publisher.addObserver(seen.append)
        service = self.make(
            self.scripted(OK), publisher=publisher, syslog=str(self.folder / "no-such-socket")
        )
        service.startService()
        self.reactor.advance(0)
        service.stop()
        self.reactor.advance(0)
        self.assertEqual(self.messages(), [])
        ids = [e["ismon_message_id"] for e in seen if "ismon_message_id" in e]
        self.assertEqual(ids, [2, 98, 99, 1, 3, 6])

    def test_status_document_fields(self) -> None:
        """The status snapshot gives the JSON fields of README "Running a watch"."""
        service = self.make(self.scripted(OK))
        service.startService()
        self.reactor.advance(0)
        status = service.status()
        self.assertEqual(list(status), STATUS_KEYS)
        last = status["last_probe"]
        assert isinstance(last, dict)
        self.assertEqual(
            list(last),
            [
                "time",
                "ok",
                "message_id",
                "number",
                "phase",
                "latency",
                "reply",
                "detail",
                "address",
                "cert_days_left",
                "summary",
            ],
        )
        self.assertEqual(status["target"], "http://127.0.0.1:80/ HTTP/1.1")

    def test_recovery_is_reported(self) -> None:
        service = self.make(self.scripted(OK, TIMEOUT, OK))
        service.startService()
        self.reactor.pump([0] + [0.5] * 30)
        self.assertEqual(self.exits, [])
        self.assertEqual(self.messages(), [2, 99, 1, 74, 96, 95])

    def test_stop_on_request(self) -> None:
        service = self.make(self.scripted(OK))
        service.startService()
        self.reactor.advance(0)
        service.stop()
        self.reactor.advance(0)
        self.assertEqual(self.exits, [ExitStatus.STOPPED])
        self.assertEqual(self.messages(), [2, 99, 1, 3, 6])

    def test_stop_service_is_a_stop(self) -> None:
        service = self.make(self.scripted(OK))
        service.startService()
        self.reactor.advance(0)
        service.stopService()
        self.assertEqual(service.exit_code, ExitStatus.STOPPED)
        self.assertEqual(self.messages()[-2:], [3, 6])

    def test_the_first_verdict_stands(self) -> None:
        """
        Once a watch winds down, a later stop (control socket, SIGTERM)
        neither changes its exit status nor logs a second ending, and a
        shutdown waits for the same winding down.
        """
        service = self.make(self.scripted(TIMEOUT), retries=1)
        service.startService()
        self.reactor.pump([0] + [0.5] * 20)
        self.assertEqual(self.exits, [ExitStatus.SERVER_FAILED])
        before = self.messages()
        service.stop()
        self.reactor.advance(0)
        closing = service.stopService()
        assert closing is not None
        self.assertTrue(closing.called)
        self.assertEqual(service.exit_code, ExitStatus.SERVER_FAILED)
        self.assertEqual(self.exits, [ExitStatus.SERVER_FAILED])
        self.assertEqual(self.messages(), before)

    def test_stop_before_start(self) -> None:
        """A shutdown before the watch started ends it without message 6."""
        service = self.make(self.scripted(OK))
        service.stopService()
        self.assertEqual(service.exit_code, ExitStatus.STOPPED)
        self.assertEqual(self.messages(), [3])
        state = StateDir.open(self.folder)
        self.assertFalse(state.pid_path("web1").exists())

    def test_id_in_use(self) -> None:
        held = WatchLock.acquire(StateDir.open(self.folder), "web1")
        self.addCleanup(held.release)
        service = self.make(self.scripted(OK))
        service.startService()
        self.assertEqual(self.exits, [ExitStatus.ID_IN_USE])
        self.assertEqual(self.messages(), [14])

    def test_pause_continue_and_status(self) -> None:
        probe = self.scripted(OK)
        service = self.make(probe)
        service.startService()
        self.reactor.advance(0)
        self.assertTrue(service.pause())
        self.assertFalse(service.pause())
        self.reactor.pump([1] * 30)
        self.assertEqual(len(probe.started), 1)
        status = service.status()
        self.assertEqual(status["state"], "paused")
        self.assertIsNotNone(status["paused_since"])
        self.assertTrue(service.resume())
        self.assertFalse(service.resume())
        self.reactor.advance(0)
        self.assertEqual(len(probe.started), 2)
        status = service.status()
        self.assertEqual(
            (status["state"], status["probes"], status["detection_bound"], status["pid"]),
            ("watching", 2, 10 + 2 * 2 + 1, os.getpid()),
        )
        self.assertEqual(self.messages()[3:], [7, 7, 8, 8])

    def test_certificate_warning_at_most_daily(self) -> None:
        soon = ProbeResult(ok=True, latency=0.001, cert_days_left=3)
        service = self.make(self.scripted(soon))
        service.startService()
        self.reactor.pump([0] + [10] * 20)
        self.assertEqual(self.messages().count(92), 1)
        self.reactor.pump([3600] * 25)
        self.assertEqual(self.messages().count(92), 2)

    def test_syslog_unavailable_logged_once(self) -> None:
        service = self.make(self.scripted(OK), syslog=str(self.folder / "no-such-socket"))
        service.startService()
        self.reactor.pump([0] + [10] * 5)
        self.assertEqual(self.messages().count(98), 1)

    def test_syslog_receives_lines(self) -> None:
        self.folder.mkdir(mode=0o700)
        path = str(self.folder / "log")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.settimeout(1)
        self.addCleanup(receiver.close)
        service = self.make(self.scripted(OK), syslog=path)
        service.startService()
        first = receiver.recv(4096).decode()
        self.assertRegex(
            first,
            r"^<30>\w{3} [ \d]\d \d\d:\d\d:\d\d clp_httpmon\[\d+\]: "
            r"The clp_httpmon is going to watch HTTP daemon\. \[ID:web1\]$",
        )

    def test_systemd_ready_after_first_probe(self) -> None:
        self.folder.mkdir(mode=0o700)
        path = str(self.folder / "notify")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.settimeout(1)
        self.addCleanup(receiver.close)
        service = self.make(self.scripted(OK), notifier=SystemdNotifier({"NOTIFY_SOCKET": path}))
        service.startService()
        self.reactor.advance(0)
        self.assertTrue(receiver.recv(4096).decode().startswith("READY=1\nSTATUS=last probe ok"))
