"""
Helpers shared by the benchmarks in this folder: errors, signal handling,
starting and ending the processes a bench runs, and a percentile.

The benches are run as ``python bench/NAME.py`` and import this module from
their own folder (``from _common import ...``).  Ending a process, finding a
console script and waiting for a port are the tests' own helpers
(``tests/procs.py``, the one home of each): a bench runs from a checkout,
which always holds ``tests/``, so this module puts the checkout on
``sys.path`` and uses them, turning their errors into BenchError.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Run from a checkout without installing: put the repository root first.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.procs import ScriptNotInstalled, end_process, wait_for_port  # noqa: E402
from tests.procs import console_script as tests_console_script  # noqa: E402

__all__ = [
    "STAMP_SERVER",
    "BenchError",
    "Interrupted",
    "catch_signals",
    "console_script",
    "die_with_parent",
    "end_process",
    "ignore_signals",
    "percentile",
    "proc_cpu",
    "spawn",
    "wait_for_port",
    "wait_for_port_file",
]

#: Seconds for a server of a bench to start listening.
START_TIMEOUT = 30.0


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
    try:
        return str(tests_console_script(name))
    except ScriptNotInstalled as e:
        raise BenchError(str(e)) from None


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


def wait_for_port_file(
    port_file: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = START_TIMEOUT
) -> int:
    """
    The port a server started with STAMP_SERVER listens on, once it has
    written it to port_file.

    Raises BenchError if proc ends or timeout seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"{what} did not start")
        time.sleep(0.02)
    return int(port_file.read_text())


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
