# -*- test-case-name: tests.test_tcp,tests.test_hostile_tcp -*-
"""
The plain TCP probe: connect (with C{--tls}, a verified handshake), write
C{--send}, and read until the bytes match C{--expect}
(docs/failure-rules.md, TCP).

  - Neither C{--send} nor C{--expect}: the probe passes once the connection
    (and TLS) is up.  C{--send} alone: once the text is written to the
    connection.  C{--expect}: once the bytes read match the regex, whether
    or not the probe sent anything first (a banner).
  - The bytes are read by L{ismon.wire.tcp.ExpectMatcher}: RE2, linear in
    the input whatever the regex, at most 64 KiB kept.  More than that
    without a match is message 83 with 0 ("no match in the first 65536
    bytes"); a close before a match is message 75 with 0, a reset 75 with
    ECONNRESET; no match within the deadline, 74.

What a search costs: the matcher searches everything kept at each search,
so a server trickling 64 KiB a byte at a time would cost 65536 searches of
up to 64 KiB (seconds of CPU under the worst regex).  The probe therefore
searches at most once every L{SEARCH_GAP} seconds: the first bytes after a
quiet spell at once, the bytes of a trickle gathered until the gap has
passed (bounded: never more than the matcher could still read), and all of
them before the deadline and before a verdict on the connection's end.
The matcher's verdict does not depend on how the bytes were cut, so
gathering changes only when it is reached, never what it is.
"""

from __future__ import annotations

import attrs
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from ismon.core.catalogue import MessageId
from ismon.core.requests import TcpRequest
from ismon.core.result import Phase, ProbeResult
from ismon.probes.conversation import ConversationProbe
from ismon.probes.probe import ProbeProtocol, ReactorType
from ismon.probes.resolve import Resolver
from ismon.wire.tcp import (
    ExpectMatcher,
    ExpectOutcome,
    ExpectPattern,
    ExpectVerdict,
    compile_expect,
    show_bytes,
    unescape_send,
)

__all__ = ["SEARCH_GAP", "TcpProbe"]

#: Seconds between two searches of what was read, at least (the module
#: docstring): a 64 KiB trickle costs at most one search per gap.
SEARCH_GAP = 0.01
# A search due this close to the deadline is made before it.
_BEFORE_DEADLINE = 0.002


class _Exchange(ProbeProtocol):
    """Write the text, then feed what comes to the matcher."""

    def __init__(
        self,
        clock: ReactorType,
        timeout: float,
        send: bytes | None,
        pattern: ExpectPattern | None,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._send = send
        self._matcher = None if pattern is None else ExpectMatcher(pattern)
        # Bytes read and not yet searched, and the search that will take them.
        self._gathered = bytearray()
        self._search_call: IDelayedCall | None = None
        self._last_search: float | None = None

    def begin(self) -> None:
        if self._send is not None:
            self.phase = Phase.SEND
            self.transport.write(self._send)  # type: ignore[union-attr]
        if self._matcher is None:
            self.succeed("connected" if self._send is None else f"sent {len(self._send)} bytes")
            return
        self.phase = Phase.WAIT

    def dataReceived(self, data: bytes) -> None:
        matcher = self._matcher
        if self.decided or matcher is None or not data:
            return
        self.phase = Phase.RECEIVE
        # What the matcher can still read: the bound, and one byte past it.
        room = matcher.limit + 1 - matcher.received - len(self._gathered)
        self._gathered += data[: max(room, 0)]
        now = self._clock.seconds()
        if room <= len(data) or self._last_search is None or now - self._last_search >= SEARCH_GAP:
            self._search()
        elif self._search_call is None:
            due = self._last_search + SEARCH_GAP - now
            before_deadline = self._timeout - self.elapsed() - _BEFORE_DEADLINE
            self._search_call = self._clock.callLater(
                max(0.0, min(due, before_deadline)), self._search
            )

    def _cancel_search(self) -> None:
        if self._search_call is not None and self._search_call.active():
            self._search_call.cancel()
        self._search_call = None

    def _feed(self) -> ExpectVerdict | None:
        """Feed the matcher what was gathered; its verdict, if it has one."""
        assert self._matcher is not None
        self._cancel_search()
        self._last_search = self._clock.seconds()
        gathered, self._gathered = bytes(self._gathered), bytearray()
        return self._matcher.feed(gathered)

    def _search(self) -> None:
        if self.decided:
            return
        verdict = self._feed()
        if verdict is not None:
            self._report(verdict)

    def _report(self, verdict: ExpectVerdict) -> None:
        assert self._matcher is not None
        if verdict.ok:
            self.succeed(verdict.reason)
            return
        kept = show_bytes(self._matcher.kept)
        if verdict.outcome is ExpectOutcome.LIMIT:
            # A flood that never matches is no answer the watch expects.
            self.phase = Phase.PARSE
            self.fail(MessageId.INVALID_STATUS, number=0, reply=kept, detail=verdict.reason)
        else:
            self.fail(MessageId.RECV_ERROR, number=0, reply=kept, detail=verdict.reason)

    def ended(self, reason: Failure) -> ProbeResult:
        matcher = self._matcher
        if matcher is None:
            return super().ended(reason)
        # What came before the end counts: a match, or a flood past the bound;
        # a clean close is the end of the input ($ and \z can match there).
        verdict = self._feed()
        if verdict is None and isinstance(reason.value, ConnectionDone):
            verdict = matcher.end()
        if verdict is not None and verdict.ok:
            return ProbeResult(ok=True, latency=self.elapsed(), reply=self.shown(verdict.reason))
        result = super().ended(reason)
        if result.message not in (MessageId.RECV_ERROR, MessageId.SEND_ERROR):
            return result  # a TLS error
        kept = self.shown(show_bytes(matcher.kept))
        if verdict is not None and verdict.outcome is ExpectOutcome.LIMIT:
            return attrs.evolve(
                result,
                message=MessageId.INVALID_STATUS,
                number=0,
                phase=Phase.PARSE,
                reply=kept,
                detail=self.shown(verdict.reason),
            )
        detail = verdict.reason if verdict is not None else f"{result.detail}; {matcher.describe()}"
        return attrs.evolve(result, reply=kept, detail=self.shown(detail))

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        # A verdict, or the deadline, may come while a search waits.
        self._cancel_search()
        super().connectionLost(reason)


class TcpProbe(ConversationProbe[TcpRequest]):
    """Probe a TCP server: connect, send, expect."""

    def __init__(
        self, reactor: ReactorType, request: TcpRequest, resolver: Resolver | None = None
    ) -> None:
        super().__init__(reactor, request, resolver)
        # Checked when the command line was parsed: these cannot fail here.
        self._send = None if request.send is None else unescape_send(request.send)
        self._pattern = None if request.expect is None else compile_expect(request.expect)

    def conversation(self) -> ProbeProtocol:
        return _Exchange(self._reactor, self.request.timeout, self._send, self._pattern)
