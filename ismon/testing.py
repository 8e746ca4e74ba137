# -*- test-case-name: tests.test_contracts,tests.test_contracts_watch -*-
"""
Fakes for programs that embed ismon, and for ismon's own tests.

  - L{FakeProbe}: an L{IProbe} that gives scripted results after scripted
    delays on an injected clock, and can stall until its timeout and then
    give the timeout result the real probes give (message 74, ETIMEDOUT).
  - L{FakeWatchControl}: an L{IWatchControl} whose C{stop}, C{pause},
    C{resume} and C{status} behave as a running watch's do: a pause with a
    duration ends by itself on the injected clock, and C{max_pause} bounds
    every pause, as C{--max-pause} does.
  - L{FakeWatch}: a real L{WatchService} probing a L{FakeProbe} on a
    L{MemoryReactorClock}, so a test can drive a watch through its retries
    to its exit in no time, with no socket, thread or syslog.

Each fake passes the same contract tests as the real thing: L{FakeProbe}
those of every protocol's probe against loopback servers, and
L{FakeWatchControl} those of L{WatchService} (C{tests/test_contracts.py});
L{FakeWatch} logs the same messages and exits with the same status as a
real C{clp_httpmon} process (C{tests/test_contracts_watch.py}).  README
"Embedding and testing" shows them in use.

Importing this module starts nothing and installs no reactor.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver
from zope.interface import implementer

from ismon.control.amp import IWatchControl
from ismon.core.catalogue import MessageId
from ismon.core.protocols import PROTOCOLS
from ismon.core.result import Phase, ProbeResult, timed_out
from ismon.core.timing import Timing
from ismon.probes.probe import IProbe
from ismon.watch.schedule import WatchState

if TYPE_CHECKING:
    from ismon.core.config import WatchConfig
    from ismon.watch.service import WatchService

__all__ = [
    "STALL",
    "Answer",
    "FakeProbe",
    "FakeWatch",
    "FakeWatchControl",
    "Stall",
    "Step",
    "answered",
    "refused",
]


# -- what a fake probe does -----------------------------------------------


@attrs.frozen
class Answer:
    """Give C{result} C{delay} seconds after the probe starts (None: the probe's delay)."""

    result: ProbeResult
    delay: float | None = None


@attrs.frozen
class Stall:
    """
    Hang at C{phase} until the timeout, then give what a real probe gives
    then: message 74 with ETIMEDOUT at that phase (README "What counts as a
    failure").  A listening socket that never answers stalls at C{WAIT}.
    """

    phase: Phase = Phase.WAIT


#: A server that accepts the connection and never answers.
STALL = Stall()

#: One probe's script: a result (after the probe's delay), an L{Answer}, or a L{Stall}.
Step = ProbeResult | Answer | Stall


def answered(reply: str = "", latency: float = 0.0) -> ProbeResult:
    """A healthy server's answer; C{latency} 0 means "the time the probe took"."""
    return ProbeResult(ok=True, latency=latency, reply=reply)


def refused(latency: float = 0.0) -> ProbeResult:
    """What a real probe gives when nothing listens: message 72 with ECONNREFUSED."""
    return ProbeResult.failure(
        MessageId.CONNECT_ERROR,
        Phase.CONNECT,
        number=errno.ECONNREFUSED,
        latency=latency,
        detail="Connection was refused by other side: 111: Connection refused.",
    )


@implementer(IProbe)
class FakeProbe:
    """
    An L{IProbe} that follows a script on C{clock}.

    Each call of L{probe} takes the next step of C{script} (an iterable of
    L{Step}s, or a function of the call's index, from 0); once an iterable
    script is spent, every call takes C{then}.  A step answers after its
    delay, on C{clock}; a delay of 0 answers at once.  Like the real
    probes it keeps its promise to answer within C{timeout}: a L{Stall},
    or an answer that would come later than that, gives the timeout result
    at C{timeout} instead.  A result whose latency is 0 gets the time the
    probe took, as the real probes' results do.

    @ivar script: the steps still to come (a deque; a test may add to it).
    @ivar then: the step once the script is spent (a test may change it).
    @ivar started: the clock's time at each call of L{probe}.
    @ivar results: every result given, in order.
    @ivar in_flight: probes started and not answered yet.
    """

    def __init__(
        self,
        clock: IReactorTime,
        script: Iterable[Step] | Callable[[int], Step] = (),
        *,
        then: Step | None = None,
        delay: float = 0.0,
        timeout: float = 10.0,
    ) -> None:
        self.clock = clock
        self._script_function = script if callable(script) else None
        self.script: deque[Step] = deque() if callable(script) else deque(script)
        self.then: Step = answered() if then is None else then
        self.delay = delay
        self.timeout = timeout
        self.started: list[float] = []
        self.results: list[ProbeResult] = []
        self.in_flight = 0

    def _next_step(self) -> Step:
        if self._script_function is not None:
            return self._script_function(len(self.started) - 1)
        return self.script.popleft() if self.script else self.then

    def _answer(self, step: Step) -> tuple[float, ProbeResult]:
        """When C{step} answers, and with what."""
        if isinstance(step, Stall):
            return self.timeout, timed_out(step.phase, self.timeout)
        if isinstance(step, Answer):
            delay = self.delay if step.delay is None else step.delay
            result = step.result
        else:
            delay, result = self.delay, step
        if delay > self.timeout:
            # The answer would come too late: the real probe waited for it.
            return self.timeout, timed_out(Phase.WAIT, self.timeout)
        if result.latency == 0:
            result = attrs.evolve(result, latency=delay)
        return delay, result

    def probe(self) -> Deferred[ProbeResult]:
        self.started.append(self.clock.seconds())
        delay, result = self._answer(self._next_step())
        self.in_flight += 1
        call: list[IDelayedCall] = []

        def cancel(_: Deferred[ProbeResult]) -> None:
            # Whoever cancels takes the CancelledError; no timer stays behind.
            if call and call[0].active():
                call[0].cancel()
                self.in_flight -= 1

        answer: Deferred[ProbeResult] = Deferred(cancel)

        def give() -> None:
            self.in_flight -= 1
            self.results.append(result)
            answer.callback(result)

        if delay <= 0:
            give()
        else:
            call.append(self.clock.callLater(delay, give))
        return answer


# -- a fake control target -------------------------------------------------


@implementer(IWatchControl)
class FakeWatchControl:
    """
    An L{IWatchControl} that behaves as a running L{WatchService} does:
    C{pause} returns False when already paused (or stopped), C{resume} False
    when not paused, C{stop} ends it on the next turn of C{clock} (once),
    and C{status} has the keys and state values of the real one.  A pause
    with a duration ends by itself on C{clock}, and C{max_pause} (seconds,
    as C{--max-pause}) shortens every longer pause and ends one without a
    duration.

    @ivar state: a L{WatchState} value: C{"watching"}, C{"paused"},
        C{"stopped"}, ...; a test may set it (C{"retrying"}, C{"failed"}).
    @ivar calls: the names of the methods called, in order.
    @ivar exit_code: 0 once stopped, else None.
    @ivar raises: while set, C{pause}, C{resume} and C{status} raise it
        (a L{ControlRefused}, say, or a bug's exception).
    @ivar extra_status: added to (or overriding) C{status}'s answer.
    """

    def __init__(
        self,
        clock: IReactorTime,
        *,
        watch_id: str = "fake",
        protocol: str = "http",
        target: str = "http://127.0.0.1:80/ HTTP/1.1",
        timing: Timing | None = None,
        on_exit: Callable[[int], None] | None = None,
        max_pause: float | None = None,
    ) -> None:
        self.clock = clock
        self.max_pause = max_pause
        self.watch_id = watch_id
        self.protocol = protocol
        self.target = target
        self.timing = timing or Timing()
        self._on_exit = on_exit
        self.state = WatchState.WATCHING.value
        self.calls: list[str] = []
        self.exit_code: int | None = None
        self.raises: BaseException | None = None
        self.extra_status: dict[str, object] = {}
        self._started_at = clock.seconds()
        self._started_wall = time.time()
        self._paused_at: float | None = None
        self._paused_until: float | None = None
        self._pause_reason = ""
        self._pause_ends: IDelayedCall | None = None
        self._stopping = False

    def _called(self, name: str) -> None:
        self.calls.append(name)
        if self.raises is not None:
            raise self.raises

    def stop(self) -> None:
        self.calls.append("stop")
        # As the watch does: the control client gets its answer first.
        self.clock.callLater(0, self._stopped)

    def _stopped(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.state = WatchState.STOPPED.value
        self.exit_code = 0
        if self._on_exit is not None:
            self._on_exit(0)

    def pause(self, duration: float | None = None, reason: str = "") -> bool:
        self._called("pause")
        if self.state == WatchState.PAUSED.value:
            self._pause_until(duration, reason)
            return False
        if self.state not in (
            WatchState.WATCHING.value,
            WatchState.RETRYING.value,
            WatchState.IDLE.value,
        ):
            return False
        self.state = WatchState.PAUSED.value
        self._paused_at = self.clock.seconds()
        self._pause_until(duration, reason)
        return True

    def _pause_until(self, duration: float | None, reason: str) -> None:
        # As the watch does: --max-pause bounds every pause, one without an
        # expiry included; a new pause replaces the running one's expiry.
        if self.max_pause is not None and (duration is None or self.max_pause < duration):
            duration = self.max_pause
        if self._pause_ends is not None and self._pause_ends.active():
            self._pause_ends.cancel()
        self._pause_ends = None
        self._paused_until = None if duration is None else self.clock.seconds() + duration
        self._pause_reason = reason
        if duration is not None:
            self._pause_ends = self.clock.callLater(duration, self._pause_ran_out)

    def _pause_ran_out(self) -> None:
        self._pause_ends = None
        if self.state == WatchState.PAUSED.value:
            self.state = WatchState.WATCHING.value
            self._paused_at = None
            self._paused_until = None
            self._pause_reason = ""

    def resume(self) -> bool:
        self._called("resume")
        if self.state != WatchState.PAUSED.value:
            return False
        self._pause_ran_out()
        if self._pause_ends is not None:
            self._pause_ends.cancel()
            self._pause_ends = None
        return True

    def status(self) -> dict[str, object]:
        self._called("status")
        now = self.clock.seconds()
        timing = self.timing
        return {
            "watch_id": self.watch_id,
            "protocol": self.protocol,
            "command": PROTOCOLS[self.protocol].command,
            "pid": os.getpid(),
            "target": self.target,
            "state": self.state,
            "paused_since": (
                None if self._paused_at is None else time.time() - (now - self._paused_at)
            ),
            "consecutive_failures": 0,
            "probes": 0,
            "failures": 0,
            "skipped_ticks": 0,
            "last_probe": None,
            "interval": timing.interval,
            "timeout": timing.timeout,
            "retries": timing.retries,
            "retry_interval": timing.retry_gap,
            "detection_bound": timing.detection_bound,
            "started": self._started_wall,
            "uptime": now - self._started_at,
            "paused_until": (
                None if self._paused_until is None else time.time() + (self._paused_until - now)
            ),
            "pause_reason": self._pause_reason or None,
            "failures_by_message": {},
            "http_status_code": None,
            "cert_not_after": None,
            **self.extra_status,
        }


# -- a whole watch on a fake clock -------------------------------------------


class FakeWatch:
    """
    A real L{WatchService} that probes a L{FakeProbe} on a
    L{MemoryReactorClock}: time moves only in L{advance} and
    L{run_until_exit}, the control socket is only recorded by the memory
    reactor, no watchdog thread runs, and the catalogue messages go to
    L{events} instead of the global log.  Its lock and pidfile go to a
    temporary state folder that L{close} removes.

        with FakeWatch([answered()], then=STALL) as watch:
            assert watch.run_until_exit(60) == 1
            assert watch.messages == [2, 99, 1, 74, 96, 74, 96, 74, 6]

    Its configuration is made by the protocol's own option parser
    (C{protocol}, a name of L{ismon.core.protocols.PROTOCOLS}), then given
    C{timing} and C{max_pause} (seconds, as C{--max-pause}).

    @ivar clock: the reactor the watch runs on.
    @ivar probe: the L{FakeProbe} it asks.
    @ivar service: the watch itself (an L{IWatchControl}: pause, status...).
    @ivar exits: the exit statuses it ended with (at most one).
    @ivar events: the log events of its catalogue messages.
    """

    def __init__(
        self,
        script: Iterable[Step] | Callable[[int], Step] = (),
        *,
        then: Step | None = None,
        delay: float = 0.0,
        timing: Timing | None = None,
        protocol: str = "http",
        watch_id: str = "fake",
        max_pause: float | None = None,
    ) -> None:
        # Imported here: the service pulls in the whole watch machinery,
        # which users of the probe and control fakes need not load.
        from twisted.logger import LogPublisher

        from ismon.watch.service import WatchService

        timing = timing or Timing(interval=10, retries=2, timeout=1, retry_interval=2)
        self.clock = MemoryReactorClock()
        self.probe = FakeProbe(self.clock, script, then=then, delay=delay, timeout=timing.timeout)
        self.exits: list[int] = []
        self.events: list[dict[str, Any]] = []
        self._folder = Path(tempfile.mkdtemp(prefix="ismon-fake-"))
        # Removed by close(), or at the latest when the watch is collected.
        self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._started = False
        config = attrs.evolve(
            _config(protocol, watch_id, timing, self._folder / "state"),
            max_pause=None if max_pause is None else int(max_pause),
        )
        self.service: WatchService = WatchService(
            config,
            self.clock,
            probe=self.probe,
            on_exit=self.exits.append,
            # No loop watchdog (it measures real time) and no systemd.
            health=[],
            # The messages go to this watch's own list, not the process's log.
            log_publisher=LogPublisher(cast(ILogObserver, self.events.append)),
        )

    @property
    def messages(self) -> list[int]:
        """The catalogue ids of the messages logged so far, in order."""
        return [e["ismon_message_id"] for e in self.events if "ismon_message_id" in e]

    @property
    def lines(self) -> list[str]:
        """The texts of the messages logged so far."""
        return [str(e["ismon_text"]) for e in self.events if "ismon_text" in e]

    @property
    def exit_code(self) -> int | None:
        return self.exits[0] if self.exits else None

    def start(self) -> None:
        """Start the watch (its first probe comes after the grace, at once by default)."""
        self._started = True
        self.service.startService()
        self.clock.advance(0)

    def advance(self, seconds: float) -> None:
        """
        Let C{seconds} pass, running each timer at its own time (so what a
        timer schedules is timed from when it ran, as on a real reactor).
        """
        end = self.clock.seconds() + seconds
        while True:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            soonest = min(due, default=end + 1)
            if soonest > end:
                break
            self.clock.advance(max(0.0, soonest - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))

    def run_until_exit(self, limit: float) -> int | None:
        """
        Let time pass until the watch ends or C{limit} seconds have passed;
        return its exit status (None: still running).
        """
        if not self._started:
            self.start()
        end = self.clock.seconds() + limit
        while not self.exits and self.clock.seconds() < end:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            self.advance(min(min(due, default=end), end) - self.clock.seconds())
        return self.exit_code

    def close(self) -> None:
        """End the watch if it still runs (as SIGTERM would) and remove its folder."""
        if self.service.running and self.service.exit_code is None:
            self.service.stopService()
            self.clock.advance(0)
        self._remove_folder()

    def __enter__(self) -> FakeWatch:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _config(protocol: str, watch_id: str, timing: Timing, state_dir: Path) -> WatchConfig:
    """
    The configuration of a watch of C{protocol}, made the way a command line
    makes it: by that protocol's option parser (L{ismon.cmdline.options}),
    for a server on 127.0.0.1 (with what the protocol must be given: its
    C{example_arguments}); then given C{timing}.
    """
    from ismon.cmdline.options import OPTIONS

    options = OPTIONS[protocol]()
    options.parseOptions(
        [watch_id, "-s", "127.0.0.1", *options.example_arguments, "--syslog-socket", "none"]
    )
    config = options.config
    assert config is not None
    request = attrs.evolve(config.request, timeout=timing.timeout)  # type: ignore[misc]
    return attrs.evolve(config, request=request, timing=timing, state_dir=state_dir)
