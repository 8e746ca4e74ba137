#!/usr/bin/env python3
"""
Why the TCP watch's --expect runs on RE2 (ismon.wire.tcp), in figures: the
classic catastrophic-backtracking patterns, each against the input that
makes a backtracking engine try every way to split it,

  (a) in Python's re, at growing input sizes, each search in a child
      process killed after --limit seconds (default 5): the size at which
      re needs a second and more;
  (b) in RE2 through ismon.wire.tcp.ExpectMatcher, on 64 KiB of the same
      input (the matcher's bound): the time of one search, best of 5;

and the matcher's worst trickle, 64 KiB fed one byte at a time (one RE2
search per arrival, each linear in what was kept): the CPU seconds it
costs for the worst pattern and for a plain literal; then the same trickle
through the TCP probe (ismon.probes.tcp, on a fake clock: one byte every
0.1 ms, 1 ms and 10 ms), which searches at most once every SEARCH_GAP.

    python bench/regex_cost.py             # re up to 32 bytes, 5 s limit per search
    python bench/regex_cost.py --quick     # re up to 24 bytes, 2 s limit

A bench prints figures; it exits 0 unless something broke (2).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence

# bench/_common.py puts the checkout on sys.path (for ismon.*).
import _common  # noqa: F401

from ismon.wire.tcp import MAX_EXPECT_BYTES, ExpectMatcher, compile_expect

# (pattern, the hostile input of n bytes)
CASES: list[tuple[str, str]] = [
    (r"(a+)+$", "'a' * (n - 1) + 'b'"),
    (r"(a|aa)+$", "'a' * (n - 1) + 'b'"),
    (r"(a|a?)+b", "'a' * n"),
    (r"(x+x+)+y", "'x' * n"),
    (r"^(\w+\s?)+$", "'a' * (n - 1) + '!'"),
]

# A child that times one `re` search: python -c CHILD PATTERN INPUT-EXPR N
CHILD = r"""
import re, sys, time
pattern, make, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = eval(make, {"n": n}).encode()
compiled = re.compile(pattern.encode())
start = time.perf_counter()
compiled.search(text)
print(time.perf_counter() - start)
"""


def time_re(pattern: str, make: str, n: int, limit: float) -> float | None:
    """Seconds of one re search in a child process; None past the limit."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, pattern, make, str(n)],
            capture_output=True,
            text=True,
            timeout=limit,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout)


def time_re2(pattern: str, make: str) -> float:
    """Seconds of one RE2 search of 64 KiB through the matcher, best of 5."""
    text = eval(make, {"n": MAX_EXPECT_BYTES}).encode()
    compiled = compile_expect(pattern)
    best = float("inf")
    for _ in range(5):
        matcher = ExpectMatcher(compiled)
        start = time.perf_counter()
        matcher.feed(text)
        matcher.end()
        best = min(best, time.perf_counter() - start)
    return best


def trickle(pattern: str, filler: bytes) -> tuple[float, int]:
    """CPU seconds and searches of 64 KiB (and one byte past it) fed one byte at a time."""
    matcher = ExpectMatcher(compile_expect(pattern))
    start = time.process_time()
    for _ in range(MAX_EXPECT_BYTES + 1):
        if matcher.feed(filler) is not None:
            break
    return time.process_time() - start, matcher.searches


def trickle_probe(pattern: str, filler: bytes, every: float) -> tuple[float, int, float]:
    """
    The same trickle through the TCP probe's conversation on a fake clock,
    one byte every C{every} seconds: CPU seconds, searches, and the trickle's
    length on the clock.
    """
    import socket

    from twisted.internet.defer import succeed
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from ismon.core.requests import TcpRequest
    from ismon.probes.resolve import Address
    from ismon.probes.tcp import TcpProbe

    clock = MemoryReactorClock()
    probe = TcpProbe(
        clock,
        TcpRequest(host="192.0.2.1", port=1, timeout=10000, expect=pattern),
        lambda host, port: succeed([Address(socket.AF_INET, host, port)]),
    )
    probe.probe()
    factory = clock.tcpClients[0][2]
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    conversation = protocol._wrappedProtocol
    start = time.process_time()
    for _ in range(MAX_EXPECT_BYTES + 1):
        protocol.dataReceived(filler)
        clock.advance(every)
    cpu = time.process_time() - start
    return cpu, conversation._matcher.searches, (MAX_EXPECT_BYTES + 1) * every


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="re up to 24 bytes, 2 s limit")
    p.add_argument("--limit", type=float, default=None, help="seconds per re search (5)")
    args = p.parse_args(argv)
    top = 24 if args.quick else 32
    limit = args.limit or (2.0 if args.quick else 5.0)
    print(f"Python re: one search in a child, killed after {limit:g} s; RE2: 64 KiB, best of 5\n")
    head = f"{'pattern':<16} {'re: n bytes -> seconds':<60} {'RE2 on 64 KiB':>14}"
    print(head)
    print("-" * len(head))
    for pattern, make in CASES:
        shown = []
        for n in range(16, top + 1, 4):
            seconds = time_re(pattern, make, n, limit)
            if seconds is None:
                shown.append(f"{n}: >{limit:g}")
                break
            shown.append(f"{n}: {seconds:.3g}")
        ours = time_re2(pattern, make)
        print(f"{pattern:<16} {', '.join(shown):<60} {ours * 1000:11.3f} ms")
    print()
    print("The matcher's worst trickle: 64 KiB arriving one byte at a time, no match")
    for pattern, filler in ((r"(x+x+)+y", b"x"), (r"\+PONG", b"x")):
        cpu, searches = trickle(pattern, filler)
        print(f"  {pattern:<12} {searches} searches, {cpu:.2f} s CPU")
    print("\nThe same trickle through the TCP probe (fake clock), which gathers between searches")
    for pattern, filler in ((r"(x+x+)+y", b"x"), (r"\+PONG", b"x")):
        for every in (0.0001, 0.001, 0.01):
            cpu, searches, span = trickle_probe(pattern, filler, every)
            print(
                f"  {pattern:<12} a byte every {every * 1000:g} ms ({span:.0f} s):"
                f" {searches} searches, {cpu:.2f} s CPU"
            )
    print(
        "\ncommand: "
        + " ".join(["python", "bench/regex_cost.py", *(sys.argv[1:] if argv is None else argv)])
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"regex_cost: {e}", file=sys.stderr)
        sys.exit(2)
