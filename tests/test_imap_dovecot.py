# -*- test-case-name: tests.test_imap_dovecot -*-
"""
The IMAP4 probe and watch against a real server: a throwaway dovecot on
loopback (L{tests.dovecot}), plain, STARTTLS and implicit TLS verified
against the test CA, with and without a login; and a real C{clp_imapmon} /
C{ismon imap} process that exits 1 within its printed bound when dovecot is
stalled with SIGSTOP, or when its login is refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import ProbeResult
from ismon.probes.imap import ImapProbe
from tests.certs import TestCerts
from tests.dovecot import Dovecot, dovecot_or_skip
from tests.netns import TEARDOWN, failure_lines, wait_for_good_probes
from tests.test_hostile_imap import imap_watch_argv
from tests.watchproc import Processes

pytestmark = pytest.mark.integration

# Dovecot answers in milliseconds; the deadline only has to survive a loaded machine.
TIMEOUT = 10
MODES = ["plain", "starttls", "tls"]


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Dovecot]:
    """One dovecot for the probes that log in with good credentials, or not at all."""
    server = dovecot_or_skip(tmp_path_factory.mktemp("dovecot-imap"), certs)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_dovecot(tmp_path: Path, certs: TestCerts) -> Iterator[Dovecot]:
    """
    A dovecot of the test's own: for a refused login (dovecot then delays
    every later login from 127.0.0.1 by 2 s, doubling, its auth penalty),
    and for a stall.
    """
    server = dovecot_or_skip(tmp_path / "dovecot", certs)
    try:
        yield server
    finally:
        server.stop()


def _request(
    server: Dovecot, mode: str, credentials: BasicCredentials | None = None, **tls: Any
) -> ConversationRequest:
    settings = TLSSettings(servername="localhost", **({"ca_file": str(server.ca)} | tls))
    return ConversationRequest(
        host=server.host,
        port=server.imaps_port if mode == "tls" else server.imap_port,
        timeout=TIMEOUT,
        tls=None if mode == "plain" else settings,
        starttls=mode == "starttls",
        credentials=credentials,
    )


async def _probe(request: ConversationRequest) -> ProbeResult:
    from twisted.internet import reactor

    result: ProbeResult = await ImapProbe(reactor, request).probe()
    return result


@pytest.mark.parametrize("login", [False, True], ids=["anonymous", "login"])
@pytest.mark.parametrize("mode", MODES)
@pytest_twisted.ensureDeferred
async def test_passes(dovecot: Dovecot, mode: str, login: bool) -> None:
    credentials = BasicCredentials(dovecot.user, dovecot.password) if login else None
    result = await _probe(_request(dovecot, mode, credentials))
    assert result.ok, result.describe()
    assert "OK NOOP completed" in result.reply
    assert result.latency < TIMEOUT


@pytest.mark.parametrize("mode", MODES)
@pytest_twisted.ensureDeferred
async def test_bad_credentials_are_refused(own_dovecot: Dovecot, mode: str) -> None:
    """A wrong password is message 86 with 0; the password appears nowhere."""
    wrong = own_dovecot.password + "-wrong"
    result = await _probe(_request(own_dovecot, mode, BasicCredentials(own_dovecot.user, wrong)))
    assert (result.ok, result.message, result.number) == (False, MessageId.AUTH_REFUSED, 0)
    assert "AUTHENTICATIONFAILED" in result.reply
    assert own_dovecot.password not in repr(result) + result.describe()


@pytest.mark.parametrize("mode", ["starttls", "tls"])
@pytest_twisted.ensureDeferred
async def test_certificate_is_verified(dovecot: Dovecot, mode: str) -> None:
    """Against the system's trust store the test CA's certificate is refused (91)."""
    result = await _probe(_request(dovecot, mode, ca_file=None))
    assert (result.ok, result.message) == (False, MessageId.TLS_VERIFY_ERROR), result.describe()


def _auth_file(directory: Path, user: str, password: str) -> Path:
    path = directory / "imap.auth"
    path.write_text(f"{user}:{password}\n")
    path.chmod(0o600)
    return path


def test_watch_exits_when_dovecot_stalls(
    own_dovecot: Dovecot, processes: Processes, tmp_path: Path
) -> None:
    """
    clp_imapmon with STARTTLS and a login probes dovecot; SIGSTOP every
    dovecot process: the watch logs message 74 for the probe and its 2
    retries, then 6, and exits 1 within the bound it printed.
    """
    state = tmp_path / "state"
    auth = _auth_file(tmp_path, own_dovecot.user, own_dovecot.password)
    argv = imap_watch_argv(
        "clp_imapmon",
        "imap1",
        own_dovecot.imap_port,
        state,
        "--starttls",
        "--servername",
        "localhost",
        "--ca-file",
        str(own_dovecot.ca),
        "--auth-file",
        str(auth),
        timing=["-i", "1", "-c", "2", "-r", "2"],
    )
    watch = processes.start(argv, name="imap1")
    bound = watch.detection_bound()
    assert bound == 1 + 2 * 2 + 2
    wait_for_good_probes("imap1", state, 2)
    with own_dovecot.stalled():
        stalled_at = time.monotonic()
        code = watch.wait(bound + 10)
        elapsed = time.monotonic() - stalled_at
    output = watch.output()
    assert code == 1, output
    assert elapsed <= bound + TEARDOWN, f"exit {elapsed:.2f}s after the stall, bound {bound}s"
    timeout_line = "The clp_imapmon has detected network error(select error[110]). [ID:imap1]"
    failures = failure_lines(output)
    assert len(failures) == 3 and all(line.endswith(timeout_line) for line in failures), output
    assert output.rstrip().endswith("The clp_imapmon will terminate. [ID:imap1]"), output
    assert "Traceback" not in output
    assert own_dovecot.password not in output


def test_watch_exits_when_the_login_is_refused(
    own_dovecot: Dovecot, processes: Processes, tmp_path: Path
) -> None:
    """C{ismon imap} with a wrong password: message 86 with 0 each time, then exit 1."""
    state = tmp_path / "state"
    wrong = own_dovecot.password + "-wrong"
    auth = _auth_file(tmp_path, own_dovecot.user, wrong)
    argv = imap_watch_argv(
        "ismon",
        "imap2",
        own_dovecot.imap_port,
        state,
        "--auth-file",
        str(auth),
        timing=["-i", "1", "-c", "1", "-r", str(TIMEOUT)],
    )
    watch = processes.start(argv, name="imap2")
    bound = watch.detection_bound()
    assert watch.wait(bound + 10) == 1, watch.output()
    output = watch.output()
    refused = (
        "The clp_imapmon has detected an error in IMAP4(authentication refused[0]). [ID:imap2]"
    )
    failures = failure_lines(output)
    assert len(failures) == 2 and all(line.endswith(refused) for line in failures), output
    assert "Traceback" not in output
    assert wrong not in output
