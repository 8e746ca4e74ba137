# -*- test-case-name: tests.test_wire_tcp -*-
"""
Sans-io parts of a plain TCP probe: the text of C{--send}, and the matcher
that reads what the server sends for C{--expect REGEX}.

    payload = unescape_send(r"PING\\r\\n")          # b"PING\\r\\n"
    pattern = compile_expect(r"\\+PONG")              # at start-up: refusals are one line
    matcher = ExpectMatcher(pattern)
    verdict = matcher.feed(data)                     # per arrival: None until decided
    verdict = matcher.end()                          # the server closed the connection

This module imports nothing of ismon: a verdict is an L{ExpectOutcome} and
a one-line reason, and the probe maps it to a catalogue message.

Declared errors: L{TcpInputError} (a C{ValueError}) from L{unescape_send}
and L{compile_expect}, one printable line each; a C{ValueError} from
L{ExpectMatcher} for a bound below one byte.  L{ExpectMatcher.feed},
L{ExpectMatcher.end} and L{show_bytes} raise nothing, whatever the bytes.

C{--send TEXT}
==============

L{unescape_send} turns TEXT into the bytes written: C{\\r} is CR, C{\\n} is
LF, C{\\\\} is one backslash; any other backslash sequence, and a lone
backslash at the end, is refused with a L{TcpInputError} naming it (so a
later release can give C{\\t} or C{\\xHH} a meaning without changing what
an existing command line sends).  Everything else is sent as it was typed:
the UTF-8 of the text, or, for a command-line argument that was not UTF-8,
its original bytes (Python's C{surrogateescape}).  TEXT is 1 to
L{MAX_SEND_BYTES} bytes.

C{--expect REGEX}: the engine
=============================

The operator's regex runs on bytes a hostile server chose, so the engine
must not backtrack: Python's C{re} takes seconds on C{(a+)+$} against 30
C{a}s and a C{b}, and bounding the input does not help such a pattern.
REGEX runs on RE2 (PyPI C{google-re2}, module C{re2}), whose automata
search in time linear in the input whatever the pattern: one search of
L{MAX_EXPECT_BYTES} takes well under a millisecond, the worst patterns
included (C{tests/test_wire_tcp.py} and C{bench/regex_cost.py} show it).

RE2's syntax is Perl's without the parts that need backtracking: C{(?=...)},
C{(?!...)}, C{(?<=...)}, C{(?<!...)} (look-around), C{\\1} (back-references),
C{a++} (possessive), C{(?>...)} (atomic groups) and C{\\Z} (write C{\\z})
are refused at start-up with one line naming the problem.  Flags are
written inline: C{(?i)} any case, C{(?m)} C{^}/C{$} at line ends, C{(?s)}
C{.} matches a newline.

How the regex sees the bytes
============================

Each byte is one character, Latin-1 (RE2's Latin-1 mode): C{.} matches
any one byte but LF, C{[\\x00-\\xff]} any byte at all, C{\\xHH} the byte
HH.  REGEX itself must be ASCII (a non-ASCII letter would be ambiguous
between its Latin-1 byte and its UTF-8 bytes): write other bytes as
C{\\xHH} (C{\\xc3\\xa9} for a UTF-8 C{é}).  C{\\b}, C{\\w}, C{\\d}, C{\\s}
are ASCII classes.  A regex that matches the empty string (C{a*}, C{^},
C{$}) is refused: it would pass before the server said anything.

When a match counts
===================

The matcher searches everything received so far, after each arrival.  How
TCP cuts the stream into arrivals is chance, so a match counts only when
no byte still to come could undo it: while the connection is open, the end
of what has arrived is not the end of the input.  So C{$} and C{\\z} match
only once the server has closed the connection (L{ExpectMatcher.end}),
C{(?m)$} only before an LF, and C{\\b} or C{\\B} at the very end of what
arrived wait for the next byte.  The verdict is the same however the bytes
were cut.  To anchor on a line end, write it: C{^\\+PONG\\r\\n}, or
C{(?m)^\\+PONG\\r?$}.

Bounds
======

The matcher keeps at most L{MAX_EXPECT_BYTES} bytes (and one more, the
byte after them, for the assertions at the cut), however long the server
floods: a byte beyond them ends the read with L{ExpectOutcome.LIMIT}, "no
match in the first 65536 bytes".  Each feed costs one RE2 search of
what was kept (two for a regex with C{\\b} or C{\\B}), so a server that
sends the whole bound a byte at a time, fed byte by byte, would cost 65536
searches (seconds of CPU under the worst regex).  The probe
(L{ismon.probes.tcp}) therefore feeds what arrives at most once every
10 ms, gathered: the verdict does not depend on the cuts, and a trickle
costs at most one search per 10 ms.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import attrs
import re2

__all__ = [
    "MAX_EXPECT_BYTES",
    "MAX_PATTERN_CHARS",
    "MAX_SEND_BYTES",
    "ExpectMatcher",
    "ExpectOutcome",
    "ExpectPattern",
    "ExpectVerdict",
    "TcpInputError",
    "compile_expect",
    "show_bytes",
    "unescape_send",
]

#: The most bytes the matcher reads before giving up.
MAX_EXPECT_BYTES = 64 * 1024
#: The most bytes C{--send} may write.
MAX_SEND_BYTES = 64 * 1024
#: The longest regex C{--expect} takes.
MAX_PATTERN_CHARS = 4096
#: Characters of received bytes a reason shows.
EXCERPT_CHARS = 80


class TcpInputError(ValueError):
    """What the operator gave (C{--send} text, C{--expect} regex) cannot be used."""


# --------------------------------------------------------------------------
# --send


_SEND_ESCAPES = {"r": "\r", "n": "\n", "\\": "\\"}


def _shown(text: str) -> str:
    """
    C{text} for a refusal's one printable line: a character that is not
    printable (a control character, a line end, a byte of an argument that
    was not UTF-8) as Python writes it in a literal, C{\\x1b}, C{\\n},
    C{\\udce9}.
    """
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def unescape_send(text: str) -> bytes:
    """
    The bytes C{--send TEXT} writes (module docstring, "C{--send TEXT}").

    @raise TcpInputError: an unknown escape, a lone backslash at the end,
        or a length outside 1..L{MAX_SEND_BYTES}.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 == len(text):
            raise TcpInputError(f"{text!r} ends with a lone backslash (write \\\\ for one)")
        escape = text[i + 1]
        if escape not in _SEND_ESCAPES:
            raise TcpInputError(
                f"unknown escape \\{_shown(escape)} at character {i + 1} of {text!r}:"
                " only \\r, \\n and \\\\ are understood"
            )
        out.append(_SEND_ESCAPES[escape])
        i += 2
    payload = "".join(out).encode("utf-8", "surrogateescape")
    if not payload:
        raise TcpInputError("the text to send is empty")
    if len(payload) > MAX_SEND_BYTES:
        raise TcpInputError(f"the text to send is {len(payload)} bytes, over {MAX_SEND_BYTES}")
    return payload


# --------------------------------------------------------------------------
# --expect: the regex


# What RE2 says, and what a Python user meant by it.
_HINTS = (
    (re.compile(r"invalid escape sequence: \\[1-9]"), "back-references are not supported"),
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "look-around is not supported"),
    (re.compile(r"invalid perl operator: \(\?>"), "atomic groups are not supported"),
    (re.compile(r"bad repetition operator: [*+?}]\+"), "possessive quantifiers are not supported"),
    (re.compile(r"invalid escape sequence: \\Z"), "write \\z for the end of the input"),
)

# \b or \B not itself escaped: an odd run of backslashes before the letter.
_WORD_ASSERTION = re.compile(r"(?<!\\)(?:\\\\)*\\[bB]")


@attrs.frozen
class ExpectPattern:
    """
    A compiled C{--expect} regex (L{compile_expect}): its C{text} as given,
    the RE2 program, and whether it uses C{\\b}/C{\\B} (then a search at
    the end of what arrived is made twice, see L{ExpectMatcher}).
    """

    text: str
    regex: Any = attrs.field(repr=False, eq=False)
    word_assertions: bool


def _options() -> Any:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    # Only the whole match is wanted: without capture groups RE2 finds it
    # with its DFAs, never with the slower submatch engines.
    options.never_capture = True
    # RE2 would print compile errors to stderr; they are our refusal instead.
    options.log_errors = False
    return options


def compile_expect(pattern: str) -> ExpectPattern:
    """
    Compile C{--expect REGEX} for L{ExpectMatcher}.

    @raise TcpInputError: one line saying why RE2 cannot run it (module
        docstring, "the engine" and "How the regex sees the bytes").
    """
    if not pattern:
        raise TcpInputError("the regex is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise TcpInputError(f"the regex is {len(pattern)} characters, over {MAX_PATTERN_CHARS}")
    if not pattern.isascii():
        raise TcpInputError(
            f"{pattern!r} is not ASCII: the regex matches bytes, write other bytes as \\xHH"
        )
    try:
        regex = re2.compile(pattern.encode("ascii"), _options())
    except re2.error as e:
        detail = e.args[0] if e.args else "refused"
        message = detail.decode("ascii", "replace") if isinstance(detail, bytes) else str(detail)
        hint = next((h for rx, h in _HINTS if rx.search(message)), "")
        if "(?P=" in pattern:
            hint = "back-references are not supported"
        raise TcpInputError(
            f"{pattern!r} is not a regex RE2 accepts: {_shown(message)}"
            + (f" ({hint})" if hint else "")
        ) from None
    if regex.search(b"") is not None:
        raise TcpInputError(
            f"{pattern!r} matches the empty input: it would pass before the server sent anything"
        )
    return ExpectPattern(pattern, regex, _WORD_ASSERTION.search(pattern) is not None)


# --------------------------------------------------------------------------
# --expect: the matcher


def show_bytes(data: bytes, limit: int = EXCERPT_CHARS) -> str:
    """
    Server bytes as the regex sees them, log-safe: printable ASCII as it
    is, C{\\r}, C{\\n}, C{\\t}, C{\\\\}, other bytes C{\\xHH}; at most
    C{limit} characters of them, then C{...}.
    """
    out: list[str] = []
    size = 0
    for b in data:
        if b == 0x5C:
            piece = "\\\\"
        elif 0x20 <= b <= 0x7E:
            piece = chr(b)
        else:
            piece = {0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"}.get(b, f"\\x{b:02x}")
        if size + len(piece) > limit:
            return "".join(out) + "..."
        out.append(piece)
        size += len(piece)
    return "".join(out)


class ExpectOutcome(enum.Enum):
    """How the read ended: a match passes, the others fail."""

    MATCHED = "matched"
    #: More than MAX_EXPECT_BYTES arrived without a match.
    LIMIT = "limit"
    #: The server closed the connection before a match.
    CLOSED = "closed"


@attrs.frozen
class ExpectVerdict:
    """
    How L{ExpectMatcher} decided.

    @ivar outcome: what ended the read.
    @ivar reason: one printable line: C{matched "+PONG" at byte 0},
        C{no match in the first 65536 bytes}, C{the connection closed
        after 12 bytes without a match}.
    @ivar received: the bytes read (at most the bound).
    @ivar span: where the match is in C{received}; C{None} without one.
    """

    outcome: ExpectOutcome
    reason: str
    received: int
    span: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is ExpectOutcome.MATCHED


class ExpectMatcher:
    """
    Feed it what the server sends; it answers once the regex matches, the
    bound is passed, or (L{end}) the connection closes.  Memory: one
    buffer of C{limit + 1} bytes.  Rules: the module docstring, "When a
    match counts" and "Bounds".  After a verdict, more bytes change
    nothing: L{feed} and L{end} return the same verdict.
    """

    def __init__(self, pattern: ExpectPattern, limit: int = MAX_EXPECT_BYTES) -> None:
        if limit < 1:
            raise ValueError("the bound must be at least one byte")
        self.pattern = pattern
        self.limit = limit
        # The bytes kept, then room for one more: the byte after them (at
        # the cut), or a stand-in for the byte still to come.
        self._buffer = bytearray(limit + 1)
        self._size = 0
        #: Every byte fed, those past the bound included.
        self.received = 0
        self.verdict: ExpectVerdict | None = None
        #: RE2 searches made so far (the cost of a trickle, for tests and benches).
        self.searches = 0

    @property
    def kept(self) -> bytes:
        """The bytes read, at most the bound."""
        return bytes(self._buffer[: self._size])

    def _search(self, context: int, after: bytes | None) -> tuple[int, int] | None:
        """
        The span of a match in the kept bytes: with C{after} the byte that
        follows them as context (C{None}: they end the input).
        """
        end = self._size
        if after is not None:
            self._buffer[end : end + 1] = after
        self.searches += 1
        with memoryview(self._buffer) as view, view[:context] as text:
            match = self.pattern.regex.search(text, 0, end)
            return None if match is None else match.span()

    def _open_search(self) -> tuple[int, int] | None:
        """A match that holds whatever byte comes next (module docstring)."""
        # A word byte and a non-word, non-LF byte: without \\b and \\B the
        # first alone decides, as every byte but LF and the end decide alike.
        span = self._search(self._size + 1, b"a")
        if span is not None and self.pattern.word_assertions:
            if self._search(self._size + 1, b" ") is None:
                return None
        return span

    def _matched(self, span: tuple[int, int]) -> ExpectVerdict:
        start, stop = span
        shown = show_bytes(bytes(self._buffer[start:stop]))
        return self._decide(ExpectOutcome.MATCHED, f'matched "{shown}" at byte {start}', span)

    def _decide(
        self, outcome: ExpectOutcome, reason: str, span: tuple[int, int] | None = None
    ) -> ExpectVerdict:
        self.verdict = ExpectVerdict(outcome, reason, self._size, span)
        return self.verdict

    def feed(self, data: bytes) -> ExpectVerdict | None:
        """Take the next bytes; the verdict once there is one, else C{None}."""
        self.received += len(data)
        if self.verdict is not None or not data:
            return self.verdict
        room = self.limit - self._size
        take = data[:room]
        self._buffer[self._size : self._size + len(take)] = take
        self._size += len(take)
        if len(data) > room:
            # Past the bound: the byte after the cut is known, so the
            # search at the cut is exact.
            span = self._search(self._size + 1, data[room : room + 1])
            if span is not None:
                return self._matched(span)
            return self._decide(ExpectOutcome.LIMIT, f"no match in the first {self.limit} bytes")
        span = self._open_search()
        return None if span is None else self._matched(span)

    def end(self) -> ExpectVerdict:
        """The server closed the connection: the last search, at the true end."""
        if self.verdict is not None:
            return self.verdict
        span = self._search(self._size, None)
        if span is not None:
            return self._matched(span)
        if not self._size:
            return self._decide(
                ExpectOutcome.CLOSED, "the connection closed before the server sent anything"
            )
        return self._decide(
            ExpectOutcome.CLOSED,
            f"the connection closed after {self._size} bytes without a match:"
            f' "{show_bytes(self.kept)}"',
        )

    def describe(self) -> str:
        """What has arrived so far, for a verdict the deadline gives: one printable line."""
        if not self._size:
            return "nothing received"
        return f'no match in the {self._size} bytes received: "{show_bytes(self.kept)}"'
