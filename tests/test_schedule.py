"""
Tests for L{ismon.watch.schedule}: the grid, retries, pause, no overlap, on a Clock.
"""

from __future__ import annotations

import errno

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from ismon.core.catalogue import MessageId
from ismon.core.result import Phase, ProbeResult
from ismon.core.timing import Timing
from ismon.probes.probe import IProbe
from ismon.testing import STALL, Answer, FakeProbe
from ismon.watch.schedule import Schedule, WatchState

OK = ProbeResult(ok=True, latency=0.01)
FAIL = ProbeResult.failure(MessageId.SELECT_ERROR, Phase.WAIT, number=errno.ETIMEDOUT)


class ScheduleTests(SynchronousTestCase):
    def make(self, **timing: float) -> tuple[Clock, FakeProbe, Schedule, list, list]:
        clock = Clock()
        clock.advance(1000)
        probe = FakeProbe(clock, timeout=Timing(**timing).timeout)  # type: ignore[arg-type]
        results: list[tuple[ProbeResult, int]] = []
        failed: list[ProbeResult] = []
        schedule = Schedule(
            clock,
            probe,
            Timing(**timing),  # type: ignore[arg-type]
            lambda r, n: results.append((r, n)),
            failed.append,
        )
        return clock, probe, schedule, results, failed

    def test_fixed_rate_grid(self) -> None:
        clock, probe, schedule, _, _ = self.make(interval=5, timeout=1)
        probe.then = Answer(OK, 0.3)
        schedule.start()
        clock.advance(0)
        clock.pump([0.1] * 260)
        offsets = [t - 1000 for t in probe.started]
        self.assertEqual([round(o, 6) for o in offsets], [0, 5, 10, 15, 20, 25])

    def test_grace_delays_first_probe(self) -> None:
        clock, probe, schedule, _, _ = self.make(interval=5, grace=7)
        schedule.start()
        clock.advance(0)
        clock.advance(6.9)
        self.assertEqual(probe.started, [])
        clock.advance(0.1)
        self.assertEqual(probe.started, [1007])

    def test_overrun_skips_ticks_never_overlaps(self) -> None:
        clock, probe, schedule, _, _ = self.make(interval=2, timeout=10)
        probe.script.append(Answer(OK, 5.0))
        schedule.start()
        clock.advance(0)
        for _ in range(100):
            clock.advance(0.1)
        # First probe ran 1000..1005; ticks at 1002 and 1004 skipped; next at 1006.
        self.assertEqual([round(t, 6) for t in probe.started[:2]], [1000, 1006])

    def test_retries_then_failed(self) -> None:
        clock, probe, schedule, results, failed = self.make(
            interval=10, retries=3, timeout=2, retry_interval=1
        )
        probe.then = STALL  # each probe times out, at 2 s
        schedule.start()
        clock.advance(0)
        clock.pump([0.5] * 40)
        # Retry starts max(start + 1, end) = end of the failed probe.
        self.assertEqual(probe.started, [1000, 1002, 1004, 1006])
        self.assertEqual([n for _, n in results], [1, 2, 3, 4])
        self.assertEqual(failed, [probe.results[-1]])
        self.assertEqual(failed[0].message, FAIL.message)
        self.assertEqual(schedule.state, WatchState.FAILED)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_detection_bound_holds(self) -> None:
        timing = dict(interval=7, retries=2, timeout=3, retry_interval=5)
        clock, probe, schedule, _, failed = self.make(**timing)
        schedule.start()
        clock.advance(0)
        clock.advance(0.5)  # first probe ok at 1000
        stall = clock.seconds()
        probe.then = STALL  # every later probe times out
        while not failed:
            clock.advance(0.25)
        bound = Timing(**timing).detection_bound  # type: ignore[arg-type]
        self.assertEqual(bound, 7 + 2 * 5 + 3)
        self.assertLessEqual(clock.seconds() - stall, bound)

    def test_recovery_resets_count_and_returns_to_grid(self) -> None:
        clock, probe, schedule, results, failed = self.make(
            interval=10, retries=2, timeout=1, retry_interval=3
        )
        probe.script.extend([OK, STALL, OK])
        schedule.start()
        clock.advance(0)
        clock.pump([0.5] * 60)
        self.assertEqual(probe.started[:4], [1000, 1010, 1013, 1020])
        self.assertEqual([n for _, n in results][:3], [0, 1, 0])
        self.assertEqual(failed, [])

    def test_retry_interval_zero_retries_at_once(self) -> None:
        clock, probe, schedule, _, _ = self.make(
            interval=10, retries=1, timeout=1, retry_interval=0
        )
        probe.then = Answer(FAIL, 0.5)
        schedule.start()
        clock.advance(0)
        clock.pump([0.25] * 8)
        self.assertEqual(probe.started, [1000, 1000.5])

    def test_pause_stops_probes_and_continue_resumes(self) -> None:
        clock, probe, schedule, _, _ = self.make(interval=5)
        schedule.start()
        clock.advance(0)
        self.assertTrue(schedule.pause())
        self.assertFalse(schedule.pause())
        clock.pump([1] * 30)
        self.assertEqual(probe.started, [1000])
        self.assertEqual(schedule.state, WatchState.PAUSED)
        self.assertTrue(schedule.resume())
        self.assertFalse(schedule.resume())
        clock.advance(0)
        self.assertEqual(probe.started, [1000, 1030])
        clock.advance(5)
        self.assertEqual(probe.started, [1000, 1030, 1035])

    def test_pause_discards_probe_in_flight_and_forgives_failures(self) -> None:
        clock, probe, schedule, results, failed = self.make(
            interval=5, retries=1, timeout=2, retry_interval=1
        )
        probe.then = STALL  # each probe times out, at 2 s
        schedule.start()
        clock.advance(0)
        clock.advance(2)  # first failure recorded; retry due
        self.assertEqual(schedule.consecutive_failures, 1)
        clock.advance(0.5)  # retry in flight
        schedule.pause()
        clock.advance(5)
        self.assertEqual(failed, [])
        self.assertEqual(schedule.consecutive_failures, 0)
        self.assertEqual(len(results), 1)

    def test_stop_leaves_no_timer(self) -> None:
        clock, _probe, schedule, _, _ = self.make(interval=5)
        schedule.start()
        clock.advance(0)
        clock.advance(1)
        schedule.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(schedule.state, WatchState.STOPPED)

    def test_probe_that_raises_counts_as_failure(self) -> None:
        clock = Clock()

        @implementer(IProbe)
        class Broken:
            def probe(self) -> Deferred[ProbeResult]:
                raise RuntimeError("bug")

        results: list[ProbeResult] = []
        schedule = Schedule(
            clock, Broken(), Timing(interval=1, retries=5), lambda r, n: results.append(r), list
        )
        schedule.start()
        clock.advance(0)
        self.assertEqual(results[0].message, MessageId.SYSTEM_ERROR)
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(schedule.state, WatchState.RETRYING)

    def test_describe_names_the_bound(self) -> None:
        timing = Timing(interval=60, retries=3, timeout=10)
        self.assertEqual(timing.detection_bound, 60 + 3 * 60 + 10)
        self.assertIn("within 250s", timing.describe())
