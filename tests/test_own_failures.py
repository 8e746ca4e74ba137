"""
The watch's own failures, in the process (docs/failure-rules.md, "The
monitor's own failures"; issue 22): what is the monitor's and not the
server's (message 42, exit 4), the verdict of a run of failed probes with
such a failure in it, a thread or timer that cannot start, the last
resort, and the records that make that visible.  The same faults in real
processes, under real limits, are tests/test_resources.py and
tests/test_folder_faults.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from ismon.core import resources
from ismon.core.catalogue import MessageId
from ismon.core.exit_status import ExitStatus
from ismon.core.resources import ThreadUnavailable, start_thread
from ismon.core.result import Phase, ProbeResult, monitor_failure
from ismon.core.timing import Timing
from ismon.probes import resolve
from ismon.probes.probe import run_probe
from ismon.state.files import remove_stale_temporaries, temporary_name
from ismon.state.folder import StateDir
from ismon.state.lock import WatchLock, running_or_ended
from ismon.state.record import RecordPending, ended_fields, prepare_record, read_record
from ismon.testing import FakeProbe
from ismon.watch import health
from ismon.watch.health import LoopHealth, LoopWatchdog
from ismon.watch.schedule import Schedule, WatchState
from ismon.watch.service import WatchService
from tests.test_service import ServiceCase

OK = ProbeResult(ok=True, latency=0.001, reply="HTTP/1.1 200 OK")
TIMEOUT = ProbeResult.failure(MessageId.SELECT_ERROR, Phase.WAIT, number=errno.ETIMEDOUT)
EMFILE = monitor_failure("socket", errno.EMFILE, Phase.CONNECT, "Too many open files")


def _refuse_threads(*args: object, **kwargs: object) -> None:
    raise RuntimeError("can't start new thread")


# -- starting the monitor's own threads --------------------------------------


class StartThreadTests(SynchronousTestCase):
    def test_starts_on_a_small_stack_and_restores_the_setting(self) -> None:
        before = threading.stack_size()
        ran = threading.Event()
        thread = start_thread(ran.set, "ismon-test")
        thread.join(10)
        self.assertTrue(ran.is_set())
        self.assertTrue(thread.daemon)
        self.assertEqual(threading.stack_size(), before)

    def test_a_refused_thread_is_thread_11(self) -> None:
        self.patch(threading.Thread, "start", _refuse_threads)
        with self.assertRaises(ThreadUnavailable) as caught:
            start_thread(lambda: None, "ismon-test")
        self.assertEqual((caught.exception.function, caught.exception.number), ("thread", 11))
        self.assertIn("ismon-test", str(caught.exception))


# -- name resolution: no thread, no descriptor ---------------------------------


class ResolverTests(SynchronousTestCase):
    def probe(self, reactor: MemoryReactorClock, resolver: Any) -> ProbeResult:
        results: list[ProbeResult] = []
        run_probe(
            reactor,
            resolver,
            host="server.example",
            port=80,
            timeout=5,
            protocol_factory=lambda: None,  # type: ignore[arg-type,return-value]
        ).addCallback(results.append)
        reactor.advance(0)
        (result,) = results
        return result

    def test_no_thread_for_the_lookup_is_42_thread_11(self) -> None:
        reactor = MemoryReactorClock()

        def no_thread(work: object) -> None:
            raise ThreadUnavailable("ismon-resolve", RuntimeError("can't start new thread"))

        result = self.probe(reactor, resolve.system_resolver(reactor, no_thread))
        self.assertEqual(
            (result.message, result.function, result.number, result.phase),
            (MessageId.SYSTEM_ERROR, "thread", errno.EAGAIN, Phase.RESOLVE),
        )
        self.assertTrue(result.monitor_failed)
        # Nothing was left pending: the next lookup is tried afresh.
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_getaddrinfo_out_of_descriptors_is_42_not_81(self) -> None:
        def emfile(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

        self.patch(socket, "getaddrinfo", emfile)
        with self.assertRaises(resolve.ResolverUnavailable) as caught:
            resolve._getaddrinfo("server.example", 80)
        self.assertEqual((caught.exception.function, caught.exception.number), ("getaddrinfo", 24))

    def test_getaddrinfo_out_of_memory_is_42(self) -> None:
        def no_memory(*args: object, **kwargs: object) -> None:
            raise socket.gaierror(socket.EAI_MEMORY, "Memory allocation failure")

        self.patch(socket, "getaddrinfo", no_memory)
        with self.assertRaises(resolve.ResolverUnavailable) as caught:
            resolve._getaddrinfo("server.example", 80)
        self.assertEqual(caught.exception.number, errno.ENOMEM)

    def test_a_name_that_does_not_resolve_is_still_81(self) -> None:
        def unknown(*args: object, **kwargs: object) -> None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        self.patch(socket, "getaddrinfo", unknown)
        with self.assertRaises(resolve.ResolveError):
            resolve._getaddrinfo("server.example", 80)


# -- the schedule: a timer that cannot be armed ---------------------------------


class _NoTimers(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.refuse = False

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        if self.refuse:
            raise MemoryError()
        return super().callLater(*args, **kwargs)


class ScheduleTests(SynchronousTestCase):
    def test_no_timer_for_the_next_probe_ends_the_watch(self) -> None:
        clock = _NoTimers()
        failed: list[ProbeResult] = []
        schedule = Schedule(
            clock,
            FakeProbe(clock),
            Timing(interval=10, retries=2, timeout=1),
            lambda result, failures: None,
            failed.append,
        )
        schedule.start()
        clock.refuse = True
        clock.advance(0)  # the first probe answers; its next tick cannot be armed
        self.assertEqual(schedule.state, WatchState.FAILED)
        ((result,),) = [failed]
        self.assertEqual((result.message, result.function), (MessageId.SYSTEM_ERROR, "timer"))
        self.assertEqual(result.number, errno.ENOMEM)


# -- the service: the verdict, and no blind watch --------------------------------


class _Recorder:
    """A health part that records what it is told; may refuse to start."""

    def __init__(self, refuse: BaseException | None = None) -> None:
        self.refuse = refuse
        self.told: list[str] = []

    def watching(self, timing: Timing) -> None:
        self.told.append("watching")
        if self.refuse is not None:
            raise self.refuse

    def probed(self, result: ProbeResult, failures: int) -> None:
        self.told.append("probed")

    def ending(self, code: int) -> None:
        self.told.append(f"ending {code}")


class VerdictTests(ServiceCase):
    def make(  # type: ignore[override]
        self, *results: ProbeResult, part: _Recorder | None = None
    ) -> WatchService:
        return super().make(self.scripted(*results), health=[part or _Recorder()])

    def messages(self) -> list[int]:
        """The messages logged, one each (42's reason follows on a line of its own)."""
        return [
            e["ismon_message_id"]
            for e in self.events
            if "ismon_message_id" in e and not e["ismon_text"].startswith("  (")
        ]

    def lines(self) -> list[str]:
        return [e["ismon_text"] for e in self.events if "ismon_text" in e]

    def record(self) -> dict[str, Any]:
        loaded = json.loads((self.folder / "web1.last").read_text())
        assert isinstance(loaded, dict)
        return loaded

    def run_out(self, *results: ProbeResult) -> WatchService:
        service = self.make(*results)
        service.startService()
        self.reactor.pump([0] + [0.5] * 60)
        return service

    def test_out_of_descriptors_every_probe_is_exit_4_not_1(self) -> None:
        """A watch that cannot probe at all ends within its bound, saying so."""
        self.run_out(OK, EMFILE)
        self.assertEqual(self.exits, [ExitStatus.SYSTEM_ERROR])
        self.assertEqual(self.messages(), [2, 99, 1, 42, 96, 42, 96, 42, 6])
        self.assertNotIn(72, self.messages())
        self.assertIn(
            "The clp_httpmon has detected system error (socket 24). [ID:web1]", self.lines()
        )
        self.assertIn("  (socket: Too many open files)", self.lines())
        record = self.record()
        self.assertEqual(record["exit_code"], ExitStatus.SYSTEM_ERROR)
        self.assertEqual(
            record["meaning"],
            "the monitor itself failed (socket 24: Too many open files), not the server",
        )
        self.assertEqual(
            record["last_failure"],
            "The clp_httpmon has detected system error (socket 24). [ID:web1]",
        )

    def test_one_own_failure_in_the_run_is_exit_4(self) -> None:
        """The server failed twice, but the monitor could not look the third time."""
        self.run_out(OK, TIMEOUT, EMFILE, TIMEOUT)
        self.assertEqual(self.exits, [ExitStatus.SYSTEM_ERROR])
        self.assertEqual(self.messages()[3:], [74, 96, 42, 96, 74, 6])
        self.assertIn("socket 24", self.record()["meaning"])

    def test_a_transient_own_failure_is_forgiven_like_any_failed_probe(self) -> None:
        """A burst of control clients took the descriptors once: the watch goes on."""
        self.run_out(OK, EMFILE, OK)
        self.assertEqual(self.exits, [])
        self.assertEqual(self.messages(), [2, 99, 1, 42, 96, 95])

    def test_an_own_failure_before_the_run_does_not_count(self) -> None:
        """Only the run of consecutive failures that ends the watch decides."""
        self.run_out(OK, EMFILE, OK, TIMEOUT)
        self.assertEqual(self.exits, [ExitStatus.SERVER_FAILED])
        self.assertEqual(self.record()["meaning"], "the server failed")

    def test_a_watchdog_that_cannot_start_ends_the_watch_unstarted(self) -> None:
        part = _Recorder(
            ThreadUnavailable("ismon-watchdog", RuntimeError("can't start new thread"))
        )
        service = self.make(OK, part=part)
        service.startService()
        self.reactor.pump([0] * 5)
        self.assertEqual(self.exits, [ExitStatus.SYSTEM_ERROR])
        # Never declared started (no message 1), never probed.
        self.assertEqual(self.messages(), [2, 99, 42])
        self.assertEqual(service.status()["probes"], 0)
        self.assertEqual(part.told, ["watching", "ending 4"])
        self.assertIn(
            "The clp_httpmon has detected system error (thread 11). [ID:web1]", self.lines()
        )
        self.assertIn("thread 11", self.record()["meaning"])

    def test_no_memory_to_start_the_health_parts_ends_the_watch(self) -> None:
        service = self.make(OK, part=_Recorder(MemoryError()))
        service.startService()
        self.reactor.pump([0] * 5)
        self.assertEqual(self.exits, [ExitStatus.SYSTEM_ERROR])
        self.assertIn("memory 12", self.record()["meaning"])

    def test_a_failing_step_of_the_winding_down_keeps_none_from_running(self) -> None:
        """Every step runs, and the exit status is handed on, whatever raises."""

        class Broken(_Recorder):
            def ending(self, code: int) -> None:
                raise MemoryError()

        service = self.make(OK, TIMEOUT, part=Broken())
        service.startService()
        self.reactor.pump([0] + [0.5] * 60)
        self.assertEqual(self.exits, [ExitStatus.SERVER_FAILED])
        self.assertEqual(self.record()["exit_code"], ExitStatus.SERVER_FAILED)
        self.assertFalse((self.folder / "web1.pid").exists())


# -- the loop watchdog as the last resort ----------------------------------------


class LastResortTests(SynchronousTestCase):
    def test_the_watchdog_thread_exits_with_the_verdict(self) -> None:
        exits: list[tuple[float, int]] = []
        done = threading.Event()

        def exit_process(code: int) -> None:
            exits.append((time.monotonic(), code))
            done.set()

        watchdog = LoopWatchdog(30.0, lambda seconds: None, exit_process=exit_process)
        watchdog.start()
        began = time.monotonic()
        watchdog.last_resort(1, 0.5)
        self.assertTrue(done.wait(20), "no last resort")
        ((when, code),) = exits
        self.assertEqual(code, 1)
        self.assertGreaterEqual(when - began, 0.5)

    def test_loop_health_needs_no_new_thread_at_the_end(self) -> None:
        """Once watching, ending starts no thread: one may no longer be had."""
        exits: list[int] = []
        done = threading.Event()

        def exit_process(code: int) -> None:
            exits.append(code)
            done.set()

        part = LoopHealth(
            MemoryReactorClock(), lambda s: None, exit_process=exit_process, alarm=False
        )
        part.watching(Timing(interval=1, retries=1, timeout=1))
        self.patch(threading.Thread, "start", _refuse_threads)
        self.patch(health, "EXIT_DEADLINE", 0.2)
        part.ending(1)
        self.assertTrue(done.wait(20), "no last resort")
        self.assertEqual(exits, [1])

    def test_a_watchdog_that_cannot_start_is_said(self) -> None:
        self.patch(threading.Thread, "start", _refuse_threads)
        part = LoopHealth(MemoryReactorClock(), lambda s: None, exit_process=lambda c: None)
        with self.assertRaises(ThreadUnavailable):
            part.watching(Timing(interval=1, retries=1, timeout=1))
        self.assertIsNone(part.heartbeat)

    def test_the_alarm_backs_it_up(self) -> None:
        """Without a watchdog thread (it never started), SIGALRM exits."""
        exits: list[int] = []
        previous = signal.getsignal(signal.SIGALRM)
        self.addCleanup(signal.signal, signal.SIGALRM, previous)
        self.addCleanup(signal.setitimer, signal.ITIMER_REAL, 0)
        part = LoopHealth(MemoryReactorClock(), lambda s: None, exit_process=exits.append)
        self.patch(health, "EXIT_DEADLINE", 0.0)
        self.patch(health, "ALARM_SLACK", 0.2)
        part.ending(4)
        deadline = time.monotonic() + 20
        while not exits and time.monotonic() < deadline:
            time.sleep(0.05)  # the handler runs in this (the main) thread
        self.assertEqual(exits, [4])


# -- records ------------------------------------------------------------------


class RecordTests(SynchronousTestCase):
    def setUp(self) -> None:
        top = Path(tempfile.mkdtemp(prefix="ismon-rec-"))
        self.addCleanup(shutil.rmtree, top, True)
        self.state = StateDir.open(top / "state")

    def test_the_placeholder_then_the_record_through_the_reserved_file(self) -> None:
        lock = WatchLock.acquire(self.state, "web")
        self.addCleanup(lock.release)
        prepared = prepare_record(self.state, "web", 1.0)
        path = self.state.record_path("web")
        with self.assertRaises(RecordPending) as caught:
            read_record(path)
        self.assertEqual(caught.exception.placeholder["pid"], os.getpid())
        reserved = [n for n in os.listdir(self.state.path) if n.startswith(".last-")]
        self.assertEqual(len(reserved), 1)
        # The record needs no new descriptor: none can be opened.
        record = {"exit_code": 1, "time": 2.0, "watch_id": "web", "pid": os.getpid()}
        real_open = os.open

        def no_descriptors(*args: Any, **kwargs: Any) -> int:
            if str(args[0]).startswith(str(self.state.path)):
                raise OSError(errno.EMFILE, "Too many open files")
            return real_open(*args, **kwargs)

        os.open = no_descriptors  # type: ignore[assignment]
        try:
            prepared.write(record)
        finally:
            os.open = real_open
        self.assertEqual(read_record(path), record)
        self.assertEqual([n for n in os.listdir(self.state.path) if n.endswith(".tmp")], [])

    def test_a_placeholder_with_the_pidfile_gone_is_a_record_not_written(self) -> None:
        lock = WatchLock.acquire(self.state, "web")
        prepare_record(self.state, "web", 1.0)
        lock.release()  # as a watch does after the record failed: pidfile removed
        pid, ended = running_or_ended(self.state, "web")
        self.assertIsNone(pid)
        self.assertEqual(ended["last_exit"], None)
        self.assertIn(f"(PID {os.getpid()}) could not write it", str(ended["record_not_written"]))
        self.assertNotIn("ended_without_record", ended)

    def test_a_placeholder_with_the_pidfile_left_is_killed(self) -> None:
        lock = WatchLock.acquire(self.state, "web")
        prepare_record(self.state, "web", 1.0)
        os.close(lock._fd)  # type: ignore[arg-type]  # as SIGKILL would
        lock._fd = None
        self.assertEqual(
            ended_fields(self.state, "web"), {"last_exit": None, "ended_without_record": True}
        )

    def test_stale_temporaries_go_live_ones_stay(self) -> None:
        dead = self.state.path / ".last-999999999-0123abcd.tmp"
        dead_pid = self.state.path / ".pid-999999999-0123abcd.tmp"
        live = temporary_name(self.state.record_path("web"), "last")
        other = self.state.path / ".last-x.tmp"
        for path in (dead, dead_pid, live, other):
            path.write_bytes(b"{")
        self.assertEqual(
            sorted(remove_stale_temporaries(self.state.path)), sorted([dead, dead_pid])
        )
        self.assertEqual(
            sorted(p.name for p in self.state.path.iterdir()), sorted([live.name, other.name])
        )

    def test_a_start_cleans_what_killed_starts_left(self) -> None:
        dead = self.state.path / ".last-999999999-0123abcd.tmp"
        dead.write_bytes(b'{"exit')
        lock = WatchLock.acquire(self.state, "web")
        self.addCleanup(lock.release)
        self.assertFalse(dead.exists())

    def test_a_deleted_folder_is_made_again(self) -> None:
        lock = WatchLock.acquire(self.state, "web")
        self.addCleanup(lock.release)
        self.assertFalse(lock.gone)
        shutil.rmtree(self.state.path)
        self.assertTrue(lock.gone)
        lock.renew()
        self.assertFalse(lock.gone)
        self.assertEqual(running_or_ended(self.state, "web"), (os.getpid(), {}))


def test_the_stack_is_small() -> None:
    """Each thread of the watch reserves half a MiB, not glibc's 8 MiB."""
    assert resources.THREAD_STACK_BYTES <= 1024 * 1024
