"""
Process faults (issue 6, "Fault-injection tests"): the server restarted or
killed under a watch, the watch killed and restarted, races for one watch
ID, a load of control calls, hostile clients on the control socket, and
another user trying it.

(A server stalled with SIGSTOP/SIGCONT, and the basic duplicate-ID and
SIGKILL-then-restart cases, are in C{tests/test_watch.py}.)

Every failure asserts the exit code, the message id and that the exit came
within the printed bound (+0.5 s) of the fault.  Servers run on loopback;
every process is ended by PID when its test ends.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.netns import (
    assert_server_failed,
    failure_lines,
    no_traceback,
    start_aiosmtpd_at,
    start_nginx_at,
    started,
    wait_for_good_probes,
    watch_argv,
    watch_status,
)
from tests.servers import Aiosmtpd, Nginx, ServerProcess, ServerUnavailable, free_port
from tests.watchproc import PATIENCE, Processes, WatchProcess, command, message

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
KINDS = ["clp_httpmon", "clp_smtpmon"]


def _unavailable(reason: str) -> None:
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


class Restartable:
    """A server on a fixed loopback port that can be killed and started again."""

    def __init__(self, cmd: str, directory: Path) -> None:
        self.cmd = cmd
        self.directory = directory
        self.port = free_port()
        self.server: ServerProcess | None = None

    def start(self) -> ServerProcess:
        try:
            if self.cmd == "clp_httpmon":
                self.server = start_nginx_at(self.directory, LOOPBACK, self.port)
            else:
                self.server = start_aiosmtpd_at(self.directory, LOOPBACK, self.port)
        except ServerUnavailable as e:
            _unavailable(f"server unavailable: {e}")
        assert self.server is not None
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def restartable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    server = Restartable(request.param, tmp_path / "server")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _cmd_of(server: Restartable) -> str:
    return server.cmd


# -- the server restarted or killed ------------------------------------------------


@pytest.mark.parametrize("restartable", KINDS, indirect=True)
def test_server_restart_inside_the_retry_window_keeps_the_watch(
    restartable: Restartable, processes: Processes, tmp_path: Path
) -> None:
    """
    The server stops (gracefully) and a new one starts on the same port
    after the watch has seen the refusal (72, 111) but before its retries
    run out (-c 3): no exit, message 95, and the watch probes the new
    server.
    """
    cmd = _cmd_of(restartable)
    state = tmp_path / "state"
    # Retries 3 s apart: a restart on a loaded machine can take seconds,
    # and it must fit in the window for this test to mean anything.
    retry = 3
    timing = ["-i", "1", "-c", "3", "-r", "1", "--retry-interval", str(retry)]
    watch = processes.start(
        watch_argv(cmd, "restart1", LOOPBACK, restartable.port, state, timing=timing),
        name="watch",
    )
    bound = started(watch, cmd, "restart1")
    wait_for_good_probes("restart1", state, 1)
    old = restartable.server
    assert old is not None

    stopped_at = time.monotonic()
    restartable.stop()
    refused = re.escape(message(72, cmd, "restart1", nn=errno.ECONNREFUSED)) + "$"
    watch.wait_for(refused, 2 * retry)
    restartable.start()
    # Back with one retry or more to go (the last one is 3 * retry after
    # the first failure, which came after the stop).
    assert time.monotonic() - stopped_at < 2 * retry, "the restart took longer than the retries"
    watch.wait_for(re.escape(message(95, cmd, "restart1")) + "$", bound)
    assert restartable.server is not old and restartable.server.running()

    # Past the bound, counted from the stop: had the failures gone on, the
    # watch would have ended by now.
    time.sleep(max(0.0, stopped_at + bound + 0.5 - time.monotonic()))
    assert watch.running(), watch.output()
    current = wait_for_good_probes("restart1", state, 1)
    assert current["consecutive_failures"] == 0
    failures = failure_lines(watch.output())
    assert 1 <= len(failures) <= 3, watch.output()
    assert all(line.endswith(message(72, cmd, "restart1", nn=111)) for line in failures)
    no_traceback(watch.output())


@pytest.mark.parametrize("restartable", KINDS, indirect=True)
def test_killed_server_ends_the_watch_with_connect_error_111(
    restartable: Restartable, processes: Processes, tmp_path: Path
) -> None:
    """
    SIGKILL to every process of the server (nginx: master and worker): the
    port is closed at once, connections are refused, 72 (111), exit 1
    within the bound.
    """
    cmd = _cmd_of(restartable)
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(cmd, "killed1", LOOPBACK, restartable.port, state), name="watch"
    )
    bound = started(watch, cmd, "killed1")
    wait_for_good_probes("killed1", state, 1)
    server = restartable.server
    assert server is not None
    family = server.pids()
    if isinstance(server, Nginx):
        assert len(family) >= 2, "nginx should have a master and a worker"

    for pid in family:
        os.kill(pid, signal.SIGKILL)
    fault_at = time.monotonic()  # once the last process is killed
    assert_server_failed(
        watch, cmd, "killed1", fault_at=fault_at, bound=bound, number=72, nn=errno.ECONNREFUSED
    )
    assert server.process.wait(PATIENCE) == -signal.SIGKILL


# -- the watch killed, or started twice at once ---------------------------------------


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Nginx]:
    try:
        server = start_nginx_at(tmp_path / "nginx", LOOPBACK, free_port())
    except ServerUnavailable as e:
        _unavailable(f"server unavailable: {e}")
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Aiosmtpd]:
    try:
        server = start_aiosmtpd_at(tmp_path / "aiosmtpd", LOOPBACK, free_port())
    except ServerUnavailable as e:
        _unavailable(f"server unavailable: {e}")
        raise
    try:
        yield server
    finally:
        server.stop()


def test_watch_sigkilled_at_any_moment_is_restarted_at_once(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    A watch SIGKILLed at any point of its life -- while importing, while
    taking its lock, while binding its control socket, while probing -- is
    replaced by a new one started at once (not even reaped first): the
    records of the dead never block it (no message 14), and the last one
    runs, owns the records and probes.
    """
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    argv = watch_argv(cmd, "phoenix1", LOOPBACK, http_server.port, state)
    killed: list[WatchProcess] = []
    # Seconds after the spawn; None: once it is watching.
    moments: list[float | None] = [0.05, 0.2, 0.35, 0.5, 0.7, None, None]
    for moment in moments:
        watch = processes.start(argv, name="phoenix")
        if moment is None:
            started(watch, cmd, "phoenix1")
            wait_for_good_probes("phoenix1", state, 1)
        else:
            time.sleep(moment)
        watch.signal(signal.SIGKILL)
        killed.append(watch)
    last = processes.start(argv, name="phoenix")
    started(last, cmd, "phoenix1")
    for watch in killed:
        assert watch.wait() == -signal.SIGKILL
        assert message(14, cmd, "phoenix1") not in watch.output(), watch.output()
    current = wait_for_good_probes("phoenix1", state, 2)
    assert current["pid"] == last.pid
    assert (state / "phoenix1.pid").read_text().strip() == str(last.pid)
    disp = subprocess.run(
        [*command(cmd), "phoenix1", "--disp", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (disp.returncode, disp.stdout) == (0, f"{last.pid}\n")
    no_traceback(last.output())


def test_simultaneous_starts_of_one_id_exactly_one_wins(
    http_server: Nginx, smtp_server: Aiosmtpd, processes: Processes, tmp_path: Path
) -> None:
    """
    Four watches of one ID spawned at the same instant (HTTP and SMTP, by
    clp_* and ismon): exactly one runs; the others exit 3 with message 14
    and never log message 1.  Two rounds.
    """
    state = tmp_path / "state"

    def contenders(watch_id: str) -> list[tuple[str, list[str]]]:
        http = watch_argv("clp_httpmon", watch_id, LOOPBACK, http_server.port, state)
        smtp = watch_argv("clp_smtpmon", watch_id, LOOPBACK, smtp_server.port, state)
        via_ismon = [*command("ismon"), "http", *http[len(command("clp_httpmon")) :]]
        return [
            ("clp_httpmon", http),
            ("clp_smtpmon", smtp),
            ("clp_httpmon", via_ismon),
            ("clp_httpmon", http),
        ]

    for round_ in range(2):
        watch_id = f"race{round_}"
        entrants = contenders(watch_id)
        random.Random(round_).shuffle(entrants)
        watches = [(cmd, processes.start(argv, name=watch_id)) for cmd, argv in entrants]
        # Each one either starts watching (message 1) or ends.
        undecided = list(watches)
        deadline = time.monotonic() + PATIENCE
        while undecided:
            for cmd, watch in list(undecided):
                if not watch.running() or message(1, cmd, watch_id) in watch.output():
                    undecided.remove((cmd, watch))
            assert time.monotonic() < deadline, [w.output() for _, w in undecided]
            time.sleep(0.05)
        winners = [(cmd, watch) for cmd, watch in watches if watch.running()]
        for cmd, watch in watches:
            if watch.running():
                continue
            output = watch.output()
            assert watch.process.returncode == 3, output
            assert message(14, cmd, watch_id) in output, output
            assert message(1, cmd, watch_id) not in output, output
            no_traceback(output)
        assert len(winners) == 1, [w.output() for _, w in winners]
        cmd, winner = winners[0]
        started(winner, cmd, watch_id)
        assert watch_status(watch_id, state)["pid"] == winner.pid
        winner.signal(signal.SIGTERM)
        assert winner.wait() == 0


# -- many control calls at once ----------------------------------------------------------

# Runs in a subprocess: a Twisted reactor of its own firing the planned
# control calls through ismon.control's client, wave by wave (the calls of
# a wave all at once); prints one JSON result per call.
_HAMMER = r"""
import json, sys
from pathlib import Path
from twisted.internet import defer, task
from ismon.control import amp as control

COMMANDS = {"pause": control.Pause, "continue": control.Continue, "status": control.Status}

async def one(reactor, path, index, name):
    result = {"i": index, "cmd": name}
    try:
        answer = await control.call(reactor, path, COMMANDS[name], timeout=15)
    except control.ControlUnavailable as e:
        result.update(outcome="unavailable", error=str(e))
        return result
    except control.ControlError as e:
        result.update(outcome="error", error=f"{type(e).__name__}: {e}")
        return result
    result["outcome"] = "ok"
    if "changed" in answer:
        result["changed"] = answer["changed"]
    if "status" in answer:
        result["state"] = json.loads(answer["status"])["state"]
    return result

async def run(reactor, path, plan):
    results = []
    index = 0
    for wave in plan:
        calls = []
        for name in wave:
            calls.append(defer.Deferred.fromCoroutine(one(reactor, path, index, name)))
            index += 1
        results.extend(await defer.gatherResults(calls, consumeErrors=True))
    return results

def main(reactor, path, plan):
    d = defer.Deferred.fromCoroutine(run(reactor, Path(path), json.loads(plan)))
    d.addCallback(lambda results: print(json.dumps(results)))
    return d

task.react(main, sys.argv[1:])
"""


def _socket_of(state: Path, watch_id: str) -> Path:
    path = state / f"{watch_id}.sock"
    assert path.exists(), sorted(p.name for p in state.iterdir())
    return path


def _hammer(socket_path: Path, plan: list[list[str]], timeout: float = 60) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", _HAMMER, str(socket_path), json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    results: list[dict] = json.loads(result.stdout.strip().splitlines()[-1])
    return results


def _count_lines(output: str, text: str) -> int:
    return sum(1 for line in output.splitlines() if line.endswith(text))


def test_hundreds_of_concurrent_control_calls(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    300 pause/continue/status calls in waves of 50 concurrent connections,
    then a burst of 150 at once (beyond the 64 connections the watch
    serves; the excess is turned away).  No crash; every answered call is
    consistent with one serial order (a pause changes something only when
    watching, a continue only when paused, so the changes alternate); the
    watch logged 7/8 once per answered pause/continue; the final state
    matches the last call; and the watch still probes.
    """
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(cmd, "load1", LOOPBACK, http_server.port, state), name="watch"
    )
    started(watch, cmd, "load1")
    wait_for_good_probes("load1", state, 1)
    sock = _socket_of(state, "load1")

    rng = random.Random(6)
    names = ["pause", "continue", "status"]
    plan = [[rng.choice(names) for _ in range(50)] for _ in range(6)]
    plan.append([rng.choice(names) for _ in range(150)])
    began = time.monotonic()
    results = _hammer(sock, plan)
    took = time.monotonic() - began
    assert len(results) == 450
    assert took < 30, f"the calls took {took:.1f}s"

    waves, burst = results[:300], results[300:]
    assert [r for r in waves if r["outcome"] != "ok"] == []
    assert all(r["outcome"] in ("ok", "unavailable") for r in burst), burst
    answered = [r for r in results if r["outcome"] == "ok"]
    # At least what fits in the listen backlog (50) is served, up to the
    # 64 connections the watch serves at once; the rest is turned away.
    assert sum(r["outcome"] == "ok" for r in burst) >= 50
    assert watch.running(), watch.output()

    # One serial order explains every answer.
    paused = sum(1 for r in answered if r["cmd"] == "pause" and r["changed"])
    resumed = sum(1 for r in answered if r["cmd"] == "continue" and r["changed"])
    assert paused - resumed in (0, 1), (paused, resumed)
    assert {r["state"] for r in answered if r["cmd"] == "status"} <= {"watching", "paused"}
    final = watch_status("load1", state)
    assert final["state"] == ("paused" if paused - resumed == 1 else "watching"), final

    # Every answered pause/continue was logged (7 / 8), nothing else went wrong.
    time.sleep(0.2)
    output = watch.output()
    pauses = sum(1 for r in answered if r["cmd"] == "pause")
    continues = sum(1 for r in answered if r["cmd"] == "continue")
    assert _count_lines(output, message(7, cmd, "load1")) == pauses
    assert _count_lines(output, message(8, cmd, "load1")) == continues
    assert failure_lines(output) == [], output
    no_traceback(output)

    # The last call decides: pause, then continue, and the watch probes again.
    for action, state_name in (("pause", "paused"), ("continue", "watching")):
        done = subprocess.run(
            [*command(cmd), "load1", f"--{action}", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert watch_status("load1", state)["state"] == state_name
    before = len(http_server.access_lines())
    after_continue = watch_status("load1", state)["probes"]
    wait_for_good_probes("load1", state, after_continue + 2)
    assert len(http_server.access_lines()) >= before + 2


# -- hostile clients on the control socket -------------------------------------------------


def _box(**fields: str) -> bytes:
    """One AMP box, encoded by hand."""
    data = b""
    for key, value in fields.items():
        k, v = key.encode(), value.encode()
        data += struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v
    return data + b"\x00\x00"


STATUS_BOX = _box(_command="status", _ask="1")


def _connect(path: Path) -> socket.socket:
    """A connection to the control socket (waiting while its backlog is full)."""
    deadline = time.monotonic() + 5
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(os.fspath(path))
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
        except BaseException:
            s.close()
            raise


def _closed_by_peer(s: socket.socket, within: float) -> bool:
    """Whether the other end closes C{s} within C{within} seconds (data is discarded)."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            return False
        try:
            if not s.recv(65536):
                return True
        except ConnectionResetError:
            return True


def _send_all(s: socket.socket, data: bytes) -> None:
    """Send what the peer takes; a peer that hangs up half-way is fine."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        s.sendall(data)


def test_hostile_clients_on_the_control_socket_leave_the_watch_unharmed(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    Raw garbage, an oversized key length, a huge value length followed by
    a flood, an unknown command, a request whose client vanishes before
    the answer, half a box left hanging and clients that connect and say
    nothing: each is dropped or ignored, and meanwhile and afterwards the
    watch answers status, keeps probing and logs no traceback.
    """
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    watch = processes.start(
        # --debug: the control socket's own warnings are not catalogue lines.
        [*watch_argv(cmd, "hostile1", LOOPBACK, http_server.port, state), "--debug"],
        name="watch",
    )
    started(watch, cmd, "hostile1")
    first = wait_for_good_probes("hostile1", state, 1)
    path = _socket_of(state, "hostile1")
    held: list[socket.socket] = []
    try:
        # Garbage (an HTTP request): "GE" is a key length of 18245 > 255.
        s = _connect(path)
        _send_all(s, b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)) * 4)
        assert _closed_by_peer(s, 5), "garbage was not dropped"
        s.close()

        # A key length just over AMP's 255.
        s = _connect(path)
        _send_all(s, b"\x01\x00" + b"k" * 256)
        assert _closed_by_peer(s, 5)
        s.close()

        # A valid key, then the largest value length and a 1 MiB flood.
        s = _connect(path)
        _send_all(s, b"\x00\x08_command\xff\xff" + b"\x00" * (1 << 20))
        assert _closed_by_peer(s, 5), "a flood was not cut"
        s.close()

        # A command nobody knows, without _ask (no answer wanted): dropped
        # with a warning, not a critical traceback.
        s = _connect(path)
        s.sendall(_box(_command="format-disk"))
        assert _closed_by_peer(s, 5)
        s.close()

        # A well-formed box with a command nobody knows: an error answer, and
        # the same connection still serves a real request afterwards.
        s = _connect(path)
        s.sendall(_box(_command="format-disk", _ask="7"))
        s.sendall(STATUS_BOX)
        answers = b""
        while b"watch_id" not in answers:
            chunk = s.recv(65536)
            assert chunk, answers
            answers += chunk
        assert b"_error" in answers and b"UNHANDLED" in answers.upper()
        s.close()

        # A request whose client resets the connection before the answer.
        for _ in range(20):
            s = _connect(path)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(STATUS_BOX)
            s.close()

        # Half a box, then silence; and clients that connect and say nothing.
        s = _connect(path)
        s.sendall(b"\x00\x08_command\x00\x06sta")
        held.append(s)
        for _ in range(30):
            held.append(_connect(path))

        current = watch_status("hostile1", state)
        assert current["state"] == "watching"
        assert watch.running()
    finally:
        for s in held:
            s.close()

    time.sleep(1.2)
    current = wait_for_good_probes("hostile1", state, first["probes"] + 2)
    assert current["failures"] == 0
    assert watch.running()
    output = watch.output()
    no_traceback(output)
    assert "Dropped a control connection" in output, output
    assert "#critical]" not in output, output
    assert "request that cannot be answered: RemoteAmpError" in output, output


def test_too_many_idle_clients_only_delay_control_until_they_go(
    http_server: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    More silent connections than the watch serves (64): further clients
    are turned away while they last -- but probing goes on, and once they
    are gone the watch answers again.
    """
    cmd = "clp_httpmon"
    state = tmp_path / "state"
    watch = processes.start(
        # --debug: the control socket's own warnings are not catalogue lines.
        [*watch_argv(cmd, "crowd1", LOOPBACK, http_server.port, state), "--debug"],
        name="watch",
    )
    started(watch, cmd, "crowd1")
    first = wait_for_good_probes("crowd1", state, 1)
    path = _socket_of(state, "crowd1")
    held: list[socket.socket] = []
    try:
        for _ in range(70):
            held.append(_connect(path))
        time.sleep(0.3)
        refused = subprocess.run(
            [*command("ismon"), "status", "crowd1", "--json", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode != 0, refused.stdout
        no_traceback(refused.stderr)
        before = len(http_server.access_lines())
        # Two probes at -i 1 fit in 3.5 s even if each comes a second late.
        time.sleep(3.5)
        assert len(http_server.access_lines()) >= before + 2, "probing stopped"
    finally:
        for s in held:
            s.close()
    current = wait_for_good_probes("crowd1", state, first["probes"] + 2)
    assert current["failures"] == 0
    assert watch.running()
    no_traceback(watch.output())
    assert "Refused a control connection: 64 already open." in watch.output()


# -- another user ---------------------------------------------------------------------------

NOBODY = 65534


def _as_user(uid: int, action: Callable[[], str], timeout: float = 10) -> str:
    """Run C{action} in a forked child with uid and gid C{uid}; its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                result = action()
            except BaseException as e:
                result = f"error {type(e).__name__}: {e}"
            os.write(write_end, result.encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        text = os.read(read_end, 4096).decode() if ready else "timeout"
    finally:
        os.close(read_end)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return text


def _try_control(path: Path, box: bytes) -> Callable[[], str]:
    def attempt() -> str:
        try:
            s = _connect(path)
        except PermissionError:
            return "EACCES"
        except OSError as e:
            return f"connect {e.errno}"
        try:
            s.sendall(box)
        except OSError:
            pass
        answer = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
            if answer.endswith(b"\x00\x00"):  # a whole box (the answer)
                break
        s.close()
        return "answered " + answer.decode(errors="replace") if answer else "closed"

    return attempt


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A short folder outside pytest's private (0700) tree, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ismon-faults-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_another_user_is_refused_by_the_control_socket(
    http_server: Nginx, processes: Processes, shared_dir: Path
) -> None:
    """
    uid 65534 may traverse the state folder (chmod for the test): the
    socket's mode 0600 refuses it (EACCES).  With the socket opened up to
    everybody (0666, as a careless admin might), the watch itself checks
    the peer's uid (SO_PEERCRED) and drops the connection without
    answering -- a Stop from that user stops nothing.  The watch goes on
    and still answers its owner.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    cmd = "clp_httpmon"
    state = shared_dir / "state"
    watch = processes.start(
        # --debug: the control socket's own warnings are not catalogue lines.
        [*watch_argv(cmd, "other1", LOOPBACK, http_server.port, state), "--debug"],
        name="watch",
    )
    started(watch, cmd, "other1")
    first = wait_for_good_probes("other1", state, 1)
    path = _socket_of(state, "other1")
    assert (path.stat().st_mode & 0o777) == 0o600

    shared_dir.chmod(0o711)
    state.chmod(0o711)
    try:
        assert _as_user(NOBODY, _try_control(path, STATUS_BOX)) == "EACCES"
        path.chmod(0o666)
        for box in (STATUS_BOX, _box(_command="stop", _ask="1"), _box(_command="pause")):
            assert _as_user(NOBODY, _try_control(path, box)) == "closed"
        # Root may still, as may the owner (root here too).
        assert _try_control(path, STATUS_BOX)().startswith("answered")
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)
        state.chmod(0o700)
        shared_dir.chmod(0o700)

    time.sleep(1.2)
    assert watch.running(), watch.output()
    current = wait_for_good_probes("other1", state, first["probes"] + 1)
    assert current["state"] == "watching"
    output = watch.output()
    assert f"runs as uid {NOBODY}" in output, output
    assert message(3, cmd, "other1") not in output  # no stop
    assert message(7, cmd, "other1") not in output  # no pause
    no_traceback(output)
