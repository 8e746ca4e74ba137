# -*- test-case-name: tests.test_smtp -*-
"""
The SMTP probe: the complete greeting, C{NOOP}, then C{QUIT} (docs/failure-rules.md, SMTP).

With STARTTLS: greeting, C{EHLO}, C{STARTTLS}, handshake, C{EHLO} again (RFC
3207 §4.2 discards what was learnt before TLS), then C{NOOP}.

With credentials (C{--auth-file}): after the (last) C{EHLO}, C{AUTH PLAIN}
with the initial response when the EHLO reply offers PLAIN, else C{AUTH
LOGIN} (user, then password, each after its 334) when it offers LOGIN
(RFC 4954); 235, then C{NOOP}.  Any other reply to the AUTH steps is a
refused login, message 86 with its code; an EHLO reply that offers neither
mechanism is 86 with 0.  The option parser allows a login only over TLS
(C{--tls} or C{--starttls}) unless C{--insecure} says otherwise.  The
password, and the base64 forms of it the conversation sends, are never
shown: a server that echoes them has them replaced (L{ProbeProtocol.hidden}).

Twisted's C{SMTPClient} is built to send mail and its timeout is an idle
timeout reset on every line; a probe needs one hard deadline and a verdict
on every reply code, so the conversation is this small state machine fed by
the pure reply parser (L{ismon.wire.smtp}).
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterable
from enum import Enum, auto

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, SmtpRequest
from ismon.core.result import Phase
from ismon.probes.conversation import LineConversation, LineProbe
from ismon.probes.probe import ProbeProtocol, ReactorType
from ismon.probes.resolve import Resolver
from ismon.wire.smtp import SmtpReply, SmtpReplyParser, judge_smtp_reply

__all__ = ["SmtpProbe"]


class _Step(Enum):
    GREETING = auto()
    EHLO = auto()
    STARTTLS = auto()
    EHLO_AGAIN = auto()
    AUTH_PLAIN = auto()
    AUTH_LOGIN = auto()
    AUTH_USER = auto()
    AUTH_PASSWORD = auto()
    NOOP = auto()


# The reply each step waits for.
_EXPECTED = {
    _Step.GREETING: 220,
    _Step.EHLO: 250,
    _Step.STARTTLS: 220,
    _Step.EHLO_AGAIN: 250,
    _Step.AUTH_PLAIN: 235,
    _Step.AUTH_LOGIN: 334,
    _Step.AUTH_USER: 334,
    _Step.AUTH_PASSWORD: 235,
    _Step.NOOP: 250,
}
# The steps whose every other reply is a refused login (86), not a failing server.
_LOGIN = frozenset({_Step.AUTH_PLAIN, _Step.AUTH_LOGIN, _Step.AUTH_USER, _Step.AUTH_PASSWORD})


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def _extensions(reply: SmtpReply) -> set[str]:
    """The extension keywords of an EHLO reply (its first line is the server's name)."""
    return {line.split(" ")[0].upper() for line in reply.lines[1:]}


def _mechanisms(reply: SmtpReply) -> set[str]:
    """
    The SASL mechanisms an EHLO reply offers: C{AUTH PLAIN LOGIN}, and the
    C{AUTH=LOGIN} of servers written for old clients.
    """
    offered: set[str] = set()
    for line in reply.lines[1:]:
        words = line.upper().split()
        if not words:
            continue
        keyword, equals, first = words[0].partition("=")
        if keyword == "AUTH":
            offered.update(words[1:])
            if equals and first:
                offered.add(first)
    return offered


class _NoopConversation(LineConversation[SmtpReply]):
    def __init__(self, request: SmtpRequest, helo_name: str) -> None:
        super().__init__()
        self._request = request
        self._helo = helo_name
        self._parser = SmtpReplyParser()
        self._step = _Step.GREETING
        self._credentials = request.credentials
        if self._credentials is not None:
            user = self._credentials.user.encode("utf-8")
            password = self._credentials.password.encode("utf-8")
            # What the login sends, as a server might echo it back; the
            # longest first: the PLAIN token may end with the password's base64.
            self.hidden = (
                _b64(b"\0" + user + b"\0" + password).decode("ascii"),
                _b64(password).decode("ascii"),
                self._credentials.password,
            )

    def replies(self, data: bytes) -> Iterable[SmtpReply]:
        return self._parser.feed(data)

    def partial(self) -> bool:
        return self._parser.pending

    def restart_parser(self) -> None:
        self._parser = SmtpReplyParser()

    def reply_code(self, reply: SmtpReply) -> int:
        return reply.code

    def _send(self, line: bytes, step: _Step) -> None:
        self._step = step
        self.send(line)

    def reply(self, reply: SmtpReply) -> None:
        message, number = judge_smtp_reply(reply, _EXPECTED[self._step])
        if message is not None:
            self.phase = Phase.PARSE
            if self._step in _LOGIN:
                # The login was refused: a login test's verdict (README "What
                # counts as a failure"), with the server's code.
                message = MessageId.AUTH_REFUSED
            self.fail(message, number=number, reply=reply.text)
            return
        step = self._step
        if step is _Step.GREETING:
            if self._request.starttls or self._credentials is not None:
                self._send(b"EHLO " + self._helo.encode("idna"), _Step.EHLO)
            else:
                self._send(b"NOOP", _Step.NOOP)
        elif step is _Step.EHLO and self._request.starttls:
            if "STARTTLS" not in _extensions(reply):
                self.phase = Phase.PARSE
                self.fail(MessageId.STARTTLS_UNAVAILABLE, reply=reply.text)
                return
            self._send(b"STARTTLS", _Step.STARTTLS)
        elif step is _Step.STARTTLS:
            self.upgrade()
        elif step in (_Step.EHLO, _Step.EHLO_AGAIN):
            if self._credentials is None:
                self._send(b"NOOP", _Step.NOOP)
            else:
                self._log_in(reply, self._credentials)
        elif step is _Step.AUTH_LOGIN:
            assert self._credentials is not None
            self._send(_b64(self._credentials.user.encode("utf-8")), _Step.AUTH_USER)
        elif step is _Step.AUTH_USER:
            assert self._credentials is not None
            self._send(_b64(self._credentials.password.encode("utf-8")), _Step.AUTH_PASSWORD)
        elif step in (_Step.AUTH_PLAIN, _Step.AUTH_PASSWORD):
            self._send(b"NOOP", _Step.NOOP)
        elif step is _Step.NOOP:
            self.finish(b"QUIT", reply.text)

    def _log_in(self, ehlo: SmtpReply, credentials: BasicCredentials) -> None:
        """AUTH PLAIN if the EHLO reply offers it, else AUTH LOGIN, else 86 with 0."""
        offered = _mechanisms(ehlo)
        user = credentials.user.encode("utf-8")
        password = credentials.password.encode("utf-8")
        if "PLAIN" in offered:
            # RFC 4616: no authorization identity, then the user and password.
            self._send(b"AUTH PLAIN " + _b64(b"\0" + user + b"\0" + password), _Step.AUTH_PLAIN)
        elif "LOGIN" in offered:
            self._send(b"AUTH LOGIN", _Step.AUTH_LOGIN)
        else:
            self.phase = Phase.PARSE
            self.fail(
                MessageId.AUTH_REFUSED,
                number=0,
                reply=ehlo.text,
                detail="the server offers neither AUTH PLAIN nor AUTH LOGIN",
            )

    def upgraded(self) -> None:
        self._send(b"EHLO " + self._helo.encode("idna"), _Step.EHLO_AGAIN)


class SmtpProbe(LineProbe[SmtpRequest]):
    """Probe an SMTP server with NOOP."""

    def __init__(
        self, reactor: ReactorType, request: SmtpRequest, resolver: Resolver | None = None
    ) -> None:
        super().__init__(reactor, request, resolver)
        self._helo = request.helo_name or _local_name()

    def conversation(self) -> ProbeProtocol:
        return _NoopConversation(self.request, self._helo)


def _local_name() -> str:
    name = socket.gethostname() or "localhost"
    try:
        name.encode("idna")
    except UnicodeError:
        return "localhost"
    return name if name.isascii() and all(c.isalnum() or c in ".-" for c in name) else "localhost"
