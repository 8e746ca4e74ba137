# -*- test-case-name: tests.test_pop3_replies -*-
"""
Sans-I/O parser of POP3 responses (RFC 1939 §3, RFC 2449 for C{CAPA}).

A response is a status line, C{+OK text} or C{-ERR text}; after C{+OK} to
some commands (C{CAPA} here) a multi-line body follows, ended by a line
holding a single C{.}, its lines dot-stuffed.  Only the command tells
whether a body follows, so the caller says it with each L{Pop3ReplyParser.reply}
call, and what the server sent beyond the replies asked for stays buffered:
the probe reads that as a reply that came before its command.

Bounded like L{ismon.wire.smtp}: a line longer than L{MAX_POP3_LINE_BYTES}, a
response or an unread backlog larger than L{MAX_POP3_REPLY_BYTES}, raise
L{InvalidReply} instead of growing a buffer.
"""

from __future__ import annotations

import attrs

from ismon.core.text import printable
from ismon.wire.errors import InvalidReply, line_over, unfinished_over

__all__ = [
    "MAX_POP3_LINE_BYTES",
    "MAX_POP3_REPLY_BYTES",
    "InvalidReply",
    "Pop3Reply",
    "Pop3ReplyParser",
    "capabilities",
]

# RFC 1939 allows 512 octets per response line and RFC 2449 keeps that for
# CAPA; real servers stay well inside 4 KiB.
MAX_POP3_LINE_BYTES = 4 * 1024
# A CAPA list is a few hundred bytes; 64 KiB leaves room for a long one.
MAX_POP3_REPLY_BYTES = 64 * 1024

_OK = b"+OK"
_ERR = b"-ERR"


@attrs.frozen
class Pop3Reply:
    """One response: its status, the status line's text, and the body's lines."""

    ok: bool
    # The text after +OK / -ERR, log-safe.
    status_text: str
    # The multi-line body, dot-unstuffed and log-safe; empty for a one-line response.
    lines: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return "+OK" if self.ok else "-ERR"

    @property
    def text(self) -> str:
        """The status line as one log-safe line."""
        return f"{self.status} {self.status_text}".rstrip()


def capabilities(reply: Pop3Reply) -> frozenset[str]:
    """The capability names (first words, upper case) of a C{CAPA} body."""
    return frozenset(line.split(" ", 1)[0].upper() for line in reply.lines if line.strip())


def _status(line: bytes) -> tuple[bool, bytes]:
    for indicator, ok in ((_OK, True), (_ERR, False)):
        if line.startswith(indicator):
            rest = line[len(indicator) :]
            # "+OK" alone, or followed by a space: "+OKAY" is not a status.
            if rest[:1] in (b"", b" ") and b"\x00" not in rest:
                return ok, rest[1:]
    raise InvalidReply("not a POP3 status line", line)


class Pop3ReplyParser:
    """
    Incremental POP3 response parser: L{feed} the bytes as they come, then
    take each response with L{reply}, saying whether it has a body.
    """

    def __init__(self) -> None:
        self._buffer = b""
        # Where the unread part of _buffer starts: lines are consumed by
        # moving this, not by copying the rest of the buffer each time.
        self._start = 0
        # The status of a multi-line response whose body has not ended yet.
        self._open: tuple[bool, str] | None = None
        self._lines: list[str] = []
        self._reply_bytes = 0

    def feed(self, data: bytes) -> None:
        """
        Take the next bytes.

        @raise InvalidReply: the unread bytes exceed the bound.
        """
        if self._start:
            self._buffer = self._buffer[self._start :]
            self._start = 0
        self._buffer += data
        if len(self._buffer) > MAX_POP3_REPLY_BYTES + MAX_POP3_LINE_BYTES:
            raise InvalidReply("reply too large", self._buffer[:80])

    def _line(self) -> bytes | None:
        newline = self._buffer.find(b"\n", self._start)
        if newline < 0:
            if unfinished_over(self._buffer, self._start, MAX_POP3_LINE_BYTES):
                raise InvalidReply("line too long", self._buffer[self._start : self._start + 80])
            return None
        line = self._buffer[self._start : newline]
        self._start = newline + 1
        if line_over(line, MAX_POP3_LINE_BYTES):
            raise InvalidReply("line too long", line[:80])
        if line.endswith(b"\r"):
            line = line[:-1]
        return line

    def reply(self, multiline: bool = False) -> Pop3Reply | None:
        """
        The next complete response, or C{None} until it has arrived.
        C{multiline}: a C{+OK} to the command sent opens a body (C{-ERR}
        never does); pass the same value until the response is returned.

        @raise InvalidReply: on a line that is not POP3, or a response too large.
        """
        while True:
            line = self._line()
            if line is None:
                return None
            if self._open is None:
                ok, text = _status(line)
                status_text = printable(text)
                if not (ok and multiline):
                    return Pop3Reply(ok=ok, status_text=status_text)
                self._open = (ok, status_text)
                self._reply_bytes = len(line)
                continue
            if line == b".":
                ok, status_text = self._open
                reply = Pop3Reply(ok=ok, status_text=status_text, lines=tuple(self._lines))
                self._open = None
                self._lines = []
                return reply
            if b"\x00" in line:
                raise InvalidReply("NUL byte in a multi-line reply", line[:80])
            self._reply_bytes += len(line) + 2
            if self._reply_bytes > MAX_POP3_REPLY_BYTES:
                raise InvalidReply("reply too large", line[:80])
            # RFC 1939 §3: a line beginning with "." was sent with one more.
            self._lines.append(printable(line[1:] if line.startswith(b".") else line))

    @property
    def pending(self) -> bool:
        """Bytes have arrived that no returned response holds."""
        return self._start < len(self._buffer) or self._open is not None
