"""
Bad command lines are refused before anything happens (README "Running a
watch"; issues 4 and 9): message 11 (13 when no ID is given) and one plain
reason on one stderr line, exit status 2, no traceback, nothing written to
stdout, and nothing created -- neither the
state folder given with C{--state-dir} nor the one named by
C{$ISMON_STATE_DIR}, nor anything in the working folder.

Every case runs for C{clp_httpmon}, C{clp_smtpmon} and C{ismon http}, as
real processes.  They are many and each is a fresh interpreter, so they run
concurrently, once per module, and each test checks its own result.

The edges that must be accepted (1 and 10000, port 1 and 65535, a 255-byte
ID, ...) are proven by starting real watches with them and reading their
timing back through C{ismon status}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.watchproc import Processes, command, message

pytestmark = pytest.mark.integration


COMMANDS = {
    "clp_httpmon": ("clp_httpmon", command("clp_httpmon")),
    "clp_smtpmon": ("clp_smtpmon", command("clp_smtpmon")),
    "ismon-http": ("clp_httpmon", [*command("ismon"), "http"]),
}

NO_ID = 13
INVALID = 11


class Case(NamedTuple):
    watch_id: str | None
    options: list[str]
    message: int = INVALID


CASES: dict[str, Case] = {
    # The ID.
    "no-id": Case(None, [], NO_ID),
    "no-id-with-options": Case(None, ["-i", "5", "-n", "80"], NO_ID),
    "no-id-stop": Case(None, ["--stop"], NO_ID),
    "id-256-bytes": Case("a" * 256, []),
    "id-slash": Case("a/b", []),
    "id-dotdot": Case("..", []),
    "id-dotdot-slash": Case("../etc", []),
    "id-absolute": Case("/tmp", []),
    "id-dot": Case("a.b", []),
    "id-dash": Case("a-b", []),
    "id-space": Case("a b", []),
    "id-newline": Case("a\nb", []),
    "id-non-ascii": Case("caf\u00e9", []),
    "id-second": Case("w1", ["w2"]),
    # Ranges: each edge +-1, and garbage.
    "port-0": Case("w1", ["-n", "0"]),
    "port-65536": Case("w1", ["-n", "65536"]),
    "port-negative": Case("w1", ["-n", "-1"]),
    "port-name": Case("w1", ["-n", "http"]),
    "port-empty": Case("w1", ["-n", ""]),
    "port-float": Case("w1", ["-n", "80.0"]),
    "port-exponent": Case("w1", ["-n", "1e3"]),
    "port-arabic-digit": Case("w1", ["-n", "\u0663"]),
    "interval-0": Case("w1", ["-i", "0"]),
    "interval-10001": Case("w1", ["-i", "10001"]),
    "interval-fraction": Case("w1", ["-i", "1.5"]),
    "retries-0": Case("w1", ["-c", "0"]),
    "retries-10001": Case("w1", ["-c", "10001"]),
    "retries-text": Case("w1", ["-c", "three"]),
    "timeout-0": Case("w1", ["-r", "0"]),
    "timeout-10001": Case("w1", ["-r", "10001"]),
    "stop-wait-0": Case("w1", ["--stop", "-r", "0"]),
    "stop-wait-10001": Case("w1", ["--stop", "-r", "10001"]),
    "retry-interval-negative": Case("w1", ["--retry-interval", "-1"]),
    "retry-interval-10001": Case("w1", ["--retry-interval", "10001"]),
    "grace-negative": Case("w1", ["--grace", "-1"]),
    "grace-10001": Case("w1", ["--grace", "10001"]),
    # Text options.
    "server-empty": Case("w1", ["-s", ""]),
    "server-256-bytes": Case("w1", ["-s", "a" * 256]),
    "server-space": Case("w1", ["-s", "a b"]),
    "server-newline": Case("w1", ["-s", "a\nb"]),
    # HTTP only (for clp_smtpmon these are unknown options: refused as well).
    "uri-crlf": Case("w1", ["-h", "/a\r\nX-Injected: 1"]),
    "uri-lf": Case("w1", ["-h", "/a\nb"]),
    "uri-space": Case("w1", ["-h", "/a b"]),
    "uri-empty": Case("w1", ["-h", ""]),
    "uri-256-bytes": Case("w1", ["-h", "/" + "a" * 255]),
    "version-2.0": Case("w1", ["-v", "2.0"]),
    "version-1": Case("w1", ["-v", "1"]),
    "version-0.9": Case("w1", ["-v", "0.9"]),
    # Options.
    "unknown-long": Case("w1", ["--bogus"]),
    "unknown-short": Case("w1", ["-x"]),
    "unknown-with-newline": Case("w1", ["--bo\ngus"]),
    "two-actions": Case("w1", ["--stop", "--pause"]),
    "insecure-without-tls": Case("w1", ["--insecure"]),
    "value-missing": Case("w1", ["-i"]),
    "ambiguous-prefix": Case("w1", ["--de"]),
    "flag-with-value": Case("w1", ["--tls=yes"]),
    "ca-file-missing": Case("w1", ["--tls", "--ca-file", "/nonexistent/ca.pem"]),
    "state-dir-empty": Case("w1", ["--state-dir", ""]),
}

# What each refusal says after the catalogue text and its tag, as a user
# reads it (issue 9): one plain reason, values in double quotes with control
# characters escaped, then the pointer to --help.
_RANGE = "must be a whole number from {} to {}, not {}"
_ID_CHARS = 'the watch ID must be ASCII letters and digits only, not "{}"'
_NO_SPACE = 'must be printable ASCII without spaces, not "{}"'
REASONS: dict[str, str] = {
    "no-id": "the watch ID comes first: {cmd} ID [options]",
    "no-id-with-options": "the watch ID comes first: {cmd} ID [options]",
    "no-id-stop": "the watch ID comes first: {cmd} ID [options]",
    "id-256-bytes": "the watch ID must be at most 255 bytes, not 256",
    "id-slash": _ID_CHARS.format("a/b"),
    "id-dotdot": _ID_CHARS.format(".."),
    "id-dotdot-slash": _ID_CHARS.format("../etc"),
    "id-absolute": _ID_CHARS.format("/tmp"),
    "id-dot": _ID_CHARS.format("a.b"),
    "id-dash": _ID_CHARS.format("a-b"),
    "id-space": _ID_CHARS.format("a b"),
    "id-newline": _ID_CHARS.format("a\\nb"),
    "id-non-ascii": _ID_CHARS.format("caf\u00e9"),
    "id-second": 'unexpected argument "w2": give one watch ID',
    "port-0": "-n (port) " + _RANGE.format(1, 65535, '"0"'),
    "port-65536": "-n (port) " + _RANGE.format(1, 65535, '"65536"'),
    "port-negative": "-n (port) " + _RANGE.format(1, 65535, '"-1"'),
    "port-name": "-n (port) " + _RANGE.format(1, 65535, '"http"'),
    "port-empty": "-n (port) " + _RANGE.format(1, 65535, '""'),
    "port-float": "-n (port) " + _RANGE.format(1, 65535, '"80.0"'),
    "port-exponent": "-n (port) " + _RANGE.format(1, 65535, '"1e3"'),
    "port-arabic-digit": "-n (port) " + _RANGE.format(1, 65535, '"\u0663"'),
    "interval-0": "-i (interval) " + _RANGE.format(1, 10000, '"0"'),
    "interval-10001": "-i (interval) " + _RANGE.format(1, 10000, '"10001"'),
    "interval-fraction": "-i (interval) " + _RANGE.format(1, 10000, '"1.5"'),
    "retries-0": "-c (retries) " + _RANGE.format(1, 10000, '"0"'),
    "retries-10001": "-c (retries) " + _RANGE.format(1, 10000, '"10001"'),
    "retries-text": "-c (retries) " + _RANGE.format(1, 10000, '"three"'),
    "timeout-0": "-r (timeout) " + _RANGE.format(1, 10000, '"0"'),
    "timeout-10001": "-r (timeout) " + _RANGE.format(1, 10000, '"10001"'),
    "stop-wait-0": "-r (stop wait) " + _RANGE.format(1, 10000, '"0"'),
    "stop-wait-10001": "-r (stop wait) " + _RANGE.format(1, 10000, '"10001"'),
    "retry-interval-negative": "--retry-interval " + _RANGE.format(0, 10000, '"-1"'),
    "retry-interval-10001": "--retry-interval " + _RANGE.format(0, 10000, '"10001"'),
    "grace-negative": "--grace " + _RANGE.format(0, 10000, '"-1"'),
    "grace-10001": "--grace " + _RANGE.format(0, 10000, '"10001"'),
    "server-empty": "-s (server) must not be empty",
    "server-256-bytes": "-s (server) must be at most 255 bytes, not 256",
    "server-space": "-s (server) " + _NO_SPACE.format("a b"),
    "server-newline": "-s (server) " + _NO_SPACE.format("a\\nb"),
    "uri-crlf": "-h (Request-URI) " + _NO_SPACE.format("/a\\r\\nX-Injected: 1"),
    "uri-lf": "-h (Request-URI) " + _NO_SPACE.format("/a\\nb"),
    "uri-space": "-h (Request-URI) " + _NO_SPACE.format("/a b"),
    "uri-empty": "-h (Request-URI) must not be empty",
    "uri-256-bytes": "-h (Request-URI) must be at most 255 bytes, not 256",
    "version-2.0": '-v (HTTP version) must be 1.0 or 1.1, not "2.0"',
    "version-1": '-v (HTTP version) must be 1.0 or 1.1, not "1"',
    "version-0.9": '-v (HTTP version) must be 1.0 or 1.1, not "0.9"',
    "unknown-long": "unknown option --bogus",
    "unknown-short": "unknown option -x",
    "unknown-with-newline": 'unknown option "--bo\\ngus"',
    "two-actions": "--stop and --pause cannot be combined: give one action",
    "insecure-without-tls": "--insecure needs --tls",
    "value-missing": "option -i needs a value",
    "ambiguous-prefix": "option --de is ambiguous: --debug or --del?",
    "flag-with-value": "option --tls takes no value",
    "ca-file-missing": '--ca-file "/nonexistent/ca.pem" cannot be read: No such file or directory',
    "state-dir-empty": '--state-dir must be a path, not ""',
}
# clp_smtpmon has no -h/-v, and knows --starttls.
SMTP_REASONS: dict[str, str] = {
    "uri-crlf": "unknown option -h",
    "uri-lf": "unknown option -h",
    "uri-space": "unknown option -h",
    "uri-empty": "unknown option -h",
    "uri-256-bytes": "unknown option -h",
    "version-2.0": "unknown option -v",
    "version-1": "unknown option -v",
    "version-0.9": "unknown option -v",
    "insecure-without-tls": "--insecure needs --tls or --starttls",
}


def reason(name: str, cmd: str) -> str:
    """The whole refusal after the tag, for C{cmd}."""
    text = SMTP_REASONS.get(name, REASONS[name]) if cmd == "clp_smtpmon" else REASONS[name]
    return text.format(cmd=cmd) + " (see --help)\n"


# Cases where the product gets the diagnosis wrong (still exit 2).
KNOWN_WRONG: dict[str, str] = {}


class Outcome(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    folder: Path
    state_dir: Path
    env_state_dir: Path


def _run_case(base: Path, name: str, cmd_key: str) -> Outcome:
    _, argv = COMMANDS[cmd_key]
    case = CASES[name]
    folder = base / f"{cmd_key}-{name}"
    folder.mkdir()
    state_dir = folder / "state"
    env_state_dir = folder / "env-state"
    args = [] if case.watch_id is None else [case.watch_id]
    args += ["--state-dir", str(state_dir), "--syslog-socket", "none", *case.options]
    env = dict(os.environ, ISMON_STATE_DIR=str(env_state_dir), PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [*argv, *args],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Outcome(
        result.returncode, result.stdout, result.stderr, folder, state_dir, env_state_dir
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    """Every case for every command, run concurrently once per module."""
    base = tmp_path_factory.mktemp("params")
    keys = [(name, cmd_key) for name in CASES for cmd_key in COMMANDS]
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2) * 2)) as pool:
        results = pool.map(lambda key: _run_case(base, *key), keys)
        return dict(zip(keys, results, strict=True))


@pytest.mark.parametrize("cmd_key", list(COMMANDS))
@pytest.mark.parametrize("name", list(CASES))
def test_bad_parameter_is_refused(
    name: str, cmd_key: str, outcomes: dict[tuple[str, str], Outcome]
) -> None:
    if name in KNOWN_WRONG:
        pytest.xfail(KNOWN_WRONG[name])
    case = CASES[name]
    cmd, _ = COMMANDS[cmd_key]
    outcome = outcomes[name, cmd_key]
    shown = f"stdout={outcome.stdout!r} stderr={outcome.stderr!r}"
    assert outcome.returncode == 2, shown
    # One line on stderr, nothing on stdout, no traceback anywhere.
    assert outcome.stderr.endswith("\n") and outcome.stderr.count("\n") == 1, shown
    assert "\r" not in outcome.stderr, shown
    assert outcome.stdout == "", shown
    assert "Traceback" not in outcome.stderr
    # The catalogue message, tagged with the ID when it is a valid one.
    text = message(case.message, cmd, None)
    assert outcome.stderr.startswith(text + " [ID:"), shown
    tag = outcome.stderr[len(text) + 1 :].split("]", 1)[0] + "]"
    valid_id = case.watch_id if case.watch_id and case.watch_id.isalnum() else None
    assert tag in ("[ID:?]", f"[ID:{valid_id}]"), shown
    if case.watch_id is not None and not (case.watch_id.isascii() and case.watch_id.isalnum()):
        assert tag == "[ID:?]", shown
    # Then one plain reason and the pointer to --help.
    assert outcome.stderr == f"{text} {tag} {reason(name, cmd)}", shown
    # Nothing created: no state folder, nothing in the working folder.
    assert not outcome.state_dir.exists()
    assert not outcome.env_state_dir.exists()
    assert list(outcome.folder.iterdir()) == []


def test_option_value_missing_is_refused(processes: Processes, tmp_path: Path) -> None:
    """
    C{clp_httpmon w1 -i}: the value of -i is missing.  The product moves the
    ID behind the options (getopt stops at the first positional), so the ID
    is taken for -i's value; the result is still a one-line refusal, exit 2.
    """
    state = tmp_path / "state"
    result = processes.run([*command("clp_httpmon"), "w1", "--state-dir", str(state), "-i"])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        (message(INVALID, "clp_httpmon", None), message(NO_ID, "clp_httpmon", None))
    )
    assert not state.exists()


def test_help_is_not_an_error(processes: Processes) -> None:
    """C{--help} prints the usage and exits 0; C{-h} is the Request-URI, not help."""
    for cmd in ("clp_httpmon", "clp_smtpmon"):
        result = processes.run([*command(cmd), "--help"])
        assert result.returncode == 0, result.stderr
        assert f"Usage: {cmd} ID" in result.stdout
        assert "Exit status:" in result.stdout
    result = processes.run([*command("clp_httpmon"), "--help"])
    assert "Request-URI" in result.stdout


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["status", "--bogus"], "ismon status: unknown option --bogus (see --help)"),
        (["status", "-r"], "ismon status: option -r needs a value (see --help)"),
        (
            ["status", "a", "b", "c"],
            'ismon status: unexpected arguments "b" "c": give one watch ID (see --help)',
        ),
        (
            ["stop", "-r", "5", "x", "y"],
            'ismon stop: unexpected argument "y": give one watch ID (see --help)',
        ),
        (["frob"], 'ismon: unknown command "frob" (see ismon --help)'),
    ],
)
def test_ismon_verb_refusals_read_like_the_others(
    processes: Processes, tmp_path: Path, argv: list[str], line: str
) -> None:
    """The C{ismon} verbs refuse in the same words as the watch commands."""
    result = processes.run(
        [*command("ismon"), *argv], env={**os.environ, "ISMON_STATE_DIR": str(tmp_path / "s")}
    )
    assert result.returncode == 2
    assert result.stderr == line + "\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["clp_httpmon", "--help"],
        ["clp_smtpmon", "--version"],
        ["ismon", "--help"],
        ["ismon", "http", "--help"],
    ],
)
def test_output_to_a_reader_that_left_is_no_error(argv: list[str]) -> None:
    """C{clp_httpmon --help | head}: a closed pipe is the reader's choice."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        done = subprocess.run(
            [*command(argv[0]), *argv[1:]],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


# -- the edges that must be accepted --------------------------------------------

LONGEST_ID = "A" * 255
LOWEST = ["-n", "1", "-i", "1", "-c", "1", "-r", "1", "--retry-interval", "0"]
HIGHEST = ["-n", "65535", "-i", "10000", "-c", "10000", "-r", "10000", "--retry-interval", "10000"]


class Edge(NamedTuple):
    watch_id: str
    options: list[str]
    http_options: list[str]
    # interval, timeout, retries, retry_interval, detection_bound
    timing: tuple[int, int, int, int, int]
    target: str


EDGES = {
    "lowest": Edge(
        "a",
        [*LOWEST, "-s", "x"],
        ["-v", "1.0", "-h", "/"],
        (1, 1, 1, 0, 1 + 1 * 1 + 1),
        "://x:1",
    ),
    "highest": Edge(
        LONGEST_ID,
        [*HIGHEST, "-s", "h" * 255],
        ["-v", "1.1", "-h", "/" + "u" * 254],
        (10000, 10000, 10000, 10000, 10000 + 10000 * 10000 + 10000),
        "://" + "h" * 255 + ":65535",
    ),
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """
    A folder with a short path: the control socket of a 255-byte ID has a
    hashed name of 39 bytes, and AF_UNIX paths end at 107 bytes, which a
    pytest tmp_path (80 bytes and more) would exceed.
    """
    path = Path(tempfile.mkdtemp(prefix="ism"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_in_range_edges_are_accepted(processes: Processes, short_dir: Path) -> None:
    """
    Every lowest and every highest value at once, for each command: the
    watch starts (a grace of 10000 s, the highest, keeps it from probing the
    made-up server), reports the timing it was given, and stops on request.
    """
    tmp_path = short_dir
    watches = []
    for cmd_key, (cmd, argv) in COMMANDS.items():
        for edge_name, edge in EDGES.items():
            state = tmp_path / f"{cmd_key}-{edge_name}"
            options = [*edge.options, "--grace", "10000"]
            if cmd == "clp_httpmon":
                options += edge.http_options
            args = [edge.watch_id, *options, "--state-dir", str(state), "--syslog-socket", "none"]
            watch = processes.start([*argv, *args], name=f"{cmd_key}-{edge_name}")
            watches.append((cmd, edge, state, watch))

    for cmd, edge, state, watch in watches:
        watch.wait_for(r"has started watching")
        result = processes.run(
            [*command("ismon"), "status", edge.watch_id, "--json", "--state-dir", str(state)]
        )
        assert result.returncode == 0, result.stderr
        current = json.loads(result.stdout)
        got = tuple(
            current[key]
            for key in ("interval", "timeout", "retries", "retry_interval", "detection_bound")
        )
        assert got == edge.timing
        assert edge.target in current["target"]
        assert current["state"] == "watching"
        assert current["probes"] == 0  # still in its grace
        if cmd == "clp_httpmon" and edge.watch_id == LONGEST_ID:
            assert current["target"].endswith("/" + "u" * 254 + " HTTP/1.1")

    for cmd, edge, state, watch in watches:
        # The stop wait's own edges: 1 and 10000.
        wait = "1" if edge.watch_id == "a" else "10000"
        began = time.monotonic()
        result = processes.run(
            [*command(cmd), edge.watch_id, "--stop", "-r", wait, "--state-dir", str(state)]
        )
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - began < 30  # the watch's end, not the 10000 s wait
        assert watch.wait() == 0
        assert "Traceback" not in watch.output()
