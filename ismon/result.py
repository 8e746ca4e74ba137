# -*- test-case-name: tests.test_result -*-
"""
What one probe found (L{ProbeResult}) and the pure rules that judge a
server's answer (docs/failure-rules.md).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING

import attrs

from ismon.catalogue import MessageId
from ismon.replies import SmtpReply, StatusLine, printable

if TYPE_CHECKING:
    from ismon.requests import Expectation, HeaderExpectation

__all__ = [
    "Phase",
    "ProbeResult",
    "StatusSet",
    "judge_http_body",
    "judge_http_headers",
    "judge_http_status",
    "judge_smtp_reply",
    "timed_out",
]


class Phase(Enum):
    """Where in a probe something went wrong."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS = "tls"
    SEND = "send"
    WAIT = "wait"
    RECEIVE = "receive"
    PARSE = "parse"


@attrs.frozen
class ProbeResult:
    """
    The outcome of one probe.  A failure names its catalogue message and the
    number that goes in it (errno, or the status/reply code for 83).
    """

    ok: bool
    latency: float
    message: MessageId | None = None
    number: int | None = None
    phase: Phase | None = None
    reply: str = ""
    detail: str = ""
    address: str = ""
    cert_days_left: int | None = None
    # The peer certificate's notAfter (epoch seconds), for the metrics
    # (docs/metrics.md); last, so the older fields keep their places.
    cert_not_after: float | None = None

    @classmethod
    def failure(
        cls,
        message: MessageId,
        phase: Phase,
        *,
        number: int | None = None,
        latency: float = 0.0,
        reply: str = "",
        detail: str = "",
    ) -> ProbeResult:
        return cls(
            ok=False,
            latency=latency,
            message=message,
            number=number,
            phase=phase,
            reply=reply,
            detail=detail,
        )

    def http_status(self) -> int | None:
        """
        The status code of the HTTP status line this probe got, or L{None}
        without one: an HTTP probe keeps that line as its C{reply} when it
        succeeds and when it judged the answer (messages 83-86); a connect
        error or an SMTP reply has none.
        """
        match = _STATUS_CODE.match(self.reply)
        return int(match.group(1)) if match else None

    def describe(self) -> str:
        """A short human summary for logs and status output."""
        if self.ok:
            return f"ok in {self.latency * 1000:.1f} ms" + (
                f" ({self.reply})" if self.reply else ""
            )
        assert self.message is not None and self.phase is not None
        text = f"failed at {self.phase.value}: message {int(self.message)}"
        if self.number is not None:
            text += f" [{self.number}]"
        if self.detail:
            text += f" {self.detail}"
        if self.reply:
            text += f" (server said: {self.reply})"
        return text


_STATUS_CODE = re.compile(r"HTTP/[0-9]\.[0-9] ([0-9]{3})(?![0-9])")


def timed_out(phase: Phase, latency: float) -> ProbeResult:
    """The deadline expired: message 74 with ETIMEDOUT (README: Messages)."""
    return ProbeResult.failure(
        MessageId.SELECT_ERROR,
        phase,
        number=errno.ETIMEDOUT,
        latency=latency,
        detail="no answer within the timeout",
    )


@attrs.frozen
class StatusSet:
    """A set of HTTP status codes written as C{200-399,404}."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: str) -> StatusSet:
        """
        @raise ValueError: on anything but comma-separated codes and ranges
            within 100-599.
        """
        ranges: list[tuple[int, int]] = []
        for part in text.split(","):
            low_text, dash, high_text = part.strip().partition("-")
            # ASCII only: str.isdigit() also admits full-width and superscript digits.
            if not _is_code(low_text) or (dash and not _is_code(high_text)):
                raise ValueError(f"not a status code or range: {part!r}")
            low = int(low_text)
            high = int(high_text) if dash else low
            if not 100 <= low <= high <= 599:
                raise ValueError(f"status range out of 100-599: {part!r}")
            ranges.append((low, high))
        return cls(tuple(ranges))

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and any(low <= code <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return ",".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)


def _is_code(text: str) -> bool:
    return text.isascii() and text.isdigit()


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


def judge_smtp_reply(reply: SmtpReply, expected: int) -> tuple[MessageId | None, int | None]:
    """
    A greeting must be 220 and a NOOP reply 250 (docs/failure-rules.md, SMTP rule 3); any other
    code is message 83 with that code.
    """
    if reply.code != expected:
        return MessageId.INVALID_STATUS, reply.code
    return None, None
