# -*- test-case-name: tests.test_service -*-
"""
L{WatchService}: one watch ID, wired together from its parts: its records
and control socket (L{ismon.watch.records}), the probe schedule
(L{ismon.watch.schedule}), the monitor's own health (L{ismon.watch.health}), where its
messages go (L{ismon.watch.log_routing}) and what C{ismon status} shows
(L{ismon.core.status}).  Its lifecycle is an explicit state machine:

    idle --start--> starting --listening--> watching
      \\               |                        |
       +---------------+------- end ------------+--> ending --closed--> ended

Every way of running a watch (clp_*, C{ismon http|smtp}, the twistd
plugins) runs this same service; the process around it (the clock, the
exit) is L{ismon.cmdline.process}.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from errno import ENOMEM
from typing import Protocol, TypeVar

from automat import TypeMachineBuilder
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger, LogLevel, LogPublisher, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from ismon.control.amp import IWatchControl
from ismon.control.request import pause_detail
from ismon.core.catalogue import MessageId, render, takes_detail
from ismon.core.config import WatchConfig
from ismon.core.exit_status import ExitStatus, exit_meaning
from ismon.core.protocols import PROTOCOLS
from ismon.core.requests import ProbeRequest
from ismon.core.resources import ThreadUnavailable
from ismon.core.result import ProbeResult
from ismon.core.status import WatchStatus, result_fields
from ismon.probes.probe import IProbe, ReactorType
from ismon.state.lock import AlreadyRunning
from ismon.watch.health import IMonitorHealth, LoopHealth, SystemdHealth, release_freed_memory
from ismon.watch.log_routing import LogRouting
from ismon.watch.notify import SystemdNotifier
from ismon.watch.records import WatchRecords
from ismon.watch.report import Reporter
from ismon.watch.schedule import Schedule, WatchState

__all__ = ["ProbeMaker", "WatchService"]

_T = TypeVar("_T")

#: Makes the probe of a watch: C{make_probe(reactor, protocol, request)}
#: (L{ismon.probes.table.make_probe}), at start, so that a probe that cannot
#: be made (a CA file gone since parsing) ends the watch with message 42.
ProbeMaker = Callable[[ReactorType, str, ProbeRequest], IProbe]


# -- the lifecycle ------------------------------------------------------------


class _Lifecycle(Protocol):
    """What happens to a watch, in the order it may happen."""

    def start(self) -> None:
        """The records are ours; the control socket is being opened."""

    def listening(self, port: IListeningPort) -> None:
        """The control socket is open."""

    def end(self, code: int, stop_reactor: bool) -> Deferred[None]:
        """Wind down and exit with C{code}; fires when wound down."""

    def stop(self, stop_reactor: bool) -> Deferred[None]:
        """A stop was asked for (control socket, SIGTERM, twistd)."""

    def closed(self) -> None:
        """The winding down is done."""


def _build_lifecycle() -> Callable[[WatchService], _Lifecycle]:
    builder = TypeMachineBuilder(_Lifecycle, WatchService)
    idle = builder.state("idle")
    starting = builder.state("starting")
    watching = builder.state("watching")
    ending = builder.state("ending")
    ended = builder.state("ended")

    idle.upon(_Lifecycle.start).to(starting).returns(None)

    @starting.upon(_Lifecycle.listening).to(watching)
    def begin_watching(lifecycle: _Lifecycle, service: WatchService, port: IListeningPort) -> None:
        service._begin_watching()

    for late in (ending, ended):
        # The watch ended while the socket was being opened: close it again.
        @late.upon(_Lifecycle.listening).loop()
        def close_late(lifecycle: _Lifecycle, service: WatchService, port: IListeningPort) -> None:
            port.stopListening()

    for before in (idle, starting):

        @before.upon(_Lifecycle.end).to(ending)
        def end_unstarted(
            lifecycle: _Lifecycle, service: WatchService, code: int, stop_reactor: bool
        ) -> Deferred[None]:
            return service._wind_down(code, stop_reactor, watched=False)

        @before.upon(_Lifecycle.stop).to(ending)
        def stop_unstarted(
            lifecycle: _Lifecycle, service: WatchService, stop_reactor: bool
        ) -> Deferred[None]:
            service.reporter.emit(MessageId.STOPPING)
            return service._wind_down(ExitStatus.STOPPED, stop_reactor, watched=False)

    @watching.upon(_Lifecycle.end).to(ending)
    def end_watching(
        lifecycle: _Lifecycle, service: WatchService, code: int, stop_reactor: bool
    ) -> Deferred[None]:
        return service._wind_down(code, stop_reactor, watched=True)

    @watching.upon(_Lifecycle.stop).to(ending)
    def stop_watching(
        lifecycle: _Lifecycle, service: WatchService, stop_reactor: bool
    ) -> Deferred[None]:
        service.reporter.emit(MessageId.STOPPING)
        return service._wind_down(ExitStatus.STOPPED, stop_reactor, watched=True)

    for done in (ending, ended):
        # Winding down already: the first verdict stands.
        @done.upon(_Lifecycle.end).loop()
        def end_again(
            lifecycle: _Lifecycle, service: WatchService, code: int, stop_reactor: bool
        ) -> Deferred[None]:
            return succeed(None)

        @done.upon(_Lifecycle.stop).loop()
        def stop_again(
            lifecycle: _Lifecycle, service: WatchService, stop_reactor: bool
        ) -> Deferred[None]:
            # Let a shutdown wait for the winding down, so the records go
            # and the exit status stands.
            return service._closing

    ending.upon(_Lifecycle.closed).to(ended).returns(None)
    return builder.build()


# -- the service --------------------------------------------------------------


@implementer(IWatchControl)
class WatchService(Service):
    """
    One watch: probes on schedule and ends with an L{ExitStatus} given to
    C{on_exit} — on request (0), when the server failed (1), or when it
    cannot run (3, 4).

    @param probe: the probe to ask; or
    @param make_probe: what makes it, when the watch starts (L{ProbeMaker}).
    @param health: the parts of the monitor's own health
        (L{ismon.watch.health}); by default the loop watchdog and systemd.
    @param log_publisher: where the watch's messages are published and its
        syslog and JSON observers listen; by default the global one.
    """

    def __init__(
        self,
        config: WatchConfig,
        reactor: ReactorType,
        *,
        probe: IProbe | None = None,
        make_probe: ProbeMaker | None = None,
        on_exit: Callable[[int], None] | None = None,
        health: Sequence[IMonitorHealth] | None = None,
        log_publisher: LogPublisher = globalLogPublisher,
    ) -> None:
        self.config = config
        self.name = config.watch_id
        self._reactor = reactor
        if probe is None and make_probe is None:
            raise TypeError("a watch needs its probe, or make_probe to make it")
        self._probe = probe
        self._make_probe = make_probe
        self._on_exit = on_exit
        self.reporter = Reporter(
            config.command,
            config.watch_id,
            Logger(namespace=config.command, observer=log_publisher),
            protocol=PROTOCOLS[config.protocol].label,
        )
        self._log = Logger(namespace=__name__, observer=log_publisher)
        self._routing = LogRouting(config, log_publisher, self._syslog_unavailable)
        self.health: Sequence[IMonitorHealth] = (
            health
            if health is not None
            else (LoopHealth(reactor, self._stalled), SystemdHealth(reactor, SystemdNotifier()))
        )
        self.exit_code: int | None = None
        self._schedule: Schedule | None = None
        self._records: WatchRecords | None = None
        self._closing: Deferred[None] = succeed(None)
        self._started_at: float | None = None
        self._started_wall: float | None = None
        # Probe outcomes: a failure since the last success (message 95 on
        # the next success), the last certificate warning, the heap trim.
        self._recovering = False
        self._cert_warned_at: float | None = None
        self._trimmed = False
        # The text of the last failure message (a probe's, 42, 97), for
        # the record of the last exit.
        self._last_failure: str | None = None
        # The monitor's own failure (message 42: socket 24, thread 11) among
        # the consecutive failed probes of this run, if any: a run that
        # ends with one in it says the monitor failed (exit 4), not the
        # server (docs/failure-rules.md, "The monitor's own failures").
        self._own_failure: ProbeResult | None = None
        # What the record of the last exit says the exit meant, when the
        # exit code's own meaning is not enough.
        self._exit_meaning: str | None = None
        # Whether --max-pause set the running pause's expiry (message 101).
        self._pause_limited = False
        # For the metrics (docs/metrics.md): failed probes by message id,
        # the last certificate's notAfter.
        self._failures_by_message: dict[int, int] = {}
        self._cert_not_after: float | None = None
        self._lifecycle = _LIFECYCLE(self)

    # -- lifecycle ------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._routing.start()
        config = self.config
        try:
            self._records = WatchRecords.take(config.state_dir, config.watch_id)
        except AlreadyRunning as e:
            self.reporter.emit(MessageId.ID_IN_USE, LogLevel.error, fields={"pid": e.pid})
            self._end(ExitStatus.ID_IN_USE)
            return
        except OSError as e:
            self._last_failure = self.reporter.emit(
                MessageId.SYSTEM_ERROR,
                LogLevel.error,
                function="state",
                number=e.errno or 0,
                detail=str(e),
            )
            self._end(ExitStatus.SYSTEM_ERROR)
            return
        self.reporter.emit(MessageId.WATCHING)
        try:
            probe = self._probe
            if probe is None:
                assert self._make_probe is not None
                probe = self._make_probe(self._reactor, config.protocol, config.request)
        except Exception as e:  # e.g. a CA file that vanished since parsing
            self._last_failure = self.reporter.emit(
                MessageId.SYSTEM_ERROR, LogLevel.error, function="probe", number=0, detail=str(e)
            )
            self._end(ExitStatus.SYSTEM_ERROR)
            return
        self._schedule = Schedule(
            self._reactor,
            probe,
            config.timing,
            self._probe_done,
            self._server_failed,
            self._pause_ended,
        )
        self.reporter.emit(
            MessageId.SCHEDULE,
            detail=f"{config.target}; {config.timing.describe()}",
            fields={"detection_bound": config.timing.detection_bound},
        )
        tls = config.request.tls
        if tls is not None and tls.insecure:
            self.reporter.emit(MessageId.TLS_NOT_VERIFIED, LogLevel.warn)
        self._lifecycle.start()
        self._records.listen(self._reactor, self).addCallbacks(self._listening, self._listen_failed)

    def _listening(self, port: IListeningPort) -> None:
        """
        The control socket is open.  The health parts start the threads and
        timers the watch relies on (the loop watchdog, the last resort)
        before the watch is declared started: one that cannot start ends
        the watch at once, with message 42 and exit 4 -- no blind watch.
        """
        if self.exit_code is None:
            try:
                for part in self.health:
                    part.watching(self.config.timing)
            except (ThreadUnavailable, MemoryError) as e:
                if isinstance(e, ThreadUnavailable):
                    function, number = e.function, e.number
                else:
                    function, number = "memory", ENOMEM
                self._monitor_failed(function, number, str(e) or "out of memory")
                return
        self._lifecycle.listening(port)

    def _begin_watching(self) -> None:
        assert self._schedule is not None
        self._started_at = self._reactor.seconds()
        self._started_wall = time.time()
        self._schedule.start()
        self.reporter.emit(MessageId.STARTED)

    def _monitor_failed(self, function: str, number: int, why: str) -> None:
        """The monitor itself cannot go on: message 42, exit 4."""
        self._last_failure = self.reporter.emit(
            MessageId.SYSTEM_ERROR, LogLevel.error, function=function, number=number, detail=why
        )
        self._exit_meaning = _own_failure_meaning(function, number, why)
        self._end(ExitStatus.SYSTEM_ERROR)

    def _listen_failed(self, reason: Failure) -> None:
        value = reason.value
        self._last_failure = self.reporter.emit(
            MessageId.SYSTEM_ERROR,
            LogLevel.error,
            function="listen",
            number=getattr(value, "errno", None) or 0,
            detail=str(value),
        )
        self._end(ExitStatus.SYSTEM_ERROR)

    def stopService(self) -> Deferred[None] | None:
        """The process is going down (SIGTERM, SIGINT, twistd shutdown)."""
        super().stopService()
        return self._lifecycle.stop(False)

    def _end(self, code: int, *, stop_reactor: bool = True) -> Deferred[None]:
        """Wind down once, then hand the exit status on; fires when done."""
        return self._lifecycle.end(int(code), stop_reactor)

    def _wind_down(self, code: int, stop_reactor: bool, *, watched: bool) -> Deferred[None]:
        """
        Stop probing, tell the health parts, close the control socket,
        release the records, then hand the exit status on.
        """
        self.exit_code = int(code)
        # From here on the verdict stands and the process must end: each
        # step is on its own, so that none that fails (no memory, no
        # thread, a folder gone) keeps the next from running.  The health
        # parts go first: the loop health arms the last-resort exit.
        for part in self.health:
            _best_effort(part.ending, self.exit_code)
        if self._schedule is not None:
            _best_effort(self._schedule.stop)
        records, self._records = self._records, None
        if records is not None:
            # Before the last message, which a full pipe or a hung log file
            # can block (the last resort then ends the process), and before
            # the lock goes (README "Records").
            _best_effort(self._write_record, records)
        if watched:
            _best_effort(
                self.reporter.emit, MessageId.TERMINATING, fields={"exit_code": self.exit_code}
            )
        closing: Deferred[None] = succeed(None)
        if records is not None:
            closing = _best_effort(records.close) or succeed(None)

        def finish(_: object) -> None:
            # Whatever goes wrong while tidying up, the process must still
            # end: a watch that stops probing but lives on hides the failure.
            try:
                self._routing.stop()
            finally:
                self._lifecycle.closed()
                if self._on_exit is not None and stop_reactor:
                    self._on_exit(int(code))

        closing.addBoth(finish)
        self._closing = closing
        return closing

    # -- probe outcomes ---------------------------------------------------

    def _write_record(self, records: WatchRecords) -> None:
        why = records.write_last_exit(self.last_exit(int(self.exit_code or 0), self._exit_meaning))
        if why is not None:
            # The watch ends as it would have; what is lost is said here, and
            # `ismon status` says the record is missing (README "Records").
            self.reporter.emit(
                MessageId.RECORD_NOT_WRITTEN,
                LogLevel.warn,
                detail=f"last exit {self.exit_code}: {why}",
            )

    def _check_records(self) -> None:
        """Once a probe: make the records again if their folder was deleted."""
        records = self._records
        if records is None:
            return
        what = records.check_folder(self._reactor, self)
        if what is not None:
            self.reporter.emit(MessageId.RECORDS_GONE, LogLevel.warn, detail=what)

    def _syslog_unavailable(self, why: str) -> None:
        # Logged once; the line still reaches the twistd/stdout log.
        self.reporter.emit(MessageId.SYSLOG_UNAVAILABLE, LogLevel.warn, detail=why)

    def _probe_done(self, result: ProbeResult, failures: int) -> None:
        if not self._trimmed:
            # After the first probe: start-up is over and the probe path has
            # run once, and the first probe was not delayed for it.
            self._trimmed = True
            release_freed_memory()
        for part in self.health:
            part.probed(result, failures)
        _best_effort(self._check_records)
        if result.cert_not_after is not None:
            self._cert_not_after = result.cert_not_after
        if result.message is not None:
            message = int(result.message)
            self._failures_by_message[message] = self._failures_by_message.get(message, 0) + 1
        fields = result_fields(result)
        del fields["number"]  # passed as the message's own number
        timing = self.config.timing
        if result.ok:
            if self._recovering:
                self.reporter.emit(MessageId.RECOVERED, fields=fields)
            self._recovering = False
            self._log.debug("probe {detail}", detail=result.describe())
            self._check_certificate(result)
            return
        assert result.message is not None
        self._recovering = True
        if failures <= 1:
            self._own_failure = None  # a new run of failures
        if result.monitor_failed:
            self._own_failure = result
        final = failures > timing.retries
        self._last_failure = self._emit_failure(result, final, fields)
        if not final:
            self.reporter.emit(
                MessageId.PROBE_FAILED_RETRYING,
                LogLevel.warn,
                detail=f"failure {failures} of {timing.retries + 1}: {result.describe()}",
                fields=fields,
            )

    def _emit_failure(
        self, result: ProbeResult, final: bool, fields: dict[str, object] | None = None
    ) -> str:
        assert result.message is not None
        # TLS texts (90, 91) name the reason, 42 says it on a line of its
        # own; the others carry it in 96.
        shown = takes_detail(result.message) or result.monitor_failed
        return self.reporter.emit(
            result.message,
            LogLevel.error if final else LogLevel.warn,
            number=result.number,
            function=result.function or "probe",  # only message 42 names a function
            detail=result.detail if shown else "",
            fields=fields,
        )

    def _check_certificate(self, result: ProbeResult) -> None:
        days = result.cert_days_left
        if days is None or days >= self.config.cert_warn_days:
            return
        now = self._reactor.seconds()
        if self._cert_warned_at is not None and now - self._cert_warned_at < 86400:
            return
        self._cert_warned_at = now
        self.reporter.emit(MessageId.CERT_EXPIRES_SOON, LogLevel.warn, number=days)

    def _server_failed(self, result: ProbeResult) -> None:
        """
        The retries are used up (or the schedule cannot go on).  The server
        failed (exit 1) only when every failed probe of the run was the
        server's; with the monitor's own failure among them the watch could
        not see the server as often as the retries ask, and says that the
        monitor failed (exit 4): restart the watch, do not fail the service
        over (docs/failure-rules.md, "The monitor's own failures").
        """
        if result.monitor_failed and result is not self._own_failure:
            # Not a probe's result (no timer for the next one): not logged yet.
            self._last_failure = self._emit_failure(result, True)
            self._own_failure = result
        own = self._own_failure
        if own is None:
            self._end(ExitStatus.SERVER_FAILED)
            return
        self._exit_meaning = _own_failure_meaning(
            own.function or "probe", own.number or 0, own.detail
        )
        self._end(ExitStatus.SYSTEM_ERROR)

    def _stalled(self, seconds: float) -> None:
        # The loop watchdog's last words, from its thread while the reactor
        # is stuck: written directly, without the (reactor-thread) logging.
        text = render(
            MessageId.EVENT_LOOP_STALLED,
            command=self.config.command,
            watch_id=self.config.watch_id,
            number=int(seconds),
        )
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except OSError:
            pass
        self._routing.to_syslog(text, 3)
        # Best effort from this thread: the watchdog exits with 4 right
        # after, the lock still held, so the record is written first.
        records = self._records
        if records is not None:
            self._last_failure = text
            try:
                record = self.last_exit(ExitStatus.SYSTEM_ERROR, "the event loop stalled")
            except Exception:
                return
            records.write_last_exit(record)

    def last_exit(self, code: int, meaning: str | None = None) -> dict[str, object]:
        """
        The record of this watch's exit with C{code} (README "Records"):
        nothing of the request but the target text, so no secret.
        """
        snapshot = self.snapshot()
        return {
            "watch_id": snapshot.watch_id,
            "command": snapshot.command,
            "protocol": snapshot.protocol,
            "pid": snapshot.pid,
            "target": snapshot.target,
            "exit_code": int(code),
            "meaning": meaning or exit_meaning(int(code)),
            "time": time.time(),
            "last_failure": self._last_failure,
            "probes": snapshot.probes,
            "failures": snapshot.failures,
            "started": snapshot.started,
            "uptime": snapshot.uptime,
        }

    # -- IWatchControl ----------------------------------------------------

    def stop(self) -> None:
        # Answer the control client first, then go.
        self._reactor.callLater(0, self._lifecycle.stop, True)

    def pause(self, duration: float | None = None, reason: str = "") -> bool:
        # README "Maintenance pauses": --max-pause bounds every pause, the
        # 2004-style one without an expiry included.
        limit = self.config.max_pause
        limited = limit is not None and (duration is None or limit < duration)
        if limited:
            duration = limit
        self._pause_limited = limited
        schedule = self._schedule
        paused = schedule is not None and schedule.state is WatchState.PAUSED
        changed = schedule is not None and schedule.pause(duration, reason)
        self.reporter.emit(MessageId.PAUSED, fields={"changed": changed})
        if (changed or paused) and (duration is not None or reason):
            self.reporter.emit(
                MessageId.PAUSED_UNTIL,
                detail=pause_detail(
                    None if duration is None else time.time() + duration,
                    reason,
                    f"--max-pause {limit} s" if limited else "",
                ),
                fields={"pause_for": duration, "pause_reason": reason, "max_pause": limited},
            )
        return changed

    def _pause_ended(self) -> None:
        """A pause ran out (its expiry, or --max-pause); probing has resumed."""
        self.reporter.emit(MessageId.CONTINUED, fields={"changed": True})
        if self._pause_limited:
            self.reporter.emit(
                MessageId.PAUSE_ENDED,
                LogLevel.warn,
                detail=f"--max-pause {self.config.max_pause:g} s reached",
                fields={"max_pause": self.config.max_pause},
            )
        else:
            self.reporter.emit(MessageId.PAUSE_ENDED, detail="the pause's expiry was reached")

    def resume(self) -> bool:
        changed = self._schedule is not None and self._schedule.resume()
        self.reporter.emit(MessageId.CONTINUED, fields={"changed": changed})
        return changed

    def status(self) -> dict[str, object]:
        return self.snapshot().as_dict()

    def snapshot(self) -> WatchStatus:
        """The watch now, as C{ismon status} shows it."""
        schedule = self._schedule
        timing = self.config.timing
        now = self._reactor.seconds()
        wall = time.time()
        last_time = None
        if schedule is not None and schedule.last_started is not None:
            last_time = wall - (now - schedule.last_started)
        paused_since = paused_until = None
        if schedule is not None and schedule.paused_since is not None:
            paused_since = wall - (now - schedule.paused_since)
        if schedule is not None and schedule.paused_until is not None:
            paused_until = wall + (schedule.paused_until - now)
        return WatchStatus(
            watch_id=self.config.watch_id,
            protocol=self.config.protocol,
            command=self.config.command,
            pid=os.getpid(),
            target=self.config.target,
            state=schedule.state.value if schedule else WatchState.IDLE.value,
            paused_since=paused_since,
            consecutive_failures=schedule.consecutive_failures if schedule else 0,
            probes=schedule.probes if schedule else 0,
            failures=schedule.failures if schedule else 0,
            skipped_ticks=schedule.skipped_ticks if schedule else 0,
            last_probe=schedule.last_result if schedule else None,
            last_probe_time=last_time,
            interval=timing.interval,
            timeout=timing.timeout,
            retries=timing.retries,
            retry_interval=timing.retry_gap,
            detection_bound=timing.detection_bound,
            started=self._started_wall,
            uptime=(now - self._started_at) if self._started_at is not None else 0.0,
            paused_until=paused_until,
            pause_reason=(schedule.pause_reason or None) if schedule is not None else None,
            failures_by_message=dict(self._failures_by_message),
            # Read off the last probe's reply when asked, not at every probe.
            http_status_code=(
                schedule.last_result.http_status()
                if schedule is not None
                and schedule.last_result is not None
                and self.config.protocol == "http"
                else None
            ),
            cert_not_after=self._cert_not_after,
        )


def _own_failure_meaning(function: str, number: int, why: str) -> str:
    """The record's meaning of an exit 4 for the monitor's own failure."""
    return f"the monitor itself failed ({function} {number}: {why}), not the server"


def _best_effort(step: Callable[..., _T], *args: object, **kwargs: object) -> _T | None:
    """
    Run one step of the winding down; whatever it raises (no memory, a
    thread that would not start) is dropped, so the next step still runs
    and the process still ends with the verdict already reached.
    """
    try:
        return step(*args, **kwargs)
    except Exception:
        return None


_LIFECYCLE = _build_lifecycle()
