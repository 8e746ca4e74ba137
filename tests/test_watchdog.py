"""
The event-loop watchdog (README "Timing"): a stuck reactor ends the process
with exit code 4 and message 97 within C{max(30 s, 2 x bound)}, while an
idle watch wakes for it only every quarter of that limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from ismon.core.exit_status import ExitStatus
from ismon.core.timing import Timing
from ismon.watch.health import LoopHealth, LoopWatchdog, SystemdHealth, loop_watchdog_limit
from ismon.watch.notify import SystemdNotifier
from tests.procs import end_process
from tests.watchproc import command

STALLED_TEXT = "has detected that its own event loop stalled for"


def test_limit_is_the_documented_one() -> None:
    assert loop_watchdog_limit(4) == 30.0
    assert loop_watchdog_limit(250) == 500.0


@pytest.mark.parametrize("limit", [30.0, 82.0, 500.0])
def test_periods_derive_from_the_limit(limit: float) -> None:
    watchdog = LoopWatchdog(limit, lambda seconds: None)
    assert watchdog.period == limit / 4
    assert watchdog.threshold == limit / 2
    # The latest a stall just after a beat is caught: past the threshold by
    # up to one look, then confirmed.  It must stay inside the limit, with
    # slack for a late thread.
    worst = watchdog.threshold + watchdog.period + watchdog.confirm
    assert worst <= limit * 7 / 8
    # A loop beating a whole period late is still not a stall.
    assert watchdog.period * 2 <= watchdog.threshold


@pytest.mark.parametrize("systemd", [False, True])
def test_service_beats_at_the_derived_period_not_every_second(
    systemd: bool, tmp_path: Path
) -> None:
    timing = Timing(interval=60, retries=3, timeout=10)  # bound 250 s: limit 500 s
    reactor = MemoryReactorClock()
    env: dict[str, str] = {}
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if systemd:
        manager.bind(str(tmp_path / "notify"))
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "20000000"}
    # The health parts a watch has by default; a whole start-up would arm
    # the last-resort exit timer of the winding down in this test process.
    loop = LoopHealth(reactor, lambda seconds: None)
    systemd_health = SystemdHealth(reactor, SystemdNotifier(env))
    loop.watching(timing)
    systemd_health.watching(timing)
    try:
        assert loop.watchdog is not None and loop.heartbeat is not None
        assert loop.watchdog.limit == 500.0
        assert loop.heartbeat.interval == 125.0
        # The first beat is at once; the next is a quarter of the limit
        # away.  The systemd ping, when asked for, keeps its own period
        # (half of WATCHDOG_USEC) and pings at once.
        due = sorted(call.getTime() - reactor.seconds() for call in reactor.getDelayedCalls())
        if systemd:
            assert systemd_health.pings is not None
            assert systemd_health.pings.interval == 10.0
            assert due == [10.0, 125.0]
            manager.settimeout(2)
            assert manager.recv(4096) == b"WATCHDOG=1"
        else:
            assert systemd_health.pings is None
            assert due == [125.0]
    finally:
        loop.watchdog.stop()
        loop.heartbeat.stop()
        if systemd_health.pings is not None:
            systemd_health.pings.stop()
        manager.close()


def test_a_beating_loop_is_left_alone_and_a_stuck_one_is_ended_within_the_limit() -> None:
    # A short limit on the real thread and the real clock; only the exit
    # itself is caught instead of ending the test run.
    limit = 8.0
    exits: list[tuple[float, int]] = []
    words: list[float] = []
    ended = threading.Event()

    def exit_process(code: int) -> None:
        exits.append((time.monotonic(), code))
        ended.set()

    watchdog = LoopWatchdog(limit, words.append, exit_process=exit_process)
    watchdog.start()
    try:
        # Beating (more often than needed, so that a loaded machine cannot
        # make a beat late): two whole limits without a verdict.
        until = time.monotonic() + 2 * watchdog.threshold + watchdog.period
        while time.monotonic() < until:
            watchdog.beat()
            time.sleep(0.1)
        assert exits == []
        # Stuck: no more beats.
        watchdog.beat()
        stuck = time.monotonic()
        assert ended.wait(limit + 30), "the watchdog never fired"
        ((when, code),) = exits
        assert code == ExitStatus.SYSTEM_ERROR
        assert watchdog.threshold < when - stuck <= limit
        assert len(words) == 1 and watchdog.threshold < words[0] <= limit
    finally:
        watchdog.stop()


# A real watch whose event loop blocks for good 2 s after start: its grace
# keeps it from probing, so only the watchdog can end it.
_BLOCKED_WATCH = r"""
import sys, time
from twisted.internet import reactor

def block():
    sys.stderr.write("BLOCKED %.6f\n" % time.monotonic())
    sys.stderr.flush()
    time.sleep(600)

reactor.callLater(2, block)
sys.argv = ["clp_httpmon"] + sys.argv[1:]
from ismon.entry import clp_httpmon
clp_httpmon()
"""


def _idle_watch_args(watch_id: str, top: Path) -> list[str]:
    """
    A watch that never probes (10 min of grace; a closed port if it did):
    -i 1 -c 1 -r 1, a bound of 3 s, so the loop watchdog's limit is its
    30 s floor.
    """
    return [
        watch_id,
        "-s",
        "127.0.0.1",
        "-n",
        "9",
        "-i",
        "1",
        "-c",
        "1",
        "-r",
        "1",
        "--grace",
        "600",
        "--state-dir",
        str(top / "state"),
        "--syslog-socket",
        "none",
    ]


def test_a_watch_with_a_blocked_event_loop_exits_4_within_the_limit() -> None:
    top = Path(tempfile.mkdtemp(prefix="ismon-wd-"))
    argv = [sys.executable, "-c", _BLOCKED_WATCH, *_idle_watch_args("wdblock", top)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"the blocked watch did not end:\n{out.decode()}\n{err.decode()}")
        gone = time.monotonic()
        text = out.decode(errors="replace") + err.decode(errors="replace")
        assert proc.returncode == ExitStatus.SYSTEM_ERROR, text
        assert "has started watching" in text, text
        blocked = [line for line in text.splitlines() if line.startswith("BLOCKED ")]
        assert blocked, text
        assert STALLED_TEXT in text, text
        assert "[ID:wdblock]" in text
        elapsed = gone - float(blocked[0].split()[1])
        assert 15.0 < elapsed <= 30.0, f"ended {elapsed:.1f} s after the loop blocked"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(top, ignore_errors=True)


def test_a_watch_frozen_whole_for_longer_than_the_stall_threshold_lives_on() -> None:
    # SIGSTOP freezes the loop and the watchdog thread alike: on thawing, the
    # thread may look first and see a stale beat; the loop's overdue beat
    # must win the confirmation window.  Frozen 20 s: past the 15 s
    # threshold of the 30 s limit, short of the limit itself.
    top = Path(tempfile.mkdtemp(prefix="ismon-wd-"))
    argv = [*command("clp_httpmon"), *_idle_watch_args("wdfreeze", top)]
    log = top / "watch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "has started watching" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(20)
        os.kill(proc.pid, signal.SIGCONT)
        # Past the confirmation window (30/8 s) with room to spare.
        time.sleep(10)
        text = log.read_text(errors="replace")
        assert proc.poll() is None, text
        assert STALLED_TEXT not in text, text
    finally:
        end_process(proc, 10)
        shutil.rmtree(top, ignore_errors=True)
