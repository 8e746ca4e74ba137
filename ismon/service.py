# -*- test-case-name: tests.test_service -*-
"""
L{WatchService}: one watch ID, wired together — records in the state
folder, the probe schedule, the AMP control socket, and the messages.

Every way of running a watch (clp_*, C{ismon http|smtp}, the twistd plugins)
runs this same service.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface import implementer

from ismon.catalogue import MessageId, render, takes_detail
from ismon.config import WatchConfig
from ismon.control import IWatchControl, listen_control
from ismon.exit_status import ExitStatus
from ismon.notify import SystemdNotifier
from ismon.probe import IProbe, ReactorType
from ismon.report import JsonLinesObserver, Reporter, SyslogObserver
from ismon.result import ProbeResult
from ismon.schedule import Schedule, WatchState
from ismon.state import AlreadyRunning, StateDir, WatchLock, default_state_dir

__all__ = ["ExitStatus", "WatchService", "make_probe", "make_twistd_service", "use_monotonic_clock"]

_log = Logger()

# Seconds a finished watch may take to shut down before it exits regardless.
_EXIT_DEADLINE = 15.0


def use_monotonic_clock(reactor: Any) -> None:
    """
    Make the reactor's timers run on the monotonic clock, so that stepping
    the wall clock neither delays nor hastens a probe.  Twisted has no
    monotonic IReactorTime (ticket #2424), so C{seconds} is replaced; calls
    queued before the switch are re-based onto the monotonic clock.
    """
    if getattr(reactor, "seconds", None) is time.monotonic:
        return
    # Calls queued before the switch (twistd queues a few of its own) hold
    # wall-clock times; shifting them all by one offset keeps the heap valid.
    offset = time.monotonic() - time.time()
    for call in reactor.getDelayedCalls():
        call.time += offset
        call.seconds = time.monotonic
    reactor.seconds = time.monotonic


def _release_freed_memory() -> None:
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


def make_probe(reactor: ReactorType, config: WatchConfig) -> IProbe:
    if config.protocol == "http":
        from ismon.http import HttpProbe

        return HttpProbe(reactor, config.request)  # type: ignore[arg-type]
    from ismon.smtp import SmtpProbe

    return SmtpProbe(reactor, config.request)  # type: ignore[arg-type]


def loop_watchdog_limit(detection_bound: float) -> float:
    """Seconds within which a stuck event loop ends the process (README "Timing")."""
    return max(30.0, 2 * detection_bound)


class _LoopWatchdog:
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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ismon-watchdog", daemon=True)

    def beat(self) -> None:
        self._beat = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if time.monotonic() - self._beat <= self.threshold:
                continue
            if self._stop.wait(self.confirm):
                return
            stalled = time.monotonic() - self._beat
            if stalled > self.threshold:
                self._last_words(stalled)
                self._exit_process(ExitStatus.SYSTEM_ERROR)
                return


@implementer(IWatchControl)
class WatchService(Service):
    """
    One watch: probes on schedule and ends with an L{ExitStatus} given to
    C{on_exit} — on request (0), when the server failed (1), or when it
    cannot run (3, 4).
    """

    def __init__(
        self,
        config: WatchConfig,
        reactor: ReactorType,
        *,
        probe: IProbe | None = None,
        on_exit: Callable[[int], None] | None = None,
        notifier: SystemdNotifier | None = None,
        loop_watchdog: bool = True,
    ) -> None:
        self.config = config
        self.name = config.watch_id
        self._reactor = reactor
        self._probe = probe
        self._on_exit = on_exit
        # Off only in tests that drive time with a fake clock: the watchdog
        # thread measures real time.
        self._loop_watchdog = loop_watchdog
        self.reporter = Reporter(config.command, config.watch_id)
        self.exit_code: int | None = None
        self._schedule: Schedule | None = None
        self._lock: WatchLock | None = None
        self._port: IListeningPort | None = None
        self._observers: list[Any] = []
        self._heartbeat: LoopingCall | None = None
        self._watchdog: _LoopWatchdog | None = None
        self._syslog: SyslogObserver | None = None
        self._started_at: float | None = None
        self._started_wall: float | None = None
        self._watching = False
        self._cert_warned_at: float | None = None
        self._ending = False
        self._closing: Deferred[None] | None = None
        self._recovering = False
        self._notifier = notifier if notifier is not None else SystemdNotifier()
        self._ready = False
        self._systemd_watchdog: LoopingCall | None = None
        self._trimmed = False

    # -- lifecycle ------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._start_observers()
        config = self.config
        try:
            state = StateDir.open(config.state_dir or default_state_dir())
            self._lock = WatchLock.acquire(state, config.watch_id)
        except AlreadyRunning as e:
            self.reporter.emit(MessageId.ID_IN_USE, LogLevel.error, fields={"pid": e.pid})
            self._end(ExitStatus.ID_IN_USE)
            return
        except OSError as e:
            self.reporter.emit(
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
            probe = self._probe or make_probe(self._reactor, config)
        except Exception as e:  # e.g. a CA file that vanished since parsing
            self.reporter.emit(
                MessageId.SYSTEM_ERROR, LogLevel.error, function="probe", number=0, detail=str(e)
            )
            self._end(ExitStatus.SYSTEM_ERROR)
            return
        self._schedule = Schedule(
            self._reactor, probe, config.timing, self._probe_done, self._server_failed
        )
        tls = getattr(config.request, "tls", None)
        self.reporter.emit(
            MessageId.SCHEDULE,
            detail=f"{self._target()}; {config.timing.describe()}",
            fields={"detection_bound": config.timing.detection_bound},
        )
        if tls is not None and tls.insecure:
            self.reporter.emit(MessageId.TLS_NOT_VERIFIED, LogLevel.warn)
        listening = listen_control(self._reactor, state.socket_path(config.watch_id), self)
        listening.addCallbacks(self._listening, self._listen_failed)

    def _target(self) -> str:
        return self.config.target

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        if self._ending:
            port.stopListening()
            return
        assert self._schedule is not None
        self._started_at = self._reactor.seconds()
        self._started_wall = time.time()
        self._watching = True
        self._schedule.start()
        self.reporter.emit(MessageId.STARTED)
        self._start_watchdog()

    def _listen_failed(self, reason: Failure) -> None:
        value = reason.value
        self.reporter.emit(
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
        if self._ending:
            # Already winding down (the server failed): let shutdown wait for
            # it, so the records go and the exit status stands.
            return self._closing
        self.reporter.emit(MessageId.STOPPING)
        return self._end(ExitStatus.STOPPED, stop_reactor=False)

    def _end(self, code: int, *, stop_reactor: bool = True) -> Deferred[None]:
        """
        Wind down once: stop probing, close the control socket, release the
        records, then hand the exit status on.  The Deferred fires when done.
        """
        if self._ending:
            return succeed(None)
        self._ending = True
        self.exit_code = int(code)
        if self._schedule is not None:
            self._schedule.stop()
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._loop_watchdog:
            # Last resort: should the shutdown itself hang (a stuck thread,
            # a hung flush), leave anyway with the verdict already reached.
            last_resort = threading.Timer(_EXIT_DEADLINE, os._exit, [int(code)])
            last_resort.daemon = True
            last_resort.start()
        if self._systemd_watchdog is not None and self._systemd_watchdog.running:
            self._systemd_watchdog.stop()
        self._notifier.stopping(f"exit status {int(code)}")
        if self._watching:
            self.reporter.emit(MessageId.TERMINATING, fields={"exit_code": self.exit_code})
        # Twisted removes the socket file a turn after stopListening; release
        # the lock (which removes our records) only then, or a new watch of
        # this ID could lose its fresh socket to our late cleanup.
        closing: Deferred[Any] = (
            maybeDeferred(self._port.stopListening) if self._port is not None else succeed(None)
        )
        lock, self._lock = self._lock, None

        def finish(_: object) -> None:
            # Whatever goes wrong while tidying up, the process must still
            # end: a watch that stops probing but lives on hides the failure.
            try:
                if lock is not None:
                    lock.release()
            except Exception:
                _log.failure("Could not remove the records of {watch}", watch=self.name)
            try:
                self._stop_observers()
            finally:
                if self._on_exit is not None and stop_reactor:
                    self._on_exit(int(code))

        closing.addBoth(finish)
        self._closing = closing
        return closing

    # -- messages -------------------------------------------------------

    def _start_observers(self) -> None:
        config = self.config
        if config.syslog_socket:
            self._syslog = SyslogObserver(
                config.syslog_socket,
                config.command,
                on_unavailable=self._syslog_unavailable,
                debug=config.debug,
            )
            self._observers.append(self._syslog)
        if config.json_log:
            try:
                stream = open(config.json_log, "a", encoding="utf-8")
            except OSError as e:
                _log.error("cannot open --json-log {path}: {error}", path=config.json_log, error=e)
            else:
                self._observers.append(JsonLinesObserver(stream, debug=config.debug))
        for observer in self._observers:
            globalLogPublisher.addObserver(observer)

    def _stop_observers(self) -> None:
        for observer in self._observers:
            globalLogPublisher.removeObserver(observer)
        if self._syslog is not None:
            self._syslog.close()
        self._observers = []

    def _syslog_unavailable(self, why: str) -> None:
        # Logged once; the line still reaches the twistd/stdout log.
        self.reporter.emit(MessageId.SYSLOG_UNAVAILABLE, LogLevel.warn, detail=why)

    def _probe_done(self, result: ProbeResult, failures: int) -> None:
        if not self._trimmed:
            # After the first probe: start-up is over and the probe path has
            # run once, and the first probe was not delayed for it.
            self._trimmed = True
            _release_freed_memory()
        self._tell_systemd(result, failures)
        fields = _result_fields(result)
        del fields["number"]  # passed as the message's own number
        timing = self.config.timing
        if result.ok:
            if self._recovering:
                self.reporter.emit(MessageId.RECOVERED, fields=fields)
            self._recovering = False
            _log.debug("probe {detail}", detail=result.describe())
            self._check_certificate(result)
            return
        assert result.message is not None
        self._recovering = True
        final = failures > timing.retries
        self.reporter.emit(
            result.message,
            LogLevel.error if final else LogLevel.warn,
            number=result.number,
            function="probe",  # only message 42 names a function
            # TLS texts (90, 91) name the reason; the others carry it in 96.
            detail=result.detail if takes_detail(result.message) else "",
            fields=fields,
        )
        if not final:
            self.reporter.emit(
                MessageId.PROBE_FAILED_RETRYING,
                LogLevel.warn,
                detail=f"failure {failures} of {timing.retries + 1}: {result.describe()}",
                fields=fields,
            )

    def _tell_systemd(self, result: ProbeResult, failures: int) -> None:
        if not self._notifier.enabled:
            return
        text = f"last probe {result.describe()}"
        if failures:
            text += f"; {failures} consecutive failure(s) of {self.config.timing.retries + 1}"
        if self._ready:
            self._notifier.status(text)
        else:
            # READY only once the watch has really probed: `systemctl start`
            # then returns to a watch that works.
            self._ready = True
            self._notifier.ready(text)

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
        self._end(ExitStatus.SERVER_FAILED)

    # -- the monitor's own health ----------------------------------------

    def _start_watchdog(self) -> None:
        if self._loop_watchdog:
            limit = loop_watchdog_limit(self.config.timing.detection_bound)
            self._watchdog = _LoopWatchdog(limit, self._stalled)
            self._heartbeat = LoopingCall(self._watchdog.beat)
            self._heartbeat.clock = self._reactor
            self._heartbeat.start(self._watchdog.period, now=True)
            self._watchdog.start()
        ping = self._notifier.watchdog_interval()
        if ping is not None:
            # Pinged from the reactor, so the pings stop when the loop stops.
            self._systemd_watchdog = LoopingCall(self._notifier.watchdog_ping)
            self._systemd_watchdog.clock = self._reactor
            self._systemd_watchdog.start(ping / 2, now=True)
        grace = self.config.timing.grace
        if grace and self._notifier.enabled:
            self._notifier.extend_timeout(grace + self.config.timing.timeout + 5)

    def _stalled(self, seconds: float) -> None:
        # Runs in the watchdog thread while the reactor is stuck: write
        # directly, without the (reactor-thread) logging machinery.
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
        if self._syslog is not None:
            self._syslog.send(text, 3)

    # -- IWatchControl ----------------------------------------------------

    def stop(self) -> None:
        # Answer the control client first, then go.
        self._reactor.callLater(0, self._stop_requested)

    def _stop_requested(self) -> None:
        if self._ending:
            return
        self.reporter.emit(MessageId.STOPPING)
        self._end(ExitStatus.STOPPED)

    def pause(self) -> bool:
        changed = self._schedule is not None and self._schedule.pause()
        self.reporter.emit(MessageId.PAUSED, fields={"changed": changed})
        return changed

    def resume(self) -> bool:
        changed = self._schedule is not None and self._schedule.resume()
        self.reporter.emit(MessageId.CONTINUED, fields={"changed": changed})
        return changed

    def status(self) -> dict[str, object]:
        schedule = self._schedule
        timing = self.config.timing
        now = self._reactor.seconds()
        last = schedule.last_result if schedule else None
        last_probe: dict[str, object] | None = None
        if schedule is not None and last is not None and schedule.last_started is not None:
            last_probe = {
                "time": time.time() - (now - schedule.last_started),
                **_result_fields(last),
                "summary": last.describe(),
            }
        return {
            "watch_id": self.config.watch_id,
            "protocol": self.config.protocol,
            "command": self.config.command,
            "pid": os.getpid(),
            "target": self._target(),
            "state": schedule.state.value if schedule else WatchState.IDLE.value,
            "paused_since": (
                time.time() - (now - schedule.paused_since)
                if schedule is not None and schedule.paused_since is not None
                else None
            ),
            "consecutive_failures": schedule.consecutive_failures if schedule else 0,
            "probes": schedule.probes if schedule else 0,
            "failures": schedule.failures if schedule else 0,
            "skipped_ticks": schedule.skipped_ticks if schedule else 0,
            "last_probe": last_probe,
            "interval": timing.interval,
            "timeout": timing.timeout,
            "retries": timing.retries,
            "retry_interval": timing.retry_gap,
            "detection_bound": timing.detection_bound,
            "started": self._started_wall,
            "uptime": (now - self._started_at) if self._started_at is not None else 0.0,
        }


def _result_fields(result: ProbeResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "message_id": int(result.message) if result.message is not None else None,
        "number": result.number,
        "phase": result.phase.value if result.phase is not None else None,
        "latency": round(result.latency, 6),
        "reply": result.reply,
        "detail": result.detail,
        "address": result.address,
        "cert_days_left": result.cert_days_left,
    }


def make_twistd_service(config: WatchConfig) -> WatchService:
    """
    The service for the twistd plugins.  twistd cannot choose its exit
    status (Twisted ticket #11335), so the status is set from an atexit hook
    that runs after twistd's own cleanup (pidfile removal) and calls
    C{os._exit}.  A stop by signal is re-raised by twistd and ends with
    128+signal before that hook can run.
    """
    import atexit

    from twisted.internet import reactor

    use_monotonic_clock(reactor)

    def on_exit(code: int) -> None:
        def finish() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

        atexit.register(finish)
        # startService runs before twistd starts the reactor: stop it once it runs.
        reactor.callWhenRunning(reactor.stop)  # type: ignore[attr-defined]

    return WatchService(config, reactor, on_exit=on_exit)
