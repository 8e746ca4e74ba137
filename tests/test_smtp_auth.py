# -*- test-case-name: tests.test_smtp_auth -*-
"""
The SMTP login (C{clp_smtpmon ... --auth-file}) against a real SMTP server
offering AUTH PLAIN and LOGIN (aiosmtpd, L{tests.smtp_auth_server}):
STARTTLS and implicit TLS verified against the test CA, and in the clear
with C{--insecure}; a wrong password is message 86 with 535; a real watch
exits 1 within its bound once the server is stopped (SIGSTOP); and the
password is written nowhere (the leak scan of L{tests.test_http_checks}).
"""

from __future__ import annotations

import base64
import errno
import re
import time
from pathlib import Path

import pytest
import pytest_twisted

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, SmtpRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.smtp import SmtpProbe
from tests.conftest import FreshDnsTcpServers
from tests.servers import Rsyslog
from tests.smtp_auth_server import SMTP_AUTH_PASSWORD, SMTP_AUTH_USER, SmtpAuth
from tests.test_hostile import Leaks
from tests.test_http_checks import password_written_nowhere
from tests.test_watch import started, wait_for_probes
from tests.watchproc import LOOPBACK, Processes, command, exits_within_bound, watch_argv

TIMEOUT = 5.0


async def probe(server: SmtpAuth, password: str, **how: object) -> ProbeResult:
    from twisted.internet import reactor

    request = SmtpRequest(
        host=LOOPBACK,
        port=server.port,
        timeout=TIMEOUT,
        helo_name="probe.test",
        credentials=BasicCredentials(SMTP_AUTH_USER, password),
        **how,  # type: ignore[arg-type]
    )
    leaks = Leaks()
    try:
        return await SmtpProbe(reactor, request).probe()
    finally:
        leaks.check()


def verified(server: SmtpAuth) -> TLSSettings:
    assert server.ca is not None
    return TLSSettings(servername="localhost", ca_file=str(server.ca))


@pytest_twisted.ensureDeferred
async def test_login_after_starttls(smtp_auth_starttls: SmtpAuth) -> None:
    """AUTH is offered only over TLS: the login after STARTTLS passes, verified."""
    result = await probe(
        smtp_auth_starttls, SMTP_AUTH_PASSWORD, starttls=True, tls=verified(smtp_auth_starttls)
    )
    assert result.ok, result.describe()
    assert result.reply.startswith("250 "), result.reply


@pytest_twisted.ensureDeferred
async def test_login_over_implicit_tls(smtp_auth_tls: SmtpAuth) -> None:
    result = await probe(smtp_auth_tls, SMTP_AUTH_PASSWORD, tls=verified(smtp_auth_tls))
    assert result.ok, result.describe()


@pytest_twisted.ensureDeferred
async def test_login_in_the_clear(smtp_auth: SmtpAuth) -> None:
    """What --insecure allows without TLS."""
    result = await probe(smtp_auth, SMTP_AUTH_PASSWORD)
    assert result.ok, result.describe()


@pytest.mark.parametrize("how", ["starttls", "tls", "plain"])
@pytest_twisted.ensureDeferred
async def test_a_wrong_password_is_86(
    how: str, smtp_auth: SmtpAuth, smtp_auth_starttls: SmtpAuth, smtp_auth_tls: SmtpAuth
) -> None:
    server = {"starttls": smtp_auth_starttls, "tls": smtp_auth_tls, "plain": smtp_auth}[how]
    extra: dict[str, object] = {}
    if how != "plain":
        extra = {"tls": verified(server), "starttls": how == "starttls"}
    result = await probe(server, "not-" + SMTP_AUTH_PASSWORD, **extra)
    assert (result.message, result.number, result.phase) == (
        MessageId.AUTH_REFUSED,
        535,
        Phase.PARSE,
    ), result.describe()
    assert result.reply.startswith("535 "), result.reply


@pytest.mark.integration
def test_a_watch_logs_in_and_ends_within_its_bound(
    fresh_dns_tcp_servers: FreshDnsTcpServers, processes: Processes, tmp_path: Path
) -> None:
    """
    clp_smtpmon --starttls --auth-file on a real server: good probes, then,
    the server stopped (SIGSTOP), 74 for each and an exit 1 within the
    bound; the password nowhere in what it wrote.
    """
    server = fresh_dns_tcp_servers.smtp_auth("starttls")
    assert server.ca is not None
    auth = tmp_path / "auth"
    auth.write_text(f"{SMTP_AUTH_USER}:{SMTP_AUTH_PASSWORD}\n")
    auth.chmod(0o600)
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(
            "clp_smtpmon",
            "mail1",
            LOOPBACK,
            server.port,
            state,
            *("--starttls", "--ca-file", str(server.ca), "--servername", "localhost"),
            *("--auth-file", str(auth), "--helo", "probe.test"),
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    started(watch, "clp_smtpmon", "mail1")
    wait_for_probes(processes, "mail1", state, 2)
    with server.stalled():
        exits_within_bound(
            watch,
            bound,
            "clp_smtpmon",
            "mail1",
            f"The clp_smtpmon has detected network error(select error[{errno.ETIMEDOUT}]).",
        )
    assert SMTP_AUTH_PASSWORD not in watch.output()


@pytest.mark.integration
def test_a_watch_with_a_wrong_password_exits_with_86(
    smtp_auth_tls: SmtpAuth, processes: Processes, tmp_path: Path
) -> None:
    assert smtp_auth_tls.ca is not None
    auth = tmp_path / "auth"
    auth.write_text(f"{SMTP_AUTH_USER}:wrong-{SMTP_AUTH_PASSWORD}\n")
    auth.chmod(0o600)
    watch = processes.start(
        watch_argv(
            "clp_smtpmon",
            "mail2",
            LOOPBACK,
            smtp_auth_tls.port,
            tmp_path / "state",
            *("--tls", "--ca-file", str(smtp_auth_tls.ca), "--servername", "localhost"),
            "--auth-file",
            str(auth),
            timing=["-i", "1", "-c", "1", "-r", "5"],
        ),
        name="watch",
    )
    bound = watch.detection_bound()
    watch.wait_for(re.escape("The clp_smtpmon has started watching SMTP. [ID:mail2]"))
    started = time.monotonic()
    exits_within_bound(
        watch,
        bound,
        "clp_smtpmon",
        "mail2",
        "The clp_smtpmon has detected an error in SMTP(authentication refused[535]).",
        retries=1,
    )
    assert time.monotonic() - started < bound
    assert SMTP_AUTH_PASSWORD not in watch.output()


def test_a_login_in_the_clear_needs_insecure(processes: Processes, tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.write_text(f"{SMTP_AUTH_USER}:{SMTP_AUTH_PASSWORD}\n")
    auth.chmod(0o600)
    refused = processes.run([*command("clp_smtpmon"), "m", "--auth-file", str(auth), "--check"])
    assert refused.returncode == 2
    assert "--auth-file needs --tls or --starttls" in refused.stderr
    allowed = processes.run(
        [*command("clp_smtpmon"), "m", "--auth-file", str(auth), "--insecure", "--check"]
    )
    assert (allowed.returncode, allowed.stderr) == (0, "")


@pytest.mark.integration
def test_password_written_nowhere(
    processes: Processes, smtp_auth_tls: SmtpAuth, rsyslog: Rsyslog, tmp_path: Path
) -> None:
    """The leak scan of the HTTP login, for the SMTP login (AUTH PLAIN over TLS)."""
    assert smtp_auth_tls.ca is not None

    def argv(watch_id: str, auth: Path) -> list[str]:
        return [
            *command("clp_smtpmon"),
            watch_id,
            *("-s", LOOPBACK, "-n", str(smtp_auth_tls.port), "--tls"),
            *("--ca-file", str(smtp_auth_tls.ca), "--servername", "localhost"),
            *("-i", "1", "-c", "1", "-r", "5", "--auth-file", str(auth)),
        ]

    def secrets(password: str) -> list[str]:
        plain = f"\0{SMTP_AUTH_USER}\0{password}".encode()
        return [
            password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(plain).decode(),
        ]

    password_written_nowhere(
        processes,
        rsyslog,
        tmp_path,
        "clp_smtpmon",
        argv,
        SMTP_AUTH_USER,
        (SMTP_AUTH_PASSWORD, "ismon-Wrong-3c9a71"),
        secrets,
        "authentication refused[535]",
    )
