"""
unbound for the DNS watch's tests: a real resolver serving a private zone
on a free loopback port, over UDP and TCP, from a throwaway configuration
(nothing of /etc/unbound is read), started in the foreground and stopped
by PID (L{tests.servers.ServerProcess}).

    server = start_unbound(tmp_path)
    server.host, server.port           # 127.0.0.1 and a port free for UDP and TCP
    server = start_unbound(tmp_path, tls=certs.valid)
    server.tls_port                    # DNS over TLS too (RFC 7858), that certificate
    verdict = server.ask("www.ismon.test", RecordType.A)              # over UDP
    verdict = server.ask("big.ismon.test", RecordType.TXT, tcp=True)
    with server.stalled():             # SIGSTOP: UDP unanswered, TCP accepted, never answered
        ...

The zone (L{ZONE_DATA}): C{ismon.test} with SOA, NS, MX, A/AAAA for
C{www} (two A records), a CNAME C{alias -> www} (unbound does not follow
it for other types: an A query on C{alias} gets the CNAME only), TXT,
SRV, a PTR for 192.0.2.10, and C{big.ismon.test}, a TXT record too large
for a 512-byte UDP answer: asked without EDNS (as L{ismon.wire.dns} asks)
it comes back truncated (TC) over UDP, whole over TCP.  Every other name,
in the zone or outside it, is NXDOMAIN (unbound never recurses: the root
is a static zone); names under C{refused.test} are REFUSED.

unbound runs as the invoking user (C{username: ""}, no chroot), so root is
not needed.  Without the C{unbound} binary (Debian package C{unbound})
L{start_unbound} raises L{ServerUnavailable}.

The module also holds the blocking clients the tests use to put a query
on the wire (L{udp_exchange}, L{tcp_exchange}): a socket, L{ismon.wire.dns},
and a deadline over the whole exchange.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ismon.wire.dns import (
    DnsQuery,
    DnsStreamReader,
    DnsVerdict,
    Expected,
    RecordType,
    build_query,
    judge,
)
from tests.procs import wait_for_port, wait_until

if TYPE_CHECKING:
    from tests.certs import CertPair

from tests.servers import (
    START_TIMEOUT,
    ServerProcess,
    ServerUnavailable,
    _failed_start,
    _spawn,
    free_ports,
)

__all__ = [
    "BIG_TXT",
    "PTR_ADDRESS",
    "PTR_NAME",
    "REFUSED_ZONE",
    "ZONE",
    "ZONE_DATA",
    "Exchange",
    "Unbound",
    "free_dns_port",
    "start_unbound",
    "tcp_exchange",
    "udp_exchange",
    "unbound_binary",
]

ZONE = "ismon.test"
REFUSED_ZONE = "refused.test"
PTR_ADDRESS = "192.0.2.10"
PTR_NAME = "host.ismon.test"
#: The strings of big.ismon.test's TXT record: 8 x 200 bytes, a 1.6 KiB answer.
BIG_TXT = tuple(letter * 200 for letter in "abcdefgh")

#: The zone's records, as unbound's local-data lines take them.
ZONE_DATA = (
    "ismon.test. 300 IN SOA ns1.ismon.test. hostmaster.ismon.test. 2024010101 3600 600 86400 300",
    "ismon.test. 300 IN NS ns1.ismon.test.",
    "ismon.test. 300 IN MX 10 mail.ismon.test.",
    "ns1.ismon.test. 300 IN A 127.0.0.1",
    "mail.ismon.test. 300 IN A 127.0.0.1",
    "www.ismon.test. 300 IN A 127.0.0.1",
    "www.ismon.test. 300 IN A 127.0.0.2",
    "www.ismon.test. 300 IN AAAA ::1",
    "alias.ismon.test. 300 IN CNAME www.ismon.test.",
    'txt.ismon.test. 300 IN TXT "v=spf1 -all"',
    "_sip._tcp.ismon.test. 300 IN SRV 0 5 5060 sip.ismon.test.",
    "big.ismon.test. 300 IN TXT " + " ".join(f'"{text}"' for text in BIG_TXT),
)

_CONF = """\
# Written by tests/dns_server.py: a throwaway instance, nothing of /etc/unbound.
server:
    interface: {host}
    port: {port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    logfile: ""
    use-syslog: no
    verbosity: 1
    num-threads: 1
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    # No validator: it would want a trust anchor, which needs the network.
    module-config: "iterator"
    minimal-responses: yes
    local-zone: "{zone}." static
{data}
    local-data-ptr: "{ptr_address} {ptr_name}"
    local-zone: "{refused}." refuse
    # Everything else is NXDOMAIN at once: unbound never tries to recurse.
    local-zone: "." static
{tls}remote-control:
    control-enable: no
"""

# DNS over TLS on a second port of the same address (the test CA's certificate).
_TLS_CONF = """\
    interface: {host}@{tls_port}
    tls-port: {tls_port}
    tls-service-key: "{key}"
    tls-service-pem: "{chain}"
"""


def unbound_binary() -> str:
    """
    The unbound program (on PATH, else Debian's /usr/sbin/unbound).

    @raise ServerUnavailable: unbound is not installed.
    """
    binary = shutil.which("unbound") or (
        "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None
    )
    if binary is None:
        raise ServerUnavailable("unbound is not installed (apt-get install unbound)")
    return binary


def free_dns_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP on C{host} right now (a DNS server takes both)."""
    for _ in range(100):
        (port,) = free_ports(1, host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


class Exchange:
    """
    What one blocking exchange brought back: the answer's payload (C{None}
    when none came), why not, and how long it took.
    """

    def __init__(self, payload: bytes | None, why: str, elapsed: float) -> None:
        self.payload = payload
        self.why = why
        self.elapsed = elapsed

    def judge(self, query: DnsQuery, *expect: Expected) -> DnsVerdict:
        """The verdict on the answer (see L{ismon.wire.dns.judge}); there must be one."""
        assert self.payload is not None, f"no answer: {self.why}"
        return judge(query, self.payload, expect)


def udp_exchange(host: str, port: int, query: DnsQuery, timeout: float) -> Exchange:
    """Send C{query} in one datagram; wait up to C{timeout} s for one datagram back."""
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.send(query.udp)
        try:
            payload = sock.recv(65535)
        except TimeoutError:
            return Exchange(None, "no answer within the timeout", time.monotonic() - start)
        except ConnectionRefusedError:
            return Exchange(None, "port unreachable", time.monotonic() - start)
    return Exchange(payload, "", time.monotonic() - start)


def tcp_exchange(host: str, port: int, query: DnsQuery, timeout: float) -> Exchange:
    """
    Connect, send C{query} with its length prefix, read the first message
    with L{DnsStreamReader}: all of it within C{timeout} s.
    """
    start = time.monotonic()
    deadline = start + timeout
    reader = DnsStreamReader()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(query.tcp)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    return Exchange(None, reader.end(), time.monotonic() - start)
                message = reader.feed(data)
                if message is not None:
                    return Exchange(message, "", time.monotonic() - start)
    except TimeoutError:
        what = "a part of the answer" if reader.pending else "no answer"
        return Exchange(None, f"{what} within the timeout", time.monotonic() - start)
    except ConnectionRefusedError:
        return Exchange(None, "connection refused", time.monotonic() - start)
    except ConnectionResetError:
        return Exchange(None, "connection reset", time.monotonic() - start)


class Unbound(ServerProcess):
    """unbound (C{unbound -d}) on C{host}:C{port}, UDP and TCP."""

    name = "unbound"

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        directory: Path,
        log: Path,
        *,
        host: str,
        port: int,
        tls_port: int | None = None,
    ) -> None:
        super().__init__(process, directory, log)
        self.host = host
        self.port = port
        #: DNS over TLS (with C{tls=} at the start), else None.
        self.tls_port = tls_port

    def ask(
        self,
        name: str,
        type: RecordType = RecordType.A,
        *expect: Expected,
        tcp: bool = False,
        timeout: float = 5.0,
    ) -> DnsVerdict:
        """One query to this server, judged (C{expect}: L{ismon.wire.dns.Expected} values)."""
        query = build_query(name, type)
        exchange = (tcp_exchange if tcp else udp_exchange)(self.host, self.port, query, timeout)
        return exchange.judge(query, *expect)


def _answers(host: str, port: int) -> bool:
    query = build_query(f"www.{ZONE}")
    return udp_exchange(host, port, query, 0.5).payload is not None


def start_unbound(
    directory: Path | str, *, host: str = "127.0.0.1", port: int = 0, tls: CertPair | None = None
) -> Unbound:
    """
    Start unbound in the foreground with its configuration, pidfile and
    output in C{directory}; return once it answers over TCP and UDP.

    @param host: the address to listen on (a loopback address).
    @param port: the port (UDP and TCP); 0 picks a free one.
    @param tls: a certificate and key: also serve DNS over TLS, on a free
        port (C{tls_port}).
    """
    binary = unbound_binary()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_dns_port(host)
    tls_port = free_dns_port(host) if tls is not None else None
    tls_conf = (
        ""
        if tls is None
        else _TLS_CONF.format(host=host, tls_port=tls_port, key=tls.key, chain=tls.chain)
    )
    conf = directory / "unbound.conf"
    conf.write_text(
        _CONF.format(
            host=host,
            port=port,
            dir=directory,
            zone=ZONE,
            data="\n".join(f"    local-data: '{line}'" for line in ZONE_DATA),
            ptr_address=PTR_ADDRESS,
            ptr_name=PTR_NAME,
            refused=REFUSED_ZONE,
            tls=tls_conf,
        )
    )
    process, log = _spawn([binary, "-d", "-c", str(conf)], directory, "unbound.out")
    server = Unbound(process, directory, log, host=host, port=port, tls_port=tls_port)
    try:
        wait_for_port(port, host=host, process=process)
        if tls_port is not None:
            wait_for_port(tls_port, host=host, process=process)
        wait_until(lambda: _answers(host, port), START_TIMEOUT, "unbound to answer over UDP")
    except (RuntimeError, AssertionError) as e:
        raise _failed_start(server, RuntimeError(str(e))) from None
    return server
