"""
FTP misbehaviours for the hostile server (L{tests.hostile}, which loads
this module): a small FTP server that answers each command by verb, and
every way the FTP watch's conversation (README "What counts as a failure", FTP) can be
broken.  L{tests.test_hostile_ftp} probes each one.
"""

from __future__ import annotations

import random

from tests.hostile import MIB, Behaviour, Conn, _then, behaviour, smtp

__all__ = ["GREETING", "ftp"]

GREETING = b"220 (hostileFTPd 3.0.3)\r\n"


def _auth_tls(c: Conn) -> None:
    c.send(b"234 Proceed with negotiation.\r\n")
    c.start_tls("good")


def ftp(c: Conn, greeting: bytes = GREETING, /, **answers: bytes | Behaviour) -> None:
    """
    A small FTP server: L{tests.hostile.smtp}'s answer-by-verb loop with
    FTP's answers (lower case keyword: C{noop=b"200 ok\\r\\n"}, or a
    callable).  QUIT is answered 221 (unless overridden) and ends the session.
    """
    defaults: dict[str, bytes | Behaviour] = {
        "noop": b"200 NOOP ok.\r\n",
        "user": b"331 Please specify the password.\r\n",
        "pass": b"230 Login successful.\r\n",
        "auth": _auth_tls,
        "quit": b"221 Goodbye.\r\n",
    }
    smtp(c, greeting, **(defaults | answers))


def _silence(c: Conn) -> None:
    c.silence()


# -- controls -------------------------------------------------------------


@behaviour("ftp_ok")
def ftp_ok(c: Conn) -> None:
    ftp(c)


@behaviour("ftp_noop_530")
def ftp_noop_530(c: Conn) -> None:
    """vsftpd before a login: NOOP is 530, which still shows a command loop."""
    ftp(c, noop=b"530 Please login with USER and PASS.\r\n")


@behaviour("ftp_multiline_greeting")
def ftp_multiline_greeting(c: Conn) -> None:
    """RFC 959 §4.2: continuation lines need not carry the code."""
    ftp(
        c,
        b"220-Welcome to the hostile archive\r\n  mirrors: none\r\n\r\n230 not the end\r\n220 ready\r\n",
    )


@behaviour("ftp_slow_greeting")
def ftp_slow_greeting(c: Conn) -> None:
    """A two-line greeting in 2-byte segments 15 ms apart (~0.4 s)."""
    c.trickle(b"220-hostile\r\n220 slow but sure\r\n", 0.015, step=2)
    ftp(c, b"")


@behaviour("ftp_no_221")
def ftp_no_221(c: Conn) -> None:
    """QUIT is never answered and the connection stays open."""
    ftp(c, quit=_silence)


# -- error replies --------------------------------------------------------


@behaviour("ftp_120_greeting")
def ftp_120_greeting(c: Conn) -> None:
    """ "Service ready in 5 minutes": the daemon says it cannot serve yet."""
    c.send(b"120 Service ready in 5 minutes.\r\n")
    c.silence()


@behaviour("ftp_421_greeting")
def ftp_421_greeting(c: Conn) -> None:
    c.send(b"421 Too many users, sorry.\r\n")
    c.silence()


@behaviour("ftp_noop_500")
def ftp_noop_500(c: Conn) -> None:
    ftp(c, noop=b"500 OOPS: child died\r\n")


@behaviour("ftp_login_530")
def ftp_login_530(c: Conn) -> None:
    ftp(c, **{"pass": b"530 Login incorrect.\r\n"})


@behaviour("ftp_login_noop_530")
def ftp_login_noop_530(c: Conn) -> None:
    """The login is accepted, but NOOP then says "not logged in"."""
    ftp(c, noop=b"530 Please login with USER and PASS.\r\n")


@behaviour("ftp_auth_tls_500")
def ftp_auth_tls_500(c: Conn) -> None:
    """A daemon without TLS: AUTH is an unknown command."""
    ftp(c, auth=b"500 Unknown command.\r\n")


# -- wrong and partial codes, garbage, binary data -------------------------


@behaviour("ftp_short_code")
def ftp_short_code(c: Conn) -> None:
    c.send(b"22 ready\r\n")
    c.silence()


@behaviour("ftp_long_code")
def ftp_long_code(c: Conn) -> None:
    ftp(c, noop=b"2000 NOOP ok.\r\n")


@behaviour("ftp_partial_code")
def ftp_partial_code(c: Conn) -> None:
    """Two digits of a code, then nothing."""
    ftp(c, noop=_then(b"20", _silence))


@behaviour("ftp_garbage")
def ftp_garbage(c: Conn) -> None:
    """Seeded random binary bytes instead of a greeting, no line end."""
    c.send(random.Random(14).randbytes(512).replace(b"\n", b""))
    c.silence()


@behaviour("ftp_ssh_banner")
def ftp_ssh_banner(c: Conn) -> None:
    c.send(b"SSH-2.0-OpenSSH_9.6p1\r\n")
    c.silence()


@behaviour("ftp_nul")
def ftp_nul(c: Conn) -> None:
    c.send(b"220 hostile\x00FTP\r\n")
    c.silence()


@behaviour("ftp_tls_on_plain_port")
def ftp_tls_on_plain_port(c: Conn) -> None:
    """An implicit-TLS daemon probed in plain text: a TLS alert arrives."""
    c.send(b"\x15\x03\x03\x00\x02\x02\x28")
    c.silence()


# -- oversized lines ------------------------------------------------------


@behaviour("ftp_long_line")
def ftp_long_line(c: Conn) -> None:
    """A 1 MiB greeting line without a newline."""
    c.flood(b"220 ", b"f", MIB)
    c.silence()


@behaviour("ftp_endless_multiline")
def ftp_endless_multiline(c: Conn) -> None:
    """A greeting that never ends: 10 MiB of free continuation lines."""
    c.flood(b"220-hostile\r\n", b"e" * 62 + b"\r\n", 10 * MIB)
    c.silence()


# -- stalls at each step, and a trickle -----------------------------------


@behaviour("ftp_silent")
def ftp_silent(c: Conn) -> None:
    """Accept, never greet."""
    c.silence()


@behaviour("ftp_greeting_then_silence")
def ftp_greeting_then_silence(c: Conn) -> None:
    ftp(c, noop=_silence)


@behaviour("ftp_open_multiline")
def ftp_open_multiline(c: Conn) -> None:
    """The first line of a multi-line greeting, then nothing."""
    c.send(b"220-hostile\r\n")
    c.silence()


@behaviour("ftp_user_silence")
def ftp_user_silence(c: Conn) -> None:
    ftp(c, user=_silence)


@behaviour("ftp_pass_silence")
def ftp_pass_silence(c: Conn) -> None:
    """The authentication backend hangs: PASS is never answered."""
    ftp(c, **{"pass": _silence})


@behaviour("ftp_auth_tls_silence")
def ftp_auth_tls_silence(c: Conn) -> None:
    ftp(c, auth=_silence)


@behaviour("ftp_auth_tls_stall")
def ftp_auth_tls_stall(c: Conn) -> None:
    """234 to AUTH TLS, then the ClientHello is never answered."""
    ftp(c, auth=_then(b"234 Proceed with negotiation.\r\n", _silence))


@behaviour("ftp_noop_trickle")
def ftp_noop_trickle(c: Conn) -> None:
    """The NOOP reply at one byte per second."""
    ftp(c, noop=lambda c: c.trickle(b"200 NOOP ok.\r\n", 1.0))


# -- early close ----------------------------------------------------------


@behaviour("ftp_close_after_greeting")
def ftp_close_after_greeting(c: Conn) -> None:
    c.send(GREETING)
    c.readline()
    c.close()


@behaviour("ftp_reset_after_greeting")
def ftp_reset_after_greeting(c: Conn) -> None:
    c.send(GREETING)
    c.readline()
    c.reset()


@behaviour("ftp_close_mid_greeting")
def ftp_close_mid_greeting(c: Conn) -> None:
    c.send(b"220-hostile\r\n220")
    c.close()


# -- replies before their commands, injection before TLS --------------------


@behaviour("ftp_early_reply")
def ftp_early_reply(c: Conn) -> None:
    """The answer to NOOP in the same write as the greeting."""
    c.send(GREETING + b"200 NOOP ok.\r\n")
    c.readline()
    c.silence()


@behaviour("ftp_injected_before_tls")
def ftp_injected_before_tls(c: Conn) -> None:
    """
    A canned 200 right behind the 234 (CVE-2011-0411 style); after the
    handshake NOOP is refused: a probe that read the 200 would pass.
    """

    def inject(c: Conn) -> None:
        c.send(b"234 Proceed with negotiation.\r\n200 NOOP ok.\r\n")
        c.start_tls("good")

    ftp(c, auth=inject, noop=b"500 OOPS: not really\r\n")


@behaviour("ftp_injected_then_silence")
def ftp_injected_then_silence(c: Conn) -> None:
    """A canned 200 behind the 234, then silence inside TLS: a timeout, not a pass."""

    def inject(c: Conn) -> None:
        c.send(b"234 Proceed with negotiation.\r\n200 NOOP ok.\r\n")
        c.start_tls("good")

    ftp(c, auth=inject, noop=_silence)


# -- TLS --------------------------------------------------------------------


@behaviour("ftp_auth_tls_expired")
def ftp_auth_tls_expired(c: Conn) -> None:
    def expired(c: Conn) -> None:
        c.send(b"234 Proceed with negotiation.\r\n")
        c.start_tls("expired")

    ftp(c, auth=expired)


@behaviour("ftps_ok")
def ftps_ok(c: Conn) -> None:
    """Implicit TLS (port-990 style)."""
    c.start_tls("good")
    ftp(c)
