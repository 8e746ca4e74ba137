"""
Plain-TCP misbehaviours for the hostile server (L{tests.hostile}), served by
C{python -m tests.hostile}, which loads this module; probed, for now, by
L{tests.test_hostile_tcp} with the sans-io parts of the TCP watch
(L{ismon.wire.tcp}) over a blocking socket, and later by the TCP probe.

Every name starts with C{tcp}: the tests find the cases by that prefix.
Each behaviour is written for one way of asking, said in its docstring:
C{ping} behaviours read a line first (the probe's C{--send 'PING\\r\\n'}),
C{banner} behaviours speak first (C{--expect} alone).  The answer a
healthy server gives is C{+PONG\\r\\n} or the banner L{BANNER}; a probe
passes on C{--expect '\\+PONG'} or C{--expect '^220 '}.  A closed port is
the shared C{refused}; a TLS handshake that never ends, the shared
C{tls_stall}.
"""

from __future__ import annotations

import time

from tests.hostile import CONNECTION_LIFETIME, MIB, Conn, behaviour

__all__ = ["BANNER", "PONG"]

PONG = b"+PONG\r\n"
BANNER = b"220 hostile.test ready\r\n"


def _ping(c: Conn) -> None:
    """Read the probe's line (so that a close later is a FIN, not a RST)."""
    c.readline()


# -- controls: the probe passes ----------------------------------------------


@behaviour("tcp_pong")
def tcp_pong(c: Conn) -> None:
    """ping: answer +PONG and stay connected (redis does)."""
    _ping(c)
    c.send(PONG)
    c.silence()


@behaviour("tcp_banner")
def tcp_banner(c: Conn) -> None:
    """banner: greet and wait for the client (an SMTP or FTP server does)."""
    c.send(BANNER)
    c.silence()


@behaviour("tcp_split_pong")
def tcp_split_pong(c: Conn) -> None:
    """ping: +PONG in 1-byte writes 20 ms apart (~0.15 s): found across the pieces."""
    _ping(c)
    c.trickle(PONG, 0.02)
    c.silence()


@behaviour("tcp_late_pong")
def tcp_late_pong(c: Conn) -> None:
    """ping: +PONG after 0.3 s, well inside the deadline."""
    _ping(c)
    time.sleep(0.3)
    c.send(PONG)
    c.silence()


@behaviour("tcp_binary_banner")
def tcp_binary_banner(c: Conn) -> None:
    """banner: a binary greeting without a line end (a MySQL handshake's shape)."""
    c.send(b"\x4a\x00\x00\x00\x0a8.0.36\x00\x01\x02\x03\xffmysql_native_password\x00")
    c.silence()


@behaviour("tcp_banner_then_close")
def tcp_banner_then_close(c: Conn) -> None:
    """banner: greet, then close at once (a banner matched before the close passes)."""
    c.send(BANNER)
    c.close()


# -- no answer, or not the one expected ---------------------------------------


@behaviour("tcp_silent")
def tcp_silent(c: Conn) -> None:
    """ping or banner: read whatever comes, never answer."""
    c.silence()


@behaviour("tcp_no_read")
def tcp_no_read(c: Conn) -> None:
    """Neither read nor write: the send sits in the buffers, no answer comes."""
    c.stall()


@behaviour("tcp_partial")
def tcp_partial(c: Conn) -> None:
    """ping: half the answer (+PON), then nothing."""
    _ping(c)
    c.send(PONG[:4])
    c.silence()


@behaviour("tcp_trickle")
def tcp_trickle(c: Conn) -> None:
    """ping: +PONG one byte a second: it must not beat the deadline."""
    _ping(c)
    c.trickle(PONG, 1.0)
    c.silence()


@behaviour("tcp_wrong_answer")
def tcp_wrong_answer(c: Conn) -> None:
    """ping: an error instead of +PONG, and stay connected."""
    _ping(c)
    c.send(b"-ERR unknown command 'PING'\r\n")
    c.silence()


# -- the connection ends early ------------------------------------------------


@behaviour("tcp_close_early")
def tcp_close_early(c: Conn) -> None:
    """ping: read the line, close without a word."""
    _ping(c)
    c.close()


@behaviour("tcp_close_mid_answer")
def tcp_close_mid_answer(c: Conn) -> None:
    """ping: +PO, then a clean close."""
    _ping(c)
    c.send(PONG[:3])
    c.close()


@behaviour("tcp_reset")
def tcp_reset(c: Conn) -> None:
    """ping: read the line, then a RST."""
    _ping(c)
    c.reset()


@behaviour("tcp_close_at_once")
def tcp_close_at_once(c: Conn) -> None:
    """Accept and close before the client sends anything (a banner probe reads EOF)."""
    c.close()


# -- floods -------------------------------------------------------------------


@behaviour("tcp_flood")
def tcp_flood(c: Conn) -> None:
    """ping: 10 MiB without a match, then a close."""
    _ping(c)
    c.flood(b"", b"flood, not the answer\r\n", 10 * MIB)
    c.close()


@behaviour("tcp_flood_forever")
def tcp_flood_forever(c: Conn) -> None:
    """banner: send without end (until the client goes, or the connection's lifetime)."""
    chunk = b"x" * 65536
    deadline = time.monotonic() + CONNECTION_LIFETIME
    while time.monotonic() < deadline:
        c.send(chunk)


@behaviour("tcp_match_past_the_bound")
def tcp_match_past_the_bound(c: Conn) -> None:
    """ping: 64 KiB of filler, then +PONG: the match lies beyond what a probe reads."""
    _ping(c)
    c.send(b"." * (64 * 1024) + PONG)
    c.silence()


# -- TLS (--tls): a banner after the handshake ---------------------------------


def _tls_banner(cert: str) -> None:
    def serve(c: Conn) -> None:
        c.start_tls(cert)
        c.send(BANNER)
        c.silence()

    serve.__doc__ = f"banner over TLS, with the {cert} certificate."
    behaviour(f"tcp_tls_{cert}")(serve)


for _cert in ("good", "wrong_host", "expired", "self_signed"):
    _tls_banner(_cert)
