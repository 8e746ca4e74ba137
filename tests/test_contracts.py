"""
Contract tests: each fake of L{ismon.testing} passes the same tests as the
real thing it stands in for.

  - L{ProbeContract} (L{ismon.probes.probe.IProbe}): run against L{FakeProbe} on a
    L{Clock}, scripted for each case, and against the real probe of every
    protocol on the real reactor: nginx, aiosmtpd, dovecot (POP3, IMAP4),
    vsftpd, unbound (DNS) and redis-server (TCP) for a healthy server, a listening socket that never accepts
    for a stalled one, a bound socket that does not listen for a refused
    connection.  Where those servers must be there (C{scripts/test.sh} as
    root, C{CI=true} as root, C{ISMON_REQUIRE_SERVERS=1}), a healthy case
    that cannot start its server fails instead of skipping.
  - L{WatchControlContract} (L{ismon.control.amp.IWatchControl}): run against
    L{FakeWatchControl} and against a real L{WatchService} (the one inside
    L{FakeWatch}: a fake clock and a L{FakeProbe}), pauses with an expiry
    and C{--max-pause} included.

A mixin holds the contract's tests; each subclass only builds the cases.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from ismon.cmdline.options import OPTIONS
from ismon.control.amp import IWatchControl
from ismon.core.catalogue import MessageId
from ismon.core.requests import HttpRequest, SmtpRequest
from ismon.core.result import Phase, ProbeResult
from ismon.core.timing import Timing
from ismon.probes.http import HttpProbe
from ismon.probes.probe import IProbe
from ismon.probes.smtp import SmtpProbe
from ismon.probes.table import make_probe
from ismon.testing import (
    STALL,
    Answer,
    FakeProbe,
    FakeWatch,
    FakeWatchControl,
    Stall,
    answered,
    refused,
)
from ismon.watch.schedule import WatchState
from tests.certs import make_test_certs
from tests.dovecot import servers_required, start_dovecot
from tests.servers import ServerProcess, ServerUnavailable, start_aiosmtpd, start_nginx
from tests.test_service import STATUS_KEYS
from tests.vsftpd import start_vsftpd

reactor: Any = _reactor
_T = TypeVar("_T")

#: The probes' timeout in these tests, in seconds.
TIMEOUT = 1.0
#: How late a verdict may come after the timeout on a loaded 2-core box.
SLACK = 1.0


def async_test(
    method: Callable[[Any], Coroutine[Any, Any, _T]],
) -> Callable[[Any], Deferred[_T]]:
    """Let a trial test method be a coroutine."""

    @functools.wraps(method)
    def wrapper(self: Any) -> Deferred[_T]:
        return Deferred.fromCoroutine(method(self))

    return wrapper


# ---------------------------------------------------------------------------
# IProbe


class ProbeContract:
    """
    What every L{IProbe} promises (L{ismon.probes.probe.IProbe}): C{probe()} always
    fires with a L{ProbeResult}, never an errback, within the timeout plus
    slack, and leaves no timer or socket behind; a healthy server gives ok,
    a stalled one message 74 with ETIMEDOUT, a refused connection message
    72 with ECONNREFUSED.

    A subclass (a trial L{TestCase}) builds the cases -- L{healthy},
    L{stalled}, L{refused} -- and says how to wait for a result on its
    clock (L{settle}) and what a probe left behind (L{left_behind}).
    """

    clock: Any
    assertEqual: Any
    assertIsInstance: Any
    assertLessEqual: Any
    assertGreaterEqual: Any
    assertTrue: Any

    def healthy(self) -> IProbe:
        raise NotImplementedError

    def stalled(self) -> IProbe:
        raise NotImplementedError

    def refused(self) -> IProbe:
        raise NotImplementedError

    async def before_probe(self) -> object:
        """A snapshot of what exists before a probe starts."""
        return None

    def settle(self, running: Deferred[ProbeResult]) -> Deferred[object]:
        """What C{running} fires with (a Failure too), once the clock has let it."""
        raise NotImplementedError

    def left_behind(self, before: object) -> list[object]:
        """Timers and sockets of the last probe still there after its result."""
        raise NotImplementedError

    async def ask(self, probe: IProbe) -> tuple[ProbeResult, float]:
        """Run one probe: its result and how long it took on the clock."""
        self.assertTrue(verifyObject(IProbe, probe))
        before = await self.before_probe()
        start = self.clock.seconds()
        outcome = await self.settle(probe.probe())
        elapsed = self.clock.seconds() - start
        # Never an errback: a Failure here breaks the contract.
        self.assertIsInstance(outcome, ProbeResult)
        assert isinstance(outcome, ProbeResult)
        self.assertEqual(self.left_behind(before), [])
        self.assertLessEqual(elapsed, TIMEOUT + SLACK)
        return outcome, elapsed

    @async_test
    async def test_healthy_server_is_ok_within_the_timeout(self) -> None:
        result, elapsed = await self.ask(self.healthy())
        self.assertTrue(result.ok, result.describe())
        self.assertEqual((result.message, result.number, result.phase), (None, None, None))
        self.assertLessEqual(elapsed, TIMEOUT)
        self.assertLessEqual(result.latency, elapsed + 0.01)

    @async_test
    async def test_stalled_server_times_out(self) -> None:
        result, elapsed = await self.ask(self.stalled())
        self.assertEqual(
            (result.ok, result.message, result.number, result.phase),
            (False, MessageId.SELECT_ERROR, errno.ETIMEDOUT, Phase.WAIT),
            result.describe(),
        )
        self.assertEqual(result.detail, "no answer within the timeout")
        self.assertGreaterEqual(elapsed, TIMEOUT * 0.9)
        self.assertGreaterEqual(result.latency, TIMEOUT * 0.9)
        self.assertLessEqual(result.latency, TIMEOUT + SLACK)

    @async_test
    async def test_refused_connection(self) -> None:
        result, _ = await self.ask(self.refused())
        self.assertEqual(
            (result.ok, result.message, result.number, result.phase),
            (False, MessageId.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT),
            result.describe(),
        )

    @async_test
    async def test_one_probe_asks_again_and_again(self) -> None:
        """A probe is asked on every tick: each call is a new, whole question."""
        probe = self.healthy()
        for _ in range(3):
            result, _ = await self.ask(probe)
            self.assertTrue(result.ok, result.describe())
        probe = self.stalled()
        for _ in range(2):
            result, _ = await self.ask(probe)
            self.assertEqual(result.message, MessageId.SELECT_ERROR)


class FakeProbeContractTests(ProbeContract, TestCase):
    """L{FakeProbe} on a L{Clock}, scripted as each case."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)

    def healthy(self) -> IProbe:
        return FakeProbe(self.clock, then=answered("HTTP/1.1 200 OK"), delay=0.002, timeout=TIMEOUT)

    def stalled(self) -> IProbe:
        return FakeProbe(self.clock, then=STALL, timeout=TIMEOUT)

    def refused(self) -> IProbe:
        return FakeProbe(self.clock, then=refused(), delay=0.0005, timeout=TIMEOUT)

    def settle(self, running: Deferred[ProbeResult]) -> Deferred[object]:
        outcome: list[object] = []
        running.addBoth(outcome.append)
        limit = self.clock.seconds() + TIMEOUT + SLACK + 60
        while not outcome and self.clock.seconds() < limit:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            self.clock.advance(max(0.0, min(due, default=limit) - self.clock.seconds()))
        self.assertEqual(len(outcome), 1, "the fake never answered")
        return succeed(outcome[0])

    def left_behind(self, before: object) -> list[object]:
        return list(self.clock.getDelayedCalls())


def connections_to(port: int) -> list[str]:
    """The TCP sockets, and connected UDP sockets, of this process whose peer is port C{port}."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor)
        if target.startswith("socket:["):
            ours.add(target[len("socket:[") : -1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[9] in ours:
                found.append(f"{table}: {row.strip()}")
    return found


class _RealProbeContract(ProbeContract):
    """The real probes on the real reactor, against loopback sockets and servers."""

    timeout = 60
    clock = reactor
    port = 0

    addCleanup: Any
    skipTest: Any

    def server(self, start: Callable[[Path], ServerProcess]) -> Any:
        folder = Path(tempfile.mkdtemp(prefix="ismon-contract-"))
        try:
            server = start(folder)
        except ServerUnavailable as e:
            if servers_required():
                raise
            self.skipTest(f"server unavailable: {e}")
        self.addCleanup(server.stop)
        return server

    def listening_silently(self) -> int:
        """A port that accepts connections (the kernel's backlog) and never answers."""
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        return int(sock.getsockname()[1])

    def refusing(self) -> int:
        """A port that refuses: bound, so nobody else takes it, but not listening."""
        sock = socket.socket()
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

    def make(self, port: int) -> IProbe:
        raise NotImplementedError

    def stalled(self) -> IProbe:
        return self.make(self.listening_silently())

    def refused(self) -> IProbe:
        return self.make(self.refusing())

    async def before_probe(self) -> object:
        # One turn first: trial arms its own timeout once the test method
        # has returned its Deferred, and that timer is not the probe's.
        await deferLater(reactor, 0, lambda: None)
        return set(self.clock.getDelayedCalls())

    def settle(self, running: Deferred[ProbeResult]) -> Deferred[object]:
        settled: Deferred[object] = Deferred()
        running.addBoth(settled.callback)
        return settled

    def left_behind(self, before: object) -> list[object]:
        assert isinstance(before, set)
        timers: list[object] = [
            call for call in self.clock.getDelayedCalls() if call not in before and call.active()
        ]
        return timers + list(connections_to(self.port))


class HttpProbeContractTests(_RealProbeContract, TestCase):
    """L{HttpProbe}: nginx; a silent listener; a refusing port."""

    def make(self, port: int) -> IProbe:
        self.port = port
        return HttpProbe(reactor, HttpRequest(host="127.0.0.1", port=port, timeout=TIMEOUT))

    def healthy(self) -> IProbe:
        nginx = self.server(lambda folder: start_nginx(folder, ipv6=False))
        return self.make(nginx.port)


class SmtpProbeContractTests(_RealProbeContract, TestCase):
    """L{SmtpProbe}: aiosmtpd; a silent listener; a refusing port."""

    def make(self, port: int) -> IProbe:
        self.port = port
        return SmtpProbe(
            reactor,
            SmtpRequest(host="127.0.0.1", port=port, timeout=TIMEOUT, helo_name="probe.test"),
        )

    def healthy(self) -> IProbe:
        smtpd = self.server(lambda folder: start_aiosmtpd(folder, "plain"))
        return self.make(smtpd.port)


class _ParsedProbeContract(_RealProbeContract):
    """A protocol's probe made as a watch makes it: its parser, then the probe table."""

    protocol = ""
    #: What the command line adds for this protocol (the DNS query ...).
    arguments: tuple[str, ...] = ()

    def make(self, port: int) -> IProbe:
        self.port = port
        options = OPTIONS[self.protocol]()
        options.parseOptions(
            ["contract", "-s", "127.0.0.1", "-n", str(port), "-r", "1", *self.arguments]
        )
        assert options.config is not None
        return make_probe(reactor, self.protocol, options.config.request)

    def certs(self) -> Any:
        return make_test_certs(Path(tempfile.mkdtemp(prefix="ismon-contract-certs-")))


class Pop3ProbeContractTests(_ParsedProbeContract, TestCase):
    """L{ismon.probes.pop3.Pop3Probe}: dovecot; a silent listener; a refusing port."""

    protocol = "pop3"

    def healthy(self) -> IProbe:
        dovecot = self.server(lambda folder: start_dovecot(folder, self.certs()))
        return self.make(dovecot.pop3_port)


class ImapProbeContractTests(_ParsedProbeContract, TestCase):
    """L{ismon.probes.imap.ImapProbe}: dovecot; a silent listener; a refusing port."""

    protocol = "imap"

    def healthy(self) -> IProbe:
        dovecot = self.server(lambda folder: start_dovecot(folder, self.certs()))
        return self.make(dovecot.imap_port)


class FtpProbeContractTests(_ParsedProbeContract, TestCase):
    """L{ismon.probes.ftp.FtpProbe}: vsftpd; a silent listener; a refusing port."""

    protocol = "ftp"

    def healthy(self) -> IProbe:
        vsftpd = self.server(lambda folder: start_vsftpd(folder, self.certs()))
        return self.make(vsftpd.port)


class DnsProbeContractTests(_ParsedProbeContract, TestCase):
    """
    L{ismon.probes.dns.DnsProbe} over UDP: unbound with its private zone; a
    bound UDP socket that never answers; a UDP port nobody has (ICMP).
    """

    protocol = "dns"
    arguments = ("--query", "www.ismon.test")

    def healthy(self) -> IProbe:
        from tests.dns_server import start_unbound

        unbound = self.server(start_unbound)
        return self.make(unbound.port)

    def stalled(self) -> IProbe:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(("127.0.0.1", 0))
        return self.make(int(sock.getsockname()[1]))

    def refused(self) -> IProbe:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        return self.make(port)


class TcpProbeContractTests(_ParsedProbeContract, TestCase):
    """
    L{ismon.probes.tcp.TcpProbe} with C{--send 'PING\\r\\n' --expect '\\+PONG'}:
    redis-server; a silent listener; a refusing port.
    """

    protocol = "tcp"
    arguments = ("--send", r"PING\r\n", "--expect", r"\+PONG")

    def healthy(self) -> IProbe:
        from tests.redis_server import start_redis

        redis = self.server(start_redis)
        return self.make(redis.port)


def test_every_protocol_has_its_contract() -> None:
    """A new protocol's probe joins the contract: a test class here, named for it."""
    classes = {
        cls.__name__.removesuffix("ProbeContractTests").lower()
        for cls in _RealProbeContract.__subclasses__() + _ParsedProbeContract.__subclasses__()
        if cls is not _ParsedProbeContract
    }
    assert classes == set(OPTIONS)


class FakeProbeScriptTests(SynchronousTestCase):
    """What L{FakeProbe} adds to the contract: scripts, delays, records."""

    def setUp(self) -> None:
        self.clock = Clock()

    def results(self, probe: FakeProbe, count: int, step: float = 0.25) -> list[ProbeResult]:
        got: list[ProbeResult] = []
        for _ in range(count):
            probe.probe().addCallback(got.append)
            self.clock.pump([step] * 80)
        return got

    def test_script_then_the_default(self) -> None:
        failed = refused()
        probe = FakeProbe(self.clock, [answered("one"), failed], then=answered("rest"))
        got = self.results(probe, 4)
        self.assertEqual([r.reply for r in got], ["one", "", "rest", "rest"])
        self.assertEqual(got[1].message, MessageId.CONNECT_ERROR)
        self.assertEqual(probe.results, got)
        self.assertEqual(len(probe.started), 4)

    def test_script_function_gets_the_call_index(self) -> None:
        probe = FakeProbe(self.clock, lambda index: answered(str(index)))
        self.assertEqual([r.reply for r in self.results(probe, 3)], ["0", "1", "2"])

    def test_delays_and_latency(self) -> None:
        probe = FakeProbe(self.clock, [Answer(answered(), 2.0), answered(latency=0.125)], delay=1)
        got: list[ProbeResult] = []
        probe.probe().addCallback(got.append)
        self.clock.advance(1.99)
        self.assertEqual((got, probe.in_flight), ([], 1))
        self.clock.advance(0.01)
        self.assertEqual(got[0].latency, 2.0)
        probe.probe().addCallback(got.append)
        self.clock.advance(1)
        self.assertEqual(got[1].latency, 0.125)
        self.assertEqual(probe.in_flight, 0)

    def test_zero_delay_answers_at_once(self) -> None:
        got: list[ProbeResult] = []
        FakeProbe(self.clock).probe().addCallback(got.append)
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].ok)

    def test_too_late_is_a_timeout(self) -> None:
        probe = FakeProbe(self.clock, [Answer(answered(), 5.0)], timeout=3)
        got: list[ProbeResult] = []
        probe.probe().addCallback(got.append)
        self.clock.advance(3)
        self.assertEqual(
            (got[0].message, got[0].number, got[0].latency),
            (MessageId.SELECT_ERROR, errno.ETIMEDOUT, 3),
        )

    def test_stall_at_a_phase(self) -> None:
        probe = FakeProbe(self.clock, [Stall(Phase.CONNECT)], timeout=2)
        (result,) = self.results(probe, 1)
        self.assertEqual((result.phase, result.latency), (Phase.CONNECT, 2))
        self.assertEqual(
            result.describe(), "failed at connect: message 74 [110] no answer within the timeout"
        )

    def test_cancel_leaves_no_timer(self) -> None:
        probe = FakeProbe(self.clock, then=STALL)
        running = probe.probe()
        running.addErrback(lambda _: None)
        running.cancel()
        self.assertEqual((self.clock.getDelayedCalls(), probe.in_flight), ([], 0))


# ---------------------------------------------------------------------------
# IWatchControl


class WatchControlContract:
    """
    What a running watch does for its control channel
    (L{ismon.control.amp.IWatchControl}): C{pause} and C{resume} say whether
    they changed anything, C{stop} ends the watch with status 0 on the
    clock's next turn (the client's answer goes first), and C{status} is a
    JSON object with the same keys and state values as L{WatchService}'s.

    A subclass builds a running watch (L{running}) and says how to let its
    clock turn (L{turn}) and how it ended (L{exits}).
    """

    assertEqual: Any
    assertTrue: Any
    assertFalse: Any
    assertIsNone: Any
    assertIsInstance: Any
    assertIn: Any
    assertLessEqual: Any

    def running(self, max_pause: float | None = None) -> IWatchControl:
        """A running watch; C{max_pause} as C{--max-pause}."""
        raise NotImplementedError

    def turn(self) -> None:
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Let C{seconds} pass on the watch's clock."""
        raise NotImplementedError

    def exits(self) -> list[int]:
        raise NotImplementedError

    def test_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IWatchControl, self.running()))

    def test_pause_once(self) -> None:
        watch = self.running()
        self.assertTrue(watch.pause())
        self.assertFalse(watch.pause())
        status = watch.status()
        self.assertEqual(status["state"], WatchState.PAUSED.value)
        self.assertIsInstance(status["paused_since"], float)
        self.assertEqual(status["consecutive_failures"], 0)

    def test_resume_only_when_paused(self) -> None:
        watch = self.running()
        self.assertFalse(watch.resume())
        watch.pause()
        self.assertTrue(watch.resume())
        self.assertFalse(watch.resume())
        status = watch.status()
        self.assertEqual(status["state"], WatchState.WATCHING.value)
        self.assertIsNone(status["paused_since"])

    def test_stop_answers_first_then_ends_with_0(self) -> None:
        watch = self.running()
        watch.stop()
        self.assertEqual(self.exits(), [])
        self.turn()
        self.assertEqual(self.exits(), [0])
        self.assertEqual(watch.status()["state"], WatchState.STOPPED.value)

    def test_stopped_watch_neither_pauses_nor_resumes(self) -> None:
        watch = self.running()
        watch.stop()
        self.turn()
        self.assertFalse(watch.pause())
        self.assertFalse(watch.resume())
        self.assertEqual(watch.status()["state"], WatchState.STOPPED.value)

    def test_stop_twice_ends_once(self) -> None:
        watch = self.running()
        watch.stop()
        watch.stop()
        self.turn()
        self.turn()
        self.assertEqual(self.exits(), [0])

    def test_a_pause_with_an_expiry_ends_by_itself(self) -> None:
        watch = self.running()
        self.assertTrue(watch.pause(30, "kernel update"))
        status = watch.status()
        self.assertEqual(status["state"], WatchState.PAUSED.value)
        self.assertEqual(status["pause_reason"], "kernel update")
        until = status["paused_until"]
        assert isinstance(until, float)
        self.assertLessEqual(abs(until - time.time() - 30), 5)
        self.advance(29)
        self.assertEqual(watch.status()["state"], WatchState.PAUSED.value)
        self.advance(2)
        status = watch.status()
        self.assertEqual(status["state"], WatchState.WATCHING.value)
        self.assertEqual((status["paused_until"], status["pause_reason"]), (None, None))

    def test_a_new_pause_replaces_the_expiry(self) -> None:
        watch = self.running()
        watch.pause(30, "first")
        self.advance(20)
        self.assertFalse(watch.pause(30, "second"))  # already paused: nothing changed state
        self.advance(20)
        status = watch.status()
        self.assertEqual(status["state"], WatchState.PAUSED.value)
        self.assertEqual(status["pause_reason"], "second")
        self.advance(11)
        self.assertEqual(watch.status()["state"], WatchState.WATCHING.value)

    def test_continue_ends_a_pause_with_an_expiry(self) -> None:
        watch = self.running()
        watch.pause(30, "")
        self.assertTrue(watch.resume())
        self.advance(31)
        self.assertEqual(watch.status()["state"], WatchState.WATCHING.value)
        self.assertTrue(watch.pause())  # a later pause is a pause of its own

    def test_max_pause_bounds_every_pause(self) -> None:
        watch = self.running(max_pause=60)
        self.assertTrue(watch.pause())  # no expiry of its own
        until = watch.status()["paused_until"]
        assert isinstance(until, float)
        self.assertLessEqual(abs(until - time.time() - 60), 5)
        self.advance(61)
        self.assertEqual(watch.status()["state"], WatchState.WATCHING.value)
        watch.pause(600, "long")  # longer than the limit: cut to it
        self.advance(61)
        self.assertEqual(watch.status()["state"], WatchState.WATCHING.value)
        watch.pause(30, "short")  # shorter: its own
        self.advance(31)
        self.assertEqual(watch.status()["state"], WatchState.WATCHING.value)

    def test_status_is_json_with_the_watch_keys(self) -> None:
        status = self.running().status()
        self.assertEqual(set(status), set(STATUS_KEYS))
        self.assertEqual(json.loads(json.dumps(status)), status)
        self.assertIn(status["state"], {state.value for state in WatchState})
        self.assertEqual(status["pid"], os.getpid())
        self.assertEqual(status["detection_bound"], Timing(**TIMING).detection_bound)  # type: ignore[arg-type]
        for key in ("interval", "timeout", "retries", "retry_interval", "uptime", "probes"):
            self.assertIsInstance(status[key], int | float)


TIMING = dict(interval=10, retries=2, timeout=1, retry_interval=2)


class FakeWatchControlContractTests(WatchControlContract, SynchronousTestCase):
    def running(self, max_pause: float | None = None) -> IWatchControl:
        self.clock = Clock()
        self._exits: list[int] = []
        return FakeWatchControl(
            self.clock,
            timing=Timing(**TIMING),  # type: ignore[arg-type]
            on_exit=self._exits.append,
            max_pause=max_pause,
        )

    def turn(self) -> None:
        self.clock.advance(0)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def exits(self) -> list[int]:
        return self._exits


class WatchServiceControlContractTests(WatchControlContract, SynchronousTestCase):
    """The real L{WatchService}, running (inside L{FakeWatch})."""

    def running(self, max_pause: float | None = None) -> IWatchControl:
        self.watch = FakeWatch(timing=Timing(**TIMING), max_pause=max_pause)  # type: ignore[arg-type]
        self.addCleanup(self.watch.close)
        self.watch.start()
        return self.watch.service

    def turn(self) -> None:
        self.watch.advance(0)

    def advance(self, seconds: float) -> None:
        self.watch.advance(seconds)

    def exits(self) -> list[int]:
        return self.watch.exits


class FakeWatchControlTests(SynchronousTestCase):
    """What L{FakeWatchControl} adds: records, injected errors, extra status."""

    def test_records_and_raises(self) -> None:
        from ismon.control.amp import ControlRefused

        control = FakeWatchControl(Clock())
        control.raises = ControlRefused("busy")
        self.assertRaises(ControlRefused, control.pause)
        self.assertRaises(ControlRefused, control.status)
        control.raises = None
        control.extra_status = {"note": "x", "state": "retrying"}
        self.assertEqual((control.status()["note"], control.status()["state"]), ("x", "retrying"))
        self.assertEqual(control.calls, ["pause", "status", "status", "status"])


# ---------------------------------------------------------------------------
# The fake watch


class FakeWatchTests(SynchronousTestCase):
    """L{FakeWatch}: a whole watch through its retries to its exit, on a fake clock."""

    def test_stalled_server_exits_1_within_the_bound(self) -> None:
        timing = Timing(**TIMING)  # type: ignore[arg-type]
        with FakeWatch([answered()], then=STALL, timing=timing) as watch:
            self.assertEqual(watch.run_until_exit(100), 1)
            self.assertEqual(watch.messages, [2, 99, 1, 74, 96, 74, 96, 74, 6])
            # The stall began right after the first probe, at 0.
            self.assertLessEqual(watch.clock.seconds(), timing.detection_bound)
            self.assertEqual(watch.probe.started, [0, 10, 12, 14])

    def test_stop_and_records(self) -> None:
        watch = FakeWatch(protocol="smtp", watch_id="mail")
        self.addCleanup(watch.close)
        watch.start()
        folder = Path(watch.service.config.state_dir or "")
        self.assertTrue((folder / "mail.pid").exists())
        watch.service.stop()
        watch.advance(0)
        self.assertEqual(watch.exit_code, 0)
        self.assertFalse((folder / "mail.pid").exists())
        self.assertEqual(watch.lines[0], "The clp_smtpmon is going to watch SMTP daemon. [ID:mail]")
        watch.close()
        self.assertFalse(folder.exists())

    def test_runs_on_no_global_log_nor_thread(self) -> None:
        code = (
            "import threading\n"
            "from twisted.logger import globalLogPublisher\n"
            "from ismon.testing import FakeWatch, STALL\n"
            "seen = []\n"
            "globalLogPublisher.addObserver(seen.append)\n"
            "with FakeWatch(then=STALL) as watch:\n"
            "    assert watch.run_until_exit(100) == 1, watch.messages\n"
            "    assert threading.active_count() == 1\n"
            "assert not [e for e in seen if 'ismon_message_id' in e], seen\n"
            "import sys\n"
            "assert 'twisted.internet.reactor' not in sys.modules\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(done.returncode, 0, done.stderr)
