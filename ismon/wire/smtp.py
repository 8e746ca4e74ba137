# -*- test-case-name: tests.test_replies,tests.test_smtp -*-
"""
Sans-I/O SMTP: RFC 5321 replies, multi-line included, and the rule that
judges one (docs/failure-rules.md, SMTP).

Bounded: a line longer than L{MAX_SMTP_LINE_BYTES} or a reply larger than
L{MAX_SMTP_REPLY_BYTES} raises L{InvalidReply}, never a growing buffer.
"""

from __future__ import annotations

import re

import attrs

from ismon.core.catalogue import MessageId
from ismon.core.text import printable
from ismon.wire.errors import InvalidReply, line_over, unfinished_over

__all__ = [
    "MAX_SMTP_LINE_BYTES",
    "MAX_SMTP_REPLY_BYTES",
    "InvalidReply",
    "SmtpReply",
    "SmtpReplyParser",
    "judge_smtp_reply",
]

# RFC 5321 allows 512 octets per reply line; real MTAs stay well inside 4 KiB.
MAX_SMTP_LINE_BYTES = 4 * 1024
MAX_SMTP_REPLY_BYTES = 64 * 1024


@attrs.frozen
class SmtpReply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reply as one log-safe line."""
        return " / ".join(f"{self.code} {line}".rstrip() for line in self.lines)

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300


_REPLY_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])(.*))?")


class SmtpReplyParser:
    """
    Incremental parser of SMTP replies (RFC 5321 §4.2): C{NNN-text} lines
    continue a reply, C{NNN text} or a bare C{NNN} ends it.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._code: int | None = None
        self._lines: list[str] = []
        self._reply_bytes = 0

    def feed(self, data: bytes) -> list[SmtpReply]:
        """
        Take the next bytes; return the replies completed by them.

        @raise InvalidReply: on text that is not a reply, or one too large.
        """
        buffer = self._buffer + data
        replies: list[SmtpReply] = []
        # As in HttpHeadParser.feed: an offset, the rest kept once per feed.
        at = 0
        try:
            while True:
                newline = buffer.find(b"\n", at)
                if newline < 0:
                    if unfinished_over(buffer, at, MAX_SMTP_LINE_BYTES):
                        raise InvalidReply("line too long", buffer[at : at + 80])
                    return replies
                raw = buffer[at:newline]
                at = newline + 1
                if line_over(raw, MAX_SMTP_LINE_BYTES):
                    raise InvalidReply("line too long", raw[:80])
                line = raw.rstrip(b"\r")
                reply = self._line(line)
                if reply is not None:
                    replies.append(reply)
        finally:
            self._buffer = buffer[at:]

    def _line(self, line: bytes) -> SmtpReply | None:
        match = _REPLY_LINE.fullmatch(line)
        if match is None or b"\x00" in line:
            raise InvalidReply("not an SMTP reply", line)
        code = int(match.group(1))
        if self._code is not None and code != self._code:
            raise InvalidReply("reply code changed inside a multi-line reply", line)
        self._reply_bytes += len(line)
        if self._reply_bytes > MAX_SMTP_REPLY_BYTES:
            raise InvalidReply("reply too large", line[:80])
        self._code = code
        self._lines.append(printable(match.group(3) or b""))
        if match.group(2) == b"-":
            return None
        reply = SmtpReply(code=code, lines=tuple(self._lines))
        self._code = None
        self._lines = []
        self._reply_bytes = 0
        return reply

    @property
    def pending(self) -> bool:
        """Part of a reply has arrived but not its last line."""
        return bool(self._buffer) or self._code is not None


def judge_smtp_reply(reply: SmtpReply, expected: int) -> tuple[MessageId | None, int | None]:
    """
    A greeting must be 220 and a NOOP reply 250 (docs/failure-rules.md, SMTP rule 3); any other
    code is message 83 with that code.
    """
    if reply.code != expected:
        return MessageId.INVALID_STATUS, reply.code
    return None, None
