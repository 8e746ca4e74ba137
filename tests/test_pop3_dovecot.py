# -*- test-case-name: tests.test_pop3_dovecot -*-
"""
The POP3 probe and watch against a real dovecot (L{tests.dovecot}) on
loopback: plain, C{--starttls} and C{--tls} verified against the test CA,
a login with good and with bad credentials, and a watch that exits 1 within
its bound once every dovecot process is stopped (SIGSTOP).
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.pop3 import Pop3Probe
from tests.certs import TestCerts
from tests.dovecot import Dovecot, dovecot_or_skip
from tests.procs import wait_until
from tests.watchproc import FAST, PATIENCE, Processes, watch_argv

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
# What the watch may need beyond the bound to end: process teardown, and
# this test noticing the stall a moment late.
TEARDOWN = 1.0


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Dovecot]:
    server = dovecot_or_skip(tmp_path_factory.mktemp("dovecot"), certs)
    yield server
    server.stop()


async def probe(
    port: int,
    *,
    tls: TLSSettings | None = None,
    starttls: bool = False,
    credentials: BasicCredentials | None = None,
) -> ProbeResult:
    from twisted.internet import reactor

    request = ConversationRequest(
        host="127.0.0.1",
        port=port,
        timeout=TIMEOUT,
        tls=tls,
        starttls=starttls,
        credentials=credentials,
    )
    return await Pop3Probe(reactor, request).probe()


def verified(server: Dovecot) -> TLSSettings:
    return TLSSettings(servername="localhost", ca_file=str(server.ca))


@pytest_twisted.ensureDeferred
async def test_plain(dovecot: Dovecot) -> None:
    result = await probe(dovecot.pop3_port)
    assert result.ok, result.describe()
    assert result.reply.startswith("+OK")


@pytest_twisted.ensureDeferred
async def test_starttls_verified(dovecot: Dovecot) -> None:
    result = await probe(dovecot.pop3_port, tls=verified(dovecot), starttls=True)
    assert result.ok, result.describe()
    assert result.cert_days_left is not None


@pytest_twisted.ensureDeferred
async def test_implicit_tls_verified(dovecot: Dovecot) -> None:
    result = await probe(dovecot.pop3s_port, tls=verified(dovecot))
    assert result.ok, result.describe()
    assert result.cert_days_left is not None


@pytest_twisted.ensureDeferred
async def test_untrusted_certificate(dovecot: Dovecot, certs: TestCerts) -> None:
    """Verified by default: a CA that did not sign dovecot's certificate is 91."""
    other = TLSSettings(servername="localhost", ca_file=str(certs.self_signed.cert))
    result = await probe(dovecot.pop3s_port, tls=other)
    assert (result.message, result.phase) == (MessageId.TLS_VERIFY_ERROR, Phase.TLS)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
@pytest_twisted.ensureDeferred
async def test_login(dovecot: Dovecot, tls: bool) -> None:
    credentials = BasicCredentials(dovecot.user, dovecot.password)
    settings = verified(dovecot) if tls else None
    result = await probe(dovecot.pop3_port, tls=settings, starttls=tls, credentials=credentials)
    assert result.ok, result.describe()
    # The answer to STAT: messages and octets of the (empty) mailbox.
    assert result.reply == "+OK 0 0"


@pytest_twisted.ensureDeferred
async def test_bad_password_is_86(dovecot: Dovecot) -> None:
    credentials = BasicCredentials(dovecot.user, "not-" + dovecot.password)
    result = await probe(dovecot.pop3_port, credentials=credentials)
    assert (result.message, result.number, result.phase) == (
        MessageId.AUTH_REFUSED,
        0,
        Phase.PARSE,
    ), result.describe()
    assert "not-" not in result.describe()


def test_stalled_dovecot_ends_the_watch(
    tmp_path: Path, certs: TestCerts, processes: Processes
) -> None:
    """
    A watch with a login on a private dovecot: once every dovecot process
    is stopped (SIGSTOP) it logs message 74 for the probe and each retry
    and exits 1 within the bound it printed, its password nowhere.
    """
    server = dovecot_or_skip(tmp_path / "dovecot", certs)
    auth = tmp_path / "auth"
    auth.write_text(f"{server.user}:{server.password}\n")
    auth.chmod(0o600)
    try:
        watch = processes.start(
            watch_argv(
                "clp_pop3mon",
                "dove1",
                "127.0.0.1",
                server.pop3_port,
                tmp_path / "state",
                "--auth-file",
                str(auth),
                timing=FAST,
            ),
            name="watch",
        )
        bound = watch.detection_bound()
        # A probe has logged in (dovecot says so): the watch works.
        wait_until(lambda: "Login: user=<watcher>" in server.output(), PATIENCE, "a login")
        with server.stalled():
            stalled_at = time.monotonic()
            code = watch.wait(bound + PATIENCE)
            took = time.monotonic() - stalled_at
    finally:
        server.stop()
    output = watch.output()
    assert code == 1, output
    assert took <= bound + TEARDOWN, f"exit {took:.2f}s after the stall, bound {bound}s\n{output}"
    timed_out = (
        f"The clp_pop3mon has detected network error(select error[{errno.ETIMEDOUT}]). [ID:dove1]"
    )
    assert len(re.findall(re.escape(timed_out) + "$", output, re.MULTILINE)) == 3, output
    assert output.rstrip().endswith("The clp_pop3mon will terminate. [ID:dove1]"), output
    assert "Traceback" not in output, output
    assert server.password not in output, output
