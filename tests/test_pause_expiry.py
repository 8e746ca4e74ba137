"""
Maintenance pauses that end (README "Maintenance pauses"): DURATION and
reason parsing (pure), the expiry and C{--max-pause} on a fake clock
(L{ismon.watch.schedule.Schedule}, L{ismon.watch.service.WatchService}), the optional
arguments of the AMP pause command through both control clients and
against a watch that predates them, the refusals of bad input, and the
proof against a real nginx: a watch paused with C{--for 3s} sends no
request for 3 s, then probes again by itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from ismon.cmdline.options import HttpOptions, ParameterError
from ismon.control import amp as control
from ismon.control import client as control_client
from ismon.control.amp import ControlRefused
from ismon.control.commands import format_status
from ismon.control.recognise import recognise
from ismon.control.request import MAX_PAUSE_SECONDS, ControlRequest, parse_duration, reason_problem
from ismon.core.config import WatchConfig
from ismon.core.requests import HttpRequest
from ismon.core.timing import Timing
from ismon.testing import FakeProbe
from ismon.watch.schedule import Schedule, WatchState
from ismon.watch.service import WatchService
from tests.faketime import FakeClock
from tests.servers import Nginx
from tests.test_control import async_test
from tests.test_control_client import _Server
from tests.watchproc import LOOPBACK, Processes, command, message

reactor: Any = _reactor

# -- DURATION and reason: pure ------------------------------------------------

DURATIONS = [
    ("90", 90),
    ("90s", 90),
    ("15m", 900),
    ("2h", 7200),
    ("1", 1),
    ("168h", MAX_PAUSE_SECONDS),
    ("10080m", MAX_PAUSE_SECONDS),
    ("604800", MAX_PAUSE_SECONDS),
    ("007s", 7),
    ("0", None),
    ("0s", None),
    ("-5", None),
    ("-5m", None),
    ("169h", None),
    ("604801", None),
    ("", None),
    ("s", None),
    ("1.5m", None),
    ("15 m", None),
    (" 15m", None),
    ("15M", None),
    ("15ms", None),
    ("1d", None),
    ("\u0661\u0662", None),  # Arabic-Indic digits: isdigit(), not ASCII
    ("9" * 40, None),
    ("abc", None),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_duration(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["", "s", "m", "h"]))
def test_duration_is_number_times_unit_within_7_days(number: int, unit: str) -> None:
    seconds = number * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]
    expected = seconds if 1 <= seconds <= 7 * 86400 else None
    assert parse_duration(f"{number}{unit}") == expected


@given(st.text(max_size=30))
def test_duration_never_raises(text: str) -> None:
    seconds = parse_duration(text)
    assert seconds is None or 1 <= seconds <= MAX_PAUSE_SECONDS


@pytest.mark.parametrize(
    ("reason", "ok"),
    [
        ("", True),
        ("kernel update", True),
        ("x" * 200, True),
        ("\u3042" * 66, True),  # 198 bytes
        ("x" * 201, False),
        ("\u3042" * 67, False),  # 201 bytes
        ("a\nb", False),
        ("a\tb", False),
        ("a\x1b[31m", False),
        ("a\x7f", False),
        ("a\udcff", False),  # an undecodable argv byte
    ],
)
def test_reason(reason: str, ok: bool) -> None:
    assert (reason_problem(reason) is None) is ok


# -- the command lines ----------------------------------------------------------


def _pause(watch_id: str, seconds: int | None, reason: str | None) -> ControlRequest:
    return ControlRequest("ismon", watch_id, "pause", 10, None, False, None, seconds, reason)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pause", "web"], _pause("web", None, None)),
        (["pause", "web", "--for", "3s"], _pause("web", 3, None)),
        (
            ["pause", "web", "--for=15m", "--reason", "kernel update"],
            _pause("web", 900, "kernel update"),
        ),
        (["pause", "--reason", "-x", "web"], _pause("web", None, "-x")),
    ],
)
def test_pause_recognised(argv: list[str], expected: ControlRequest) -> None:
    assert recognise("ismon", argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["pause", "web", "--for", "0"],
        ["pause", "web", "--for", "-1"],
        ["pause", "web", "--for", "soon"],
        ["pause", "web", "--for", "8d"],
        ["pause", "web", "--reason", "a\nb"],
        ["pause", "web", "--reason", "x" * 201],
        ["continue", "web", "--for", "3s"],
        ["status", "web", "--reason", "x"],
    ],
)
def test_bad_pause_left_to_the_long_way(argv: list[str]) -> None:
    """The fast path takes only valid pauses; the long way refuses the rest."""
    assert recognise("ismon", argv) is None


def test_clp_pause_keeps_the_2004_command_line() -> None:
    """C{--for} and C{--reason} belong to C{ismon pause}; clp_* refuses them."""
    for extra in (["--for", "3s"], ["--reason", "x"]):
        assert recognise("clp_httpmon", ["web", "--pause", *extra]) is None
        with pytest.raises(ParameterError, match=f"unknown option {extra[0]}"):
            HttpOptions().parseOptions(["web", "--pause", *extra])


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, None), ("90", 90), ("15m", 900), ("7d", "refused")]
)
def test_max_pause_option(value: str | None, seconds: int | str | None) -> None:
    options = HttpOptions()
    argv = ["web"] + ([] if value is None else ["--max-pause", value])
    if seconds == "refused":
        with pytest.raises(ParameterError, match="--max-pause must be a duration"):
            options.parseOptions(argv)
        return
    options.parseOptions(argv)
    assert options.config is not None
    assert options.config.max_pause == seconds


def test_status_line() -> None:
    status = {
        "watch_id": "web",
        "state": "paused",
        "target": "t",
        "pid": 1,
        "uptime": 5,
        "probes": 1,
        "failures": 0,
        "consecutive_failures": 0,
        "retries": 3,
        "detection_bound": 250,
        "paused_since": 1000.0,
        "paused_until": 1180.0,
        "pause_reason": "kernel update",
    }
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1000))
    until = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1180))
    assert format_status(status).splitlines()[-1] == (
        f"  paused since {since} until {until} (reason: kernel update)"
    )
    # A pause without expiry or reason reads as before.
    status.update(paused_until=None, pause_reason=None)
    assert format_status(status).splitlines()[-1] == f"  paused since {since}"


# -- the schedule on a fake clock ---------------------------------------------


class ScheduleExpiryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probe = FakeProbe(self.clock)
        self.ended: list[float] = []
        self.schedule = Schedule(
            self.clock,
            self.probe,
            Timing(interval=10, retries=2, timeout=1),
            lambda result, failures: None,
            lambda result: None,
            lambda: self.ended.append(self.clock.seconds()),
        )
        self.schedule.start()
        self.clock.advance(0)
        self.assertEqual(self.probe.started, [0])

    def test_expiry_resumes_by_itself(self) -> None:
        self.clock.advance(1)
        self.assertTrue(self.schedule.pause(3, "kernel update"))
        self.assertEqual(
            (self.schedule.paused_until, self.schedule.pause_reason), (4, "kernel update")
        )
        self.clock.advance(2.999)
        self.assertEqual(self.probe.started, [0])
        self.assertIs(self.schedule.state, WatchState.PAUSED)
        self.clock.advance(0.001)
        self.assertEqual(self.ended, [4])
        self.assertIs(self.schedule.state, WatchState.WATCHING)
        self.assertEqual((self.schedule.paused_until, self.schedule.pause_reason), (None, ""))
        # At once, then on a new grid from the end of the pause.
        self.clock.advance(0)
        self.clock.advance(10)
        self.assertEqual(self.probe.started, [0, 4, 14])

    def test_continue_before_expiry(self) -> None:
        self.schedule.pause(30)
        self.clock.advance(5)
        self.assertTrue(self.schedule.resume())
        self.assertIsNone(self.schedule.paused_until)
        self.clock.pump([0] + [1] * 100)
        self.assertEqual(self.ended, [])  # the expiry was cancelled
        self.assertEqual(self.probe.started, [0, 5, *range(15, 106, 10)])
        self.assertEqual(self.clock.getDelayedCalls()[0].getTime(), 115)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_second_pause_replaces_the_first(self) -> None:
        self.assertTrue(self.schedule.pause(30, "first"))
        self.clock.advance(10)
        self.assertFalse(self.schedule.pause(5, "second"))
        self.assertEqual(
            (self.schedule.paused_since, self.schedule.paused_until, self.schedule.pause_reason),
            (0, 15, "second"),
        )
        self.clock.advance(5)
        self.assertEqual(self.ended, [15])
        # The first pause's expiry does not fire later on.
        self.clock.advance(30)
        self.assertEqual(self.ended, [15])

    def test_pause_without_expiry_replaces_an_expiry(self) -> None:
        self.schedule.pause(5)
        self.assertFalse(self.schedule.pause())
        self.clock.advance(1000)
        self.assertEqual((self.ended, self.probe.started), ([], [0]))
        self.assertIs(self.schedule.state, WatchState.PAUSED)

    def test_stop_cancels_the_expiry(self) -> None:
        self.schedule.pause(5)
        self.schedule.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse(self.schedule.pause(5))
        self.assertEqual(self.clock.getDelayedCalls(), [])


# -- the watch on a fake clock -------------------------------------------------


class ServiceExpiryTests(SynchronousTestCase):
    def setUp(self) -> None:
        # Short: AF_UNIX paths are limited to 107 bytes.
        top = Path(tempfile.mkdtemp(prefix="ismon-pe-"))
        self.addCleanup(shutil.rmtree, top, True)
        self.folder = top / "state"
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.reactor = MemoryReactorClock()

    def start(self, max_pause: int | None = None) -> tuple[WatchService, FakeProbe]:
        probe = FakeProbe(self.reactor)
        config = WatchConfig(
            watch_id="web1",
            protocol="http",
            command="clp_httpmon",
            request=HttpRequest(host="127.0.0.1", port=80, timeout=1),
            timing=Timing(interval=10, retries=2, timeout=1),
            state_dir=self.folder,
            syslog_socket=None,
            max_pause=max_pause,
        )
        service = WatchService(config, self.reactor, probe=probe, health=[])
        self.addCleanup(lambda: service._end(0, stop_reactor=False))
        service.startService()
        self.reactor.advance(0)
        self.events.clear()
        return service, probe

    def messages(self) -> list[tuple[int, str, str]]:
        return [
            (e["ismon_message_id"], e["log_level"].name, e["ismon_text"])
            for e in self.events
            if "ismon_message_id" in e
        ]

    def ids(self) -> list[tuple[int, str]]:
        return [(number, level) for number, level, _ in self.messages()]

    def text(self, number: int) -> str:
        texts = [e for e in self.events if e.get("ismon_message_id") == number]
        self.assertEqual(len(texts), 1, self.messages())
        return str(texts[0]["ismon_text"])

    def test_pause_for_logs_7_100_then_8_101(self) -> None:
        service, probe = self.start()
        self.assertTrue(service.pause(3, "kernel update"))
        self.assertEqual(self.ids(), [(7, "info"), (100, "info")])
        self.assertIn("(until ", self.text(100))
        self.assertIn("; reason: kernel update). [ID:web1]", self.text(100))
        status = service.status()
        self.assertEqual((status["state"], status["pause_reason"]), ("paused", "kernel update"))
        assert isinstance(status["paused_until"], float)
        assert isinstance(status["paused_since"], float)
        self.assertLess(abs(status["paused_until"] - status["paused_since"] - 3), 0.1)
        self.reactor.advance(2.9)
        self.assertEqual(len(probe.started), 1)
        self.reactor.advance(0.1)
        self.reactor.advance(0)
        self.assertEqual(len(probe.started), 2)
        self.assertEqual(self.ids()[2:], [(8, "info"), (101, "info")])
        self.assertEqual(
            self.text(101),
            "The clp_httpmon has ended its pause by itself (the pause's expiry was reached)."
            " [ID:web1]",
        )
        status = service.status()
        self.assertEqual(
            (
                status["state"],
                status["paused_since"],
                status["paused_until"],
                status["pause_reason"],
            ),
            ("watching", None, None, None),
        )

    def test_2004_pause_logs_only_7(self) -> None:
        service, probe = self.start()
        self.assertTrue(service.pause())
        self.reactor.advance(86400)
        self.assertEqual(self.ids(), [(7, "info")])
        self.assertEqual(len(probe.started), 1)
        self.assertIsNone(service.status()["paused_until"])

    def test_max_pause_ends_a_pause_without_expiry(self) -> None:
        service, probe = self.start(max_pause=60)
        self.assertTrue(service.pause())
        self.assertIn("set by --max-pause 60 s", self.text(100))
        self.reactor.advance(59)
        self.assertEqual(len(probe.started), 1)
        self.reactor.advance(1)
        self.assertEqual(self.ids(), [(7, "info"), (100, "info"), (8, "info"), (101, "warn")])
        self.assertEqual(
            self.text(101),
            "The clp_httpmon has ended its pause by itself (--max-pause 60 s reached). [ID:web1]",
        )
        self.reactor.advance(0)
        self.assertEqual(len(probe.started), 2)

    def test_max_pause_shortens_a_longer_pause(self) -> None:
        service, _ = self.start(max_pause=60)
        service.pause(3600, "long")
        self.reactor.advance(60)
        self.assertEqual([n for n, _ in self.ids()], [7, 100, 8, 101])
        self.assertEqual(self.ids()[-1], (101, "warn"))

    def test_shorter_pause_than_max_pause_is_its_own(self) -> None:
        service, _ = self.start(max_pause=60)
        service.pause(30)
        self.assertNotIn("--max-pause", self.text(100))
        self.reactor.advance(30)
        self.assertEqual(self.ids()[-1], (101, "info"))

    def test_continue_before_expiry(self) -> None:
        service, probe = self.start()
        service.pause(30, "x")
        self.reactor.advance(5)
        self.assertTrue(service.resume())
        self.reactor.pump([0] + [1] * 60)
        self.assertEqual([n for n, _ in self.ids()], [7, 100, 8])
        self.assertEqual([t for t in probe.started], [0, 5, 15, 25, 35, 45, 55, 65])

    def test_second_pause_replaces_the_first(self) -> None:
        service, _ = self.start()
        service.pause(30, "first")
        self.reactor.advance(10)
        self.assertFalse(service.pause(5, "second"))
        self.assertEqual(service.status()["pause_reason"], "second")
        self.reactor.advance(5)
        self.assertEqual([n for n, _ in self.ids()], [7, 100, 7, 100, 8, 101])
        self.reactor.advance(30)
        self.assertEqual([n for n, _ in self.ids()], [7, 100, 7, 100, 8, 101])


# -- the control channel -------------------------------------------------------


class _OldPause(amp.Command):
    """The pause command of a watch that predates its arguments."""

    commandName = b"pause"
    arguments: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = [(b"changed", amp.Boolean())]


class _OldWatch(amp.AMP):
    # Not "paused": AMP's string receiver stops reading while that is true.
    pauses = 0

    @_OldPause.responder
    def pause(self) -> dict[str, object]:
        _OldWatch.pauses += 1
        return {"changed": True}


class PauseArgumentsTests(_Server):
    @async_test
    async def test_both_clients_send_the_arguments(self) -> None:
        await self.listen()
        for pause in (
            lambda **kw: self.stdlib(control_client.pause, **kw),
            lambda **kw: control.pause(reactor, self.path, **kw),
        ):
            self.assertTrue(await pause(duration=90, reason="k\u00e9rnel"))
            status = await self.stdlib(control_client.status)
            self.assertEqual(status["pause_reason"], "k\u00e9rnel")
            self.assertLess(abs(status["paused_until"] - (time.time() + 90)), 5)
            # A pause while paused replaces both; without them, no expiry.
            self.assertFalse(await pause())
            status = await self.stdlib(control_client.status)
            self.assertEqual((status["paused_until"], status["pause_reason"]), (None, None))
            self.assertTrue(await self.stdlib(control_client.resume))
        self.assertEqual(self.watch.calls.count("pause"), 4)

    @async_test
    async def test_the_watch_refuses_what_the_commands_refuse(self) -> None:
        """A client other than ours may send anything; the watch checks too."""
        await self.listen()
        for kwargs in (
            {"duration": 0.0},
            {"duration": -3.0},
            {"duration": 604801.0},
            {"reason": "a\nb"},
        ):
            await self.both_fail("pause", ControlRefused, **kwargs)
        self.assertEqual(self.watch.calls, [])
        self.assertEqual(self.watch.state, "watching")

    @async_test
    async def test_a_watch_older_than_the_arguments_still_pauses(self) -> None:
        port: IListeningPort = reactor.listenUNIX(
            os.fspath(self.path), Factory.forProtocol(_OldWatch)
        )
        self.addCleanup(port.stopListening)
        _OldWatch.pauses = 0
        self.assertTrue(await self.stdlib(control_client.pause, duration=3, reason="x"))
        self.assertTrue(await control.pause(reactor, self.path, duration=3, reason="x"))
        self.assertEqual(_OldWatch.pauses, 2)

    @async_test
    async def test_requests_with_arguments_are_byte_identical(self) -> None:
        received: list[bytes] = []

        class Record(amp.AMP):
            """Keeps one request box, then hangs up without answering."""

            def ampBoxReceived(self, box: amp.AmpBox) -> None:
                received.append(box.serialize())
                assert self.transport is not None
                self.transport.loseConnection()

        port = reactor.listenUNIX(os.fspath(self.path), Factory.forProtocol(Record))
        self.addCleanup(port.stopListening)
        for kwargs in ({"duration": 3}, {"reason": "\u3042 b"}, {"duration": 900, "reason": "r"}):
            received.clear()
            with self.assertRaises(control.ControlUnavailable):
                await self.stdlib(control_client.pause, **kwargs)
            with self.assertRaises(control.ControlUnavailable):
                await control.pause(reactor, self.path, **kwargs)
            self.assertEqual(len(received), 2, kwargs)
            self.assertEqual(received[0], received[1], kwargs)


# -- real processes: the refusals and the proof ---------------------------------


def _watch(
    processes: Processes, nginx: Nginx, state: Path, *extra: str, env: dict[str, str] | None = None
) -> Any:
    watch = processes.start(
        [
            *command("clp_httpmon"),
            "web",
            "-s",
            LOOPBACK,
            "-n",
            str(nginx.port),
            "-h",
            "/?pause-proof",
            "-i",
            "1",
            "--state-dir",
            str(state),
            "--syslog-socket",
            "none",
            *extra,
        ],
        env=env,
    )
    watch.wait_for(re.escape(message(1, "clp_httpmon", "web")) + "$", 30)
    return watch


def _ismon(processes: Processes, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return processes.run([*command("ismon"), *args, "--state-dir", str(state)])


def _status(processes: Processes, state: Path) -> dict[str, Any]:
    shown = _ismon(processes, state, "status", "web", "--json")
    assert shown.returncode == 0, shown.stderr
    status: dict[str, Any] = json.loads(shown.stdout)
    del status["uptime"]
    return status


def _times(status: dict[str, Any]) -> dict[str, float | None]:
    """
    Take the wall times out of C{status}: the watch works them out from
    its monotonic clock at each request, so they may differ in the last
    digits from one request to the next.
    """
    last = status.get("last_probe") or {}
    return {
        "started": status.pop("started"),
        "paused_since": status.pop("paused_since"),
        "paused_until": status.pop("paused_until"),
        "last_probe": last.pop("time", None),
    }


def _assert_same_status(before: dict[str, Any], after: dict[str, Any]) -> None:
    times_before, times_after = _times(before), _times(after)
    assert after == before
    for key, value in times_before.items():
        other = times_after[key]
        assert (value is None) == (other is None), key
        if value is not None and other is not None:
            assert abs(value - other) < 0.5, (key, value, other)


@pytest.mark.integration
def test_bad_pauses_leave_the_watch_unchanged(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    watch = _watch(processes, nginx, state)
    paused = _ismon(processes, state, "pause", "web", "--for", "1h", "--reason", "kernel update")
    assert paused.returncode == 0, paused.stderr
    lines = paused.stdout.splitlines()
    assert lines[0] == message(7, "clp_httpmon", "web")
    assert re.fullmatch(
        r"The clp_httpmon has paused monitoring HTTP \(until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d;"
        r" reason: kernel update\)\. \[ID:web\]",
        lines[1],
    ), lines
    watch.wait_for(r"has paused monitoring HTTP \(until .*; reason: kernel update\)")
    before = _status(processes, state)
    assert before["state"] == "paused" and before["pause_reason"] == "kernel update"
    refusal = message(11, "ismon", "web")
    for args, why in (
        (
            ["--for", "0"],
            '--for must be a duration of 1 second to 7 days such as 90, 90s, 15m or 2h, not "0"',
        ),
        (["--for", "-5m"], "--for must be a duration"),
        (["--for", "soon"], "--for must be a duration"),
        (["--for", "8d"], "--for must be a duration"),
        (["--for", "169h"], "--for must be a duration"),
        (["--reason", "x" * 201], "--reason must be at most 200 bytes, not 201"),
        (["--reason", "a\nb"], '--reason must not contain control characters: "a\\nb"'),
        (["--reason", "a\x1bb"], "--reason must not contain control characters"),
    ):
        refused = _ismon(processes, state, "pause", "web", *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert refused.stderr.startswith(f"{refusal} {why}"), (args, refused.stderr)
        assert refused.stderr.endswith(" (see --help)\n") and refused.stderr.count("\n") == 1
        assert refused.stdout == ""
    _assert_same_status(before, _status(processes, state))
    # Nothing reached the watch's log either.
    assert watch.output().count(message(7, "clp_httpmon", "web")) == 1


@pytest.mark.integration
def test_pause_for_3s_sends_nothing_for_3s_then_probes_by_itself(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    watch = _watch(processes, nginx, state)
    nginx.wait_for_access(r'"HEAD /\?pause-proof HTTP/1\.1"')
    before = time.time()
    paused = _ismon(processes, state, "pause", "web", "--for", "3s")
    after = time.time()
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.splitlines()[0] == message(7, "clp_httpmon", "web")
    # Probing again without being told: messages 8 and 101, then HEADs.
    watch.wait_for("by itself \\(the pause's expiry was reached\\)", 30)
    assert watch.output().count(message(8, "clp_httpmon", "web")) == 1

    deadline = time.monotonic() + 30
    while not [t for t in _heads(nginx) if t >= before + 3] and time.monotonic() < deadline:
        time.sleep(0.1)
    # A probe already under way when the pause came may still be logged
    # just after it; none starts later until the pause has run out.
    during = [t for t in _heads(nginx) if after + 0.5 < t < before + 3 - 0.01]
    assert during == [], (before, after, during)
    resumed = [t for t in _heads(nginx) if t >= before + 3 - 0.01]
    assert resumed, (before, after, _heads(nginx))
    # ... and at once: within a second or so of the expiry, not a grid later.
    assert resumed[0] < after + 3 + 5, (after, resumed)
    assert watch.running()
    assert _status(processes, state)["state"] in ("watching", "retrying")


def _heads(nginx: Nginx) -> list[float]:
    """When nginx (real wall clock, C{t=$msec}) handled each of our HEADs."""
    return [
        float(line.rsplit(" t=", 1)[1])
        for line in nginx.access_lines()
        if '"HEAD /?pause-proof HTTP/1.1"' in line
    ]


@pytest.mark.integration
@pytest.mark.parametrize("step", ["-3600", "+3600"])
def test_pause_expiry_ignores_a_wall_clock_step(
    step: str, clock: FakeClock, nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    The expiry runs on the monotonic clock: stepping the watch's wall clock
    an hour back (a wall-clock timer would wait an hour more) or forward (it
    would fire at once) leaves a 4 s pause 4 s long, as nginx sees it.
    """
    state = tmp_path / "state"
    watch = _watch(processes, nginx, state, env=clock.env())
    nginx.wait_for_access(r'"HEAD /\?pause-proof HTTP/1\.1"')
    before = time.time()
    paused = _ismon(processes, state, "pause", "web", "--for", "4")
    after = time.time()
    assert paused.returncode == 0, paused.stderr
    clock.set(step)
    watch.wait_for("by itself \\(the pause's expiry was reached\\)", 30)
    deadline = time.monotonic() + 30
    while not [t for t in _heads(nginx) if t >= before + 4] and time.monotonic() < deadline:
        time.sleep(0.1)
    clock.set("+0")
    during = [t for t in _heads(nginx) if after + 0.5 < t < before + 4 - 0.01]
    resumed = [t for t in _heads(nginx) if t >= before + 4 - 0.01]
    assert during == [], (before, after, during)
    assert resumed and resumed[0] < after + 4 + 5, (after, resumed)
