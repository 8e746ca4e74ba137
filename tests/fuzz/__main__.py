"""
Run the fuzz targets (docs/fuzzing.md)::

    python -m tests.fuzz --list
    python -m tests.fuzz TARGET [--seconds N | --runs N] [--jobs J] [--out DIR] \\
        [--slack X] [--seed S] [-- extra libFuzzer arguments]
    python -m tests.fuzz all --runs 2000          # every target in turn
    python -m tests.fuzz TARGET --replay FILE...  # run inputs once (a crash to reproduce)
    python -m tests.fuzz --summary DIR            # the table of an earlier run's --out DIR

Each job is one atheris process (L{tests.fuzz.run}) with the ismon modules
instrumented, its own seed, and libFuzzer's bounds: C{-rss_limit_mb}
(memory), C{-timeout} (a hung input), C{-max_len} (the table's); the
per-input CPU bound is the harness's (100 ms x --slack).  Jobs of one
target share a work corpus (OUT/TARGET/corpus, kept between runs; the
seed corpus and the regression inputs are read, never written) and
write crashes to OUT/TARGET/crashes/.

With --seconds, a job that crashed starts again for the time left (up to
--restarts times), so a long run reports every distinct crash, not only
the first; --runs is a fixed number of inputs per job, the deterministic
form the CI test uses.

At the end: one line per target with executions, coverage (libFuzzer's
cov: and ft:, the most any job reached), corpus size, the worst CPU and
wall time of one input, and the crashes; also OUT/TARGET/summary.json.
Exit status 0 when no target crashed, 1 otherwise, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path(tempfile.gettempdir()) / "ismon-fuzz"

#: libFuzzer's memory bound for one fuzzing process (MiB); the interpreter
#: with Twisted imported takes ~70 MiB, a parser's bounded buffers far less.
RSS_LIMIT_MB = 1024
#: libFuzzer's hang bound (s): an input still running after this is a crash
#: ("timeout"); the harness's CPU bound (100 ms) catches slow inputs sooner.
HANG_SECONDS = 10
#: Seconds a job may take beyond its own time (start-up, seeds, final stats).
GRACE_SECONDS = 120


@dataclass
class Crash:
    kind: str  # "crash", "timeout" (hang), "oom", "slow-unit"...
    key: str  # exception type and the last ismon or harness frame: the dedup key
    artifact: str
    first_line: str
    at_start: bool = False


@dataclass
class JobResult:
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    seconds: float = 0.0
    worst_cpu_ms: float = 0.0
    worst_wall_ms: float = 0.0
    worst_input_hex: str = ""
    crashes: list[Crash] = field(default_factory=list)
    broken: str = ""


_COV = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)/")
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_DONE = re.compile(r"^#(\d+)\s", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _targets() -> list[str]:
    from tests.fuzz.targets import TARGETS

    return list(TARGETS)


def _parse_log(text: str, result: JobResult) -> Crash | None:
    """Fold one job's libFuzzer output into C{result}; the crash it reports, if any."""
    covs = _COV.findall(text)
    if covs:
        cov, ft, corpus = map(int, covs[-1])
        result.cov, result.ft, result.corpus = (
            max(result.cov, cov),
            max(result.ft, ft),
            max(result.corpus, corpus),
        )
    executed = _EXECUTED.findall(text)
    if executed:
        result.executions += int(executed[-1])
    else:
        counts = _DONE.findall(text)
        result.executions += int(counts[-1]) if counts else 0
    # slow-unit-* files are libFuzzer's notes of slow inputs, not crashes.
    artifact = [a for a in _ARTIFACT.findall(text) if not Path(a).name.startswith("slow-unit-")]
    if not artifact:
        return None
    path = artifact[-1]
    kind = Path(path).name.split("-", 1)[0]
    # atheris prints the exception's last line right after this banner.
    exception = ""
    lines = text.splitlines()
    for at, line in enumerate(lines[:-1]):
        if "=== Uncaught Python exception: ===" in line:
            exception = lines[at + 1].strip()
    frames = [f for f in _FRAME.findall(text) if "/tests/fuzz/run.py" not in f[0]]
    where = ""
    if frames:
        file, line, function = frames[-1]
        where = f"{Path(file).name}:{line} {function}"
    key = f"{kind}: {exception.split(':', 1)[0] or '?'} at {where or '?'}"
    # Before INITED: a seed or regression input of the repository crashed.
    return Crash(kind, key, path, exception[:300], at_start="INITED" not in text)


# The fuzzing processes running now: ended by PID when the driver is stopped.
_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _job(
    target: str,
    number: int,
    out: Path,
    args: argparse.Namespace,
    budget: float | None,
    seed: int,
    extra: list[str],
    result: JobResult,
) -> Crash | None:
    """One fuzzing process until it ends; its figures go into C{result}."""
    from tests.fuzz.targets import TARGETS

    spec = TARGETS[target]
    folder = out / target
    crashes = folder / "crashes"
    corpus = folder / "corpus"
    crashes.mkdir(parents=True, exist_ok=True)
    corpus.mkdir(parents=True, exist_ok=True)
    stats = folder / f"stats-{number}.json"
    log = folder / f"log-{number}.txt"
    fuzzer = [
        f"-max_len={spec.max_len}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={HANG_SECONDS}",
        f"-artifact_prefix={crashes}/",
        f"-seed={seed}",
        "-print_final_stats=1",
        *(["-runs=" + str(args.runs)] if args.runs is not None else []),
        *([f"-max_total_time={max(1, int(budget))}"] if budget is not None else []),
        *([f"-dict={spec.dictionary}"] if spec.dictionary else []),
        *spec.extra,
        *extra,
    ]
    folders = [str(corpus), *(str(p) for p in (spec.corpus, spec.regressions) if p.is_dir())]
    command = [
        sys.executable,
        "-m",
        "tests.fuzz.run",
        target,
        "--stats",
        str(stats),
        "--slack",
        str(args.slack),
        "--",
        *fuzzer,
        *(args.replay or folders),
    ]
    scratch = Path(tempfile.mkdtemp(prefix=f"ismon-fuzz-{target}-"))
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "ISMON_FUZZ_SCRATCH": str(scratch),
    }
    limit = (budget if budget is not None else 3600.0) + GRACE_SECONDS
    started = time.monotonic()
    # A restart after a crash appends to the job's log: each crash's report stays.
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _LIVE.add(process)
        try:
            process.wait(limit)
        except subprocess.TimeoutExpired:
            result.broken = f"job {number} did not end within {limit:.0f} s: killed"
            _kill(process)
        except BaseException:  # stopped (SIGTERM, Ctrl-C) in this thread
            _kill(process)
            raise
        finally:
            _LIVE.discard(process)
            shutil.rmtree(scratch, ignore_errors=True)
    result.seconds += time.monotonic() - started
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    crash = _parse_log(text, result)
    with contextlib.suppress(OSError, ValueError):
        worst = json.loads(stats.read_text())
        if worst["worst_cpu_ms"] > result.worst_cpu_ms:
            result.worst_cpu_ms = worst["worst_cpu_ms"]
            result.worst_input_hex = worst["worst_input_hex"]
        result.worst_wall_ms = max(result.worst_wall_ms, worst["worst_wall_ms"])
    if crash is None and process.returncode not in (0, None) and not result.broken:
        result.broken = f"job {number} exited {process.returncode} without a crash: see {log}"
    if crash is not None:
        result.crashes.append(crash)
    return crash


def fuzz_target(target: str, args: argparse.Namespace, extra: list[str]) -> JobResult:
    """Run C{args.jobs} jobs of one target to the end; their figures summed."""
    out: Path = args.out
    results = [JobResult() for _ in range(args.jobs)]
    deadline = time.monotonic() + args.seconds if args.seconds is not None else None

    def run(number: int) -> None:
        seed = args.seed + number
        restarts = 0
        while True:
            budget = None if deadline is None else deadline - time.monotonic()
            if budget is not None and budget < 1:
                return
            crash = _job(target, number, out, args, budget, seed, extra, results[number])
            if crash is None or deadline is None or args.replay or restarts >= args.restarts:
                return
            if crash.at_start:
                return  # every restart would crash on the same seed at once
            restarts += 1
            seed += 1000  # another path after a crash

    if args.jobs == 1:
        run(0)
    else:
        import threading

        threads = [threading.Thread(target=run, args=(n,)) for n in range(args.jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    total = JobResult()
    for result in results:
        total.executions += result.executions
        total.cov, total.ft = max(total.cov, result.cov), max(total.ft, result.ft)
        total.corpus = max(total.corpus, result.corpus)
        total.seconds = max(total.seconds, result.seconds)
        if result.worst_cpu_ms > total.worst_cpu_ms:
            total.worst_cpu_ms, total.worst_input_hex = result.worst_cpu_ms, result.worst_input_hex
        total.worst_wall_ms = max(total.worst_wall_ms, result.worst_wall_ms)
        total.crashes += result.crashes
        total.broken = total.broken or result.broken
    summary = {"target": target, **asdict(total)}
    (out / target).mkdir(parents=True, exist_ok=True)
    (out / target / "summary.json").write_text(json.dumps(summary, indent=1))
    return total


HEADER = (
    f"{'target':22} {'execs':>10} {'exec/s':>7} {'cov':>5} {'ft':>6} {'corpus':>6} "
    f"{'worst cpu ms':>12} {'worst wall ms':>13} {'crashes':>7}"
)


def line(target: str, result: JobResult) -> str:
    rate = result.executions / result.seconds if result.seconds else 0
    distinct = len({crash.key for crash in result.crashes})
    return (
        f"{target:22} {result.executions:>10} {rate:>7.0f} {result.cov:>5} {result.ft:>6} "
        f"{result.corpus:>6} {result.worst_cpu_ms:>12.2f} {result.worst_wall_ms:>13.2f} "
        f"{distinct:>7}"
    )


def print_summary(out: Path) -> int:
    """The table of the targets run with --out C{out} (their summary.json files)."""
    print(HEADER)
    failed = False
    for path in sorted(out.glob("*/summary.json")):
        document = json.loads(path.read_text())
        crashes = [Crash(**crash) for crash in document.pop("crashes")]
        result = JobResult(**{k: v for k, v in document.items() if k != "target"}, crashes=crashes)
        print(line(document["target"], result))
        for crash in {crash.key: crash for crash in crashes}.values():
            print(f"    CRASH {crash.key}\n      {crash.first_line}\n      input: {crash.artifact}")
        if result.broken:
            print(f"    BROKEN {result.broken}")
        failed = failed or bool(crashes or result.broken)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    ours, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
        if "--" in argv
        else (
            argv,
            [],
        )
    )
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description="Fuzz ismon's parsers (docs/fuzzing.md)."
    )
    parser.add_argument("target", nargs="?", help="a target of --list, or all")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, help="fuzz this long (per target)")
    length.add_argument("--runs", type=int, help="this many inputs per job (deterministic)")
    parser.add_argument("--jobs", type=int, default=1, help="processes per target (1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"({DEFAULT_OUT})")
    parser.add_argument("--slack", type=float, default=1.0, help="x the 100 ms bound (1)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer seed of job 0 (1)")
    parser.add_argument("--restarts", type=int, default=20, help="after crashes (--seconds)")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs once")
    parser.add_argument("--summary", type=Path, metavar="DIR", help="print DIR's table and exit")
    args = parser.parse_args(ours)
    if args.summary is not None:
        return print_summary(args.summary)
    if args.list:
        from tests.fuzz.targets import TARGETS

        for name, spec in TARGETS.items():
            declared = ", ".join(e.__name__ for e in spec.declared) or "nothing"
            print(f"{name:22} {spec.summary}; may raise {declared}")
        return 0
    if not args.target:
        parser.error("name a target (or all, or --list)")
    names = _targets() if args.target == "all" else [args.target]
    unknown = [n for n in names if n not in _targets()]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r} (see --list)")
    if args.seconds is None and args.runs is None and not args.replay:
        args.seconds = 60.0
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)

    def stopped(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (scripts/fuzz.sh stopped) ends the fuzzing processes as Ctrl-C does.
    signal.signal(signal.SIGTERM, stopped)
    print(HEADER, flush=True)
    failed = False
    for name in names:
        try:
            result = fuzz_target(name, args, extra)
        except KeyboardInterrupt:
            for process in list(_LIVE):
                _kill(process)
            print("stopped", flush=True)
            return 130
        print(line(name, result), flush=True)
        for crash in {crash.key: crash for crash in result.crashes}.values():
            print(f"    CRASH {crash.key}\n      {crash.first_line}\n      input: {crash.artifact}")
            print(f"      replay: python -m tests.fuzz {name} --replay {crash.artifact}")
        if result.broken:
            print(f"    BROKEN {result.broken}")
        failed = failed or bool(result.crashes or result.broken)
    print(f"logs, corpora and crashes: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
