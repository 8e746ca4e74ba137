# -*- test-case-name: tests.test_dns,tests.test_hostile_dns -*-
"""
The DNS probe: one query per probe (docs/failure-rules.md, DNS).

Over UDP by default: a socket of the probe's own, connected to the server
(L{ismon.probes.probe.run_datagram_probe}); an answer with the TC bit set
is asked again, the same message, over TCP to the same address, inside the
same deadline.  With C{--tcp}, over TCP from the start; with C{--tls}, DNS
over TLS (RFC 7858), port 853 unless C{-n} says otherwise.

Encoding, decoding and the verdict are L{ismon.wire.dns} (Twisted Names,
bounded, silent); this module only puts the query on the wire and maps the
verdict to the catalogue:

  - NOERROR with a record of the asked type (and, with C{--expect}, one
    equal to an expected value): the probe passes;
  - an error RCODE (NXDOMAIN, SERVFAIL, REFUSED, any other): message 83
    with the RCODE;
  - NOERROR without a record of the asked type, or without an expected
    value (a negative answer, RFC 2308, or the wrong one): message 87;
  - no answer to our question (malformed, a compression loop, no QR bit,
    another ID, another question, truncated over TCP too): message 83
    with 0;
  - a refusal (ICMP port unreachable over UDP, RST over TCP): message 72;
    the TCP connection closed or reset before the whole answer: 75; no
    answer within the deadline: 74.
"""

from __future__ import annotations

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ismon.core.catalogue import MessageId
from ismon.core.requests import DnsRequest
from ismon.core.result import Phase, ProbeResult
from ismon.core.text import printable
from ismon.probes.conversation import ConversationProbe
from ismon.probes.probe import (
    DatagramProbeProtocol,
    ProbeProtocol,
    ReactorType,
    run_datagram_probe,
)
from ismon.probes.resolve import Resolver
from ismon.wire.dns import (
    DnsQuery,
    DnsStreamReader,
    DnsVerdict,
    Expected,
    Outcome,
    RecordType,
    build_query,
    judge,
    parse_expected,
    query_name,
)

__all__ = ["DnsProbe"]

# The outcomes that are the server's error RCODE: 83 with it.
_RCODES = frozenset({Outcome.NXDOMAIN, Outcome.SERVFAIL, Outcome.REFUSED, Outcome.OTHER_RCODE})
# NOERROR, but not the record asked for: 87 (a negative answer, or another value).
_NEGATIVE = frozenset({Outcome.NO_ANSWER, Outcome.NO_RECORD_OF_TYPE, Outcome.NOT_EXPECTED})

# Characters of an unreadable answer a verdict shows.
_RECEIVED_CHARS = 120


def _report(conversation: ProbeProtocol | DatagramProbeProtocol, verdict: DnsVerdict) -> None:
    """Pass or fail C{conversation} on L{judge}'s C{verdict} (the module docstring)."""
    if verdict.ok:
        conversation.succeed(verdict.text)
        return
    conversation.phase = Phase.PARSE
    if verdict.outcome in _RCODES:
        conversation.fail(
            MessageId.INVALID_STATUS,
            number=verdict.rcode,
            reply=verdict.text,
            detail=verdict.reason,
        )
    elif verdict.outcome in _NEGATIVE:
        conversation.fail(MessageId.NEGATIVE_REPLY, reply=verdict.text, detail=verdict.reason)
    else:
        reply = verdict.text or printable(verdict.received, _RECEIVED_CHARS)
        conversation.fail(MessageId.INVALID_STATUS, number=0, reply=reply, detail=verdict.reason)


class _OverTCP(ProbeProtocol):
    """The query over a stream (TCP or TLS): the 2-byte length, then the message."""

    def __init__(self, query: DnsQuery, expect: tuple[Expected, ...]) -> None:
        self._query = query
        self._expect = expect
        self._reader = DnsStreamReader()

    def begin(self) -> None:
        self.phase = Phase.SEND
        self.transport.write(self._query.tcp)  # type: ignore[union-attr]
        self.phase = Phase.WAIT

    def dataReceived(self, data: bytes) -> None:
        if self.decided:
            return
        self.phase = Phase.RECEIVE
        message = self._reader.feed(data)
        if message is None:
            return
        verdict = judge(self._query, message, self._expect)
        if verdict.outcome is Outcome.TRUNCATED:
            # Over TCP there is nowhere else to ask: the answer is cut short.
            verdict = attrs.evolve(verdict, reason="the answer over TCP is truncated (TC) too")
        _report(self, verdict)

    def ended(self, reason: Failure) -> ProbeResult:
        result = super().ended(reason)
        if result.message is MessageId.RECV_ERROR and result.number == 0:
            # How much of the answer came: "closed after 3 of the 45 bytes ...".
            result = attrs.evolve(result, detail=self._reader.end())
        return result


class _OverUDP(DatagramProbeProtocol):
    """The query in one datagram; a truncated answer goes on over TCP."""

    def __init__(self, query: DnsQuery, expect: tuple[Expected, ...]) -> None:
        self._query = query
        self._expect = expect

    def begin(self) -> None:
        self.send(self._query.udp)

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        if self.decided:
            return
        self.phase = Phase.RECEIVE
        verdict = judge(self._query, datagram, self._expect)
        if verdict.outcome is Outcome.TRUNCATED:
            # The same message, ID included, over TCP inside the same deadline.
            self.last_reply = verdict.text
            query, expect = self._query, self._expect
            self.over_stream(lambda: _OverTCP(query, expect))
            return
        _report(self, verdict)


class DnsProbe(ConversationProbe[DnsRequest]):
    """Probe a DNS server with one query for the request's name and type."""

    def __init__(
        self, reactor: ReactorType, request: DnsRequest, resolver: Resolver | None = None
    ) -> None:
        super().__init__(reactor, request, resolver)
        # Checked when the command line was parsed: these cannot fail here.
        query_name(request.query)
        self._type = RecordType.parse(request.record_type)
        self._expect = tuple(parse_expected(self._type, value) for value in request.expect)

    def probe(self) -> Deferred[ProbeResult]:
        # A new ID for every query: an answer meant for an earlier one never fits.
        query = build_query(self.request.query, self._type)
        expect = self._expect
        if self._tls is not None or self.request.tcp:
            return self.converse(lambda: _OverTCP(query, expect))
        return run_datagram_probe(
            self._reactor,
            self._resolver,
            host=self.request.host,
            port=self.request.port,
            timeout=self.request.timeout,
            protocol_factory=lambda: _OverUDP(query, expect),
        )
