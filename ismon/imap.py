# -*- test-case-name: tests.test_options -*-
"""
The IMAP4 probe (README "Running a watch").  A stub until the conversation is
written: every probe fails, so a watch started on it exits.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from ismon.catalogue import MessageId
from ismon.probe import IProbe, ReactorType, Resolver
from ismon.requests import ConversationRequest
from ismon.result import Phase, ProbeResult

__all__ = ["ImapProbe"]


@implementer(IProbe)
class ImapProbe:
    """Probe a IMAP4 server."""

    def __init__(
        self, reactor: ReactorType, request: ConversationRequest, resolver: Resolver | None = None
    ) -> None:
        self.request = request

    def probe(self) -> Deferred[ProbeResult]:
        return succeed(
            ProbeResult.failure(
                MessageId.INVALID_STATUS, Phase.PARSE, number=0, detail="not written yet"
            )
        )
