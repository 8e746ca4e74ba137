"""
The watch end to end, as an operator runs it: C{clp_httpmon} / C{clp_smtpmon}
/ C{ismon} as real processes against real servers (nginx, aiosmtpd,
OpenSMTPD, rsyslog), stopped and stalled with real signals.

Issue 4, "How it must be proven": a stalled server ends the watch with exit
1 and the documented messages within the printed bound, and a server that
comes back in time keeps it running; pause stops traffic; the lifecycle of a
watch ID (duplicates, SIGKILL and restart, --del, --stop, --disp, status);
messages reach a real syslog socket.

Timing is short everywhere (C{-i 1 -c 2 -r 1}: a stall is detected within
4 s).  Each test has its own state folder and ends its processes by PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests import watchproc
from tests.conftest import FreshServers
from tests.servers import Nginx, Rsyslog, ServerProcess, free_port
from tests.watchproc import (
    FAST,
    LOOPBACK,
    PATIENCE,
    Processes,
    WatchProcess,
    command,
    message,
    message_ids,
)

pytestmark = pytest.mark.integration


# What the watch may need beyond the bound to end: process teardown.
TEARDOWN = 0.5


def watch_argv(
    cmd: str,
    watch_id: str,
    port: int,
    state_dir: Path,
    *extra: str,
    timing: Sequence[str] = FAST,
    syslog: str = "none",
) -> list[str]:
    return watchproc.watch_argv(
        cmd, watch_id, LOOPBACK, port, state_dir, *extra, timing=timing, syslog=syslog
    )


def control(
    processes: Processes, cmd: str, watch_id: str, action: str, state_dir: Path, *extra: str
):
    """C{cmd ID --action [extra]} with the test's state folder; returns the CompletedProcess."""
    return processes.run(
        [*command(cmd), watch_id, f"--{action}", *extra, "--state-dir", str(state_dir)]
    )


def status(processes: Processes, watch_id: str, state_dir: Path) -> dict:
    result = processes.run(
        [*command("ismon"), "status", watch_id, "--json", "--state-dir", str(state_dir)]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def wait_for_probes(
    processes: Processes, watch_id: str, state_dir: Path, count: int, timeout: float = PATIENCE
) -> dict:
    """Wait until the watch has made C{count} probes, the last one good."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(processes, watch_id, state_dir)
        last = current.get("last_probe") or {}
        if current["probes"] >= count and last.get("ok"):
            return current
        assert time.monotonic() < deadline, f"no {count} good probes: {current}"
        time.sleep(0.1)


def started(watch: WatchProcess, cmd: str, watch_id: str, timeout: float = PATIENCE) -> None:
    watch.wait_for(re.escape(message(1, cmd, watch_id)) + "$", timeout)


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# -- 1. a stalled server ends the watch -------------------------------------

# kind -> (command, how to start a private server of that kind)
SERVERS: dict[str, tuple[str, Callable[[FreshServers], ServerProcess]]] = {
    "nginx": ("clp_httpmon", lambda fresh: fresh.nginx(tls=False)),
    "aiosmtpd": ("clp_smtpmon", lambda fresh: fresh.aiosmtpd()),
    "opensmtpd": ("clp_smtpmon", lambda fresh: fresh.opensmtpd()),
}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_stalled_server_ends_the_watch_and_one_back_in_time_does_not(
    kind: str, fresh_servers: FreshServers, processes: Processes, tmp_path: Path
) -> None:
    """
    Two private servers of one kind, one watch on each; SIGSTOP every
    process of both servers at once (the kernel still accepts connections,
    nobody answers).

      - "lost" stays stalled: its watch logs message 74 (select error,
        ETIMEDOUT) for the probe and each of its 2 retries, then message 6,
        and exits 1 -- within the bound it printed at start-up.
      - "back" gets SIGCONT after its first failed probe: the next probe
        succeeds, its watch logs message 95 ("answers again"), forgets the
        failures and is still running after its own bound has passed.

    Both run side by side to keep the suite short.
    """
    cmd, start = SERVERS[kind]
    lost_server, back_server = start(fresh_servers), start(fresh_servers)
    state = tmp_path / "state"
    lost = processes.start(watch_argv(cmd, "lost1", lost_server.port, state), name="lost")
    back = processes.start(
        watch_argv(cmd, "back1", back_server.port, state, timing=["-i", "1", "-c", "3", "-r", "1"]),
        name="back",
    )
    lost_bound, back_bound = lost.detection_bound(), back.detection_bound()
    # interval + retries * max(retry interval, timeout) + timeout
    assert (lost_bound, back_bound) == (1 + 2 * 1 + 1, 1 + 3 * 1 + 1)
    for watch, watch_id in ((lost, "lost1"), (back, "back1")):
        started(watch, cmd, watch_id)
        wait_for_probes(processes, watch_id, state, 2)

    first_failure = message(74, cmd, "back1", nn=110)
    lost_after: float | None = None
    back_resumed = False
    # Each clock starts once its server's processes are all stopped: the
    # bound runs from the stall, not from the test deciding to stall.
    lost_server.stall()
    stalled_at = time.monotonic()
    back_server.stall()
    back_stalled_at = time.monotonic()
    try:
        while lost_after is None or not back_resumed:
            now = time.monotonic()
            if lost_after is None and not lost.running():
                lost_after = now - stalled_at
            if not back_resumed and first_failure in back.output():
                back_server.resume()
                back_resumed = True
            assert now - stalled_at < lost_bound + 10, lost.output() + back.output()
            time.sleep(0.01)
    finally:
        lost_server.resume()
        back_server.resume()

    # lost: exit 1, in time, with the documented messages.
    output = lost.output()
    assert lost.wait(0) == 1, output
    assert lost_after <= lost_bound + TEARDOWN, (
        f"exit {lost_after:.2f}s after the stall, bound {lost_bound}s"
    )
    # Not given up early either: the retries took their time.
    assert lost_after >= 2 * 1 - 0.2, f"exit only {lost_after:.2f}s after the stall"
    assert message_ids(output, cmd, "lost1", [1, 2, 3, 6, 74, 95]) == [2, 1, 74, 74, 74, 6]
    tagged = [line for line in output.splitlines() if "[ID:" in line]
    assert tagged[-1].endswith(message(6, cmd, "lost1")), output
    assert tagged[-2].endswith(message(74, cmd, "lost1", nn=110)), output
    assert "#error] " + message(74, cmd, "lost1", nn=110) in output
    no_traceback(output)
    # The lock died with the watch.
    assert control(processes, cmd, "lost1", "disp", state).returncode == 1

    # back: recovered, still running past its bound.
    back.wait_for(re.escape(message(95, cmd, "back1")) + "$")
    time.sleep(max(0.0, back_stalled_at + back_bound + TEARDOWN - time.monotonic()))
    assert back.running(), back.output()
    current = status(processes, "back1", state)
    assert current["state"] == "watching"
    assert current["consecutive_failures"] == 0
    assert current["last_probe"]["ok"] is True
    back.signal(signal.SIGTERM)
    assert back.wait() == 0
    ids = message_ids(back.output(), cmd, "back1", [1, 2, 3, 6, 74, 95])
    assert ids[:2] == [2, 1] and ids[-3:] == [95, 3, 6], ids
    assert 1 <= ids.count(74) <= 3, ids
    no_traceback(back.output())


# -- 2. pause and continue ----------------------------------------------------


def head_count(nginx: Nginx) -> int:
    return sum(1 for line in nginx.access_lines() if '"HEAD / HTTP/1.1"' in line)


def test_pause_stops_traffic_and_continue_resumes_it(
    fresh_servers: FreshServers, processes: Processes, tmp_path: Path
) -> None:
    nginx = fresh_servers.nginx(tls=False)
    state = tmp_path / "state"
    cmd = "clp_httpmon"
    watch = processes.start(watch_argv(cmd, "pause1", nginx.port, state), name="watch")
    started(watch, cmd, "pause1")
    wait_for_probes(processes, "pause1", state, 2)
    assert head_count(nginx) >= 2

    for _ in range(2):  # idempotent: the second pause is no error
        paused = control(processes, cmd, "pause1", "pause", state)
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.strip() == message(7, cmd, "pause1")
    # A probe in flight when the pause came may still reach the log; it
    # ends within its -r 1 (twice that, for a loaded machine).
    time.sleep(2)
    before = head_count(nginx)
    current = status(processes, "pause1", state)
    assert current["state"] == "paused"
    assert current["paused_since"] is not None
    time.sleep(2.5)  # more than two intervals
    assert head_count(nginx) == before, "the server saw probes while paused"
    assert watch.running()

    for _ in range(2):
        resumed = control(processes, cmd, "pause1", "continue", state)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.strip() == message(8, cmd, "pause1")
    nginx.wait_for_access('"HEAD / HTTP/1.1" 200')
    deadline = time.monotonic() + PATIENCE
    while head_count(nginx) < before + 2:
        assert time.monotonic() < deadline, "probing did not resume"
        time.sleep(0.05)
    assert status(processes, "pause1", state)["state"] == "watching"

    # The watch logged the requests too.
    output = watch.output()
    assert message_ids(output, cmd, "pause1", [7, 8]) == [7, 7, 8, 8]
    watch.signal(signal.SIGTERM)
    assert watch.wait() == 0


def test_pause_and_continue_of_a_watch_that_is_not_running(
    processes: Processes, tmp_path: Path
) -> None:
    for action in ("pause", "continue"):
        result = control(processes, "clp_httpmon", "absent1", action, tmp_path / "state")
        assert result.returncode == 1
        assert result.stdout == ""
        no_traceback(result.stderr)


# -- 3. the lifecycle of a watch ID --------------------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def start_watch(
    processes: Processes, nginx: Nginx, state: Path, watch_id: str, cmd: str = "clp_httpmon"
) -> WatchProcess:
    watch = processes.start(watch_argv(cmd, watch_id, nginx.port, state), name=watch_id)
    started(watch, cmd, watch_id)
    return watch


def test_duplicate_id_is_refused_with_message_14(
    nginx: Nginx, aiosmtpd: ServerProcess, processes: Processes, state: Path
) -> None:
    first = start_watch(processes, nginx, state, "dup1")
    # The same ID, by every command: one ID per machine, protocols mixed.
    attempts = [
        watch_argv("clp_httpmon", "dup1", nginx.port, state),
        [*command("ismon"), "http", *watch_argv("clp_httpmon", "dup1", nginx.port, state)[1:]],
        watch_argv("clp_smtpmon", "dup1", aiosmtpd.port, state),
    ]
    for argv in attempts:
        second = processes.run(argv)
        both = second.stdout + second.stderr
        assert second.returncode == 3, both
        cmd = "clp_smtpmon" if "clp_smtpmon" in argv[0] else "clp_httpmon"
        assert message(14, cmd, "dup1") in both
        assert message(1, cmd, "dup1") not in both
        no_traceback(both)
    assert first.running()
    assert status(processes, "dup1", state)["pid"] == first.pid


def test_sigkilled_watch_can_be_restarted_at_once(
    nginx: Nginx, processes: Processes, state: Path
) -> None:
    first = start_watch(processes, nginx, state, "kill1")
    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    # The records outlive the process ...
    assert (state / "kill1.pid").read_text().strip() == str(first.pid)
    # ... and do not count: the lock died with it.
    assert control(processes, "clp_httpmon", "kill1", "disp", state).returncode == 1
    second = start_watch(processes, nginx, state, "kill1")
    disp = control(processes, "clp_httpmon", "kill1", "disp", state)
    assert (disp.returncode, disp.stdout) == (0, f"{second.pid}\n")
    assert (state / "kill1.pid").read_text().strip() == str(second.pid)
    wait_for_probes(processes, "kill1", state, 1)


def test_del_refuses_a_live_id_and_removes_leftovers_of_a_dead_one(
    nginx: Nginx, processes: Processes, state: Path
) -> None:
    watch = start_watch(processes, nginx, state, "del1")
    before = sorted(p.name for p in state.iterdir())
    refused = control(processes, "clp_httpmon", "del1", "del", state)
    assert refused.returncode == 3
    assert message(14, "clp_httpmon", "del1") in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
    assert sorted(p.name for p in state.iterdir()) == before
    assert watch.running()
    wait_for_probes(processes, "del1", state, 1)  # still answers on its socket

    watch.signal(signal.SIGKILL)
    watch.wait()
    removed = control(processes, "clp_httpmon", "del1", "del", state)
    assert removed.returncode == 0, removed.stderr
    assert "del1.pid" in removed.stdout
    assert not [p for p in state.iterdir() if p.name.startswith("del1.")]
    again = control(processes, "clp_httpmon", "del1", "del", state)
    assert (again.returncode, again.stdout) == (0, "")


def test_stop_of_a_watch_that_is_not_running_succeeds_quietly(
    nginx: Nginx, processes: Processes, state: Path
) -> None:
    # Never started, no state folder at all: nothing is created either.
    for cmd in ("clp_httpmon", "clp_smtpmon"):
        result = control(processes, cmd, "never1", "stop", state)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    result = processes.run([*command("ismon"), "stop", "never1", "--state-dir", str(state)])
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not state.exists()

    # Stopped by SIGKILL (leftovers in the folder), and stopped properly.
    watch = start_watch(processes, nginx, state, "gone1")
    watch.signal(signal.SIGKILL)
    watch.wait()
    result = control(processes, "clp_httpmon", "gone1", "stop", state)
    assert (result.returncode, result.stderr) == (0, "")
    watch = start_watch(processes, nginx, state, "gone1")
    assert control(processes, "clp_httpmon", "gone1", "stop", state).returncode == 0
    assert watch.wait() == 0
    result = control(processes, "clp_httpmon", "gone1", "stop", state)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("how", ["clp_httpmon --stop", "ismon stop"])
def test_stop_of_a_live_watch(how: str, nginx: Nginx, processes: Processes, state: Path) -> None:
    """--stop returns 0 once the watch is gone; the watch logs 3 then 6 and exits 0."""
    watch = start_watch(processes, nginx, state, "stop1")
    wait_for_probes(processes, "stop1", state, 1)
    # A long wait (-r 60): returning well before it shows that --stop
    # returns when the watch is gone, not when the wait is over.
    if how == "ismon stop":
        argv = [*command("ismon"), "stop", "stop1", "-r", "60", "--state-dir", str(state)]
    else:
        argv = [*command("clp_httpmon"), "stop1", "--stop", "-r", "60", "--state-dir", str(state)]
    began = time.monotonic()
    result = processes.run(argv, timeout=90)
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    assert time.monotonic() - began < PATIENCE
    assert watch.wait() == 0
    output = watch.output()
    assert message_ids(output, "clp_httpmon", "stop1", [1, 3, 6]) == [1, 3, 6]
    no_traceback(output)


def test_stop_times_out_with_message_15_when_the_watch_does_not_end(
    nginx: Nginx, processes: Processes, state: Path
) -> None:
    """A watch that cannot act on --stop (SIGSTOPped): message 15, exit 5 after the wait."""
    watch = start_watch(processes, nginx, state, "hang1")
    watch.signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        result = control(processes, "clp_httpmon", "hang1", "stop", state, "-r", "1")
        took = time.monotonic() - began
    finally:
        watch.signal(signal.SIGCONT)
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stderr == message(15, "clp_httpmon", "hang1") + "\n"
    # It waited its -r 1, then gave up (start-up of the command aside).
    assert 1 <= took < PATIENCE
    # Once it runs again it is still under control.
    final = control(processes, "clp_httpmon", "hang1", "stop", state, "-r", "5")
    assert final.returncode == 0
    assert watch.wait() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_watch_like_stop(
    sig: signal.Signals, aiosmtpd: ServerProcess, processes: Processes, state: Path
) -> None:
    cmd = "clp_smtpmon"
    watch = processes.start(watch_argv(cmd, "sig1", aiosmtpd.port, state), name="watch")
    started(watch, cmd, "sig1")
    wait_for_probes(processes, "sig1", state, 1)
    watch.signal(sig)
    assert watch.wait() == 0
    output = watch.output()
    assert message_ids(output, cmd, "sig1", [1, 2, 3, 6]) == [2, 1, 3, 6]
    no_traceback(output)
    assert control(processes, cmd, "sig1", "disp", state).returncode == 1


def test_sigint_stops_a_watch_that_inherited_it_ignored(
    aiosmtpd: ServerProcess, processes: Processes, state: Path
) -> None:
    """
    A watch started with C{&} by a non-interactive shell (as cluster scripts
    do) inherits SIGINT ignored; README "Exit codes" still promises that
    SIGINT stops it like C{--stop}.
    """
    cmd = "clp_smtpmon"
    argv = watch_argv(cmd, "sig2", aiosmtpd.port, state)
    watch = processes.start(["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv], name="watch")
    started(watch, cmd, "sig2")
    wait_for_probes(processes, "sig2", state, 1)
    watch.signal(signal.SIGINT)
    assert watch.wait() == 0
    assert message_ids(watch.output(), cmd, "sig2", [1, 2, 3, 6]) == [2, 1, 3, 6]


def test_disp_prints_the_pid_of_a_live_watch_only(
    nginx: Nginx, processes: Processes, state: Path
) -> None:
    missing = control(processes, "clp_httpmon", "disp1", "disp", state)
    assert missing.returncode == 1
    assert missing.stdout == ""
    watch = start_watch(processes, nginx, state, "disp1")
    for argv in (
        [*command("clp_httpmon"), "disp1", "--disp"],
        [*command("clp_smtpmon"), "disp1", "--disp"],
        [*command("ismon"), "disp", "disp1"],
    ):
        shown = processes.run([*argv, "--state-dir", str(state)])
        assert (shown.returncode, shown.stdout, shown.stderr) == (0, f"{watch.pid}\n", "")
    watch.signal(signal.SIGTERM)
    watch.wait()
    gone = control(processes, "clp_httpmon", "disp1", "disp", state)
    assert (gone.returncode, gone.stdout) == (1, "")


def test_status_json(nginx: Nginx, processes: Processes, state: Path) -> None:
    watch = start_watch(processes, nginx, state, "stat1")
    first = wait_for_probes(processes, "stat1", state, 2)
    assert first["watch_id"] == "stat1"
    assert first["pid"] == watch.pid
    assert first["state"] == "watching"
    assert first["consecutive_failures"] == 0
    assert first["detection_bound"] == 4
    assert (first["interval"], first["timeout"], first["retries"]) == (1, 1, 2)
    assert first["paused_since"] is None
    last = first["last_probe"]
    assert last["ok"] is True
    assert 0 <= last["latency"] < 1
    # Wall-clock seconds of a recent probe, and seconds since start-up
    # (generous bounds: only the units and the clocks are checked here).
    assert abs(last["time"] - time.time()) < PATIENCE
    assert 0 < first["uptime"] < 4 * PATIENCE
    time.sleep(2.1)  # over two intervals: at least one more probe
    second = status(processes, "stat1", state)
    assert second["uptime"] > first["uptime"] + 1
    assert second["probes"] > first["probes"]
    assert second["last_probe"]["time"] > last["time"]

    # A watch that is not running.
    absent = processes.run(
        [*command("ismon"), "status", "none1", "--json", "--state-dir", str(state)]
    )
    assert absent.returncode == 1
    assert json.loads(absent.stdout)["state"] == "not running"
    # All watches.
    every = processes.run([*command("ismon"), "status", "--json", "--state-dir", str(state)])
    assert every.returncode == 0
    assert {"watch_id": "stat1", "pid": watch.pid, "running": True} in json.loads(every.stdout)


def test_failure_counts_in_status_while_retrying(
    fresh_servers: FreshServers, processes: Processes, tmp_path: Path
) -> None:
    """status shows the state "retrying" and the consecutive failures of a stall."""
    nginx = fresh_servers.nginx(tls=False)
    state = tmp_path / "state"
    # Retries enough that the watch is still retrying when status asks,
    # however slowly the status command starts.
    timing = ["-i", "1", "-c", "30", "-r", "1"]
    watch = processes.start(
        watch_argv("clp_httpmon", "retry1", nginx.port, state, timing=timing), name="watch"
    )
    started(watch, "clp_httpmon", "retry1")
    wait_for_probes(processes, "retry1", state, 1)
    with nginx.stalled():
        watch.wait_for(r"failure 2 of 31")
        current = status(processes, "retry1", state)
    assert current["state"] == "retrying"
    assert current["consecutive_failures"] >= 2
    assert current["last_probe"]["ok"] is False
    assert current["last_probe"]["message_id"] == 74
    assert current["failures"] >= 2


# -- 6. syslog -----------------------------------------------------------------


def test_messages_reach_a_real_syslog_socket(
    rsyslog: Rsyslog, nginx: Nginx, aiosmtpd: ServerProcess, processes: Processes, state: Path
) -> None:
    """
    Facility daemon, ident clp_httpmon / clp_smtpmon with the PID, the
    catalogue text with the ID tag; severity info for the lifecycle.
    """
    socket = str(rsyslog.socket)
    http = processes.start(
        watch_argv("clp_httpmon", "log1", nginx.port, state, syslog=socket), name="http"
    )
    smtp = processes.start(
        [
            *command("ismon"),
            "smtp",
            *watch_argv("clp_smtpmon", "log2", aiosmtpd.port, state, syslog=socket)[1:],
        ],
        name="smtp",
    )
    for watch, cmd, watch_id in ((http, "clp_httpmon", "log1"), (smtp, "clp_smtpmon", "log2")):
        rsyslog.wait_for(
            rf"^daemon\.info {cmd}\[{watch.pid}\]: " + re.escape(message(1, cmd, watch_id)) + "$"
        )
    assert control(processes, "clp_httpmon", "log1", "stop", state).returncode == 0
    smtp.signal(signal.SIGTERM)
    for watch, cmd, watch_id in ((http, "clp_httpmon", "log1"), (smtp, "clp_smtpmon", "log2")):
        assert watch.wait() == 0
        for number in (2, 3, 6):
            rsyslog.wait_for(
                rf"^daemon\.info {cmd}\[{watch.pid}\]: "
                + re.escape(message(number, cmd, watch_id))
                + "$"
            )
    lines = rsyslog.lines()
    assert all(len(line.encode()) <= 400 + 40 for line in lines)
    # What went to syslog also went to stdout.
    assert message(3, "clp_httpmon", "log1") in http.output()


def test_failures_reach_syslog_as_warnings_then_an_error(
    rsyslog: Rsyslog, processes: Processes, state: Path
) -> None:
    """Nothing listens on the port: connect error 111 (ECONNREFUSED), warn, then err."""
    port = free_port()
    watch = processes.start(
        watch_argv(
            "clp_httpmon",
            "refused1",
            port,
            state,
            syslog=str(rsyslog.socket),
            timing=["-i", "1", "-c", "1", "-r", "1"],
        ),
        name="watch",
    )
    assert watch.wait() == 1
    prefix = rf"^daemon\.%s clp_httpmon\[{watch.pid}\]: "
    text = re.escape(message(72, "clp_httpmon", "refused1", nn=111)) + "$"
    rsyslog.wait_for(prefix % "warning" + text)
    rsyslog.wait_for(prefix % "err" + text)
    rsyslog.wait_for(prefix % "info" + re.escape(message(6, "clp_httpmon", "refused1")) + "$")


def test_without_syslog_the_messages_still_reach_the_log(
    nginx: Nginx, processes: Processes, state: Path, tmp_path: Path
) -> None:
    """An unreachable syslog socket is reported once (message 98); the watch goes on."""
    missing = tmp_path / "no-such-syslog.sock"
    watch = processes.start(
        watch_argv("clp_httpmon", "nolog1", nginx.port, state, syslog=str(missing)),
        name="watch",
    )
    started(watch, "clp_httpmon", "nolog1")
    wait_for_probes(processes, "nolog1", state, 1)
    assert control(processes, "clp_httpmon", "nolog1", "pause", state).returncode == 0
    assert control(processes, "clp_httpmon", "nolog1", "stop", state).returncode == 0
    assert watch.wait() == 0
    output = watch.output()
    complaints = [line for line in output.splitlines() if "cannot reach syslog" in line]
    assert len(complaints) == 1, output
    assert str(missing) in complaints[0]
    assert message_ids(output, "clp_httpmon", "nolog1", [1, 2, 3, 6, 7]) == [2, 1, 7, 3, 6]
    assert not os.path.exists(missing)
