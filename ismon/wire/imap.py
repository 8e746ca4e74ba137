# -*- test-case-name: tests.test_imap_replies -*-
"""
A sans-I/O parser of what an IMAP4 server says (RFC 9051 §7, RFC 3501 §7):
untagged C{* ...} responses, C{+} continuation requests and tagged
completions (C{A1 OK ...}), and the quoting of C{LOGIN}'s arguments.

Bounded like L{ismon.wire.http}: a physical line over L{MAX_IMAP_LINE_BYTES},
or more than L{MAX_IMAP_RESPONSE_BYTES} of responses (literals included),
or more than L{MAX_IMAP_RESPONSES} responses, before a tagged completion,
is an L{InvalidImapResponse}, never a growing buffer.  The count bounds the
CPU a read costs: 64 KiB of two-byte continuation requests (C{+}) were
32767 responses, 85 ms of parsing (found by the imap fuzz target's
one-hour run), where a real server sends a handful per command.  Bytes that cannot begin a response (binary data, another
protocol's banner) are refused as soon as they arrive, not at the end of
their line.

Literals (C{{n}} at the end of a line, then n raw bytes, then the rest of
the line; RFC 9051 §4.3) are skipped, counted against the response bound
and never kept: the probe needs none of their content, and an announced
literal larger than what is left of the bound is refused at once, before
its bytes arrive.
"""

from __future__ import annotations

import re
from enum import Enum

import attrs

from ismon.core.text import printable
from ismon.wire.errors import InvalidReply

__all__ = [
    "CONDITIONS",
    "MAX_IMAP_LINE_BYTES",
    "MAX_IMAP_RESPONSES",
    "MAX_IMAP_RESPONSE_BYTES",
    "ImapResponse",
    "ImapResponseParser",
    "InvalidImapResponse",
    "Kind",
    "capabilities",
    "quoted",
]

# Real servers stay far below: dovecot's longest line here (its CAPABILITY
# answer) is about 300 bytes.
MAX_IMAP_LINE_BYTES = 8 * 1024
# Everything the server says from one tagged completion to the next.
MAX_IMAP_RESPONSE_BYTES = 64 * 1024
# Responses from one tagged completion to the next: dovecot sends one to
# three per command of the probe.
MAX_IMAP_RESPONSES = 1024
# How much of a response a log line shows.
TEXT_LIMIT = 160

#: The status conditions of RFC 9051 §7.1 (PREAUTH and BYE only untagged).
CONDITIONS = frozenset({"OK", "NO", "BAD", "PREAUTH", "BYE"})


class InvalidImapResponse(InvalidReply):
    """The server's bytes are no IMAP4 response (message 83 with 0)."""


class Kind(Enum):
    UNTAGGED = "untagged"
    TAGGED = "tagged"
    CONTINUATION = "continuation"


@attrs.frozen
class ImapResponse:
    """
    One response.  C{keyword} is upper case: the condition (OK, NO, BAD,
    PREAUTH, BYE), the data name (CAPABILITY), or the number of C{* 5
    EXISTS}; empty for a continuation.  C{rest} is what follows it, literal
    contents left out (bounded by the response bound); C{text} is the whole
    response as a short log-safe line.
    """

    kind: Kind
    tag: str
    keyword: str
    rest: str
    text: str

    @property
    def condition(self) -> str | None:
        return self.keyword if self.keyword in CONDITIONS else None


def capabilities(response: ImapResponse) -> frozenset[str]:
    """The capability names of an untagged C{CAPABILITY} response, upper case."""
    if response.kind is not Kind.UNTAGGED or response.keyword != "CAPABILITY":
        return frozenset()
    return frozenset(name.upper() for name in response.rest.split())


# A tag is any ASTRING-CHAR but "+" (RFC 9051 §9): printable ASCII without
# ( ) { SP % * " \ and +.
_TAG = rb'[^\x00-\x20\x7f-\xff(){%*"\\+]'
_UNTAGGED = re.compile(rb"\* ([A-Za-z0-9]+)(?: (.*))?", re.S)
_CONTINUATION = re.compile(rb"\+(?: (.*))?", re.S)
_TAGGED = re.compile(_TAG + rb"+ ([A-Za-z]+)(?: (.*))?", re.S)
# What the start of a response may look like while its line is incomplete.
_START = re.compile(
    rb"\*(?: (?:[A-Za-z0-9]+(?:[ \r].*)?)?)?"
    rb"|\+(?:[ \r].*)?"
    rb"|" + _TAG + rb"+(?: (?:[A-Za-z]+(?:[ \r].*)?)?)?",
    re.S,
)
# A literal announced at the end of a line ({n}, or ~{n} for literal8).
_LITERAL = re.compile(rb"~?\{([0-9]+)\}\Z")


def _parse(line: bytes, shown: bytes) -> ImapResponse:
    text = printable(shown, TEXT_LIMIT)
    match = _UNTAGGED.fullmatch(line)
    if match is not None:
        return ImapResponse(Kind.UNTAGGED, "*", match[1].decode().upper(), _rest(match[2]), text)
    match = _CONTINUATION.fullmatch(line)
    if match is not None:
        return ImapResponse(Kind.CONTINUATION, "+", "", _rest(match[1]), text)
    match = _TAGGED.fullmatch(line)
    if match is not None and match[1].upper() in (b"OK", b"NO", b"BAD"):
        tag = line.partition(b" ")[0].decode("ascii")
        return ImapResponse(Kind.TAGGED, tag, match[1].decode().upper(), _rest(match[2]), text)
    raise InvalidImapResponse("not an IMAP response", shown)


def _rest(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")


class ImapResponseParser:
    """
    Incremental parser of IMAP responses.  After it has raised, it must not
    be fed again (the probe gives its verdict and closes).

    C{hidden}: byte strings (a password, as typed and as quoted) replaced by
    C{***} wherever the parser shows what arrived (L{ImapResponse.text},
    L{InvalidImapResponse.received}), before it is cut short: a server
    that echoes LOGIN must not put the password in a log line.
    """

    def __init__(self, hidden: tuple[bytes, ...] = ()) -> None:
        self._hidden = tuple(secret for secret in hidden if secret)
        self._buffer = b""
        # The finished lines of a response interrupted by literals.
        self._segments: list[bytes] = []
        self._literal = 0  # literal bytes still to skip
        self._spent = 0  # bytes since the last tagged completion
        self._responses = 0  # responses since the last tagged completion

    @property
    def pending(self) -> bool:
        """Part of a response has arrived but not its end."""
        return bool(self._buffer or self._segments or self._literal)

    @property
    def pending_completion(self) -> bool:
        """
        What has arrived of an unfinished response may be a tagged
        completion or a continuation request: it does not start as
        untagged data (C{*}), which may come at any time.
        """
        head = self._segments[0] if self._segments else self._buffer
        return bool(head) and not head.startswith(b"*")

    def feed(self, data: bytes) -> list[ImapResponse]:
        """
        Take the next bytes; return the responses completed by them.

        @raise InvalidImapResponse: on bytes that are no IMAP response, or too many.
        """
        buffer = self._buffer + data
        position = 0
        responses: list[ImapResponse] = []
        while position < len(buffer):
            if self._literal:
                taken = min(self._literal, len(buffer) - position)
                self._literal -= taken
                position += taken
                continue
            newline = buffer.find(b"\n", position)
            if newline < 0:
                self._partial(buffer[position:])
                break
            line = buffer[position:newline]
            position = newline + 1
            response = self._line(line)
            if response is not None:
                responses.append(response)
        self._buffer = buffer[position:]
        return responses

    def _shown(self, raw: bytes) -> bytes:
        for secret in self._hidden:
            raw = raw.replace(secret, b"***")
        return raw

    def _refuse(self, reason: str, raw: bytes) -> InvalidImapResponse:
        return InvalidImapResponse(reason, self._shown(raw)[:80])

    def _spend(self, size: int, what: bytes, reason: str = "response too large") -> None:
        self._spent += size
        if self._spent > MAX_IMAP_RESPONSE_BYTES:
            raise self._refuse(reason, what)

    def _partial(self, head: bytes) -> None:
        if len(head) > MAX_IMAP_LINE_BYTES:
            raise self._refuse("line too long", head)
        if b"\x00" in head:
            raise self._refuse("NUL byte in a response", head)
        if not self._segments and _START.fullmatch(head) is None:
            raise self._refuse("not an IMAP response", head)

    def _line(self, line: bytes) -> ImapResponse | None:
        if len(line) > MAX_IMAP_LINE_BYTES:
            raise self._refuse("line too long", line)
        self._spend(len(line) + 1, line)
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\x00" in line:
            raise self._refuse("NUL byte in a response", line)
        literal = _LITERAL.search(line) if line.endswith(b"}") else None
        if literal is not None:
            if not self._segments and _START.fullmatch(line) is None:
                # A line that announces a literal is parsed only once the
                # response ends: refuse a bad start now, as a partial line's.
                raise self._refuse("not an IMAP response", line)
            # Nine digits keep int() cheap; the bound is far below them anyway.
            size = int(literal[1]) if len(literal[1]) <= 9 else MAX_IMAP_RESPONSE_BYTES + 1
            self._spend(size, line, "literal too large")
            self._segments.append(line)
            self._literal = size
            return None
        whole = b"".join([*self._segments, line]) if self._segments else line
        self._segments = []
        self._responses += 1
        if self._responses > MAX_IMAP_RESPONSES:
            raise self._refuse("too many responses", whole)
        response = _parse(whole, self._shown(whole))
        if response.kind is Kind.TAGGED:
            self._spent = 0
            self._responses = 0
        return response


def quoted(value: str) -> bytes:
    """
    C{value} as an IMAP quoted string (RFC 9051 §4.3): C{\\} and C{"}
    escaped, UTF-8 (IMAP4rev2; IMAP4rev1 servers such as dovecot take it).

    @raise ValueError: C{value} holds CR, LF or NUL, which no quoted string
        can carry (a literal would, at the cost of a continuation round
        trip; a password never needs them).
    """
    if any(c in value for c in "\r\n\x00"):
        raise ValueError("a quoted string cannot hold CR, LF or NUL")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return b'"' + escaped.encode("utf-8") + b'"'
