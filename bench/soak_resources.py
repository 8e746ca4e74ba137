#!/usr/bin/env python3
"""
Resources under flapping servers: a soak (issue 22).  Ten watches probe
real servers that misbehave on a seeded schedule, while the bench records
every watch's PSS (/proc/PID/smaps_rollup) and open descriptors
(/proc/PID/fd) every few seconds.  Neither may grow.

The servers, private and on 127.0.0.1 (tests/servers.py, tests/dovecot.py,
tests/vsftpd.py): nginx, aiosmtpd, and where they can run (as root) dovecot
(POP3 and IMAP4) and vsftpd.  Every watch reaches its server through a
flapping proxy of this bench (tests/delay_proxy.py's, which can also reset),
so that each of these faults comes and goes:

  * stall: every process of the server SIGSTOPped (connections accepted,
    never answered), SIGCONT after a while;
  * reset: the proxy answers each new connection with a TCP reset;
  * slow: the proxy delays every chunk, each way, by 0.2-1.5 s (beyond
    the probe timeout at times).

One fault at a time per server, drawn from random.Random(--seed): a
fault every 3-15 s somewhere (about 400 an hour), 1-8 s long.  The watches run at -i 1 -r 1
with -c 10000 retries, so flapping never exhausts their retries: none
may exit during the soak (an exit is reported, counted, and the watch
started again; its samples start again too).

    python bench/soak_resources.py                  # 60 minutes
    python bench/soak_resources.py --minutes 3      # a quick run
    python bench/soak_resources.py --minutes 60 --csv soak.csv

What it prints, per watch: PSS first / last / max (KiB), the slope of PSS
after the warm-up (least squares, KiB per hour), descriptors min / max /
last, exits, and the verdict.  "no growth" means both:

  * PSS: a slope after the warm-up of at most 512 KiB/h, or a rise after
    the warm-up (last sample minus the lowest) of at most 1 MiB.  Python's
    allocators grow in steps (a pymalloc arena is 1 MiB, glibc trims its
    heap in its own time), so one step in a short run is no leak, while a
    leak of 150 bytes per probe (-i 1) makes 512 KiB an hour and, in an
    hour, several steps: it fails both tests;
  * descriptors: after the warm-up, the count never rises more than 2
    above its lowest (a probe's socket may be open when sampled) and the
    last sample is within 2 of the first.

The watches run this checkout's code (PYTHONPATH), whatever is installed.
Not a test: it exits 0 unless something broke (a server or a watch did not
start); a growth or an exit prints FAIL and still exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0];
# importing it also puts the checkout on sys.path (for tests.*).
import _common
from _common import BenchError, Interrupted, console_script, end_process
from soak import tail

from tests.delay_proxy import DelayProxy
from tests.servers import ServerProcess, ServerUnavailable, start_aiosmtpd, start_nginx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
_STARTED = "has started watching"
#: Retries no flapping can exhaust (README: -c is 1-10000).
RETRIES = "10000"

#: The verdict's thresholds (see the module docstring for why these).
SLOPE_LIMIT_KIB_PER_HOUR = 512.0
RISE_LIMIT_KIB = 1024
FD_SLACK = 2
#: Seconds between two faults (somewhere), and how long one lasts.
GAP = (3.0, 15.0)
LENGTH = (1.0, 8.0)


class FlappingProxy(DelayProxy):
    """A DelayProxy that, while C{reset} is set, answers new connections with a TCP reset."""

    reset = False

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.reset:
            self.connections += 1
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                # Linger 0: close() sends RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        await super()._accepted(reader, writer)


@dataclass
class Backend:
    """One real server behind one flapping proxy per port the watches use."""

    name: str
    server: ServerProcess
    proxies: dict[str, FlappingProxy]  # protocol -> its proxy
    faults: dict[str, int] = field(default_factory=lambda: {"stall": 0, "reset": 0, "slow": 0})
    busy_until: float = 0.0


@dataclass
class Watch:
    watch_id: str
    protocol: str
    backend: Backend
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    exits: list[int | None] = field(default_factory=list)
    # (seconds since the soak began, PSS KiB, descriptors), this incarnation's.
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    status: dict[str, Any] | None = None
    stop_code: int | None = None


def pss_kib(pid: int) -> int | None:
    """Proportional set size of C{pid} in KiB (smaps_rollup), None if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def descriptors(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) in value per hour; 0 for fewer than 2 points."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


def start_backends(work: Path) -> list[Backend]:
    """nginx and aiosmtpd always; dovecot and vsftpd where they can run (root)."""
    backends: list[Backend] = []

    def proxied(name: str, server: ServerProcess, ports: dict[str, int]) -> None:
        proxies = {p: FlappingProxy("127.0.0.1", port).start() for p, port in ports.items()}
        backends.append(Backend(name, server, proxies))

    nginx = start_nginx(work / "nginx", ipv6=False)
    proxied("nginx", nginx, {"http": nginx.port})
    smtp = start_aiosmtpd(work / "aiosmtpd")
    proxied("aiosmtpd", smtp, {"smtp": smtp.port})
    certs: Any = None
    try:
        from tests.certs import make_test_certs
        from tests.dovecot import start_dovecot

        certs = make_test_certs(work / "certs")
        dovecot = start_dovecot(work / "dovecot", certs)
        proxied("dovecot", dovecot, {"pop3": dovecot.pop3_port, "imap": dovecot.imap_port})
    except (ServerUnavailable, RuntimeError, ImportError) as e:
        print(f"  (no dovecot: {e}; its watches are HTTP and SMTP ones)")
    try:
        from tests.vsftpd import start_vsftpd

        if certs is not None:
            ftp = start_vsftpd(work / "vsftpd", certs)
            proxied("vsftpd", ftp, {"ftp": ftp.port})
    except (ServerUnavailable, RuntimeError, ImportError) as e:
        print(f"  (no vsftpd: {e}; its watch is an HTTP one)")
    return backends


#: Protocols of the ten watches, in order; one missing falls back to http/smtp.
MIX = ("http", "smtp", "pop3", "imap", "ftp", "http", "smtp", "pop3", "imap", "http")


def plan_watches(backends: list[Backend], count: int, work: Path, state: Path) -> list[Watch]:
    by_protocol = {p: b for b in backends for p in b.proxies}
    commands = {
        "http": "clp_httpmon",
        "smtp": "clp_smtpmon",
        "pop3": "clp_pop3mon",
        "imap": "clp_imapmon",
        "ftp": "clp_ftpmon",
    }
    watches = []
    for n in range(count):
        protocol = MIX[n % len(MIX)]
        if protocol not in by_protocol:
            protocol = ("http", "smtp")[n % 2]
        backend = by_protocol[protocol]
        watch_id = f"res{n:02d}{protocol}"
        argv = [
            console_script(commands[protocol]),
            watch_id,
            "-s",
            "127.0.0.1",
            "-n",
            str(backend.proxies[protocol].port),
            "-i",
            "1",
            "-r",
            "1",
            "-c",
            RETRIES,
            "--state-dir",
            str(state),
            "--syslog-socket",
            "none",
        ]
        watches.append(Watch(watch_id, protocol, backend, argv, work / f"{watch_id}.log"))
    return watches


def start_watch(watch: Watch) -> None:
    watch.samples = []
    watch.proc = _common.spawn(watch.argv, watch.log)
    deadline = time.monotonic() + START_TIMEOUT
    while _STARTED not in watch.log.read_text(errors="replace"):
        if watch.proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"watch {watch.watch_id} did not start:\n{tail(watch.log)}")
        time.sleep(0.05)


class Faults:
    """The seeded schedule: at most one fault per backend at a time."""

    def __init__(self, backends: list[Backend], rng: random.Random) -> None:
        self.backends = backends
        self.rng = rng
        self.next_at = time.monotonic() + rng.uniform(*GAP)
        self.ending: list[tuple[float, Callable[[], None]]] = []

    def tick(self, now: float) -> None:
        for when, end in list(self.ending):
            if now >= when:
                end()
                self.ending.remove((when, end))
        if now < self.next_at:
            return
        self.next_at = now + self.rng.uniform(*GAP)
        backend = self.rng.choice(self.backends)
        kind = self.rng.choice(("stall", "reset", "slow"))
        length = self.rng.uniform(*LENGTH)
        if backend.busy_until > now:
            return  # one fault at a time per server: this draw is skipped
        backend.busy_until = now + length
        backend.faults[kind] += 1
        if kind == "stall":
            backend.server.stall()
            self.ending.append((now + length, backend.server.resume))
        elif kind == "reset":
            for proxy in backend.proxies.values():
                proxy.reset = True
            self.ending.append((now + length, lambda b=backend: _reset_off(b)))
        else:
            delay = self.rng.uniform(0.2, 1.5)
            for proxy in backend.proxies.values():
                proxy.delay = delay
            self.ending.append((now + length, lambda b=backend: _delay_off(b)))

    def end_all(self) -> None:
        for _, end in self.ending:
            end()
        self.ending = []


def _reset_off(backend: Backend) -> None:
    for proxy in backend.proxies.values():
        proxy.reset = False


def _delay_off(backend: Backend) -> None:
    for proxy in backend.proxies.values():
        proxy.delay = 0.0


@dataclass
class Verdict:
    pss_first: int
    pss_last: int
    pss_max: int
    slope: float
    rise: int
    fd_min: int
    fd_max: int
    fd_last: int
    pss_ok: bool
    fd_ok: bool


def judge(samples: list[tuple[float, int, int]], warmup: float) -> Verdict | None:
    if not samples:
        return None
    after = [s for s in samples if s[0] >= warmup] or samples[-2:]
    pss = [s[1] for s in samples]
    fds_after = [s[2] for s in after]
    slope = slope_per_hour([(t, p) for t, p, _ in after])
    rise = after[-1][1] - min(s[1] for s in after)
    return Verdict(
        pss_first=pss[0],
        pss_last=pss[-1],
        pss_max=max(pss),
        slope=slope,
        rise=rise,
        fd_min=min(s[2] for s in samples),
        fd_max=max(s[2] for s in samples),
        fd_last=samples[-1][2],
        pss_ok=slope <= SLOPE_LIMIT_KIB_PER_HOUR or rise <= RISE_LIMIT_KIB,
        fd_ok=max(fds_after) - min(fds_after) <= FD_SLACK
        and abs(fds_after[-1] - fds_after[0]) <= FD_SLACK,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="soak length (60)")
    parser.add_argument("--watches", type=int, default=10, help="(10)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples (5)")
    parser.add_argument(
        "--warmup", type=float, help="minutes left out of the verdict (min(10, a quarter))"
    )
    parser.add_argument("--seed", type=int, default=1, help="of the fault schedule (1)")
    parser.add_argument("--csv", type=Path, help="write every sample to this CSV file")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60 or args.watches < 1 or args.sample <= 0:
        parser.error("--minutes must be in (0, 1440], --watches >= 1, --sample > 0")
    warmup = 60 * (args.warmup if args.warmup is not None else min(10.0, args.minutes / 4))

    _common.catch_signals()
    # The watches run this checkout's ismon, not whatever is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    work = Path(tempfile.mkdtemp(prefix="ismon-soak-res-"))
    state = work / "state"
    state.mkdir(mode=0o700)
    backends: list[Backend] = []
    watches: list[Watch] = []
    faults: Faults | None = None
    try:
        ismon = console_script("ismon")
        backends = start_backends(work)
        watches = plan_watches(backends, args.watches, work, state)
        for watch in watches:
            start_watch(watch)
        rng = random.Random(args.seed)
        faults = Faults(backends, rng)
        print(
            f"soak: {len(watches)} watches (-i 1 -r 1 -c {RETRIES}) on "
            f"{', '.join(b.name for b in backends)}, flapping (seed {args.seed}), "
            f"{args.minutes:g} min, a sample every {args.sample:g} s, "
            f"warm-up {warmup / 60:g} min ...",
            flush=True,
        )
        begin = time.monotonic()
        end = begin + args.minutes * 60
        next_sample = begin
        next_report = begin + 60
        while time.monotonic() < end:
            now = time.monotonic()
            faults.tick(now)
            for watch in watches:
                assert watch.proc is not None
                if watch.proc.poll() is not None:
                    watch.exits.append(watch.proc.returncode)
                    print(
                        f"  EXIT: {watch.watch_id} exited {watch.proc.returncode} after "
                        f"{now - begin:.0f} s; started again\n{tail(watch.log, 5)}",
                        flush=True,
                    )
                    start_watch(watch)
            if now >= next_sample:
                for watch in watches:
                    assert watch.proc is not None
                    pss, fds = pss_kib(watch.proc.pid), descriptors(watch.proc.pid)
                    if pss is not None and fds is not None:
                        watch.samples.append((now - begin, pss, fds))
                next_sample += args.sample
            if now >= next_report:
                total = sum(sum(b.faults.values()) for b in backends)
                print(f"  {now - begin:5.0f} s: {total} faults so far", flush=True)
                next_report += 60
            time.sleep(0.1)
        elapsed = time.monotonic() - begin
        faults.end_all()

        for watch in watches:
            status_and_stop(ismon, state, watch)

        if args.csv is not None:
            with open(args.csv, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow(["watch", "protocol", "seconds", "pss_kib", "fds"])
                for watch in watches:
                    for t, pss, fds in watch.samples:
                        out.writerow([watch.watch_id, watch.protocol, f"{t:.1f}", pss, fds])
        report(watches, backends, elapsed, warmup, args)
        return 0
    except (BenchError, ServerUnavailable, RuntimeError, Interrupted) as e:
        stopped = isinstance(e, Interrupted)
        print(f"soak_resources: {'interrupted' if stopped else e}", file=sys.stderr)
        return 130 if stopped else 1
    finally:
        _common.ignore_signals()
        if faults is not None:
            faults.end_all()
        for watch in watches:
            if watch.proc is not None:
                end_process(watch.proc)
        for backend in backends:
            for proxy in backend.proxies.values():
                proxy.stop()
            with contextlib.suppress(Exception):
                backend.server.stop()
        shutil.rmtree(work, ignore_errors=True)


def status_and_stop(ismon: str, state: Path, watch: Watch) -> None:
    """What the watch counted (`ismon status --json`), then `ismon stop` and its exit code."""
    for verb, extra in (("status", ["--json"]), ("stop", ["-r", "10"])):
        asked = subprocess.run(
            [ismon, verb, watch.watch_id, *extra, "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if verb == "status" and asked.returncode == 0:
            watch.status = json.loads(asked.stdout)
    assert watch.proc is not None
    try:
        watch.stop_code = watch.proc.wait(10)
    except subprocess.TimeoutExpired:
        watch.stop_code = end_process(watch.proc)


def report(
    watches: list[Watch],
    backends: list[Backend],
    elapsed: float,
    warmup: float,
    args: argparse.Namespace,
) -> None:
    print()
    print(
        f"Soak of resources: {len(watches)} watches, {elapsed:.0f} s, a sample every "
        f"{args.sample:g} s; verdict on the samples after {warmup:.0f} s"
    )
    for backend in backends:
        shown = ", ".join(f"{kind} {count}" for kind, count in backend.faults.items())
        print(f"  faults on {backend.name}: {shown}")
    print()
    print(
        f"{'watch':12} {'proto':5} {'probes':>6} {'fails':>5} {'exits':>5} "
        f"{'PSS first':>9} {'last':>6} {'max':>6} {'KiB/h':>7} {'rise':>5} "
        f"{'fd min':>6} {'max':>4} {'last':>4}  verdict"
    )
    grown = 0
    for watch in watches:
        verdict = judge(watch.samples, warmup)
        probes = watch.status.get("probes", "?") if watch.status else "?"
        failures = watch.status.get("failures", "?") if watch.status else "?"
        if verdict is None:
            print(f"{watch.watch_id:12} {watch.protocol:5} no samples")
            grown += 1
            continue
        ok = verdict.pss_ok and verdict.fd_ok and not watch.exits
        grown += not ok
        what = (
            "no growth"
            if ok
            else "FAIL: "
            + ", ".join(
                why
                for why, bad in (
                    ("PSS grows", not verdict.pss_ok),
                    ("descriptors grow", not verdict.fd_ok),
                    (f"exited {watch.exits}", bool(watch.exits)),
                )
                if bad
            )
        )
        print(
            f"{watch.watch_id:12} {watch.protocol:5} {probes!s:>6} {failures!s:>5} "
            f"{len(watch.exits):>5} {verdict.pss_first:>9} {verdict.pss_last:>6} "
            f"{verdict.pss_max:>6} {verdict.slope:>7.0f} {verdict.rise:>5} "
            f"{verdict.fd_min:>6} {verdict.fd_max:>4} {verdict.fd_last:>4}  {what}"
        )
    bad_stops = [w for w in watches if w.stop_code != 0]
    for watch in bad_stops:
        print(f"{watch.watch_id}: `ismon stop` gave exit {watch.stop_code}\n{tail(watch.log)}")
    print()
    print(
        f"thresholds: PSS slope <= {SLOPE_LIMIT_KIB_PER_HOUR:g} KiB/h or rise <= "
        f"{RISE_LIMIT_KIB} KiB after the warm-up; descriptors within {FD_SLACK}"
    )
    print(
        f"target: no watch grows or exits: {len(watches) - grown}/{len(watches)} -> "
        f"{'PASS' if not grown else 'FAIL'}"
    )


if __name__ == "__main__":
    sys.exit(main())
