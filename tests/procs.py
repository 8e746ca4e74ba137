"""
Processes the tests and the benches start, and the waits around them: the
one home of ending a process by PID, finding a console script, waiting for a
port, and polling for a condition.

Both the tests and C{bench/} import this module (the benches through
C{bench/_common.py}, which puts the checkout on C{sys.path}, as they already
do for L{tests.servers}).  It lives here rather than in C{bench/} because the
benches always run from a checkout, which holds C{tests/}, while the tests
must not depend on the benches.  So it needs nothing but the standard
library: no pytest, no hypothesis, no Twisted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "PORT_TIMEOUT",
    "STOP_TIMEOUT",
    "ScriptNotInstalled",
    "alive",
    "console_script",
    "end_process",
    "signal_pid",
    "wait_for_port",
    "wait_until",
]

#: Seconds a process gets to end after being asked, and again after SIGKILL.
STOP_TIMEOUT = 5.0
#: Seconds to wait for a server to accept: a loaded CI machine can take
#: seconds to start one; the wait ends as soon as it accepts.
PORT_TIMEOUT = 30.0

T = TypeVar("T")


class ScriptNotInstalled(LookupError):
    """The console script is neither beside this Python nor on PATH."""


def console_script(name: str) -> Path:
    """
    The console script C{name} of this Python: the one beside
    C{sys.executable} (not a pyenv shim that may pick another Python), else
    the one on C{PATH}.

    @raise ScriptNotInstalled: neither exists (ismon is not installed).
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise ScriptNotInstalled(f"{name} is not installed (pip install -e . in the checkout)")
    return Path(found)


def signal_pid(pid: int, sig: int) -> None:
    """Send C{sig} to C{pid}; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """
    SIGSTOP C{pid} and return once every thread of it is stopped.

    kill() only queues the signal: a process running on the other core may
    still answer a connection made right after it returns (seen under CI load
    as an SMTP greeting that a "stalled" server sent).  A process that is gone
    is not an error.
    """
    signal_pid(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return
        states = []
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/stat", "rb") as f:
                    states.append(f.read().rsplit(b")", 1)[1].split()[0])
            except OSError:
                continue
        # T: stopped by a signal; t: stopped under a tracer; Z/X: gone.
        if all(state in (b"T", b"t", b"Z", b"X") for state in states):
            return
        time.sleep(0.005)
    raise TimeoutError(f"process {pid} did not stop within {timeout} s of SIGSTOP")


def alive(pid: int) -> bool:
    """Whether C{pid} runs; a zombie (ended, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def end_process(
    process: subprocess.Popen[bytes],
    timeout: float = STOP_TIMEOUT,
    *,
    stop_signal: int = signal.SIGTERM,
    group: bool = False,
) -> int | None:
    """
    End one process we started, by its PID: SIGCONT (it may be stopped, and
    a stopped process does not act on SIGTERM), C{stop_signal}, wait up to
    C{timeout} seconds, then SIGKILL and reap it.

    With C{group}, SIGCONT and SIGKILL go to its process group (the process
    was started in a session of its own, so the group is its PID and holds
    only what it forked, nginx's workers for instance).

    @return: its exit status if it ended by itself or on C{stop_signal},
        None if it had to be killed.
    """
    if process.poll() is not None:
        return process.returncode

    def send(sig: int, *, whole: bool) -> None:
        if whole:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
        else:
            signal_pid(process.pid, sig)

    send(signal.SIGCONT, whole=group)
    send(stop_signal, whole=False)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL, whole=group)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
        return None


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = PORT_TIMEOUT,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """
    Wait until something accepts TCP connections on C{host}:C{port}.

    @raise RuntimeError: not within C{timeout} seconds, or C{process} ended.
    """
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before accepting")
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect((host, port))
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing accepts on {host}:{port} after {timeout} s")
        time.sleep(0.02)


def wait_until(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.1) -> T:
    """
    Call C{predicate} every C{step} seconds until it returns something true,
    and return that.

    @raise AssertionError: C{timeout} seconds passed first (C{what} names
        what was awaited).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
