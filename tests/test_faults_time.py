"""
Time faults (issue 6, "Fault-injection tests"): the wall clock of a running
watch slewed (running fast or slow) and stepped by an hour, under
libfaketime, while the monotonic clock runs on
(C{FAKETIME_DONT_FAKE_MONOTONIC=1}).

Only the watch runs with the fake clock.  The server is a private nginx
that logs the real time of every request it gets (C{$msec}), so the probe
schedule is measured where it matters: at the server.  The README promises
probes on a monotonic grid (C{start + k * interval}), so neither a slewed
nor a stepped wall clock may change the spacing of the probes, cause a
false exit, or delay the detection of a stall.

How the wall clock is changed: libfaketime re-reads a timestamp file at
every C{time()} call (C{FAKETIME_NO_CACHE=1}); the test rewrites it
(atomically).  A step is one rewrite (C{-3600}).  A slew is either
libfaketime's own speed factor (C{+0 x2}) or, for a clock running slow,
small steps every 50 ms (libfaketime's C{x0.5} would also stretch every
C{epoll_wait} timeout of the process by 2 -- an artefact of the tool that
no real clock slew has -- so it cannot be used to judge the schedule).

The basic +-1 h steps of a healthy watch are also covered by
C{tests/test_clock_step.py}; here: slews, and a stall detected within the
printed bound while the wall clock jumps around it.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faketime import FakeClock
from tests.netns import (
    assert_server_failed,
    failure_lines,
    no_traceback,
    start_nginx_at,
    started,
    wait_for_good_probes,
    watch_argv,
    watch_status,
)
from tests.servers import Nginx, ServerUnavailable, free_port
from tests.watchproc import PATIENCE, Processes, message

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
# How far a probe may land from its grid point, as seen by the server.
JITTER = 0.15
# A single probe held up by a busy machine; far from a whole interval.
LATE = 0.4


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    """A private nginx (this test stalls it) that logs real request times."""
    try:
        server = start_nginx_at(tmp_path / "nginx", LOOPBACK, free_port())
    except ServerUnavailable as e:
        if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
            pytest.fail(f"server unavailable (ISMON_REQUIRE_SERVERS=1): {e}")
        pytest.skip(f"server unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


def probe_times(nginx: Nginx) -> list[float]:
    """The real times at which the server got each probe."""
    times = []
    for line in nginx.access_lines():
        match = re.match(r"(\d+\.\d+) .*\"HEAD / HTTP/1\.1\"", line)
        if match:
            times.append(float(match.group(1)))
    return times


def assert_on_grid(times: list[float], interval: float = 1.0) -> None:
    """
    Every probe on one grid (a wall-clock step shows as a
    missing or extra probe, a whole interval off), no drift.  One probe may
    start late on a loaded machine; the grid itself must not move.
    """
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    assert gaps, times
    # Probes start on their grid point or late, never early: the grid runs
    # through the earliest of them (the first one may be the late one).
    offsets = [t - k * interval for k, t in enumerate(times)]
    late = [round(o - min(offsets), 3) for o in offsets]
    assert all(-JITTER <= d <= LATE for d in late), (late, gaps)
    # No drift: the k-th probe is k intervals after the first (the bounds
    # above); most probes are right on the grid.
    assert sorted(late)[len(late) // 2] <= JITTER, (late, gaps)


def fake_time_of_last_probe(watch_id: str, state: Path, nginx: Nginx) -> tuple[float, float]:
    """(the watch's wall clock, the server's real clock) at the watch's last probe."""
    current = wait_for_good_probes(watch_id, state, 1)
    number = current["probes"]
    # The server logs a request once answered: a probe may be in flight.
    deadline = time.monotonic() + PATIENCE
    while len(times := probe_times(nginx)) < number:
        assert time.monotonic() < deadline, (current, times)
        time.sleep(0.02)
    return current["last_probe"]["time"], times[number - 1]


# -- slewed -----------------------------------------------------------------------------------

SLEWS = {
    # libfaketime's own speed factor: the wall clock runs twice as fast.
    "x2 (libfaketime)": ("+0 x2", 2.0),
    # Half speed, by small steps back every 50 ms (see the module docstring).
    "x0.5 (stepped)": (None, 0.5),
}


@pytest.mark.parametrize("slew", list(SLEWS))
def test_slewed_wall_clock_keeps_the_probes_on_the_monotonic_grid(
    slew: str, clock: FakeClock, nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    With the watch's wall clock running at twice or half the real speed,
    the server still sees one probe per second, none missed, none extra,
    no drift; no probe fails, and the watch runs on.  (The watch's own
    clock really ran at the given rate: checked against the server's.)
    """
    spec, rate = SLEWS[slew]
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    if spec is not None:
        clock.set(spec)
    watch = processes.start(
        watch_argv(cmd, "slew1", LOOPBACK, nginx.port, state), env=clock.env(), name="watch"
    )
    started(watch, cmd, "slew1")
    if spec is None:
        clock.slew(rate)
    # From the second probe on: under the preloaded library the start-up is
    # slower, and the first probe may come late to its grid point.
    first = wait_for_good_probes("slew1", state, 2)
    fake1, real1 = fake_time_of_last_probe("slew1", state, nginx)
    wait_for_good_probes("slew1", state, first["probes"] + 5)
    fake2, real2 = fake_time_of_last_probe("slew1", state, nginx)
    clock.stop_slewing()

    measured = (fake2 - fake1) / (real2 - real1)
    assert abs(measured - rate) <= 0.15 * rate, f"the fake clock ran at x{measured:.2f}"
    times = [t for t in probe_times(nginx)[1:] if t >= real1]
    assert len(times) >= 5
    assert_on_grid(times)
    assert watch.running(), watch.output()
    assert failure_lines(watch.output()) == [], watch.output()
    assert watch_status("slew1", state)["failures"] == 0
    no_traceback(watch.output())


# -- stepped, with a stall ------------------------------------------------------------------


@pytest.mark.parametrize("sign", [-1, +1], ids=["back", "forward"])
def test_stall_is_detected_within_the_bound_while_the_wall_clock_jumps(
    sign: int, clock: FakeClock, nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    The wall clock steps by an hour: probing goes on at once, on the grid.
    Then the server stalls (SIGSTOP) at the very moment the clock jumps two
    hours the other way, and jumps again after the first failed probe: the
    watch still logs 74 (110) for each probe, then 6, and exits 1 within
    the bound it printed, counted on a real clock from the stall.
    """
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(cmd, "jump1", LOOPBACK, nginx.port, state), env=clock.env(), name="watch"
    )
    bound = started(watch, cmd, "jump1")
    first = wait_for_good_probes("jump1", state, 2)

    hour = sign * 3600
    stepped_at = time.time()
    clock.offset(hour)
    after_step = wait_for_good_probes("jump1", state, first["probes"] + 3)
    fake, real = fake_time_of_last_probe("jump1", state, nginx)
    assert abs(fake - real - hour) < 1, (fake, real)
    # The probes around the step (from the second one of the watch on: the
    # first may come late, see above) are on the grid.
    assert_on_grid(probe_times(nginx)[1:])
    assert [t for t in probe_times(nginx) if t > stepped_at], "no probe after the step"
    assert after_step["failures"] == 0

    nginx.stall()
    fault_at = time.monotonic()  # once every nginx process is stopped
    try:
        clock.offset(-hour)
        watch.wait_for(re.escape(message(74, cmd, "jump1", nn=errno.ETIMEDOUT)) + "$", bound)
        clock.offset(0)
        assert_server_failed(
            watch, cmd, "jump1", fault_at=fault_at, bound=bound, number=74, nn=errno.ETIMEDOUT
        )
    finally:
        nginx.resume()
