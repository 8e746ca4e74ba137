# -*- test-case-name: tests.test_pop3_replies -*-
"""
Tests for L{ismon.wire.pop3}: the sans-I/O POP3 response parser, its
multi-line bodies (dot-unstuffing) and its bounds.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.wire.pop3 import (
    MAX_POP3_LINE_BYTES,
    MAX_POP3_REPLY_BYTES,
    InvalidReply,
    Pop3Reply,
    Pop3ReplyParser,
    capabilities,
)

DOVECOT_CAPA = (
    b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
    b"AUTH-RESP-CODE\r\nSTLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n.\r\n"
)


def _parse(data: bytes, multiline: bool = False) -> Pop3Reply | None:
    parser = Pop3ReplyParser()
    parser.feed(data)
    return parser.reply(multiline)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class StatusLineTests(SynchronousTestCase):
    def test_ok_with_text(self) -> None:
        self.assertEqual(
            _parse(b"+OK Dovecot (Debian) ready.\r\n"),
            Pop3Reply(ok=True, status_text="Dovecot (Debian) ready."),
        )

    def test_bare_ok(self) -> None:
        reply = _parse(b"+OK\r\n")
        assert reply is not None
        self.assertEqual((reply.ok, reply.text, reply.status), (True, "+OK", "+OK"))

    def test_err(self) -> None:
        reply = _parse(b"-ERR [AUTH] Authentication failed.\r\n")
        assert reply is not None
        self.assertFalse(reply.ok)
        self.assertEqual(reply.text, "-ERR [AUTH] Authentication failed.")

    def test_bare_lf_accepted(self) -> None:
        self.assertEqual(_parse(b"+OK hi\n"), Pop3Reply(ok=True, status_text="hi"))

    def test_incomplete_line_waits(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"+OK rea")
        self.assertIsNone(parser.reply())
        self.assertTrue(parser.pending)
        parser.feed(b"dy\r\n")
        self.assertEqual(parser.reply(), Pop3Reply(ok=True, status_text="ready"))
        self.assertFalse(parser.pending)

    def test_not_pop3(self) -> None:
        for line in (
            b"220 smtp.example ESMTP\r\n",
            b"* OK IMAP4rev1\r\n",
            b"+OKAY\r\n",
            b"+ok lower case\r\n",
            b"-ERROR\r\n",
            b"\r\n",
            b"+OK\x00\r\n",
            b"\xff\xfe+OK\r\n",
        ):
            with self.assertRaises(InvalidReply, msg=repr(line)) as caught:
                _parse(line)
            self.assertEqual(caught.exception.reason, "not a POP3 status line")

    def test_control_bytes_made_printable(self) -> None:
        reply = _parse(b"+OK a\x1b[2Jb\xff\r\n")
        assert reply is not None
        self.assertEqual(reply.status_text, "a?[2Jb\ufffd")

    def test_err_never_opens_a_body(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"-ERR no CAPA here\r\n")
        self.assertEqual(
            parser.reply(multiline=True), Pop3Reply(ok=False, status_text="no CAPA here")
        )
        self.assertFalse(parser.pending)


class MultiLineTests(SynchronousTestCase):
    def test_dovecot_capa(self) -> None:
        reply = _parse(DOVECOT_CAPA, multiline=True)
        assert reply is not None
        self.assertEqual(reply.text, "+OK")
        self.assertEqual(len(reply.lines), 9)
        self.assertEqual(reply.lines[-1], "SASL PLAIN LOGIN")
        self.assertIn("STLS", capabilities(reply))
        self.assertIn("SASL", capabilities(reply))

    def test_capabilities_case_and_blank_lines(self) -> None:
        reply = Pop3Reply(ok=True, status_text="", lines=("stls", "", "  ", "User x"))
        self.assertEqual(capabilities(reply), {"STLS", "USER"})

    def test_dot_unstuffing(self) -> None:
        reply = _parse(b"+OK\r\n..hidden\r\n...\r\n.x\r\n.\r\n", multiline=True)
        assert reply is not None
        self.assertEqual(reply.lines, (".hidden", "..", "x"))

    def test_body_waits_for_its_dot(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"+OK\r\nSTLS\r\n")
        self.assertIsNone(parser.reply(multiline=True))
        self.assertTrue(parser.pending)
        parser.feed(b".\r\n")
        self.assertEqual(
            parser.reply(multiline=True), Pop3Reply(ok=True, status_text="", lines=("STLS",))
        )

    def test_empty_body(self) -> None:
        self.assertEqual(
            _parse(b"+OK\r\n.\r\n", multiline=True), Pop3Reply(ok=True, status_text="")
        )

    def test_body_line_is_not_a_status(self) -> None:
        # "-ERR" inside a body is just a capability-list line.
        reply = _parse(b"+OK\r\n-ERR\r\n.\r\n", multiline=True)
        assert reply is not None
        self.assertEqual(reply.lines, ("-ERR",))

    def test_nul_in_body(self) -> None:
        with self.assertRaises(InvalidReply):
            _parse(b"+OK\r\nA\x00B\r\n.\r\n", multiline=True)

    def test_what_was_not_asked_for_stays_pending(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"+OK hello\r\n+OK\r\nUSER\r\n.\r\n")
        self.assertEqual(parser.reply(), Pop3Reply(ok=True, status_text="hello"))
        self.assertTrue(parser.pending)
        self.assertEqual(parser.reply(multiline=True), Pop3Reply(True, "", ("USER",)))
        self.assertFalse(parser.pending)


class BoundTests(SynchronousTestCase):
    def test_long_line_without_newline(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"+OK " + b"x" * MAX_POP3_LINE_BYTES)
        with self.assertRaises(InvalidReply) as caught:
            parser.reply()
        self.assertEqual(caught.exception.reason, "line too long")
        self.assertLessEqual(len(caught.exception.received), 80)

    def test_long_line_with_newline(self) -> None:
        with self.assertRaises(InvalidReply) as caught:
            _parse(b"+OK " + b"x" * MAX_POP3_LINE_BYTES + b"\r\n")
        self.assertEqual(caught.exception.reason, "line too long")

    def test_longest_line_accepted(self) -> None:
        reply = _parse(b"+OK " + b"x" * (MAX_POP3_LINE_BYTES - 4) + b"\r\n")
        assert reply is not None
        self.assertTrue(reply.ok)

    def test_endless_body(self) -> None:
        parser = Pop3ReplyParser()
        parser.feed(b"+OK\r\n")
        line = b"X" * 1000 + b"\r\n"
        with self.assertRaises(InvalidReply) as caught:
            for _ in range(MAX_POP3_REPLY_BYTES // len(line) + 2):
                parser.feed(line)
                self.assertIsNone(parser.reply(multiline=True))
        self.assertEqual(caught.exception.reason, "reply too large")

    def test_unread_backlog_is_bounded(self) -> None:
        # Lines nobody asks for (a server talking ahead) do not pile up.
        parser = Pop3ReplyParser()
        with self.assertRaises(InvalidReply) as caught:
            for _ in range(200):
                parser.feed(b"+OK " + b"y" * 1000 + b"\r\n")
        self.assertEqual(caught.exception.reason, "reply too large")


# Status-line text: anything but the line end and NUL (which is refused).
_TEXT = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))
_SAFE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
).map(str.encode)


class PropertyTests(SynchronousTestCase):
    @given(
        st.lists(_SAFE_TEXT, max_size=12),
        st.booleans(),
        st.lists(st.integers(min_value=1, max_value=400), max_size=30),
    )
    @settings(max_examples=300)
    def test_any_split_gives_the_same_reply(
        self, lines: list[bytes], crlf: bool, cuts: list[int]
    ) -> None:
        end = b"\r\n" if crlf else b"\n"
        stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
        data = b"+OK list" + end + b"".join(line + end for line in stuffed) + b"." + end
        parser = Pop3ReplyParser()
        got = []
        for piece in _chunks(data, cuts):
            parser.feed(piece)
            reply = parser.reply(multiline=True)
            if reply is not None:
                got.append(reply)
        # Dot-unstuffing undoes the stuffing exactly.
        self.assertEqual(got, [Pop3Reply(True, "list", tuple(x.decode() for x in lines))])
        self.assertFalse(parser.pending)

    @given(st.binary(max_size=3000), st.booleans())
    @settings(max_examples=500)
    def test_any_bytes_parse_or_raise_invalid_reply(self, data: bytes, multiline: bool) -> None:
        parser = Pop3ReplyParser()
        try:
            parser.feed(data)
            while parser.reply(multiline) is not None:
                pass
        except InvalidReply as e:
            self.assertLessEqual(len(e.received), MAX_POP3_LINE_BYTES)

    @given(st.sampled_from([b"+OK", b"-ERR"]), _TEXT)
    def test_status_and_text_survive(self, status: bytes, text: bytes) -> None:
        reply = _parse(status + b" " + text + b"\r\n")
        assert reply is not None
        self.assertEqual(reply.ok, status == b"+OK")
        self.assertNotIn("\n", reply.text)
        self.assertTrue(reply.text.isprintable())

    @given(st.binary(min_size=1, max_size=40))
    def test_a_line_without_an_indicator_is_refused(self, line: bytes) -> None:
        line = line.replace(b"\n", b"")
        if line.rstrip(b"\r")[:3] == b"+OK" or line.rstrip(b"\r")[:4] == b"-ERR":
            return
        with self.assertRaises(InvalidReply):
            _parse(line + b"\n")

    @given(st.integers(min_value=1, max_value=64), st.integers(min_value=1, max_value=2000))
    @settings(max_examples=50)
    def test_memory_bounded_whatever_the_chunking(self, size: int, count: int) -> None:
        # However a never-ending body arrives, the parser refuses it before
        # holding much more than its bound.
        parser = Pop3ReplyParser()
        parser.feed(b"+OK\r\n")
        chunk = (b"Z" * size + b"\r\n") * 64
        try:
            for _ in range(count):
                parser.feed(chunk)
                self.assertIsNone(parser.reply(multiline=True))
                self.assertLessEqual(
                    len(parser._buffer), MAX_POP3_REPLY_BYTES + MAX_POP3_LINE_BYTES
                )
        except InvalidReply as e:
            self.assertEqual(e.reason, "reply too large")
