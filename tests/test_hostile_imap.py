# -*- test-case-name: tests.test_hostile_imap -*-
"""
The real IMAP4 probe against the hostile server's IMAP misbehaviours
(L{tests.hostile_imap}, served by L{tests.hostile} in a process of its own):
for each, the documented message and number (README "What counts as a
failure", IMAP4), a verdict within the timeout plus 0.5 s, no traceback or
leftover; all of them at once; floods cut short in bounded memory; and real
watch processes that exit 1 within their printed bound with the catalogue
line.

L{tests.hostile_imap} is not imported here (see its docstring): the names
come from the server process.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.imap import ImapProbe
from tests.hostile import HostileServer
from tests.netns import TEARDOWN, failure_lines
from tests.test_hostile import (
    OK,
    RESET,
    TIMEOUT,
    Case,
    check_result,
    lost,
    one_by_one,
    probe_all_at_once,
    probe_case,
    probe_flood,
    status,
    timeout,
    tls_error,
)
from tests.watchproc import FAST, PATIENCE, Processes, watch_argv

M = MessageId

# The credentials the hostile server takes (tests/hostile_imap.py, LOGIN_ARGUMENTS).
CREDENTIALS = BasicCredentials("hostile", 'pa"ss\\word')


def negative() -> dict[str, Any]:
    return {"message": M.NEGATIVE_REPLY, "number": None, "phase": Phase.PARSE}


def refused() -> dict[str, Any]:
    return {"message": M.AUTH_REFUSED, "number": 0, "phase": Phase.PARSE}


def no_starttls() -> dict[str, Any]:
    return {"message": M.STARTTLS_UNAVAILABLE, "number": None, "phase": Phase.PARSE}


# kind: imap | imaps | starttls | login | starttls-login
CASES = [
    # -- controls
    Case("imap_ok", "imap", **OK),
    Case("imap_ok", "login", **OK),
    Case("imap_ok", "starttls", **OK),
    Case("imap_ok", "starttls-login", **OK),
    Case("imaps_ok", "imaps", **OK),
    Case("imaps_ok", "imaps-login", **OK),
    Case("imap_preauth", "imap", **OK),
    Case("imap_preauth", "login", **OK),
    Case("imap_chatter", "imap", **OK),
    Case("imap_segments", "imap", **OK),
    Case("imap_no_logout_reply", "imap", **OK),
    Case("imap_late_bye", "imap", **OK),
    Case("imap_starttls_injected_bye", "starttls", **OK),
    # -- a stall at each step
    Case("imap_silent", "imap", **timeout(Phase.WAIT)),
    Case("imap_greeting_then_silence", "imap", **timeout(Phase.WAIT)),
    Case("imap_capability_stall", "starttls", **timeout(Phase.WAIT)),
    Case("imap_starttls_stall", "starttls", **timeout(Phase.TLS)),
    Case("imap_login_stall", "login", **timeout(Phase.WAIT)),
    Case("imap_login_stall", "starttls-login", **timeout(Phase.WAIT)),
    Case("imap_greeting_trickle", "imap", **timeout(Phase.RECEIVE)),
    Case("imap_noop_trickle", "imap", **timeout(Phase.RECEIVE)),
    Case("imap_unterminated", "imap", **timeout(Phase.RECEIVE)),
    Case("tls_stall", "imaps", **timeout(Phase.TLS)),
    # -- injected before the handshake: discarded, so no pass from them
    Case("imap_starttls_injected_ok", "starttls", **timeout(Phase.WAIT)),
    # -- negative replies: 87; a refused login: 86 with 0
    Case("imap_bye_greeting", "imap", **negative()),
    Case("imap_noop_no", "imap", **negative()),
    Case("imap_noop_bad", "imap", **negative()),
    Case("imap_bye_during_noop", "imap", **negative()),
    Case("imap_starttls_refused", "starttls", **negative()),
    Case("imap_login_refused", "login", **refused()),
    Case("imap_login_echo", "login", **negative()),
    Case("imap_login_refused", "starttls-login", **refused()),
    # -- STARTTLS not offered, or not possible: 94
    Case("imap_no_starttls", "starttls", **no_starttls()),
    Case("imap_preauth", "starttls", **no_starttls()),
    # -- wrong, partial and early replies; not IMAP at all: 83 with 0
    Case("imap_wrong_tag", "imap", **status(0)),
    Case("imap_partial_status", "imap", **status(0)),
    Case("imap_tagged_preauth", "imap", **status(0)),
    Case("imap_continuation", "imap", **status(0)),
    Case("imap_early_completion", "imap", **status(0)),
    Case("imap_pop3_banner", "imap", **status(0)),
    Case("imap_smtp_banner", "imap", **status(0)),
    Case("imap_http_answer", "imap", **status(0)),
    Case("imap_binary", "imap", **status(0)),
    Case("imap_nul", "imap", **status(0)),
    Case("imap_garbage_after_greeting", "imap", **status(0)),
    Case("imap_long_line", "imap", **status(0)),
    Case("imap_endless_untagged", "imap", **status(0)),
    Case("imap_huge_literal", "imap", **status(0)),
    # -- TLS
    Case("imap_starttls_garbage", "starttls", **tls_error(M.TLS_HANDSHAKE_ERROR)),
    Case("imap_starttls_expired", "starttls", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("tls_wrong_host", "imaps", **tls_error(M.TLS_VERIFY_ERROR)),
    # -- the connection ends early
    Case("imap_close_before_greeting", "imap", **lost(0, Phase.WAIT)),
    Case("imap_close_after_greeting", "imap", **lost(0, Phase.WAIT)),
    Case("imap_reset_after_greeting", "imap", **lost(RESET, Phase.WAIT)),
    Case("refused", "imap", M.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT),
]
NAMES = sorted({case.behaviour for case in CASES})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with HostileServer(tmp_path_factory.mktemp("hostile-imap-certs"), NAMES) as server:
        yield server


def make_probe(case: Case, server: HostileServer) -> ImapProbe:
    from twisted.internet import reactor

    tls = TLSSettings(servername="localhost", ca_file=server.ca_file)
    return ImapProbe(
        reactor,
        ConversationRequest(
            host=case.host,
            port=server.port(case.behaviour),
            timeout=TIMEOUT,
            tls=tls if case.kind.startswith(("starttls", "imaps")) else None,
            starttls=case.kind.startswith("starttls"),
            credentials=CREDENTIALS if case.kind.endswith("login") else None,
        ),
    )


def check(case: Case, result: ProbeResult, elapsed: float, quick: float) -> None:
    """What L{tests.test_hostile.check_result} checks, and the password shown nowhere."""
    check_result(case, result, elapsed, quick)
    assert CREDENTIALS.password not in repr(result) + result.describe()


def test_every_behaviour_is_probed(tmp_path: Path) -> None:
    """Each IMAP misbehaviour the server offers has a case, and there are at least 20."""
    with HostileServer(tmp_path) as server:
        offered = {name for name in server.ports if name.startswith(("imap_", "imaps_"))}
    assert offered == {name for name in NAMES if name.startswith(("imap_", "imaps_"))}
    assert len(offered) >= 20


# The cases that time out are checked together in test_all_at_once.
@pytest.mark.parametrize("case", one_by_one(CASES), ids=[case.id for case in one_by_one(CASES)])
@pytest_twisted.ensureDeferred
async def test_hostile(case: Case, hostile: HostileServer) -> None:
    await probe_case(case, hostile, make_probe, check)


@pytest_twisted.ensureDeferred
async def test_all_at_once(hostile: HostileServer) -> None:
    """Every case at the same time: no probe disturbs another, or its deadline."""
    await probe_all_at_once(CASES, hostile, make_probe, check)


FLOODS = [
    Case("imap_long_line", "imap", **status(0)),
    Case("imap_endless_untagged", "imap", **status(0)),
    Case("imap_huge_literal", "imap", **status(0)),
]


@pytest.mark.parametrize("case", FLOODS, ids=[case.id for case in FLOODS])
@pytest_twisted.ensureDeferred
async def test_flood_is_cut_short(case: Case, hostile: HostileServer) -> None:
    """A server offering 1-10 MiB is cut off early, in bounded memory."""
    await probe_flood(case, hostile, make_probe, check)


def imap_watch_argv(
    face: str, watch_id: str, port: int, state: Path, *extra: str, timing: list[str] = FAST
) -> list[str]:
    """A watch of 127.0.0.1:C{port} run as C{clp_imapmon ID ...} or C{ismon imap ID ...}."""
    argv = watch_argv(face, watch_id, "127.0.0.1", port, state, *extra, timing=timing)
    if face == "ismon":
        argv.insert(argv.index(watch_id), "imap")
    return argv


# (behaviour, the failure line each probe logs)
WATCHED = [
    ("imap_greeting_then_silence", "network error(select error[110])."),
    ("imap_bye_greeting", "an error in IMAP4(negative reply: * BYE Too many connections from your IP)."),
    ("imap_binary", "an error in IMAP4(invalid status code[0])."),
]  # fmt: skip


def test_watches_exit_within_their_bound(hostile: HostileServer, processes: Processes) -> None:
    """
    Real watches, C{clp_imapmon} and C{ismon imap}, on a stall, a BYE and
    binary data: each logs its failure for the probe and both retries,
    then message 6, and exits 1 within the bound it printed (counted from
    its message 1, the fault being there from the start); no traceback.
    """
    state = processes.directory / "state"
    watches = {}
    for index, (name, _) in enumerate(WATCHED):
        watch_id = f"imap{index}"
        face = "ismon" if index % 2 else "clp_imapmon"
        argv = imap_watch_argv(face, watch_id, hostile.port(name), state)
        watches[watch_id] = processes.start(argv, name=watch_id)
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    deadline = time.monotonic() + PATIENCE
    while len(ended) < len(watches):
        now = time.monotonic()
        for watch_id, watch in watches.items():
            if watch_id not in started and f"has started watching IMAP4. [ID:{watch_id}]" in (
                watch.output()
            ):
                started[watch_id] = now
            if watch_id not in ended and not watch.running():
                ended[watch_id] = now
        assert now < deadline, {w: watch.output() for w, watch in watches.items()}
        time.sleep(0.02)
    for (watch_id, watch), (_, text) in zip(watches.items(), WATCHED, strict=True):
        output = watch.output()
        bound = watch.detection_bound()
        assert bound == 1 + 2 * 1 + 1, FAST
        assert watch.wait(0) == 1, output
        assert ended[watch_id] - started[watch_id] <= bound + TEARDOWN, output
        failures = failure_lines(output)
        line = f"The clp_imapmon has detected {text} [ID:{watch_id}]"
        assert len(failures) == 3 and all(f.endswith(line) for f in failures), output
        assert output.rstrip().endswith(f"The clp_imapmon will terminate. [ID:{watch_id}]")
        assert "Traceback" not in output
