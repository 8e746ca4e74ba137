# -*- test-case-name: tests.test_result -*-
"""
What one probe found (L{ProbeResult}): a verdict, where in the probe it
struck, and the catalogue message and number of a failure.
"""

from __future__ import annotations

import errno
import re
from enum import Enum

import attrs

from ismon.core.catalogue import MessageId

__all__ = ["Phase", "ProbeResult", "monitor_failure", "timed_out"]


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
    # Message 42's function (socket, thread, getaddrinfo, timer, memory):
    # which of the monitor's own steps failed (L{monitor_failure}).
    function: str = ""

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

    @property
    def monitor_failed(self) -> bool:
        """
        The monitor itself failed (message 42): its own resources, not the
        server.  Such a probe says nothing of the server; a watch whose
        retries end on it exits 4, not 1 (docs/failure-rules.md).
        """
        return self.message is MessageId.SYSTEM_ERROR

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
        if self.function:
            text += f" ({self.function} {self.number})"
        elif self.number is not None:
            text += f" [{self.number}]"
        if self.detail:
            text += f" {self.detail}"
        if self.reply:
            text += f" (server said: {self.reply})"
        return text


_STATUS_CODE = re.compile(r"HTTP/[0-9]\.[0-9] ([0-9]{3})(?![0-9])")


def monitor_failure(function: str, number: int, phase: Phase, detail: str = "") -> ProbeResult:
    """
    The probe could not be made because the monitor's own resources failed:
    message 42, C{function number} (C{socket 24}, C{thread 11}).
    """
    return attrs.evolve(
        ProbeResult.failure(MessageId.SYSTEM_ERROR, phase, number=number, detail=detail),
        function=function,
    )


def timed_out(phase: Phase, latency: float) -> ProbeResult:
    """The deadline expired: message 74 with ETIMEDOUT (README: Messages)."""
    return ProbeResult.failure(
        MessageId.SELECT_ERROR,
        phase,
        number=errno.ETIMEDOUT,
        latency=latency,
        detail="no answer within the timeout",
    )
