# -*- test-case-name: tests.test_ftp_replies -*-
"""
A sans-I/O parser of FTP control-connection replies (RFC 959 §4.2).

A reply is C{NNN text} on one line, or a multi-line reply that opens with
C{NNN-text} and ends at the first line that begins with the same code and
a space.  The lines in between are free text: RFC 959 does not require
them to start with the code (vsftpd's and ProFTPD's banners do not), so
only the opening and closing lines are checked.

The parser is bounded like L{ismon.wire.smtp.SmtpReplyParser}: a line
longer than L{MAX_FTP_LINE_BYTES} or a reply larger than
L{MAX_FTP_REPLY_BYTES} (line ends counted, so a flood of empty lines is
cut short too) raises L{InvalidReply}; so does a NUL byte, and text that
cannot begin a reply, as soon as its first bytes show it.
"""

from __future__ import annotations

import re

import attrs

from ismon.core.text import printable
from ismon.wire.errors import InvalidReply, line_over, unfinished_over

__all__ = [
    "MAX_FTP_LINE_BYTES",
    "MAX_FTP_REPLY_BYTES",
    "FtpReply",
    "FtpReplyParser",
    "InvalidReply",
]

# RFC 959 sets no line limit; real daemons' banners and FEAT lists stay far
# inside 4 KiB a line and 64 KiB a reply.
MAX_FTP_LINE_BYTES = 4 * 1024
MAX_FTP_REPLY_BYTES = 64 * 1024

# Reply codes are [1-5][0-5][0-9] (RFC 959 §4.2.1 defines no other first or
# second digit); a bare code with no text is tolerated as SMTP's is.
_FIRST_LINE = re.compile(rb"([1-5][0-5][0-9])(?:([ -])(.*))?", re.DOTALL)
# What the first bytes of a reply may be, byte by byte: text that fails
# this is rejected at once instead of waiting for a line end that a
# hostile server may never send.
_OPENING = (b"12345", b"012345", b"0123456789", b" -\r\n")


@attrs.frozen
class FtpReply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reply as one log-safe line."""
        if not self.lines:
            return str(self.code)
        first, *rest = self.lines
        return " / ".join([f"{self.code} {first}".rstrip(), *rest])

    @property
    def multiline(self) -> bool:
        return len(self.lines) > 1


class FtpReplyParser:
    """
    Incremental parser of FTP replies.  L{feed} returns the replies that
    the bytes completed; L{pending} says whether part of one is waiting.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._code: bytes | None = None  # inside a multi-line reply
        self._lines: list[str] = []
        self._reply_bytes = 0

    @property
    def pending(self) -> bool:
        """Part of a reply has arrived but not its last line."""
        return bool(self._buffer) or self._code is not None

    def feed(self, data: bytes) -> list[FtpReply]:
        """
        Take the next bytes; return the replies completed by them.

        @raise InvalidReply: on text that is not an FTP reply, or one too large.
        """
        buffer = self._buffer + data
        replies: list[FtpReply] = []
        # Lines are taken by moving an offset, and the rest kept once: cutting
        # the buffer at every line made a 64 KiB read of short lines cost
        # over 100 ms (quadratic).
        at = 0
        try:
            while True:
                newline = buffer.find(b"\n", at)
                if newline < 0:
                    break
                raw = buffer[at:newline]
                self._reply_bytes += newline + 1 - at
                at = newline + 1
                if line_over(raw, MAX_FTP_LINE_BYTES):
                    raise InvalidReply("line too long", raw[:80])
                line = raw[:-1] if raw.endswith(b"\r") else raw
                if b"\x00" in line:
                    raise InvalidReply("NUL byte in a reply", line[:80])
                if self._reply_bytes > MAX_FTP_REPLY_BYTES:
                    raise InvalidReply("reply too large", line[:80])
                reply = self._line(line)
                if reply is not None:
                    replies.append(reply)
        finally:
            self._buffer = buffer[at:]
        self._check_partial()
        return replies

    def _check_partial(self) -> None:
        """Reject an unfinished line as soon as it cannot become valid."""
        if unfinished_over(self._buffer, 0, MAX_FTP_LINE_BYTES):
            raise InvalidReply("line too long", self._buffer[:80])
        if b"\x00" in self._buffer:
            raise InvalidReply("NUL byte in a reply", self._buffer[:80])
        if self._reply_bytes + len(self._buffer) > MAX_FTP_REPLY_BYTES:
            raise InvalidReply("reply too large", self._buffer[:80])
        if self._code is None:
            for byte, allowed in zip(self._buffer, _OPENING, strict=False):
                if byte not in allowed:
                    raise InvalidReply("not an FTP reply", self._buffer[:80])

    def _line(self, line: bytes) -> FtpReply | None:
        if self._code is not None:
            # Inside a multi-line reply: free text until "NNN " (or a bare
            # "NNN") with the opening code.
            code = self._code
            if line[:3] == code and line[3:4] in (b" ", b""):
                self._lines.append(printable(line[4:], MAX_FTP_LINE_BYTES))
                return self._finish(int(code))
            if line[:3] == code and line[3:4] == b"-":
                line = line[4:]
            self._lines.append(printable(line, MAX_FTP_LINE_BYTES))
            return None
        match = _FIRST_LINE.fullmatch(line)
        if match is None:
            raise InvalidReply("not an FTP reply", line[:80])
        code_bytes, separator, text = match.groups()
        self._lines = [printable(text or b"", MAX_FTP_LINE_BYTES)]
        if separator == b"-":
            self._code = code_bytes
            return None
        return self._finish(int(code_bytes))

    def _finish(self, code: int) -> FtpReply:
        reply = FtpReply(code=code, lines=tuple(self._lines))
        self._code = None
        self._lines = []
        self._reply_bytes = 0
        return reply
