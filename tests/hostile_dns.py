"""
A hostile DNS server: real UDP and TCP sockets on 127.0.0.1 that answer
queries wrongly on purpose, one misbehaviour per port (the same port
number for UDP and TCP, as a DNS server has), for the DNS watch's tests
(L{tests.test_hostile_dns}, later the DNS probe's).

It runs in a process of its own, so that a stall or a trickle never blocks
the reactor of the probe under test::

    python -m tests.hostile_dns [--behaviour NAME ...] [--list]

It prints one JSON line, C{{"ports": {NAME: PORT, ...}}}, then serves until
its standard input is closed (so it dies with the test run that started
it).  L{HostileDnsServer} starts it and learns the ports.

Each misbehaviour says what a query gets over UDP (datagrams, maybe late,
maybe none) and over TCP (after the 2-byte length and the query are read:
an answer with its length prefix, a stall, a trickle, a close...).  The
well-formed answers are made with Twisted Names from the query received,
so they echo its ID and question unless the misbehaviour is to get those
wrong; the malformed ones are made by hand.  The healthy answer is
C{A 127.0.0.1}.

Plain blocking sockets and one thread per TCP connection (and per late
datagram) keep every misbehaviour a few lines.  L{tests.hostile} loads
every C{tests/hostile_*.py}, this module too: importing it registers
nothing there, and Twisted is imported only when an answer is made.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.hostile import CONNECTION_LIFETIME, Conn, Gone, HostileServer

__all__ = ["DNS_BEHAVIOURS", "LATE", "HostileDnsServer", "main"]

HOST = "127.0.0.1"
#: Seconds a late answer comes after its query: past any test deadline.
LATE = 3.0
#: Seconds between the bytes of a trickled answer.
TRICKLE = 1.0

# A UDP reply: (seconds to wait, datagram) for each datagram sent back.
Datagrams = list[tuple[float, bytes]]


@dataclass(frozen=True)
class Misbehaviour:
    """What a query gets: C{udp(query)}, and C{tcp(conn, query)} once it was read."""

    udp: Callable[[bytes], Datagrams]
    tcp: Callable[[Conn, bytes], None]
    doc: str


DNS_BEHAVIOURS: dict[str, Misbehaviour] = {}


# --------------------------------------------------------------------------
# Answers


def _twisted() -> Any:
    """Twisted Names, imported when the first answer is made (not by tests.hostile)."""
    from twisted.names import dns

    return dns


def answer(
    query: bytes,
    *records: Any,
    rcode: int = 0,
    qr: int = 1,
    tc: int = 0,
    id_delta: int = 0,
    name: bytes | None = None,
    qtype: int | None = None,
    qclass: int | None = None,
    question: bool = True,
) -> bytes:
    """
    The answer to C{query} (a Twisted record payload per answer record,
    owned by the asked name), with what the keywords change.
    """
    dns = _twisted()
    asked = dns.Message()
    asked.fromStr(query)
    q = asked.queries[0]
    message = dns.Message(
        id=(asked.id + id_delta) & 0xFFFF,
        answer=qr,
        recDes=asked.recDes,
        recAv=1,
        rCode=rcode,
        trunc=tc,
        # Twisted would cut a longer message at 512 bytes.
        maxSize=65535,
    )
    if question:
        message.queries = [
            dns.Query(
                q.name.name if name is None else name,
                q.type if qtype is None else qtype,
                q.cls if qclass is None else qclass,
            )
        ]
    message.answers = [dns.RRHeader(q.name.name, r.TYPE, dns.IN, 300, r) for r in records]
    return message.toStr()


def ok(query: bytes) -> bytes:
    """The healthy answer: C{A 127.0.0.1}."""
    return answer(query, _twisted().Record_A("127.0.0.1"))


def framed(payload: bytes) -> bytes:
    """A DNS-over-TCP message: its 2-byte length, then it."""
    return struct.pack("!H", len(payload)) + payload


def read_query(c: Conn) -> bytes:
    """Read one length-prefixed query from a TCP connection."""
    while len(c.buffer) < 2:
        c.buffer += c.recv_some()
    (length,) = struct.unpack("!H", c.buffer[:2])
    while len(c.buffer) < 2 + length:
        c.buffer += c.recv_some()
    query, c.buffer = c.buffer[2 : 2 + length], c.buffer[2 + length :]
    return query


# --------------------------------------------------------------------------
# The misbehaviours


def _register(
    name: str, udp: Callable[[bytes], Datagrams], tcp: Callable[[Conn, bytes], None], doc: str
) -> None:
    DNS_BEHAVIOURS[name] = Misbehaviour(udp, tcp, doc)


def both(name: str, make: Callable[[bytes], bytes], doc: str) -> None:
    """The same answer, C{make(query)}, over UDP and over TCP (then the connection stays open)."""

    def tcp(c: Conn, query: bytes) -> None:
        c.send(framed(make(query)))
        c.silence()

    _register(name, lambda query: [(0.0, make(query))], tcp, doc)


def _silent_udp(query: bytes) -> Datagrams:
    return []


def _tc(query: bytes) -> Datagrams:
    return [(0.0, answer(query, tc=1))]


def _rcode(code: int) -> Callable[[bytes], bytes]:
    return lambda query: answer(query, rcode=code)


def _records(*records: Callable[[], Any]) -> Callable[[bytes], bytes]:
    return lambda query: answer(query, *(make() for make in records))


def _a(address: str) -> Callable[[], Any]:
    return lambda: _twisted().Record_A(address)


both("dns_ok", ok, "The healthy answer, A 127.0.0.1 (the control).")
both("dns_nxdomain", _rcode(3), "NXDOMAIN.")
both("dns_servfail", _rcode(2), "SERVFAIL.")
both("dns_refused", _rcode(5), "REFUSED.")
both("dns_notimp", _rcode(4), "NOTIMP.")
both("dns_yxdomain", _rcode(6), "YXDOMAIN (6), an RCODE a query never gets.")
both(
    "dns_formerr",
    lambda query: answer(query, rcode=1, question=False),
    "FORMERR without the question, as servers send it.",
)
both("dns_wrong_id", lambda query: answer(query, id_delta=1, rcode=0), "An answer with another ID.")
both(
    "dns_wrong_name",
    lambda query: answer(query, name=b"www.other.test"),
    "The question of another name.",
)
both(
    "dns_wrong_type", lambda query: answer(query, qtype=28), "The question of another type (AAAA)."
)
both(
    "dns_wrong_class", lambda query: answer(query, qclass=3), "The question of another class (CH)."
)
both(
    "dns_no_qr",
    lambda query: answer(query, qr=0),
    "The QR bit clear: a query, not an answer (a reflected query).",
)
both("dns_empty", lambda query: answer(query), "NOERROR without an answer record (NODATA).")
both(
    "dns_other_type",
    _records(lambda: _twisted().Record_TXT(b"not an address")),
    "NOERROR with a TXT record only.",
)
both(
    "dns_cname_only",
    _records(lambda: _twisted().Record_CNAME(b"elsewhere.test")),
    "NOERROR with a CNAME only, its target's record missing.",
)
both(
    "dns_unexpected",
    _records(_a("192.0.2.99")),
    "A 192.0.2.99: a good answer, not the expected value.",
)


def _garbage(query: bytes) -> bytes:
    """200 bytes of noise (the same each time), the query's ID in front."""
    return query[:2] + random.Random(7).randbytes(198)


both("dns_garbage", _garbage, "Noise that is no DNS message, the ID in front.")
both("dns_short", lambda query: ok(query)[:5], "The first 5 bytes of an answer.")
both(
    "dns_trailing_junk", lambda query: ok(query) + b"junk", "An answer with 4 more bytes after it."
)


def _pointer_loop(query: bytes) -> bytes:
    """An answer whose record's owner is a compression pointer to itself."""
    head = bytearray(answer(query))
    head[6:8] = struct.pack("!H", 1)  # ANCOUNT 1
    at = len(head)
    record = (
        struct.pack("!H", 0xC000 | at) + struct.pack("!HHIH", 1, 1, 300, 4) + b"\x7f\x00\x00\x01"
    )
    return bytes(head) + record


both("dns_pointer_loop", _pointer_loop, "A compression pointer that points at itself.")


def _pointer_chain(query: bytes) -> bytes:
    """Two names that point at each other."""
    head = bytearray(answer(query))
    head[6:8] = struct.pack("!H", 1)
    at = len(head)
    # The owner: a label, then a pointer to the start of the owner.
    owner = b"\x01a" + struct.pack("!H", 0xC000 | at)
    record = owner + struct.pack("!HHIH", 1, 1, 300, 4) + b"\x7f\x00\x00\x01"
    return bytes(head) + record


both("dns_pointer_cycle", _pointer_chain, "A name whose pointer leads back into itself.")


def _big(query: bytes) -> bytes:
    """A good 60 KiB answer: 4000 A records (the healthy one first)."""
    dns = _twisted()
    records = [dns.Record_A("127.0.0.1")]
    records += [dns.Record_A(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(1, 4000)]
    return answer(query, *records)


def _cut_short(query: bytes) -> bytes:
    """A long answer as Twisted Names sends it over UDP: cut at 512 bytes, counts kept."""
    dns = _twisted()
    asked = dns.Message()
    asked.fromStr(query)
    message = dns.Message(id=asked.id, answer=1, recDes=asked.recDes, recAv=1)
    message.queries = asked.queries
    name = asked.queries[0].name.name
    message.answers = [
        dns.RRHeader(name, dns.A, dns.IN, 300, dns.Record_A(f"10.0.0.{i}")) for i in range(100)
    ]
    return message.toStr()


def _tcp_answer(make: Callable[[bytes], bytes]) -> Callable[[Conn, bytes], None]:
    def serve(c: Conn, query: bytes) -> None:
        c.send(framed(make(query)))
        c.silence()

    return serve


def _tcp_stall(c: Conn, query: bytes) -> None:
    c.stall()


def _tcp_trickle(c: Conn, query: bytes) -> None:
    c.trickle(framed(ok(query)), TRICKLE)
    c.silence()


def _tcp_segments(c: Conn, query: bytes) -> None:
    c.trickle(framed(ok(query)), 0.005)
    c.silence()


def _tcp_close(c: Conn, query: bytes) -> None:
    c.close()


def _tcp_reset(c: Conn, query: bytes) -> None:
    c.reset()


def _tcp_length_lie(c: Conn, query: bytes) -> None:
    payload = ok(query)
    c.send(struct.pack("!H", len(payload) + 100) + payload)
    c.close()


def _tcp_late(c: Conn, query: bytes) -> None:
    time.sleep(LATE)
    c.send(framed(ok(query)))
    c.silence()


_register(
    "dns_tc_then_tcp_ok",
    _tc,
    _tcp_answer(ok),
    "UDP: truncated (TC), empty; TCP: the healthy answer.",
)
_register(
    "dns_tc_then_tcp_stall",
    _tc,
    _tcp_stall,
    "UDP: truncated (TC); TCP: the query read, never answered.",
)
_register(
    "dns_tc_cut_short",
    lambda query: [(0.0, _cut_short(query))],
    _tcp_answer(ok),
    "UDP: 512 bytes of a long answer, cut inside a record, TC set (as Twisted Names"
    " cuts); TCP: the healthy answer.",
)
_register(
    "dns_tc_over_tcp",
    _tc,
    _tcp_answer(lambda query: answer(query, tc=1)),
    "Truncated (TC) over UDP and over TCP too.",
)
_register(
    "dns_big",
    _tc,
    _tcp_answer(_big),
    "UDP: truncated (TC); TCP: a good 60 KiB answer of 4000 records.",
)
_register(
    "dns_trickle",
    _silent_udp,
    _tcp_trickle,
    "UDP: silence; TCP: the healthy answer one byte a second.",
)
_register(
    "dns_tcp_segments",
    lambda query: [(0.0, ok(query))],
    _tcp_segments,
    "The healthy answer; over TCP in 1-byte writes 5 ms apart (within a deadline).",
)
_register(
    "dns_late",
    lambda query: [(LATE, ok(query))],
    _tcp_late,
    f"The healthy answer, {LATE:g} s late: past the deadline.",
)
_register("dns_silent", _silent_udp, lambda c, query: c.silence(), "Never an answer.")
_register(
    "dns_tcp_close", _silent_udp, _tcp_close, "UDP: silence; TCP: the query read, a clean close."
)
_register("dns_tcp_reset", _silent_udp, _tcp_reset, "UDP: silence; TCP: the query read, a RST.")
_register(
    "dns_tcp_length_lie",
    lambda query: [(0.0, ok(query))],
    _tcp_length_lie,
    "TCP: a length 100 bytes longer than the answer that follows, then a close.",
)


# --------------------------------------------------------------------------
# Serving


def _udp_loop(name: str, sock: socket.socket) -> None:
    while True:
        try:
            query, peer = sock.recvfrom(65535)
        except OSError:
            return
        try:
            datagrams = DNS_BEHAVIOURS[name].udp(query)
        except Exception:
            print(f"hostile_dns: behaviour {name} (UDP) raised:", file=sys.stderr)
            traceback.print_exc()
            continue
        for delay, payload in datagrams:
            if delay:
                threading.Timer(delay, _send_to, (sock, payload, peer)).start()
            else:
                _send_to(sock, payload, peer)


def _send_to(sock: socket.socket, payload: bytes, peer: Any) -> None:
    try:
        sock.sendto(payload, peer)
    except OSError:
        pass  # the client went away


def _serve_tcp(name: str, sock: socket.socket) -> None:
    conn = Conn(sock, Path("."))
    try:
        sock.settimeout(CONNECTION_LIFETIME)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        DNS_BEHAVIOURS[name].tcp(conn, read_query(conn))
    except (Gone, OSError):
        pass  # the client gave up or closed: expected
    except Exception:
        print(f"hostile_dns: behaviour {name} (TCP) raised:", file=sys.stderr)
        traceback.print_exc()
    finally:
        try:
            conn.sock.close()
        except OSError:
            pass


def _tcp_loop(name: str, listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve_tcp, args=(name, sock), daemon=True).start()


def _bind_pair() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on one free port."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        try:
            tcp = socket.create_server((HOST, udp.getsockname()[1]), backlog=128)
        except OSError:
            udp.close()
            continue
        return udp, tcp
    raise RuntimeError("no port free for both UDP and TCP")


_KEEP: list[socket.socket] = []


def serve(names: Sequence[str]) -> dict[str, int]:
    """Start serving C{names}; return their ports.  Threads are daemons."""
    ports: dict[str, int] = {}
    for name in names:
        udp, tcp = _bind_pair()
        _KEEP.extend((udp, tcp))
        threading.Thread(target=_udp_loop, args=(name, udp), daemon=True).start()
        threading.Thread(target=_tcp_loop, args=(name, tcp), daemon=True).start()
        ports[name] = udp.getsockname()[1]
    return ports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile_dns", description=__doc__)
    parser.add_argument(
        "--behaviour",
        action="append",
        choices=sorted(DNS_BEHAVIOURS),
        metavar="NAME",
        help="serve this misbehaviour (repeatable; default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list the misbehaviours and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(f"{name}: {b.doc}" for name, b in DNS_BEHAVIOURS.items()))
        return 0
    ports = serve(args.behaviour or list(DNS_BEHAVIOURS))
    print(json.dumps({"ports": ports}), flush=True)
    # Serve until whoever started us closes our stdin (or dies).
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    os._exit(0)


# --------------------------------------------------------------------------
# The test side


class HostileDnsServer(HostileServer):
    """
    Start L{main} in a child process and learn its ports (the same number
    for UDP and TCP).  Use as a context manager or call L{stop}.
    """

    def __init__(self, names: Sequence[str] | None = None) -> None:
        root = Path(__file__).resolve().parent.parent
        command = [sys.executable, "-m", "tests.hostile_dns"]
        for name in names or []:
            command += ["--behaviour", name]
        self.process = subprocess.Popen(
            command,
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError("the hostile DNS server did not start")
        self.ports: dict[str, int] = json.loads(line)["ports"]


if __name__ == "__main__":
    # The imported module's main, as tests.hostile does: one DNS_BEHAVIOURS.
    from tests import hostile_dns

    sys.exit(hostile_dns.main())
