# -*- test-case-name: tests.test_watchdog,tests.test_service -*-
"""
The monitor's own health: what keeps a watch honest about itself, apart
from what it watches (README "Timing", docs/cluster.md).

  - L{LoopHealth}: a thread that ends the process when the event loop
    stops turning, and a last-resort exit should the shutdown itself hang;
  - L{SystemdHealth}: C{READY=1} after the first probe, C{STATUS=}, the
    systemd watchdog pings, C{STOPPING=1}.

The service tells each part of its health what happens (L{IMonitorHealth});
tests that drive time with a fake clock give it L{SystemdHealth} alone, or
nothing, since the loop watchdog measures real time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from zope.interface import Interface, implementer

from ismon.core.exit_status import ExitStatus
from ismon.core.resources import start_thread
from ismon.core.result import ProbeResult
from ismon.core.timing import Timing
from ismon.watch.notify import SystemdNotifier

__all__ = [
    "ALARM_SLACK",
    "EXIT_DEADLINE",
    "IMonitorHealth",
    "LoopHealth",
    "LoopWatchdog",
    "SystemdHealth",
    "loop_watchdog_limit",
    "release_freed_memory",
]

#: Seconds a finished watch may take to shut down before it exits regardless.
EXIT_DEADLINE = 15.0


class IMonitorHealth(Interface):
    """One part of the monitor's own health, told what the watch does."""

    def watching(timing: Timing) -> None:
        """The watch has started probing on C{timing}."""

    def probed(result: ProbeResult, failures: int) -> None:
        """A probe ended; C{failures} consecutive ones have failed so far."""

    def ending(code: int) -> None:
        """The watch winds down and will exit with C{code}."""


def release_freed_memory() -> None:
    """
    Hand the heap pages freed since start-up back to the system.  Importing
    leaves ~0.7 MB of freed memory that glibc keeps for later; a watch that
    lives for months never needs it again.  Elsewhere than glibc: nothing.
    """
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def loop_watchdog_limit(detection_bound: float) -> float:
    """Seconds within which a stuck event loop ends the process (README "Timing")."""
    return max(30.0, 2 * detection_bound)


class LoopWatchdog:
    """
    A thread that notices when the reactor stops turning (a blocking call,
    a livelock) and ends the process, so the cluster sees the monitor
    itself fail instead of trusting a monitor that no longer probes.  It has
    to be a thread: a timer on the stuck reactor would never fire.

    An idle watch should sleep, so nothing here runs every second: the loop
    beats, and the thread looks, every C{limit / 4}.  A beat older than
    C{limit / 2} is a stall; it is confirmed C{limit / 8} later (after a
    whole-process freeze -- SIGSTOP, a paused VM -- this thread may look
    before the loop has had its turn).  So a loop stuck just after a beat
    is caught at the latest C{limit/2 + limit/4 + limit/8 = 7/8 limit}
    after it stuck, the last eighth being slack for a late thread; and a
    loop that turns, even a quarter of the limit late, is never taken for a
    stuck one.

    Once the watch winds down, the same thread is its last resort
    (L{last_resort}): it exits with the verdict should the shutdown hang.
    No new thread is needed then -- one may no longer be had (a pids limit,
    no address space for a stack) -- and none has to be allocated.
    """

    def __init__(
        self,
        limit: float,
        last_words: Callable[[float], None],
        *,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self.limit = limit
        self.period = limit / 4
        self.threshold = limit / 2
        self.confirm = limit / 8
        self._last_words = last_words
        self._exit_process = exit_process
        self._beat = time.monotonic()
        # Set to wake the thread: it was stopped, or given its last resort.
        self._wake = threading.Event()
        self._stopped = False
        self._final: tuple[float, int] | None = None

    def beat(self) -> None:
        self._beat = time.monotonic()

    def start(self) -> None:
        """
        Start the thread.

        @raise ismon.core.resources.ThreadUnavailable: the system would not.
        """
        start_thread(self._run, "ismon-watchdog")

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def last_resort(self, code: int, seconds: float) -> None:
        """
        Stop watching the loop; exit with C{code} in C{seconds} unless the
        process has ended by then.
        """
        self._final = (time.monotonic() + seconds, int(code))
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.period)
            if self._final is not None:
                self._exit_at(*self._final)
                return
            if self._stopped:
                return
            if time.monotonic() - self._beat <= self.threshold:
                continue
            if self._wake.wait(self.confirm):
                continue  # stopped, or the last resort: decided above
            stalled = time.monotonic() - self._beat
            if stalled > self.threshold:
                try:
                    self._last_words(stalled)
                except BaseException:
                    pass  # no memory to say it: the exit still says 4
                self._exit_process(ExitStatus.SYSTEM_ERROR)
                return

    def _exit_at(self, deadline: float, code: int) -> None:
        # An Event's timed wait, not time.sleep (see ismon.state.lock.timed_wait).
        never = threading.Event()
        while (left := deadline - time.monotonic()) > 0:
            never.wait(left)
        self._exit_process(code)


@implementer(IMonitorHealth)
class LoopHealth:
    """
    The event-loop watchdog (L{LoopWatchdog}, beaten from the reactor) and
    the last-resort exit: should the shutdown itself hang (a stuck thread,
    a hung flush), the process leaves anyway with the verdict already
    reached, L{EXIT_DEADLINE} seconds after the watch began to wind down.
    Both measure real time.

    The last resort needs nothing it could fail to get at that moment: the
    watchdog's thread, started with the watch, turns into it; and a
    C{SIGALRM} armed as the winding down begins (C{setitimer}, a handler
    made at start) exits too, should that thread not exist (a watch that
    ends before it watches) or the main thread be what hangs.  A watch
    whose watchdog cannot start does not start (L{watching} raises).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        last_words: Callable[[float], None],
        *,
        exit_process: Callable[[int], object] = os._exit,
        alarm: bool = True,
    ) -> None:
        self._reactor = reactor
        self._last_words = last_words
        self._exit_process = exit_process
        self._alarm = alarm
        self._code = int(ExitStatus.SYSTEM_ERROR)
        self.watchdog: LoopWatchdog | None = None
        self.heartbeat: LoopingCall | None = None

    def watching(self, timing: Timing) -> None:
        """
        Start the loop watchdog and its heartbeat.

        @raise ismon.core.resources.ThreadUnavailable: its thread cannot start.
        """
        limit = loop_watchdog_limit(timing.detection_bound)
        watchdog = LoopWatchdog(limit, self._last_words, exit_process=self._exit_process)
        watchdog.start()
        self.watchdog = watchdog
        self.heartbeat = LoopingCall(watchdog.beat)
        self.heartbeat.clock = self._reactor
        self.heartbeat.start(watchdog.period, now=True)

    def probed(self, result: ProbeResult, failures: int) -> None:
        pass

    def ending(self, code: int) -> None:
        self._code = int(code)
        if self._alarm:
            _arm_alarm(EXIT_DEADLINE + ALARM_SLACK, self._on_alarm)
        if self.heartbeat is not None and self.heartbeat.running:
            self.heartbeat.stop()
        if self.watchdog is not None:
            self.watchdog.last_resort(self._code, EXIT_DEADLINE)

    def _on_alarm(self, signum: int, frame: object) -> None:
        self._exit_process(self._code)


#: The alarm's last resort fires this long after the watchdog thread's, so
#: that a process with both leaves by the thread (which runs even when the
#: main thread is stuck in C code).
ALARM_SLACK = 1.0


def _arm_alarm(seconds: float, handler: Callable[[int, object], None]) -> None:
    """Arm the process's real-time interval timer to call C{handler} once."""
    try:
        signal.signal(signal.SIGALRM, handler)  # type: ignore[arg-type]
        signal.setitimer(signal.ITIMER_REAL, seconds)
    except (ValueError, OSError):
        pass  # not the main thread (an embedding program): the thread remains


@implementer(IMonitorHealth)
class SystemdHealth:
    """
    What systemd hears (docs/cluster.md): READY only once the watch has
    really probed, so that C{systemctl start} returns to a watch that
    works; the last probe as STATUS; watchdog pings from the reactor, so
    that they stop when the loop stops.  Silent outside systemd.
    """

    def __init__(self, reactor: IReactorTime, notifier: SystemdNotifier) -> None:
        self._reactor = reactor
        self.notifier = notifier
        self._ready = False
        self._retries = 0
        self.pings: LoopingCall | None = None

    def watching(self, timing: Timing) -> None:
        self._retries = timing.retries
        ping = self.notifier.watchdog_interval()
        if ping is not None:
            self.pings = LoopingCall(self.notifier.watchdog_ping)
            self.pings.clock = self._reactor
            self.pings.start(ping / 2, now=True)
        if timing.grace and self.notifier.enabled:
            self.notifier.extend_timeout(timing.grace + timing.timeout + 5)

    def probed(self, result: ProbeResult, failures: int) -> None:
        if not self.notifier.enabled:
            return
        text = f"last probe {result.describe()}"
        if failures:
            text += f"; {failures} consecutive failure(s) of {self._retries + 1}"
        if self._ready:
            self.notifier.status(text)
        else:
            self._ready = True
            self.notifier.ready(text)

    def ending(self, code: int) -> None:
        if self.pings is not None and self.pings.running:
            self.pings.stop()
        self.notifier.stopping(f"exit status {int(code)}")
