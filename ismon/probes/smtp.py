# -*- test-case-name: tests.test_smtp -*-
"""
The SMTP probe: the complete greeting, C{NOOP}, then C{QUIT} (docs/failure-rules.md, SMTP).

With STARTTLS: greeting, C{EHLO}, C{STARTTLS}, handshake, C{EHLO} again (RFC
3207 §4.2 discards what was learnt before TLS), then C{NOOP}.

Twisted's C{SMTPClient} is built to send mail and its timeout is an idle
timeout reset on every line; a probe needs one hard deadline and a verdict
on every reply code, so the conversation is this small state machine fed by
the pure reply parser (L{ismon.wire.smtp}).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from enum import Enum, auto

from ismon.core.catalogue import MessageId
from ismon.core.requests import SmtpRequest
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
    NOOP = auto()


# The reply each step waits for.
_EXPECTED = {
    _Step.GREETING: 220,
    _Step.EHLO: 250,
    _Step.STARTTLS: 220,
    _Step.EHLO_AGAIN: 250,
    _Step.NOOP: 250,
}


class _NoopConversation(LineConversation[SmtpReply]):
    def __init__(self, request: SmtpRequest, helo_name: str) -> None:
        super().__init__()
        self._request = request
        self._helo = helo_name
        self._parser = SmtpReplyParser()
        self._step = _Step.GREETING

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
            self.upgrade()
        elif self._step is _Step.EHLO_AGAIN:
            self._send(b"NOOP", _Step.NOOP)
        elif self._step is _Step.NOOP:
            self.finish(b"QUIT", reply.text)

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
