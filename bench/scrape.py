#!/usr/bin/env python3
"""
Scrape latency and exporter CPU per scrape of ``ismon exporter``, for 1, 10
and 50 watches.

Real processes: one nginx (tests/servers.py), N ``clp_httpmon`` watches of
it (``-i 10``: a light schedule, as in production), and ``ismon exporter``
serving their state folder on a free 127.0.0.1 port.  For each size the
watches are started (added to those already running), the bench waits
until one scrape shows every one of them ``ismon_up 1``, scrapes 3 times to
warm up, then ``--scrapes`` times one after another (a fresh connection
each, as Prometheus after an idle timeout; ``--gap`` seconds between them)
and takes

* the wall time of each scrape, connect to last byte: median and max;
* the exporter's CPU (all threads, /proc/PID/task/*/schedstat) across the
  scrapes, divided by their number: CPU per scrape (its idle cost between
  scrapes included; it has no timers but Twisted's once-a-second date);
* the size of the classic-format answer and its sample count.

    python bench/scrape.py                 # 1, 10, 50 watches; 30 scrapes each (~1 min)
    python bench/scrape.py --sizes 1,10    # fewer watches
    python bench/scrape.py --scrapes 100

Bounded: every wait has a deadline; everything it started (nginx, watches,
exporter) is ended by PID at the end, on error and on SIGINT/SIGTERM.
Needs nginx (``apt-get install nginx-light``) and ismon installed (its
console scripts).  The exit status is 0 unless something broke.  Standard
library and the project's own helpers only.
"""

from __future__ import annotations

import argparse
import http.client
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    end_process,
    ignore_signals,
    proc_cpu,
    spawn,
    wait_for_port,
)

from tests.servers import Nginx, free_port, start_nginx

#: Seconds for N watches to start and answer a scrape.
START_TIMEOUT = 120.0
WARM_UP = 3


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.state = work / "state"
        self.state.mkdir(mode=0o700)
        self.nginx: Nginx | None = None
        self.watches: list[subprocess.Popen[bytes]] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.exporter_pid = 0
        self.port = 0

    def start(self) -> None:
        try:
            self.nginx = start_nginx(self.work / "nginx", ipv6=False)
        except Exception as e:
            raise BenchError(f"nginx did not start: {e}") from None
        self.port = free_port()
        exporter = spawn(
            [
                console_script("ismon"),
                "exporter",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--state-dir",
                str(self.state),
            ],
            self.work / "exporter.log",
        )
        self.processes.append(exporter)
        self.exporter_pid = exporter.pid
        wait_for_port(self.port, process=exporter)

    def add_watches(self, total: int) -> None:
        assert self.nginx is not None
        script = console_script("clp_httpmon")
        while len(self.watches) < total:
            watch_id = f"w{len(self.watches)}"
            argv = [
                script,
                watch_id,
                "-s",
                "127.0.0.1",
                "-n",
                str(self.nginx.port),
                *("-i", "10", "-c", "3", "-r", "5"),
                "--state-dir",
                str(self.state),
                "--syslog-socket",
                "none",
            ]
            process = spawn(argv, self.work / f"{watch_id}.log")
            self.watches.append(process)
            self.processes.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            _, body = self.scrape()
            up = len(re.findall(r"^ismon_up\{[^}]*\} 1$", body, re.M))
            if up == total:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"only {up} of {total} watches answer after {START_TIMEOUT:g} s")
            time.sleep(0.5)

    def scrape(self) -> tuple[float, str]:
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            body = response.read()
        except OSError as e:
            raise BenchError(f"a scrape failed: {e}") from None
        finally:
            connection.close()
        took = time.perf_counter() - started
        if response.status != 200:
            raise BenchError(f"a scrape answered {response.status}")
        return took, body.decode("utf-8")

    def measure(self, total: int) -> str:
        self.add_watches(total)
        for _ in range(WARM_UP):
            self.scrape()
        times = []
        cpu_before = proc_cpu(self.exporter_pid)
        body = ""
        for _ in range(self.args.scrapes):
            took, body = self.scrape()
            times.append(took)
            time.sleep(self.args.gap)
        cpu = (proc_cpu(self.exporter_pid) - cpu_before) / self.args.scrapes
        samples = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        return (
            f"{total:>7} {self.args.scrapes:>7} {statistics.median(times) * 1000:>10.1f}"
            f" {max(times) * 1000:>10.1f} {cpu * 1000:>13.2f} {len(body):>9} {samples:>8}"
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            end_process(process)
        if self.nginx is not None:
            self.nginx.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,50", help="watch counts, ascending (1,10,50)")
    parser.add_argument("--scrapes", type=int, default=30, help="scrapes per size (30)")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between scrapes (0.2)")
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas")
    if sizes != sorted(sizes) or not 1 <= sizes[0] <= sizes[-1] <= 200:
        parser.error("--sizes must be ascending, from 1 to 200")
    if not 1 <= args.scrapes <= 10000 or not 0 <= args.gap <= 10:
        parser.error("--scrapes is 1-10000, --gap 0-10 seconds")
    catch_signals()
    with tempfile.TemporaryDirectory(prefix="ismon-scrape-bench-") as folder:
        bench = Bench(Path(folder), args)
        try:
            bench.start()
            print(f"ismon exporter on 127.0.0.1:{bench.port}, clp_httpmon watches of one nginx")
            print("watches scrapes median ms     max ms CPU ms/scrape     bytes  samples")
            for size in sizes:
                print(bench.measure(size), flush=True)
        except BenchError as e:
            print(f"scrape: {e}", file=sys.stderr)
            return 1
        except Interrupted:
            return 1
        finally:
            ignore_signals()
            bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
