# -*- test-case-name: tests.test_hostile_tcp -*-
"""
The TCP watch against the hostile server's plain-TCP misbehaviours
(L{tests.hostile_tcp}).

First its sans-io parts (L{ismon.wire.tcp}) over a blocking socket and
under one deadline: for every misbehaviour, the verdict, a decision within
the deadline (at once when the server's fault can be seen), bounded memory
against a flood, and no socket left open.

Then the real probe (L{ismon.probes.tcp.TcpProbe}) on the same cases: the
catalogue message, number and phase (docs/failure-rules.md, TCP), a verdict
within the deadline, nothing left behind (no logged failure, timer,
reader, writer or socket: the checks of L{tests.test_hostile}), every case
at once, the floods cut short in bounded memory; and real C{clp_tcpmon}
processes that exit 1 within the bound they printed.

The behaviours are served by C{python -m tests.hostile} in a child
process; this module never imports L{tests.hostile_tcp}, whose behaviours
would otherwise join the HTTP and SMTP suite's list in this process.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ismon.core.catalogue import MessageId
from ismon.core.requests import TcpRequest, TLSSettings
from ismon.core.result import Phase
from ismon.probes.tcp import TcpProbe
from ismon.wire.tcp import ExpectMatcher, ExpectOutcome, compile_expect, unescape_send
from tests import test_hostile as checks
from tests.hostile import HostileServer
from tests.test_hostile import QUICK, SLACK, TIMEOUT, _sockets
from tests.watchproc import Processes, watch_exits_on

# The shared misbehaviours of tests.hostile the cases use.
SHARED = ["refused", "tls_stall"]

PING = r"PING\r\n"
PONG = r"\+PONG"
BANNER = r"^220 "

# What a read can end in: the matcher's outcomes, and what the socket says.
MATCHED, LIMIT, CLOSED = "matched", "limit", "closed"
TIMEOUT_, REFUSED, RESET, UNTRUSTED = "timeout", "refused", "reset", "certificate not trusted"


@dataclass(frozen=True)
class Case:
    """One read against one misbehaviour, and how it must end."""

    behaviour: str
    send: str | None
    expect: str
    ends: str
    # With --tls: the name the certificate is checked against.
    tls: str | None = None

    @property
    def id(self) -> str:
        return f"{self.behaviour}-{self.expect}" + (f"-tls-{self.tls}" if self.tls else "")

    @property
    def times_out(self) -> bool:
        return self.ends == TIMEOUT_


CASES = [
    # -- controls
    Case("tcp_pong", PING, PONG, MATCHED),
    Case("tcp_banner", None, BANNER, MATCHED),
    Case("tcp_split_pong", PING, r"^\+PONG\r\n", MATCHED),
    Case("tcp_late_pong", PING, PONG, MATCHED),
    Case("tcp_binary_banner", None, r"\xffmysql_native_password\x00", MATCHED),
    Case("tcp_banner_then_close", None, BANNER, MATCHED),
    Case("tcp_banner_then_close", None, r"ready\r\n\z", MATCHED),
    Case("tcp_tls_good", None, BANNER, MATCHED, tls="127.0.0.1"),
    Case("tcp_tls_good", None, BANNER, MATCHED, tls="localhost"),
    # -- no answer, a partial one, the wrong one: the deadline decides
    Case("tcp_silent", PING, PONG, TIMEOUT_),
    Case("tcp_silent", None, BANNER, TIMEOUT_),
    Case("tcp_no_read", PING, PONG, TIMEOUT_),
    Case("tcp_partial", PING, PONG, TIMEOUT_),
    Case("tcp_trickle", PING, PONG, TIMEOUT_),
    Case("tcp_wrong_answer", PING, PONG, TIMEOUT_),
    Case("tcp_pong", PING, r"\+PONG$", TIMEOUT_),
    Case("tls_stall", None, BANNER, TIMEOUT_, tls="127.0.0.1"),
    # -- the connection ends before a match
    Case("tcp_close_early", PING, PONG, CLOSED),
    Case("tcp_close_mid_answer", PING, PONG, CLOSED),
    Case("tcp_close_at_once", None, BANNER, CLOSED),
    Case("tcp_banner_then_close", None, PONG, CLOSED),
    Case("tcp_reset", PING, PONG, RESET),
    Case("refused", PING, PONG, REFUSED),
    # -- floods: the bound decides, at once
    Case("tcp_flood", PING, PONG, LIMIT),
    Case("tcp_flood_forever", None, BANNER, LIMIT),
    Case("tcp_match_past_the_bound", PING, PONG, LIMIT),
    # -- TLS: a certificate that is not for the name, expired, self-signed
    Case("tcp_tls_wrong_host", None, BANNER, UNTRUSTED, tls="127.0.0.1"),
    Case("tcp_tls_wrong_host", None, BANNER, UNTRUSTED, tls="localhost"),
    Case("tcp_tls_expired", None, BANNER, UNTRUSTED, tls="localhost"),
    Case("tcp_tls_self_signed", None, BANNER, UNTRUSTED, tls="localhost"),
    Case("tcp_tls_good", None, BANNER, UNTRUSTED, tls="wrong.example"),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every misbehaviour the hostile server offers (it loads tests.hostile_tcp)."""
    with HostileServer(tmp_path_factory.mktemp("hostile-tcp-certs")) as server:
        yield server


def tcp_behaviours(server: HostileServer) -> set[str]:
    """The TCP misbehaviours among those C{server} serves."""
    return {name for name in server.ports if name.startswith("tcp_")}


def read(case: Case, server: HostileServer) -> tuple[str, str, float]:
    """
    The TCP probe's exchange by hand: connect, (TLS), send, feed what comes
    to the matcher until it decides, the server closes, or TIMEOUT passes
    since the connect began.  Returns how it ended, why, and when.
    """
    start = time.monotonic()
    deadline = start + TIMEOUT

    def ended(how: str, why: str) -> tuple[str, str, float]:
        return how, why, time.monotonic() - start

    matcher = ExpectMatcher(compile_expect(case.expect))
    try:
        sock = socket.create_connection(("127.0.0.1", server.port(case.behaviour)), TIMEOUT)
    except ConnectionRefusedError:
        return ended(REFUSED, "connection refused")
    try:
        if case.tls is not None:
            context = ssl.create_default_context(cafile=server.ca_file)
            sock = context.wrap_socket(sock, server_hostname=case.tls)
        if case.send is not None:
            sock.sendall(unescape_send(case.send))
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            data = sock.recv(65536)
            verdict = matcher.feed(data) if data else matcher.end()
            if verdict is not None:
                return ended(verdict.outcome.value, verdict.reason)
    except ssl.SSLCertVerificationError as e:
        return ended(UNTRUSTED, e.verify_message)
    except TimeoutError:
        return ended(TIMEOUT_, matcher.describe())
    except ConnectionResetError:
        return ended(RESET, "connection reset")
    finally:
        sock.close()


def check(case: Case, how: str, why: str, elapsed: float, quick: float = QUICK) -> None:
    said = f"{case.id}: {how} ({why}) after {elapsed:.3f} s"
    assert how == case.ends, said
    assert why.isprintable() and len(why) <= 200, said
    assert elapsed <= TIMEOUT + SLACK, said
    if case.times_out:
        assert elapsed >= TIMEOUT - 0.05, said
    else:
        assert elapsed < quick, said


def test_every_behaviour_is_read(hostile: HostileServer) -> None:
    """Each TCP misbehaviour has at least one case, and there are at least 8."""
    behaviours = tcp_behaviours(hostile)
    assert {case.behaviour for case in CASES} == behaviours | set(SHARED)
    assert len(behaviours) >= 8


def test_the_outcomes_are_the_matchers() -> None:
    assert {MATCHED, LIMIT, CLOSED} == {outcome.value for outcome in ExpectOutcome}


ONE_BY_ONE = [case for case in CASES if not case.times_out]


@pytest.mark.parametrize("case", ONE_BY_ONE, ids=[case.id for case in ONE_BY_ONE])
def test_hostile_tcp(case: Case, hostile: HostileServer) -> None:
    before = _sockets()
    how, why, elapsed = read(case, hostile)
    check(case, how, why, elapsed)
    assert _sockets() - before == set(), "a socket was left open"


def test_all_at_once(hostile: HostileServer) -> None:
    """Every case at the same time (the stalls included): none disturbs another's deadline."""
    before = _sockets()
    start = time.monotonic()
    with ThreadPoolExecutor(len(CASES)) as pool:
        outcomes = list(pool.map(lambda case: read(case, hostile), CASES))
    assert time.monotonic() - start <= TIMEOUT + SLACK + 0.5
    for case, (how, why, elapsed) in zip(CASES, outcomes, strict=True):
        check(case, how, why, elapsed, quick=TIMEOUT)
    assert _sockets() - before == set(), "a socket was left open"


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.ends == LIMIT],
    ids=[c.id for c in CASES if c.ends == LIMIT],
)
def test_a_flood_is_cut_short_in_bounded_memory(case: Case, hostile: HostileServer) -> None:
    """10 MiB, or a flood without end: decided at the bound, memory never grows with it."""
    tracemalloc.start()
    try:
        how, why, elapsed = read(case, hostile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check(case, how, why, elapsed, quick=0.5)
    assert why == "no match in the first 65536 bytes"
    assert peak < 1024 * 1024, f"{case.id}: peak {peak} bytes"


def test_the_reasons(hostile: HostileServer) -> None:
    """What the verdicts say, for the status line the probe will log."""
    said = {
        case.id: read(case, hostile)[1]
        for case in (
            Case("tcp_split_pong", PING, r"^\+PONG\r\n", MATCHED),
            Case("tcp_close_mid_answer", PING, PONG, CLOSED),
            Case("tcp_close_at_once", None, BANNER, CLOSED),
            Case("tcp_partial", PING, PONG, TIMEOUT_),
        )
    }
    assert list(said.values()) == [
        'matched "+PONG\\r\\n" at byte 0',
        'the connection closed after 3 bytes without a match: "+PO"',
        "the connection closed before the server sent anything",
        'no match in the 4 bytes received: "+PON"',
    ]


# --------------------------------------------------------------------------
# The real probe (ismon.probes.tcp) against every misbehaviour

M = MessageId

_EXPECTED: dict[str, dict[str, Any]] = {
    MATCHED: checks.OK,
    LIMIT: {"message": M.INVALID_STATUS, "number": 0, "phase": Phase.PARSE},
    CLOSED: {"message": M.RECV_ERROR, "number": 0},
    RESET: {"message": M.RECV_ERROR, "number": errno.ECONNRESET},
    REFUSED: {"message": M.CONNECT_ERROR, "number": errno.ECONNREFUSED, "phase": Phase.CONNECT},
    UNTRUSTED: {"message": M.TLS_VERIFY_ERROR, "number": None, "phase": Phase.TLS},
}
# Where the deadline strikes: nothing read yet, part of an answer, the handshake.
_TIMEOUT_PHASES = {
    "tcp_silent": Phase.WAIT,
    "tcp_no_read": Phase.WAIT,
    "tls_stall": Phase.TLS,
}


def _probe_case(case: Case) -> checks.Case:
    if case.ends == TIMEOUT_:
        expected = checks.timeout(_TIMEOUT_PHASES.get(case.behaviour, Phase.RECEIVE))
    else:
        expected = _EXPECTED[case.ends]
    return checks.Case(case.behaviour, case.id, **expected)


#: The probe's cases: the by-hand cases above, each with its catalogue message.
PROBE_CASES = {case.id: (case, _probe_case(case)) for case in CASES}


def probe_for(probe_case: checks.Case, server: HostileServer) -> TcpProbe:
    from twisted.internet import reactor

    case, _ = PROBE_CASES[probe_case.kind]
    tls = None if case.tls is None else TLSSettings(servername=case.tls, ca_file=server.ca_file)
    return TcpProbe(
        reactor,
        TcpRequest(
            host="127.0.0.1",
            port=server.port(case.behaviour),
            timeout=TIMEOUT,
            tls=tls,
            send=case.send,
            expect=case.expect,
        ),
    )


def test_every_case_meets_the_probe() -> None:
    assert len(PROBE_CASES) == len(CASES), "two cases with one id"


_PROBE_LIST = [probe_case for _, probe_case in PROBE_CASES.values()]
_PROBE_ONE_BY_ONE = checks.one_by_one(_PROBE_LIST)


@pytest.mark.parametrize("case", _PROBE_ONE_BY_ONE, ids=[c.kind for c in _PROBE_ONE_BY_ONE])
@pytest_twisted.ensureDeferred
async def test_the_probe(case: checks.Case, hostile: HostileServer) -> None:
    """The message, a verdict at once, nothing left behind (no timer, reader, socket)."""
    await checks.probe_case(case, hostile, probe_for)


@pytest_twisted.ensureDeferred
async def test_the_probe_all_at_once(hostile: HostileServer) -> None:
    """Every case at once, the stalls and trickles included: each within its own deadline."""
    await checks.probe_all_at_once(_PROBE_LIST, hostile, probe_for)


_FLOODS = [probe_case for probe_case in _PROBE_LIST if probe_case.message is M.INVALID_STATUS]


@pytest.mark.parametrize("case", _FLOODS, ids=[c.kind for c in _FLOODS])
@pytest_twisted.ensureDeferred
async def test_the_probe_cuts_a_flood_short(case: checks.Case, hostile: HostileServer) -> None:
    """10 MiB, or a flood without end: 83 at the bound, at once, in bounded memory."""
    await checks.probe_flood(case, hostile, probe_for)


WATCHES = [
    (
        "tcp_wrong_answer",
        f"The clp_tcpmon has detected network error(select error[{errno.ETIMEDOUT}]).",
    ),
    ("tcp_flood_forever", "The clp_tcpmon has detected an error in TCP(invalid status code[0])."),
    ("tcp_close_mid_answer", "The clp_tcpmon has detected network error(recv error[0])."),
]


@pytest.mark.integration
@pytest.mark.parametrize(("behaviour", "text"), WATCHES, ids=[w[0] for w in WATCHES])
def test_a_watch_exits_within_its_bound(
    behaviour: str, text: str, hostile: HostileServer, processes: Processes, tmp_path: Path
) -> None:
    """clp_tcpmon on a misbehaving server: the catalogue line per probe, exit 1 within the bound."""
    watch_exits_on(
        processes,
        "clp_tcpmon",
        "TCP",
        hostile.port(behaviour),
        tmp_path / "state",
        text,
        "--send",
        PING,
        "--expect",
        PONG,
    )
