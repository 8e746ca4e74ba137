"""
Shared pytest fixtures: a test CA and certificates, real servers on free
loopback ports (see L{tests.servers}), and C{processes}, the processes a
test starts (see L{tests.watchproc}).

Servers are module-scoped: one module's tests share them, and a test that
stalls (SIGSTOPs) or stops a server must use L{fresh_servers} instead, which
starts private instances and stops them when the test ends.

A server that cannot run on this machine (not installed, not root, ...)
makes the tests that need it skip with the reason; C{pytest -ra} lists them.
With C{ISMON_REQUIRE_SERVERS=1} (set by C{scripts/test.sh} when it runs as
root) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from tests.certs import TestCerts, make_test_certs
from tests.faketime import FakeClock, find_libfaketime
from tests.procs import ScriptNotInstalled, console_script
from tests.servers import (
    Aiosmtpd,
    Nginx,
    OpenSmtpd,
    Rsyslog,
    ServerProcess,
    ServerUnavailable,
    nginx_binary,
    start_aiosmtpd,
    start_nginx,
    start_opensmtpd,
    start_rsyslog,
)
from tests.watchproc import Processes, processes_of_test

S = TypeVar("S", bound=ServerProcess)
T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """
    Skip the test for want of C{reason}; fail it where every tool must be
    there: scripts/test.sh (as root) installed every server and tool, and
    there a missing one is a broken machine, not a reason to skip.
    """
    if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def _start(start: Callable[[], T]) -> T:
    try:
        return start()
    except ServerUnavailable as e:
        unavailable(f"server unavailable: {e}")


def installed_script(name: str) -> Path:
    """The console script C{name} (L{tests.procs.console_script}); skip the test without it."""
    try:
        return console_script(name)
    except ScriptNotInstalled as e:
        pytest.skip(str(e))


def installed_nginx() -> str:
    """The nginx program; like a server that cannot run, skip the test without it."""
    return _start(nginx_binary)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """
    The processes of this test (watches, commands; output in C{tmp_path}),
    ended by PID at teardown, pass or fail.
    """
    yield from processes_of_test(tmp_path)


@pytest.fixture
def clock(tmp_path: Path) -> Iterator[FakeClock]:
    """
    A fake wall clock for the processes of this test (L{tests.faketime});
    like a server that cannot run, skips the test without libfaketime.
    """
    library = find_libfaketime()
    if library is None:
        reason = "libfaketime is not installed (apt-get install libfaketime)"
        if os.environ.get("ISMON_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{reason} (ISMON_REQUIRE_SERVERS=1)")
        pytest.skip(reason)
    fake = FakeClock(tmp_path / "faketime.rc", library)
    try:
        yield fake
    finally:
        fake.stop_slewing()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCerts:
    """A fresh test CA and server certificates (see L{tests.certs})."""
    return make_test_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Nginx]:
    """
    nginx on 127.0.0.1 (and [::1] when available): C{.port} (/ 200,
    /secret 401, /missing 404, /error 500), C{.port_404} (404 everywhere)
    and C{.https_ports[kind]} for every kind of certificate.
    """
    server = _start(lambda: start_nginx(tmp_path_factory.mktemp("nginx"), certs))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nginx_tls(nginx: Nginx) -> Nginx:
    """The same nginx; its HTTPS ports are in C{.https_ports}, its CA is C{.ca}."""
    return nginx


@pytest.fixture(scope="module")
def aiosmtpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aiosmtpd]:
    """Plain aiosmtpd (C{python -m aiosmtpd}) on 127.0.0.1:C{.port}."""
    server = _start(lambda: start_aiosmtpd(tmp_path_factory.mktemp("aiosmtpd"), "plain"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def aiosmtpd_starttls(
    tmp_path_factory: pytest.TempPathFactory, certs: TestCerts
) -> Iterator[Aiosmtpd]:
    """aiosmtpd offering STARTTLS with C{certs.valid}; verify with C{.ca} as localhost."""
    server = _start(lambda: start_aiosmtpd(tmp_path_factory.mktemp("aiosmtpd"), "starttls", certs))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def aiosmtpd_tls(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Aiosmtpd]:
    """aiosmtpd speaking implicit TLS (port-465 style) with C{certs.valid}."""
    server = _start(lambda: start_aiosmtpd(tmp_path_factory.mktemp("aiosmtpd"), "tls", certs))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def opensmtpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSmtpd]:
    """OpenSMTPD (C{smtpd -d}) on 127.0.0.1:C{.port}; needs root."""
    server = _start(lambda: start_opensmtpd(tmp_path_factory.mktemp("opensmtpd")))
    yield server
    server.stop()


@pytest.fixture
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    """
    A private rsyslogd per test: send to C{.socket} (unix datagram), read
    C{.lines()} / C{.wait_for(regex)} from C{.messages}.
    """
    server = _start(lambda: start_rsyslog(tmp_path_factory.mktemp("rsyslog")))
    yield server
    server.stop()


class FreshServers:
    """
    Starts private servers for one test (to stall, stop or reconfigure
    without disturbing other tests) and stops them all when it ends.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> None:
        self._factory = tmp_path_factory
        self._certs = certs
        self._started: list[ServerProcess] = []

    def _keep(self, server: S) -> S:
        self._started.append(server)
        return server

    def _dir(self, name: str) -> Path:
        return self._factory.mktemp(name)

    def nginx(self, *, tls: bool = True, ipv6: bool | None = None) -> Nginx:
        certs = self._certs if tls else None
        return self._keep(_start(lambda: start_nginx(self._dir("nginx"), certs, ipv6=ipv6)))

    def aiosmtpd(self, mode: str = "plain") -> Aiosmtpd:
        certs = self._certs if mode != "plain" else None
        return self._keep(_start(lambda: start_aiosmtpd(self._dir("aiosmtpd"), mode, certs)))

    def opensmtpd(self) -> OpenSmtpd:
        return self._keep(_start(lambda: start_opensmtpd(self._dir("opensmtpd"))))

    def rsyslog(self, template: str = "ismon") -> Rsyslog:
        return self._keep(_start(lambda: start_rsyslog(self._dir("rsyslog"), template)))

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


@pytest.fixture
def fresh_servers(
    tmp_path_factory: pytest.TempPathFactory, certs: TestCerts
) -> Iterator[FreshServers]:
    """Private, test-scoped servers: C{fresh_servers.nginx()}, C{.aiosmtpd("tls")}, ..."""
    servers = FreshServers(tmp_path_factory, certs)
    yield servers
    servers.stop_all()


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """
    Run the trial test cases first.  Trial spins the global reactor itself
    for each test, which it cannot do once pytest-twisted runs the reactor
    in its greenlet (from the first plain pytest test on).
    """
    from twisted.trial.unittest import SynchronousTestCase

    def is_trial(item: pytest.Item) -> bool:
        cls = getattr(item, "cls", None)
        return cls is not None and issubclass(cls, SynchronousTestCase)

    items.sort(key=lambda item: 0 if is_trial(item) else 1)


# --------------------------------------------------------------------------
# The DNS and TCP watches' servers: unbound (tests/dns_server.py),
# redis-server (tests/redis_server.py) and an SMTP server that offers AUTH
# (tests/smtp_auth_server.py).  Imported where used, so that a run without
# them pays nothing.

from typing import TYPE_CHECKING  # noqa: E402  (added below the rest, for these fixtures)

if TYPE_CHECKING:
    from tests.dns_server import Unbound
    from tests.redis_server import Redis
    from tests.smtp_auth_server import SmtpAuth


@pytest.fixture(scope="module")
def unbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Unbound]:
    """unbound serving the private zone C{ismon.test} on 127.0.0.1:C{.port}, UDP and TCP."""
    from tests.dns_server import start_unbound

    server = _start(lambda: start_unbound(tmp_path_factory.mktemp("unbound")))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """redis-server on 127.0.0.1:C{.port}: C{PING} -> C{+PONG}."""
    from tests.redis_server import start_redis

    server = _start(lambda: start_redis(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


def _smtp_auth(factory: pytest.TempPathFactory, mode: str, certs: TestCerts) -> SmtpAuth:
    from tests.smtp_auth_server import start_smtp_auth

    tls = certs if mode != "plain" else None
    return _start(lambda: start_smtp_auth(factory.mktemp("smtp-auth"), mode, tls))


@pytest.fixture(scope="module")
def smtp_auth(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[SmtpAuth]:
    """SMTP offering AUTH PLAIN and LOGIN in the clear; C{.user}/C{.password} pass, others 535."""
    server = _smtp_auth(tmp_path_factory, "plain", certs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_auth_starttls(
    tmp_path_factory: pytest.TempPathFactory, certs: TestCerts
) -> Iterator[SmtpAuth]:
    """SMTP offering STARTTLS, and AUTH only after it; verify with C{.ca} as localhost."""
    server = _smtp_auth(tmp_path_factory, "starttls", certs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_auth_tls(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[SmtpAuth]:
    """SMTP over implicit TLS (port-465 style) offering AUTH."""
    server = _smtp_auth(tmp_path_factory, "tls", certs)
    yield server
    server.stop()


class FreshDnsTcpServers(FreshServers):
    """L{FreshServers} with the DNS and TCP watches' servers, to stall or stop in one test."""

    def unbound(self) -> Unbound:
        from tests.dns_server import start_unbound

        return self._keep(_start(lambda: start_unbound(self._dir("unbound"))))

    def redis(self) -> Redis:
        from tests.redis_server import start_redis

        return self._keep(_start(lambda: start_redis(self._dir("redis"))))

    def smtp_auth(self, mode: str = "plain") -> SmtpAuth:
        return self._keep(_smtp_auth(self._factory, mode, self._certs))


@pytest.fixture
def fresh_dns_tcp_servers(
    tmp_path_factory: pytest.TempPathFactory, certs: TestCerts
) -> Iterator[FreshDnsTcpServers]:
    """Private, test-scoped C{.unbound()}, C{.redis()}, C{.smtp_auth(mode)}, stopped at its end."""
    servers = FreshDnsTcpServers(tmp_path_factory, certs)
    yield servers
    servers.stop_all()
