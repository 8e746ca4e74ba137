# -*- test-case-name: tests.test_ftp -*-
"""
The FTP probe: the complete greeting (C{220}, multi-line included), C{NOOP},
then C{QUIT} without waiting for its answer (README "What counts as a failure", FTP).

Before a login vsftpd answers C{NOOP} with C{530} (login required): that
still shows a working command loop, so without C{--auth-file} C{530}
passes.  With C{--auth-file}: C{USER} (C{331}, or C{230} at once), C{PASS}
(C{230}), and then C{NOOP} must be C{200}.  With C{--starttls} (RFC 4217):
C{AUTH TLS} (C{234}), the handshake, then the same conversation; C{PBSZ}
and C{PROT} only matter for data connections, which a probe never opens.

C{120} ("service ready in nnn minutes") before C{220} is a failure (83
with 120): the daemon itself says it cannot serve now.

twisted.protocols.ftp's client queues commands behind an idle timeout and
has no C{AUTH TLS}; a probe needs one hard deadline and a verdict on
every reply, so this is a small state machine fed by the pure parser of
L{ismon.wire.ftp}.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, auto

from ismon.core.catalogue import MessageId
from ismon.core.requests import ConversationRequest
from ismon.core.result import Phase
from ismon.probes.conversation import LineConversation, LineProbe
from ismon.probes.probe import ProbeProtocol
from ismon.wire.ftp import FtpReply, FtpReplyParser

__all__ = ["FtpProbe"]


class _Step(Enum):
    GREETING = auto()
    AUTH_TLS = auto()
    USER = auto()
    PASS = auto()
    NOOP = auto()


# RFC 959 §5.4 / RFC 4217 §4: the replies that let each step go on.
_GOOD = {
    _Step.GREETING: {220},
    _Step.AUTH_TLS: {234},
    _Step.USER: {230, 331},
    _Step.PASS: {202, 230},
    _Step.NOOP: {200},
}
# "Not logged in": a refused login, or (no login configured) proof that the
# command loop answers.
_NOT_LOGGED_IN = 530


class _FtpConversation(LineConversation[FtpReply]):
    def __init__(self, request: ConversationRequest) -> None:
        super().__init__()
        self._request = request
        if request.credentials is not None:
            # A server may echo a command it refuses, PASS included.
            self.hidden = (request.credentials.password,)
        self._parser = FtpReplyParser()
        self._step = _Step.GREETING

    def replies(self, data: bytes) -> Iterable[FtpReply]:
        return self._parser.feed(data)

    def partial(self) -> bool:
        return self._parser.pending

    def restart_parser(self) -> None:
        # RFC 4217 §9: what came in the clear after AUTH TLS's 234 is dropped.
        self._parser = FtpReplyParser()

    def reply_code(self, reply: FtpReply) -> int:
        return reply.code

    def _send(self, line: bytes, step: _Step) -> None:
        self._step = step
        self.send(line)

    def reply(self, reply: FtpReply) -> None:
        step = self._step
        if reply.code not in _GOOD[step]:
            self._refused(step, reply)
            return
        if step is _Step.GREETING:
            if self._request.starttls:
                self._send(b"AUTH TLS", _Step.AUTH_TLS)
            else:
                self._command()
        elif step is _Step.AUTH_TLS:
            self.upgrade()
        elif step is _Step.USER and reply.code == 331:
            assert self._request.credentials is not None
            self._send(b"PASS " + self._request.credentials.password.encode(), _Step.PASS)
        elif step in (_Step.USER, _Step.PASS):
            self._send(b"NOOP", _Step.NOOP)
        else:
            self._done(reply)

    def _refused(self, step: _Step, reply: FtpReply) -> None:
        """A reply the step does not go on with: the verdict."""
        if (
            step is _Step.NOOP
            and reply.code == _NOT_LOGGED_IN
            and self._request.credentials is None
        ):
            self._done(reply)
            return
        self.phase = Phase.PARSE
        if step in (_Step.USER, _Step.PASS) and reply.code == _NOT_LOGGED_IN:
            self.fail(MessageId.AUTH_REFUSED, number=reply.code, reply=reply.text)
        elif step is _Step.AUTH_TLS and 500 <= reply.code <= 599:
            # 500/502 unknown command, 504 not for this mechanism, 534 refused by policy.
            self.fail(MessageId.STARTTLS_UNAVAILABLE, reply=reply.text)
        else:
            self.fail(MessageId.INVALID_STATUS, number=reply.code, reply=reply.text)

    def _command(self) -> None:
        """After the greeting (and TLS): the login if configured, else NOOP."""
        credentials = self._request.credentials
        if credentials is None:
            self._send(b"NOOP", _Step.NOOP)
        else:
            self._send(b"USER " + credentials.user.encode(), _Step.USER)

    def _done(self, reply: FtpReply) -> None:
        self.finish(b"QUIT", reply.text)

    def upgraded(self) -> None:
        self._command()


class FtpProbe(LineProbe[ConversationRequest]):
    """Probe an FTP server with NOOP (and, with credentials, a login first)."""

    def conversation(self) -> ProbeProtocol:
        return _FtpConversation(self.request)
