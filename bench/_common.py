"""
Helpers shared by the benchmarks in this folder: errors, signal handling,
starting and ending the processes a bench runs, and a percentile.

The benches are run as ``python bench/NAME.py`` and import this module from
their own folder (``from _common import ...``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


class BenchError(Exception):
    """Something broke: the figures would be meaningless."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: clean up and leave."""


def _on_signal(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def catch_signals() -> None:
    """SIGTERM and SIGINT raise Interrupted from now on."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def ignore_signals() -> None:
    """SIGINT and SIGTERM are ignored from now on (while cleaning up)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this bench dies (Linux)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def console_script(name: str) -> str:
    """The console script next to this interpreter (not a pyenv shim), else PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} is not installed (pip install -e . in the checkout)")
    return found


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def proc_cpu(pid: int) -> float:
    """CPU seconds of all threads of pid: schedstat (ns) where present, else stat (ticks)."""
    total = 0.0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
        return total
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start argv in its own session, stdout and stderr to log, SIGTERM if the bench dies."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def end_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """SIGCONT, SIGTERM, then SIGKILL after timeout: one process we started, by PID.

    The exit code if it exited by itself or on SIGTERM, None if it had to be killed.
    """
    if proc.poll() is not None:
        return proc.returncode
    for sig in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
        return None


# A tiny HTTP server (run as ``python -c STAMP_SERVER PORT-FILE STAMP-FILE
# SECONDS``, in a process of its own): a blocking accept loop that stamps
# each accepted connection with time.monotonic() (one clock for all the
# processes of the machine) in STAMP-FILE, answers 200 and closes.  It writes
# its port to PORT-FILE (atomically) once it listens.  Bounded: it exits by
# itself after SECONDS (and on SIGTERM, and when the bench dies).
STAMP_SERVER = r"""
import os, socket, sys, time
port_file, stamp_file, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + limit
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
s.settimeout(1.0)
with open(port_file + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
out = open(stamp_file, "a", buffering=1)
answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
while time.monotonic() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    out.write("%.6f\n" % time.monotonic())
    c.settimeout(2.0)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < 8192:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.sendall(answer)
    except OSError:
        pass
    c.close()
"""
