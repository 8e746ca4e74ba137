#!/usr/bin/env python3
"""
What a forked DNS or TCP check costs, per invocation, for the DNS and TCP
watches' bench rows to compare with (issue 21): monitoring-plugins'
check_dig (over UDP and over TCP), check_dns and check_tcp, against the
real servers of the tests -- unbound with its private zone
(tests/dns_server.py) and redis-server (tests/redis_server.py) -- started
on loopback in a temporary folder.  For scale it also times, in this
process and without forking, the sans-io parts the probes will be built on
(ismon.wire.dns and ismon.wire.tcp over a blocking socket): what a probe
costs at least, before Twisted and the deadline.

    python bench/dns_tcp_cost.py              # 200 runs of each
    python bench/dns_tcp_cost.py --quick      # 20, a smoke run
    python bench/dns_tcp_cost.py --runs 1000

Per row: CPU per run (user+sys: for a forked check, wait4's rusage of the
child, which includes what it forked and reaped itself -- dig for
check_dig, nslookup for check_dns; for the in-process rows, this process's
getrusage over all runs, divided), wall time per run, and the peak RSS of
one run (for a forked check, GNU time's %M over --rss-runs runs: a child
forked from this bench would start from the bench's own RSS peak in
ru_maxrss; without /usr/bin/time, n/a).  Medians and maxima; failures
(exit status not 0, or the answer not the expected one).

The commands:

    check_dig -H 127.0.0.1 -p PORT -l www.ismon.test -T A -a 127.0.0.1 [-A +tcp]
    check_dns -H www.ismon.test -s 127.83.53.1 -a 127.0.0.1,127.0.0.2
    check_tcp -H 127.0.0.1 -p PORT -E -s 'PING\\r\\n' -e '+PONG'

check_dns (through nslookup) cannot be given a port: it gets a second
unbound on 127.83.53.1:53, a loopback address of its own (the machine's
resolver, if any, keeps 127.0.0.1:53 and 127.0.0.53:53); binding port 53
needs root, so as another user its row is skipped with the reason.  The
plugins are in /usr/lib/nagios/plugins (monitoring-plugins-standard:
check_dig, check_dns; monitoring-plugins-basic: check_tcp), and need dig
and nslookup (bind9-dnsutils); ISMON_BENCH_PLUGINS=DIR points elsewhere.
A bench prints figures; it exits 0 unless something broke (a server did
not start, more than 1% of a row's runs failed): 1, or 2 for a setup
error, 130 when interrupted.  Every wait is bounded: a server start 30 s,
each run 10 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0];
# importing it also puts the checkout on sys.path (for tests.*).
from _common import BenchError, Interrupted, catch_signals, ignore_signals, percentile

PLUGINS = Path(os.environ.get("ISMON_BENCH_PLUGINS", "/usr/lib/nagios/plugins"))
GNU_TIME = Path("/usr/bin/time")
RUN_TIMEOUT = 10.0  # seconds, per run
WARMUP = 5  # unmeasured runs before each row
# check_dns's own loopback address: port 53 there is the bench's.
DNS53_HOST = "127.83.53.1"
NAME = "www.ismon.test"


@dataclass
class Row:
    name: str
    cpu: list[float] = field(default_factory=list)  # seconds per run
    wall: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)  # KiB per run
    failures: int = 0
    first_error: str = ""
    note: str = ""

    def fail(self, why: str) -> None:
        self.failures += 1
        if not self.first_error:
            self.first_error = why[:300]


# --------------------------------------------------------------------------
# Forked checks


def _run_once(argv: Sequence[str], ok: str) -> tuple[float, float, str]:
    """
    One run of argv as a direct child: (CPU s, wall s, "" or why it failed).
    CPU is wait4's rusage of the child (its reaped children included).
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        # A watchdog, since wait4 has no timeout: a run that hangs is killed.
        watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace").strip()
    why = ""
    if proc.returncode != 0 or ok not in text:
        why = f"exit {proc.returncode}: {text[:200]}"
    return usage.ru_utime + usage.ru_stime, wall, why


def _peak_rss(argv: Sequence[str]) -> float | None:
    """Peak RSS (KiB) of one run, through GNU time (see the module docstring)."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            [str(GNU_TIME), "-f", "%M", "-o", report.name, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        text = Path(report.name).read_text().strip().splitlines()
    try:
        return float(text[-1])
    except (IndexError, ValueError):
        return None


def forked_row(name: str, argv: Sequence[str], ok: str, runs: int, rss_runs: int) -> Row:
    row = Row(name, note="forked")
    for _ in range(WARMUP):
        _run_once(argv, ok)
    for _ in range(runs):
        cpu, wall, why = _run_once(argv, ok)
        row.cpu.append(cpu)
        row.wall.append(wall)
        if why:
            row.fail(why)
    if GNU_TIME.exists():
        for _ in range(rss_runs):
            rss = _peak_rss(argv)
            if rss is not None:
                row.rss.append(rss)
    return row


# --------------------------------------------------------------------------
# In process: the sans-io parts over a blocking socket


def in_process_row(name: str, once: Callable[[], str], runs: int) -> Row:
    """C{once()} runs times back to back; C{once} returns "" or why it failed."""
    row = Row(name, note="in-process")
    for _ in range(WARMUP):
        once()
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(runs):
        start = time.perf_counter()
        why = once()
        row.wall.append(time.perf_counter() - start)
        if why:
            row.fail(why)
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row.cpu = [used / runs] * runs
    row.rss = [float(after.ru_maxrss)]
    return row


def wire_dns(host: str, port: int, tcp: bool) -> Callable[[], str]:
    from ismon.wire.dns import RecordType, build_query, parse_expected
    from tests.dns_server import tcp_exchange, udp_exchange

    expect = [parse_expected(RecordType.A, "127.0.0.1")]
    exchange = tcp_exchange if tcp else udp_exchange

    def once() -> str:
        query = build_query(NAME, RecordType.A)
        result = exchange(host, port, query, RUN_TIMEOUT)
        if result.payload is None:
            return result.why
        verdict = result.judge(query, *expect)
        return "" if verdict.ok else verdict.reason

    return once


def wire_tcp(host: str, port: int) -> Callable[[], str]:
    from ismon.wire.tcp import ExpectMatcher, compile_expect, unescape_send

    payload = unescape_send(r"PING\r\n")
    pattern = compile_expect(r"\+PONG")

    def once() -> str:
        matcher = ExpectMatcher(pattern)
        with socket.create_connection((host, port), timeout=RUN_TIMEOUT) as sock:
            sock.sendall(payload)
            while True:
                data = sock.recv(65536)
                verdict = matcher.feed(data) if data else matcher.end()
                if verdict is not None:
                    return "" if verdict.ok else verdict.reason

    return once


# --------------------------------------------------------------------------
# Report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f}"


def report(rows: list[Row], skipped: dict[str, str], runs: int) -> None:
    print()
    print(f"Per run, {runs} runs of each (medians; max in brackets); against local unbound/redis")
    print()
    head = (
        f"{'check':<34} {'CPU ms':>8} {'(max)':>9}  {'wall ms':>8} {'(max)':>9}"
        f"  {'peak RSS MiB':>12}  {'fail':>4}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        rss = f"{percentile(row.rss, 50) / 1024:12.1f}" if row.rss else f"{'n/a':>12}"
        # In process, only the mean CPU per run is known.
        cpu_max = f"{'-':>8}" if row.note == "in-process" else _ms(max(row.cpu))
        print(
            f"{row.name:<34} {_ms(percentile(row.cpu, 50))} ({cpu_max})"
            f"  {_ms(percentile(row.wall, 50))} ({_ms(max(row.wall))})  {rss}  {row.failures:>4}"
        )
    for name, why in skipped.items():
        print(f"{name:<34} skipped: {why}")
    print()
    print("CPU: forked rows = the child's user+sys from wait4 (dig / nslookup included, as")
    print("     the check reaps them); in-process rows = this process's getrusage / runs.")
    print("RSS: forked rows = GNU time's %M (peak of the check and what it ran); in-process")
    print("     rows = this whole bench process's peak, Twisted Names and RE2 loaded.")
    if not GNU_TIME.exists():
        print("No /usr/bin/time: the forked rows' peak RSS is not measured (apt-get install time).")
    for row in rows:
        if row.failures:
            print(f"!! {row.name}: {row.failures} failed; first: {row.first_error}")


# --------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    size = p.add_mutually_exclusive_group()
    size.add_argument("--runs", type=int, default=200, help="runs of each check (200)")
    size.add_argument("--quick", action="store_true", help="20 runs: a smoke run")
    p.add_argument("--rss-runs", type=int, default=5, help="runs under GNU time for peak RSS (5)")
    args = p.parse_args(argv)
    if args.quick:
        args.runs = 20
    if not 1 <= args.runs <= 100_000 or not 0 <= args.rss_runs <= 1000:
        p.error("--runs must be 1..100000, --rss-runs 0..1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    from tests.dns_server import start_unbound
    from tests.redis_server import start_redis
    from tests.servers import ServerUnavailable

    catch_signals()
    servers: list[Any] = []
    work = Path(tempfile.mkdtemp(prefix="ismon-bench-dnstcp-"))
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    try:
        try:
            unbound = start_unbound(work / "unbound")
            servers.append(unbound)
            redis = start_redis(work / "redis")
            servers.append(redis)
        except ServerUnavailable as e:
            raise BenchError(str(e)) from None
        unbound53: Any = None
        if os.geteuid() != 0:
            skipped["check_dns"] = "needs root (an unbound of its own on port 53)"
        else:
            try:
                unbound53 = start_unbound(work / "unbound53", host=DNS53_HOST, port=53)
                servers.append(unbound53)
            except (ServerUnavailable, RuntimeError) as e:
                skipped["check_dns"] = f"no unbound on {DNS53_HOST}:53: {str(e)[:200]}"
        print(
            f"unbound on 127.0.0.1:{unbound.port}"
            + (f" and {DNS53_HOST}:53" if unbound53 else "")
            + f", redis on 127.0.0.1:{redis.port}; work dir {work};"
            f" {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        dig = [
            str(PLUGINS / "check_dig"),
            *("-H", "127.0.0.1", "-p", str(unbound.port), "-l", NAME, "-T", "A"),
            *("-a", "127.0.0.1"),
        ]
        peers: list[tuple[str, list[str], str, str]] = [
            ("check_dig (UDP)", dig, "DNS OK", "monitoring-plugins-standard, bind9-dnsutils"),
            ("check_dig +tcp", [*dig, "-A", "+tcp"], "DNS OK", "monitoring-plugins-standard"),
        ]
        if unbound53 is not None:
            dns = [str(PLUGINS / "check_dns"), "-H", NAME, "-s", DNS53_HOST]
            peers.append(
                ("check_dns", [*dns, "-a", "127.0.0.1,127.0.0.2"], "DNS OK", "bind9-dnsutils")
            )
        tcp = [str(PLUGINS / "check_tcp"), "-H", "127.0.0.1", "-p", str(redis.port)]
        peers.append(
            ("check_tcp", [*tcp, "-E", "-s", "PING\\r\\n", "-e", "+PONG"], "TCP OK", "basic")
        )
        for name, command, ok, package in peers:
            if not os.access(command[0], os.X_OK):
                skipped[name] = (
                    f"{command[0]} missing (apt-get install monitoring-plugins-{package})"
                )
                continue
            rows.append(forked_row(name, command, ok, args.runs, args.rss_runs))
        rows.append(
            in_process_row(
                "wire.dns UDP, blocking socket",
                wire_dns("127.0.0.1", unbound.port, False),
                args.runs,
            )
        )
        rows.append(
            in_process_row(
                "wire.dns TCP, blocking socket",
                wire_dns("127.0.0.1", unbound.port, True),
                args.runs,
            )
        )
        rows.append(
            in_process_row(
                "wire.tcp PING, blocking socket", wire_tcp("127.0.0.1", redis.port), args.runs
            )
        )
        report(rows, skipped, args.runs)
        print(
            "\ncommand: "
            + " ".join(
                ["python", "bench/dns_tcp_cost.py", *(sys.argv[1:] if argv is None else argv)]
            )
        )
        if any(row.failures * 100 > len(row.cpu) for row in rows):
            print(
                "!! more than 1% of a row's runs failed: the figures are not comparable",
                file=sys.stderr,
            )
            return 1
        return 0
    except BenchError as e:
        print(f"dns_tcp_cost: {e}", file=sys.stderr)
        return 2
    except Interrupted:
        print("\ndns_tcp_cost: interrupted, cleaning up", file=sys.stderr)
        return 130
    finally:
        ignore_signals()
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
