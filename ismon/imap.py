# -*- test-case-name: tests.test_imap -*-
"""
The IMAP4 probe (README "What counts as a failure", IMAP4): the greeting
(C{* OK} or C{* PREAUTH}), C{A1 NOOP} until its tagged C{OK} (untagged
lines in between are allowed), then C{A2 LOGOUT}, written without waiting
for its answer.

With STARTTLS: greeting, C{CAPABILITY} (it must list STARTTLS), C{STARTTLS},
the handshake, then the rest with a fresh parser; the tags keep counting.
With credentials: C{LOGIN} with quoted strings before C{NOOP}, skipped after
a C{PREAUTH} greeting (the connection is logged in already, and LOGIN would
be refused there).

Twisted's C{IMAP4Client} is built to read mail, with an idle timeout; a
probe needs one hard deadline and a verdict on every response, so the
conversation is this small state machine fed by the pure parser of
L{ismon.imap_replies}.
"""

from __future__ import annotations

from enum import Enum, auto

from ismon.catalogue import MessageId
from ismon.imap_replies import (
    ImapResponse,
    ImapResponseParser,
    InvalidImapResponse,
    Kind,
    capabilities,
    quoted,
)
from ismon.probe import ConversationProbe, ITLSClient, ProbeProtocol, ReactorType, Resolver
from ismon.requests import BasicCredentials, ConversationRequest, TLSSettings
from ismon.result import Phase

__all__ = ["ImapProbe"]


class _Step(Enum):
    GREETING = auto()
    CAPABILITY = auto()
    STARTTLS = auto()
    HANDSHAKE = auto()
    LOGIN = auto()
    NOOP = auto()
    DONE = auto()


def _login_command(credentials: BasicCredentials) -> bytes:
    """
    The arguments of C{LOGIN}.

    @raise ValueError: the credentials hold CR, LF or NUL (the options refuse them).
    """
    return b"LOGIN " + quoted(credentials.user) + b" " + quoted(credentials.password)


def _secrets(credentials: BasicCredentials | None) -> tuple[bytes, ...]:
    """The password as typed and as quoted on the wire."""
    if credentials is None:
        return ()
    return (credentials.password.encode("utf-8"), quoted(credentials.password)[1:-1])


class _NoopProtocol(ProbeProtocol):
    def __init__(
        self, request: ConversationRequest, login: bytes | None, hidden: tuple[bytes, ...]
    ) -> None:
        self._request = request
        self._login = login
        self._hidden = hidden
        self._parser = ImapResponseParser(hidden)
        if request.credentials is not None:
            self.hidden = (request.credentials.password,)
        self._step = _Step.GREETING
        self._tags = 0
        self._tag = ""
        self._capabilities: set[str] = set()
        self._sent = False

    def dataReceived(self, data: bytes) -> None:
        if self.decided or self._step in (_Step.DONE, _Step.HANDSHAKE):
            return
        self.phase = Phase.RECEIVE
        try:
            responses = self._parser.feed(data)
        except InvalidImapResponse as e:
            self.fail_unreadable(e.received, e.reason)
            return
        self._sent = False
        for response in responses:
            if self._sent and response.kind is not Kind.UNTAGGED:
                # It was here before our command went out: a server that
                # completes commands it has not seen must not pass with a
                # canned "A1 OK".  (Untagged data may come at any time.)
                self._invalid(response, "reply before the command was sent")
                return
            self._response(response)
            if self.decided or self._step in (_Step.DONE, _Step.HANDSHAKE):
                return
        if self._sent and self._parser.pending_completion:
            # The start of a completion was already here, unfinished, when
            # our command went out: the same canned answer, split across reads.
            self.phase = Phase.PARSE
            self.fail(
                MessageId.INVALID_STATUS, number=0, detail="reply before the command was sent"
            )
            return
        if not self._parser.pending:
            self.phase = Phase.WAIT

    def _send(self, command: bytes, step: _Step) -> None:
        self._step = step
        self._tags += 1
        self._tag = f"A{self._tags}"
        self.send_line(self._tag.encode("ascii") + b" " + command)
        self._sent = True

    def _invalid(self, response: ImapResponse, detail: str) -> None:
        self.phase = Phase.PARSE
        self.fail(MessageId.INVALID_STATUS, number=0, reply=response.text, detail=detail)

    def _negative(self, response: ImapResponse) -> None:
        self.phase = Phase.PARSE
        self.fail(MessageId.NEGATIVE_REPLY, reply=response.text, detail=response.text)

    def _response(self, response: ImapResponse) -> None:
        self.last_reply = response.text
        if response.kind is Kind.CONTINUATION:
            # We never send a literal, so nothing may ask for one.
            self._invalid(response, "continuation request to no literal")
        elif self._step is _Step.GREETING:
            self._greeting(response)
        elif response.kind is Kind.UNTAGGED:
            # BYE: the server is closing (shutdown, autologout); BAD: a
            # protocol error or internal failure (RFC 9051 §7.1.3).  Other
            # untagged lines (warnings, data) are allowed.
            if response.keyword in ("BYE", "BAD"):
                self._negative(response)
            elif self._step is _Step.CAPABILITY:
                self._capabilities |= capabilities(response)
        elif response.tag != self._tag:
            self._invalid(response, f"reply to no command sent (tag {response.tag})")
        elif response.keyword != "OK":
            if self._step is _Step.LOGIN and response.keyword == "NO":
                self.phase = Phase.PARSE
                self.fail(MessageId.AUTH_REFUSED, number=0, reply=response.text)
            else:
                self._negative(response)
        else:
            self._completed(response)

    def _greeting(self, response: ImapResponse) -> None:
        if response.kind is Kind.TAGGED:
            self._invalid(response, f"reply to no command sent (tag {response.tag})")
        elif response.keyword in ("BYE", "NO", "BAD"):
            self._negative(response)
        elif response.keyword not in ("OK", "PREAUTH"):
            self._invalid(response, "not an IMAP greeting")
        elif response.keyword == "PREAUTH" and self._request.starttls:
            # A logged-in connection cannot be upgraded (RFC 9051 §6.2.1); a
            # man in the middle injects PREAUTH to keep a client in plain text.
            self.phase = Phase.PARSE
            self.fail(
                MessageId.STARTTLS_UNAVAILABLE,
                reply=response.text,
                detail="PREAUTH greeting: STARTTLS is no longer possible",
            )
        elif self._request.starttls:
            self._send(b"CAPABILITY", _Step.CAPABILITY)
        elif self._login is not None and response.keyword == "OK":
            self._send(self._login, _Step.LOGIN)
        else:
            self._send(b"NOOP", _Step.NOOP)

    def _completed(self, response: ImapResponse) -> None:
        if self._step is _Step.CAPABILITY:
            if "STARTTLS" not in self._capabilities:
                self.phase = Phase.PARSE
                self.fail(MessageId.STARTTLS_UNAVAILABLE, reply=response.text)
                return
            self._send(b"STARTTLS", _Step.STARTTLS)
        elif self._step is _Step.STARTTLS:
            # Bytes sent before the handshake must not be read as responses
            # after it (RFC 9051 §6.2.1; CVE-2011-0411 style injection).
            self._parser = ImapResponseParser(self._hidden)
            self._step = _Step.HANDSHAKE
            self.start_tls()
        elif self._step is _Step.LOGIN:
            self._send(b"NOOP", _Step.NOOP)
        elif self._step is _Step.NOOP:
            self._step = _Step.DONE
            self._tags += 1
            self.finish(b"A%d LOGOUT" % self._tags, response.text)

    def startTLSCompleted(self) -> None:
        if self._login is not None:
            self._send(self._login, _Step.LOGIN)
        else:
            self._send(b"NOOP", _Step.NOOP)


class ImapProbe(ConversationProbe[ConversationRequest]):
    """Probe an IMAP4 server with NOOP (a LOGIN first with credentials)."""

    def __init__(
        self, reactor: ReactorType, request: ConversationRequest, resolver: Resolver | None = None
    ) -> None:
        tls = None if request.tls is None else _client_tls(request.tls)
        super().__init__(reactor, request, resolver, tls)
        # Made once, so that credentials no quoted string can carry fail here.
        self._login = None if request.credentials is None else _login_command(request.credentials)
        # What a server echoing LOGIN would send back: never shown.
        self._hidden = _secrets(request.credentials)

    def conversation(self) -> ProbeProtocol:
        return _NoopProtocol(self.request, self._login, self._hidden)


def _client_tls(settings: TLSSettings) -> ITLSClient:
    from ismon.tls import client_tls  # only TLS watches load the TLS stack (ismon.entry)

    return client_tls(settings)
