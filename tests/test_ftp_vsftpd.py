# -*- test-case-name: tests.test_ftp_vsftpd -*-
"""
The FTP probe and watch against a real vsftpd (L{tests.vsftpd}) on
loopback: plain, AUTH TLS and implicit TLS verified against the test CA,
the login with good and bad credentials, and a SIGSTOPped daemon that
makes a real C{clp_ftpmon} exit 1 within the bound it printed.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet import reactor as _reactor

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.ftp import FtpProbe
from tests.certs import TestCerts
from tests.conftest import _start
from tests.test_integration_probes import _probe, inline_callbacks
from tests.test_watch import TEARDOWN, wait_for_probes
from tests.vsftpd import Vsftpd, ftp_user, start_vsftpd
from tests.watchproc import LOOPBACK, Processes, WatchProcess, exits_within_bound, watch_argv

pytestmark = pytest.mark.integration

reactor: Any = _reactor
TIMEOUT = 5.0
STALL_TIMEOUT = 1.0
SLACK = 0.5


@pytest.fixture(scope="module")
def vsftpd(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Vsftpd]:
    """Plain FTP offering AUTH TLS."""
    server = _start(lambda: start_vsftpd(tmp_path_factory.mktemp("vsftpd"), certs))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vsftpd_implicit(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Vsftpd]:
    """TLS from the first byte (port-990 style)."""
    server = _start(lambda: start_vsftpd(tmp_path_factory.mktemp("vsftpds"), certs, implicit=True))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def account() -> Iterator[BasicCredentials]:
    with contextlib.ExitStack() as stack:
        user, password = _start(lambda: stack.enter_context(ftp_user()))
        yield BasicCredentials(user, password)


def _ftp(
    server: Vsftpd,
    certs: TestCerts,
    *,
    starttls: bool = False,
    credentials: BasicCredentials | None = None,
    timeout: float = TIMEOUT,
) -> FtpProbe:
    tls = (
        TLSSettings(servername="localhost", ca_file=str(certs.ca))
        if starttls or server.implicit
        else None
    )
    return FtpProbe(
        reactor,
        ConversationRequest(
            host="127.0.0.1",
            port=server.port,
            timeout=timeout,
            tls=tls,
            starttls=starttls,
            credentials=credentials,
        ),
    )


def _run(probe: FtpProbe) -> Any:
    # test_integration_probes._probe (no leftover timers), typed for HTTP and SMTP.
    return _probe(cast(Any, probe))


def _ok(result: ProbeResult, reply: str) -> None:
    assert result.ok, result.describe()
    assert result.reply == reply, result.describe()


@inline_callbacks
def test_plain_noop_before_login(vsftpd: Vsftpd, certs: TestCerts) -> Generator[Any, Any, None]:
    result, _ = yield _run(_ftp(vsftpd, certs))
    _ok(result, "530 Please login with USER and PASS.")
    assert result.cert_days_left is None


@inline_callbacks
def test_auth_tls_verified(vsftpd: Vsftpd, certs: TestCerts) -> Generator[Any, Any, None]:
    result, _ = yield _run(_ftp(vsftpd, certs, starttls=True))
    _ok(result, "530 Please login with USER and PASS.")
    assert result.cert_days_left is not None and result.cert_days_left > 30


@inline_callbacks
def test_implicit_tls_verified(
    vsftpd_implicit: Vsftpd, certs: TestCerts
) -> Generator[Any, Any, None]:
    result, _ = yield _run(_ftp(vsftpd_implicit, certs))
    _ok(result, "530 Please login with USER and PASS.")
    assert result.cert_days_left is not None


@inline_callbacks
def test_implicit_tls_port_spoken_to_in_plain_text(
    vsftpd_implicit: Vsftpd, certs: TestCerts
) -> Generator[Any, Any, None]:
    """A plain probe on the TLS port reads no greeting: a timeout, not a pass."""
    probe = FtpProbe(
        reactor,
        ConversationRequest(host="127.0.0.1", port=vsftpd_implicit.port, timeout=STALL_TIMEOUT),
    )
    result, elapsed = yield _run(probe)
    assert not result.ok, result.describe()
    assert result.message is MessageId.SELECT_ERROR, result.describe()
    assert elapsed <= STALL_TIMEOUT + SLACK


@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "auth-tls"])
@inline_callbacks
def test_login_good_credentials(
    vsftpd: Vsftpd, certs: TestCerts, account: BasicCredentials, starttls: bool
) -> Generator[Any, Any, None]:
    result, _ = yield _run(_ftp(vsftpd, certs, starttls=starttls, credentials=account))
    _ok(result, "200 NOOP ok.")


@inline_callbacks
def test_login_bad_password_is_86_with_530(
    vsftpd: Vsftpd, certs: TestCerts, account: BasicCredentials
) -> Generator[Any, Any, None]:
    wrong = BasicCredentials(account.user, account.password + "-wrong")
    result, _ = yield _run(_ftp(vsftpd, certs, credentials=wrong))
    assert not result.ok
    assert (result.message, result.number, result.phase) == (
        MessageId.AUTH_REFUSED,
        530,
        Phase.PARSE,
    ), result.describe()
    assert result.reply == "530 Login incorrect."
    assert account.password not in result.describe()


@inline_callbacks
def test_stalled_vsftpd_times_out(vsftpd: Vsftpd, certs: TestCerts) -> Generator[Any, Any, None]:
    with vsftpd.stalled():
        result, elapsed = yield _run(_ftp(vsftpd, certs, timeout=STALL_TIMEOUT))
    assert (result.message, result.number, result.phase) == (
        MessageId.SELECT_ERROR,
        errno.ETIMEDOUT,
        Phase.WAIT,
    ), result.describe()
    assert STALL_TIMEOUT - 0.05 <= elapsed <= STALL_TIMEOUT + SLACK
    again, _ = yield _run(_ftp(vsftpd, certs))
    assert again.ok, again.describe()


def test_stalled_vsftpd_ends_the_watch_within_its_bound(
    vsftpd: Vsftpd, processes: Processes, tmp_path: Path
) -> None:
    """
    A real clp_ftpmon on vsftpd; SIGSTOP the daemon: message 74 (ETIMEDOUT)
    for the probe and each retry, then 6, and exit 1 within the printed bound.
    """
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv("clp_ftpmon", "ftpstall", LOOPBACK, vsftpd.port, state), name="watch"
    )
    bound = watch.detection_bound()
    wait_for_probes(processes, "ftpstall", state, 2)
    with vsftpd.stalled():
        ended_within_bound(
            watch,
            bound,
            "ftpstall",
            "The clp_ftpmon has detected network error(select error[110]).",
        )


def ended_within_bound(watch: WatchProcess, bound: float, watch_id: str, failure: str) -> None:
    """
    From now, C{watch} exits 1 within C{bound} (plus L{TEARDOWN}), having
    logged C{failure} for the probe and each of its 2 retries, then message 6.
    """
    exits_within_bound(watch, bound, "clp_ftpmon", watch_id, failure, teardown=TEARDOWN)
