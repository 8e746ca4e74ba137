"""
The real probes against a hostile server (L{tests.hostile}): for every
misbehaviour, the documented message and number (docs/failure-rules.md), a verdict
within the timeout plus 0.5 s, and nothing left behind: no logged failure,
no pending DelayedCall, no reader/writer in the reactor, no open socket.

The server runs in a child process, so its stalls cannot block the reactor
that runs the probe.  Every case also runs once more, all at the same time,
to show that probes do not disturb one another.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from ismon.core.catalogue import MAX_LINE_BYTES, MessageId, fold, render
from ismon.core.protocols import label_of
from ismon.core.requests import HttpRequest, SmtpRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.http import HttpProbe
from ismon.probes.smtp import SmtpProbe
from tests.hostile import BEHAVIOURS, SPECIAL, HostileServer

TIMEOUT = 1.5
# The verdict must arrive within TIMEOUT + SLACK.
SLACK = 0.5
# A failure the probe can see (not a timeout) must be reported before this.
QUICK = 1.0

ANY: Any = object()
EAI = (socket.EAI_NONAME, socket.EAI_AGAIN, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))

M = MessageId


@dataclass(frozen=True)
class Case:
    """One probe against one misbehaviour, and what it must find."""

    behaviour: str
    # http | https | https-insecure | smtp | starttls | smtps
    kind: str
    # None: the probe must succeed.
    message: MessageId | None
    number: Any = ANY
    phase: Phase | None = None
    uri: str = "/"
    host: str = "127.0.0.1"
    version: str = "1.1"

    @property
    def id(self) -> str:
        extra = "" if self.uri == "/" else f"-uri{self.uri}"
        extra += "" if self.host == "127.0.0.1" else f"-{self.host}"
        extra += "" if self.version == "1.1" else f"-v{self.version}"
        return f"{self.kind}-{self.behaviour}{extra}"

    @property
    def times_out(self) -> bool:
        return self.message is M.SELECT_ERROR


def timeout(phase: Phase) -> dict[str, Any]:
    return {"message": M.SELECT_ERROR, "number": errno.ETIMEDOUT, "phase": phase}


def invalid() -> dict[str, Any]:
    return {"message": M.INVALID_RESPONSE, "number": None, "phase": Phase.PARSE}


def status(code: int) -> dict[str, Any]:
    return {"message": M.INVALID_STATUS, "number": code, "phase": Phase.PARSE}


def lost(number: int, phase: Phase | None = None) -> dict[str, Any]:
    return {"message": M.RECV_ERROR, "number": number, "phase": phase}


def tls_error(message: MessageId) -> dict[str, Any]:
    return {"message": message, "number": None, "phase": Phase.TLS}


OK: dict[str, Any] = {"message": None}
RESET = errno.ECONNRESET

CASES = [
    # -- HTTP: controls
    Case("http_ok", "http", **OK),
    Case("http_ok", "http", **OK, version="1.0"),
    Case("http_ok", "http", **OK, host="localhost"),
    Case("http_segments", "http", **OK),
    Case("http_bare_lf", "http", **OK),
    Case("http_early_answer", "http", **OK),
    Case("http_body_flood", "http", **OK),
    Case("http_latin1_reason", "http", **OK),
    Case("http_status_no_newline", "http", **OK),
    Case("http_301", "http", **OK, uri="/x"),
    # -- HTTP: status codes; only a URI other than "/" is judged (docs/failure-rules.md, HTTP rule 4)
    Case("http_500", "http", **OK),
    Case("http_500", "http", **status(500), uri="/x"),
    Case("http_503", "http", **status(503), uri="/x"),
    Case("http_404", "http", **OK),
    Case("http_404", "http", **status(404), uri="/x"),
    Case("http_401", "http", **status(401), uri="/x"),
    Case("http_close_after_status", "http", **OK),
    Case("http_close_after_status", "http", **status(503), uri="/x"),
    # -- HTTP: no answer in time
    Case("http_silent", "http", **timeout(Phase.WAIT)),
    Case("http_no_read", "http", **timeout(Phase.WAIT)),
    Case("http_trickle", "http", **timeout(Phase.RECEIVE)),
    Case("http_status_then_silence", "http", **timeout(Phase.RECEIVE)),
    Case("http_slow_headers", "http", **timeout(Phase.RECEIVE)),
    # -- HTTP: not an answer
    Case("http_endless_headers", "http", **invalid()),
    Case("http_long_line", "http", **invalid()),
    Case("http_long_status_line", "http", **invalid()),
    Case("http_nul_header", "http", **invalid()),
    Case("http_nul_bytes", "http", **invalid()),
    Case("http_nul_status", "http", **invalid()),
    Case("http_non_utf8", "http", **invalid()),
    Case("http_ssh_banner", "http", **invalid()),
    Case("http_smtp_banner", "http", **invalid()),
    Case("http_09", "http", **invalid()),
    Case("http_lowercase", "http", **invalid()),
    Case("http_bad_code", "http", **invalid()),
    # -- HTTP: the connection ends early
    Case("http_close_before_answer", "http", **lost(0, Phase.WAIT)),
    Case("http_half_close", "http", **lost(0, Phase.WAIT)),
    Case("http_reset_after_request", "http", **lost(RESET, Phase.WAIT)),
    Case("http_reset_mid_answer", "http", **lost(RESET, Phase.RECEIVE)),
    Case("http_reset_mid_status", "http", **lost(RESET, Phase.RECEIVE)),
    # -- connecting
    Case("refused", "http", M.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT),
    Case("refused", "smtp", M.CONNECT_ERROR, errno.ECONNREFUSED, Phase.CONNECT),
    Case("backlog_full", "http", **timeout(Phase.CONNECT)),
    Case("http_ok", "http", M.RESOLVE_ERROR, EAI, Phase.RESOLVE, host="nonexistent.invalid"),
    Case("smtp_ok", "smtp", M.RESOLVE_ERROR, EAI, Phase.RESOLVE, host="nonexistent.invalid"),
    # -- HTTPS
    Case("tls_good", "https", **OK),
    Case("tls_self_signed", "https-insecure", **OK),
    Case("tls_stall", "https", **timeout(Phase.TLS)),
    Case("tls_good_then_silence", "https", **timeout(Phase.WAIT)),
    Case("tls_wrong_host", "https", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("tls_expired", "https", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("tls_self_signed", "https", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("tls_garbage", "https", **tls_error(M.TLS_HANDSHAKE_ERROR)),
    Case("tls_plain_http", "https", **tls_error(M.TLS_HANDSHAKE_ERROR)),
    # Twisted reports an EOF inside TLS as ConnectionLost, the same as a
    # reset: a clean close during the handshake may read as ECONNRESET.
    Case("tls_close_on_hello", "https", **lost((0, RESET), Phase.TLS)),
    Case("tls_reset_on_hello", "https", **lost(RESET, Phase.TLS)),
    # -- SMTP: controls
    Case("smtp_ok", "smtp", **OK),
    Case("smtp_multiline_greeting", "smtp", **OK),
    Case("smtp_slow_greeting", "smtp", **OK),
    Case("smtp_bare_code", "smtp", **OK),
    Case("smtp_non_utf8_greeting", "smtp", **OK),
    Case("smtp_late_221", "smtp", **OK),
    Case("smtp_no_221", "smtp", **OK),
    # -- SMTP: error replies (docs/failure-rules.md, SMTP rule 3)
    Case("smtp_421_greeting", "smtp", **status(421)),
    Case("smtp_554_greeting", "smtp", **status(554)),
    Case("smtp_noop_500", "smtp", **status(500)),
    Case("smtp_noop_421", "smtp", **status(421)),
    # -- SMTP: no reply code can be read: 83 with 0 (documented)
    Case("smtp_garbage", "smtp", **status(0)),
    Case("smtp_ssh_banner", "smtp", **status(0)),
    Case("smtp_http_answer", "smtp", **status(0)),
    Case("smtp_nul", "smtp", **status(0)),
    Case("smtp_code_change", "smtp", **status(0)),
    Case("smtp_endless_multiline", "smtp", **status(0)),
    Case("smtp_long_line", "smtp", **status(0)),
    # -- SMTP: no reply in time
    Case("smtp_silent", "smtp", **timeout(Phase.WAIT)),
    Case("smtp_greeting_then_silence", "smtp", **timeout(Phase.WAIT)),
    Case("smtp_noop_trickle", "smtp", **timeout(Phase.RECEIVE)),
    Case("http_silent", "smtp", **timeout(Phase.WAIT)),
    # -- SMTP: the connection ends early
    Case("smtp_close_after_greeting", "smtp", **lost(0, Phase.WAIT)),
    Case("smtp_reset_after_greeting", "smtp", **lost(RESET, Phase.WAIT)),
    # -- SMTP with STARTTLS, and implicit TLS
    Case("smtp_starttls_ok", "starttls", **OK),
    Case("smtp_starttls_454", "starttls", **status(454)),
    Case("smtp_no_starttls", "starttls", M.STARTTLS_UNAVAILABLE, None, Phase.PARSE),
    Case("smtp_starttls_stall", "starttls", **timeout(Phase.TLS)),
    Case("smtp_starttls_garbage", "starttls", **tls_error(M.TLS_HANDSHAKE_ERROR)),
    Case("smtp_starttls_expired", "starttls", **tls_error(M.TLS_VERIFY_ERROR)),
    Case("smtps_ok", "smtps", **OK),
    Case("tls_stall", "smtps", **timeout(Phase.TLS)),
    Case("tls_wrong_host", "smtps", **tls_error(M.TLS_VERIFY_ERROR)),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with HostileServer(tmp_path_factory.mktemp("hostile-certs")) as server:
        yield server


def make_probe(case: Case, server: HostileServer) -> Any:
    from twisted.internet import reactor

    port = server.port(case.behaviour)
    tls = TLSSettings(
        servername="localhost", ca_file=server.ca_file, insecure=case.kind.endswith("insecure")
    )
    if case.kind.startswith("http"):
        return HttpProbe(
            reactor,
            HttpRequest(
                host=case.host,
                port=port,
                timeout=TIMEOUT,
                version=case.version,
                uri=case.uri,
                tls=tls if case.kind.startswith("https") else None,
            ),
        )
    return SmtpProbe(
        reactor,
        SmtpRequest(
            host=case.host,
            port=port,
            timeout=TIMEOUT,
            tls=tls if case.kind in ("starttls", "smtps") else None,
            starttls=case.kind == "starttls",
            helo_name="probe.test",
        ),
    )


def _sockets() -> set[str]:
    """The open sockets of this process, by inode (fd numbers get reused)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


class Leaks:
    """
    Snapshot the reactor and the process before a probe; after it, fail on
    any logged failure or error, DelayedCall, reader, writer or socket that
    was not there before.
    """

    def __init__(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.events: list[dict[str, Any]] = []
        self.delayed = set(reactor.getDelayedCalls())
        self.readers = set(reactor.getReaders())
        self.writers = set(reactor.getWriters())
        self.sockets = _sockets()
        globalLogPublisher.addObserver(self._observe)

    def _observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            self.events.append(event)

    def check(self) -> None:
        try:
            # An unhandled error in a Deferred is logged when it is collected.
            gc.collect()
        finally:
            globalLogPublisher.removeObserver(self._observe)
        logged = [
            event["log_failure"].getTraceback() if "log_failure" in event else formatEvent(event)
            for event in self.events
        ]
        assert not logged, "\n".join(logged)
        delayed = [c for c in self.reactor.getDelayedCalls() if c not in self.delayed]
        assert not delayed, f"left-over DelayedCalls: {delayed}"
        readers = set(self.reactor.getReaders()) - self.readers
        writers = set(self.reactor.getWriters()) - self.writers
        assert not readers and not writers, f"left in the reactor: {readers} {writers}"
        sockets = _sockets() - self.sockets
        assert not sockets, f"left-over sockets: {sockets}"


async def run_case(
    case: Case, server: HostileServer, make: Callable[[Case, HostileServer], Any] = make_probe
) -> tuple[ProbeResult, float]:
    probe = make(case, server)
    start = time.monotonic()
    result = await probe.probe()
    return result, time.monotonic() - start


def check_result(case: Case, result: ProbeResult, elapsed: float, quick: float = QUICK) -> None:
    said = f"{case.id}: {result.describe()} after {elapsed:.3f} s"
    assert isinstance(result, ProbeResult), said
    assert elapsed <= TIMEOUT + SLACK, said
    assert result.latency <= elapsed + 0.05, said
    if case.message is None:
        assert result.ok, said
        assert result.message is None, said
    else:
        assert result.ok is False, said
        assert result.message is case.message, said
        if isinstance(case.number, tuple):
            assert result.number in case.number, said
        elif case.number is not ANY:
            assert result.number == case.number, said
        if case.phase is not None:
            assert result.phase is case.phase, said
    if case.times_out:
        # The deadline holds in both directions: a trickle cannot stretch
        # it, and nothing is reported as a timeout before it.
        assert elapsed >= TIMEOUT - 0.05, said
    else:
        assert elapsed < quick, said
    if not result.ok:
        # What the server said can never forge or overflow a log line.
        assert result.message is not None
        line = render(
            result.message,
            command="clp_smtpmon" if "smtp" in case.kind or "tls" in case.kind else "clp_httpmon",
            protocol=label_of(
                "clp_smtpmon" if "smtp" in case.kind or "tls" in case.kind else "clp_httpmon"
            ),
            watch_id="hostile",
            number=result.number,
            detail=result.detail,
        )
        assert line.isprintable(), said
        assert all(len(piece.encode()) <= MAX_LINE_BYTES for piece in fold(line)), said
        assert result.reply.isprintable(), said


def test_every_behaviour_is_probed() -> None:
    """Each misbehaviour the server offers has at least one case."""
    assert {case.behaviour for case in CASES} == set(BEHAVIOURS) | set(SPECIAL)
    assert len(BEHAVIOURS) + len(SPECIAL) >= 25


# The probe of a case, and the checks of its result: other protocols' suites
# (tests/test_hostile_imap.py ...) pass their own.
Make = Callable[[Case, HostileServer], Any]
Check = Callable[[Case, ProbeResult, float, float], None]


async def probe_case(
    case: Case, server: HostileServer, make: Make = make_probe, check: Check = check_result
) -> None:
    """One case: its result checked, and nothing left behind."""
    leaks = Leaks()
    try:
        result, elapsed = await run_case(case, server, make)
    finally:
        leaks.check()
    check(case, result, elapsed, QUICK)


async def probe_all_at_once(
    cases: list[Case], server: HostileServer, make: Make = make_probe, check: Check = check_result
) -> None:
    """Every case at the same time: no probe disturbs another, or its deadline."""
    leaks = Leaks()
    start = time.monotonic()
    try:
        outcomes = await defer.gatherResults(
            [defer.ensureDeferred(run_case(case, server, make)) for case in cases]
        )
    finally:
        leaks.check()
    assert time.monotonic() - start <= TIMEOUT + SLACK
    for case, (result, elapsed) in zip(cases, outcomes, strict=True):
        check(case, result, elapsed, TIMEOUT)


async def probe_flood(
    case: Case, server: HostileServer, make: Make = make_probe, check: Check = check_result
) -> None:
    """
    A server offering 1-10 MiB is cut off early: the probe decides at once
    and its memory never grows with what the server sends.
    """
    tracemalloc.start()
    try:
        result, elapsed = await run_case(case, server, make)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check(case, result, elapsed, 0.5)
    assert peak < 1024 * 1024, f"{case.id}: peak {peak} bytes"


def one_by_one(cases: list[Case]) -> list[Case]:
    """
    The cases worth a test of their own.  A case that times out waits the
    whole TIMEOUT and is judged the same way in a suite's all-at-once test
    (its deadline, its message, its phase), so it is checked there only:
    one by one, the suites' stalls would cost a minute and more.
    """
    return [case for case in cases if not case.times_out]


ONE_BY_ONE = one_by_one(CASES)


@pytest.mark.parametrize("case", ONE_BY_ONE, ids=[case.id for case in ONE_BY_ONE])
@pytest_twisted.ensureDeferred
async def test_hostile(case: Case, hostile: HostileServer) -> None:
    await probe_case(case, hostile)


@pytest_twisted.ensureDeferred
async def test_all_at_once(hostile: HostileServer) -> None:
    """Every case at the same time: no probe disturbs another, or its deadline."""
    await probe_all_at_once(CASES, hostile)


FLOODS = [
    Case("http_endless_headers", "http", **invalid()),
    Case("http_long_line", "http", **invalid()),
    Case("http_long_status_line", "http", **invalid()),
    Case("http_body_flood", "http", **OK),
    Case("smtp_endless_multiline", "smtp", **status(0)),
    Case("smtp_long_line", "smtp", **status(0)),
]


@pytest.mark.parametrize("case", FLOODS, ids=[case.id for case in FLOODS])
@pytest_twisted.ensureDeferred
async def test_flood_is_cut_short(case: Case, hostile: HostileServer) -> None:
    """A server offering 1-10 MiB is cut off early, in bounded memory."""
    await probe_flood(case, hostile)


def test_one_behaviour_per_process(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The server also runs a single behaviour, as `python -m tests.hostile --behaviour`."""
    certdir = tmp_path_factory.mktemp("hostile-one")
    with HostileServer(certdir, ["http_ok"]) as server:
        assert list(server.ports) == ["http_ok"]
        with socket.create_connection(("127.0.0.1", server.port("http_ok")), timeout=5) as s:
            s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")
