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
L{ismon.wire.imap}.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, auto

from ismon.core.catalogue import MessageId
from ismon.core.requests import BasicCredentials, ConversationRequest
from ismon.core.result import Phase
from ismon.probes.conversation import LineConversation, LineProbe
from ismon.probes.probe import ProbeProtocol, ReactorType
from ismon.probes.resolve import Resolver
from ismon.wire.imap import ImapResponse, ImapResponseParser, Kind, capabilities, quoted

__all__ = ["ImapProbe"]


class _Step(Enum):
    GREETING = auto()
    CAPABILITY = auto()
    STARTTLS = auto()
    LOGIN = auto()
    NOOP = auto()


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


class _NoopConversation(LineConversation[ImapResponse]):
    def __init__(
        self, request: ConversationRequest, login: bytes | None, hidden: tuple[bytes, ...]
    ) -> None:
        super().__init__()
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

    def replies(self, data: bytes) -> Iterable[ImapResponse]:
        return self._parser.feed(data)

    def partial(self) -> bool:
        # Untagged data may come at any time; the start of a completion
        # before its command was sent is the same canned answer as a whole
        # one, split across reads.
        return self._parser.pending_completion if self._sent else self._parser.pending

    def may_come_unasked(self, reply: ImapResponse) -> bool:
        return reply.kind is Kind.UNTAGGED

    def restart_parser(self) -> None:
        # RFC 9051 §6.2.1: nothing read before the handshake counts after it.
        self._parser = ImapResponseParser(self._hidden)

    def _send(self, command: bytes, step: _Step) -> None:
        self._step = step
        self._tags += 1
        self._tag = f"A{self._tags}"
        self.send(self._tag.encode("ascii") + b" " + command)

    def _invalid(self, response: ImapResponse, detail: str) -> None:
        self.phase = Phase.PARSE
        self.fail(MessageId.INVALID_STATUS, number=0, reply=response.text, detail=detail)

    def _negative(self, response: ImapResponse) -> None:
        self.phase = Phase.PARSE
        self.fail(MessageId.NEGATIVE_REPLY, reply=response.text, detail=response.text)

    def reply(self, response: ImapResponse) -> None:
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
            self.upgrade()
        elif self._step is _Step.LOGIN:
            self._send(b"NOOP", _Step.NOOP)
        elif self._step is _Step.NOOP:
            self._tags += 1
            self.finish(b"A%d LOGOUT" % self._tags, response.text)

    def upgraded(self) -> None:
        if self._login is not None:
            self._send(self._login, _Step.LOGIN)
        else:
            self._send(b"NOOP", _Step.NOOP)


class ImapProbe(LineProbe[ConversationRequest]):
    """Probe an IMAP4 server with NOOP (a LOGIN first with credentials)."""

    def __init__(
        self, reactor: ReactorType, request: ConversationRequest, resolver: Resolver | None = None
    ) -> None:
        super().__init__(reactor, request, resolver)
        # Made once, so that credentials no quoted string can carry fail here.
        self._login = None if request.credentials is None else _login_command(request.credentials)
        # What a server echoing LOGIN would send back: never shown.
        self._hidden = _secrets(request.credentials)

    def conversation(self) -> ProbeProtocol:
        return _NoopConversation(self.request, self._login, self._hidden)
