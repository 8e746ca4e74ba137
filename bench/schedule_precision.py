#!/usr/bin/env python3
"""
Schedule precision: when do a watch's probes reach the server, against the
fixed-rate grid the watch promises (start + k x interval, monotonic clock)?

Starts a tiny HTTP server of its own (a child process: a blocking accept
loop that stamps each accepted connection with time.monotonic(), which is
one clock for all processes of the machine, answers 200 and closes), then
one watch at -i 1 against it, and records N probe arrivals (default 300,
~5 minutes; --quick 30).

Reported:

  jitter  deviation of each probe from the ideal grid t0 + k x 1 s, where
          t0 is the first probe and k = round(t - t0) (so a skipped tick
          shows as a gap, not as a 1 s error): p50 / p99 / max of |dev|;
          also the residuals of a least-squares line (the grid the watch
          really kept);
  drift   the slope of that line against the ideal (actual vs k), as
          (slope - 1) x 3600 s, in ms per hour, with its standard error;
  gaps    skipped ticks (intervals of 2 s or more) and doubled probes.

Targets: jitter p99 <= 10 ms; no drift: |drift| <= max(36 ms/h (10 ppm),
3 standard errors); no skipped tick.

    python bench/schedule_precision.py            # 300 probes (~5 min)
    python bench/schedule_precision.py --quick    # 30 probes (~35 s)
    python bench/schedule_precision.py --probes 3600

The exit status is 0 unless something broke (server or watch did not start,
the watch exited); a missed target prints FAIL and still exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0].
from _common import (
    STAMP_SERVER,
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    end_process,
    ignore_signals,
    percentile,
    spawn,
    wait_for_port_file,
)

TARGET_JITTER_P99 = 0.010  # seconds
DRIFT_FLOOR = 36.0  # ms per hour (10 ppm)
START_TIMEOUT = 20.0


def read_stamps(path: Path) -> list[float]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [float(line) for line in text.splitlines() if line.strip()]


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, standard error of b)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    b = sxy / sxx
    a = my - b * mx
    sse = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    se = math.sqrt(sse / (n - 2) / sxx) if n > 2 else math.nan
    return a, b, se


def analyse(stamps: list[float], interval: float) -> dict[str, float]:
    t0 = stamps[0]
    ks = [round((t - t0) / interval) for t in stamps]
    dev = [t - t0 - k * interval for t, k in zip(stamps, ks, strict=True)]
    a, b, se = fit([float(k) for k in ks], stamps)
    resid = [t - (a + b * k) for t, k in zip(stamps, ks, strict=True)]
    steps = [k2 - k1 for k1, k2 in itertools.pairwise(ks)]
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(stamps)]
    absdev = [abs(d) for d in dev[1:]]
    return {
        "n": len(stamps),
        "span": stamps[-1] - t0,
        "jitter_p50": percentile(absdev, 50),
        "jitter_p99": percentile(absdev, 99),
        "jitter_max": max(absdev, default=math.nan),
        "dev_min": min(dev[1:], default=math.nan),
        "dev_max": max(dev[1:], default=math.nan),
        "resid_p50": percentile([abs(r) for r in resid], 50),
        "resid_p99": percentile([abs(r) for r in resid], 99),
        "resid_max": max(abs(r) for r in resid),
        "drift": (b / interval - 1) * 3600 * 1000,  # ms per hour
        "drift_se": se / interval * 3600 * 1000,
        "skipped": sum(s - 1 for s in steps if s > 1),
        "doubled": sum(1 for s in steps if s < 1),
        "gap_min": min(gaps, default=math.nan),
        "gap_max": max(gaps, default=math.nan),
        "end_dev_ms": dev[-1] * 1000,
    }


def report(r: dict[str, float], args: argparse.Namespace) -> None:
    print()
    print(
        f"Schedule precision: {int(r['n'])} probes of one watch at -i {args.interval:g} "
        f"over {r['span']:.0f} s, arrival stamped by the server (accept, CLOCK_MONOTONIC)"
    )
    print()
    rows = [
        ("jitter |t - (t0 + k s)|", r["jitter_p50"], r["jitter_p99"], r["jitter_max"]),
        ("residual of the fitted grid", r["resid_p50"], r["resid_p99"], r["resid_max"]),
    ]
    print(f"{'':30} {'p50':>9} {'p99':>9} {'max':>9}")
    for name, p50, p99, top in rows:
        print(f"{name:30} {p50 * 1000:>6.2f} ms {p99 * 1000:>6.2f} ms {top * 1000:>6.2f} ms")
    print(
        f"signed deviation: {r['dev_min'] * 1000:+.2f} .. {r['dev_max'] * 1000:+.2f} ms; "
        f"last probe {r['end_dev_ms']:+.2f} ms off the grid of the first"
    )
    print(
        f"intervals between probes: {r['gap_min'] * 1000:.1f} .. {r['gap_max'] * 1000:.1f} ms; "
        f"skipped ticks {int(r['skipped'])}, doubled probes {int(r['doubled'])}"
    )
    print(f"drift: {r['drift']:+.2f} ms/h (standard error {r['drift_se']:.2f} ms/h)")
    print()
    limit = max(DRIFT_FLOOR, 3 * r["drift_se"])
    jitter_ok = r["jitter_p99"] <= TARGET_JITTER_P99
    drift_ok = abs(r["drift"]) <= limit and r["skipped"] == 0 and r["doubled"] == 0
    print(
        f"target: jitter p99 <= {TARGET_JITTER_P99 * 1000:.0f} ms: "
        f"{r['jitter_p99'] * 1000:.2f} ms -> {'PASS' if jitter_ok else 'FAIL'}"
    )
    print(
        f"target: no drift (|drift| <= {limit:.0f} ms/h, no skipped or doubled tick): "
        f"{r['drift']:+.2f} ms/h -> {'PASS' if drift_ok else 'FAIL'}"
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=300, help="probes to record (300)")
    parser.add_argument("--quick", action="store_true", help="30 probes, a smoke run")
    parser.add_argument("--interval", type=int, default=1, help="the watch's -i (1)")
    parser.add_argument("--save", metavar="FILE", help="also write the arrival stamps to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.probes = 30
    if args.probes < 5 or args.interval < 1:
        parser.error("--probes must be >= 5 and --interval >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="ismon-sched-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        state = work / "state"
        state.mkdir(mode=0o700)
        stamps_file = work / "stamps"
        port_file = work / "port"
        limit = args.probes * args.interval + 120
        server = spawn(
            [sys.executable, "-c", STAMP_SERVER, str(port_file), str(stamps_file), str(limit)],
            work / "server.log",
        )
        procs.append(server)
        try:
            port = str(wait_for_port_file(port_file, server, "the stamping server", START_TIMEOUT))
        except BenchError as e:
            raise BenchError(f"{e}: " + (work / "server.log").read_text()) from None
        watch_log = work / "watch.log"
        watch = spawn(
            [
                console_script("clp_httpmon"),
                "sched",
                "-s",
                "127.0.0.1",
                "-n",
                port,
                "-i",
                str(args.interval),
                "-c",
                "3",
                "-r",
                "5",
                "--state-dir",
                str(state),
                "--syslog-socket",
                "none",
            ],
            watch_log,
        )
        procs.append(watch)
        print(
            f"recording {args.probes} probes at -i {args.interval} "
            f"(~{args.probes * args.interval} s) ...",
            flush=True,
        )
        deadline = time.monotonic() + args.probes * args.interval + START_TIMEOUT + 10
        shown = 0
        while True:
            count = len(read_stamps(stamps_file))
            if count >= args.probes:
                break
            if watch.poll() is not None:
                raise BenchError(
                    f"the watch exited with {watch.returncode}:\n" + watch_log.read_text()[-2000:]
                )
            if server.poll() is not None:
                raise BenchError("the stamping server exited: " + (work / "server.log").read_text())
            if time.monotonic() > deadline:
                raise BenchError(f"only {count} probes after the deadline")
            if count - shown >= 60:
                shown = count
                print(f"  {count} probes", flush=True)
            time.sleep(0.5)
        code = end_process(watch, 3.0)
        stamps = read_stamps(stamps_file)[: args.probes]
        if args.save:
            Path(args.save).write_text("".join(f"{t:.6f}\n" for t in stamps))
        report(analyse(stamps, args.interval), args)
        print(f"(watch stopped with SIGTERM: exit {code})")
        return 0 if code == 0 else 1
    except BenchError as e:
        print(f"schedule_precision: broken: {e}", file=sys.stderr)
        return 1
    except Interrupted:
        print("schedule_precision: interrupted", file=sys.stderr)
        return 130
    finally:
        ignore_signals()
        for proc in reversed(procs):
            end_process(proc, 3.0)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
