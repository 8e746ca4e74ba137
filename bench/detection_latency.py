#!/usr/bin/env python3
"""
Detection latency: how long after a fault does a watch exit, against the
bound it printed at start-up ("a stall is detected within N s")?

For each fault kind --

  nginx-stall    SIGSTOP to nginx (master and worker): connections are
                 accepted by the kernel, never answered (message 74);
  nginx-killed   SIGKILL to nginx (master and worker): connections refused
                 (message 72);
  smtp-stall     SIGSTOP to aiosmtpd: no greeting ever comes (message 74);

-- it runs N trials (default 20 each).  A trial is one fresh server and one
fresh watch at short timing (-i 1 -c 2 -r 1, bound 4 s).  Once the watch
probes, the bench asks it for its status (``ismon status --json``), which
gives the start time of its last probe on the watch's own clock, hence
its probe grid.  The fault is injected DELTA (default 20 ms) after a grid
point, i.e. just after a successful probe: the worst phase, the one the
printed bound is computed for.  The exit of the watch is seen through a
pidfd (poll), to the millisecond.

Reported per trial and per kind:

  overshoot = exit_time - fault_time - bound  (negative: early; target max <= 100 ms)
  lag       = exit_time - (grid point before the fault + bound)
              what the watch adds to its own schedule (timer slack, the exit
              path, interpreter teardown); an upper bound of the overshoot
              for a fault at the very instant the last good probe ended.

and the exit code of each watch (expected: 1).  Several trials run at once
(--parallel, default 6, on different servers), their watches started
100 ms apart so that their grids interleave.

    python bench/detection_latency.py              # 20 trials per kind (~2 min)
    python bench/detection_latency.py --quick      # 2 per kind, a smoke run
    python bench/detection_latency.py --trials 50 --parallel 3 -v

Benchmarks print figures; they are not tests.  The exit status is 0 unless
something broke (a server or a watch did not start, a watch exited before
its fault); a missed target prints FAIL but still exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# bench/_common.py: run as python bench/NAME.py, this folder is sys.path[0];
# importing it also puts the checkout on sys.path (for tests.servers).
from _common import (
    BenchError,
    Interrupted,
    catch_signals,
    console_script,
    end_process,
    ignore_signals,
    percentile,
    spawn,
)

from tests.servers import (
    ServerProcess,
    ServerUnavailable,
    start_aiosmtpd,
    start_nginx,
)

KINDS = ("nginx-stall", "nginx-killed", "smtp-stall")
TIMING = ["-i", "1", "-c", "2", "-r", "1"]
TARGET_OVERSHOOT = 0.100  # seconds
START_TIMEOUT = 20.0  # seconds for a watch to log "has started watching"
EXIT_SLACK = 10.0  # seconds past fault + bound before a watch counts as hung
STATUS_TIMEOUT = 10.0
_BOUND_RE = re.compile(r"a stall is detected within ([0-9.]+)s")
_STARTED = "has started watching"


# --------------------------------------------------------------------------
# Small helpers


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:+.0f}"


def ismon_status(ismon: str, watch_id: str, state_dir: Path) -> dict[str, object]:
    done = subprocess.run(
        [ismon, "status", watch_id, "--json", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=STATUS_TIMEOUT,
    )
    if done.returncode != 0:
        raise BenchError(f"ismon status {watch_id} exited {done.returncode}: {done.stderr.strip()}")
    status = json.loads(done.stdout)
    if not isinstance(status, dict):
        raise BenchError(f"ismon status {watch_id}: not an object: {done.stdout!r}")
    return status


# --------------------------------------------------------------------------
# One trial


@dataclass
class Trial:
    kind: str
    number: int
    server: ServerProcess | None = None
    server_pids: list[int] = field(default_factory=list)
    watch: subprocess.Popen[bytes] | None = None
    pidfd: int = -1
    log: Path | None = None
    watch_id: str = ""
    bound: float = math.nan
    grid_point: float = math.nan  # monotonic start of the last good probe before the fault
    fault_at: float = math.nan
    exit_at: float = math.nan
    code: int | None = None
    error: str = ""
    json_log: Path | None = None
    verdict_at: float = math.nan  # monotonic time of the last failure message (--breakdown)
    terminate_at: float = math.nan  # ... of message 6, "will terminate"

    @property
    def overshoot(self) -> float:
        return self.exit_at - self.fault_at - self.bound

    @property
    def lag(self) -> float:
        return self.exit_at - self.grid_point - self.bound

    def read_breakdown(self) -> None:
        """From the watch's --json-log: when it logged its verdict and message 6."""
        if self.json_log is None or not self.json_log.exists():
            return
        offset = time.time() - time.monotonic()
        for line in self.json_log.read_text().splitlines():
            record = json.loads(line)
            if record.get("level") == "error" and record.get("id") in (72, 74, 75):
                self.verdict_at = float(record["time"]) - offset
            elif record.get("id") == 6:
                self.terminate_at = float(record["time"]) - offset

    def log_tail(self, lines: int = 12) -> str:
        if self.log is None:
            return ""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("      " + line for line in text.splitlines()[-lines:])

    def inject(self) -> None:
        sig = signal.SIGKILL if self.kind == "nginx-killed" else signal.SIGSTOP
        # The master first: a master that outlives its worker by a moment
        # forks a new one (SIGCHLD), which then outlives the master and keeps
        # answering on the inherited socket.
        for pid in self.server_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def cleanup(self) -> None:
        if self.watch is not None:
            end_process(self.watch, 3.0)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        if self.server is not None:
            for pid in self.server_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            self.server.stop()
            # A killed nginx master leaves no worker behind; a stalled one is
            # stopped by ServerProcess.stop (SIGCONT, SIGQUIT, SIGKILL).
            for pid in self.server_pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.state_dir = work / "state"
        self.state_dir.mkdir(mode=0o700)
        self.clp_httpmon = console_script("clp_httpmon")
        self.clp_smtpmon = console_script("clp_smtpmon")
        self.ismon = console_script("ismon")
        self.trials: list[Trial] = []
        self.live: list[Trial] = []

    def say(self, text: str) -> None:
        if self.args.verbose:
            print(text, flush=True)

    def start_trial(self, trial: Trial) -> None:
        folder = self.work / f"t{trial.number:03d}"
        folder.mkdir()
        if trial.kind.startswith("nginx"):
            trial.server = start_nginx(folder / "nginx", ipv6=False)
            command = self.clp_httpmon
        else:
            trial.server = start_aiosmtpd(folder / "smtp")
            command = self.clp_smtpmon
        trial.server_pids = trial.server.pids()
        port = trial.server.port  # type: ignore[attr-defined]
        trial.watch_id = f"d{trial.number:03d}"
        trial.log = folder / "watch.log"
        argv = [
            command,
            trial.watch_id,
            "-s",
            "127.0.0.1",
            "-n",
            str(port),
            *TIMING,
            "--state-dir",
            str(self.state_dir),
            "--syslog-socket",
            "none",
        ]
        if self.args.breakdown:
            trial.json_log = folder / "watch.jsonl"
            argv += ["--json-log", str(trial.json_log)]
        trial.watch = spawn(argv, trial.log)
        trial.pidfd = os.pidfd_open(trial.watch.pid)

    def wait_started(self, trial: Trial) -> None:
        assert trial.watch is not None and trial.log is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = trial.log.read_text(errors="replace")
            if _STARTED in text:
                found = _BOUND_RE.search(text)
                if found is None:
                    raise BenchError(f"watch {trial.watch_id} printed no bound:\n{text}")
                trial.bound = float(found.group(1))
                return
            if trial.watch.poll() is not None:
                raise BenchError(
                    f"watch {trial.watch_id} exited {trial.watch.returncode} at start:\n{text}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"watch {trial.watch_id} not started after {START_TIMEOUT}s")
            time.sleep(0.02)

    def anchor(self, trial: Trial) -> float:
        """Monotonic start time of the watch's last probe (must have succeeded)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            status = ismon_status(self.ismon, trial.watch_id, self.state_dir)
            last = status.get("last_probe")
            if isinstance(last, dict) and last.get("ok"):
                offset = time.time() - time.monotonic()
                return float(last["time"]) - offset
            if time.monotonic() > deadline:
                raise BenchError(f"watch {trial.watch_id} has no good probe: {status}")
            time.sleep(0.3)

    def run_batch(self, batch: list[Trial]) -> None:
        self.live = batch
        for trial in batch:
            self.start_trial(trial)
            time.sleep(0.1)  # interleave the grids
        for trial in batch:
            self.wait_started(trial)
        time.sleep(1.2)  # a probe or two on the grid
        anchors = {trial.number: self.anchor(trial) for trial in batch}
        for trial in batch:
            # Now, not at start: nginx may fork its worker after it listens.
            assert trial.server is not None
            trial.server_pids = trial.server.pids()
            if trial.kind.startswith("nginx") and len(trial.server_pids) < 2:
                raise BenchError(f"nginx of {trial.watch_id} has no worker: {trial.server_pids}")
        # Injection: DELTA after the first grid point LEAD seconds from now.
        now = time.monotonic()
        plan: list[tuple[float, Trial]] = []
        for trial in batch:
            base = anchors[trial.number]
            k = math.ceil(now + self.args.lead - base)
            trial.grid_point = base + k
            plan.append((trial.grid_point + self.args.delta, trial))
        plan.sort(key=lambda item: item[0])
        self.run_events(batch, plan)
        for trial in batch:
            assert trial.watch is not None
            try:
                trial.code = trial.watch.wait(5)
            except subprocess.TimeoutExpired:
                trial.error = trial.error or "still running after the deadline"
            if trial.error:
                continue
            trial.read_breakdown()
            self.say(
                f"  {trial.kind:13} {trial.watch_id} exit {trial.code} "
                f"overshoot {ms(trial.overshoot)} ms lag {ms(trial.lag)} ms"
            )
        for trial in batch:
            trial.cleanup()
        self.live = []

    def run_events(self, batch: list[Trial], plan: list[tuple[float, Trial]]) -> None:
        """Inject the faults on time and time-stamp every exit (pidfd), bounded."""
        poller = select.poll()
        by_fd: dict[int, Trial] = {}
        for trial in batch:
            poller.register(trial.pidfd, select.POLLIN)
            by_fd[trial.pidfd] = trial
        pending = list(plan)
        waiting = len(batch)
        hard_deadline = plan[-1][0] + max(t.bound for t in batch) + EXIT_SLACK
        while waiting:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, trial = pending.pop(0)
                trial.fault_at = time.monotonic()
                trial.inject()
                now = time.monotonic()
            if now > hard_deadline:
                for trial in batch:
                    if math.isnan(trial.exit_at):
                        trial.error = "did not exit within bound + 10 s"
                return
            until = pending[0][0] if pending else hard_deadline
            timeout_ms = max(0, math.ceil((until - now) * 1000))
            for fd, _ in poller.poll(min(timeout_ms, 1000)):
                when = time.monotonic()
                trial = by_fd[fd]
                poller.unregister(fd)
                waiting -= 1
                trial.exit_at = when
                if math.isnan(trial.fault_at):
                    trial.error = "exited before its fault was injected"
                    raise BenchError(
                        f"watch {trial.watch_id} ({trial.kind}) exited before its fault "
                        f"(a false exit):\n{trial.log_tail()}"
                    )

    def cleanup(self) -> None:
        for trial in self.live:
            with contextlib.suppress(Exception):
                trial.cleanup()
        self.live = []


# --------------------------------------------------------------------------
# Report


def report(trials: list[Trial], args: argparse.Namespace) -> bool:
    print()
    print(
        f"Detection latency: {len(trials)} trials, timing {' '.join(TIMING)}, "
        f"fault injected {args.delta * 1000:.0f} ms after a grid point "
        f"(just after a good probe), {args.parallel} trials at a time"
    )
    print("overshoot = exit - fault - bound (negative: early); lag = exit - (grid point + bound)")
    print()
    header = (
        f"{'fault':14} {'n':>3} {'bound':>6} {'exit codes':>12} "
        f"{'overshoot p50':>14} {'max':>6} {'min':>6} {'lag p50':>8} {'lag max':>8}"
    )
    print(header)
    print("-" * len(header))
    all_over: list[float] = []
    codes_ok = True
    for kind in KINDS:
        done = [t for t in trials if t.kind == kind and not t.error]
        over = [t.overshoot for t in done]
        lag = [t.lag for t in done]
        all_over += over
        codes: dict[int | None, int] = {}
        for t in done:
            codes[t.code] = codes.get(t.code, 0) + 1
        if any(code != 1 for code in codes):
            codes_ok = False
        code_text = ",".join(f"{c}x{n}" for c, n in sorted(codes.items(), key=str)) or "-"
        bounds = {t.bound for t in done}
        bound_text = "/".join(f"{b:g}s" for b in sorted(bounds)) or "-"
        print(
            f"{kind:14} {len(done):>3} {bound_text:>6} {code_text:>12} "
            f"{ms(percentile(over, 50)):>11} ms {ms(max(over, default=math.nan)):>6} "
            f"{ms(min(over, default=math.nan)):>6} {ms(percentile(lag, 50)):>8} "
            f"{ms(max(lag, default=math.nan)):>8}"
        )
    broken = [t for t in trials if t.error]
    for t in broken:
        print(f"  BROKEN {t.kind} {t.watch_id}: {t.error}\n{t.log_tail()}")
    print("(exit codes: CODExCOUNT; times in ms)")
    if args.breakdown:
        print()
        print("where the lag goes (from --json-log; stall kinds; ms, p50 / max):")
        stalls = [t for t in trials if "stall" in t.kind and not t.error]
        parts = {
            "verdict late vs grid point + bound": [
                t.verdict_at - t.grid_point - t.bound for t in stalls
            ],
            "verdict -> message 6 logged": [t.terminate_at - t.verdict_at for t in stalls],
            "message 6 -> process gone": [t.exit_at - t.terminate_at for t in stalls],
        }
        for name, values in parts.items():
            values = [v for v in values if not math.isnan(v)]
            print(
                f"  {name:36} {ms(percentile(values, 50)):>6} / {ms(max(values, default=math.nan)):>6}"
            )
    worst = max(all_over, default=math.nan)
    verdict = not broken and codes_ok and not math.isnan(worst) and worst <= TARGET_OVERSHOOT
    print()
    print(
        f"target: max overshoot <= {TARGET_OVERSHOOT * 1000:.0f} ms and every exit code 1: "
        f"max {ms(worst)} ms -> {'PASS' if verdict else 'FAIL'}"
    )
    return bool(broken)


# --------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per fault kind (20)")
    parser.add_argument("--quick", action="store_true", help="2 trials per kind, a smoke run")
    parser.add_argument("--parallel", type=int, default=6, help="trials at once (6)")
    parser.add_argument(
        "--delta", type=float, default=0.020, help="fault this long after a grid point (0.020 s)"
    )
    parser.add_argument(
        "--lead", type=float, default=0.6, help="at least this long from now to the fault (s)"
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per trial")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="give each watch --json-log and split the lag into its parts",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every trial to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = 2
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown or args.trials < 1 or args.parallel < 1 or not 0 <= args.delta < 0.9:
        parser.error(f"bad --kinds/--trials/--parallel/--delta ({sorted(unknown)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    catch_signals()
    work = Path(tempfile.mkdtemp(prefix="ismon-detect-"))
    bench: Bench | None = None
    started = time.monotonic()
    try:
        bench = Bench(work, args)
        # Interleave the kinds so that every batch mixes them.
        order = [kind for _ in range(args.trials) for kind in args.kinds]
        trials = [Trial(kind, n) for n, kind in enumerate(order)]
        for first in range(0, len(trials), args.parallel):
            batch = trials[first : first + args.parallel]
            bench.say(f"batch {first // args.parallel + 1}: {len(batch)} trials")
            bench.run_batch(batch)
            bench.trials += batch
        broken = report(bench.trials, args)
        print(f"(run time {time.monotonic() - started:.0f} s)")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    [
                        {
                            "kind": t.kind,
                            "bound": t.bound,
                            "overshoot": t.overshoot,
                            "lag": t.lag,
                            "code": t.code,
                            "error": t.error,
                        }
                        for t in bench.trials
                    ],
                    indent=1,
                )
            )
        return 1 if broken else 0
    except ServerUnavailable as e:
        print(f"detection_latency: a server cannot run here: {e}", file=sys.stderr)
        return 1
    except BenchError as e:
        print(f"detection_latency: broken: {e}", file=sys.stderr)
        return 1
    except Interrupted:
        print("detection_latency: interrupted", file=sys.stderr)
        return 130
    finally:
        ignore_signals()
        if bench is not None:
            bench.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
