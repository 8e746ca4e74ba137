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
is this small state machine fed by the pure parser of L{ismon.pop3_replies},
in the manner of L{ismon.smtp}.
"""

from __future__ import annotations

from enum import Enum, auto

from ismon.catalogue import MessageId
from ismon.pop3_replies import InvalidReply, Pop3Reply, Pop3ReplyParser, capabilities
from ismon.probe import ConversationProbe, ITLSClient, ProbeProtocol, ReactorType, Resolver
from ismon.replies import printable
from ismon.requests import ConversationRequest, TLSSettings
from ismon.result import Phase

__all__ = ["Pop3Probe"]

# The part of a -ERR reply message 87 quotes: enough to tell "[IN-USE]"
# from "[SYS/TEMP]", short enough for one syslog line.
_DETAIL_CHARS = 120


class _Step(Enum):
    GREETING = auto()
    STLS_CAPA = auto()
    STLS = auto()
    HANDSHAKE = auto()
    CAPA = auto()
    USER = auto()
    PASS = auto()
    STAT = auto()
    DONE = auto()


# The steps whose +OK opens a multi-line body.
_MULTILINE = frozenset({_Step.STLS_CAPA, _Step.CAPA})
# The steps whose -ERR is a refused login (86), not a failing server (87).
_LOGIN = frozenset({_Step.USER, _Step.PASS})


class _CapaProtocol(ProbeProtocol):
    def __init__(self, request: ConversationRequest) -> None:
        self._request = request
        if request.credentials is not None:
            # A server may echo a command it refuses, PASS included.
            self.hidden = (request.credentials.password,)
        self._parser = Pop3ReplyParser()
        self._step = _Step.GREETING
        self._sent = False

    def _waiting(self) -> bool:
        return not self.decided and self._step not in (_Step.DONE, _Step.HANDSHAKE)

    def dataReceived(self, data: bytes) -> None:
        if not self._waiting():
            return
        self.phase = Phase.RECEIVE
        self._sent = False
        try:
            self._parser.feed(data)
            while self._waiting():
                reply = self._parser.reply(multiline=self._step in _MULTILINE)
                if reply is None:
                    break
                self._reply(reply)
                if self._sent and self._waiting() and self._parser.pending:
                    # These bytes were here before our command went out: a
                    # server that answers commands it has not seen is broken,
                    # and must not pass a probe with a canned "+OK".
                    self.phase = Phase.PARSE
                    self.fail(
                        MessageId.INVALID_STATUS,
                        number=0,
                        reply=self.last_reply,
                        detail="reply before the command was sent",
                    )
                    return
        except InvalidReply as e:
            # POP3 has no reply codes: text that is no POP3 reply is 83 with 0.
            self.fail_unreadable(e.received, e.reason)
            return
        if self._waiting() and not self._parser.pending:
            self.phase = Phase.WAIT

    def _send(self, line: bytes, step: _Step) -> None:
        self._step = step
        self.send_line(line)
        self._sent = True

    def _after_capa(self) -> None:
        credentials = self._request.credentials
        if credentials is None:
            self._finish()
        else:
            self._send(b"USER " + credentials.user.encode("utf-8"), _Step.USER)

    def _finish(self) -> None:
        self._step = _Step.DONE
        self.finish(b"QUIT", self.last_reply)

    def _reply(self, reply: Pop3Reply) -> None:
        self.last_reply = reply.text
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
            # Bytes sent before the handshake must not be read as replies
            # after it (CVE-2011-0411 style injection): start from a fresh parser.
            self._parser = Pop3ReplyParser()
            self._step = _Step.HANDSHAKE
            self.start_tls()
        elif step is _Step.CAPA:
            self._after_capa()
        elif step is _Step.USER:
            assert self._request.credentials is not None
            self._send(b"PASS " + self._request.credentials.password.encode("utf-8"), _Step.PASS)
        elif step is _Step.PASS:
            self._send(b"STAT", _Step.STAT)
        elif step is _Step.STAT:
            self._finish()

    def startTLSCompleted(self) -> None:
        self._send(b"CAPA", _Step.CAPA)


class Pop3Probe(ConversationProbe[ConversationRequest]):
    """Probe a POP3 server with CAPA (and, given credentials, a login and STAT)."""

    def __init__(
        self, reactor: ReactorType, request: ConversationRequest, resolver: Resolver | None = None
    ) -> None:
        tls = None if request.tls is None else _client_tls(request.tls)
        super().__init__(reactor, request, resolver, tls)

    def conversation(self) -> ProbeProtocol:
        return _CapaProtocol(self.request)


def _client_tls(settings: TLSSettings) -> ITLSClient:
    from ismon.tls import client_tls  # only TLS watches load the TLS stack (ismon.entry)

    return client_tls(settings)
