"""
The real servers the DNS and TCP watches (and SMTP login) will be tested
against, each shown to work with a plain client, and to stall under SIGSTOP:
unbound with its private zone (L{tests.dns_server}), over UDP and TCP,
through L{ismon.wire.dns}; redis-server (L{tests.redis_server}) through a
socket and L{ismon.wire.tcp}; and the SMTP server offering AUTH
(L{tests.smtp_auth_server}) through the standard library's smtplib.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

import pytest

from ismon.wire.dns import Outcome, RecordType, build_query, parse_expected, reverse_name
from ismon.wire.tcp import ExpectMatcher, compile_expect, unescape_send
from tests.conftest import FreshDnsTcpServers
from tests.dns_server import (
    BIG_TXT,
    PTR_ADDRESS,
    PTR_NAME,
    REFUSED_ZONE,
    Unbound,
    tcp_exchange,
    udp_exchange,
)
from tests.redis_server import Redis
from tests.smtp_auth_server import SmtpAuth

pytestmark = pytest.mark.integration

# What a stalled server is given to answer: nothing comes, whatever the wait.
STALL_WAIT = 1.0


# --------------------------------------------------------------------------
# unbound


ZONE_ANSWERS = [
    ("www.ismon.test", "A", "127.0.0.2", ("A 127.0.0.1", "A 127.0.0.2")),
    ("www.ismon.test", "AAAA", "0:0:0:0:0:0:0:1", ("AAAA ::1",)),
    ("ismon.test", "MX", "10 mail.ismon.test.", ("MX 10 mail.ismon.test",)),
    ("ismon.test", "NS", "NS1.ismon.test", ("NS ns1.ismon.test",)),
    (
        "ismon.test",
        "SOA",
        "ns1.ismon.test hostmaster.ismon.test 2024010101",
        ("SOA ns1.ismon.test hostmaster.ismon.test 2024010101 3600 600 86400 300",),
    ),
    ("txt.ismon.test", "TXT", "v=spf1 -all", ('TXT "v=spf1 -all"',)),
    ("_sip._tcp.ismon.test", "SRV", "5060 sip.ismon.test", ("SRV 0 5 5060 sip.ismon.test",)),
    ("alias.ismon.test", "CNAME", "www.ismon.test", ("CNAME www.ismon.test",)),
    (reverse_name(PTR_ADDRESS), "PTR", PTR_NAME, (f"PTR {PTR_NAME}",)),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "type", "value", "records"), ZONE_ANSWERS, ids=[f"{a[1]}" for a in ZONE_ANSWERS]
)
def test_unbound_answers_the_zone(
    unbound: Unbound, tcp: bool, name: str, type: str, value: str, records: tuple[str, ...]
) -> None:
    rtype = RecordType.parse(type)
    verdict = unbound.ask(name, rtype, parse_expected(rtype, value), tcp=tcp)
    assert verdict.outcome is Outcome.OK, verdict
    assert sorted(verdict.records) == sorted(records)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("name", "type", "outcome"),
    [
        ("nothing.ismon.test", "A", Outcome.NXDOMAIN),
        ("example.com", "A", Outcome.NXDOMAIN),
        ("www.ismon.test", "MX", Outcome.NO_ANSWER),
        (f"www.{REFUSED_ZONE}", "A", Outcome.REFUSED),
        # unbound does not follow a local CNAME: the answer holds it alone.
        ("alias.ismon.test", "A", Outcome.NO_RECORD_OF_TYPE),
    ],
)
def test_unbound_failures(
    unbound: Unbound, tcp: bool, name: str, type: str, outcome: Outcome
) -> None:
    assert unbound.ask(name, RecordType.parse(type), tcp=tcp).outcome is outcome


def test_unbound_expected_value_missing(unbound: Unbound) -> None:
    verdict = unbound.ask("www.ismon.test", RecordType.A, parse_expected(RecordType.A, "10.0.0.1"))
    assert verdict.outcome is Outcome.NOT_EXPECTED


def test_unbound_truncates_a_big_answer_over_udp_and_not_over_tcp(unbound: Unbound) -> None:
    """The TC bit, then the same query over TCP: what the DNS probe will do."""
    query = build_query("big.ismon.test", RecordType.TXT)
    udp = udp_exchange(unbound.host, unbound.port, query, 5.0).judge(query)
    assert udp.outcome is Outcome.TRUNCATED
    assert udp.text == "NOERROR TC 0 answers"
    tcp = tcp_exchange(unbound.host, unbound.port, query, 5.0).judge(
        query, parse_expected(RecordType.TXT, "".join(BIG_TXT))
    )
    assert tcp.outcome is Outcome.OK


def test_unbound_stalls_and_resumes(fresh_dns_tcp_servers: FreshDnsTcpServers) -> None:
    server: Unbound = fresh_dns_tcp_servers.unbound()
    query = build_query("www.ismon.test")
    with server.stalled():
        udp = udp_exchange(server.host, server.port, query, STALL_WAIT)
        tcp = tcp_exchange(server.host, server.port, query, STALL_WAIT)
    assert (udp.payload, udp.why) == (None, "no answer within the timeout")
    # The kernel still accepts the connection: nobody answers on it.
    assert (tcp.payload, tcp.why) == (None, "no answer within the timeout")
    assert udp.elapsed >= STALL_WAIT - 0.05 and tcp.elapsed >= STALL_WAIT - 0.05
    assert server.ask("www.ismon.test").ok


# --------------------------------------------------------------------------
# redis-server


def _send_expect(host: str, port: int, send: str, expect: str, timeout: float) -> str:
    """The TCP watch's exchange by hand: connect, send, read until the matcher decides."""
    matcher = ExpectMatcher(compile_expect(expect))
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(unescape_send(send))
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return f"timeout: {matcher.describe()}"
            verdict = matcher.feed(data) if data else matcher.end()
            if verdict is not None:
                return verdict.reason


def test_redis_ping(redis: Redis) -> None:
    assert redis.ping() == b"+PONG\r\n"
    reason = _send_expect(redis.host, redis.port, r"PING\r\n", r"\+PONG", 5.0)
    assert reason == 'matched "+PONG" at byte 0'


def test_redis_other_answers_do_not_match(redis: Redis) -> None:
    reason = _send_expect(redis.host, redis.port, r"ECHO hello\r\n", r"\+PONG", 1.0)
    assert reason == 'timeout: no match in the 11 bytes received: "$5\\r\\nhello\\r\\n"'


def test_redis_stalls_and_resumes(fresh_dns_tcp_servers: FreshDnsTcpServers) -> None:
    server: Redis = fresh_dns_tcp_servers.redis()
    with server.stalled():
        start = time.monotonic()
        reason = _send_expect(server.host, server.port, r"PING\r\n", r"\+PONG", STALL_WAIT)
        assert time.monotonic() - start >= STALL_WAIT - 0.05
    assert reason == "timeout: nothing received"
    assert server.ping() == b"+PONG\r\n"


# --------------------------------------------------------------------------
# SMTP with AUTH


def _client(server: SmtpAuth) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=str(server.ca)) if server.mode != "plain" else None
    client: smtplib.SMTP
    if server.mode == "tls":
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=10, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=10)
    client.ehlo("probe.test")
    if server.mode == "starttls":
        assert not client.has_extn("auth"), "AUTH must wait for STARTTLS"
        client.starttls(context=context)
        client.ehlo("probe.test")
    return client


def _login(server: SmtpAuth, mechanism: str, password: str) -> tuple[int, bytes]:
    client = _client(server)
    try:
        assert set(client.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        client.user, client.password = server.user, password
        method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        try:
            return client.auth(mechanism, method, initial_response_ok=mechanism == "PLAIN")
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error
    finally:
        client.quit()


@pytest.fixture(params=["plain", "starttls", "tls"])
def any_smtp_auth(request: pytest.FixtureRequest) -> SmtpAuth:
    server: SmtpAuth = request.getfixturevalue(
        {"plain": "smtp_auth", "starttls": "smtp_auth_starttls", "tls": "smtp_auth_tls"}[
            request.param
        ]
    )
    return server


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_accepts_its_login(any_smtp_auth: SmtpAuth, mechanism: str) -> None:
    code, _ = _login(any_smtp_auth, mechanism, any_smtp_auth.password)
    assert code == 235


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtp_auth_refuses_a_wrong_password(any_smtp_auth: SmtpAuth, mechanism: str) -> None:
    code, text = _login(any_smtp_auth, mechanism, "not-the-password")
    assert code == 535
    assert b"Authentication credentials invalid" in text


def test_smtp_auth_stalls_and_resumes(fresh_dns_tcp_servers: FreshDnsTcpServers) -> None:
    server: SmtpAuth = fresh_dns_tcp_servers.smtp_auth("plain")
    with server.stalled():
        start = time.monotonic()
        # The kernel accepts the connection; the greeting never comes.
        with socket.create_connection((server.host, server.port), timeout=STALL_WAIT) as sock:
            with pytest.raises(TimeoutError):
                sock.recv(512)
        assert time.monotonic() - start >= STALL_WAIT - 0.05
    assert _login(server, "PLAIN", server.password)[0] == 235
