# -*- test-case-name: tests.test_ftp_replies -*-
"""
Tests for L{ismon.wire.ftp}: the sans-I/O FTP reply parser (RFC 959
§4.2), its multi-line replies, early rejection of text that is no reply,
and its size bounds.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.wire.ftp import (
    MAX_FTP_LINE_BYTES,
    MAX_FTP_REPLY_BYTES,
    FtpReply,
    FtpReplyParser,
    InvalidReply,
)
from tests.test_replies import _split_strategy


def _parse(data: bytes) -> list[FtpReply]:
    return FtpReplyParser().feed(data)


class FtpReplyExampleTests(SynchronousTestCase):
    def test_single_line(self) -> None:
        self.assertEqual(_parse(b"220 (vsFTPd 3.0.3)\r\n"), [FtpReply(220, ("(vsFTPd 3.0.3)",))])

    def test_bare_code_and_bare_lf(self) -> None:
        self.assertEqual(_parse(b"200\n"), [FtpReply(200, ("",))])

    def test_multiline_free_continuation_lines(self) -> None:
        """
        RFC 959 §4.2: lines between C{220-} and C{220 } need not carry the
        code; one that starts with another code is text, not the end.
        """
        data = (
            b"220-Welcome to the archive\r\n"
            b"   no code on this line\r\n"
            b"230 not the end: another code\r\n"
            b"220-still going\r\n"
            b"\r\n"
            b"220 ready\r\n"
        )
        (reply,) = _parse(data)
        self.assertEqual(reply.code, 220)
        self.assertEqual(
            reply.lines,
            (
                "Welcome to the archive",
                "   no code on this line",
                "230 not the end: another code",
                "still going",
                "",
                "ready",
            ),
        )
        self.assertTrue(reply.multiline)
        self.assertEqual(reply.text.split(" / ")[0], "220 Welcome to the archive")

    def test_multiline_ends_with_bare_code(self) -> None:
        (reply,) = _parse(b"211-Features:\r\n EPSV\r\n211\r\n")
        self.assertEqual(reply, FtpReply(211, ("Features:", " EPSV", "")))

    def test_two_replies_in_one_read(self) -> None:
        parser = FtpReplyParser()
        self.assertEqual(
            [r.code for r in parser.feed(b"220 hi\r\n200 ok\r\n")],
            [220, 200],
        )
        self.assertFalse(parser.pending)

    def test_byte_by_byte(self) -> None:
        parser = FtpReplyParser()
        data = b"220-a\r\nb\r\n220 c\r\n"
        got: list[FtpReply] = []
        for i in range(len(data)):
            got += parser.feed(data[i : i + 1])
            self.assertEqual(parser.pending, i < len(data) - 1)
        self.assertEqual(got, [FtpReply(220, ("a", "b", "c"))])

    def test_non_utf8_text_is_made_printable(self) -> None:
        (reply,) = _parse(b"220 h\xf4te \x1b[31m\r\n")
        self.assertTrue(reply.text.isprintable())

    def test_not_replies(self) -> None:
        for data in (
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
            b"* OK IMAP4rev1 ready\r\n",
            b"+OK POP3 ready\r\n",
            b"22 short code\r\n",
            b"2200 long code\r\n",
            b"220_underscore\r\n",
            b"620 first digit\r\n",
            b"270 second digit\r\n",
            b"\r\n",
            b"220 a\x00b\r\n",
        ):
            with self.assertRaises(InvalidReply, msg=repr(data)):
                _parse(data)

    def test_rejected_without_a_line_end(self) -> None:
        """
        Bytes that cannot begin a reply fail at once: a hostile server that
        never sends a newline does not hold the verdict to the deadline.
        """
        for data in (b"S", b"\x16\x03\x01", b"2x", b"22a", b"220x", b"\x00"):
            with self.assertRaises(InvalidReply, msg=repr(data)):
                FtpReplyParser().feed(data)
        for data in (b"2", b"22", b"220", b"220 ", b"220-", b"220\r"):
            self.assertEqual(FtpReplyParser().feed(data), [], repr(data))

    def test_nul_inside_multiline(self) -> None:
        parser = FtpReplyParser()
        parser.feed(b"220-hello\r\n")
        with self.assertRaises(InvalidReply):
            parser.feed(b"a\x00")

    def test_line_limit(self) -> None:
        line = b"220 " + b"x" * (MAX_FTP_LINE_BYTES - 4)
        self.assertEqual(len(_parse(line + b"\r\n")), 1)
        with self.assertRaises(InvalidReply) as caught:
            _parse(line + b"x\r\n")
        self.assertEqual(caught.exception.reason, "line too long")
        with self.assertRaises(InvalidReply):
            FtpReplyParser().feed(line + b"xx")  # no line end: rejected anyway

    def test_reply_limit_counts_empty_lines(self) -> None:
        """A flood of empty continuation lines is bounded too."""
        parser = FtpReplyParser()
        parser.feed(b"220-hello\r\n")
        with self.assertRaises(InvalidReply) as caught:
            parser.feed(b"\r\n" * (MAX_FTP_REPLY_BYTES // 2))
        self.assertEqual(caught.exception.reason, "reply too large")

    def test_reply_limit_resets_per_reply(self) -> None:
        parser = FtpReplyParser()
        body = b"".join(b"220-" + b"y" * 1000 + b"\r\n" for _ in range(40))
        for _ in range(3):
            self.assertEqual(len(parser.feed(body + b"220 end\r\n")), 1)


_CODES = st.integers(min_value=100, max_value=559).filter(lambda c: c % 100 < 60)
_TEXT = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))


@st.composite
def _reply(draw: st.DrawFn) -> tuple[int, bytes, int]:
    """A valid reply as bytes, its code, and how many lines it has."""
    code = draw(_CODES)
    middle = draw(st.lists(_TEXT, max_size=5))
    # A free line must not look like the closing line.
    middle = [m for m in middle if not (m[:3] == b"%d" % code and m[3:4] in (b" ", b""))]
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    last = draw(_TEXT)
    if not middle and draw(st.booleans()):
        return code, b"%d %s" % (code, last) + end, 1
    lines = [b"%d-first" % code, *middle, b"%d %s" % (code, last)]
    return code, end.join(lines) + end, len(lines)


class FtpReplyPropertyTests(SynchronousTestCase):
    @given(
        st.lists(_reply(), min_size=1, max_size=4).flatmap(
            lambda replies: st.tuples(
                st.just(replies), _split_strategy(b"".join(r[1] for r in replies))
            )
        )
    )
    @settings(max_examples=300)
    def test_any_split_gives_the_same_replies(
        self, drawn: tuple[list[tuple[int, bytes, int]], list[bytes]]
    ) -> None:
        replies, pieces = drawn
        parser = FtpReplyParser()
        got: list[FtpReply] = []
        for piece in pieces:
            got += parser.feed(piece)
        self.assertEqual([(r.code, len(r.lines)) for r in got], [(c, n) for c, _, n in replies])
        self.assertFalse(parser.pending)
        for reply in got:
            self.assertTrue(reply.text.isprintable())

    @given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
    @settings(max_examples=300)
    def test_arbitrary_bytes_never_crash(self, data: bytes, step: int) -> None:
        """Any bytes: replies or InvalidReply, and never a buffer past the bounds."""
        parser = FtpReplyParser()
        try:
            for i in range(0, len(data), step):
                for reply in parser.feed(data[i : i + step]):
                    self.assertTrue(100 <= reply.code <= 559)
                    self.assertTrue(reply.text.isprintable())
                self.assertLessEqual(len(parser._buffer), MAX_FTP_LINE_BYTES)
        except InvalidReply as e:
            self.assertTrue(e.reason)
            self.assertLessEqual(len(e.received), 80)

    @given(st.integers(min_value=1, max_value=200_000), st.sampled_from([b"a", b"\r\n", b"1-\n"]))
    @settings(max_examples=50)
    def test_floods_are_cut_within_the_bounds(self, size: int, unit: bytes) -> None:
        """Whatever the flood, the parser never holds more than its bounds."""
        parser = FtpReplyParser()
        parser.feed(b"220-flood\r\n")
        flood = unit * (size // len(unit) + 1)
        try:
            for i in range(0, len(flood), 4096):
                parser.feed(flood[i : i + 4096])
        except InvalidReply:
            return
        self.assertLessEqual(len(flood), MAX_FTP_REPLY_BYTES + 4096)
