#!/usr/bin/env python3
"""
False exits: a bounded soak.  Ten watches at -i 1 (five clp_httpmon against
one nginx, five clp_smtpmon against one aiosmtpd, both private on
127.0.0.1) run for --minutes (default 10) on a machine kept busy on purpose:

  * one CPU burner per core (a child running a busy loop until its own
    deadline, then exiting);
  * HTTP load on the same nginx: a child looping connect / GET / read /
    close as fast as it can, until its deadline;
  * SMTP load on the same aiosmtpd: a child opening greeting / NOOP / QUIT
    sessions, at most 20 a second, until its deadline.

The servers stay healthy, so every exit of a watch is a false exit: the
soak reports it as FAIL with the watch's exit code and log tail (the others
keep running to the end).  At the end each watch is asked for its status
(``ismon status --json``: probes done, failures seen) and stopped with
``ismon stop`` (expected exit 0); failure lines in its log (message 96,
"will retry") are counted and the first few shown.

Default timing -i 1 -c 2 -r 1: a false exit needs three probes in a row to
get no answer within 1 s (detection bound 4 s); --timing changes it.

    python bench/soak.py                 # 10 minutes
    python bench/soak.py --minutes 5
    python bench/soak.py --quick         # 1 minute, a smoke run

Target: zero exits.  The exit status is 0 unless something broke (a server
or watch did not start); a false exit prints FAIL and still exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0];
# importing it also puts the checkout on sys.path (for tests.servers).
from _common import (
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    end_process,
    ignore_signals,
    spawn,
)

from tests.servers import ServerUnavailable, start_aiosmtpd, start_nginx

START_TIMEOUT = 20.0
_STARTED = "has started watching"

# argv: seconds.  Prints the loop count on exit.
_BURNER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
end = time.monotonic() + float(sys.argv[1])
n = 0
try:
    while time.monotonic() < end:
        for _ in range(10000):
            n += 1
finally:
    print(n, flush=True)
"""

# argv: http|smtp, port, seconds, max rate per second (0: unlimited).
# Prints "done failed" on exit.
_LOAD = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
kind, port, limit, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + limit
done = failed = 0
gap = 1.0 / rate if rate > 0 else 0.0
next_at = time.monotonic()
def step():
    global next_at, done, failed
    if gap:
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at += gap
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            if kind == "http":
                s.sendall(b"GET / HTTP/1.1\\r\\nHost: load\\r\\nConnection: close\\r\\n\\r\\n")
                while s.recv(4096):
                    pass
            else:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"NOOP\\r\\n")
                f.readline()
                s.sendall(b"QUIT\\r\\n")
                f.readline()
        done += 1
    except OSError:
        failed += 1
        time.sleep(0.01)
try:
    while time.monotonic() < end:
        step()
finally:
    print(done, failed, flush=True)
"""


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


@dataclass
class Watch:
    watch_id: str
    protocol: str
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    exited_at: float | None = None
    code: int | None = None
    status: dict[str, Any] | None = None
    stop_code: int | None = None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (10)")
    parser.add_argument("--quick", action="store_true", help="1 minute, a smoke run")
    parser.add_argument("--watches", type=int, default=10, help="watches, half HTTP half SMTP")
    parser.add_argument("--timing", default="-i 1 -c 2 -r 1", help='("-i 1 -c 2 -r 1")')
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 1, help="(one per core)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    if not 0 < args.minutes <= 24 * 60 or args.watches < 1:
        parser.error("--minutes must be in (0, 1440] and --watches >= 1")

    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="ismon-soak-"))
    state = work / "state"
    state.mkdir(mode=0o700)
    servers: list[Any] = []
    load: dict[str, subprocess.Popen[bytes]] = {}
    watches: list[Watch] = []
    seconds = args.minutes * 60
    try:
        ismon = console_script("ismon")
        commands = {"http": console_script("clp_httpmon"), "smtp": console_script("clp_smtpmon")}
        nginx = start_nginx(work / "nginx", ipv6=False)
        servers.append(nginx)
        smtp = start_aiosmtpd(work / "smtp")
        servers.append(smtp)
        ports = {"http": nginx.port, "smtp": smtp.port}
        timing = args.timing.split()

        for n in range(args.watches):
            protocol = "http" if n % 2 == 0 else "smtp"
            watch_id = f"soak{n:02d}"
            log = work / f"{watch_id}.log"
            proc = spawn(
                [
                    commands[protocol],
                    watch_id,
                    "-s",
                    "127.0.0.1",
                    "-n",
                    str(ports[protocol]),
                    *timing,
                    "--state-dir",
                    str(state),
                    "--syslog-socket",
                    "none",
                ],
                log,
            )
            watches.append(Watch(watch_id, protocol, proc, log, time.monotonic()))
        deadline = time.monotonic() + START_TIMEOUT
        for w in watches:
            while _STARTED not in w.log.read_text(errors="replace"):
                if w.proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"watch {w.watch_id} did not start:\n{tail(w.log)}")
                time.sleep(0.05)
        bound_line = next(
            (line for line in watches[0].log.read_text().splitlines() if "detected within" in line),
            "",
        )

        life = str(seconds + 30)  # the load ends by itself, after the soak
        for n in range(args.burners):
            load[f"burner{n}"] = spawn(
                [sys.executable, "-c", _BURNER, life], work / f"burner{n}.out"
            )
        load["http-load"] = spawn(
            [sys.executable, "-c", _LOAD, "http", str(nginx.port), life, "0"],
            work / "http-load.out",
        )
        load["smtp-load"] = spawn(
            [sys.executable, "-c", _LOAD, "smtp", str(smtp.port), life, "20"],
            work / "smtp-load.out",
        )

        print(
            f"soak: {len(watches)} watches ({args.timing}), {args.burners} CPU burners, "
            f"HTTP + SMTP load, {args.minutes:g} min ...",
            flush=True,
        )
        begin = time.monotonic()
        end = begin + seconds
        next_report = begin + 60
        loads: list[float] = []
        while time.monotonic() < end:
            now = time.monotonic()
            for w in watches:
                if w.exited_at is None and w.proc.poll() is not None:
                    w.exited_at = now
                    w.code = w.proc.returncode
                    print(
                        f"  FALSE EXIT: {w.watch_id} exited {w.code} after {now - begin:.0f} s",
                        flush=True,
                    )
            for name, proc in load.items():
                if proc.poll() is not None and now < end - 1:
                    print(f"  note: load process {name} ended early ({proc.returncode})")
            loads.append(loadavg())
            if now >= next_report:
                alive = sum(w.exited_at is None for w in watches)
                print(
                    f"  {now - begin:5.0f} s: {alive}/{len(watches)} watches alive, "
                    f"load average {loads[-1]:.2f}",
                    flush=True,
                )
                next_report += 60
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        elapsed = time.monotonic() - begin

        # Status, then stop every watch still running.
        for w in watches:
            if w.exited_at is None:
                done = subprocess.run(
                    [ismon, "status", w.watch_id, "--json", "--state-dir", str(state)],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                if done.returncode == 0:
                    w.status = json.loads(done.stdout)
        for w in watches:
            if w.exited_at is None:
                subprocess.run(
                    [ismon, "stop", w.watch_id, "-r", "10", "--state-dir", str(state)],
                    capture_output=True,
                    timeout=30,
                )
                try:
                    w.stop_code = w.proc.wait(10)
                except subprocess.TimeoutExpired:
                    w.stop_code = end_process(w.proc)
        load_out: dict[str, str] = {}
        for name, proc in load.items():
            end_process(proc)
            load_out[name] = (work / f"{name}.out").read_text().strip()

        # Report.
        print()
        print(
            f"Soak: {len(watches)} watches, {args.timing}, {elapsed:.0f} s "
            f"({args.minutes:g} min); {bound_line.split('; ')[-1].split(' [')[0] if bound_line else ''}"
        )
        print(
            f"{'watch':8} {'proto':5} {'probes':>7} {'failures':>8} {'retry lines':>11} {'exit':>12}"
        )
        total_probes = total_failures = 0
        examples: list[str] = []
        for w in watches:
            retry_lines = [
                line
                for line in w.log.read_text(errors="replace").splitlines()
                if "will retry watching" in line
            ]
            examples += [f"{w.watch_id}: {line}" for line in retry_lines[:3]]
            probes = int(w.status["probes"]) if w.status else 0
            failures = int(w.status["failures"]) if w.status else len(retry_lines)
            total_probes += probes
            total_failures += failures
            if w.exited_at is not None:
                outcome = f"EXIT {w.code}"
            else:
                outcome = f"stop -> {w.stop_code}"
            print(
                f"{w.watch_id:8} {w.protocol:5} {probes:>7} {failures:>8} "
                f"{len(retry_lines):>11} {outcome:>12}"
            )
        print(f"{'total':8} {'':5} {total_probes:>7} {total_failures:>8}")
        running = [w for w in watches if w.status]
        if running:
            # One probe at start, then one per second of uptime.
            short = [
                1 + int(float(w.status["uptime"])) - int(w.status["probes"])
                for w in running
                if w.status
            ]
            print(
                f"probes missing against the grid (1 + whole seconds of uptime): "
                f"{min(short)} .. {max(short)} (0: no tick skipped)"
            )
        burned = sum(int(v) for k, v in load_out.items() if k.startswith("burner") and v)
        print(
            f"load: {args.burners} burners ({burned / 1e6:.0f} M loop steps); "
            f"HTTP load done/failed {load_out.get('http-load', '?')}; "
            f"SMTP load done/failed {load_out.get('smtp-load', '?')}; "
            f"load average max {max(loads, default=0):.2f}, "
            f"mean {sum(loads) / max(len(loads), 1):.2f} ({os.cpu_count()} cores)"
        )
        if examples:
            print("failures seen (first lines):")
            for line in examples[:10]:
                print(f"  {line}")
        exits = [w for w in watches if w.exited_at is not None]
        for w in exits:
            print(f"\nFALSE EXIT {w.watch_id} ({w.protocol}): exit {w.code}\n{tail(w.log)}")
        bad_stops = [w for w in watches if w.exited_at is None and w.stop_code != 0]
        for w in bad_stops:
            print(f"\n{w.watch_id}: `ismon stop` gave exit {w.stop_code}\n{tail(w.log)}")
        print()
        print(
            f"target: zero exits during the soak: {len(exits)} -> "
            f"{'PASS' if not exits else 'FAIL'}"
            + (f" ({len(bad_stops)} watch(es) did not stop with 0)" if bad_stops else "")
        )
        return 0
    except (BenchError, ServerUnavailable) as e:
        print(f"soak: broken: {e}", file=sys.stderr)
        return 1
    except Interrupted:
        print("soak: interrupted", file=sys.stderr)
        return 130
    finally:
        ignore_signals()
        for proc in load.values():
            end_process(proc)
        for w in watches:
            end_process(w.proc)
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
