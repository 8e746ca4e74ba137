"""
One atheris process for one fuzz target: what libFuzzer drives.  Run by
C{python -m tests.fuzz} (L{tests.fuzz.__main__}), which collects its
output; by hand::

    python -m tests.fuzz.run TARGET [--stats FILE] [--limit-ms 100] [--slack 1] \\
        -- [libFuzzer arguments, corpus folders or inputs to replay]

The ismon modules are imported under atheris's instrumentation (coverage
and comparison tracing); then every seed is run once untimed (so the lazy
imports inside ismon, taken by those seeds, are instrumented too and their
cost is not an input's); then libFuzzer runs.

Each input is bounded (docs/fuzzing.md, "Rules"): the target's own CPU
time (this thread's, so a machine busy with other work does not count
against it) must stay within C{--limit-ms} x C{--slack}, else the input
is a crash (L{TooSlow}) and libFuzzer keeps it as one.  The worst CPU and
wall time seen, and the input behind the worst, go to C{--stats} (JSON)
whenever they grow: libFuzzer ends the process with exit(), which runs no
Python at-exit code.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tests.fuzz.harness import HarnessFailure, guarded, take_overhead

__all__ = ["TooSlow", "main"]

#: The time bound of one input, in milliseconds of CPU (docs/fuzzing.md).
LIMIT_MS = 100.0
#: atheris's instrumentation (a callback at every branch and comparison)
#: makes ismon's parsers 1.5-4.6x slower here (docs/fuzzing.md, "Rules"), so
#: an instrumented input gets this many times the bound; the same input
#: replayed uninstrumented (tests/test_fuzz.py) gets the plain bound.
INSTRUMENTATION = 5.0


class TooSlow(HarnessFailure):
    """One input took longer than its bound."""


class Stats:
    """The worst times seen, written to a file whenever they grow."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.inputs = 0
        self.refused = 0
        self.worst_cpu = 0.0
        self.worst_wall = 0.0
        self.worst_input = b""

    def observe(self, cpu: float, wall: float, data: bytes, refused: bool) -> None:
        self.inputs += 1
        self.refused += refused
        grew = False
        if cpu > self.worst_cpu:
            self.worst_cpu, self.worst_input, grew = cpu, data, True
        if wall > self.worst_wall:
            self.worst_wall, grew = wall, True
        # Also every 2**14 inputs, so the counts are never far behind.
        if grew or not self.inputs & 0x3FFF:
            self.write()

    def write(self) -> None:
        if self.path is None:
            return
        document = {
            "inputs": self.inputs,
            "refused": self.refused,
            "worst_cpu_ms": round(self.worst_cpu * 1000, 3),
            "worst_wall_ms": round(self.worst_wall * 1000, 3),
            "worst_input_hex": self.worst_input[:512].hex(),
            "worst_input_length": len(self.worst_input),
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document))
        os.replace(temporary, self.path)


def _seeds(folders: list[Path]) -> list[bytes]:
    found: list[bytes] = []
    for folder in folders:
        if folder.is_dir():
            found += [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
        elif folder.is_file():
            found.append(folder.read_bytes())
    return found


def main(argv: list[str]) -> None:
    ours, _, fuzzer_args = (
        (argv[: argv.index("--")], "--", argv[argv.index("--") + 1 :])
        if ("--" in argv)
        else (argv, "", [])
    )
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    parser.add_argument("target")
    parser.add_argument("--stats", type=Path, help="JSON file of the worst times seen")
    parser.add_argument("--limit-ms", type=float, default=LIMIT_MS, help="CPU per input (100)")
    parser.add_argument("--slack", type=float, default=1.0, help="multiplier of the limit (1)")
    args = parser.parse_args(ours)

    import atheris

    # Everything of ismon that the table imports, instrumented; then the
    # seeds once, still inside: what ismon imports lazily is instrumented
    # too.
    with atheris.instrument_imports(include=["ismon"]):
        from tests.fuzz.targets import TARGETS

        if args.target not in TARGETS:
            parser.error(f"unknown target {args.target!r}: one of {', '.join(TARGETS)}")
        target = TARGETS[args.target]
        folders = [Path(a) for a in fuzzer_args if not a.startswith("-")]
        for data in [*_seeds([target.corpus, target.regressions]), *_seeds(folders)]:
            try:
                with guarded():
                    target.one_input(data)
            except BaseException:  # libFuzzer runs it again and reports it
                pass
    # What exists now lives as long as the process: keep the collector off
    # it, so that a full collection cannot land in one input's time.
    gc.collect()
    gc.freeze()

    stats = Stats(args.stats)
    stats.write()
    limit = args.limit_ms / 1000 * INSTRUMENTATION * args.slack
    declared = target.declared
    one_input = target.one_input

    def test_one_input(data: bytes) -> None:
        refused = False
        take_overhead()
        cpu = time.thread_time()
        wall = time.perf_counter()
        with guarded():
            try:
                one_input(data)
            except declared:
                refused = True
        # The harness's own checks do not count (tests.fuzz.harness.overhead).
        spent = take_overhead()
        cpu = time.thread_time() - cpu - spent
        wall = time.perf_counter() - wall - spent
        stats.observe(cpu, wall, data, refused)
        if cpu > limit:
            raise TooSlow(
                f"{args.target}: one input took {cpu * 1000:.1f} ms of CPU "
                f"(bound {limit * 1000:.0f} ms instrumented), {wall * 1000:.1f} ms of wall time"
            )

    atheris.Setup([sys.argv[0], *fuzzer_args], test_one_input)
    atheris.Fuzz()


def _main() -> Any:
    main(sys.argv[1:])


if __name__ == "__main__":
    _main()
