# -*- test-case-name: tests.test_replies,tests.test_http_checks -*-
"""
Sans-I/O HTTP: the status line, the header block and the body of an answer,
and the rules that judge them (docs/failure-rules.md, HTTP).

Every parser is bounded: a server that sends endless headers or a 1 MiB line
gets an L{InvalidResponse}, never a growing buffer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum

import attrs

from ismon.core.catalogue import MessageId
from ismon.core.requests import Expectation, HeaderExpectation, StatusSet
from ismon.core.text import printable
from ismon.wire.errors import InvalidReply, line_over, unfinished_over

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_LINE_BYTES",
    "BodyFraming",
    "HttpBodyReader",
    "HttpHeadParser",
    "InvalidResponse",
    "StatusLine",
    "body_framing",
    "judge_http_body",
    "judge_http_headers",
    "judge_http_status",
    "parse_status_line",
]

MAX_HEADER_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024


class InvalidResponse(InvalidReply):
    """The server's answer is not an HTTP response (message 82)."""


@attrs.frozen
class StatusLine:
    version: tuple[int, int]
    code: int
    reason: str
    raw: str


_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")


def parse_status_line(line: bytes) -> StatusLine:
    """
    Parse C{HTTP/x.y NNN reason} (RFC 9112 §4), tolerating a missing reason.

    @raise InvalidResponse: when C{line} is not a status line.
    """
    line = line.rstrip(b"\r")
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise InvalidResponse("malformed status line", line)
    major, minor, code, reason = match.groups()
    return StatusLine(
        version=(int(major), int(minor)),
        code=int(code),
        reason=(reason or b"").decode("latin-1"),
        raw=printable(line),
    )


class HttpHeadParser:
    """
    Incremental parser of a response to C{HEAD}: the status line and the
    header block up to the empty line.  The body (there is none for HEAD) is
    never read.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._status: StatusLine | None = None
        self._received = 0
        self._consumed = 0
        self.done = False
        # The final answer's header fields, names lower-cased, in order.
        self.headers: list[tuple[str, str]] = []
        # Bytes that followed the blank line: the start of a body (GET).
        self.rest = b""

    @property
    def status(self) -> StatusLine | None:
        return self._status

    @property
    def received(self) -> int:
        return self._received

    def feed(self, data: bytes) -> StatusLine | None:
        """
        Take the next bytes; return the status line once the whole header block
        has arrived, C{None} while more is needed.

        @raise InvalidResponse: as soon as the bytes cannot be a valid answer.
        """
        if self.done:
            return self._status
        self._received += len(data)
        buffer = self._buffer + data
        # Lines are taken by moving an offset and the rest kept once per
        # feed: cutting the buffer at every line was quadratic in a read of
        # many short lines.
        at = 0
        try:
            while True:
                if self._status is None:
                    # Every answer, the one after an interim answer too, must
                    # begin with "HTTP/" (docs/failure-rules.md, HTTP rule 3):
                    # decide now, not at the deadline.
                    head = buffer[at : at + 5]
                    if not (head == b"HTTP/" if len(head) == 5 else b"HTTP/".startswith(head)):
                        raise InvalidResponse("answer does not begin with HTTP/", buffer[at:])
                newline = buffer.find(b"\n", at)
                if newline < 0:
                    if len(buffer) - at > MAX_LINE_BYTES:
                        raise InvalidResponse("line too long", buffer[at : at + 80])
                    return None
                line = buffer[at:newline]
                self._consumed += newline + 1 - at
                at = newline + 1
                if len(line) > MAX_LINE_BYTES:
                    raise InvalidResponse("line too long", line[:80])
                if self._consumed > MAX_HEADER_BYTES:
                    raise InvalidResponse("header block too large")
                if self._status is None:
                    self._status = parse_status_line(line)
                    continue
                if line in (b"", b"\r"):
                    if 100 <= self._status.code <= 199 and self._status.code != 101:
                        # An interim answer (103 Early Hints, 100 Continue): the
                        # final one follows; the 64 KiB cap still covers them all.
                        self._status = None
                        self.headers = []
                        continue
                    self.done = True
                    self.rest, at = buffer[at:], len(buffer)
                    return self._status
                if b"\x00" in line:
                    raise InvalidResponse("NUL byte in header", line)
                name, colon, value = line.partition(b":")
                if colon and name and name == name.strip():
                    self.headers.append(
                        (name.decode("latin-1").lower(), value.strip(b" \t\r").decode("latin-1"))
                    )
        finally:
            self._buffer = buffer[at:]

    def header_values(self, name: str) -> list[str]:
        """The values of every field called C{name} (any case)."""
        wanted = name.lower()
        return [value for key, value in self.headers if key == wanted]

    def end(self) -> StatusLine | None:
        """
        The connection ended.  Return the status line when one was read (a
        server that closes before the blank line still told us its status),
        C{None} when nothing at all arrived.

        @raise InvalidResponse: some bytes arrived but no status line.
        """
        if self._status is not None:
            return self._status
        if self._buffer:
            # A final line without its newline.
            self._status = parse_status_line(self._buffer)
            return self._status
        return None


class BodyFraming(Enum):
    """How the end of a response body is known (RFC 9112 §6.3)."""

    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    CLOSE = "close"


def body_framing(
    method: str, status: StatusLine, headers: HttpHeadParser
) -> tuple[BodyFraming, int]:
    """
    The framing of the body that follows C{status} and its headers, and the
    length for L{BodyFraming.LENGTH}.

    @raise InvalidResponse: a Content-Length that is not one number.
    """
    if method == "HEAD" or 100 <= status.code <= 199 or status.code in (204, 304):
        return BodyFraming.NONE, 0
    codings = ",".join(headers.header_values("transfer-encoding"))
    if codings.strip():
        last = codings.split(",")[-1].strip().lower()
        # A response whose final coding is not chunked ends at the close (§6.3 rule 4).
        return (BodyFraming.CHUNKED if last == "chunked" else BodyFraming.CLOSE), 0
    lengths = {
        part.strip()
        for value in headers.header_values("content-length")
        for part in value.split(",")
    }
    if not lengths:
        return BodyFraming.CLOSE, 0
    if len(lengths) > 1:
        raise InvalidResponse("conflicting Content-Length values")
    (length,) = lengths
    if not (length.isascii() and length.isdigit()) or len(length) > 18:
        raise InvalidResponse("invalid Content-Length", length.encode("latin-1", "replace"))
    return BodyFraming.LENGTH, int(length)


# A chunk-size line with its extensions; real servers send a few bytes.
MAX_CHUNK_LINE_BYTES = 1024
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?")


class HttpBodyReader:
    """
    Incremental reader of a response body, keeping at most C{limit} bytes of
    it: L{feed} returns C{True} once the body is complete or the bound is
    reached (L{truncated} then), after which the caller closes the
    connection (README "What counts as a failure", C{--max-body}).
    """

    def __init__(self, framing: BodyFraming, length: int, limit: int) -> None:
        self._framing = framing
        self._remaining = length  # LENGTH: body bytes still due; CHUNKED: of this chunk
        self._limit = limit
        self._kept: list[bytes] = []
        self._kept_size = 0
        self._buffer = b""
        # CHUNKED: "size" (a size line is next), "data", "crlf" (after data), "trailer".
        self._state = "size"
        self.truncated = False
        self.done = framing is BodyFraming.NONE or (framing is BodyFraming.LENGTH and length == 0)

    @property
    def body(self) -> bytes:
        return b"".join(self._kept)

    def _keep(self, data: bytes) -> None:
        room = self._limit - self._kept_size
        if len(data) > room:
            data = data[:room]
            self.truncated = True
            self.done = True
        self._kept.append(data)
        self._kept_size += len(data)

    def feed(self, data: bytes) -> bool:
        """
        Take the next bytes; C{True} once no more need be read.

        @raise InvalidResponse: on a malformed chunked body.
        """
        if self.done:
            return True
        if self._framing is BodyFraming.CLOSE:
            self._keep(data)
        elif self._framing is BodyFraming.LENGTH:
            part = data[: self._remaining]
            self._remaining -= len(part)
            self._keep(part)
            if self._remaining == 0:
                self.done = True
        else:
            self._chunked(data)
        return self.done

    def _chunked(self, data: bytes) -> None:
        buffer = self._buffer + data
        # As in HttpHeadParser.feed: an offset, the rest kept once per feed.
        at = 0
        try:
            while not self.done:
                if self._state == "data":
                    if at >= len(buffer):
                        return
                    part = buffer[at : at + self._remaining]
                    at += len(part)
                    self._remaining -= len(part)
                    self._keep(part)
                    if self._remaining == 0:
                        self._state = "crlf"
                    continue
                newline = buffer.find(b"\n", at)
                if newline < 0:
                    if unfinished_over(buffer, at, MAX_CHUNK_LINE_BYTES):
                        raise InvalidResponse("chunk line too long", buffer[at : at + 80])
                    return
                raw = buffer[at:newline]
                at = newline + 1
                if line_over(raw, MAX_CHUNK_LINE_BYTES):
                    raise InvalidResponse("chunk line too long", raw[:80])
                line = raw.rstrip(b"\r")
                if self._state == "crlf":
                    if line:
                        raise InvalidResponse("chunk data longer than its size", line[:80])
                    self._state = "size"
                elif self._state == "size":
                    match = _CHUNK_SIZE.fullmatch(line)
                    if match is None:
                        raise InvalidResponse("malformed chunk size", line[:80])
                    self._remaining = int(match.group(1), 16)
                    self._state = "data" if self._remaining else "trailer"
                elif not line:  # the blank line after the trailer fields
                    self.done = True
                elif b"\x00" in line:
                    raise InvalidResponse("NUL byte in trailer", line[:80])
        finally:
            self._buffer = buffer[at:]

    def end(self) -> bool:
        """
        The connection ended: whether the body was complete (a body read
        until the close always is).
        """
        if self._framing is BodyFraming.CLOSE:
            self.done = True
        return self.done


# -- the rules (docs/failure-rules.md, HTTP) --------------------------------------


def judge_http_status(
    status: StatusLine, uri: str, expect: StatusSet | None = None, *, authenticated: bool = False
) -> tuple[MessageId | None, int | None]:
    """
    Judge an HTTP status line.  Without C{expect}, the status only counts when
    the URI is not C{/}: 400-599 is a failure (docs/failure-rules.md, HTTP rule 4), so a page that
    needs authentication fails.  With C{expect}, the code must be in it.
    When credentials were sent (C{authenticated}), a 401 is message 86 for
    any URI: the server refused them (docs/failure-rules.md, HTTP rule 5).

    @return: C{(None, None)} when acceptable, else message 83 (86) and the code.
    """
    if authenticated and status.code == 401:
        return MessageId.AUTH_REFUSED, status.code
    if expect is not None:
        bad = status.code not in expect
    else:
        bad = uri != "/" and 400 <= status.code <= 599
    if bad:
        return MessageId.INVALID_STATUS, status.code
    return None, None


def _shown(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def judge_http_headers(
    headers: Sequence[tuple[str, str]], expected: Sequence[HeaderExpectation]
) -> str | None:
    """
    Each expected field must be present (name in any case) with a value in
    which its regex is found (docs/failure-rules.md, HTTP rule 6).

    @return: C{None} when all are, else the detail of message 84 naming the
        first that is not (bounded, so the line stays within 400 bytes).
    """
    for expectation in expected:
        wanted = expectation.name.lower()
        values = [value for name, value in headers if name == wanted]
        if not values:
            return f"no {_shown(expectation.name)} field"
        if not any(expectation.value.found_in(value) for value in values):
            return (
                f"{_shown(expectation.name)} {printable(values[0].encode('latin-1', 'replace'), 60)}"
                f" does not match {_shown(expectation.value.text)}"
            )
    return None


def judge_http_body(body: bytes, truncated: bool, expected: Expectation | None) -> str | None:
    """
    The body read (at most --max-body bytes) must contain a match of the
    regex (docs/failure-rules.md, HTTP rule 7); a body over the bound fails
    only then, and the detail says the match was looked for in its start.

    @return: C{None} when acceptable, else the detail of message 85.
    """
    if expected is None or expected.found_in(body.decode("utf-8", "replace")):
        return None
    where = f"the first {len(body)} bytes" if truncated else f"the {len(body)}-byte body"
    return f"{_shown(expected.text)} not found in {where}"
