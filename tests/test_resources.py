"""
The watch's own resources failing, in real processes under real limits
(issue 22; docs/failure-rules.md, "The monitor's own failures"):

  - descriptors: a start under RLIMIT_NOFILE 5-24 is refused with one
    line (message 42, nofile 24) and exit 4, never a traceback; a watch
    that runs out of descriptors while watching a healthy server ends with
    exit 4 and says the monitor failed, never message 72 and exit 1 (the
    false failover); a burst that passes is forgiven;
  - address space: a start under RLIMIT_AS 24-64 MiB is refused with one
    line (memory 12) or runs and detects a stall within its bound; a watch
    whose address space is cut below what it uses still ends in time;
  - threads (a pids cgroup, as systemd's TasksMax= makes one): a watchdog
    that cannot start ends the watch at once (thread 11, exit 4); a name
    lookup that gets no thread is the monitor's failure; a watch that
    can start no thread any more still ends in time;
  - the last resort: once the watch has its verdict, a shutdown that
    hangs does not keep it alive, with no thread and no memory to spare.

Every limit is set in the child (preexec_fn, prlimit on its PID, a cgroup
of the test's own), every wait is bounded, every process ended by PID.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ismon.state.folder import StateDir
from ismon.state.lock import WatchLock
from tests.conftest import FreshDnsTcpServers, FreshServers, unavailable
from tests.netns import no_traceback, started
from tests.servers import Nginx, free_port
from tests.watchproc import PATIENCE, Processes, WatchProcess, command, message, watch_argv

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
CMD = "clp_httpmon"
MiB = 1024 * 1024
#: Seconds beyond a watch's printed bound for it to be gone (process exit
#: and a loaded 2-core machine).
TEARDOWN = 3.0


@pytest.fixture
def http_server(fresh_servers: FreshServers) -> Nginx:
    """A private nginx (plain HTTP): the tests stall it."""
    return fresh_servers.nginx(tls=False)


def _limited(kind: int, value: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(kind, (value, value))

    return preexec


def _run(argv: list[str], preexec: Callable[[], None]) -> subprocess.CompletedProcess[str]:
    """Run C{argv} to its end, C{preexec} run in the child first (its limits)."""
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=PATIENCE, check=False, preexec_fn=preexec
    )


def _record(state: Path, watch_id: str) -> dict[str, object]:
    loaded = json.loads((state / f"{watch_id}.last").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _status_line(state: Path, watch_id: str) -> str:
    result = subprocess.run(
        [*command("ismon"), "status", watch_id, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    return result.stdout + result.stderr


def _ended_within(watch: WatchProcess, since: float, seconds: float) -> tuple[int, float]:
    code = watch.wait(seconds + 15)
    return code, time.monotonic() - since


def _only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- descriptors ----------------------------------------------------------------


def test_a_start_with_5_to_24_descriptors_is_refused_with_one_line(tmp_path: Path) -> None:
    """
    Before: 5-6 a Python traceback and exit 1, 7 a Twisted traceback, 8-11
    refused, 12 a false failover (72 [24], exit 1), 13-24 ran with no room.
    """
    state = tmp_path / "state"
    argv = watch_argv(CMD, "web", LOOPBACK, free_port(), state)
    for limit in range(5, 25):
        result = _run(argv, _limited(resource.RLIMIT_NOFILE, limit))
        line = _only_line(result.stdout + result.stderr)
        assert result.returncode == 4, (limit, line)
        assert line.startswith(
            "The clp_httpmon has detected system error (nofile 24). [ID:web] "
            f"the descriptor limit (RLIMIT_NOFILE {limit}) leaves no room to watch"
        ), line
    # Nothing was made: the refusal comes before the state folder.
    assert not state.exists()


def _take_all_descriptors(pid: int) -> tuple[int, int]:
    """Let the process open no descriptor more; return its limits before."""
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, before[1]))
    return before


def test_out_of_descriptors_while_watching_is_exit_4_never_a_failover(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    The server stays healthy; the watch can open no socket.  Before: message
    72 [24] three times and exit 1, "the server failed", and no record.
    """
    state = tmp_path / "state"
    watch = processes.start(watch_argv(CMD, "web", LOOPBACK, http_server.port, state))
    bound = started(watch, CMD, "web")
    _take_all_descriptors(watch.pid)
    since = time.monotonic()
    code, elapsed = _ended_within(watch, since, bound)
    output = watch.output()
    assert code == 4, output
    assert elapsed <= bound + TEARDOWN, (elapsed, output)
    own = message(42, CMD, "web") + "socket 24). [ID:web]"
    assert [line for line in output.splitlines() if own in line][-3:], output
    assert "network error" not in output, output
    assert message(6, CMD, "web") in output
    no_traceback(output)
    # Written through the file reserved at start: no descriptor needed.
    record = _record(state, "web")
    assert record["exit_code"] == 4
    assert record["meaning"] == (
        "the monitor itself failed (socket 24: Too many open files), not the server"
    )
    assert "last exit 4 (the monitor itself failed (socket 24" in _status_line(state, "web")


@pytest.mark.parametrize(
    ("cmd", "extra"),
    [
        ("clp_dnsmon", ["--query", "www.ismon.test"]),
        ("clp_dnsmon", ["--query", "www.ismon.test", "--tcp"]),
        ("clp_tcpmon", ["--send", "PING\\r\\n", "--expect", "\\+PONG"]),
    ],
    ids=["dns-udp", "dns-tcp", "tcp"],
)
def test_dns_and_tcp_watches_out_of_descriptors_are_exit_4(
    fresh_dns_tcp_servers: FreshDnsTcpServers,
    processes: Processes,
    tmp_path: Path,
    cmd: str,
    extra: list[str],
) -> None:
    """
    The same for the DNS watch (its UDP socket, or TCP) and the TCP watch:
    a socket the monitor cannot open is message 42, not 72, and exit 4.
    """
    server = (
        fresh_dns_tcp_servers.unbound() if cmd == "clp_dnsmon" else fresh_dns_tcp_servers.redis()
    )
    state = tmp_path / "state"
    watch = processes.start(watch_argv(cmd, "own", server.host, server.port, state, *extra))
    bound = started(watch, cmd, "own")
    _take_all_descriptors(watch.pid)
    code, elapsed = _ended_within(watch, time.monotonic(), bound)
    output = watch.output()
    assert code == 4, output
    assert elapsed <= bound + TEARDOWN, (elapsed, output)
    assert message(42, cmd, "own") + "socket 24). [ID:own]" in output, output
    assert "network error" not in output, output
    no_traceback(output)
    assert _record(state, "own")["exit_code"] == 4


def test_a_burst_that_takes_the_descriptors_once_is_forgiven(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    watch = processes.start(watch_argv(CMD, "web", LOOPBACK, http_server.port, state))
    started(watch, CMD, "web")
    before = _take_all_descriptors(watch.pid)
    watch.wait_for(re.escape(message(42, CMD, "web") + "socket 24)"))
    resource.prlimit(watch.pid, resource.RLIMIT_NOFILE, before)
    watch.wait_for(re.escape(message(95, CMD, "web")) + "$")
    assert watch.running()
    assert (
        processes.run([*command("ismon"), "stop", "web", "--state-dir", str(state)]).returncode == 0
    )
    assert watch.wait() == 0
    no_traceback(watch.output())


# -- address space --------------------------------------------------------------


def test_a_start_under_24_to_64_mib_is_refused_with_one_line_or_watches(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    Before: 24-31 MiB a MemoryError traceback and exit 1; 32-40 the bound
    printed, then no probe and no exit (the watchdog's thread could not
    start); 41-48 the stall detected, then no exit, no message 6, no record.
    Now each limit is one of two: refused at once with one line and exit 4,
    or a watch that detects a stall and exits 1 within its bound.
    """
    outcomes: dict[int, str] = {}
    for mib in (24, 32, 40, 48, 64):
        state = tmp_path / f"state{mib}"
        argv = watch_argv(CMD, "web", LOOPBACK, http_server.port, state)
        with open(tmp_path / f"as{mib}.out", "wb") as out:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_limited(resource.RLIMIT_AS, mib * MiB),
            )
        watch = WatchProcess(child, tmp_path / f"as{mib}.out", argv)
        try:
            watch.wait_for(r"a stall is detected within|system error", PATIENCE)
            if "system error" in watch.output():
                code = watch.wait()
                line = _only_line(watch.output())
                assert (code, line.split(" [ID:")[0]) == (
                    4,
                    "The clp_httpmon has detected system error (memory 12).",
                ), (mib, line)
                assert "RLIMIT_AS" in line or "out of memory while starting" in line
                outcomes[mib] = "refused"
                continue
            bound = started(watch, CMD, "web")
            with http_server.stalled():
                since = time.monotonic()
                code, elapsed = _ended_within(watch, since, bound)
            assert code == 1, (mib, watch.output())
            assert elapsed <= bound + TEARDOWN, (mib, elapsed, watch.output())
            assert _record(state, "web")["exit_code"] == 1
            outcomes[mib] = "watched"
        finally:
            no_traceback(watch.output())
            watch.end()
    assert outcomes[24] == "refused" and outcomes[64] == "watched", outcomes


def _squeeze_address_space(pid: int) -> None:
    """No new mapping for the process: its limit 16 MiB below what it has."""
    status = Path(f"/proc/{pid}/status").read_text()
    size = int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    resource.prlimit(pid, resource.RLIMIT_AS, (size - 16 * MiB, resource.RLIM_INFINITY))


# -- threads: a pids cgroup of the test's own --------------------------------------


class PidsCgroup:
    """A cgroup (v1 or v2) whose pids.max the test sets; removed at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def limit(self, tasks: int) -> None:
        (self.path / "pids.max").write_text(f"{tasks}\n")

    def join(self, pid: int) -> None:
        """Move process C{pid}, all its threads, in."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def tasks(self) -> int:
        return int((self.path / "pids.current").read_text())


def _pids_root() -> Path | None:
    v1 = Path("/sys/fs/cgroup/pids")
    if (v1 / "cgroup.procs").exists() and os.access(v1, os.W_OK):
        return v1
    v2 = Path("/sys/fs/cgroup")
    try:
        enabled = (v2 / "cgroup.subtree_control").read_text().split()
    except OSError:
        return None
    return v2 if "pids" in enabled and os.access(v2, os.W_OK) else None


@pytest.fixture
def pids_cgroup() -> Iterator[PidsCgroup]:
    root = _pids_root()
    if root is None:
        unavailable("no writable pids cgroup (v1 /sys/fs/cgroup/pids or v2 with +pids)")
    assert root is not None
    path = root / f"ismon-test-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    try:
        yield PidsCgroup(path)
    finally:
        # Its processes are ended by then (the processes fixture ends
        # first); a moment for the kernel to notice.
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                path.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_a_watchdog_that_cannot_start_ends_the_watch_at_once(
    http_server: Nginx, pids_cgroup: PidsCgroup, tmp_path: Path
) -> None:
    """
    Before (no thread to be had): the bound printed, then no probe and no
    exit, a traceback in the log.  Now: message 42 (thread 11), never
    message 1, exit 4 and a record saying the monitor failed.
    """
    state = tmp_path / "state"
    pids_cgroup.limit(1)  # the watch's own main thread, and nothing more
    argv = watch_argv(CMD, "web", LOOPBACK, http_server.port, state)
    result = _run(argv, lambda: pids_cgroup.join(os.getpid()))
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert message(42, CMD, "web") + "thread 11). [ID:web]" in output
    assert message(1, CMD, "web") not in output
    no_traceback(output)
    assert "thread 11" in str(_record(state, "web")["meaning"])
    assert "last exit 4 (the monitor itself failed (thread 11" in _status_line(state, "web")


def test_a_name_lookup_that_gets_no_thread_is_the_monitors_failure(
    http_server: Nginx, processes: Processes, pids_cgroup: PidsCgroup, tmp_path: Path
) -> None:
    """A host name is resolved in a thread of its own: none, and it is 42, not 81."""
    state = tmp_path / "state"
    watch = processes.start(watch_argv(CMD, "web", "localhost", http_server.port, state))
    bound = started(watch, CMD, "web")
    pids_cgroup.join(watch.pid)
    # The main thread and the watchdog: the lookups' threads are gone between probes.
    pids_cgroup.limit(2)
    since = time.monotonic()
    code, elapsed = _ended_within(watch, since, bound)
    output = watch.output()
    assert code == 4, output
    assert elapsed <= bound + TEARDOWN, (elapsed, output)
    assert message(42, CMD, "web") + "thread 11). [ID:web]" in output
    assert "name resolution" not in output
    no_traceback(output)


# -- the last resort ------------------------------------------------------------

# A real watch whose shutdown hangs once it has its verdict: the last step
# of the winding down (its logs' observers stopping) never returns, as a
# flush to a hung file system would not.  The last resort is shortened to
# 2 s.  What the watch logs goes to stdout; HUNG marks the hang on stderr.
_HUNG_SHUTDOWN = r"""
import sys, time
from ismon.watch import health, log_routing

health.EXIT_DEADLINE = 2.0

def hang(self):
    sys.stderr.write("HUNG %.6f\n" % time.monotonic())
    sys.stderr.flush()
    time.sleep(3600)

log_routing.LogRouting.stop = hang
sys.argv = ["clp_httpmon"] + sys.argv[1:]
from ismon.cmdline.cli import clp
clp("clp_httpmon")
"""


def _hung_at(watch: WatchProcess) -> float:
    line = watch.wait_for(r"^HUNG \d")
    return float(line.split()[1])


@pytest.mark.parametrize("squeeze", ["threads", "address space"])
def test_a_hung_shutdown_ends_with_the_verdict_by_the_last_resort(
    squeeze: str,
    http_server: Nginx,
    processes: Processes,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """
    A watch squeezed while it watches -- no thread to be had (its pids
    cgroup full), its address space cut below what it uses -- still gets
    its verdict in time, writes its record, and its exit: before, the last
    resort (a new timer thread) could not start there, and a shutdown that
    hung kept the process alive for good.  Here the shutdown hangs, and the
    verdict stands: exit 1, 2 s after the verdict.
    """
    state = tmp_path / "state"
    argv = [
        sys.executable,
        "-c",
        _HUNG_SHUTDOWN,
        *watch_argv(CMD, "web", LOOPBACK, http_server.port, state)[len(command(CMD)) :],
    ]
    watch = processes.start(argv)
    bound = started(watch, CMD, "web")
    if squeeze == "threads":
        cgroup: PidsCgroup = request.getfixturevalue("pids_cgroup")
        cgroup.join(watch.pid)
        cgroup.limit(cgroup.tasks())
    elif squeeze == "address space":
        _squeeze_address_space(watch.pid)
    with http_server.stalled():
        since = time.monotonic()
        code, elapsed = _ended_within(watch, since, bound + 2)
        output = watch.output()
    assert code == 1, output
    assert elapsed <= bound + 2 + TEARDOWN, (elapsed, output)
    # The last resort's 2 s count from the verdict, a moment before the
    # shutdown reaches the hang (the record and message 6 come between):
    # 1.98 s after the hang was seen here.  Well over 1 s still shows the
    # hang held the process until the last resort ended it.
    assert 1.5 <= since + elapsed - _hung_at(watch) <= 2.0 + TEARDOWN
    # The record and message 6 come before the hang.
    assert message(6, CMD, "web") in output
    assert _record(state, "web")["exit_code"] == 1
    no_traceback(output)


def test_a_watch_that_ends_before_watching_has_the_alarm_for_last_resort(
    processes: Processes, tmp_path: Path
) -> None:
    """No watchdog thread yet (the ID is in use): SIGALRM ends it with 3."""
    state = tmp_path / "state"
    held = WatchLock.acquire(StateDir.open(state), "web")
    try:
        argv = [
            sys.executable,
            "-c",
            _HUNG_SHUTDOWN,
            *watch_argv(CMD, "web", LOOPBACK, free_port(), state)[len(command(CMD)) :],
        ]
        watch = processes.start(argv)
        hung = _hung_at(watch)
        assert watch.wait() == 3, watch.output()
        # The alarm: the last resort's 2 s and its second of slack.
        assert 2.5 <= time.monotonic() - hung <= 3.0 + TEARDOWN
        assert message(14, CMD, "web") in watch.output()
    finally:
        held.release()
