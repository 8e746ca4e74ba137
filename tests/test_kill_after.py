"""
C{ismon stop ID --kill-after S} and C{clp_httpmon ID --stop --kill-after S}
(README "Stopping by force"), as real processes: a real watch whose process
is frozen (SIGSTOP: it cannot answer the stop request, SIGTERM stays pending,
only SIGKILL ends it), a real watch that takes SIGTERM, and stand-ins that
hold a watch's lock the way a watch does (flock and pidfile), to prove that
no process but the one holding the lock is ever signalled - also when the
watch's PID is reused by another process (in a private PID namespace, where
the test chooses the next PID).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ismon.control.recognise import recognise
from ismon.control.request import ControlRequest
from tests.servers import Nginx
from tests.test_control_commands import Runner
from tests.watchproc import (
    LOOPBACK,
    Processes,
    WatchProcess,
    command,
    message,
    processes_of_test,
    watch_argv,
)

# -- which command lines take the fast way ----------------------------------


@pytest.mark.parametrize(
    ("program", "argv", "expected"),
    [
        (
            "ismon",
            ["stop", "web", "--kill-after", "5"],
            ControlRequest("ismon", "web", "stop", 10, kill_after=5),
        ),
        (
            "ismon",
            ["stop", "web", "-r", "3", "--kill-after=7"],
            ControlRequest("ismon", "web", "stop", 3, kill_after=7),
        ),
        (
            "clp_httpmon",
            ["web", "--stop", "-r", "20", "--kill-after", "10"],
            ControlRequest("clp_httpmon", "web", "stop", 20, kill_after=10),
        ),
        (
            "clp_smtpmon",
            ["mail", "--kill-after", "10000", "--stop"],
            ControlRequest("clp_smtpmon", "mail", "stop", kill_after=10000),
        ),
    ],
)
def test_recognised(program: str, argv: list[str], expected: ControlRequest) -> None:
    assert recognise(program, argv) == expected


@pytest.mark.parametrize(
    ("program", "argv"),
    [
        ("ismon", ["stop", "web", "--kill-after", "0"]),
        ("ismon", ["stop", "web", "--kill-after", "10001"]),
        ("ismon", ["stop", "web", "--kill-after", "x"]),
        ("ismon", ["stop", "web", "--kill-after"]),
        ("ismon", ["pause", "web", "--kill-after", "5"]),
        ("ismon", ["status", "--kill-after", "5"]),
        ("clp_httpmon", ["web", "--kill-after", "5"]),  # a watch to start: refused
        ("clp_httpmon", ["web", "--disp", "--kill-after", "5"]),
        ("clp_httpmon", ["web", "--stop", "--kill", "5"]),  # getopt abbreviation
    ],
)
def test_left_to_the_long_way(program: str, argv: list[str]) -> None:
    assert recognise(program, argv) is None


# -- refusals -----------------------------------------------------------------


@pytest.fixture(name="processes")
def _processes(tmp_path: Path) -> Iterator[Processes]:
    yield from processes_of_test(tmp_path)


@pytest.mark.parametrize(
    ("argv", "stderr"),
    [
        (
            ["ismon", "stop", "web", "--kill-after", "0"],
            message(11, "ismon", "web")
            + ' --kill-after must be a whole number from 1 to 10000, not "0" (see --help)\n',
        ),
        (
            ["clp_httpmon", "web", "--kill-after", "5"],
            message(11, "clp_httpmon", "web") + " --kill-after goes with --stop (see --help)\n",
        ),
        (
            ["clp_smtpmon", "mail", "--pause", "--kill-after", "5"],
            message(11, "clp_smtpmon", "mail") + " --kill-after goes with --stop (see --help)\n",
        ),
        (
            ["ismon", "pause", "web", "--kill-after", "5"],
            "ismon pause: --kill-after goes with stop (see --help)\n",
        ),
        (
            ["ismon", "status", "--kill-after", "5"],
            "ismon status: --kill-after goes with stop (see --help)\n",
        ),
    ],
)
def test_refused(processes: Processes, tmp_path: Path, argv: list[str], stderr: str) -> None:
    program, *args = argv
    done = processes.run([*command(program), *args, "--state-dir", str(tmp_path / "state")])
    assert (done.returncode, done.stdout, done.stderr) == (2, "", stderr)
    assert not (tmp_path / "state").exists()


# -- real watches -------------------------------------------------------------


def _watch(processes: Processes, nginx: Nginx, state: Path, watch_id: str = "web") -> WatchProcess:
    watch = processes.start(
        watch_argv("clp_httpmon", watch_id, LOOPBACK, nginx.port, state, timing=["-i", "1"]),
        name="watch",
    )
    watch.wait_for(re.escape(message(1, "clp_httpmon", watch_id)) + "$", 30)
    return watch


def _stop(
    processes: Processes, state: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = processes.run([*command("ismon"), "stop", *args, "--state-dir", str(state)], timeout=60)
    return done, time.monotonic() - started


@pytest.mark.integration
def test_a_frozen_watch_is_killed(nginx: Nginx, processes: Processes, tmp_path: Path) -> None:
    """
    SIGSTOP freezes the whole watch: the stop request gets no answer,
    SIGTERM stays pending, SIGKILL ends it.  Without --kill-after the stop
    gives up as before (message 15, exit 5) and leaves the watch alone.
    """
    state = tmp_path / "state"
    watch = _watch(processes, nginx, state)
    watch.signal(signal.SIGSTOP)

    done, _ = _stop(processes, state, "web", "-r", "1")
    assert (done.returncode, done.stderr) == (5, message(15, "ismon", "web") + "\n")
    assert watch.running()

    # The whole escalation in the standard library, as every control command.
    started = time.monotonic()
    done = Runner(processes, tmp_path, state)(
        "ismon", "stop", "web", "-r", "2", "--kill-after", "2"
    )
    took = time.monotonic() - started
    pid = watch.pid
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (
        f"ismon: watch web (PID {pid}) did not end within 2 s: SIGTERM\n"
        f"ismon: watch web (PID {pid}) did not end within 2 s of SIGTERM: SIGKILL\n"
        f"ismon: watch web (PID {pid}) ended after SIGKILL\n"
    )
    assert watch.wait(10) == -signal.SIGKILL
    # WAIT, then S after SIGTERM; the lock is free as soon as SIGKILL lands.
    assert 4 <= took < 4 + 2 + 10, took
    # The ID is free: a new watch of the same ID starts at once.
    again = _watch(processes, nginx, state)
    done, _ = _stop(processes, state, "web", "--kill-after", "5")
    assert (done.returncode, done.stderr) == (0, "")
    assert again.wait(20) == 0


@pytest.mark.integration
def test_a_watch_that_cannot_be_asked_takes_sigterm(
    nginx: Nginx, processes: Processes, tmp_path: Path
) -> None:
    """
    With its control socket gone, the stop request cannot reach the watch;
    SIGTERM after the wait ends it the normal way (exit 0), and SIGKILL is
    not needed.
    """
    state = tmp_path / "state"
    watch = _watch(processes, nginx, state)
    (state / "web.sock").unlink()
    done, took = _stop(processes, state, "web", "-r", "1", "--kill-after", "20")
    pid = watch.pid
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == (
        f"ismon: watch web (PID {pid}) did not end within 1 s: SIGTERM\n"
        f"ismon: watch web (PID {pid}) ended after SIGTERM\n"
    )
    assert watch.wait(20) == 0
    assert took < 1 + 20, took


# -- stand-ins: what is never signalled -------------------------------------

# Holds ID.lock the way a watch does (flock, then the pidfile), and prints
# "locked".  With "fork", a child inherits the locked descriptor, so the lock
# outlives this process while the kernel keeps its PID as the lock's owner.
_STAND_IN = textwrap.dedent(
    """
    import fcntl, os, sys, time
    state, watch_id, pidfile_pid, mode = sys.argv[1:5]
    fd = os.open(f"{state}/{watch_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, (watch_id + "\\n").encode())
    with open(f"{state}/{watch_id}.pid", "w") as f:
        f.write(f"{pidfile_pid or os.getpid()}\\n")
    if mode == "fork" and os.fork() == 0:
        time.sleep(600)
        os._exit(0)
    print("locked", os.getpid(), flush=True)
    time.sleep(600)
    """
)


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def test_a_pidfile_naming_another_process_gets_nothing_signalled(
    processes: Processes, tmp_path: Path
) -> None:
    """
    The pidfile names a live bystander, but the lock is held by another
    process (the kernel says so in /proc/locks): neither is signalled.
    """
    state = _state(tmp_path)
    bystander = processes.start(["sleep", "600"], name="bystander")
    holder = processes.start(
        [sys.executable, "-c", _STAND_IN, str(state), "web", str(bystander.pid), "plain"],
        name="holder",
    )
    holder.wait_for("^locked ")
    done, _ = _stop(processes, state, "web", "-r", "1", "--kill-after", "1")
    assert done.returncode == 5
    assert done.stderr == (
        f"ismon: watch web: PID {bystander.pid} (its pidfile) does not hold its lock:"
        " not signalled\n" + message(15, "ismon", "web") + "\n"
    )
    assert bystander.running()
    assert holder.running()


def test_a_lock_that_outlives_the_process_is_reported(processes: Processes, tmp_path: Path) -> None:
    """
    The process holding the lock takes SIGTERM and dies, but a child of it
    inherited the locked descriptor: the ID stays held, SIGKILL changes
    nothing, and the stop says so (message 15, exit 5).  The child, which
    never held the lock under its own PID, is not signalled.
    """
    state = _state(tmp_path)
    holder = processes.start(
        [sys.executable, "-c", _STAND_IN, str(state), "web", "", "fork"], name="holder"
    )
    pid = int(holder.wait_for("^locked ").split()[1])
    try:
        _outlived(processes, state, holder, pid)
    finally:
        # The child is in the stand-in's own process group (a new session).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _outlived(processes: Processes, state: Path, holder: WatchProcess, pid: int) -> None:
    done, _ = _stop(processes, state, "web", "-r", "1", "--kill-after", "1")
    assert done.returncode == 5
    assert done.stderr == (
        f"ismon: watch web (PID {pid}) did not end within 1 s: SIGTERM\n"
        f"ismon: watch web (PID {pid}) did not end within 1 s of SIGTERM: SIGKILL\n"
        f"ismon: watch web: PID {pid} still holds its lock 1 s after SIGKILL\n"
        + message(15, "ismon", "web")
        + "\n"
    )
    assert holder.process.wait(10) == -signal.SIGTERM
    # The child still holds the lock: the ID is alive.
    shown = processes.run([*command("ismon"), "disp", "web", "--state-dir", str(state)])
    assert shown.returncode == 0, shown.stderr


# Inside a private PID namespace (PID 1 is this driver): a stand-in S takes
# the lock and forks a child that keeps it; `ismon stop --kill-after`
# starts and pins S; once its pidfd is open, S is killed and a bystander
# is started with S's PID (ns_last_pid).  The pidfile, the lock (held by
# S's child) and /proc/locks (which keeps S's PID as the lock's owner) all
# still say "PID S": only the pin tells that the process is another one.
_REUSE_DRIVER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    stand_in, state, ismon = sys.argv[1], sys.argv[2], sys.argv[3:]
    s = subprocess.Popen([sys.executable, "-c", stand_in, state, "web", "", "fork"],
                         stdout=subprocess.PIPE, text=True)
    assert s.stdout.readline().startswith("locked")
    stop = subprocess.Popen([*ismon, "stop", "web", "-r", "10", "--kill-after", "1",
                             "--state-dir", state], stderr=subprocess.PIPE, text=True)
    # The pin is a pidfd in the stop command's descriptor table.
    deadline = time.monotonic() + 60
    def pinned():
        fds = f"/proc/{stop.pid}/fd"
        try:
            return any(os.readlink(f"{fds}/{n}") == "anon_inode:[pidfd]" for n in os.listdir(fds))
        except OSError:
            return False
    while not pinned():
        assert stop.poll() is None and time.monotonic() < deadline, "never pinned"
        time.sleep(0.01)
    s.kill()
    s.wait()
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(s.pid - 1))
    bystander = subprocess.Popen(["sleep", "600"])
    assert bystander.pid == s.pid, (bystander.pid, s.pid)
    err = stop.communicate(timeout=60)[1]
    alive = bystander.poll() is None
    print(f"pid={s.pid} rc={stop.returncode} bystander_alive={alive}")
    print(err, end="")
    bystander.kill()
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="a private PID namespace needs root")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_reused_pid_is_never_signalled(processes: Processes, tmp_path: Path) -> None:
    state = _state(tmp_path)
    driver = processes.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-c",
            _REUSE_DRIVER,
            _STAND_IN,
            str(state),
            *command("ismon"),
        ],
        timeout=120,
    )
    assert driver.returncode == 0, driver.stderr
    first, *rest = driver.stdout.splitlines()
    pid = re.fullmatch(r"pid=(\d+) rc=5 bystander_alive=True", first)
    assert pid is not None, driver.stdout
    assert rest == [
        f"ismon: watch web: PID {pid[1]} is no longer the watch asked to stop (it ended):"
        " not signalled",
        message(15, "ismon", "web"),
    ]
