# -*- test-case-name: tests.test_hostile_pop3 -*-
"""
The real POP3 probe against a hostile server (L{tests.hostile_pop3}): for
every misbehaviour, the documented message and number (README "What counts
as a failure", POP3), a verdict within the timeout plus 0.5 s, and nothing left
behind (no logged failure, DelayedCall, reader, writer or socket), as
L{tests.test_hostile} does for HTTP and SMTP.  Then a real watch process
(C{clp_pop3mon}) against two of them exits 1 within the bound it printed.

The behaviours are served by C{python -m tests.hostile} in a child
process; this module never imports L{tests.hostile_pop3}, whose behaviours
would otherwise join the HTTP and SMTP suite's list in this process.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.pop3 import Pop3Probe
from tests.hostile import HostileServer
from tests.test_hostile import (
    OK,
    RESET,
    TIMEOUT,
    Case,
    Leaks,
    check_result,
    lost,
    one_by_one,
    status,
    timeout,
    tls_error,
)
from tests.watchproc import PATIENCE, Processes, watch_argv

M = MessageId
ROOT = Path(__file__).resolve().parent.parent
# What the watch may need beyond the bound to end: process teardown, and
# this test noticing the start line late.
TEARDOWN = 1.0
# The password tests.hostile_pop3 accepts.
PASSWORD = "hostile-Pw"


def negative() -> dict[str, Any]:
    return {"message": M.NEGATIVE_REPLY, "number": None, "phase": Phase.PARSE}


def refused() -> dict[str, Any]:
    return {"message": M.AUTH_REFUSED, "number": 0, "phase": Phase.PARSE}


# kind: pop3 (plain), login (--auth-file, good password), badlogin (wrong
# password), stls (--starttls), pop3s (--tls).
CASES = [
    # -- controls
    Case("pop3_ok", "pop3", **OK),
    Case("pop3_ok", "login", **OK),
    Case("pop3_bare_lf", "pop3", **OK),
    Case("pop3_split_greeting", "pop3", **OK),
    Case("pop3_dot_stuffed", "pop3", **OK),
    Case("pop3_no_quit_answer", "pop3", **OK),
    Case("pop3_stls_ok", "stls", **OK),
    Case("pop3s_ok", "pop3s", **OK),
    # -- a stall at each step
    Case("pop3_silent", "pop3", **timeout(Phase.WAIT)),
    Case("pop3_capa_stall", "pop3", **timeout(Phase.WAIT)),
    Case("pop3_capa_unended", "pop3", **timeout(Phase.RECEIVE)),
    Case("pop3_pass_stall", "login", **timeout(Phase.WAIT)),
    Case("pop3_stat_stall", "login", **timeout(Phase.WAIT)),
    Case("pop3_stls_stall", "stls", **timeout(Phase.TLS)),
    Case("tls_stall", "pop3s", **timeout(Phase.TLS)),
    # -- a byte a second
    Case("pop3_trickle", "pop3", **timeout(Phase.RECEIVE)),
    Case("pop3_capa_trickle", "pop3", **timeout(Phase.RECEIVE)),
    # -- negative replies, a refused login
    Case("pop3_err_greeting", "pop3", **negative()),
    Case("pop3_capa_err", "pop3", **negative()),
    Case("pop3_stat_err", "login", **negative()),
    Case("pop3_stls_err", "stls", **negative()),
    Case("pop3_ok", "badlogin", **refused()),
    # -- wrong and partial codes, garbage, binary: 83 with 0
    Case("pop3_partial_status", "pop3", **status(0)),
    Case("pop3_lowercase_status", "pop3", **status(0)),
    Case("pop3_capa_partial_status", "pop3", **status(0)),
    Case("pop3_smtp_banner", "pop3", **status(0)),
    Case("pop3_imap_banner", "pop3", **status(0)),
    Case("pop3_binary", "pop3", **status(0)),
    Case("pop3_nul", "pop3", **status(0)),
    Case("pop3_capa_nul", "pop3", **status(0)),
    # -- oversized
    Case("pop3_long_line", "pop3", **status(0)),
    Case("pop3_endless_capa", "pop3", **status(0)),
    # -- the connection ends early
    Case("pop3_close_after_greeting", "pop3", **lost(0, Phase.WAIT)),
    Case("pop3_reset_after_greeting", "pop3", **lost(RESET, Phase.WAIT)),
    Case("pop3_close_mid_capa", "pop3", **lost(0, Phase.RECEIVE)),
    # -- a reply before its command
    Case("pop3_early_capa", "pop3", **status(0)),
    Case("pop3_early_login", "login", **status(0)),
    # -- STLS and TLS
    Case("pop3_no_stls", "stls", M.STARTTLS_UNAVAILABLE, None, Phase.PARSE),
    # Injected plain-text lines are discarded: the silent server times out.
    Case("pop3_stls_injected", "stls", **timeout(Phase.WAIT)),
    Case("pop3_stls_expired", "stls", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("pop3_stls_garbage", "stls", **tls_error(M.TLS_HANDSHAKE_ERROR)),
    Case("tls_wrong_host", "pop3s", **tls_error(M.TLS_VERIFY_ERROR)),
]
# The shared TLS misbehaviours of tests.hostile that the cases use.
SHARED = ["tls_stall", "tls_wrong_host"]


def pop3_behaviours() -> list[str]:
    """The POP3 misbehaviours the hostile server offers (it loads tests.hostile_pop3)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.hostile", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=PATIENCE,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return [name for name in done.stdout.split() if name.startswith(("pop3_", "pop3s_"))]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    names = [*pop3_behaviours(), *SHARED]
    with HostileServer(tmp_path_factory.mktemp("hostile-pop3-certs"), names) as server:
        yield server


def make_probe(case: Case, server: HostileServer) -> Pop3Probe:
    from twisted.internet import reactor

    tls = TLSSettings(servername="localhost", ca_file=server.ca_file)
    credentials = {
        "login": BasicCredentials("watcher", PASSWORD),
        "badlogin": BasicCredentials("watcher", "wrong"),
    }.get(case.kind)
    return Pop3Probe(
        reactor,
        ConversationRequest(
            host=case.host,
            port=server.port(case.behaviour),
            timeout=TIMEOUT,
            tls=tls if case.kind in ("stls", "pop3s") else None,
            starttls=case.kind == "stls",
            credentials=credentials,
        ),
    )


async def run_case(case: Case, server: HostileServer) -> tuple[ProbeResult, float]:
    probe = make_probe(case, server)
    start = time.monotonic()
    result = await probe.probe()
    return result, time.monotonic() - start


def test_every_behaviour_is_probed() -> None:
    """Each POP3 misbehaviour has at least one case, and there are at least 20."""
    behaviours = set(pop3_behaviours())
    assert {case.behaviour for case in CASES} == behaviours | set(SHARED)
    assert len(behaviours) >= 20


# The cases that time out are checked together in test_all_at_once.
@pytest.mark.parametrize("case", one_by_one(CASES), ids=[case.id for case in one_by_one(CASES)])
@pytest_twisted.ensureDeferred
async def test_hostile_pop3(case: Case, hostile: HostileServer) -> None:
    leaks = Leaks()
    try:
        result, elapsed = await run_case(case, hostile)
    finally:
        leaks.check()
    check_result(case, result, elapsed)


@pytest_twisted.ensureDeferred
async def test_all_at_once(hostile: HostileServer) -> None:
    """Every case at the same time: no probe disturbs another, or its deadline."""
    leaks = Leaks()
    try:
        outcomes = await defer.gatherResults(
            [defer.ensureDeferred(run_case(case, hostile)) for case in CASES]
        )
    finally:
        leaks.check()
    for case, (result, elapsed) in zip(CASES, outcomes, strict=True):
        check_result(case, result, elapsed, quick=TIMEOUT)


FLOODS = [
    Case("pop3_long_line", "pop3", **status(0)),
    Case("pop3_endless_capa", "pop3", **status(0)),
]


@pytest.mark.parametrize("case", FLOODS, ids=[case.id for case in FLOODS])
@pytest_twisted.ensureDeferred
async def test_flood_is_cut_short(case: Case, hostile: HostileServer) -> None:
    """1-10 MiB from the server: decided at once, and memory does not grow with it."""
    tracemalloc.start()
    try:
        result, elapsed = await run_case(case, hostile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check_result(case, result, elapsed, quick=0.5)
    assert peak < 1024 * 1024, f"{case.id}: peak {peak} bytes"


# -- a real watch process ------------------------------------------------------

WATCHES = [
    (
        "pop3_err_greeting",
        False,
        "The clp_pop3mon has detected an error in POP3(negative reply: "
        "-ERR [SYS/TEMP] Too many connections, try again later).",
    ),
    (
        "pop3_pass_stall",
        True,
        f"The clp_pop3mon has detected network error(select error[{errno.ETIMEDOUT}]).",
    ),
]


@pytest.mark.parametrize(("behaviour", "login", "text"), WATCHES, ids=[w[0] for w in WATCHES])
def test_watch_exits_within_its_bound(
    behaviour: str,
    login: bool,
    text: str,
    hostile: HostileServer,
    processes: Processes,
    tmp_path: Path,
) -> None:
    """
    clp_pop3mon against a misbehaving server logs the catalogue line for
    each failed probe and exits 1 within the bound it printed, with no
    traceback; the login case never shows its password.
    """
    extra: list[str] = []
    if login:
        auth = tmp_path / "auth"
        auth.write_text(f"watcher:{PASSWORD}\n")
        auth.chmod(0o600)
        extra = ["--auth-file", str(auth)]
    watch = processes.start(
        watch_argv(
            "clp_pop3mon",
            "hpop3",
            "127.0.0.1",
            hostile.port(behaviour),
            tmp_path / "state",
            *extra,
            timing=["-i", "1", "-c", "1", "-r", "1"],
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    # The bound runs from the first probe, right after this line.
    watch.wait_for(re.escape("The clp_pop3mon has started watching POP3. [ID:hpop3]"))
    started = time.monotonic()
    assert watch.wait(bound + PATIENCE) == 1, watch.output()
    took = time.monotonic() - started
    output = watch.output()
    assert took <= bound + TEARDOWN, f"exit after {took:.2f}s, bound {bound}s\n{output}"
    line = f"{text} [ID:hpop3]"
    assert len(re.findall(re.escape(line) + "$", output, re.MULTILINE)) == 2, output
    assert output.rstrip().endswith("The clp_pop3mon will terminate. [ID:hpop3]"), output
    assert "Traceback" not in output, output
    assert PASSWORD not in output, output
