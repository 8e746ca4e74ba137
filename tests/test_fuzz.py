"""
The fuzz targets in CI (docs/fuzzing.md, "In CI"):

  - every seed and every regression input of every target, run once in
    this process, uninstrumented: nothing but the declared exceptions, and
    each within the time bound (100 ms of CPU x ISMON_FUZZ_SLACK, default 2);
  - each target fuzzed for a fixed number of inputs (its C{ci_runs}, libFuzzer
    seed 1: the same inputs every run), instrumented, in its own process:
    no crash, no input over its bound.

The second part needs atheris (the test extra pins it): without it those
tests skip, or fail where the test tools must all be there
(ISMON_REQUIRE_SERVERS=1, as scripts/test.sh sets as root).
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fuzz.harness import Forbidden, guarded, scratch_dir, take_overhead
from tests.fuzz.targets import TARGETS, Target

ROOT = Path(__file__).resolve().parent.parent
#: The bound of one input, uninstrumented (docs/fuzzing.md, "Rules").
LIMIT_MS = 100.0
SLACK = float(os.environ.get("ISMON_FUZZ_SLACK", "2"))


def _inputs() -> list[tuple[str, Path]]:
    found = []
    for name, target in TARGETS.items():
        for folder in (target.corpus, target.regressions):
            if folder.is_dir():
                found += [(name, path) for path in sorted(folder.iterdir()) if path.is_file()]
    return found


def _id(case: tuple[str, Path]) -> str:
    return f"{case[0]}/{case[1].parent.parent.name}/{case[1].name}"


@pytest.mark.parametrize("case", _inputs(), ids=_id)
def test_seed_and_regression_inputs(case: tuple[str, Path]) -> None:
    name, path = case
    target = TARGETS[name]
    data = path.read_bytes()
    take_overhead()
    # The parser's time, not the collector's: late in the whole suite this
    # process holds a large heap, and a full collection that falls inside
    # one input doubled a flood's CPU time (210 ms against ~100 alone).
    # The fuzzing processes freeze their heap for the same reason.
    gc.collect()
    gc.disable()
    try:
        started = time.thread_time()
        with guarded():
            try:
                target.one_input(data)
            except target.declared:
                pass
        spent = (time.thread_time() - started - take_overhead()) * 1000
    finally:
        gc.enable()
    assert spent <= LIMIT_MS * SLACK, f"{name}: {path.name} took {spent:.1f} ms of CPU"


def test_every_target_has_seeds() -> None:
    thin = [name for name, t in TARGETS.items() if len(list(t.corpus.glob("*"))) < 3]
    assert thin == []


def test_the_table_covers_the_parsers_of_issue_22() -> None:
    """HTTP, SMTP, POP3, IMAP4, FTP, DNS, TCP, AMP, control client, commands, files, records."""
    assert set(TARGETS) >= {
        "http",
        "http_body",
        "smtp",
        "pop3",
        "imap",
        "ftp",
        "ampbox",
        "control_answer",
        "control_command_line",
        "watch_command_line",
        "auth_file",
        "ca_file",
        "last_record",
        "status_document",
        "dns",
        "tcp",
        "tcp_send",
    }


@pytest.mark.parametrize(
    "act",
    [
        lambda: __import__("socket").socket(),
        lambda: open("/etc/hostname", "rb"),
        lambda: open(Path.home() / "ismon-fuzz-guard-test", "w"),
        lambda: subprocess.run(["true"], check=False),
        lambda: os.listdir("/run"),
    ],
    ids=["socket", "read-outside", "write-outside", "process", "list-outside"],
)
def test_the_guard_refuses_what_a_parser_must_not_do(act: object) -> None:
    with pytest.raises(Forbidden), guarded():
        act()  # type: ignore[operator]


def test_the_guard_lets_the_scratch_folder_be_read() -> None:
    (scratch_dir() / "guard-test").write_bytes(b"x")
    with guarded(), open(scratch_dir() / "guard-test", "rb") as f:
        assert f.read() == b"x"


def _atheris() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        reason = "atheris is not installed (pip install -e '.[test]')"
        if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
        pytest.skip(reason)


_LINE = re.compile(
    r"^(?P<name>\S+)\s+(?P<execs>\d+)\s+\d+\s+(?P<cov>\d+)\s+\d+\s+\d+\s+"
    r"(?P<cpu>[\d.]+)\s+[\d.]+\s+(?P<crashes>\d+)$",
    re.M,
)


@pytest.mark.parametrize("target", list(TARGETS.values()), ids=lambda t: t.name)
def test_fuzzing_finds_nothing(target: Target, tmp_path: Path) -> None:
    _atheris()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz",
            target.name,
            "--runs",
            str(target.ci_runs),
            "--seed",
            "1",
            "--slack",
            str(SLACK),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = _LINE.search(done.stdout)
    log = (tmp_path / target.name / "log-0.txt").read_text(errors="replace")[-3000:]
    assert done.returncode == 0 and found, f"{done.stdout}\n{done.stderr}\n--- log ---\n{log}"
    assert int(found["crashes"]) == 0
    assert int(found["execs"]) >= target.ci_runs
    assert int(found["cov"]) > 0, "no coverage: are the ismon modules instrumented?"
