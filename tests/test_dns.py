# -*- test-case-name: tests.test_dns -*-
"""
The DNS watch (L{ismon.probes.dns}): its command line, its probe against a
real unbound serving a private zone on loopback (every record type, over
UDP, TCP and TLS, the truncated answer asked again over TCP, NXDOMAIN,
REFUSED, a missing or unexpected record), and real C{clp_dnsmon}
processes: healthy, their status, metrics and record of the last exit, and
their exit within the printed bound once unbound is stopped (SIGSTOP).

The hostile server's misbehaviours through the same probe are in
L{tests.test_hostile_dns}.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted

from ismon.cmdline.options import DnsOptions, ParameterError
from ismon.core.catalogue import MessageId
from ismon.core.requests import DnsRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.dns import DnsProbe
from ismon.wire.dns import reverse_name
from tests.certs import TestCerts
from tests.conftest import FreshDnsTcpServers
from tests.dns_server import BIG_TXT, PTR_ADDRESS, PTR_NAME, REFUSED_ZONE, Unbound, start_unbound
from tests.servers import ServerUnavailable
from tests.test_hostile import Leaks
from tests.test_watch import started, wait_for_probes
from tests.watchproc import PATIENCE, Processes, command, exits_within_bound, watch_argv

TIMEOUT = 5.0


# --------------------------------------------------------------------------
# The command line


def parse(*args: str) -> DnsRequest:
    options = DnsOptions()
    options.parseOptions(["d1", *args])
    assert options.config is not None
    request = options.config.request
    assert isinstance(request, DnsRequest)
    return request


def refusal(*args: str) -> str:
    options = DnsOptions()
    with pytest.raises(ParameterError) as refused:
        options.parseOptions(["d1", *args])
    return refused.value.detail


def test_defaults() -> None:
    request = parse("--query", "www.example.com")
    assert request == DnsRequest(
        host="localhost", port=53, timeout=10, query="www.example.com", record_type="A"
    )
    assert request.target() == "dns://localhost:53 www.example.com A"


def test_every_option() -> None:
    request = parse(
        *("-s", "192.0.2.53", "-n", "5353", "--query", "example.com.", "--type", "mx"),
        *("--expect", "10 mail.example.com", "--expect", "mail2.example.com", "--tcp"),
    )
    assert (request.host, request.port, request.query, request.record_type) == (
        "192.0.2.53",
        5353,
        "example.com.",
        "MX",
    )
    assert request.expect == ("10 mail.example.com", "mail2.example.com")
    assert request.tcp and request.tls is None
    assert request.target() == "dns+tcp://192.0.2.53:5353 example.com. MX"


def test_tls_is_dns_over_tls_on_853() -> None:
    request = parse("--query", "www.example.com", "--tls", "--servername", "dns.example")
    assert request.port == 853
    assert request.tls == TLSSettings(servername="dns.example")
    assert request.target() == "dns+tls://localhost:853 www.example.com A"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "--query must be given: the name to ask for"),
        (("--query", "a b.example"), "--query: 'a b.example' is not a host name"),
        (("--query", "a..example"), "--query: 'a..example' has an empty label"),
        (("--query", "x", "--type", "ANY"), "--type: the record type must be one of A|NS|"),
        (("--query", "x", "--expect", "10.0.0"), "--expect: an expected A value is an IPv4"),
        (("--query", "x", "--type", "MX", "--expect", "ten mail.x"), "--expect: an expected MX"),
        (("--query", "x", "--expect", ""), "--expect must be 1-1024 bytes of printable text"),
        (("--query", "x", "--expect", "a\x1bb"), "--expect must be 1-1024 bytes of printable"),
        (("--query", "x", *["--expect", "10.0.0.1"] * 17), "--expect is given 17 times, at most"),
    ],
)
def test_refusals(args: tuple[str, ...], said: str) -> None:
    assert refusal(*args).startswith(said)


def test_control_commands_need_no_query() -> None:
    options = DnsOptions()
    options.parseOptions(["d1", "--stop", "-r", "20"])
    assert options.config is None and options.control is not None
    assert (options.control.command, options.control.action) == ("clp_dnsmon", "stop")


def test_check_and_a_refusal_as_a_process(processes: Processes) -> None:
    """--check exits 0; a bad command line is one line on stderr and exit 2."""
    good = processes.run([*command("clp_dnsmon"), "d1", "--query", "www.example.com", "--check"])
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")
    bad = processes.run([*command("clp_dnsmon"), "d1", "--query", "www.example.com", "--type", "X"])
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("Invalid parameter in the clp_dnsmon. [ID:d1] --type: ")
    assert "Traceback" not in bad.stderr


# --------------------------------------------------------------------------
# The probe against unbound


@pytest.fixture(scope="module")
def unbound_tls(tmp_path_factory: pytest.TempPathFactory, certs: TestCerts) -> Iterator[Unbound]:
    """unbound serving the zone over UDP, TCP and TLS (DNS over TLS, the test CA)."""
    from tests.dovecot import servers_required

    try:
        server = start_unbound(tmp_path_factory.mktemp("unbound-tls"), tls=certs.valid)
    except ServerUnavailable as e:
        if servers_required():
            raise
        pytest.skip(f"server unavailable: {e}")
    yield server
    server.stop()


async def probe(request: DnsRequest) -> tuple[ProbeResult, float]:
    from twisted.internet import reactor

    leaks = Leaks()
    start = time.monotonic()
    try:
        result = await DnsProbe(reactor, request).probe()
    finally:
        leaks.check()
    return result, time.monotonic() - start


def asking(
    server: Unbound, query: str, record_type: str = "A", *expect: str, **how: object
) -> DnsRequest:
    request = DnsRequest(
        host=server.host,
        port=server.port,
        timeout=TIMEOUT,
        query=query,
        record_type=record_type,
        expect=expect,
    )
    return attrs.evolve(request, **how)


ZONE = [
    ("www.ismon.test", "A", "127.0.0.2", "NOERROR 2 answers: A 127.0.0."),
    ("www.ismon.test", "AAAA", "0:0:0:0:0:0:0:1", "NOERROR 1 answer: AAAA ::1"),
    ("ismon.test", "MX", "mail.ismon.test", "NOERROR 1 answer: MX 10 mail.ismon.test"),
    ("ismon.test", "NS", "NS1.ismon.test.", "NOERROR 1 answer: NS ns1.ismon.test"),
    ("ismon.test", "SOA", "ns1.ismon.test hostmaster.ismon.test", "NOERROR 1 answer: SOA ns1."),
    ("txt.ismon.test", "TXT", "v=spf1 -all", 'NOERROR 1 answer: TXT "v=spf1 -all"'),
    ("_sip._tcp.ismon.test", "SRV", "5060 sip.ismon.test", "NOERROR 1 answer: SRV 0 5 5060"),
    ("alias.ismon.test", "CNAME", "www.ismon.test", "NOERROR 1 answer: CNAME www.ismon.test"),
    (reverse_name(PTR_ADDRESS), "PTR", PTR_NAME, f"NOERROR 1 answer: PTR {PTR_NAME}"),
]


@pytest.mark.parametrize("how", ["udp", "tcp", "tls"])
@pytest.mark.parametrize(("query", "record_type", "value", "reply"), ZONE, ids=[z[1] for z in ZONE])
@pytest_twisted.ensureDeferred
async def test_every_type_passes(
    unbound_tls: Unbound,
    certs: TestCerts,
    how: str,
    query: str,
    record_type: str,
    value: str,
    reply: str,
) -> None:
    """Each record type of the zone, with and without its expected value."""
    extra: dict[str, object] = {"tcp": how == "tcp"}
    if how == "tls":
        assert unbound_tls.tls_port is not None
        extra = {
            "port": unbound_tls.tls_port,
            "tls": TLSSettings(servername="localhost", ca_file=str(certs.ca)),
        }
    for expect in ((), (value,)):
        result, elapsed = await probe(asking(unbound_tls, query, record_type, *expect, **extra))
        assert result.ok, result.describe()
        assert result.reply.startswith(reply), result.reply
        assert elapsed < TIMEOUT
        if how == "tls":
            assert result.cert_days_left is not None


M = MessageId

FAILURES = [
    # An error RCODE: 83 with it.
    ("nothing.ismon.test", "A", (), M.INVALID_STATUS, 3, "RCODE NXDOMAIN (3): nothing.ismon.test"),
    (f"www.{REFUSED_ZONE}", "A", (), M.INVALID_STATUS, 5, "RCODE REFUSED (5): the server refused"),
    # NOERROR without the record or the value: 87.
    ("www.ismon.test", "MX", (), M.NEGATIVE_REPLY, None, "NOERROR without an answer record"),
    ("alias.ismon.test", "A", (), M.NEGATIVE_REPLY, None, "no A record for alias.ismon.test"),
    ("www.ismon.test", "A", ("10.0.0.1",), M.NEGATIVE_REPLY, None, "no expected value (10.0.0.1)"),
]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(
    ("query", "record_type", "expect", "message", "number", "detail"),
    FAILURES,
    ids=[f"{f[0]}-{f[1]}" for f in FAILURES],
)
@pytest_twisted.ensureDeferred
async def test_failures(
    unbound: Unbound,
    tcp: bool,
    query: str,
    record_type: str,
    expect: tuple[str, ...],
    message: MessageId,
    number: int | None,
    detail: str,
) -> None:
    result, elapsed = await probe(asking(unbound, query, record_type, *expect, tcp=tcp))
    assert (result.ok, result.message, result.number, result.phase) == (
        False,
        message,
        number,
        Phase.PARSE,
    ), result.describe()
    assert detail in result.detail, result.detail
    assert elapsed < 1.0


@pytest_twisted.ensureDeferred
async def test_a_truncated_answer_is_asked_again_over_tcp(unbound: Unbound) -> None:
    """big.ismon.test comes back with TC over UDP, whole over TCP: the probe passes."""
    result, elapsed = await probe(asking(unbound, "big.ismon.test", "TXT", "".join(BIG_TXT)))
    assert result.ok, result.describe()
    assert result.reply.startswith('NOERROR 1 answer: TXT "aaaa'), result.reply
    assert elapsed < 1.0


@pytest_twisted.ensureDeferred
async def test_a_closed_port_is_refused_at_once(unbound: Unbound) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for tcp in (False, True):
        request = DnsRequest(host="127.0.0.1", port=port, timeout=TIMEOUT, query="x", tcp=tcp)
        result, elapsed = await probe(request)
        assert (result.message, result.number, result.phase) == (
            M.CONNECT_ERROR,
            errno.ECONNREFUSED,
            Phase.CONNECT,
        ), result.describe()
        assert elapsed < 1.0


@pytest_twisted.ensureDeferred
async def test_tls_with_another_name_is_not_trusted(unbound_tls: Unbound, certs: TestCerts) -> None:
    assert unbound_tls.tls_port is not None
    request = asking(
        unbound_tls,
        "www.ismon.test",
        port=unbound_tls.tls_port,
        tls=TLSSettings(servername="other.example", ca_file=str(certs.ca)),
    )
    result, _ = await probe(request)
    assert (result.message, result.phase) == (M.TLS_VERIFY_ERROR, Phase.TLS), result.describe()


# --------------------------------------------------------------------------
# Real watch processes


@pytest.mark.integration
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_stalled_unbound_ends_the_watch_within_its_bound(
    fresh_dns_tcp_servers: FreshDnsTcpServers, processes: Processes, tmp_path: Path, tcp: bool
) -> None:
    """
    clp_dnsmon on a healthy unbound probes well (status, metrics); once
    unbound is stopped (SIGSTOP) every probe times out (74) and the watch
    exits 1 within the bound it printed, leaving its record (ID.last).
    """
    server = fresh_dns_tcp_servers.unbound()
    state = tmp_path / "state"
    extra = ["--query", "www.ismon.test", "--expect", "127.0.0.1", *(["--tcp"] if tcp else [])]
    watch = processes.start(
        watch_argv("clp_dnsmon", "dns1", server.host, server.port, state, *extra), name="watch"
    )
    bound = watch.detection_bound()
    started(watch, "clp_dnsmon", "dns1")
    current = wait_for_probes(processes, "dns1", state, 2)
    assert current["protocol"] == "dns"
    transport = "+tcp" if tcp else ""
    assert current["target"] == f"dns{transport}://127.0.0.1:{server.port} www.ismon.test A"
    metrics = processes.run([*command("ismon"), "metrics", "--state-dir", str(state)]).stdout
    assert re.search(r'^ismon_probe_success\{watch="dns1",protocol="dns",[^}]*\} 1$', metrics, re.M)
    with server.stalled():
        exits_within_bound(
            watch,
            bound,
            "clp_dnsmon",
            "dns1",
            f"The clp_dnsmon has detected network error(select error[{errno.ETIMEDOUT}]).",
        )
    record = json.loads((state / "dns1.last").read_text())
    assert (record["protocol"], record["exit_code"]) == ("dns", 1), record


@pytest.mark.integration
def test_the_fast_way_stops_a_dns_watch(
    unbound: Unbound, processes: Processes, tmp_path: Path
) -> None:
    """clp_dnsmon ID --stop (and --pause, --continue, --disp) end or steer the watch."""
    state = tmp_path / "state"
    watch = processes.start(
        watch_argv(
            "clp_dnsmon", "dns2", unbound.host, unbound.port, state, "--query", "www.ismon.test"
        ),
        name="watch",
    )
    started(watch, "clp_dnsmon", "dns2")
    wait_for_probes(processes, "dns2", state, 1)
    for action, code in (("disp", 0), ("pause", 0), ("continue", 0), ("stop", 0)):
        done = processes.run(
            [*command("clp_dnsmon"), "dns2", f"--{action}", "--state-dir", str(state)]
        )
        assert done.returncode == code, (action, done.stdout, done.stderr)
    assert watch.wait(PATIENCE) == 0
    output = watch.output()
    assert "The clp_dnsmon is going to stop monitoring. [ID:dns2]" in output
    assert output.rstrip().endswith("The clp_dnsmon will terminate. [ID:dns2]"), output
