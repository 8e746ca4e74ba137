"""
POP3 misbehaviours for the hostile server (L{tests.hostile}), served by
C{python -m tests.hostile}, which loads this module; probed by
L{tests.test_hostile_pop3}.

Every name starts with C{pop3}: the test finds its cases by that prefix.
"""

from __future__ import annotations

import time

from tests.hostile import MIB, Behaviour, Conn, behaviour

__all__ = ["CAPA_LIST", "GREETING"]

GREETING = b"+OK hostile POP3 ready.\r\n"
CAPA_LIST = b"+OK Capability list follows\r\nTOP\r\nUIDL\r\nSTLS\r\nUSER\r\n.\r\n"
CAPA_NO_STLS = b"+OK\r\nTOP\r\nUSER\r\n.\r\n"
#: The password the hostile server accepts (the test's --auth-file holds it).
PASSWORD = b"hostile-Pw"


def _stls(c: Conn) -> None:
    c.send(b"+OK Begin TLS negotiation now.\r\n")
    c.start_tls("good")


def _pass(c: Conn, argument: bytes) -> None:
    c.send(
        b"+OK Logged in.\r\n" if argument == PASSWORD else b"-ERR [AUTH] Authentication failed.\r\n"
    )


def pop3(c: Conn, greeting: bytes = GREETING, **answers: bytes | Behaviour) -> None:
    """
    A small POP3 server: send C{greeting}, then answer each command by verb
    (lower case keyword: C{capa=b"+OK..."}), or run a callable for it.  PASS
    checks L{PASSWORD}; QUIT is answered and ends the session.
    """
    defaults: dict[str, bytes | Behaviour] = {
        "capa": CAPA_LIST,
        "user": b"+OK\r\n",
        "stat": b"+OK 0 0\r\n",
        "quit": b"+OK Logging out.\r\n",
        "stls": _stls,
    }
    defaults.update(answers)
    if greeting:
        c.send(greeting)
    while True:
        verb, _, argument = c.readline().partition(b" ")
        name = verb.decode("ascii", "replace").lower()
        answer = defaults.get(name, b"-ERR Unknown command.\r\n")
        if name == "pass" and name not in defaults:
            _pass(c, argument)
        elif callable(answer):
            answer(c)
        else:
            c.send(answer)
        if name == "quit":
            c.close()
            return


def _then(reply: bytes, after: Behaviour) -> Behaviour:
    def act(c: Conn) -> None:
        c.send(reply)
        after(c)

    return act


# -- controls: the probe passes -------------------------------------------


@behaviour("pop3_ok")
def pop3_ok(c: Conn) -> None:
    pop3(c)


@behaviour("pop3_bare_lf")
def pop3_bare_lf(c: Conn) -> None:
    """Lines end in LF alone."""
    pop3(c, b"+OK hi\n", capa=b"+OK\nUSER\n.\n")


@behaviour("pop3_split_greeting")
def pop3_split_greeting(c: Conn) -> None:
    """The greeting and the list in 2-byte segments 20 ms apart (within the deadline)."""
    c.trickle(GREETING, 0.02, step=2)
    pop3(c, b"", capa=lambda c: c.trickle(CAPA_NO_STLS, 0.02, step=2))


@behaviour("pop3_dot_stuffed")
def pop3_dot_stuffed(c: Conn) -> None:
    """List lines beginning with a dot, stuffed (RFC 1939 §3)."""
    pop3(c, capa=b"+OK\r\n..X-DOT\r\n...\r\nUSER\r\n.\r\n")


@behaviour("pop3_no_quit_answer")
def pop3_no_quit_answer(c: Conn) -> None:
    """QUIT is never answered: the verdict does not wait for it."""
    pop3(c, quit=Conn.silence)


# -- a stall at each step ---------------------------------------------------


@behaviour("pop3_silent")
def pop3_silent(c: Conn) -> None:
    """Accept, never greet."""
    c.silence()


@behaviour("pop3_capa_stall")
def pop3_capa_stall(c: Conn) -> None:
    """Greet, never answer CAPA."""
    pop3(c, capa=Conn.silence)


@behaviour("pop3_capa_unended")
def pop3_capa_unended(c: Conn) -> None:
    """The list begins and never ends (no "." line)."""
    pop3(c, capa=_then(b"+OK\r\nTOP\r\nUSER\r\n", Conn.silence))


@behaviour("pop3_pass_stall")
def pop3_pass_stall(c: Conn) -> None:
    """The authentication backend hangs: PASS is never answered."""
    pop3(c, **{"pass": Conn.silence})


@behaviour("pop3_stat_stall")
def pop3_stat_stall(c: Conn) -> None:
    """Logged in, but the mailbox never opens: STAT is never answered."""
    pop3(c, stat=Conn.silence)


@behaviour("pop3_trickle")
def pop3_trickle(c: Conn) -> None:
    """The greeting, one byte a second: it must not beat the deadline."""
    c.trickle(GREETING, 1.0)
    pop3(c, b"")


@behaviour("pop3_capa_trickle")
def pop3_capa_trickle(c: Conn) -> None:
    """The list, one byte a second."""
    pop3(c, capa=lambda c: c.trickle(CAPA_LIST, 1.0))


# -- negative replies -------------------------------------------------------


@behaviour("pop3_err_greeting")
def pop3_err_greeting(c: Conn) -> None:
    """A server refusing under load greets with -ERR."""
    c.send(b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
    c.close()


@behaviour("pop3_capa_err")
def pop3_capa_err(c: Conn) -> None:
    pop3(c, capa=b"-ERR Unknown command: CAPA\r\n")


@behaviour("pop3_stat_err")
def pop3_stat_err(c: Conn) -> None:
    pop3(c, stat=b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n")


# -- wrong and partial codes, garbage ----------------------------------------


@behaviour("pop3_partial_status")
def pop3_partial_status(c: Conn) -> None:
    """Half a status indicator."""
    pop3(c, b"+O\r\n")


@behaviour("pop3_lowercase_status")
def pop3_lowercase_status(c: Conn) -> None:
    pop3(c, b"+ok hostile\r\n")


@behaviour("pop3_capa_partial_status")
def pop3_capa_partial_status(c: Conn) -> None:
    """A good greeting, then "-ER" for CAPA."""
    pop3(c, capa=b"-ER\r\n")


@behaviour("pop3_smtp_banner")
def pop3_smtp_banner(c: Conn) -> None:
    """An SMTP server on the POP3 port."""
    c.send(b"220 hostile.test ESMTP\r\n")
    c.silence()


@behaviour("pop3_imap_banner")
def pop3_imap_banner(c: Conn) -> None:
    """An IMAP server on the POP3 port."""
    c.send(b"* OK [CAPABILITY IMAP4rev1] hostile ready\r\n")
    c.silence()


@behaviour("pop3_binary")
def pop3_binary(c: Conn) -> None:
    """Binary data instead of a greeting."""
    c.send(bytes(range(256)) * 4)
    c.silence()


@behaviour("pop3_nul")
def pop3_nul(c: Conn) -> None:
    """A NUL inside the greeting."""
    pop3(c, b"+OK host\x00ile\r\n")


@behaviour("pop3_capa_nul")
def pop3_capa_nul(c: Conn) -> None:
    """A NUL inside a list line."""
    pop3(c, capa=b"+OK\r\nUS\x00ER\r\n.\r\n")


# -- oversized --------------------------------------------------------------


@behaviour("pop3_long_line")
def pop3_long_line(c: Conn) -> None:
    """A 1 MiB greeting without a newline."""
    c.flood(b"+OK ", b"x", MIB)
    c.silence()


@behaviour("pop3_endless_capa")
def pop3_endless_capa(c: Conn) -> None:
    """A capability list of 10 MiB of well-formed lines."""

    def endless(c: Conn) -> None:
        c.flood(b"+OK\r\n", b"X-HOSTILE " + b"a" * 50 + b"\r\n", 10 * MIB)
        c.silence()

    pop3(c, capa=endless)


# -- the connection ends early ----------------------------------------------


@behaviour("pop3_close_after_greeting")
def pop3_close_after_greeting(c: Conn) -> None:
    pop3(c, capa=Conn.close)


@behaviour("pop3_reset_after_greeting")
def pop3_reset_after_greeting(c: Conn) -> None:
    pop3(c, capa=Conn.reset)


@behaviour("pop3_close_mid_capa")
def pop3_close_mid_capa(c: Conn) -> None:
    """Half the list, then a clean close."""

    def half(c: Conn) -> None:
        c.send(b"+OK\r\nTOP\r\n")
        time.sleep(0.2)
        c.close()

    pop3(c, capa=half)


# -- a reply before its command ----------------------------------------------


@behaviour("pop3_early_capa")
def pop3_early_capa(c: Conn) -> None:
    """The greeting and a canned answer to CAPA in one piece, before CAPA is read."""
    c.send(GREETING + CAPA_LIST)
    pop3(c, b"", capa=b"")


@behaviour("pop3_early_login")
def pop3_early_login(c: Conn) -> None:
    """USER answered together with a canned "+OK Logged in." for the PASS not yet sent."""
    pop3(c, user=b"+OK\r\n+OK Logged in.\r\n", **{"pass": Conn.silence})


# -- STLS -------------------------------------------------------------------


@behaviour("pop3_stls_ok")
def pop3_stls_ok(c: Conn) -> None:
    pop3(c)


@behaviour("pop3_no_stls")
def pop3_no_stls(c: Conn) -> None:
    """CAPA lists no STLS."""
    pop3(c, capa=CAPA_NO_STLS)


@behaviour("pop3_stls_err")
def pop3_stls_err(c: Conn) -> None:
    pop3(c, stls=b"-ERR TLS support isn't enabled.\r\n")


@behaviour("pop3_stls_stall")
def pop3_stls_stall(c: Conn) -> None:
    """+OK to STLS, then no handshake."""
    pop3(c, stls=_then(b"+OK Begin TLS negotiation now.\r\n", Conn.silence))


@behaviour("pop3_stls_injected")
def pop3_stls_injected(c: Conn) -> None:
    """
    Plain-text lines right after the +OK to STLS (a man-in-the-middle
    injection), then a good handshake and silence: only the injected lines
    could make the probe pass.
    """

    def injected(c: Conn) -> None:
        c.send(b"+OK Begin TLS negotiation now.\r\n+OK\r\nUSER\r\n.\r\n+OK 0 0\r\n")
        c.start_tls("good")
        c.silence()

    pop3(c, stls=injected)


@behaviour("pop3_stls_expired")
def pop3_stls_expired(c: Conn) -> None:
    def expired(c: Conn) -> None:
        c.send(b"+OK Begin TLS negotiation now.\r\n")
        c.start_tls("expired")

    pop3(c, stls=expired)


@behaviour("pop3_stls_garbage")
def pop3_stls_garbage(c: Conn) -> None:
    """+OK to STLS, then plain text instead of a ServerHello."""

    def garbage(c: Conn) -> None:
        c.send(b"+OK Begin TLS negotiation now.\r\n")
        c.read_tls_record()
        c.send(b"+OK not TLS at all\r\n" * 8)
        c.silence()

    pop3(c, stls=garbage)


@behaviour("pop3s_ok")
def pop3s_ok(c: Conn) -> None:
    """POP3 over implicit TLS (port 995 style)."""
    c.start_tls("good")
    pop3(c, capa=CAPA_NO_STLS)
