# -*- test-case-name: tests.test_imap_replies -*-
"""
Tests for L{ismon.wire.imap}: the sans-I/O IMAP4 response parser (its
bounds, literals and early refusal) and the quoting of LOGIN's arguments.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.wire.imap import (
    MAX_IMAP_LINE_BYTES,
    MAX_IMAP_RESPONSE_BYTES,
    MAX_IMAP_RESPONSES,
    ImapResponse,
    ImapResponseParser,
    InvalidImapResponse,
    Kind,
    capabilities,
    quoted,
)
from tests.test_replies import _split_strategy

# What dovecot 2.3 says to a plain probe, and to a STARTTLS one.
_DOVECOT = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS"
    b" AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n"
    b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS"
    b" AUTH=PLAIN AUTH=LOGIN\r\n"
    b"A1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
    b"A2 OK Begin TLS negotiation now.\r\n"
)


def _parse_all(data: bytes) -> list[ImapResponse]:
    return ImapResponseParser().feed(data)


def _refusal(data: bytes) -> str:
    try:
        ImapResponseParser().feed(data)
    except InvalidImapResponse as e:
        return e.reason
    raise AssertionError(f"{data!r} was not refused")


# (line, (kind, tag, keyword, rest)) for lines that are a response.
_RESPONSES: list[tuple[bytes, tuple[Kind, str, str, str]]] = [
    (b"* OK Dovecot ready.", (Kind.UNTAGGED, "*", "OK", "Dovecot ready.")),
    (b"* ok lower case", (Kind.UNTAGGED, "*", "OK", "lower case")),
    (b"* PREAUTH IMAP4rev1 server logged in as Smith", (Kind.UNTAGGED, "*", "PREAUTH", "IMAP4rev1 server logged in as Smith")),
    (b"* BYE Autologout; idle for too long", (Kind.UNTAGGED, "*", "BYE", "Autologout; idle for too long")),
    (b"* CAPABILITY IMAP4rev1 STARTTLS", (Kind.UNTAGGED, "*", "CAPABILITY", "IMAP4rev1 STARTTLS")),
    (b"* 23 EXISTS", (Kind.UNTAGGED, "*", "23", "EXISTS")),
    (b"* OK", (Kind.UNTAGGED, "*", "OK", "")),
    (b"* OK [ALERT] caf\xc3\xa9 ferm\xe9", (Kind.UNTAGGED, "*", "OK", "[ALERT] caf\xe9 ferm\ufffd")),
    (b"+ Ready for additional command text", (Kind.CONTINUATION, "+", "", "Ready for additional command text")),
    (b"+", (Kind.CONTINUATION, "+", "", "")),
    (b"A1 OK NOOP completed", (Kind.TAGGED, "A1", "OK", "NOOP completed")),
    (b"A1 no [AUTHENTICATIONFAILED] Authentication failed.", (Kind.TAGGED, "A1", "NO", "[AUTHENTICATIONFAILED] Authentication failed.")),
    (b"a.b-c]9 BAD Error in IMAP command", (Kind.TAGGED, "a.b-c]9", "BAD", "Error in IMAP command")),
    (b"A7 OK", (Kind.TAGGED, "A7", "OK", "")),
]  # fmt: skip

# (bytes, why they are refused); complete lines and partial ones.
_REFUSED: list[tuple[bytes, str]] = [
    (b"\r\n", "not an IMAP response"),
    (b"+OK POP3 server ready\r\n", "not an IMAP response"),
    (b"+OK", "not an IMAP response"),
    (b"220 mail.example ESMTP\r\n", "not an IMAP response"),
    (b"220 mail.", "not an IMAP response"),
    (b"HTTP/1.1 400 Bad Request\r\n", "not an IMAP response"),
    (b"HTTP/1.1 4", "not an IMAP response"),
    (b"SSH-2.0-OpenSSH_9.6\r\n", "not an IMAP response"),
    (b"*OK\r\n", "not an IMAP response"),
    (b"*O", "not an IMAP response"),
    (b"* \r\n", "not an IMAP response"),
    (b"A1 PREAUTH hello\r\n", "not an IMAP response"),
    (b"A1 OKAY\r\n", "not an IMAP response"),
    (b"A(1 OK\r\n", "not an IMAP response"),
    (b" A1 OK\r\n", "not an IMAP response"),
    (b"\x16\x03\x01\x02\x00", "NUL byte in a response"),
    (b"\x16\x03\x01", "not an IMAP response"),
    (b"\xff\xfe", "not an IMAP response"),
    (b"* OK hi\x00there\r\n", "NUL byte in a response"),
    (b"* OK hi\x00", "NUL byte in a response"),
    (b"* OK " + b"x" * MAX_IMAP_LINE_BYTES, "line too long"),
    (b"* OK " + b"x" * MAX_IMAP_LINE_BYTES + b"\r\n", "line too long"),
    (b"* OK {99999999999999999999}\r\n", "literal too large"),
    (b"* OK {%d}\r\n" % MAX_IMAP_RESPONSE_BYTES, "literal too large"),
]


class ExampleTests(SynchronousTestCase):
    def test_responses(self) -> None:
        for line, (kind, tag, keyword, rest) in _RESPONSES:
            for ending in (b"\r\n", b"\n"):
                with self.subTest(line=line, ending=ending):
                    (response,) = _parse_all(line + ending)
                    self.assertEqual(
                        (response.kind, response.tag, response.keyword, response.rest),
                        (kind, tag, keyword, rest),
                    )

    def test_refused(self) -> None:
        for data, reason in _REFUSED:
            with self.subTest(data=data[:40]):
                self.assertEqual(_refusal(data), reason)

    def test_refused_keeps_what_arrived(self) -> None:
        error = self.assertRaises(InvalidImapResponse, _parse_all, b"+OK POP3 ready\r\n")
        self.assertEqual(error.received, b"+OK POP3 ready")

    def test_dovecot(self) -> None:
        responses = _parse_all(_DOVECOT)
        self.assertEqual(
            [(r.kind, r.tag, r.keyword) for r in responses],
            [
                (Kind.UNTAGGED, "*", "OK"),
                (Kind.UNTAGGED, "*", "CAPABILITY"),
                (Kind.TAGGED, "A1", "OK"),
                (Kind.TAGGED, "A2", "OK"),
            ],
        )
        self.assertIn("STARTTLS", capabilities(responses[1]))
        self.assertIn("AUTH=PLAIN", capabilities(responses[1]))
        # A capability response code in a greeting is not a CAPABILITY response.
        self.assertEqual(capabilities(responses[0]), frozenset())

    def test_condition(self) -> None:
        (ok, data, tagged) = _parse_all(b"* ok x\r\n* 3 EXISTS\r\nA1 bad y\r\n")
        self.assertEqual((ok.condition, data.condition, tagged.condition), ("OK", None, "BAD"))

    def test_capabilities_upper_case(self) -> None:
        (response,) = _parse_all(b"* CAPABILITY imap4rev1 starttls\r\n")
        self.assertEqual(capabilities(response), {"IMAP4REV1", "STARTTLS"})

    def test_pending(self) -> None:
        parser = ImapResponseParser()
        self.assertFalse(parser.pending)
        self.assertEqual(parser.feed(b"* OK hel"), [])
        self.assertTrue(parser.pending)
        self.assertEqual(len(parser.feed(b"lo\r\n")), 1)
        self.assertFalse(parser.pending)

    def test_text_is_log_safe_and_bounded(self) -> None:
        (response,) = _parse_all(b"* OK \x1b[31mred\x7f " + b"y" * 500 + b"\r\n")
        self.assertTrue(response.text.isprintable())
        self.assertTrue(response.text.startswith("* OK ?[31mred? yyy"))
        self.assertLessEqual(len(response.text), 200)


class HiddenTests(SynchronousTestCase):
    """What the parser shows never holds the hidden bytes (a password)."""

    def test_text(self) -> None:
        parser = ImapResponseParser((b"s3cret", b'q\\"x'))
        (response,) = parser.feed(b'A1 BAD Error in LOGIN "u" "s3cret" "q\\"x"\r\n')
        self.assertEqual(response.text, 'A1 BAD Error in LOGIN "u" "***" "***"')
        self.assertEqual((response.tag, response.keyword), ("A1", "BAD"))

    def test_parsed_before_hiding(self) -> None:
        """A password that looks like a keyword does not change what is read."""
        (response,) = ImapResponseParser((b"OK",)).feed(b"A1 OK done\r\n")
        self.assertEqual((response.keyword, response.text), ("OK", "A1 *** done"))

    def test_refusals_hidden_before_the_cut(self) -> None:
        """The 80 bytes a refusal keeps are cut from the hidden text, never mid-password."""
        secret = b"p" * 30
        for data in (
            b"* OK " + b"x" * 60 + secret + b"\x00",
            b"* OK " + b"x" * 60 + secret + b"y" * MAX_IMAP_LINE_BYTES,
            b"+OK " + b"x" * 60 + secret + b"\r\n",
        ):
            with self.subTest(data=data[:20]):
                parser = ImapResponseParser((secret,))
                error = self.assertRaises(InvalidImapResponse, parser.feed, data)
                self.assertNotIn(b"ppp", error.received)
                self.assertIn(b"***", error.received)


class LiteralTests(SynchronousTestCase):
    """
    Literals are skipped and counted, never kept, and what they hold is
    never read as a response.
    """

    def test_skipped(self) -> None:
        (fetch, done) = _parse_all(b"* 1 FETCH (BODY[] {13}\r\nA1 OK forged\n)\r\nA1 OK done\r\n")
        self.assertEqual((fetch.keyword, fetch.rest), ("1", "FETCH (BODY[] {13})"))
        self.assertEqual((done.tag, done.rest), ("A1", "done"))

    def test_several_and_literal8(self) -> None:
        (response,) = _parse_all(b"* 1 FETCH (A {2}\r\nxy B ~{3}\r\n\x00\x01\x02)\r\n")
        self.assertEqual(response.rest, "FETCH (A {2} B ~{3})")

    def test_split_anywhere(self) -> None:
        data = b"* 2 FETCH (BODY[] {6}\r\n\r\n* OK)\r\nA1 OK\r\n"
        expected = _parse_all(data)
        for cut in range(len(data) + 1):
            with self.subTest(cut=cut):
                parser = ImapResponseParser()
                self.assertEqual(parser.feed(data[:cut]) + parser.feed(data[cut:]), expected)

    def test_refused_before_its_bytes(self) -> None:
        parser = ImapResponseParser()
        parser.feed(b"* OK " + b"z" * 1000 + b"\r\n")
        # What is left of the bound is less than the literal announced.
        announce = b"* 1 FETCH {%d}\r\n" % (MAX_IMAP_RESPONSE_BYTES - 1000)
        error = self.assertRaises(InvalidImapResponse, parser.feed, announce)
        self.assertEqual(error.reason, "literal too large")

    def test_empty(self) -> None:
        (response,) = _parse_all(b"* 1 FETCH (X {0}\r\n)\r\n")
        self.assertEqual(response.rest, "FETCH (X {0})")

    def test_pending_inside(self) -> None:
        parser = ImapResponseParser()
        self.assertEqual(parser.feed(b"* 1 FETCH {4}\r\nab"), [])
        self.assertTrue(parser.pending)


class BoundTests(SynchronousTestCase):
    def test_endless_untagged_lines(self) -> None:
        """Untagged lines without a completion are refused after the bound."""
        parser = ImapResponseParser()
        line = b"* OK " + b"u" * 58 + b"\r\n"
        count = 0
        with self.assertRaises(InvalidImapResponse) as caught:
            while True:
                parser.feed(line)
                count += 1
        self.assertEqual(caught.exception.reason, "response too large")
        self.assertEqual(count, MAX_IMAP_RESPONSE_BYTES // len(line))

    def test_a_flood_of_tiny_responses_is_refused_after_the_count(self) -> None:
        """
        64 KiB of C{+} lines (found by the imap fuzz target's one-hour
        run): refused after MAX_IMAP_RESPONSES, not parsed one by one.
        """
        parser = ImapResponseParser()
        with self.assertRaises(InvalidImapResponse) as caught:
            parser.feed(b"+\n" * 32767)
        self.assertEqual(caught.exception.reason, "too many responses")

    def test_the_count_starts_again_at_each_completion(self) -> None:
        parser = ImapResponseParser()
        for tag in (b"A1", b"A2", b"A3"):
            # The completion is one of the MAX_IMAP_RESPONSES.
            found = parser.feed(b"* OK x\r\n" * (MAX_IMAP_RESPONSES - 1) + tag + b" OK\r\n")
            self.assertEqual(len(found), MAX_IMAP_RESPONSES)

    def test_bound_counts_from_the_last_completion(self) -> None:
        parser = ImapResponseParser()
        block = b"* 1 FETCH {40000}\r\n" + b"v" * 40000 + b"\r\n"
        parser.feed(block + b"A1 OK\r\n")
        parser.feed(block + b"A2 OK\r\n")
        self.assertRaises(InvalidImapResponse, parser.feed, block + block)

    def test_long_line_in_pieces(self) -> None:
        parser = ImapResponseParser()
        parser.feed(b"* OK ")
        with self.assertRaises(InvalidImapResponse) as caught:
            for _ in range(MAX_IMAP_LINE_BYTES):
                parser.feed(b"w")
        self.assertEqual(caught.exception.reason, "line too long")

    def test_longest_line(self) -> None:
        line = b"* OK " + b"x" * (MAX_IMAP_LINE_BYTES - 5)
        (response,) = _parse_all(line + b"\n")
        self.assertEqual(response.keyword, "OK")


class PropertyTests(SynchronousTestCase):
    @given(st.data())
    def test_any_chunking(self, data: st.DataObject) -> None:
        """Any chunking of a transcript gives what one chunk gives."""
        transcript = _DOVECOT + b"* 1 FETCH (BODY[] {9}\r\nA3 OK x\r\n)\r\nA3 OK\r\n"
        pieces = data.draw(_split_strategy(transcript))
        parser = ImapResponseParser()
        got = [response for piece in pieces for response in parser.feed(piece)]
        self.assertEqual(got, _parse_all(transcript))
        self.assertFalse(parser.pending)

    @given(
        st.lists(
            st.binary(max_size=200)
            | st.sampled_from([b"* OK x\r\n", b"A1 OK\r\n", b"{5}\r\n", b"\r\n", b"+ \r\n"]),
            max_size=40,
        )
    )
    @settings(max_examples=300)
    def test_anything_is_a_response_or_a_refusal(self, pieces: list[bytes]) -> None:
        """
        Whatever arrives, the parser returns responses or refuses with
        L{InvalidImapResponse}, and holds at most one line.
        """
        parser = ImapResponseParser()
        try:
            for piece in pieces:
                for response in parser.feed(piece):
                    self.assertTrue(response.text.isprintable())
                    self.assertLessEqual(len(response.text), 200)
                self.assertLessEqual(len(parser._buffer), MAX_IMAP_LINE_BYTES)
        except InvalidImapResponse as e:
            self.assertLessEqual(len(e.received), MAX_IMAP_LINE_BYTES)

    @given(
        st.sampled_from([b"* ", b"+ ", b"A1 ", b"tag.9 "]),
        # No "{": a line ending in {n} announces a literal instead of ending.
        st.from_regex(rb"[A-Za-z]{1,10}( [\x20-\x7a\x7c-\x7e]{0,50})?", fullmatch=True),
    )
    def test_every_prefix_of_a_response_waits(self, start: bytes, tail: bytes) -> None:
        """
        The early refusal never refuses the start of a response that would
        be accepted whole.
        """
        line = start + tail
        try:
            _parse_all(line + b"\r\n")
        except InvalidImapResponse:
            return
        parser = ImapResponseParser()
        for i in range(len(line) + 1):
            self.assertEqual(parser.feed(line[i : i + 1]), [])
        self.assertEqual(len(parser.feed(b"\r\n")), 1)


def _unquote(raw: bytes) -> str:
    """A quoted string's value, as a server reads it (RFC 9051 §9 quoted)."""
    assert raw[:1] == raw[-1:] == b'"'
    out = bytearray()
    escaped = False
    for byte in raw[1:-1]:
        if escaped:
            assert byte in b'"\\'
            out.append(byte)
            escaped = False
        elif byte == ord("\\"):
            escaped = True
        else:
            assert byte != ord('"')
            out.append(byte)
    assert not escaped
    return out.decode("utf-8")


class QuotedTests(SynchronousTestCase):
    def test_escapes(self) -> None:
        self.assertEqual(quoted('a"b\\c'), b'"a\\"b\\\\c"')
        self.assertEqual(quoted(""), b'""')
        self.assertEqual(quoted("caf\xe9"), b'"caf\xc3\xa9"')

    def test_line_breaks_refused(self) -> None:
        for value in ("a\rb", "a\nb", "a\x00b", "x\r\nA2 LOGOUT"):
            with self.subTest(value=value):
                self.assertRaises(ValueError, quoted, value)

    @given(st.text().filter(lambda t: not set(t) & set("\r\n\x00")))
    def test_round_trip(self, value: str) -> None:
        raw = quoted(value)
        self.assertNotIn(b"\r", raw)
        self.assertNotIn(b"\n", raw)
        self.assertEqual(_unquote(raw), value)
