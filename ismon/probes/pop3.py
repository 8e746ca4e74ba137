# -*- test-case-name: tests.test_pop3,tests.test_hostile_pop3 -*-
"""
The POP3 probe: the greeting, C{CAPA}, then C{QUIT} (README "What counts as
a failure", POP3).

With STARTTLS: greeting, C{CAPA} (it must list C{STLS}), C{STLS},
handshake, and C{CAPA} again over TLS (RFC 2595 §4: what was learnt before
TLS is discarded).  With credentials (C{--auth-file}), after C{CAPA}:
C{USER}, C{PASS}, then C{STAT}, which makes the server open the mailbox.

Twisted's POP3 client (C{twisted.mail.pop3client}) has no hard deadline and
cannot judge each reply against what a watch expects, so the conversation
is this small state machine fed by the pure parser of L{ismon.wire.pop3},
in the manner of L{ismon.probes.smtp}.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum, auto

from ismon.core.catalogue import MessageId
from ismon.core.requests import ConversationRequest
from ismon.core.result import Phase
from ismon.core.text import printable
from ismon.probes.conversation import LineConversation, LineProbe
from ismon.probes.probe import ProbeProtocol
from ismon.wire.pop3 import Pop3Reply, Pop3ReplyParser, capabilities

__all__ = ["Pop3Probe"]

# The part of a -ERR reply message 87 quotes: enough to tell "[IN-USE]"
# from "[SYS/TEMP]", short enough for one syslog line.
_DETAIL_CHARS = 120


class _Step(Enum):
    GREETING = auto()
    STLS_CAPA = auto()
    STLS = auto()
    CAPA = auto()
    USER = auto()
    PASS = auto()
    STAT = auto()


# The steps whose +OK opens a multi-line body.
_MULTILINE = frozenset({_Step.STLS_CAPA, _Step.CAPA})
# The steps whose -ERR is a refused login (86), not a failing server (87).
_LOGIN = frozenset({_Step.USER, _Step.PASS})


class _CapaConversation(LineConversation[Pop3Reply]):
    def __init__(self, request: ConversationRequest) -> None:
        super().__init__()
        self._request = request
        if request.credentials is not None:
            # A server may echo a command it refuses, PASS included.
            self.hidden = (request.credentials.password,)
        self._parser = Pop3ReplyParser()
        self._step = _Step.GREETING

    def replies(self, data: bytes) -> Iterator[Pop3Reply]:
        # POP3 has no reply codes, and only the step waiting knows whether
        # a +OK opens a body: each reply is read when asked for.
        self._parser.feed(data)
        while True:
            reply = self._parser.reply(multiline=self._step in _MULTILINE)
            if reply is None:
                return
            yield reply

    def partial(self) -> bool:
        return self._parser.pending

    def restart_parser(self) -> None:
        self._parser = Pop3ReplyParser()

    def _send(self, line: bytes, step: _Step) -> None:
        self._step = step
        self.send(line)

    def _after_capa(self) -> None:
        credentials = self._request.credentials
        if credentials is None:
            self._finish()
        else:
            self._send(b"USER " + credentials.user.encode("utf-8"), _Step.USER)

    def _finish(self) -> None:
        self.finish(b"QUIT", self.last_reply)

    def reply(self, reply: Pop3Reply) -> None:
        if not reply.ok:
            self.phase = Phase.PARSE
            if self._step in _LOGIN:
                # The password or the user was refused: a login test's
                # verdict, not the server's (README "What counts as a failure").
                self.fail(MessageId.AUTH_REFUSED, number=0, reply=reply.text)
            else:
                self.fail(
                    MessageId.NEGATIVE_REPLY,
                    reply=reply.text,
                    detail=printable(self.shown(reply.text).encode("utf-8"), _DETAIL_CHARS),
                )
            return
        step = self._step
        if step is _Step.GREETING:
            if self._request.starttls:
                self._send(b"CAPA", _Step.STLS_CAPA)
            else:
                self._send(b"CAPA", _Step.CAPA)
        elif step is _Step.STLS_CAPA:
            if "STLS" not in capabilities(reply):
                self.phase = Phase.PARSE
                self.fail(MessageId.STARTTLS_UNAVAILABLE, reply=reply.text)
                return
            self._send(b"STLS", _Step.STLS)
        elif step is _Step.STLS:
            self.upgrade()
        elif step is _Step.CAPA:
            self._after_capa()
        elif step is _Step.USER:
            assert self._request.credentials is not None
            self._send(b"PASS " + self._request.credentials.password.encode("utf-8"), _Step.PASS)
        elif step is _Step.PASS:
            self._send(b"STAT", _Step.STAT)
        elif step is _Step.STAT:
            self._finish()

    def upgraded(self) -> None:
        self._send(b"CAPA", _Step.CAPA)


class Pop3Probe(LineProbe[ConversationRequest]):
    """Probe a POP3 server with CAPA (and, given credentials, a login and STAT)."""

    def conversation(self) -> ProbeProtocol:
        return _CapaConversation(self.request)
