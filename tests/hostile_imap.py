"""
The IMAP4 misbehaviours of the hostile server (L{tests.hostile}, which loads
this module in its own process): a small IMAP server, C{imap}, and the ways
it goes wrong, for L{tests.test_hostile_imap}.

Not to be imported by the test process itself: registering these in its
L{tests.hostile.BEHAVIOURS} would add them to the HTTP/SMTP suite's list.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.hostile import MIB, Conn, behaviour

GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] hostile.test IMAP4 ready\r\n"
CAPABILITY = b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\n@T OK CAPABILITY completed\r\n"
# The one login the server takes: the test logs in as "hostile" with the
# password pa"ss\word, which LOGIN must quote as below.
LOGIN_ARGUMENTS = b'"hostile" "pa\\"ss\\\\word"'

# An answer: bytes, in which @T stands for the command's tag, or what to do
# with the connection, the tag and the command's arguments.
Answer = bytes | Callable[[Conn, bytes, bytes], None]


def _starttls(
    c: Conn, tag: bytes, arguments: bytes = b"", *, cert: str = "good", injected: bytes = b""
) -> None:
    # One write: what is injected arrives with the OK, before the handshake.
    c.send(tag + b" OK Begin TLS negotiation now.\r\n" + injected)
    c.start_tls(cert)


def _login(c: Conn, tag: bytes, arguments: bytes) -> None:
    if arguments == LOGIN_ARGUMENTS:
        c.send(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
    else:
        c.send(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")


def imap(c: Conn, greeting: bytes = GREETING, **answers: Answer) -> None:
    """
    A small IMAP4 server: send C{greeting}, then answer each command by its
    name (lower case keyword: C{noop=b"@T OK done\\r\\n"}), or run a
    callable C{(conn, tag, arguments)} for it.  LOGOUT ends the session.
    """
    defaults: dict[str, Answer] = {
        "capability": CAPABILITY,
        "noop": b"* 2 EXISTS\r\n@T OK NOOP completed.\r\n",
        "login": _login,
        "starttls": _starttls,
        "logout": b"* BYE Logging out\r\n@T OK Logout completed.\r\n",
    }
    defaults.update(answers)
    c.send(greeting)
    while True:
        tag, _, command = c.readline().partition(b" ")
        name, _, arguments = command.partition(b" ")
        verb = name.decode("ascii", "replace").lower()
        answer = defaults.get(verb, b"@T BAD Error in IMAP command\r\n")
        if callable(answer):
            answer(c, tag, arguments)
        else:
            c.send(answer.replace(b"@T", tag))
        if verb == "logout":
            c.close()
            return


def _then(reply: bytes, after: Callable[[Conn], None]) -> Callable[[Conn, bytes, bytes], None]:
    def act(c: Conn, tag: bytes, arguments: bytes) -> None:
        c.send(reply.replace(b"@T", tag))
        after(c)

    return act


# -- controls: the probe must pass ---------------------------------------------


@behaviour("imap_ok")
def imap_ok(c: Conn) -> None:
    imap(c)


@behaviour("imaps_ok")
def imaps_ok(c: Conn) -> None:
    """IMAP over implicit TLS (port 993 style)."""
    c.start_tls("good")
    imap(c)


@behaviour("imap_preauth")
def imap_preauth(c: Conn) -> None:
    imap(c, b"* PREAUTH [CAPABILITY IMAP4rev1] logged in as hostile\r\n")


@behaviour("imap_chatter")
def imap_chatter(c: Conn) -> None:
    """Untagged data before the completion, a literal holding a forged completion."""
    imap(
        c,
        noop=b"* 3 EXISTS\r\n* NO [ALERT] quota nearly full\r\n"
        b"* 1 FETCH (BODY[] {16}\r\n@T OK forged\r\n\r\n)\r\n@T OK NOOP completed.\r\n",
    )


@behaviour("imap_segments")
def imap_segments(c: Conn) -> None:
    """The greeting in 4-byte segments 15 ms apart (~0.3 s, within the deadline)."""
    c.trickle(GREETING, 0.015, step=4)
    imap(c, b"")


@behaviour("imap_no_logout_reply")
def imap_no_logout_reply(c: Conn) -> None:
    """No answer to LOGOUT at all."""
    imap(c, logout=lambda c, tag, arguments: c.silence())


@behaviour("imap_late_bye")
def imap_late_bye(c: Conn) -> None:
    """The answer to LOGOUT three seconds late."""

    def late(c: Conn, tag: bytes, arguments: bytes) -> None:
        time.sleep(3.0)
        c.send(b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n")

    imap(c, logout=late)


# -- a stall at each step ------------------------------------------------------------


@behaviour("imap_silent")
def imap_silent(c: Conn) -> None:
    """Accept, never greet."""
    c.silence()


@behaviour("imap_greeting_then_silence")
def imap_greeting_then_silence(c: Conn) -> None:
    """Greet, then never answer NOOP."""
    imap(c, noop=lambda c, tag, arguments: c.silence())


@behaviour("imap_capability_stall")
def imap_capability_stall(c: Conn) -> None:
    imap(c, capability=lambda c, tag, arguments: c.silence())


@behaviour("imap_starttls_stall")
def imap_starttls_stall(c: Conn) -> None:
    """OK to STARTTLS, then never answer the ClientHello."""
    imap(c, starttls=_then(b"@T OK Begin TLS negotiation now.\r\n", Conn.silence))


@behaviour("imap_login_stall")
def imap_login_stall(c: Conn) -> None:
    """The authentication backend hangs: the greeting comes, LOGIN is never answered."""
    imap(c, login=lambda c, tag, arguments: c.silence())


@behaviour("imap_greeting_trickle")
def imap_greeting_trickle(c: Conn) -> None:
    """The greeting at one byte per second."""
    c.trickle(GREETING, 1.0)
    c.silence()


@behaviour("imap_noop_trickle")
def imap_noop_trickle(c: Conn) -> None:
    """The NOOP completion at one byte per second."""
    imap(c, noop=lambda c, tag, arguments: c.trickle(tag + b" OK NOOP completed.\r\n", 1.0))


@behaviour("imap_unterminated")
def imap_unterminated(c: Conn) -> None:
    """The completion without its line end, then nothing."""
    imap(c, noop=_then(b"@T OK NOOP completed.", Conn.silence))


# -- negative replies ---------------------------------------------------------------


@behaviour("imap_bye_greeting")
def imap_bye_greeting(c: Conn) -> None:
    c.send(b"* BYE Too many connections from your IP\r\n")
    c.silence()


@behaviour("imap_noop_no")
def imap_noop_no(c: Conn) -> None:
    imap(c, noop=b"@T NO [UNAVAILABLE] Temporary failure\r\n")


@behaviour("imap_noop_bad")
def imap_noop_bad(c: Conn) -> None:
    imap(c, noop=b"@T BAD Error in IMAP command NOOP\r\n")


@behaviour("imap_bye_during_noop")
def imap_bye_during_noop(c: Conn) -> None:
    imap(c, noop=_then(b"* BYE Server shutting down.\r\n", Conn.silence))


@behaviour("imap_login_refused")
def imap_login_refused(c: Conn) -> None:
    imap(c, login=b"@T NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")


@behaviour("imap_login_echo")
def imap_login_echo(c: Conn) -> None:
    """LOGIN refused as BAD with the command echoed, password and all."""
    imap(
        c,
        login=lambda c, tag, arguments: c.send(tag + b" BAD Error in LOGIN " + arguments + b"\r\n"),
    )


@behaviour("imap_starttls_refused")
def imap_starttls_refused(c: Conn) -> None:
    imap(c, starttls=b"@T NO [UNAVAILABLE] TLS not available\r\n")


@behaviour("imap_no_starttls")
def imap_no_starttls(c: Conn) -> None:
    """CAPABILITY without STARTTLS."""
    imap(
        c,
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS] lies in the greeting\r\n",
        capability=b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n@T OK CAPABILITY completed\r\n",
    )


# -- wrong, partial and early replies ---------------------------------------------------


@behaviour("imap_wrong_tag")
def imap_wrong_tag(c: Conn) -> None:
    imap(c, noop=b"B7 OK NOOP completed.\r\n")


@behaviour("imap_partial_status")
def imap_partial_status(c: Conn) -> None:
    """A completion cut short: C{A1 O}."""
    imap(c, noop=b"@T O\r\n")


@behaviour("imap_tagged_preauth")
def imap_tagged_preauth(c: Conn) -> None:
    """A status only a greeting may have, in a completion."""
    imap(c, noop=b"@T PREAUTH ok\r\n")


@behaviour("imap_continuation")
def imap_continuation(c: Conn) -> None:
    """A continuation request, though no literal was sent."""
    imap(c, noop=_then(b"+ go ahead\r\n", Conn.silence))


@behaviour("imap_early_completion")
def imap_early_completion(c: Conn) -> None:
    """The greeting and a canned completion in one write, before A1 NOOP arrives."""
    c.send(GREETING + b"A1 OK NOOP completed.\r\n")
    c.silence()


@behaviour("imap_starttls_injected_ok")
def imap_starttls_injected_ok(c: Conn) -> None:
    """
    A completion of the NOOP to come, injected in plain text with the OK to
    STARTTLS; after the handshake, silence: read, it would pass the probe.
    """

    def injecting(c: Conn, tag: bytes, arguments: bytes) -> None:
        _starttls(c, tag, injected=b"A3 OK NOOP completed.\r\n")
        c.silence()

    imap(c, starttls=injecting)


@behaviour("imap_starttls_injected_bye")
def imap_starttls_injected_bye(c: Conn) -> None:
    """A BYE injected with the OK to STARTTLS, then good service: read, it would fail the probe."""
    imap(c, starttls=lambda c, tag, arguments: _starttls(c, tag, injected=b"* BYE injected\r\n"))


@behaviour("imap_starttls_garbage")
def imap_starttls_garbage(c: Conn) -> None:
    """OK to STARTTLS, then plain text instead of a ServerHello."""

    def garbage(c: Conn, tag: bytes, arguments: bytes) -> None:
        c.send(tag + b" OK Begin TLS negotiation now.\r\n")
        c.read_tls_record()
        c.send(b"this is not a ServerHello\r\n" * 4)
        c.silence()

    imap(c, starttls=garbage)


@behaviour("imap_starttls_expired")
def imap_starttls_expired(c: Conn) -> None:
    imap(c, starttls=lambda c, tag, arguments: _starttls(c, tag, cert="expired"))


# -- not IMAP at all ------------------------------------------------------------------


@behaviour("imap_pop3_banner")
def imap_pop3_banner(c: Conn) -> None:
    c.send(b"+OK Dovecot (Debian) ready.\r\n")
    c.silence()


@behaviour("imap_smtp_banner")
def imap_smtp_banner(c: Conn) -> None:
    c.send(b"220 hostile.test ESMTP\r\n")
    c.silence()


@behaviour("imap_http_answer")
def imap_http_answer(c: Conn) -> None:
    c.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    c.silence()


@behaviour("imap_binary")
def imap_binary(c: Conn) -> None:
    """A TLS record header and bytes that are no text at all."""
    c.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(256)))
    c.silence()


@behaviour("imap_nul")
def imap_nul(c: Conn) -> None:
    c.send(b"* OK hostile\x00IMAP4 ready\r\n")
    c.silence()


@behaviour("imap_garbage_after_greeting")
def imap_garbage_after_greeting(c: Conn) -> None:
    imap(c, noop=_then(b"Hello, this is not IMAP at all\r\n", Conn.silence))


# -- too much -------------------------------------------------------------------------------


@behaviour("imap_long_line")
def imap_long_line(c: Conn) -> None:
    """A 1 MiB greeting line without a newline."""
    c.flood(b"* OK ", b"f", MIB)
    c.silence()


@behaviour("imap_endless_untagged")
def imap_endless_untagged(c: Conn) -> None:
    """After the greeting, 10 MiB of untagged lines and no completion."""

    def flood(c: Conn, tag: bytes, arguments: bytes) -> None:
        c.flood(b"", b"* OK " + b"e" * 59 + b"\r\n", 10 * MIB)
        c.silence()

    imap(c, noop=flood)


@behaviour("imap_huge_literal")
def imap_huge_literal(c: Conn) -> None:
    """A literal of 1 GB announced (and 1 MiB of it sent)."""

    def flood(c: Conn, tag: bytes, arguments: bytes) -> None:
        c.flood(b"* 1 FETCH (BODY[] {1000000000}\r\n", b"l", MIB)
        c.silence()

    imap(c, noop=flood)


# -- the connection ends early ----------------------------------------------------------


@behaviour("imap_close_before_greeting")
def imap_close_before_greeting(c: Conn) -> None:
    c.close()


@behaviour("imap_close_after_greeting")
def imap_close_after_greeting(c: Conn) -> None:
    """Greet, read NOOP, close without a reply."""
    imap(c, noop=lambda c, tag, arguments: c.close())


@behaviour("imap_reset_after_greeting")
def imap_reset_after_greeting(c: Conn) -> None:
    """Greet, read NOOP, RST."""
    imap(c, noop=lambda c, tag, arguments: c.reset())
