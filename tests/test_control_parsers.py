"""
The two parsers of control command lines are twins: the fast, standard
library one (L{ismon.control.recognise}) and the long way's
(L{ismon.cmdline.cli}, Twisted's C{usage}).  Every line of a seeded corpus
of accepted and refused lines, for C{ismon} and every C{clp_*mon}, goes
through both:

  - a line the fast parser takes is one the long way takes, as the very
    same L{ControlRequest};
  - a line the long way refuses (exit 2, one line on stderr) is one the
    fast parser leaves to it, so that the refusal always reads the same;
  - every line written the canonical way (whole option names, values as
    separate words) that the long way takes, the fast parser takes too:
    cluster software never pays for Twisted for a correct line.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from ismon.cmdline import cli
from ismon.cmdline.options import OPTIONS
from ismon.control.recognise import recognise
from ismon.control.request import ControlRequest
from ismon.core.config import WatchConfig
from ismon.core.protocols import PROTOCOLS

#: Watch IDs: good ones, and ones each parser must refuse.
IDS = ["web", "W2", "x" * 255, "x" * 256, "bad/id", "caf\u00e9", "-r"]

#: Option sets: (the words, whether they are written the canonical way).
OPTION_SETS: list[tuple[list[str], bool]] = [
    ([], True),
    (["-r", "5"], True),
    (["--timeout", "7"], True),
    (["-r5"], False),
    (["--timeout=7"], False),
    (["-r", "0"], True),
    (["-r", "x"], True),
    (["-r", "10001"], True),
    (["-r", " 8"], False),
    (["--state-dir", "/tmp/ismon-s"], True),
    (["--state-dir=/tmp/ismon-s"], False),
    (["--state-dir", ""], True),
    (["--json"], True),
    (["--json=1"], True),
    (["--kill-after", "3"], True),
    (["--kill-after", "0"], True),
    (["--kill", "3"], False),
    (["--for", "15m"], True),
    (["--for", "90"], True),
    (["--for", "0"], True),
    (["--for", "8d"], True),
    (["--for", "7000000"], True),
    (["--reason", "kernel update"], True),
    (["--reason", "bad\x01"], True),
    (["--reason", "\u00e9" * 150], True),
    (["--bogus"], True),
    (["--st", "x"], False),
    (["--"], False),
    (["extra"], True),
]

_ISMON_VERBS = ["status", "stop", "pause", "continue", "disp", "del"]
_CLP_VERBS = [["--stop"], ["--pause"], ["--continue"], ["--disp"], ["--del"], ["--stop", "--pause"]]


def _lines() -> list[tuple[str, list[str], bool]]:
    """(program, argv, canonical) for every line of the corpus."""
    rng = random.Random(20261206)
    lines: list[tuple[str, list[str], bool]] = []
    pairs = [
        (a + b, ca and cb) for (a, ca), (b, cb) in itertools.combinations(OPTION_SETS, 2) if a and b
    ]
    sets = OPTION_SETS + rng.sample(pairs, 120)
    for verb in _ISMON_VERBS:
        for options, canonical in sets:
            lines.append(("ismon", [verb, *options], canonical))
            for watch_id in IDS:
                lines.append(("ismon", [verb, watch_id, *options], canonical))
                lines.append(("ismon", [verb, *options, watch_id], canonical))
    for protocol in PROTOCOLS.values():
        for verb in _CLP_VERBS:
            for options, canonical in rng.sample(sets, 60):
                for watch_id in rng.sample(IDS, 3):
                    lines.append((protocol.command, [watch_id, *verb, *options], canonical))
                    lines.append((protocol.command, [*verb, *options, watch_id], canonical))
    return lines


LINES = _lines()


def _long_way(
    program: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[ControlRequest | WatchConfig | int, str]:
    if program == "ismon":
        parsed = cli.parse_control(argv[0], argv[1:])
    else:
        protocol = next(p for p in PROTOCOLS.values() if p.command == program)
        parsed = cli.parse(OPTIONS[protocol.name], argv)
    return parsed, capsys.readouterr().err


def test_the_corpus_covers_both_ways() -> None:
    assert len(LINES) > 3000


def test_the_twins_agree(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    both = refused = left = 0
    disagree: list[str] = []
    for program, argv, canonical in LINES:
        fast = recognise(program, argv)
        slow, error = _long_way(program, argv, capsys)
        where = f"{program} {argv!r}"
        if fast is not None:
            both += 1
            if slow != fast:
                disagree.append(f"{where}: fast {fast!r}, long way {slow!r} {error!r}")
        elif slow == 2:
            refused += 1
            if error.count("\n") != 1:
                disagree.append(f"{where}: refused with {error!r}")
        elif isinstance(slow, ControlRequest):
            left += 1
            if canonical:
                disagree.append(f"{where}: canonical, left to the long way ({slow!r})")
    assert disagree == []
    # The corpus reaches each kind of line.
    assert both > 300 and refused > 1000 and left > 10, (both, refused, left)
