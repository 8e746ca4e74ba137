"""
A hostile server: a real TCP server on 127.0.0.1 that misbehaves on purpose,
one misbehaviour per listening port, for the probe tests in
L{tests.test_hostile}.

It runs in a process of its own, so that a server which stalls, trickles or
floods can never block the reactor that runs the probe under test::

    python -m tests.hostile [--behaviour NAME ...] [--port N] [--certdir DIR]

It prints one JSON line, C{{"ports": {NAME: PORT, ...}, "certdir": DIR}},
then serves until its standard input is closed (so it dies with the test
run that started it).  C{--port} (only with a single C{--behaviour}) picks
the port; the default 0 lets the kernel choose.

Plain blocking sockets and one thread per connection keep every behaviour a
few lines of straight-line code.  Connections a behaviour cannot finish
(the probe gave up and closed) end with an C{OSError} that is ignored.

The certificates the TLS behaviours need (a test CA and a good certificate
for C{localhost}/127.0.0.1, plus wrong-hostname, expired and self-signed
ones) are those of L{tests.certs}; L{make_certs} writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

__all__ = ["BEHAVIOURS", "CERT_NAMES", "HostileServer", "main", "make_certs"]

HOST = "127.0.0.1"
# Every connection is given up after this long, whatever the behaviour.
CONNECTION_LIFETIME = 30.0
MIB = 1024 * 1024


# --------------------------------------------------------------------------
# Certificates


CERT_NAMES = ("good", "wrong_host", "expired", "self_signed")


def make_certs(directory: Path) -> dict[str, Path]:
    """
    Write C{ca.pem} and, for each of L{CERT_NAMES}, C{NAME.pem} (certificate)
    and C{NAME.key} into C{directory}; reuse them when already there.

    They are those of L{tests.certs.make_test_certs}: C{good} (its C{valid}):
    signed by the CA, for localhost, 127.0.0.1 and ::1.  C{wrong_host}:
    signed by the CA, for C{wrong.example} only.  C{expired}: signed by the
    CA, for localhost, expired yesterday.  C{self_signed}: for localhost,
    signed by itself.  (The other files it writes are not used here.)

    @return: C{"ca"} and each name mapped to its certificate file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"ca": directory / "ca.pem"} | {name: directory / f"{name}.pem" for name in CERT_NAMES}
    if all(p.exists() for p in paths.values()):
        return paths

    from tests.certs import make_test_certs

    certs = make_test_certs(directory)
    made = {
        "good": certs.valid,
        "wrong_host": certs.wrong_host,
        "expired": certs.expired,
        "self_signed": certs.self_signed,
    }
    for name in CERT_NAMES:
        made[name].key.replace(directory / f"{name}.key")
        made[name].cert.replace(paths[name])
    return paths


# --------------------------------------------------------------------------
# One connection


class Gone(Exception):
    """The client closed the connection."""


class Conn:
    """A server-side connection with the few moves the behaviours need."""

    def __init__(self, sock: socket.socket, certdir: Path) -> None:
        self.sock = sock
        self.certdir = certdir
        self.buffer = b""

    def recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise Gone()
        return data

    def recv_until(self, marker: bytes, limit: int = 1 << 16) -> bytes:
        """Read until C{marker}; return what came before it (consumed)."""
        while marker not in self.buffer:
            if len(self.buffer) > limit:
                raise Gone()
            self.buffer += self.recv_some()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_request(self) -> bytes:
        """Read an HTTP request head, so that closing later sends FIN, not RST."""
        return self.recv_until(b"\r\n\r\n")

    def readline(self) -> bytes:
        return self.recv_until(b"\n").rstrip(b"\r")

    def read_tls_record(self) -> bytes:
        """Read one whole TLS record (the ClientHello), header included."""
        while len(self.buffer) < 5:
            self.buffer += self.recv_some()
        (length,) = struct.unpack("!H", self.buffer[3:5])
        while len(self.buffer) < 5 + length:
            self.buffer += self.recv_some()
        record, self.buffer = self.buffer[: 5 + length], self.buffer[5 + length :]
        return record

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def trickle(self, data: bytes, delay: float, step: int = 1) -> None:
        """Send C{data} C{step} bytes at a time, C{delay} seconds apart."""
        for i in range(0, len(data), step):
            if i:
                time.sleep(delay)
            self.sock.sendall(data[i : i + step])

    def flood(self, prefix: bytes, unit: bytes, total: int) -> int:
        """Send C{prefix}, then C{unit} repeated up to C{total} bytes; return bytes sent."""
        self.sock.sendall(prefix)
        sent = len(prefix)
        chunk = unit * max(1, 65536 // len(unit))
        while sent < total:
            self.sock.sendall(chunk)
            sent += len(chunk)
        return sent

    def silence(self) -> None:
        """Say nothing; swallow whatever arrives until the client goes."""
        while True:
            self.recv_some()

    def stall(self) -> None:
        """Neither read nor write until the client goes (or our lifetime ends)."""
        deadline = time.monotonic() + CONNECTION_LIFETIME
        while time.monotonic() < deadline:
            # Readable with nothing to read means the client closed.
            readable, _, _ = select.select([self.sock], [], [], 0.5)
            if readable:
                try:
                    if not self.sock.recv(1, socket.MSG_PEEK):
                        return
                except OSError:
                    return

    def reset(self) -> None:
        """Close with SO_LINGER 0: the client sees a RST (ECONNRESET)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """A clean close (FIN): the client reads end of file."""
        self.sock.close()

    def start_tls(self, cert: str = "good") -> None:
        """Become the TLS server end of the connection with certificate C{cert}."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certdir / f"{cert}.pem", self.certdir / f"{cert}.key")
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.buffer = b""


# --------------------------------------------------------------------------
# The misbehaviours

Behaviour = Callable[[Conn], None]
BEHAVIOURS: dict[str, Behaviour] = {}
# Ports that are not served by a behaviour: "refused" (bound, never
# listening) and "backlog_full" (listening, never accepting, queue full).
SPECIAL = ("refused", "backlog_full")


def behaviour(name: str) -> Callable[[Behaviour], Behaviour]:
    def register(function: Behaviour) -> Behaviour:
        BEHAVIOURS[name] = function
        return function

    return register


OK_HEAD = b"HTTP/1.1 200 OK\r\nServer: hostile\r\nContent-Length: 0\r\n\r\n"


def _answer(status: bytes) -> Behaviour:
    def serve(c: Conn) -> None:
        c.read_request()
        c.send(b"HTTP/1.1 " + status + b"\r\nServer: hostile\r\nContent-Length: 0\r\n\r\n")
        c.close()

    return serve


# HTTP ------------------------------------------------------------------

behaviour("http_ok")(_answer(b"200 OK"))
behaviour("http_500")(_answer(b"500 Internal Server Error"))
behaviour("http_503")(_answer(b"503 Service Unavailable"))
behaviour("http_404")(_answer(b"404 Not Found"))
behaviour("http_401")(_answer(b"401 Unauthorized"))
behaviour("http_301")(_answer(b"301 Moved Permanently\r\nLocation: /elsewhere"))


@behaviour("http_silent")
def http_silent(c: Conn) -> None:
    """Accept, read the request, never answer."""
    c.silence()


@behaviour("http_no_read")
def http_no_read(c: Conn) -> None:
    """Accept, then neither read the request nor answer."""
    c.stall()


@behaviour("http_trickle")
def http_trickle(c: Conn) -> None:
    """A valid answer, one byte per second: it must not beat the deadline."""
    c.read_request()
    c.trickle(OK_HEAD, 1.0)
    c.close()


@behaviour("http_segments")
def http_segments(c: Conn) -> None:
    """A valid answer in 2-byte segments 20 ms apart (~0.5 s, within the deadline)."""
    c.read_request()
    c.trickle(b"HTTP/1.1 200 OK\r\nServer: hostile\r\n\r\n", 0.02, step=2)
    c.close()


@behaviour("http_status_then_silence")
def http_status_then_silence(c: Conn) -> None:
    """The status line, then nothing: the header block never ends."""
    c.read_request()
    c.send(b"HTTP/1.1 200 OK\r\n")
    c.silence()


@behaviour("http_slow_headers")
def http_slow_headers(c: Conn) -> None:
    """A status line, then one header every 0.2 s, forever."""
    c.read_request()
    c.send(b"HTTP/1.1 200 OK\r\n")
    for i in range(10_000):
        time.sleep(0.2)
        c.send(b"X-Slow-%d: still here\r\n" % i)


@behaviour("http_endless_headers")
def http_endless_headers(c: Conn) -> None:
    """A status line, then 10 MiB of well-formed header lines."""
    c.read_request()
    c.flood(b"HTTP/1.1 200 OK\r\n", b"X-Hostile: " + b"a" * 52 + b"\r\n", 10 * MIB)
    c.close()


@behaviour("http_long_line")
def http_long_line(c: Conn) -> None:
    """A status line, then a 1 MiB header line without a newline."""
    c.read_request()
    c.flood(b"HTTP/1.1 200 OK\r\nX-Long: ", b"b", MIB)
    c.silence()


@behaviour("http_long_status_line")
def http_long_status_line(c: Conn) -> None:
    """A 1 MiB status line without a newline."""
    c.read_request()
    c.flood(b"HTTP/1.1 200 ", b"c", MIB)
    c.silence()


@behaviour("http_nul_header")
def http_nul_header(c: Conn) -> None:
    c.read_request()
    c.send(b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\n\r\n")
    c.close()


@behaviour("http_nul_bytes")
def http_nul_bytes(c: Conn) -> None:
    """Nothing but NUL bytes."""
    c.read_request()
    c.send(b"\x00" * 256)
    c.silence()


@behaviour("http_nul_status")
def http_nul_status(c: Conn) -> None:
    c.read_request()
    c.send(b"HTTP/1.1 200 O\x00K\r\n\r\n")
    c.close()


@behaviour("http_non_utf8")
def http_non_utf8(c: Conn) -> None:
    """Bytes that are not UTF-8 (nor HTTP)."""
    c.read_request()
    c.send(b"\xff\xfe\xfd\x80\x81\xc3\x28\xa0\xa1 not text\r\n\r\n")
    c.close()


@behaviour("http_latin1_reason")
def http_latin1_reason(c: Conn) -> None:
    """Non-UTF-8 (obs-text) in the reason phrase and a header: tolerated."""
    c.read_request()
    c.send(b"HTTP/1.1 200 Tr\xe8s bien\r\nX-Caf\xe9: \xff\xfe\r\n\r\n")
    c.close()


@behaviour("http_ssh_banner")
def http_ssh_banner(c: Conn) -> None:
    """Not an HTTP server at all (SSH speaks first)."""
    c.send(b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n")
    c.silence()


@behaviour("http_smtp_banner")
def http_smtp_banner(c: Conn) -> None:
    """The HTTP watch points at an SMTP server."""
    c.send(b"220 mail.example ESMTP Postfix\r\n")
    c.silence()


@behaviour("http_09")
def http_09(c: Conn) -> None:
    """HTTP/0.9 style: a body, no status line."""
    c.read_request()
    c.send(b"<html><body>It works!</body></html>\n")
    c.close()


@behaviour("http_lowercase")
def http_lowercase(c: Conn) -> None:
    c.read_request()
    c.send(b"http/1.1 200 OK\r\n\r\n")
    c.close()


@behaviour("http_bad_code")
def http_bad_code(c: Conn) -> None:
    c.read_request()
    c.send(b"HTTP/1.1 20 OK\r\n\r\n")
    c.close()


@behaviour("http_bare_lf")
def http_bare_lf(c: Conn) -> None:
    """Bare LF line ends (tolerated)."""
    c.read_request()
    c.send(b"HTTP/1.0 200 OK\nServer: hostile\n\n")
    c.close()


@behaviour("http_early_answer")
def http_early_answer(c: Conn) -> None:
    """Answer before the request arrives (tolerated), then read it."""
    c.send(OK_HEAD)
    c.read_request()
    c.close()


@behaviour("http_body_flood")
def http_body_flood(c: Conn) -> None:
    """A good head followed by 10 MiB of body we never asked for."""
    c.read_request()
    c.flood(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n", b"d" * 1024, 10 * MIB)
    c.close()


@behaviour("http_close_after_status")
def http_close_after_status(c: Conn) -> None:
    """A 503 status line, then a clean close before the blank line."""
    c.read_request()
    c.send(b"HTTP/1.1 503 Service Unavailable\r\n")
    c.close()


@behaviour("http_status_no_newline")
def http_status_no_newline(c: Conn) -> None:
    """A status line without its line end, then a clean close."""
    c.read_request()
    c.send(b"HTTP/1.1 200 OK")
    c.close()


@behaviour("http_close_before_answer")
def http_close_before_answer(c: Conn) -> None:
    """Read the request, close cleanly without a word (recv() returns 0)."""
    c.read_request()
    c.close()


@behaviour("http_half_close")
def http_half_close(c: Conn) -> None:
    """Read the request, shut our sending side, keep the socket open."""
    c.read_request()
    c.sock.shutdown(socket.SHUT_WR)
    c.silence()


@behaviour("http_reset_after_request")
def http_reset_after_request(c: Conn) -> None:
    """A RST right after the request, before any answer."""
    c.read_request()
    c.reset()


@behaviour("http_reset_mid_answer")
def http_reset_mid_answer(c: Conn) -> None:
    """Half an answer (status line and a header), then a RST."""
    c.read_request()
    c.send(b"HTTP/1.1 200 OK\r\nServer: hostile\r\n")
    time.sleep(0.2)
    c.reset()


@behaviour("http_reset_mid_status")
def http_reset_mid_status(c: Conn) -> None:
    """Half a status line, then a RST."""
    c.read_request()
    c.send(b"HTTP/1.1 2")
    time.sleep(0.2)
    c.reset()


# SMTP ------------------------------------------------------------------

GREETING = b"220 hostile.test ESMTP\r\n"
EHLO_STARTTLS = b"250-hostile.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 STARTTLS\r\n"


def _starttls(c: Conn) -> None:
    c.send(b"220 2.0.0 Ready to start TLS\r\n")
    c.start_tls("good")


def smtp(c: Conn, greeting: bytes = GREETING, **answers: bytes | Behaviour) -> None:
    """
    A small SMTP server: send C{greeting}, then answer each command by verb
    (lower case keyword: C{noop=b"250 OK\\r\\n"}), or run a callable for it.
    QUIT is answered 221 (unless overridden) and ends the session.
    """
    defaults: dict[str, bytes | Behaviour] = {
        "ehlo": EHLO_STARTTLS,
        "helo": b"250 hostile.test\r\n",
        "noop": b"250 2.0.0 OK\r\n",
        "quit": b"221 2.0.0 Bye\r\n",
        "starttls": _starttls,
    }
    defaults.update(answers)
    c.send(greeting)
    while True:
        verb = c.readline().split(b" ", 1)[0].decode("ascii", "replace").lower()
        answer = defaults.get(verb, b"502 5.5.2 Error: command not recognized\r\n")
        if callable(answer):
            answer(c)
        else:
            c.send(answer)
        if verb == "quit":
            c.close()
            return


def _then(reply: bytes, after: Behaviour) -> Behaviour:
    def act(c: Conn) -> None:
        if reply:
            c.send(reply)
        after(c)

    return act


@behaviour("smtp_ok")
def smtp_ok(c: Conn) -> None:
    smtp(c)


@behaviour("smtp_silent")
def smtp_silent(c: Conn) -> None:
    """Accept, never greet."""
    c.silence()


@behaviour("smtp_greeting_then_silence")
def smtp_greeting_then_silence(c: Conn) -> None:
    """Greet, then never answer NOOP."""
    smtp(c, noop=_then(b"", Conn.silence))


@behaviour("smtp_multiline_greeting")
def smtp_multiline_greeting(c: Conn) -> None:
    smtp(
        c,
        b"220-hostile.test ESMTP\r\n220-This is a long greeting\r\n220 with three lines\r\n",
    )


@behaviour("smtp_slow_greeting")
def smtp_slow_greeting(c: Conn) -> None:
    """A two-line greeting in 2-byte segments 15 ms apart (~0.4 s)."""
    c.trickle(b"220-hostile.test ESMTP\r\n220 slow but sure\r\n", 0.015, step=2)
    smtp(c, b"")


@behaviour("smtp_bare_code")
def smtp_bare_code(c: Conn) -> None:
    """Replies that are a bare code (RFC 5321 allows it)."""
    smtp(c, b"220\r\n", noop=b"250\r\n")


@behaviour("smtp_non_utf8_greeting")
def smtp_non_utf8_greeting(c: Conn) -> None:
    """Non-UTF-8 bytes in the greeting text (tolerated, logged safely)."""
    smtp(c, b"220 h\xf4te \xff\xfe ESMTP\r\n")


@behaviour("smtp_421_greeting")
def smtp_421_greeting(c: Conn) -> None:
    """sendmail RefuseLA: too busy."""
    c.send(b"421 4.3.2 hostile.test Service not available, closing channel\r\n")
    c.silence()


@behaviour("smtp_554_greeting")
def smtp_554_greeting(c: Conn) -> None:
    c.send(b"554 5.7.1 hostile.test No SMTP service here\r\n")
    c.silence()


@behaviour("smtp_noop_500")
def smtp_noop_500(c: Conn) -> None:
    smtp(c, noop=b"500 5.5.1 Command unrecognized\r\n")


@behaviour("smtp_noop_421")
def smtp_noop_421(c: Conn) -> None:
    smtp(c, noop=_then(b"421 4.4.2 hostile.test Timeout, closing\r\n", Conn.silence))


@behaviour("smtp_noop_trickle")
def smtp_noop_trickle(c: Conn) -> None:
    """The NOOP reply at one byte per second."""
    smtp(c, noop=lambda c: c.trickle(b"250 2.0.0 OK\r\n", 1.0))


@behaviour("smtp_garbage")
def smtp_garbage(c: Conn) -> None:
    c.send(b"Hello, this is not SMTP at all\r\n")
    c.silence()


@behaviour("smtp_ssh_banner")
def smtp_ssh_banner(c: Conn) -> None:
    c.send(b"SSH-2.0-OpenSSH_9.6p1\r\n")
    c.silence()


@behaviour("smtp_http_answer")
def smtp_http_answer(c: Conn) -> None:
    """The SMTP watch points at an HTTP server that talks first."""
    c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    c.silence()


@behaviour("smtp_nul")
def smtp_nul(c: Conn) -> None:
    c.send(b"220 hostile\x00ESMTP\r\n")
    c.silence()


@behaviour("smtp_code_change")
def smtp_code_change(c: Conn) -> None:
    """A multi-line reply whose code changes halfway."""
    c.send(b"220-hostile.test\r\n250 surprise\r\n")
    c.silence()


@behaviour("smtp_endless_multiline")
def smtp_endless_multiline(c: Conn) -> None:
    """A greeting that never ends: 10 MiB of continuation lines."""
    c.flood(b"", b"220-" + b"e" * 60 + b"\r\n", 10 * MIB)
    c.silence()


@behaviour("smtp_long_line")
def smtp_long_line(c: Conn) -> None:
    """A 1 MiB greeting line without a newline."""
    c.flood(b"220 ", b"f", MIB)
    c.silence()


@behaviour("smtp_late_221")
def smtp_late_221(c: Conn) -> None:
    """221 to QUIT three seconds late (exim answers late too)."""

    def late(c: Conn) -> None:
        time.sleep(3.0)
        c.send(b"221 2.0.0 Bye\r\n")

    smtp(c, quit=late)


@behaviour("smtp_no_221")
def smtp_no_221(c: Conn) -> None:
    """No answer to QUIT at all."""
    smtp(c, quit=Conn.silence)


@behaviour("smtp_close_after_greeting")
def smtp_close_after_greeting(c: Conn) -> None:
    """Greet, read NOOP, close without a reply."""
    smtp(c, noop=Conn.close)


@behaviour("smtp_reset_after_greeting")
def smtp_reset_after_greeting(c: Conn) -> None:
    """Greet, read NOOP, RST."""
    smtp(c, noop=Conn.reset)


@behaviour("smtp_starttls_ok")
def smtp_starttls_ok(c: Conn) -> None:
    smtp(c)


@behaviour("smtp_starttls_454")
def smtp_starttls_454(c: Conn) -> None:
    smtp(c, starttls=b"454 4.7.0 TLS not available due to temporary reason\r\n")


@behaviour("smtp_no_starttls")
def smtp_no_starttls(c: Conn) -> None:
    """EHLO answered without STARTTLS in the extensions."""
    smtp(c, ehlo=b"250-hostile.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")


@behaviour("smtp_starttls_stall")
def smtp_starttls_stall(c: Conn) -> None:
    """220 to STARTTLS, then never answer the ClientHello."""
    smtp(c, starttls=_then(b"220 2.0.0 Ready to start TLS\r\n", Conn.silence))


@behaviour("smtp_starttls_garbage")
def smtp_starttls_garbage(c: Conn) -> None:
    """220 to STARTTLS, then plain text instead of a ServerHello."""

    def garbage(c: Conn) -> None:
        c.send(b"220 2.0.0 Ready to start TLS\r\n")
        c.read_tls_record()
        c.send(b"this is not a ServerHello\r\n" * 4)
        c.silence()

    smtp(c, starttls=garbage)


@behaviour("smtp_starttls_expired")
def smtp_starttls_expired(c: Conn) -> None:
    def expired(c: Conn) -> None:
        c.send(b"220 2.0.0 Ready to start TLS\r\n")
        c.start_tls("expired")

    smtp(c, starttls=expired)


@behaviour("smtps_ok")
def smtps_ok(c: Conn) -> None:
    """SMTP over implicit TLS (port 465 style)."""
    c.start_tls("good")
    smtp(c, ehlo=b"250-hostile.test\r\n250 PIPELINING\r\n")


# TLS (HTTPS) ------------------------------------------------------------


def _https(cert: str) -> Behaviour:
    def serve(c: Conn) -> None:
        c.start_tls(cert)
        c.read_request()
        c.send(OK_HEAD)
        c.close()

    return serve


behaviour("tls_good")(_https("good"))
behaviour("tls_wrong_host")(_https("wrong_host"))
behaviour("tls_expired")(_https("expired"))
behaviour("tls_self_signed")(_https("self_signed"))


@behaviour("tls_stall")
def tls_stall(c: Conn) -> None:
    """Accept TCP, read the ClientHello, never answer it."""
    c.silence()


@behaviour("tls_garbage")
def tls_garbage(c: Conn) -> None:
    """Plain text instead of a ServerHello."""
    c.read_tls_record()
    c.send(b"garbage, not a ServerHello\r\n" * 8)
    c.silence()


@behaviour("tls_plain_http")
def tls_plain_http(c: Conn) -> None:
    """A plain-HTTP server on the HTTPS port answers the ClientHello with 400."""
    c.read_tls_record()
    c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    c.silence()


@behaviour("tls_close_on_hello")
def tls_close_on_hello(c: Conn) -> None:
    """Read the ClientHello, close cleanly."""
    c.read_tls_record()
    c.close()


@behaviour("tls_reset_on_hello")
def tls_reset_on_hello(c: Conn) -> None:
    """Read the ClientHello, RST."""
    c.read_tls_record()
    c.reset()


@behaviour("tls_good_then_silence")
def tls_good_then_silence(c: Conn) -> None:
    """A good handshake, then no answer to the request."""
    c.start_tls("good")
    c.silence()


# --------------------------------------------------------------------------
# Serving


def _serve_connection(name: str, sock: socket.socket, certdir: Path) -> None:
    conn = Conn(sock, certdir)
    try:
        sock.settimeout(CONNECTION_LIFETIME)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        BEHAVIOURS[name](conn)
    except (Gone, OSError):
        pass  # the probe gave up or closed: expected
    except Exception:
        print(f"hostile: behaviour {name} raised:", file=sys.stderr)
        traceback.print_exc()
    finally:
        try:
            conn.sock.close()
        except OSError:
            pass


def _accept_loop(name: str, listener: socket.socket, certdir: Path) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve_connection, args=(name, sock, certdir), daemon=True).start()


def serve(names: list[str], certdir: Path, port: int = 0) -> dict[str, int]:
    """Start serving C{names}; return their ports.  Threads are daemons."""
    ports: dict[str, int] = {}
    keep: list[socket.socket] = []
    for name in names:
        if name == "refused":
            # Bound (so nobody else takes the port) but not listening: RST to a SYN.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, port))
            keep.append(sock)
        elif name == "backlog_full":
            # Listening with a zero backlog, never accepting, and one queued
            # connection of our own: the kernel drops every further SYN, so a
            # connect hangs (a connect timeout without leaving loopback).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, port))
            sock.listen(0)
            filler = socket.create_connection(sock.getsockname()[:2], timeout=5)
            keep += [sock, filler]
        else:
            sock = socket.create_server((HOST, port), backlog=128)
            threading.Thread(target=_accept_loop, args=(name, sock, certdir), daemon=True).start()
        ports[name] = sock.getsockname()[1]
    _KEEP.extend(keep)
    return ports


_KEEP: list[socket.socket] = []


def load_protocol_behaviours() -> None:
    """
    Register the misbehaviours of the other protocols' suites: every
    C{tests/hostile_*.py} beside this file (C{tests.hostile_pop3} ...).
    """
    import importlib

    for path in sorted(Path(__file__).parent.glob("hostile_*.py")):
        importlib.import_module(f"tests.{path.stem}")


def all_names() -> list[str]:
    return [*BEHAVIOURS, *SPECIAL]


def main(argv: list[str] | None = None) -> int:
    load_protocol_behaviours()
    parser = argparse.ArgumentParser(prog="python -m tests.hostile", description=__doc__)
    parser.add_argument(
        "--behaviour",
        action="append",
        choices=all_names(),
        metavar="NAME",
        help="serve this misbehaviour (repeatable; default: all)",
    )
    parser.add_argument("--port", type=int, default=0, help="port (single behaviour only)")
    parser.add_argument("--certdir", type=Path, default=None, help="certificate folder")
    parser.add_argument("--list", action="store_true", help="list the behaviours and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(all_names()))
        return 0
    names = args.behaviour or all_names()
    if args.port and len(names) != 1:
        parser.error("--port needs exactly one --behaviour")
    if args.certdir is None:
        import tempfile

        args.certdir = Path(tempfile.mkdtemp(prefix="ismon-hostile-"))
    make_certs(args.certdir)
    ports = serve(names, args.certdir, args.port)
    print(json.dumps({"ports": ports, "certdir": str(args.certdir)}), flush=True)
    # Serve until whoever started us closes our stdin (or dies).
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except KeyboardInterrupt:
        pass
    os._exit(0)


# --------------------------------------------------------------------------
# The test side


class HostileServer:
    """
    Start L{main} in a child process and learn its ports.  Use as a context
    manager or call L{stop}.
    """

    def __init__(self, certdir: Path, names: list[str] | None = None) -> None:
        root = Path(__file__).resolve().parent.parent
        command = [sys.executable, "-m", "tests.hostile", "--certdir", str(certdir)]
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
            raise RuntimeError("the hostile server did not start")
        info = json.loads(line)
        self.ports: dict[str, int] = info["ports"]
        self.certdir = Path(info["certdir"])
        self.ca_file = str(self.certdir / "ca.pem")

    def port(self, name: str) -> int:
        return self.ports[name]

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()  # our own child, by its handle
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy's: the other
    # protocols' behaviours register into tests.hostile.BEHAVIOURS.
    from tests import hostile

    sys.exit(hostile.main())
