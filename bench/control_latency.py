#!/usr/bin/env python3
"""
Wall time and peak RSS of the control commands, next to a minimal stdlib
client doing the same AMP exchange, measured in the same run.

A real watch (clp_httpmon, the installed console script) runs against a
tiny local HTTP server on 127.0.0.1.  Then, N times, alternately:

  A   ``ismon status ID --state-dir D`` (the installed console script)
  B   the floor: ``python floor.py SOCKET`` (FLOOR below) - connect to the watch's control
      socket, send the same Status box, read the answer box, print the
      status text.  Nothing else: no state folder checks, no formatting.

and reports the median, min and max wall time of each, the A/B ratio of
each pair (their median, min and max), and the peak RSS of each command
(ru_maxrss of the child from os.wait4).  Then, the same way, ``ismon
status`` (all watches), ``ismon disp ID``, ``clp_httpmon ID --pause`` and
``clp_httpmon ID --continue``, each against B.

``--before DIR`` adds, in the same alternation, the same commands run from
another copy of the ismon sources (PYTHONPATH=DIR, through the same
console-script wrapper), e.g. the commit before the fast path:

    python bench/control_latency.py                     # 30 rounds (~20 s)
    python bench/control_latency.py --pairs 100
    git archive facaea9 | (mkdir -p /tmp/ismon-before && tar -x -C /tmp/ismon-before)
    python bench/control_latency.py --before /tmp/ismon-before

Targets (issue 11): median of the A/B ratios <= 1.5 for ``ismon status
ID``; peak RSS <= 15 MB for every control command.

Every command is started by a lean launcher process (``python -S``), not
by the bench: a child's ru_maxrss starts from the peak of the process it
was spawned from (Linux carries the high-water mark of the memory it
replaces at exec), so no command can show less than the launcher's own
peak, which is printed.  The children may write byte-code caches, as an
installed ismon has them, whatever PYTHONDONTWRITEBYTECODE says.

The exit status is 0 unless something broke; a missed target prints FAIL.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    STAMP_SERVER,
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    end_process,
    ignore_signals,
    spawn,
    wait_for_port_file,
)

START_TIMEOUT = 30.0
RATIO_TARGET = 1.5
RSS_TARGET_MB = 15.0

# The floor: the least a client can do for `ismon status ID`.
FLOOR = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"\x00\x04_ask\x00\x011\x00\x08_command\x00\x06status\x00\x00")
data = b""
while not data.endswith(b"\x00\x00") or len(data) < 4:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(1)
    data += chunk
sys.stdout.buffer.write(data[data.index(b"\x00\x06status") + 8 + 2 : -2] + b"\n")
"""


# The launcher: a lean process (python -S, nothing imported beyond os and
# sys) that starts each measured command and reaps it with wait4.  A child's
# ru_maxrss starts from the high-water mark of the process it was spawned
# from (Linux carries it over exec, and vfork shares it), so spawning from
# this bench, with its argparse, statistics and subprocess, would hide any
# command smaller than the bench.  One request per line on stdin: fields
# separated by US (0x1f): PYTHONPATH or "", stderr file, argv...; one answer
# per line: wall seconds, peak RSS in KiB, exit status.
LAUNCHER = r"""
import os, sys, time
out = sys.stdout
for line in sys.stdin:
    fields = line.rstrip("\n").split("\x1f")
    pythonpath, errors, argv = fields[0], fields[1], fields[2:]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]
    started = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    out.write("%.6f %d %d\n" % (wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status)))
    out.flush()
"""


class Launcher:
    """Runs commands through L{LAUNCHER}; see there why."""

    def __init__(self, work: Path) -> None:
        self.errors = work / "child.stderr"
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=work,
        )

    def run(self, argv: list[str], pythonpath: str = "") -> tuple[float, float]:
        """Wall seconds and peak RSS (MB) of one command, which must exit 0."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\x1f".join([pythonpath, str(self.errors), *argv]) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if len(answer) != 3:
            raise BenchError(f"the launcher failed on {' '.join(argv)}")
        wall, rss, code = float(answer[0]), int(answer[1]) / 1024, int(answer[2])
        if code != 0:
            errors = self.errors.read_text(errors="replace")[:300]
            raise BenchError(f"{' '.join(argv)}: exit {code}: {errors}")
        return wall, rss

    def own_peak(self) -> float:
        """The launcher's own peak RSS (MB): no command can show less."""
        self.run(["/bin/true"])
        return self.run(["/bin/true"])[1]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.walls: list[float] = []
        self.rss: list[float] = []

    def add(self, wall: float, rss: float) -> None:
        self.walls.append(wall)
        self.rss.append(rss)

    def line(self) -> str:
        w = [x * 1000 for x in self.walls]
        return (
            f"  {self.name:<44} median {statistics.median(w):6.1f} ms"
            f"  min {min(w):6.1f}  max {max(w):6.1f}"
            f"  peak RSS {max(self.rss):5.1f} MB"
        )


def ratios(a: Row, b: Row) -> str:
    pairs = [x / y for x, y in zip(a.walls, b.walls, strict=True)]
    return (
        f"  {a.name} / floor, pair by pair: median {statistics.median(pairs):.2f}"
        f"  min {min(pairs):.2f}  max {max(pairs):.2f}"
    )


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.state = work / "state"
        self.state.mkdir(mode=0o700)
        self.ismon = console_script("ismon")
        self.clp_httpmon = console_script("clp_httpmon")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.watch_id = "bench"
        self.launcher = Launcher(work)

    def start(self) -> None:
        port_file = self.work / "http.port"
        self.procs.append(
            spawn(
                [
                    sys.executable,
                    "-c",
                    STAMP_SERVER,
                    str(port_file),
                    str(self.work / "stamps"),
                    "900",
                ],
                self.work / "http.log",
            )
        )
        deadline = time.monotonic() + START_TIMEOUT
        port = str(wait_for_port_file(port_file, self.procs[-1], "the HTTP server", START_TIMEOUT))
        self.procs.append(
            spawn(
                [
                    self.clp_httpmon,
                    self.watch_id,
                    "-s",
                    "127.0.0.1",
                    "-n",
                    port,
                    "-i",
                    "5",
                    "--state-dir",
                    str(self.state),
                    "--syslog-socket",
                    "none",
                ],
                self.work / "watch.log",
            )
        )
        self.socket = self.state / f"{self.watch_id}.sock"
        while True:
            if self.procs[-1].poll() is not None:
                raise BenchError(f"the watch exited: {(self.work / 'watch.log').read_text()}")
            if time.monotonic() > deadline:
                raise BenchError("the watch did not start")
            if self.socket.exists():
                try:
                    self.launcher.run(self.status_argv())
                    break
                except BenchError:
                    pass
            time.sleep(0.05)

    def stop(self) -> None:
        self.launcher.close()
        for proc in reversed(self.procs):
            end_process(proc)

    def status_argv(self) -> list[str]:
        return [self.ismon, "status", self.watch_id, "--state-dir", str(self.state)]

    def commands(self) -> list[tuple[str, list[str]]]:
        state = ["--state-dir", str(self.state)]
        return [
            ("ismon status ID", self.status_argv()),
            ("ismon status (all watches)", [self.ismon, "status", *state]),
            ("ismon disp ID", [self.ismon, "disp", self.watch_id, *state]),
            ("clp_httpmon ID --pause", [self.clp_httpmon, self.watch_id, "--pause", *state]),
            ("clp_httpmon ID --continue", [self.clp_httpmon, self.watch_id, "--continue", *state]),
        ]

    def measure(self) -> None:
        pairs = self.args.pairs
        floor_script = self.work / "floor.py"
        floor_script.write_text(FLOOR)
        floor_argv = [sys.executable, str(floor_script), str(self.socket)]
        before = ""
        if self.args.before:
            before = str(Path(self.args.before).resolve())
            check = subprocess.run(
                [sys.executable, "-c", "import ismon.entry; print(ismon.entry.__file__)"],
                env={**os.environ, "PYTHONPATH": before},
                cwd=self.work,
                capture_output=True,
                text=True,
                check=True,
            )
            if not check.stdout.startswith(before):
                raise BenchError(f"--before: ismon comes from {check.stdout.strip()}")
        print(
            f"{pairs} rounds; each round runs every row once, in this order"
            f" (python {sys.version.split()[0]}, {os.cpu_count()} CPUs,"
            f" load {os.getloadavg()[0]:.2f})"
        )
        # One unmeasured round first, which also writes the byte-code caches
        # that an installed ismon has (the launcher lets the children write
        # them even under PYTHONDONTWRITEBYTECODE).
        for _name, argv in self.commands():
            self.launcher.run(argv)
            self.launcher.run(floor_argv)
            if before:
                self.launcher.run(argv, before)
        for name, argv in self.commands():
            floor = Row("floor (stdlib AMP client)")
            after = Row(name)
            old = Row(f"{name} [--before]")
            for _ in range(pairs):
                after.add(*self.launcher.run(argv))
                floor.add(*self.launcher.run(floor_argv))
                if before:
                    old.add(*self.launcher.run(argv, before))
            print(f"\n{name}")
            print(after.line())
            print(floor.line())
            print(ratios(after, floor))
            if before:
                print(old.line())
                print(ratios(old, floor))
            self.judge(name, after, floor)
        own = self.launcher.own_peak()
        print(f"\nthe launcher's own peak RSS (no command can show less): {own:.1f} MB")

    def judge(self, name: str, after: Row, floor: Row) -> None:
        pairs = [x / y for x, y in zip(after.walls, floor.walls, strict=True)]
        verdicts = []
        if name == "ismon status ID":
            ratio = statistics.median(pairs)
            ok = ratio <= RATIO_TARGET
            verdicts.append(f"ratio {ratio:.2f} <= {RATIO_TARGET}: {'PASS' if ok else 'FAIL'}")
        peak = max(after.rss)
        ok = peak <= RSS_TARGET_MB
        verdicts.append(f"peak RSS {peak:.1f} MB <= {RSS_TARGET_MB:g}: {'PASS' if ok else 'FAIL'}")
        print("  target: " + "; ".join(verdicts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30, help="rounds per command (30)")
    parser.add_argument("--before", metavar="DIR", help="also run the commands from DIR")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    catch_signals()
    with tempfile.TemporaryDirectory(prefix="ismon-ctl-bench-") as folder:
        bench = Bench(Path(folder), args)
        try:
            bench.start()
            bench.measure()
        except BenchError as e:
            print(f"control_latency: {e}", file=sys.stderr)
            return 1
        except Interrupted:
            return 1
        finally:
            ignore_signals()
            bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
