"""
The HTTP and SMTP probes against real servers on loopback: nginx, aiosmtpd
(plain, STARTTLS, implicit TLS) and OpenSMTPD, with the real reactor.

Each probe also checks that it left no delayed call behind and, where a
server is stalled with SIGSTOP, that the verdict came within the timeout.
"""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
import socket
import time
import uuid
from collections.abc import Callable, Generator
from typing import Any, TypeVar, cast

import pytest
import pytest_twisted  # type: ignore[import-untyped]
from twisted.internet import reactor as _reactor
from twisted.internet.defer import inlineCallbacks

from ismon.core.catalogue import MessageId
from ismon.core.requests import HttpRequest, SmtpRequest, StatusSet, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.http import HttpProbe
from ismon.probes.smtp import SmtpProbe
from tests.certs import SOON_DAYS
from tests.conftest import FreshServers
from tests.servers import Aiosmtpd, Nginx, OpenSmtpd, Rsyslog, free_port, ipv6_loopback

pytestmark = pytest.mark.integration

reactor: Any = _reactor

TIMEOUT = 2.0
STALL_TIMEOUT = 1.0
# How late a timed-out verdict may come after the timeout.
SLACK = 0.5

Probe = HttpProbe | SmtpProbe
F = TypeVar("F", bound=Callable[..., Any])


def inline_callbacks(test: F) -> F:
    """C{pytest_twisted.inlineCallbacks}, typed (pytest-twisted ships no types)."""
    return cast(F, pytest_twisted.inlineCallbacks(test))


@inlineCallbacks
def _probe(probe: Probe) -> Generator[Any, Any, tuple[ProbeResult, float]]:
    """
    Run one probe; return its result and how long it took (monotonic).
    Fails if the probe left a delayed call of its own in the reactor.
    """
    before = set(reactor.getDelayedCalls())
    start = time.monotonic()
    result = yield probe.probe()
    elapsed = time.monotonic() - start
    assert isinstance(result, ProbeResult)
    leftover = [call for call in reactor.getDelayedCalls() if call not in before and call.active()]
    assert leftover == [], f"the probe left delayed calls behind: {leftover}"
    return result, elapsed


def _http(
    port: int,
    *,
    host: str = "127.0.0.1",
    uri: str = "/",
    version: str = "1.1",
    expect: str | None = None,
    tls: TLSSettings | None = None,
    timeout: float = TIMEOUT,
) -> HttpProbe:
    return HttpProbe(
        reactor,
        HttpRequest(
            host=host,
            port=port,
            timeout=timeout,
            version=version,
            uri=uri,
            expect_status=StatusSet.parse(expect) if expect else None,
            tls=tls,
        ),
    )


def _smtp(
    port: int,
    *,
    tls: TLSSettings | None = None,
    starttls: bool = False,
    timeout: float = TIMEOUT,
) -> SmtpProbe:
    return SmtpProbe(
        reactor,
        SmtpRequest(
            host="127.0.0.1",
            port=port,
            timeout=timeout,
            tls=tls,
            starttls=starttls,
            helo_name="probe.test",
        ),
    )


def _assert_ok(result: ProbeResult) -> None:
    assert result.ok, result.describe()
    assert result.message is None


def _assert_failed(result: ProbeResult, message: MessageId, number: int | None = None) -> None:
    assert not result.ok, f"expected message {int(message)}, got ok: {result.describe()}"
    assert result.message is message, result.describe()
    if number is not None:
        assert result.number == number, result.describe()


def _verified(server: Nginx | Aiosmtpd, name: str = "localhost") -> TLSSettings:
    return TLSSettings(servername=name, ca_file=str(server.ca))


# --------------------------------------------------------------------------
# HTTP


@inline_callbacks
def test_http_root_ok(nginx: Nginx) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_http(nginx.port))
    _assert_ok(result)
    assert result.reply.startswith("HTTP/1.1 200")
    assert result.address == f"127.0.0.1:{nginx.port}"
    assert result.cert_days_left is None


@inline_callbacks
def test_http_secret_401_is_status_error(nginx: Nginx) -> Generator[Any, Any, None]:
    """C{-h /secret} on a page that needs authentication: message 83 with 401."""
    result, _ = yield _probe(_http(nginx.port, uri="/secret"))
    _assert_failed(result, MessageId.INVALID_STATUS, 401)
    assert result.phase is Phase.PARSE
    assert "401" in result.reply


@pytest.mark.parametrize(("uri", "status"), [("/missing", 404), ("/error", 500)])
@inline_callbacks
def test_http_error_status_on_uri(nginx: Nginx, uri: str, status: int) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_http(nginx.port, uri=uri))
    _assert_failed(result, MessageId.INVALID_STATUS, status)


@inline_callbacks
def test_http_redirect_is_ok(nginx: Nginx) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_http(nginx.port, uri="/redirect"))
    _assert_ok(result)
    assert " 302 " in result.reply


@inline_callbacks
def test_http_root_404_still_ok(nginx: Nginx) -> Generator[Any, Any, None]:
    """The status is only judged when the URI is not C{/} (docs/failure-rules.md, HTTP rule 4)."""
    result, _ = yield _probe(_http(nginx.port_404, uri="/"))
    _assert_ok(result)
    assert " 404 " in result.reply


@pytest.mark.parametrize(
    ("port_name", "uri", "expect", "ok", "status"),
    [
        ("port", "/missing", "404", True, None),
        ("port", "/secret", "200-399,401", True, None),
        ("port", "/", "200", True, None),
        ("port", "/", "300-399", False, 200),
        ("port_404", "/", "200-399", False, 404),
        ("port", "/redirect", "200", False, 302),
    ],
)
@inline_callbacks
def test_http_expect_status(
    nginx: Nginx, port_name: str, uri: str, expect: str, ok: bool, status: int | None
) -> Generator[Any, Any, None]:
    """With an explicit status set, the code must be in it, even for C{/}."""
    result, _ = yield _probe(_http(getattr(nginx, port_name), uri=uri, expect=expect))
    if ok:
        _assert_ok(result)
    else:
        _assert_failed(result, MessageId.INVALID_STATUS, status)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@inline_callbacks
def test_http_version_sends_host(nginx: Nginx, version: str) -> Generator[Any, Any, None]:
    """Both versions send C{HEAD ... HTTP/1.x} with a Host header."""
    uri = f"/?probe={uuid.uuid4().hex}"
    result, _ = yield _probe(_http(nginx.port, uri=uri, version=version))
    _assert_ok(result)
    line = nginx.wait_for_access(uri.replace("?", r"\?"))
    assert f'"HEAD {uri} HTTP/{version}" 200' in line
    assert f'host="127.0.0.1:{nginx.port}"' in line
    assert 'ua="ismon/' in line


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 on the loopback interface")
@inline_callbacks
def test_http_ipv6(nginx: Nginx) -> Generator[Any, Any, None]:
    if not nginx.ipv6:
        pytest.skip("nginx does not listen on [::1]")
    uri = f"/?v6={uuid.uuid4().hex}"
    result, _ = yield _probe(_http(nginx.port, host="::1", uri=uri))
    _assert_ok(result)
    assert result.address == f"[::1]:{nginx.port}"
    line = nginx.wait_for_access(uri.replace("?", r"\?"))
    assert line.startswith("::1 ")
    assert f'host="[::1]:{nginx.port}"' in line


@inline_callbacks
def test_http_refused() -> Generator[Any, Any, None]:
    """Nothing listens: message 72 with ECONNREFUSED (111)."""
    result, elapsed = yield _probe(_http(free_port()))
    _assert_failed(result, MessageId.CONNECT_ERROR, errno.ECONNREFUSED)
    assert result.number == 111
    assert result.phase is Phase.CONNECT
    assert elapsed < TIMEOUT


@inline_callbacks
def test_http_localhost_name(nginx: Nginx) -> Generator[Any, Any, None]:
    """A name goes through getaddrinfo (in the thread pool) and still works."""
    result, _ = yield _probe(_http(nginx.port, host="localhost"))
    _assert_ok(result)


# --------------------------------------------------------------------------
# HTTPS


@inline_callbacks
def test_https_verified(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_http(nginx_tls.https_ports["valid"], tls=_verified(nginx_tls)))
    _assert_ok(result)
    assert result.reply.startswith("HTTP/1.1 200")
    assert result.cert_days_left is not None and result.cert_days_left > 30


@inline_callbacks
def test_https_verified_by_ip_address(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    """The certificate names 127.0.0.1 as an IP SAN; verifying that name works too."""
    settings = _verified(nginx_tls, name="127.0.0.1")
    result, _ = yield _probe(_http(nginx_tls.https_ports["valid"], tls=settings))
    _assert_ok(result)


@inline_callbacks
def test_https_status_judged(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    port = nginx_tls.https_ports["valid"]
    result, _ = yield _probe(_http(port, uri="/secret", tls=_verified(nginx_tls)))
    _assert_failed(result, MessageId.INVALID_STATUS, 401)


@pytest.mark.parametrize("kind", ["wrong_host", "expired", "self_signed"])
@inline_callbacks
def test_https_untrusted(nginx_tls: Nginx, kind: str) -> Generator[Any, Any, None]:
    """Wrong name, expired, or not signed by the CA: message 91."""
    result, elapsed = yield _probe(_http(nginx_tls.https_ports[kind], tls=_verified(nginx_tls)))
    _assert_failed(result, MessageId.TLS_VERIFY_ERROR)
    assert result.phase is Phase.TLS
    assert result.detail
    assert elapsed < TIMEOUT


@inline_callbacks
def test_https_untrusted_without_ca_file(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    """The system trust store does not know the test CA."""
    settings = TLSSettings(servername="localhost")
    result, _ = yield _probe(_http(nginx_tls.https_ports["valid"], tls=settings))
    _assert_failed(result, MessageId.TLS_VERIFY_ERROR)


@pytest.mark.parametrize("kind", ["self_signed", "wrong_host", "expired"])
@inline_callbacks
def test_https_insecure_accepts_anything(nginx_tls: Nginx, kind: str) -> Generator[Any, Any, None]:
    settings = TLSSettings(servername="localhost", insecure=True)
    result, _ = yield _probe(_http(nginx_tls.https_ports[kind], tls=settings))
    _assert_ok(result)


@inline_callbacks
def test_https_expiring_soon(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    """A certificate that expires in 5 days is still fine; the days are reported."""
    port = nginx_tls.https_ports["expiring_soon"]
    result, _ = yield _probe(_http(port, tls=_verified(nginx_tls)))
    _assert_ok(result)
    assert result.cert_days_left is not None
    assert SOON_DAYS - 1 <= result.cert_days_left <= SOON_DAYS


@inline_callbacks
def test_https_plain_port_is_tls_error(nginx_tls: Nginx) -> Generator[Any, Any, None]:
    """TLS to a plain-HTTP port fails quickly as a TLS error, not a timeout."""
    result, elapsed = yield _probe(_http(nginx_tls.port, tls=_verified(nginx_tls)))
    assert not result.ok
    assert result.message in (MessageId.TLS_HANDSHAKE_ERROR, MessageId.TLS_VERIFY_ERROR)
    assert elapsed < TIMEOUT


# --------------------------------------------------------------------------
# SMTP


@inline_callbacks
def test_smtp_noop_aiosmtpd(aiosmtpd: Aiosmtpd) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_smtp(aiosmtpd.port))
    _assert_ok(result)
    assert result.reply.startswith("250")


@inline_callbacks
def test_smtp_noop_opensmtpd(opensmtpd: OpenSmtpd) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_smtp(opensmtpd.port))
    _assert_ok(result)
    assert result.reply.startswith("250")


@inline_callbacks
def test_smtp_starttls(aiosmtpd_starttls: Aiosmtpd) -> Generator[Any, Any, None]:
    probe = _smtp(aiosmtpd_starttls.port, tls=_verified(aiosmtpd_starttls), starttls=True)
    result, _ = yield _probe(probe)
    _assert_ok(result)
    assert result.cert_days_left is not None and result.cert_days_left > 30


@inline_callbacks
def test_smtp_starttls_untrusted(aiosmtpd_starttls: Aiosmtpd) -> Generator[Any, Any, None]:
    """STARTTLS to a server whose certificate the CA file does not vouch for."""
    assert aiosmtpd_starttls.certs is not None
    settings = TLSSettings(
        servername="localhost", ca_file=str(aiosmtpd_starttls.certs.self_signed.cert)
    )
    result, _ = yield _probe(_smtp(aiosmtpd_starttls.port, tls=settings, starttls=True))
    _assert_failed(result, MessageId.TLS_VERIFY_ERROR)


@inline_callbacks
def test_smtp_starttls_not_offered(
    aiosmtpd: Aiosmtpd, aiosmtpd_starttls: Aiosmtpd
) -> Generator[Any, Any, None]:
    settings = _verified(aiosmtpd_starttls)
    result, _ = yield _probe(_smtp(aiosmtpd.port, tls=settings, starttls=True))
    _assert_failed(result, MessageId.STARTTLS_UNAVAILABLE)


@inline_callbacks
def test_smtp_implicit_tls(aiosmtpd_tls: Aiosmtpd) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_smtp(aiosmtpd_tls.port, tls=_verified(aiosmtpd_tls)))
    _assert_ok(result)
    assert result.cert_days_left is not None


@inline_callbacks
def test_smtp_refused() -> Generator[Any, Any, None]:
    result, _ = yield _probe(_smtp(free_port()))
    _assert_failed(result, MessageId.CONNECT_ERROR, errno.ECONNREFUSED)


@inline_callbacks
def test_smtp_to_http_server_is_error(nginx: Nginx) -> Generator[Any, Any, None]:
    """nginx never greets; the probe ends in a timeout, within the deadline."""
    result, elapsed = yield _probe(_smtp(nginx.port, timeout=STALL_TIMEOUT))
    _assert_failed(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT)
    assert elapsed <= STALL_TIMEOUT + SLACK


# --------------------------------------------------------------------------
# Stalls (SIGSTOP): the kernel accepts, nobody answers.


@inline_callbacks
def test_http_stalled_nginx_times_out(fresh_servers: FreshServers) -> Generator[Any, Any, None]:
    server = fresh_servers.nginx(tls=False)
    ok, _ = yield _probe(_http(server.port, timeout=STALL_TIMEOUT))
    _assert_ok(ok)
    with server.stalled():
        result, elapsed = yield _probe(_http(server.port, timeout=STALL_TIMEOUT))
    _assert_failed(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT)
    assert result.phase is Phase.WAIT
    assert STALL_TIMEOUT - 0.05 <= elapsed <= STALL_TIMEOUT + SLACK
    again, _ = yield _probe(_http(server.port, timeout=STALL_TIMEOUT))
    _assert_ok(again)


@inline_callbacks
def test_https_stalled_nginx_times_out(fresh_servers: FreshServers) -> Generator[Any, Any, None]:
    server = fresh_servers.nginx(tls=True, ipv6=False)
    port = server.https_ports["valid"]
    with server.stalled():
        result, elapsed = yield _probe(_http(port, tls=_verified(server), timeout=STALL_TIMEOUT))
    _assert_failed(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT)
    assert result.phase is Phase.TLS
    assert elapsed <= STALL_TIMEOUT + SLACK
    again, _ = yield _probe(_http(port, tls=_verified(server), timeout=STALL_TIMEOUT))
    _assert_ok(again)


@pytest.mark.parametrize("mode", ["plain", "starttls", "tls"])
@inline_callbacks
def test_smtp_stalled_aiosmtpd_times_out(
    fresh_servers: FreshServers, mode: str
) -> Generator[Any, Any, None]:
    server = fresh_servers.aiosmtpd(mode)
    tls = _verified(server) if mode != "plain" else None

    def probe() -> SmtpProbe:
        return _smtp(server.port, tls=tls, starttls=mode == "starttls", timeout=STALL_TIMEOUT)

    with server.stalled():
        result, elapsed = yield _probe(probe())
    _assert_failed(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT)
    assert STALL_TIMEOUT - 0.05 <= elapsed <= STALL_TIMEOUT + SLACK
    again, _ = yield _probe(probe())
    _assert_ok(again)


@inline_callbacks
def test_smtp_stalled_opensmtpd_times_out(
    fresh_servers: FreshServers,
) -> Generator[Any, Any, None]:
    server = fresh_servers.opensmtpd()
    with server.stalled():
        result, elapsed = yield _probe(_smtp(server.port, timeout=STALL_TIMEOUT))
    _assert_failed(result, MessageId.SELECT_ERROR, errno.ETIMEDOUT)
    assert elapsed <= STALL_TIMEOUT + SLACK
    again, _ = yield _probe(_smtp(server.port, timeout=STALL_TIMEOUT))
    _assert_ok(again)


# --------------------------------------------------------------------------
# The helpers themselves (for the tests that use them later).


def test_rsyslog_receives(rsyslog: Rsyslog) -> None:
    """The private rsyslogd takes syslog datagrams on its socket and writes them out."""
    marker = uuid.uuid4().hex
    rsyslog.send(f"raw {marker}")
    handler = logging.handlers.SysLogHandler(
        address=str(rsyslog.socket), facility=logging.handlers.SysLogHandler.LOG_DAEMON
    )
    try:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, f"clp_httpmon: {marker}", (), None
        )
        handler.emit(record)
    finally:
        handler.close()
    rsyslog.wait_for(rf"^daemon\.info ismon-test\[{os.getpid()}\]: raw {marker}$")
    # UsePIDFromSystem: the tag gets the sender's real PID.
    rsyslog.wait_for(rf"^daemon\.err clp_httpmon\[{os.getpid()}\]: {marker}$")


def test_stalled_server_accepts_but_never_answers(fresh_servers: FreshServers) -> None:
    """What L{ServerProcess.stall} promises: TCP connects, the request is never answered."""
    server = fresh_servers.nginx(tls=False, ipv6=False)
    assert len(server.pids()) >= 2  # master and worker
    with server.stalled():
        with socket.create_connection(("127.0.0.1", server.port), timeout=1) as s:
            s.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):
                s.recv(100)
    family = server.pids()
    server.stop()
    assert not server.running()
    assert [pid for pid in family if os.path.exists(f"/proc/{pid}")] == []
