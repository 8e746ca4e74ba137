# -*- test-case-name: tests.test_probe,tests.test_smtp,tests.test_pop3,tests.test_imap,tests.test_ftp -*-
"""
What the probes of every protocol share on top of the deadline core
(L{ismon.probes.probe}):

  - L{ConversationProbe}: a probe is one conversation under
    L{run_probe}'s one deadline, with the watch's resolver and, for a TLS
    watch, its TLS client (made here, on demand: only TLS watches load the
    TLS stack, docs/architecture.md "The fast path");
  - L{LineConversation}: the conversation of a line protocol (SMTP, POP3,
    IMAP4, FTP), with the guards every one of them needs written once;
  - L{LineProbe}: the probe of a line protocol, which may upgrade with
    STARTTLS instead of speaking TLS from the first byte.

HTTP shares L{ConversationProbe} but not L{LineConversation}: it sends one
request and reads one answer that is no sequence of replies, so no reply
can arrive before its command, and it has no STARTTLS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred
from zope.interface import implementer

from ismon.core.catalogue import MessageId
from ismon.core.requests import ProbeRequest
from ismon.core.result import Phase, ProbeResult
from ismon.core.text import printable
from ismon.probes.probe import IProbe, ITLSClient, ProbeProtocol, ReactorType, run_probe
from ismon.probes.resolve import Resolver, system_resolver
from ismon.wire.errors import InvalidReply

__all__ = ["ConversationProbe", "LineConversation", "LineProbe", "StartTLSRequest"]

_Request = TypeVar("_Request", bound=ProbeRequest)


@implementer(IProbe)
class ConversationProbe(Generic[_Request]):
    """
    A probe that is one L{conversation} under L{run_probe}'s one deadline.
    A subclass says what a conversation is; the resolver, the TLS client and
    the deadline are made here.

    @ivar request: what the watch asks (L{ismon.core.requests}).
    """

    def __init__(
        self, reactor: ReactorType, request: _Request, resolver: Resolver | None = None
    ) -> None:
        self._reactor = reactor
        self.request = request
        self._resolver = resolver or system_resolver(reactor)
        self._tls: ITLSClient | None = None
        if request.tls is not None:
            # Imported here: only TLS watches load the TLS stack.
            from ismon.probes.tls import client_tls

            self._tls = client_tls(request.tls)

    def conversation(self) -> ProbeProtocol:
        """A new conversation for one probe."""
        raise NotImplementedError

    @property
    def implicit_tls(self) -> bool:
        """Whether TLS is spoken from the first byte (HTTPS, SMTPS ...)."""
        return self._tls is not None

    def probe(self) -> Deferred[ProbeResult]:
        return self.converse(self.conversation)

    def converse(self, factory: Callable[[], ProbeProtocol]) -> Deferred[ProbeResult]:
        """
        One conversation made by C{factory} under L{run_probe}'s deadline,
        with this probe's server, resolver and TLS (a probe whose
        conversation depends on the probe, as DNS's query does, calls this).
        """
        return run_probe(
            self._reactor,
            self._resolver,
            host=self.request.host,
            port=self.request.port,
            timeout=self.request.timeout,
            protocol_factory=factory,
            tls=self._tls,
            implicit_tls=self.implicit_tls,
        )


class StartTLSRequest(ProbeRequest, Protocol):
    """The request of a line protocol: it may ask for STARTTLS."""

    @property
    def starttls(self) -> bool: ...


_LineRequest = TypeVar("_LineRequest", bound=StartTLSRequest)


class LineProbe(ConversationProbe[_LineRequest]):
    """
    The probe of a line protocol: with C{--tls} alone TLS from the first
    byte; with C{--starttls} the conversation upgrades after the greeting.
    """

    @property
    def implicit_tls(self) -> bool:
        return self._tls is not None and not self.request.starttls


class _Reply(Protocol):
    @property
    def text(self) -> str:
        """The reply as one log-safe line."""
        ...


_ReplyT = TypeVar("_ReplyT", bound=_Reply)


class LineConversation(ProbeProtocol, Generic[_ReplyT]):
    """
    A line protocol's conversation: the server greets, then each command
    gets its reply, read by the protocol's sans-io parser (L{ismon.wire})
    and judged by the step that waits for it.  A subclass gives the replies
    a read completes (L{replies}), judges each one (L{reply}), and sends its
    commands with L{send}.

    What every line protocol must guard against is written here, once:

      - text that is no reply of the protocol (the parser's
        L{InvalidReply}): message 83 with 0 (README "Messages");
      - a reply that arrived before its command was sent.  What came in the
        same read as the reply that made us send the next command was
        written before that command reached the server, so it cannot be its
        answer: a server that answers commands it has not seen is broken
        and must not pass a probe with a canned "250".  Message 83 with the
        reply's code (L{reply_code}; 0 for a reply still incomplete);
      - what the server sent before a STARTTLS handshake is dropped with
        the parser (L{upgrade}; CVE-2011-0411 style injection).
    """

    def __init__(self) -> None:
        self._reading = True
        # A command went out during the read being handled.
        self._sent = False

    # -- what a protocol gives -----------------------------------------------

    def replies(self, data: bytes) -> Iterable[_ReplyT]:
        """
        Feed C{data} to the parser; the replies it completes, in order.
        An iterator may read each reply only when asked for it (POP3: only
        the step waiting knows whether a reply has a body).

        @raise InvalidReply: what came is no reply of the protocol.
        """
        raise NotImplementedError

    def reply(self, reply: _ReplyT) -> None:
        """Judge C{reply}: fail, L{send} the next command, or L{finish}."""
        raise NotImplementedError

    def partial(self) -> bool:
        """Whether part of a reply has arrived but not all of it."""
        raise NotImplementedError

    def restart_parser(self) -> None:
        """Forget everything read so far: a fresh parser (STARTTLS)."""
        raise NotImplementedError

    def upgraded(self) -> None:
        """The STARTTLS handshake is done: go on with the conversation."""
        raise NotImplementedError

    def reply_code(self, reply: _ReplyT) -> int:
        """The reply's code for message 83 (0: the protocol has none)."""
        return 0

    def may_come_unasked(self, reply: _ReplyT) -> bool:
        """Whether C{reply} may come at any time (IMAP4's untagged data)."""
        return False

    # -- the conversation ----------------------------------------------------

    @property
    def listening(self) -> bool:
        """Replies are read: no verdict yet, and no STARTTLS handshake running."""
        return self._reading and not self.decided

    def dataReceived(self, data: bytes) -> None:
        if not self.listening:
            return
        self.phase = Phase.RECEIVE
        self._sent = False
        try:
            for reply in self.replies(data):
                if self._sent and not self.may_come_unasked(reply):
                    self._early(self.reply_code(reply), reply.text)
                    return
                self.last_reply = reply.text
                self.reply(reply)
                if not self.listening:
                    return
            if self._sent and self.partial():
                self._early(0, "")
                return
        except InvalidReply as e:
            self.fail_unreadable(e.received, e.reason)
            return
        if not self.partial():
            self.phase = Phase.WAIT

    def _early(self, number: int, reply: str) -> None:
        self.phase = Phase.PARSE
        self.fail(
            MessageId.INVALID_STATUS,
            number=number,
            reply=reply,
            detail="reply before the command was sent",
        )

    def send(self, line: bytes) -> None:
        """Send one command line; CRLF is added."""
        self.phase = Phase.SEND
        self.transport.write(line + b"\r\n")  # type: ignore[union-attr]
        self.phase = Phase.WAIT
        self._sent = True

    def upgrade(self) -> None:
        """
        The server agreed to STARTTLS: start the handshake.  What it sent
        before the handshake is dropped with the parser; L{upgraded} follows.
        """
        self._reading = False
        self.restart_parser()
        self.start_tls()

    def startTLSCompleted(self) -> None:
        self._reading = True
        self.upgraded()

    def fail_unreadable(self, received: bytes, reason: str) -> None:
        """
        Text that is no reply of the protocol, so no reply code can be read:
        message 83 with 0 (README "Messages").
        """
        for secret in self.hidden:
            if secret:
                received = received.replace(secret.encode("utf-8"), b"***")
        self.phase = Phase.PARSE
        self.fail(MessageId.INVALID_STATUS, number=0, reply=printable(received, 120), detail=reason)

    def finish(self, goodbye: bytes, reply: str) -> None:
        """
        The last reply was good: send the protocol's goodbye and succeed
        without waiting for its answer.  The goodbye is a courtesy; a late
        or missing answer to it (exim answers QUIT ~200 ms later) must not
        count against the server.
        """
        self._reading = False
        self.transport.write(goodbye + b"\r\n")  # type: ignore[union-attr]
        self.succeed(reply)
