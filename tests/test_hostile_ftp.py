# -*- test-case-name: tests.test_hostile_ftp -*-
"""
The FTP probe against a hostile server (L{tests.hostile_ftp}, served by
L{tests.hostile} in a child process): for every misbehaviour, the
documented message and number (README "What counts as a failure", FTP), a verdict
within the timeout plus 0.5 s, and nothing left behind -- the checks of
L{tests.test_hostile}.  Plus one real C{clp_ftpmon} that exits 1 within
the bound it printed.

The FTP behaviours are not imported here: C{tests.test_hostile} checks
that the behaviours in I{its} process are exactly the ones it probes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted

from ismon.core.catalogue import MAX_LINE_BYTES, MessageId, fold, render
from ismon.core.protocols import label_of
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.ftp import FtpProbe
from tests.hostile import HostileServer
from tests.test_ftp_vsftpd import ended_within_bound
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
from tests.watchproc import LOOPBACK, PATIENCE, Processes, watch_argv

M = MessageId
LOGIN = BasicCredentials("watcher", "hostile-Pw-5d2e")

# kind: ftp | ftp-login | ftp-starttls | ftp-starttls-login | ftps
CASES = [
    # -- controls
    Case("ftp_ok", "ftp", **OK),
    Case("ftp_ok", "ftp-login", **OK),
    Case("ftp_ok", "ftp-starttls", **OK),
    Case("ftp_ok", "ftp-starttls-login", **OK),
    Case("ftp_noop_530", "ftp", **OK),
    Case("ftp_multiline_greeting", "ftp", **OK),
    Case("ftp_slow_greeting", "ftp", **OK),
    Case("ftp_no_221", "ftp", **OK),
    Case("ftps_ok", "ftps", **OK),
    # -- error replies (README "What counts as a failure", FTP)
    Case("ftp_120_greeting", "ftp", **status(120)),
    Case("ftp_421_greeting", "ftp", **status(421)),
    Case("ftp_noop_500", "ftp", **status(500)),
    Case("ftp_login_530", "ftp-login", M.AUTH_REFUSED, 530, Phase.PARSE),
    Case("ftp_login_noop_530", "ftp-login", **status(530)),
    Case("ftp_login_noop_530", "ftp", **OK),
    Case("ftp_auth_tls_500", "ftp-starttls", M.STARTTLS_UNAVAILABLE, None, Phase.PARSE),
    # -- wrong and partial codes, garbage, binary data: 83 with 0
    Case("ftp_short_code", "ftp", **status(0)),
    Case("ftp_long_code", "ftp", **status(0)),
    Case("ftp_garbage", "ftp", **status(0)),
    Case("ftp_ssh_banner", "ftp", **status(0)),
    Case("ftp_nul", "ftp", **status(0)),
    Case("ftp_tls_on_plain_port", "ftp", **status(0)),
    Case("ftp_long_line", "ftp", **status(0)),
    Case("ftp_endless_multiline", "ftp", **status(0)),
    # -- a stall at each step, and a trickle
    Case("ftp_silent", "ftp", **timeout(Phase.WAIT)),
    Case("ftp_open_multiline", "ftp", **timeout(Phase.RECEIVE)),
    Case("ftp_greeting_then_silence", "ftp", **timeout(Phase.WAIT)),
    Case("ftp_partial_code", "ftp", **timeout(Phase.RECEIVE)),
    Case("ftp_user_silence", "ftp-login", **timeout(Phase.WAIT)),
    Case("ftp_pass_silence", "ftp-login", **timeout(Phase.WAIT)),
    Case("ftp_auth_tls_silence", "ftp-starttls", **timeout(Phase.WAIT)),
    Case("ftp_auth_tls_stall", "ftp-starttls", **timeout(Phase.TLS)),
    Case("ftp_noop_trickle", "ftp", **timeout(Phase.RECEIVE)),
    Case("tls_stall", "ftps", **timeout(Phase.TLS)),
    Case("tls_good_then_silence", "ftps", **timeout(Phase.WAIT)),
    # -- the connection ends early
    Case("ftp_close_after_greeting", "ftp", **lost(0, Phase.WAIT)),
    Case("ftp_reset_after_greeting", "ftp", **lost(RESET, Phase.WAIT)),
    Case("ftp_close_mid_greeting", "ftp", **lost(0, Phase.RECEIVE)),
    Case("refused", "ftp", M.CONNECT_ERROR, 111, Phase.CONNECT),
    # -- a reply before its command; lines injected before TLS are discarded
    Case("ftp_early_reply", "ftp", **status(200)),
    Case("ftp_injected_before_tls", "ftp-starttls", **status(500)),
    Case("ftp_injected_then_silence", "ftp-starttls", **timeout(Phase.WAIT)),
    # -- TLS
    Case("ftp_auth_tls_expired", "ftp-starttls", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("tls_wrong_host", "ftps", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("ftp_ok", "ftps", **tls_error(M.TLS_HANDSHAKE_ERROR)),
]

FLOODS = [case for case in CASES if case.behaviour in ("ftp_long_line", "ftp_endless_multiline")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    names = sorted({case.behaviour for case in CASES})
    with HostileServer(tmp_path_factory.mktemp("hostile-ftp-certs"), names) as server:
        yield server


def make_probe(case: Case, server: HostileServer) -> FtpProbe:
    from twisted.internet import reactor

    tls = TLSSettings(servername="localhost", ca_file=server.ca_file)
    starttls = "starttls" in case.kind
    return FtpProbe(
        reactor,
        ConversationRequest(
            host=case.host,
            port=server.port(case.behaviour),
            timeout=TIMEOUT,
            tls=tls if starttls or case.kind == "ftps" else None,
            starttls=starttls,
            credentials=LOGIN if case.kind.endswith("login") else None,
        ),
    )


def check_ftp_result(case: Case, result: ProbeResult, elapsed: float, quick: float = 1.0) -> None:
    """L{tests.test_hostile.check_result}, and the line clp_ftpmon would log."""
    check_result(case, result, elapsed, quick)
    if result.message is not None:
        line = render(
            result.message,
            command="clp_ftpmon",
            protocol=label_of("clp_ftpmon"),
            watch_id="hostile",
            number=result.number,
            detail=result.detail,
        )
        assert line.isprintable(), line
        assert all(len(piece.encode()) <= MAX_LINE_BYTES for piece in fold(line)), line
        assert LOGIN.password not in line + result.reply + result.detail


def test_every_ftp_behaviour_is_probed() -> None:
    """Each FTP misbehaviour the hostile server offers has at least one case."""
    listed = subprocess.run(
        [sys.executable, "-m", "tests.hostile", "--list"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=PATIENCE,
    ).stdout.split()
    offered = {name for name in listed if name.startswith("ftp")}
    assert offered <= {case.behaviour for case in CASES}, offered - {c.behaviour for c in CASES}
    assert len(offered) >= 20


# The cases that time out are checked together in test_all_at_once.
@pytest.mark.parametrize("case", one_by_one(CASES), ids=[case.id for case in one_by_one(CASES)])
@pytest_twisted.ensureDeferred
async def test_hostile_ftp(case: Case, hostile: HostileServer) -> None:
    await probe_case(case, hostile, make_probe, check_ftp_result)


@pytest_twisted.ensureDeferred
async def test_all_at_once(hostile: HostileServer) -> None:
    """Every case at the same time: no probe disturbs another, or its deadline."""
    await probe_all_at_once(CASES, hostile, make_probe, check_ftp_result)


@pytest.mark.parametrize("case", FLOODS, ids=[case.id for case in FLOODS])
@pytest_twisted.ensureDeferred
async def test_flood_is_cut_short(case: Case, hostile: HostileServer) -> None:
    """1-10 MiB offered: decided at once, and memory does not grow with it."""
    await probe_flood(case, hostile, make_probe, check_ftp_result)


def test_watch_on_a_refusing_ftp_server_exits_within_its_bound(
    hostile: HostileServer, processes: Processes, tmp_path: Path
) -> None:
    """
    A real clp_ftpmon on a server whose NOOP answer is 500: message 83 with
    500 for the probe and each retry, then 6, exit 1 within the printed bound.
    """
    watch = processes.start(
        watch_argv(
            "clp_ftpmon", "ftphostile", LOOPBACK, hostile.port("ftp_noop_500"), tmp_path / "state"
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    watch.wait_for(r"The clp_ftpmon has started watching FTP\.")
    ended_within_bound(
        watch,
        bound,
        "ftphostile",
        "The clp_ftpmon has detected an error in FTP(invalid status code[500]).",
    )
