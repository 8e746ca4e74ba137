# -*- test-case-name: tests.test_replies -*-
"""
Tests for L{ismon.wire.http}: the sans-I/O HTTP status line / header block
parser and the SMTP reply parser, including their size bounds.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.text import printable
from ismon.wire.errors import InvalidReply
from ismon.wire.http import (
    MAX_HEADER_BYTES,
    MAX_LINE_BYTES,
    HttpHeadParser,
    InvalidResponse,
    StatusLine,
    parse_status_line,
)
from ismon.wire.smtp import MAX_SMTP_LINE_BYTES, MAX_SMTP_REPLY_BYTES, SmtpReply, SmtpReplyParser


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """C{data} cut at the (sorted, deduplicated) offsets C{cuts}."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def _split_strategy(data: bytes) -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.integers(min_value=1, max_value=max(1, len(data) - 1)), max_size=30).map(
        lambda cuts: _chunks(data, cuts)
    )


class PrintableTests(SynchronousTestCase):
    def test_control_bytes_replaced(self) -> None:
        self.assertEqual(printable(b"a\r\nb\x00c"), "a??b?c")

    def test_bounded(self) -> None:
        self.assertEqual(printable(b"x" * 500, limit=10), "x" * 10 + "...")

    def test_invalid_utf8(self) -> None:
        self.assertEqual(printable(b"\xff\xfeok"), "\ufffd\ufffdok")

    def test_plain_ascii_kept_as_is(self) -> None:
        self.assertEqual(printable(b"HTTP/1.1 200 OK"), "HTTP/1.1 200 OK")
        self.assertEqual(printable(b"\x7f~ "), "?~ ")

    @given(
        st.binary(max_size=300)
        | st.text(max_size=300).map(lambda t: t.encode("utf-8"))
        | st.from_regex(rb"[\x1f-\x80]{0,250}", fullmatch=True),
        st.integers(min_value=1, max_value=260),
    )
    @settings(max_examples=300)
    def test_same_as_the_per_character_rendering(self, raw: bytes, limit: int) -> None:
        # The ASCII fast path must not change what any input renders as.
        text = raw[:limit].decode("utf-8", "replace")
        expected = "".join(c if c.isprintable() else "?" for c in text)
        expected += "..." if len(raw) > limit else ""
        self.assertEqual(printable(raw, limit), expected)


# (line, expected (version, code, reason)) or None for "not a status line".
_STATUS_LINES: list[tuple[bytes, tuple[tuple[int, int], int, str] | None]] = [
    (b"HTTP/1.1 200 OK", ((1, 1), 200, "OK")),
    (b"HTTP/1.1 200 OK\r", ((1, 1), 200, "OK")),
    (b"HTTP/1.0 404 Not Found", ((1, 0), 404, "Not Found")),
    (b"HTTP/1.1 200", ((1, 1), 200, "")),
    (b"HTTP/1.1 200 ", ((1, 1), 200, "")),
    (b"HTTP/1.1 401 Authorization Required", ((1, 1), 401, "Authorization Required")),
    (b"HTTP/2.0 503 Busy\tnow", ((2, 0), 503, "Busy\tnow")),
    (b"HTTP/1.1 200 \xe9t\xe9", ((1, 1), 200, "\xe9t\xe9")),
    (b"HTTP/1.1 999 Odd", ((1, 1), 999, "Odd")),
    # Not status lines.
    (b"", None),
    (b"HTTP/1.1", None),
    (b"HTTP/1.1 20", None),
    (b"HTTP/1.1 2000 OK", None),
    (b"HTTP/1.1 2000", None),
    (b"HTTP/1.1 20x OK", None),
    (b"http/1.1 200 OK", None),
    (b"Http/1.1 200 OK", None),
    (b"HTTP/1.1 200 O\x00K", None),
    (b"HTTP/1.1\x00200 OK", None),
    (b"HTTP/1.1 200 O\x1bK", None),
    (b"HTTP/11 200 OK", None),
    (b"HTTP/1.1  200 OK", None),
    (b" HTTP/1.1 200 OK", None),
    (b"HTTP/1.1 200 OK\r\nX", None),
    (b"SSH-2.0-OpenSSH_9.2", None),
    (b"220 mail.example ESMTP", None),
    (b"<html>", None),
    (b"\x16\x03\x01\x02\x00", None),
]


class StatusLineTests(SynchronousTestCase):
    """
    L{parse_status_line}, table-driven.
    """

    def test_table(self) -> None:
        for line, expected in _STATUS_LINES:
            with self.subTest(line=line):
                if expected is None:
                    error = self.assertRaises(InvalidResponse, parse_status_line, line)
                    self.assertEqual(error.reason, "malformed status line")
                else:
                    status = parse_status_line(line)
                    self.assertEqual((status.version, status.code, status.reason), expected)

    def test_raw_is_log_safe(self) -> None:
        status = parse_status_line(b"HTTP/1.1 200 \xff OK")
        self.assertEqual(status.raw, "HTTP/1.1 200 \ufffd OK")

    def test_invalid_keeps_what_arrived(self) -> None:
        error = self.assertRaises(InvalidResponse, parse_status_line, b"garbage\r")
        self.assertEqual(error.received, b"garbage")


_ANSWER = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    b"Server: nginx\r\n"
    b"Content-Length: 612\r\n"
    b"Connection: close\r\n"
    b"\r\n"
)


class HttpHeadParserTests(SynchronousTestCase):
    """
    L{HttpHeadParser}: incremental, bounded, early rejection.
    """

    def test_whole_answer(self) -> None:
        parser = HttpHeadParser()
        status = parser.feed(_ANSWER)
        self.assertEqual(
            status, StatusLine(version=(1, 1), code=200, reason="OK", raw="HTTP/1.1 200 OK")
        )
        self.assertTrue(parser.done)
        self.assertEqual(parser.received, len(_ANSWER))

    def test_bare_newlines(self) -> None:
        parser = HttpHeadParser()
        status = parser.feed(b"HTTP/1.0 302 Found\nLocation: /x\n\n")
        assert status is not None
        self.assertEqual((status.version, status.code), ((1, 0), 302))

    def test_status_line_alone_is_not_done(self) -> None:
        """
        The verdict waits for the blank line that ends the header block.
        """
        parser = HttpHeadParser()
        self.assertIsNone(parser.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n"))
        self.assertIsNotNone(parser.status)
        self.assertFalse(parser.done)
        self.assertIsNotNone(parser.feed(b"\r\n"))

    def test_every_split_point(self) -> None:
        """
        Cutting the answer in two anywhere gives the same result.
        """
        expected = HttpHeadParser().feed(_ANSWER)
        for cut in range(len(_ANSWER) + 1):
            with self.subTest(cut=cut):
                parser = HttpHeadParser()
                first = parser.feed(_ANSWER[:cut])
                second = parser.feed(_ANSWER[cut:])
                if cut == len(_ANSWER):
                    self.assertEqual(first, expected)
                else:
                    self.assertIsNone(first)
                    self.assertEqual(second, expected)

    def test_byte_by_byte(self) -> None:
        parser = HttpHeadParser()
        results = [parser.feed(_ANSWER[i : i + 1]) for i in range(len(_ANSWER))]
        self.assertEqual(results[:-1], [None] * (len(_ANSWER) - 1))
        assert results[-1] is not None
        self.assertEqual(results[-1].code, 200)

    @given(st.data())
    def test_arbitrary_chunking(self, data: st.DataObject) -> None:
        """
        Any chunking of a valid answer gives the same status as one chunk.
        """
        answer = data.draw(
            st.sampled_from(
                [
                    _ANSWER,
                    b"HTTP/1.0 404 Not Found\n\n",
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\n\r\n",
                    b"HTTP/1.1 204\r\n\r\n",
                ]
            )
        )
        expected = HttpHeadParser().feed(answer)
        self.assertIsNotNone(expected)
        chunks = data.draw(_split_strategy(answer))
        parser = HttpHeadParser()
        results = [parser.feed(chunk) for chunk in chunks]
        self.assertEqual(results[-1], expected)
        self.assertEqual([r for r in results[:-1] if r is not None], [])

    @given(st.data())
    def test_arbitrary_chunking_of_garbage(self, data: st.DataObject) -> None:
        """
        Invalid answers are rejected whatever the chunking.
        """
        answer = data.draw(
            st.sampled_from(
                [
                    b"SSH-2.0-OpenSSH\r\n",
                    b"HTTP/1.1 20 OK\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
                    b"http/1.1 200 OK\r\n\r\n",
                ]
            )
        )
        parser = HttpHeadParser()
        with self.assertRaises(InvalidResponse):
            for chunk in data.draw(_split_strategy(answer)):
                parser.feed(chunk)
            parser.end()

    def test_early_rejection_after_five_bytes(self) -> None:
        """
        Five bytes that are not C{HTTP/} decide: no waiting for a newline.
        """
        parser = HttpHeadParser()
        error = self.assertRaises(InvalidResponse, parser.feed, b"SSH-2")
        self.assertEqual(error.reason, "answer does not begin with HTTP/")
        self.assertEqual(error.received, b"SSH-2")

    def test_early_rejection_after_one_byte(self) -> None:
        self.assertRaises(InvalidResponse, HttpHeadParser().feed, b"S")
        self.assertRaises(InvalidResponse, HttpHeadParser().feed, b"h")
        self.assertRaises(InvalidResponse, HttpHeadParser().feed, b"\x16")

    def test_early_rejection_of_later_byte(self) -> None:
        parser = HttpHeadParser()
        self.assertIsNone(parser.feed(b"HT"))
        self.assertRaises(InvalidResponse, parser.feed, b"X")

    def test_prefixes_are_accepted(self) -> None:
        for n in range(1, 6):
            with self.subTest(n=n):
                self.assertIsNone(HttpHeadParser().feed(b"HTTP/"[:n]))

    def test_nul_in_header(self) -> None:
        parser = HttpHeadParser()
        error = self.assertRaises(
            InvalidResponse, parser.feed, b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n"
        )
        self.assertEqual(error.reason, "NUL byte in header")

    def test_bad_status_line(self) -> None:
        self.assertRaises(InvalidResponse, HttpHeadParser().feed, b"HTTP/1.1 20\r\n\r\n")

    def test_done_ignores_more(self) -> None:
        parser = HttpHeadParser()
        status = parser.feed(_ANSWER)
        self.assertEqual(parser.feed(b"body bytes that HEAD should not have"), status)

    def test_end_after_status(self) -> None:
        """
        A server that closes before the blank line still told us its status.
        """
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.1 503 Busy\r\nServer: x")
        status = parser.end()
        assert status is not None
        self.assertEqual(status.code, 503)

    def test_end_with_unterminated_status_line(self) -> None:
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.0 200 OK")
        status = parser.end()
        assert status is not None
        self.assertEqual(status.code, 200)

    def test_end_with_partial_status_line(self) -> None:
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.")
        self.assertRaises(InvalidResponse, parser.end)

    def test_end_with_nothing(self) -> None:
        self.assertIsNone(HttpHeadParser().end())

    def test_line_cap(self) -> None:
        """
        A status line or header line over 8 KiB is refused, with or without
        its newline.
        """
        long_value = b"a" * (MAX_LINE_BYTES + 100)
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.1 200 OK\r\n")
        error = self.assertRaises(InvalidResponse, parser.feed, b"X: " + long_value)
        self.assertEqual(error.reason, "line too long")
        self.assertLessEqual(len(error.received), 80)

        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.1 200 OK\r\n")
        error = self.assertRaises(InvalidResponse, parser.feed, b"X: " + long_value + b"\r\n\r\n")
        self.assertEqual(error.reason, "line too long")

        parser = HttpHeadParser()
        self.assertRaises(InvalidResponse, parser.feed, b"HTTP/1.1 200 " + long_value)

    def test_line_just_under_cap(self) -> None:
        line = b"X: " + b"a" * (MAX_LINE_BYTES - 10) + b"\r\n"
        parser = HttpHeadParser()
        status = parser.feed(b"HTTP/1.1 200 OK\r\n" + line + b"\r\n")
        self.assertIsNotNone(status)

    def test_header_block_cap(self) -> None:
        """
        More than 64 KiB of headers is refused even when every line is short.
        """
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        block = b"HTTP/1.1 200 OK\r\n" + line * (MAX_HEADER_BYTES // len(line) + 2)
        error = self.assertRaises(InvalidResponse, HttpHeadParser().feed, block + b"\r\n")
        self.assertEqual(error.reason, "header block too large")

    def test_header_block_just_under_cap(self) -> None:
        line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        block = b"HTTP/1.1 200 OK\r\n" + line * (MAX_HEADER_BYTES // len(line) - 1)
        self.assertIsNotNone(HttpHeadParser().feed(block + b"\r\n"))

    def test_endless_headers_raise_early(self) -> None:
        """
        Feeding 10 MiB of headers in 64 KiB chunks raises within the first
        few chunks, and the parser never holds more than a chunk plus a line.
        """
        line = b"X-Filler: " + b"a" * 50 + b"\r\n"
        chunk_size = 64 * 1024
        stream = b"HTTP/1.1 200 OK\r\n" + line * ((10 * 1024 * 1024) // len(line))
        parser = HttpHeadParser()
        fed = 0
        with self.assertRaises(InvalidResponse):
            for offset in range(0, len(stream), chunk_size):
                parser.feed(stream[offset : offset + chunk_size])
                fed += chunk_size
                self.assertLessEqual(len(parser._buffer), MAX_LINE_BYTES)
        self.assertLessEqual(fed, 2 * chunk_size)

    def test_endless_line_raises_early(self) -> None:
        """
        10 MiB without a newline, in 64 KiB chunks: refused on the first chunk.
        """
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.1 200 OK\r\nX: ")
        chunk = b"a" * (64 * 1024)
        fed = 0
        with self.assertRaises(InvalidResponse):
            for _ in range(160):
                parser.feed(chunk)
                fed += len(chunk)
        self.assertEqual(fed, 0)

    def test_tiny_lines_stay_cheap(self) -> None:
        """
        A 64 KiB chunk of minimal header lines (the worst case for per-line
        work) is refused within that first chunk: the work per answer is
        bounded by the cap, not by what the server sends.  (How long that
        takes is a figure for bench/, not a pass mark here.)
        """
        parser = HttpHeadParser()
        parser.feed(b"HTTP/1.1 200 OK\r\n")
        fed = 0
        with self.assertRaises(InvalidResponse) as caught:
            for _ in range(4):
                parser.feed(b"a:\n" * (64 * 1024 // 3))
                fed += 1
        self.assertEqual(fed, 0)
        self.assertEqual(caught.exception.reason, "header block too large")


class SmtpReplyParserTests(SynchronousTestCase):
    """
    L{SmtpReplyParser} (RFC 5321 §4.2).
    """

    def test_single(self) -> None:
        self.assertEqual(
            SmtpReplyParser().feed(b"220 mail.example ESMTP Postfix\r\n"),
            [SmtpReply(220, ("mail.example ESMTP Postfix",))],
        )

    def test_multi_line(self) -> None:
        replies = SmtpReplyParser().feed(b"220-mail.example ESMTP\r\n220-no UCE\r\n220 ready\r\n")
        self.assertEqual(replies, [SmtpReply(220, ("mail.example ESMTP", "no UCE", "ready"))])
        self.assertEqual(replies[0].text, "220 mail.example ESMTP / 220 no UCE / 220 ready")

    def test_bare_code(self) -> None:
        self.assertEqual(SmtpReplyParser().feed(b"250\r\n"), [SmtpReply(250, ("",))])
        self.assertEqual(SmtpReply(250, ("",)).text, "250")

    def test_bare_continuation(self) -> None:
        parser = SmtpReplyParser()
        self.assertEqual(parser.feed(b"250-\r\n"), [])
        self.assertEqual(parser.feed(b"250 x\r\n"), [SmtpReply(250, ("", "x"))])

    def test_line_endings(self) -> None:
        """
        Bare C{\\n} and C{\\r\\n} give the same replies.
        """
        crlf = SmtpReplyParser().feed(b"250-a\r\n250 b\r\n")
        lf = SmtpReplyParser().feed(b"250-a\n250 b\n")
        self.assertEqual(crlf, lf)
        self.assertEqual(crlf, [SmtpReply(250, ("a", "b"))])

    def test_several_replies(self) -> None:
        replies = SmtpReplyParser().feed(b"220 hi\r\n250 ok\r\n221 bye\r\n")
        self.assertEqual([r.code for r in replies], [220, 250, 221])

    def test_pending(self) -> None:
        parser = SmtpReplyParser()
        self.assertFalse(parser.pending)
        parser.feed(b"220-a\r\n")
        self.assertTrue(parser.pending)
        parser.feed(b"220 b")
        self.assertTrue(parser.pending)
        parser.feed(b"\r\n")
        self.assertFalse(parser.pending)

    def test_positive(self) -> None:
        self.assertTrue(SmtpReply(250, ()).positive)
        self.assertFalse(SmtpReply(421, ()).positive)
        self.assertFalse(SmtpReply(354, ()).positive)

    def test_code_mismatch_in_multi_line(self) -> None:
        parser = SmtpReplyParser()
        error = self.assertRaises(InvalidReply, parser.feed, b"250-a\r\n251 b\r\n")
        self.assertEqual(error.reason, "reply code changed inside a multi-line reply")

    def test_garbage(self) -> None:
        for line in [
            b"hello\r\n",
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"25\r\n",
            b"2500 x\r\n",
            b"250x\r\n",
            b"600 x\r\n",
            b"190 x\r\n",
            b"260 x\r\n",
            b" 250 x\r\n",
            b"250 a\x00b\r\n",
            b"\r\n",
        ]:
            with self.subTest(line=line):
                error = self.assertRaises(InvalidReply, SmtpReplyParser().feed, line)
                self.assertEqual(error.reason, "not an SMTP reply")

    def test_control_characters_in_text_neutralised(self) -> None:
        (reply,) = SmtpReplyParser().feed(b"220 a\x1bb\r\n")
        self.assertEqual(reply.lines, ("a?b",))

    def test_oversize_line(self) -> None:
        parser = SmtpReplyParser()
        error = self.assertRaises(InvalidReply, parser.feed, b"220 " + b"x" * MAX_SMTP_LINE_BYTES)
        self.assertEqual(error.reason, "line too long")
        error = self.assertRaises(
            InvalidReply,
            SmtpReplyParser().feed,
            b"220 " + b"x" * MAX_SMTP_LINE_BYTES + b"\r\n",
        )
        self.assertEqual(error.reason, "line too long")

    def test_oversize_reply(self) -> None:
        """
        Endless continuation lines are refused once the reply passes 64 KiB,
        fed in 64 KiB chunks up to 10 MiB.
        """
        line = b"250-" + b"x" * 500 + b"\r\n"
        stream = line * ((10 * 1024 * 1024) // len(line))
        parser = SmtpReplyParser()
        fed = 0
        with self.assertRaises(InvalidReply) as caught:
            for offset in range(0, len(stream), 64 * 1024):
                parser.feed(stream[offset : offset + 64 * 1024])
                fed += 64 * 1024
        self.assertEqual(caught.exception.reason, "reply too large")
        self.assertLessEqual(fed, MAX_SMTP_REPLY_BYTES + 64 * 1024)

    def test_reset_between_replies(self) -> None:
        """
        The size budget is per reply, not per connection.
        """
        parser = SmtpReplyParser()
        line = b"250-" + b"x" * 1000 + b"\r\n"
        reply = line * 40 + b"250 end\r\n"  # ~40 KiB each
        for _ in range(5):
            self.assertEqual(len(parser.feed(reply)), 1)

    @given(st.data())
    def test_arbitrary_chunking(self, data: st.DataObject) -> None:
        """
        Any chunking of a conversation gives the same replies.
        """
        stream = data.draw(
            st.sampled_from(
                [
                    b"220-mail.example ESMTP\r\n220 ready\r\n250 ok\r\n221 bye\r\n",
                    b"220 hi\n250-a\n250-STARTTLS\n250 SIZE 10\n",
                    b"250\r\n421 4.3.2 busy\r\n",
                ]
            )
        )
        expected = SmtpReplyParser().feed(stream)
        parser = SmtpReplyParser()
        replies = []
        for chunk in data.draw(_split_strategy(stream)):
            replies.extend(parser.feed(chunk))
        self.assertEqual(replies, expected)
        self.assertFalse(parser.pending)

    @given(
        st.lists(
            st.tuples(
                st.integers(min_value=200, max_value=559).filter(lambda c: c % 100 < 60),
                st.lists(
                    st.text(
                        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                        max_size=40,
                    ),
                    min_size=1,
                    max_size=4,
                ),
            ),
            min_size=1,
            max_size=4,
        ),
        st.lists(st.integers(min_value=1, max_value=400), max_size=20),
        st.booleans(),
    )
    def test_round_trip(
        self, replies: list[tuple[int, list[str]]], cuts: list[int], crlf: bool
    ) -> None:
        """
        Replies written out (multi-line, either line ending) and fed in any
        chunks parse back to what was written.
        """
        end = b"\r\n" if crlf else b"\n"
        stream = b""
        for code, lines in replies:
            for i, text in enumerate(lines):
                separator = b" " if i == len(lines) - 1 else b"-"
                stream += str(code).encode() + separator + text.encode() + end
        parser = SmtpReplyParser()
        got: list[SmtpReply] = []
        for chunk in _chunks(stream, cuts):
            got.extend(parser.feed(chunk))
        self.assertEqual(
            [(r.code, list(r.lines)) for r in got],
            [(code, [t.rstrip("\r") for t in lines]) for code, lines in replies],
        )


class InterimResponseTests(SynchronousTestCase):
    """
    1xx answers other than 101 are interim: the final status follows them.
    """

    def test_early_hints_then_final(self) -> None:
        parser = HttpHeadParser()
        status = parser.feed(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 500 Internal Server Error\r\nServer: x\r\n\r\n"
        )
        assert status is not None
        self.assertEqual(status.code, 500)

    def test_interim_split_across_chunks(self) -> None:
        parser = HttpHeadParser()
        self.assertIsNone(parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n"))
        self.assertIsNone(parser.feed(b"HTTP/1.1 2"))
        status = parser.feed(b"00 OK\r\n\r\n")
        assert status is not None
        self.assertEqual(status.code, 200)

    def test_endless_interim_answers_are_capped(self) -> None:
        parser = HttpHeadParser()
        with self.assertRaises(InvalidResponse):
            for _ in range(10_000):
                parser.feed(b"HTTP/1.1 103 Early Hints\r\n\r\n")

    def test_switching_protocols_is_final(self) -> None:
        status = HttpHeadParser().feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert status is not None
        self.assertEqual(status.code, 101)
