# -*- test-case-name: tests.test_smtp -*-
"""
The SMTP probe: the complete greeting, C{NOOP}, then C{QUIT} (docs/failure-rules.md, SMTP).

With STARTTLS: greeting, C{EHLO}, C{STARTTLS}, handshake, C{EHLO} again (RFC
3207 §4.2 discards what was learnt before TLS), then C{NOOP}.

Twisted's C{SMTPClient} is built to send mail and its timeout is an idle
timeout reset on every line; a probe needs one hard deadline and a verdict
on every reply code, so the conversation is this small state machine fed by
the pure reply parser.
"""

from __future__ import annotations

import socket
from enum import Enum, auto

from ismon.catalogue import MessageId
from ismon.probe import ConversationProbe, ITLSClient, ProbeProtocol, ReactorType, Resolver
from ismon.replies import InvalidReply, SmtpReply, SmtpReplyParser
from ismon.requests import SmtpRequest, TLSSettings
from ismon.result import Phase, judge_smtp_reply

__all__ = ["SmtpProbe"]


class _Step(Enum):
    GREETING = auto()
    EHLO = auto()
    STARTTLS = auto()
    HANDSHAKE = auto()
    EHLO_AGAIN = auto()
    NOOP = auto()
    DONE = auto()


# The reply each step waits for.
_EXPECTED = {
    _Step.GREETING: 220,
    _Step.EHLO: 250,
    _Step.STARTTLS: 220,
    _Step.EHLO_AGAIN: 250,
    _Step.NOOP: 250,
}


class _NoopProtocol(ProbeProtocol):
    def __init__(self, request: SmtpRequest, helo_name: str) -> None:
        self._request = request
        self._helo = helo_name
        self._parser = SmtpReplyParser()
        self._step = _Step.GREETING
        self._sent = False

    def dataReceived(self, data: bytes) -> None:
        if self.decided or self._step in (_Step.DONE, _Step.HANDSHAKE):
            return
        self.phase = Phase.RECEIVE
        try:
            replies = self._parser.feed(data)
        except InvalidReply as e:
            self.fail_unreadable(e.received, e.reason)
            return
        self._sent = False
        for reply in replies:
            if self._sent:
                # This reply was already here before our command went out: a
                # server that answers commands it has not seen is broken, and
                # must not pass a probe with a canned "250".
                self.phase = Phase.PARSE
                self.fail(
                    MessageId.INVALID_STATUS,
                    number=reply.code,
                    reply=reply.text,
                    detail="reply before the command was sent",
                )
                return
            self._reply(reply)
            if self.decided or self._step in (_Step.DONE, _Step.HANDSHAKE):
                return
        if not self._parser.pending:
            self.phase = Phase.WAIT

    def _send(self, line: bytes, step: _Step) -> None:
        self._step = step
        self.send_line(line)
        self._sent = True

    def _reply(self, reply: SmtpReply) -> None:
        self.last_reply = reply.text
        message, number = judge_smtp_reply(reply, _EXPECTED[self._step])
        if message is not None:
            self.phase = Phase.PARSE
            self.fail(message, number=number, reply=reply.text)
            return
        if self._step is _Step.GREETING:
            if self._request.starttls:
                self._send(b"EHLO " + self._helo.encode("idna"), _Step.EHLO)
            else:
                self._send(b"NOOP", _Step.NOOP)
        elif self._step is _Step.EHLO:
            extensions = {line.split(" ")[0].upper() for line in reply.lines[1:]}
            if "STARTTLS" not in extensions:
                self.phase = Phase.PARSE
                self.fail(MessageId.STARTTLS_UNAVAILABLE, reply=reply.text)
                return
            self._send(b"STARTTLS", _Step.STARTTLS)
        elif self._step is _Step.STARTTLS:
            # Bytes sent before the handshake must not be read as replies after
            # it (CVE-2011-0411 style injection): start from a fresh parser.
            self._parser = SmtpReplyParser()
            self._step = _Step.HANDSHAKE
            self.start_tls()
        elif self._step is _Step.EHLO_AGAIN:
            self._send(b"NOOP", _Step.NOOP)
        elif self._step is _Step.NOOP:
            self._step = _Step.DONE
            self.finish(b"QUIT", reply.text)

    def startTLSCompleted(self) -> None:
        self._send(b"EHLO " + self._helo.encode("idna"), _Step.EHLO_AGAIN)


class SmtpProbe(ConversationProbe[SmtpRequest]):
    """Probe an SMTP server with NOOP."""

    def __init__(
        self, reactor: ReactorType, request: SmtpRequest, resolver: Resolver | None = None
    ) -> None:
        tls = None if request.tls is None else _client_tls(request.tls)
        super().__init__(reactor, request, resolver, tls)
        self._helo = request.helo_name or _local_name()

    def conversation(self) -> ProbeProtocol:
        return _NoopProtocol(self.request, self._helo)


def _client_tls(settings: TLSSettings) -> ITLSClient:
    from ismon.tls import client_tls  # only TLS watches load the TLS stack (ismon.entry)

    return client_tls(settings)


def _local_name() -> str:
    name = socket.gethostname() or "localhost"
    try:
        name.encode("idna")
    except UnicodeError:
        return "localhost"
    return name if name.isascii() and all(c.isalnum() or c in ".-" for c in name) else "localhost"
