# -*- test-case-name: tests.test_schedule,tests.test_pause_expiry -*-
"""
When to probe: a fixed-rate grid, retries, pause, on an injected clock.

The rules (README "Timing"):

  - probes start on a grid C{start + grace + k * interval};
  - a failed probe is retried C{retry_interval} seconds after it started, or
    as soon as it ends if that is later;
  - after C{retries} consecutive failed retries the watch has failed;
  - a probe never overlaps the next: a tick that falls inside a running
    probe is skipped, the grid itself does not move.

So from a stall to the verdict takes at most
C{interval + retries * max(retry_interval, timeout) + timeout}.

This is a small explicit state machine rather than C{LoopingCall}:
LoopingCall keeps the grid but knows nothing of retries that leave it and
come back, and it stops for good on an exception.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Callable
from enum import Enum

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ismon.core.result import Phase, ProbeResult, monitor_failure
from ismon.core.timing import Timing
from ismon.probes.probe import IProbe

__all__ = ["Schedule", "WatchState"]

_log = Logger()


class WatchState(Enum):
    IDLE = "idle"
    WATCHING = "watching"
    RETRYING = "retrying"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


ResultObserver = Callable[[ProbeResult, int], None]
FailedObserver = Callable[[ProbeResult], None]
PauseEndedObserver = Callable[[], None]


class Schedule:
    """
    Drives one probe on the grid.  C{on_result(result, failures)} hears every
    probe's result with the count of consecutive failures after it;
    C{on_failed(result)} hears the last result once the retries are spent;
    C{on_pause_ended()} hears that a pause with an expiry ran out (probing
    has resumed by then).
    """

    def __init__(
        self,
        clock: IReactorTime,
        probe: IProbe,
        timing: Timing,
        on_result: ResultObserver,
        on_failed: FailedObserver,
        on_pause_ended: PauseEndedObserver | None = None,
    ) -> None:
        self._clock = clock
        self._probe = probe
        self.timing = timing
        self._on_result = on_result
        self._on_failed = on_failed
        self.state = WatchState.IDLE
        self._origin = 0.0
        self._call: IDelayedCall | None = None
        # Bumped on pause/stop so that a probe in flight then is disregarded.
        self._epoch = 0
        self.consecutive_failures = 0
        self.probes = 0
        self.failures = 0
        self.last_result: ProbeResult | None = None
        self.last_started: float | None = None
        self.paused_since: float | None = None
        # When a pause ends by itself (README "Maintenance pauses"), on this
        # clock: monotonic in a watch, so a wall-clock step moves nothing.
        self.paused_until: float | None = None
        self.pause_reason = ""
        self._on_pause_ended = on_pause_ended
        self._expiry: IDelayedCall | None = None
        self.skipped_ticks = 0

    # -- inputs ---------------------------------------------------------

    def start(self) -> None:
        if self.state is not WatchState.IDLE:
            return
        self.state = WatchState.WATCHING
        self._origin = self._clock.seconds() + self.timing.grace
        self._at(self._origin)

    def pause(self, duration: float | None = None, reason: str = "") -> bool:
        """
        Stop probing, for C{duration} seconds or until resumed; False when
        already paused (or over).  A pause while paused replaces the
        running pause's expiry and reason (from now), and still answers
        False; a watch that is over is not touched.
        """
        if self.state is WatchState.PAUSED:
            self._set_expiry(duration, reason)
            return False
        if self.state not in (WatchState.WATCHING, WatchState.RETRYING, WatchState.IDLE):
            return False
        self._cancel()
        self.state = WatchState.PAUSED
        self.paused_since = self._clock.seconds()
        # A maintenance pause forgives the failures seen before it.
        self.consecutive_failures = 0
        self._set_expiry(duration, reason)
        return True

    def resume(self) -> bool:
        """Probe again, at once, on a new grid; False when not paused."""
        if self.state is not WatchState.PAUSED:
            return False
        self._set_expiry(None, "")
        self.state = WatchState.WATCHING
        self.paused_since = None
        self._origin = self._clock.seconds()
        self._at(self._origin)
        return True

    def stop(self) -> None:
        if self.state in (WatchState.STOPPED, WatchState.FAILED):
            return
        self._cancel()
        self._set_expiry(None, "")
        self.state = WatchState.STOPPED

    def _set_expiry(self, duration: float | None, reason: str) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self.pause_reason = reason
        if duration is None:
            self.paused_until = None
            return
        self.paused_until = self._clock.seconds() + duration
        self._expiry = self._clock.callLater(duration, self._expired)

    def _expired(self) -> None:
        self._expiry = None
        if self.resume() and self._on_pause_ended is not None:
            try:
                self._on_pause_ended()
            except Exception:
                _log.failure("pause observer raised")

    # -- machinery ------------------------------------------------------

    def _cancel(self) -> None:
        self._epoch += 1
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _at(self, when: float) -> None:
        delay = max(0.0, when - self._clock.seconds())
        try:
            self._call = self._clock.callLater(delay, self._fire)
        except Exception as e:
            # No timer, no next probe: a watch that would sit blind must
            # end instead, as the monitor's failure (message 42, exit 4).
            self._call = None
            number = errno.ENOMEM if isinstance(e, MemoryError) else 0
            self.state = WatchState.FAILED
            self._on_failed(monitor_failure("timer", number, Phase.CONNECT, repr(e)[:200]))

    def _next_tick(self, now: float) -> float:
        """The first grid point strictly after the probe that just ran."""
        interval = self.timing.interval
        k = math.floor((now - self._origin) / interval) + 1
        return self._origin + k * interval

    def _fire(self) -> None:
        self._call = None
        epoch = self._epoch
        started = self._clock.seconds()
        self.last_started = started
        self.probes += 1
        try:
            running = self._probe.probe()
        except MemoryError:
            # No traceback for this one: the monitor's memory, said by 42.
            running = Deferred()
            running.callback(
                monitor_failure("memory", errno.ENOMEM, Phase.CONNECT, "out of memory")
            )
        except Exception as e:  # the probe contract says never; be safe anyway
            _log.failure("probe raised")
            running = Deferred()
            running.callback(
                monitor_failure("probe", 0, Phase.CONNECT, f"probe raised {e!r}"[:200])
            )

        def done(result: ProbeResult) -> None:
            if epoch != self._epoch:
                return
            self._record(result, started)

        def broken(reason: object) -> None:
            # IProbe promises never to errback; a bug there must not end the
            # watch silently, so it counts as a failed probe.
            _log.failure("probe errbacked", reason)  # type: ignore[arg-type]
            done(monitor_failure("probe", 0, Phase.CONNECT, "internal probe error"))

        running.addCallbacks(done, broken)

    def _record(self, result: ProbeResult, started: float) -> None:
        now = self._clock.seconds()
        self.last_result = result
        if result.ok:
            self.consecutive_failures = 0
        else:
            self.consecutive_failures += 1
            self.failures += 1
        self._report(result)
        if self.state not in (WatchState.WATCHING, WatchState.RETRYING):
            return
        if result.ok:
            self.state = WatchState.WATCHING
            following = self._next_tick(now)
            # Ticks that fell inside this probe are skipped, not run late.
            self.skipped_ticks += max(0, round((following - started) / self.timing.interval) - 1)
            self._at(following)
            return
        if self.consecutive_failures > self.timing.retries:
            self.state = WatchState.FAILED
            self._on_failed(result)
            return
        self.state = WatchState.RETRYING
        self._at(max(started + self.timing.retry_gap, now))

    def _report(self, result: ProbeResult) -> None:
        try:
            self._on_result(result, self.consecutive_failures)
        except Exception:
            _log.failure("result observer raised")
