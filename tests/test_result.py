# -*- test-case-name: tests.test_result -*-
"""
Tests for L{ismon.core.result}: judging HTTP statuses and SMTP replies (docs/failure-rules.md),
status sets, and the probe result value.
"""

from __future__ import annotations

import errno

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from ismon.core.catalogue import MessageId
from ismon.core.requests import StatusSet
from ismon.core.result import Phase, ProbeResult, timed_out
from ismon.wire.http import StatusLine, judge_http_status
from ismon.wire.smtp import SmtpReply, judge_smtp_reply


def _status(code: int) -> StatusLine:
    return StatusLine(version=(1, 1), code=code, reason="", raw=f"HTTP/1.1 {code}")


class JudgeHttpStatusTests(SynchronousTestCase):
    """
    docs/failure-rules.md, HTTP rule 4: the status only counts when the URI is not C{/}; 400-599 fails.
    """

    def test_root_uri_never_judged(self) -> None:
        for code in (100, 200, 301, 399, 400, 401, 404, 500, 503, 599, 999):
            with self.subTest(code=code):
                self.assertEqual(judge_http_status(_status(code), "/"), (None, None))

    def test_other_uri(self) -> None:
        table = {
            100: True,
            200: True,
            204: True,
            301: True,
            302: True,
            399: True,
            400: False,
            401: False,
            403: False,
            404: False,
            499: False,
            500: False,
            503: False,
            599: False,
            600: True,
        }
        for code, acceptable in table.items():
            with self.subTest(code=code):
                expected = (None, None) if acceptable else (MessageId.INVALID_STATUS, code)
                self.assertEqual(judge_http_status(_status(code), "/secret"), expected)

    def test_authentication_required(self) -> None:
        """
        A URI that needs authentication fails with 83 and the code (the
        manual's example).
        """
        self.assertEqual(
            judge_http_status(_status(401), "/secret"), (MessageId.INVALID_STATUS, 401)
        )

    def test_uri_that_looks_like_root(self) -> None:
        """
        Only exactly C{/} is exempt.
        """
        for uri in ("/index.html", "//", "/?", "*"):
            with self.subTest(uri=uri):
                self.assertEqual(
                    judge_http_status(_status(404), uri), (MessageId.INVALID_STATUS, 404)
                )

    def test_expect_overrides_rule(self) -> None:
        expect = StatusSet.parse("200-299")
        self.assertEqual(judge_http_status(_status(204), "/", expect), (None, None))
        self.assertEqual(
            judge_http_status(_status(301), "/", expect), (MessageId.INVALID_STATUS, 301)
        )
        self.assertEqual(
            judge_http_status(_status(500), "/x", expect), (MessageId.INVALID_STATUS, 500)
        )

    def test_expect_accepts_errors(self) -> None:
        """
        A set naming 401 accepts it even for a non-root URI.
        """
        expect = StatusSet.parse("200,401")
        self.assertEqual(judge_http_status(_status(401), "/secret", expect), (None, None))


class StatusSetTests(SynchronousTestCase):
    def test_parse_valid(self) -> None:
        table = {
            "200": ((200, 200),),
            "200-399,404": ((200, 399), (404, 404)),
            " 200 , 301-302 ": ((200, 200), (301, 302)),
            "100-599": ((100, 599),),
            "404-404": ((404, 404),),
        }
        for text, ranges in table.items():
            with self.subTest(text=text):
                self.assertEqual(StatusSet.parse(text).ranges, ranges)

    def test_parse_invalid(self) -> None:
        for text in (
            "",
            ",",
            "200,",
            ",200",
            "200,,404",
            "abc",
            "2OO",
            "200-",
            "-200",
            "200--300",
            "200-300-400",
            "399-200",
            "99",
            "600",
            "0",
            "1000",
            "200-600",
            "+200",
            "-1",
            "200.0",
            "200 300",
            "\u00b2\u00b9",
            "200-\u00b2",
            "\uff12\uff10\uff10",
            "200-\uff13\uff19\uff19",
        ):
            with self.subTest(text=text):
                self.assertRaises(ValueError, StatusSet.parse, text)

    def test_contains(self) -> None:
        statuses = StatusSet.parse("200-399,404")
        for code in (200, 250, 399, 404):
            self.assertIn(code, statuses)
        for code in (199, 400, 403, 405, 500):
            self.assertNotIn(code, statuses)
        self.assertNotIn("200", statuses)
        self.assertNotIn(None, statuses)

    def test_str(self) -> None:
        self.assertEqual(str(StatusSet.parse("200-399, 404")), "200-399,404")

    @given(st.lists(st.tuples(st.integers(100, 599), st.integers(0, 100)), min_size=1, max_size=5))
    def test_round_trip(self, parts: list[tuple[int, int]]) -> None:
        ranges = tuple((low, min(599, low + width)) for low, width in parts)
        statuses = StatusSet(ranges)
        self.assertEqual(StatusSet.parse(str(statuses)), statuses)


class JudgeSmtpReplyTests(SynchronousTestCase):
    def test_expected(self) -> None:
        self.assertEqual(judge_smtp_reply(SmtpReply(220, ("hi",)), 220), (None, None))
        self.assertEqual(judge_smtp_reply(SmtpReply(250, ("ok",)), 250), (None, None))

    def test_other_codes(self) -> None:
        """
        Any other code is 83 with that code, even another positive one
        (sendmail's RefuseLA answers 421).
        """
        for code, expected in ((421, 220), (554, 220), (250, 220), (500, 250), (251, 250)):
            with self.subTest(code=code, expected=expected):
                self.assertEqual(
                    judge_smtp_reply(SmtpReply(code, ()), expected),
                    (MessageId.INVALID_STATUS, code),
                )


class ProbeResultTests(SynchronousTestCase):
    def test_timed_out(self) -> None:
        result = timed_out(Phase.WAIT, 10.0)
        self.assertFalse(result.ok)
        self.assertEqual(result.message, MessageId.SELECT_ERROR)
        self.assertEqual(result.number, errno.ETIMEDOUT)
        self.assertEqual(result.phase, Phase.WAIT)
        self.assertEqual(result.latency, 10.0)

    def test_failure(self) -> None:
        result = ProbeResult.failure(
            MessageId.INVALID_STATUS, Phase.PARSE, number=401, reply="HTTP/1.1 401"
        )
        self.assertEqual(
            (result.ok, result.message, result.number, result.phase, result.reply),
            (False, MessageId.INVALID_STATUS, 401, Phase.PARSE, "HTTP/1.1 401"),
        )

    def test_describe_success(self) -> None:
        self.assertEqual(
            ProbeResult(ok=True, latency=0.0125, reply="HTTP/1.1 200 OK").describe(),
            "ok in 12.5 ms (HTTP/1.1 200 OK)",
        )
        self.assertEqual(ProbeResult(ok=True, latency=0.001).describe(), "ok in 1.0 ms")

    def test_describe_failure(self) -> None:
        result = ProbeResult.failure(
            MessageId.INVALID_STATUS,
            Phase.PARSE,
            number=421,
            detail="busy",
            reply="421 try later",
        )
        self.assertEqual(
            result.describe(),
            "failed at parse: message 83 [421] busy (server said: 421 try later)",
        )
        self.assertEqual(
            ProbeResult.failure(MessageId.INVALID_RESPONSE, Phase.PARSE).describe(),
            "failed at parse: message 82",
        )

    def test_frozen(self) -> None:
        import attrs

        result = ProbeResult(ok=True, latency=0.0)
        self.assertRaises(attrs.exceptions.FrozenInstanceError, setattr, result, "ok", False)
