"""
L{ismon.wire.dns}: the query it builds, the names and expected values it
takes or refuses, the verdict for every kind of answer (one outcome per
failure of the module docstring), malformed and hostile bytes (a declared
outcome only, quickly, with nothing logged or printed), and the DNS-over-TCP
stream reader.  Answers are made with Twisted Names, malformed ones by hand.
"""

from __future__ import annotations

import ipaddress
import struct
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import globalLogPublisher
from twisted.names import dns

from ismon.wire.dns import (
    MAX_DECODE_STEPS,
    TEXT_LIMIT,
    DnsInputError,
    DnsQuery,
    DnsStreamReader,
    DnsVerdict,
    MalformedMessage,
    Outcome,
    RecordType,
    build_query,
    decode_message,
    judge,
    parse_expected,
    query_name,
    reverse_name,
)

# Every hostile input is judged within this (seconds): far above what one
# takes (a few ms; the worst crafted message ~70 ms), for a loaded machine.
QUICK = 0.5

QUERY = build_query("www.example.test", RecordType.A, id=0x1234)


def rr(name: bytes | str, payload: Any, cls: int = dns.IN) -> dns.RRHeader:
    return dns.RRHeader(name, payload.TYPE, cls, 300, payload)


def reply(
    query: DnsQuery = QUERY,
    *answers: dns.RRHeader,
    rcode: int = 0,
    qr: int = 1,
    id: int | None = None,
    tc: int = 0,
    opcode: int = 0,
    questions: list[dns.Query] | None = None,
    authority: tuple[dns.RRHeader, ...] = (),
) -> bytes:
    """An answer to C{query} as a server would encode it (names compressed)."""
    message = dns.Message(
        id=query.id if id is None else id,
        answer=qr,
        opCode=opcode,
        recDes=1,
        recAv=1,
        rCode=rcode,
        trunc=tc,
        # Twisted would cut a longer message at 512 bytes.
        maxSize=65535,
    )
    message.queries = (
        [dns.Query(query.name, int(query.type), dns.IN)] if questions is None else questions
    )
    message.answers = list(answers)
    message.authority = list(authority)
    return message.toStr()


def a(address: str, name: bytes | str = QUERY.name) -> dns.RRHeader:
    return rr(name, dns.Record_A(address))


def expect(type: RecordType, *values: str) -> list[Any]:
    return [parse_expected(type, value) for value in values]


# --------------------------------------------------------------------------
# The query


def test_checking_the_operator_s_input_loads_no_twisted() -> None:
    """
    Names, types and expected values are checked without Twisted Names: the
    option parsers check them before a watch decides whether to load the
    TLS stack, and Twisted's Deferreds import asyncio, which imports ssl.
    """
    code = (
        "import sys\n"
        "from ismon.wire.dns import RecordType, parse_expected, query_name, reverse_name\n"
        "query_name('www.example.com'); query_name(reverse_name('192.0.2.1'))\n"
        "for t in RecordType: RecordType.parse(t.name.lower())\n"
        "parse_expected(RecordType.MX, '10 mail.example.com')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'ssl', 'asyncio')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_the_record_types_are_twisted_s() -> None:
    for rtype in RecordType:
        assert int(rtype) == getattr(dns, rtype.name)


def test_query_has_one_question_rd_set_and_our_id() -> None:
    query = build_query("WWW.Example.test.", RecordType.MX)
    message = dns.Message()
    message.fromStr(query.udp)
    assert message.id == query.id and 0 <= query.id <= 0xFFFF
    assert (message.answer, message.opCode, message.recDes, message.trunc) == (0, 0, 1, 0)
    assert [(q.name.name, q.type, q.cls) for q in message.queries] == [
        (b"WWW.Example.test", dns.MX, dns.IN)
    ]
    assert message.answers == message.authority == message.additional == []
    assert query.tcp == struct.pack("!H", len(query.udp)) + query.udp
    assert query.text == "WWW.Example.test IN MX"


def test_query_ids_are_random() -> None:
    """Sixteen random bits each: 64 queries are not all alike (chance 2^-1000)."""
    ids = {build_query("example.test").id for _ in range(64)}
    assert len(ids) > 32


def test_query_id_may_be_given_within_16_bits() -> None:
    assert build_query("example.test", id=0).id == 0
    assert build_query("example.test", id=0xFFFF).id == 0xFFFF
    with pytest.raises(ValueError, match="16 bits"):
        build_query("example.test", id=0x10000)


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("www.example.test", b"www.example.test"),
        ("www.example.test.", b"www.example.test"),
        ("_sip._tcp.example.test", b"_sip._tcp.example.test"),
        (".", b""),
        ("bücher.example", b"xn--bcher-kva.example"),
        ("a" * 63 + ".test", b"a" * 63 + b".test"),
        # 253 characters: 255 bytes on the wire, the most a name may take.
        (".".join(["a" * 63] * 3 + ["a" * 61]), b".".join([b"a" * 63] * 3 + [b"a" * 61])),
    ],
)
def test_query_names(text: str, wire: bytes) -> None:
    assert query_name(text) == wire


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("a..b", "empty label"),
        (".a", "empty label"),
        ("a" * 64 + ".test", "over 63"),
        (".".join(["a" * 63] * 3 + ["a" * 62]) + ".", "longer than a DNS name"),
        ("a b.test", "printable ASCII"),
        ("a\\.b", "printable ASCII"),
        ("a\tb", "printable ASCII"),
    ],
)
def test_query_names_refused(text: str, why: str) -> None:
    with pytest.raises(DnsInputError, match=why):
        query_name(text)


def test_reverse_name() -> None:
    assert reverse_name("192.0.2.1") == "1.2.0.192.in-addr.arpa"
    assert reverse_name("::1").endswith(".ip6.arpa") and reverse_name("::1").startswith("1.0.0.")
    with pytest.raises(DnsInputError):
        reverse_name("host.example")


def test_record_types() -> None:
    assert RecordType.parse("aaaa") is RecordType.AAAA
    assert [t.name for t in RecordType] == [
        "A",
        "NS",
        "CNAME",
        "SOA",
        "PTR",
        "MX",
        "TXT",
        "AAAA",
        "SRV",
    ]
    with pytest.raises(DnsInputError, match=r"one of A\|NS\|.*not 'ANY'"):
        RecordType.parse("ANY")


# --------------------------------------------------------------------------
# Expected values


@pytest.mark.parametrize(
    ("type", "value", "why"),
    [
        (RecordType.A, "256.0.0.1", "IPv4 address"),
        (RecordType.A, "::1", "IPv4 address"),
        (RecordType.A, "127.1", "IPv4 address"),
        (RecordType.A, "1.2.3.4 5.6.7.8", "IPv4 address"),
        (RecordType.AAAA, "127.0.0.1", "IPv6 address"),
        (RecordType.AAAA, "fe80::1%eth0", "zone index"),
        (RecordType.NS, "ns1 example", "a name"),
        (RecordType.NS, "", "a name"),
        (RecordType.MX, "mail.example.test 10", "EXCHANGE or PREFERENCE EXCHANGE"),
        (RecordType.MX, "70000 mail.example.test", "0 to 65535"),
        (RecordType.MX, "1 2 mail.example.test", "EXCHANGE or PREFERENCE EXCHANGE"),
        (RecordType.SRV, "0 5 5060 sip.example.test extra", "PRIORITY WEIGHT PORT TARGET"),
        (RecordType.SRV, "-1 sip.example.test", "0 to 65535"),
        (RecordType.SOA, "ns1.example.test hostmaster.example.test x", "0 to 4294967295"),
        (RecordType.SOA, "1 2 3 4 5 6 7 8", "MNAME RNAME SERIAL"),
        (RecordType.PTR, "a..b", "empty label"),
    ],
)
def test_expected_values_refused(type: RecordType, value: str, why: str) -> None:
    with pytest.raises(DnsInputError, match=why):
        parse_expected(type, value)


SOA = dns.Record_SOA(
    mname=b"ns1.example.test",
    rname=b"hostmaster.example.test",
    serial=2024010101,
    refresh=3600,
    retry=600,
    expire=86400,
    minimum=300,
)


@pytest.mark.parametrize(
    ("type", "payload", "values"),
    [
        (RecordType.A, dns.Record_A("192.0.2.1"), ["192.0.2.1"]),
        (RecordType.AAAA, dns.Record_AAAA("::1"), ["::1", "0:0:0:0:0:0:0:1", "::0:1"]),
        (
            RecordType.AAAA,
            dns.Record_AAAA("2001:db8::a"),
            ["2001:DB8:0:0:0:0:0:A", "2001:db8::0:a"],
        ),
        (
            RecordType.NS,
            dns.Record_NS(b"NS1.Example.Test"),
            ["ns1.example.test", "ns1.example.test.", "NS1.EXAMPLE.TEST"],
        ),
        (RecordType.CNAME, dns.Record_CNAME(b"host.example.test"), ["Host.example.test."]),
        (RecordType.PTR, dns.Record_PTR(b"host.example.test"), ["host.example.test"]),
        (
            RecordType.MX,
            dns.Record_MX(10, b"mail.example.test"),
            ["mail.example.test", "10 mail.example.test", "10 MAIL.example.test."],
        ),
        (
            RecordType.SRV,
            dns.Record_SRV(0, 5, 5060, b"sip.example.test"),
            [
                "sip.example.test",
                "5060 sip.example.test",
                "5 5060 sip.example.test",
                "0 5 5060 sip.example.test.",
            ],
        ),
        (
            RecordType.SOA,
            SOA,
            [
                "ns1.example.test",
                "NS1.example.test. hostmaster.example.test",
                "ns1.example.test hostmaster.example.test 2024010101",
                "ns1.example.test hostmaster.example.test 2024010101 3600 600 86400 300",
            ],
        ),
        (RecordType.TXT, dns.Record_TXT(b"v=spf1 ", b"-all"), ["v=spf1 -all"]),
        (RecordType.TXT, dns.Record_TXT("é".encode()), ["é"]),
    ],
)
def test_expected_values_that_match(type: RecordType, payload: Any, values: list[str]) -> None:
    query = build_query("example.test", type, id=7)
    answer = reply(query, rr(query.name, payload))
    for value in values:
        verdict = judge(query, answer, expect(type, value))
        assert verdict.outcome is Outcome.OK, (value, verdict)
        assert verdict.reason.endswith(" as expected")


@pytest.mark.parametrize(
    ("type", "payload", "value"),
    [
        (RecordType.A, dns.Record_A("192.0.2.1"), "192.0.2.2"),
        (RecordType.AAAA, dns.Record_AAAA("::1"), "::2"),
        (RecordType.NS, dns.Record_NS(b"ns1.example.test"), "ns1.example"),
        (RecordType.MX, dns.Record_MX(10, b"mail.example.test"), "20 mail.example.test"),
        (RecordType.SRV, dns.Record_SRV(0, 5, 5060, b"sip.example.test"), "5061 sip.example.test"),
        (RecordType.SOA, SOA, "ns1.example.test hostmaster.example.test 2024010102"),
        (RecordType.SOA, SOA, "hostmaster.example.test"),
        (RecordType.TXT, dns.Record_TXT(b"v=spf1 -all"), "V=SPF1 -all"),
        (RecordType.TXT, dns.Record_TXT(b"v=spf1", b"-all"), "v=spf1 -all"),
    ],
)
def test_expected_values_that_do_not_match(type: RecordType, payload: Any, value: str) -> None:
    query = build_query("example.test", type, id=7)
    verdict = judge(query, reply(query, rr(query.name, payload)), expect(type, value))
    assert verdict.outcome is Outcome.NOT_EXPECTED
    assert verdict.reason.startswith(f"no expected value ({value}) among {type.name} ")


def test_one_of_several_expected_values_against_one_of_several_records() -> None:
    answer = reply(QUERY, a("192.0.2.1"), a("192.0.2.2"))
    verdict = judge(QUERY, answer, expect(RecordType.A, "198.51.100.1", "192.0.2.2"))
    assert verdict.outcome is Outcome.OK
    assert verdict.reason == "A 192.0.2.2 as expected"


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    st.sampled_from(list(RecordType)),
    st.data(),
)
def test_a_shown_record_is_an_expected_value_that_matches_it(
    type: RecordType, data: st.DataObject
) -> None:
    """What a verdict shows of a record, given to --expect (TXT unquoted), matches it."""
    label = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=10)
    name = data.draw(st.lists(label, min_size=1, max_size=4).map(".".join))
    u16 = st.integers(0, 0xFFFF)
    u32 = st.integers(0, 0xFFFFFFFF)
    payload: Any
    if type is RecordType.A:
        payload = dns.Record_A(str(ipaddress.IPv4Address(data.draw(u32))))
    elif type is RecordType.AAAA:
        payload = dns.Record_AAAA(str(ipaddress.IPv6Address(data.draw(st.integers(0, 2**128 - 1)))))
    elif type is RecordType.MX:
        payload = dns.Record_MX(data.draw(u16), name)
    elif type is RecordType.SRV:
        payload = dns.Record_SRV(data.draw(u16), data.draw(u16), data.draw(u16), name)
    elif type is RecordType.SOA:
        # Twisted encodes refresh, retry and expire as signed numbers.
        i31 = st.integers(0, 2**31 - 1)
        numbers = [data.draw(u32), data.draw(i31), data.draw(i31), data.draw(i31), data.draw(u32)]
        payload = dns.Record_SOA(name, "h." + name, *numbers)
    elif type is RecordType.TXT:
        payload = dns.Record_TXT(
            data.draw(
                st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50)
            ).encode()
        )
    else:
        payload = {
            RecordType.NS: dns.Record_NS,
            RecordType.CNAME: dns.Record_CNAME,
            RecordType.PTR: dns.Record_PTR,
        }[type](name)
    query = build_query("example.test", type, id=9)
    verdict = judge(query, reply(query, rr(query.name, payload)))
    assert verdict.outcome is Outcome.OK, verdict
    (shown,) = verdict.records
    value = shown.split(" ", 1)[1]
    if type is RecordType.TXT:
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    assert judge(query, reply(query, rr(query.name, payload)), expect(type, value)).ok


# --------------------------------------------------------------------------
# Verdicts


def test_ok_with_its_text() -> None:
    verdict = judge(QUERY, reply(QUERY, a("127.0.0.1"), a("127.0.0.2")))
    assert verdict.ok and verdict.outcome is Outcome.OK
    assert verdict.text == "NOERROR 2 answers: A 127.0.0.1, A 127.0.0.2"
    assert verdict.reason == "A 127.0.0.1, A 127.0.0.2"
    assert verdict.records == ("A 127.0.0.1", "A 127.0.0.2")
    assert verdict.rcode == 0


def test_the_question_compares_in_any_case() -> None:
    """A server that echoes the name in another case (DNS 0x20) answers our question."""
    question = [dns.Query(b"WwW.ExAmPlE.TeSt", dns.A, dns.IN)]
    answer = reply(QUERY, a("127.0.0.1", b"WWW.EXAMPLE.TEST"), questions=question)
    assert judge(QUERY, answer).ok


def test_a_cname_chain_leads_to_the_records() -> None:
    answer = reply(
        QUERY,
        rr(QUERY.name, dns.Record_CNAME(b"one.example.test")),
        rr(b"one.example.test", dns.Record_CNAME(b"Two.Example.Test")),
        a("192.0.2.7", b"two.example.test"),
    )
    verdict = judge(QUERY, answer, expect(RecordType.A, "192.0.2.7"))
    assert verdict.ok
    assert verdict.records == (
        "CNAME one.example.test",
        "CNAME Two.Example.Test",
        "A 192.0.2.7",
    )


def test_a_record_of_another_owner_does_not_count() -> None:
    verdict = judge(QUERY, reply(QUERY, a("192.0.2.7", b"other.example.test")))
    assert verdict.outcome is Outcome.NO_RECORD_OF_TYPE
    assert verdict.reason == (
        "no A record for www.example.test among the answer's records: A 192.0.2.7"
    )


def test_a_cname_loop_ends() -> None:
    answer = reply(
        QUERY,
        rr(QUERY.name, dns.Record_CNAME(b"one.example.test")),
        rr(b"one.example.test", dns.Record_CNAME(QUERY.name)),
    )
    assert judge(QUERY, answer).outcome is Outcome.NO_RECORD_OF_TYPE


def test_a_cname_asked_for_is_not_followed() -> None:
    query = build_query("alias.example.test", RecordType.CNAME, id=3)
    answer = reply(
        query,
        rr(query.name, dns.Record_CNAME(b"www.example.test")),
        rr(b"www.example.test", dns.Record_CNAME(b"other.example.test")),
    )
    verdict = judge(query, answer, expect(RecordType.CNAME, "www.example.test"))
    assert verdict.ok
    assert not judge(query, answer, expect(RecordType.CNAME, "other.example.test")).ok


def test_records_of_class_in_only() -> None:
    answer = reply(QUERY, rr(QUERY.name, dns.Record_A("192.0.2.1"), cls=dns.CH))
    assert judge(QUERY, answer).outcome is Outcome.NO_RECORD_OF_TYPE


FAILURES = [
    (reply(QUERY, a("192.0.2.1"), qr=0), Outcome.NOT_A_RESPONSE, "a query, not an answer"),
    (reply(QUERY, a("192.0.2.1"), opcode=4), Outcome.NOT_A_RESPONSE, "opcode 4, not QUERY"),
    (reply(QUERY, a("192.0.2.1"), id=0x4321), Outcome.WRONG_ID, "ID is 17185, not 4660"),
    (
        reply(QUERY, a("192.0.2.1"), questions=[dns.Query(b"www.other.test", dns.A, dns.IN)]),
        Outcome.WRONG_QUESTION,
        "question is www.other.test IN A, not www.example.test IN A",
    ),
    (
        reply(QUERY, a("192.0.2.1"), questions=[dns.Query(QUERY.name, dns.AAAA, dns.IN)]),
        Outcome.WRONG_QUESTION,
        "question is www.example.test IN AAAA, not",
    ),
    (
        reply(QUERY, a("192.0.2.1"), questions=[dns.Query(QUERY.name, dns.A, dns.CH)]),
        Outcome.WRONG_QUESTION,
        "question is www.example.test CLASS3 A, not",
    ),
    (
        reply(QUERY, a("192.0.2.1"), questions=[dns.Query(QUERY.name, dns.A, dns.IN)] * 2),
        Outcome.WRONG_QUESTION,
        "2 questions, not 1",
    ),
    (reply(QUERY, a("192.0.2.1"), questions=[]), Outcome.WRONG_QUESTION, "has no question"),
    (reply(QUERY, tc=1), Outcome.TRUNCATED, "truncated (TC): ask again over TCP"),
    (reply(QUERY, rcode=3), Outcome.NXDOMAIN, "NXDOMAIN (3): www.example.test does not exist"),
    (reply(QUERY, rcode=2), Outcome.SERVFAIL, "SERVFAIL (2): the server failed"),
    (reply(QUERY, rcode=5), Outcome.REFUSED, "REFUSED (5): the server refused"),
    (reply(QUERY, rcode=4), Outcome.OTHER_RCODE, "RCODE NOTIMP (4)"),
    (reply(QUERY, rcode=1), Outcome.OTHER_RCODE, "RCODE FORMERR (1)"),
    (reply(QUERY, rcode=6), Outcome.OTHER_RCODE, "RCODE YXDOMAIN (6)"),
    (reply(QUERY, rcode=13), Outcome.OTHER_RCODE, "RCODE 13"),
    # FORMERR and NOTIMP answers often leave the question out.
    (reply(QUERY, rcode=1, questions=[]), Outcome.OTHER_RCODE, "RCODE FORMERR (1)"),
    (reply(QUERY), Outcome.NO_ANSWER, "NOERROR without an answer record (no A record for"),
    (
        reply(QUERY, authority=(rr(b"example.test", SOA),)),
        Outcome.NO_ANSWER,
        "NOERROR without an answer record",
    ),
    (
        reply(QUERY, rr(QUERY.name, dns.Record_TXT(b"hello"))),
        Outcome.NO_RECORD_OF_TYPE,
        'no A record for www.example.test among the answer\'s records: TXT "hello"',
    ),
    (
        reply(QUERY, rr(QUERY.name, dns.Record_CNAME(b"elsewhere.example.test"))),
        Outcome.NO_RECORD_OF_TYPE,
        "records: CNAME elsewhere.example.test",
    ),
]


@pytest.mark.parametrize(
    ("payload", "outcome", "reason"),
    FAILURES,
    ids=[f"{f[1].name}-{i}" for i, f in enumerate(FAILURES)],
)
def test_failures(payload: bytes, outcome: Outcome, reason: str) -> None:
    verdict = judge(QUERY, payload)
    assert verdict.outcome is outcome, verdict
    assert not verdict.ok
    assert reason in verdict.reason, verdict.reason
    assert verdict.reason.isprintable() and verdict.text.isprintable()


def test_outcomes_are_checked_in_order() -> None:
    """A wrong ID says so before the RCODE; the TC bit before the RCODE."""
    assert judge(QUERY, reply(QUERY, rcode=3, id=1)).outcome is Outcome.WRONG_ID
    assert judge(QUERY, reply(QUERY, rcode=3, tc=1)).outcome is Outcome.TRUNCATED
    assert judge(QUERY, reply(QUERY, rcode=3, qr=0)).outcome is Outcome.NOT_A_RESPONSE


def test_every_outcome_is_reached() -> None:
    reached = {judge(QUERY, payload).outcome for payload, _, _ in FAILURES}
    reached.add(judge(QUERY, b"").outcome)
    reached.add(
        judge(QUERY, reply(QUERY, a("192.0.2.1")), expect(RecordType.A, "192.0.2.9")).outcome
    )
    reached.add(judge(QUERY, reply(QUERY, a("192.0.2.1"))).outcome)
    assert reached == set(Outcome)


def test_an_answer_cut_short_with_tc_is_truncated() -> None:
    """
    Twisted Names (and other servers) cut a UDP answer at 512 bytes inside a
    record and keep the counts: with our ID, QR and TC, that asks for TCP.
    """
    answers = [a(f"10.0.0.{i}") for i in range(100)]
    message = dns.Message(id=QUERY.id, answer=1, recDes=1)
    message.queries = [dns.Query(QUERY.name, dns.A, dns.IN)]
    message.answers = answers
    cut = message.toStr()
    assert len(cut) == 512
    verdict = judge(QUERY, cut)
    assert verdict.outcome is Outcome.TRUNCATED
    assert verdict.reason.startswith("the answer is truncated (TC) and cut short (")
    assert verdict.reason.endswith("): ask again over TCP")
    # Not ours, or not truncated: malformed.
    other = build_query("www.example.test", id=QUERY.id + 1)
    assert judge(other, cut).outcome is Outcome.MALFORMED
    untruncated = cut[:2] + bytes([cut[2] & ~0x02]) + cut[3:]
    assert judge(QUERY, untruncated).outcome is Outcome.MALFORMED
    assert judge(QUERY, cut[:11]).outcome is Outcome.MALFORMED


def test_the_text_is_bounded() -> None:
    answers = [a(f"10.0.{i // 256}.{i % 256}") for i in range(300)]
    verdict = judge(QUERY, reply(QUERY, *answers))
    assert verdict.ok
    assert len(verdict.text) <= TEXT_LIMIT
    assert verdict.text.startswith("NOERROR 300 answers: A 10.0.0.0, A 10.0.0.1, ")
    assert "more)" in verdict.text
    assert len(verdict.records) == 300
    assert len(verdict.reason) <= TEXT_LIMIT


def test_hostile_names_and_text_are_shown_safely() -> None:
    name = b"evil\x1b[31m\x00.example.test"
    answer = reply(
        QUERY,
        rr(QUERY.name, dns.Record_CNAME(name)),
        rr(QUERY.name, dns.Record_TXT(b'say "\\hi"\r\n\xff')),
    )
    verdict = judge(QUERY, answer)
    assert verdict.records == (
        "CNAME evil\\027[31m\\000.example.test",
        'TXT "say \\"\\\\hi\\"\\013\\010\\255"',
    )
    assert verdict.reason.isprintable() and verdict.text.isprintable()


def test_records_of_other_types_are_opaque() -> None:
    answer = reply(QUERY, a("192.0.2.1"), rr(QUERY.name, dns.Record_HINFO(b"x86", b"linux")))
    verdict = judge(QUERY, answer)
    assert verdict.ok
    assert verdict.records == ("A 192.0.2.1", "HINFO (10 bytes)")


# --------------------------------------------------------------------------
# Malformed messages


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, id: int = QUERY.id) -> bytes:
    return struct.pack("!HBBHHHH", id, 0x81, 0x80, qd, an, ns, ar)


QUESTION = QUERY.udp[12:]
# The question's name starts at byte 12.
RECORD_A = b"\xc0\x0c" + struct.pack("!HHIH", dns.A, dns.IN, 300, 4) + bytes([192, 0, 2, 1])


def one_record(rtype: int, rdata: bytes) -> bytes:
    """An answer of one record of C{rtype} owned by the asked name, made by hand."""
    record = b"\xc0\x0c" + struct.pack("!HHIH", rtype, dns.IN, 300, len(rdata)) + rdata
    return header(an=1) + QUESTION + record


def test_the_malformed_helpers_make_a_good_answer() -> None:
    assert judge(QUERY, header(an=1) + QUESTION + RECORD_A).ok
    assert judge(QUERY, one_record(dns.A, bytes([192, 0, 2, 1]))).ok


MALFORMED = [
    (b"", "0 bytes, shorter than a DNS header"),
    (header()[:11], "11 bytes, shorter than a DNS header"),
    (header(), "ends inside a name"),
    (header() + QUESTION[:-2], "ends inside its question"),
    (header(an=1) + QUESTION, "ends inside a name"),
    (header(an=1) + QUESTION + RECORD_A[:8], "ends inside a record"),
    (header(an=1) + QUESTION + RECORD_A[:-1], "data runs past the end"),
    (header(an=2) + QUESTION + RECORD_A, "ends inside a name"),
    (header(an=1) + QUESTION + RECORD_A + b"\x00", "1 bytes after the last record"),
    # A pointer to itself, a loop of two, and a pointer forward.
    (header() + b"\xc0\x0c" + b"\x00\x01\x00\x01", "points forward or loops (to byte 12)"),
    (header(an=1) + b"\xc0\x10\x00\x01\x00\x01\xc0\x0c", "points forward or loops"),
    (header(an=1) + QUESTION + b"\xc0\x30" + RECORD_A[2:], "points forward or loops (to byte 48)"),
    (header() + b"\x03www\xc0", "ends inside a compression pointer"),
    (header() + b"\x43www\x00" + b"\x00\x01\x00\x01", "label type 0x43"),
    (header() + b"\x83www\x00" + b"\x00\x01\x00\x01", "label type 0x83"),
    (header() + b"\x3fabc", "ends inside a label"),
    (
        header()
        + b"\x3f"
        + b"a" * 63
        + b"\x3f"
        + b"b" * 63
        + b"\x3f"
        + b"c" * 63
        + b"\x3f"
        + b"d" * 63
        + b"\x00\x00\x01\x00\x01",
        "a name longer than 255 bytes",
    ),
    (one_record(dns.A, b"12345"), "an A record of 5 bytes, not 4"),
    (one_record(dns.AAAA, b"1234"), "an AAAA record of 4 bytes, not 16"),
    (one_record(dns.TXT, b"\x05abc"), "TXT record whose strings do not fill its data"),
    (
        one_record(dns.CNAME, b"\xc0\x0c\x00\x00"),
        "CNAME record data does not end with its name",
    ),
    (one_record(dns.MX, b"\x00\x0a"), "an MX record of 2 bytes is too short"),
    (
        one_record(dns.SOA, b"\xc0\x0c\xc0\x0c\x00\x00"),
        "an SOA record whose numbers are not 20 bytes",
    ),
    (one_record(dns.SOA, b"\xc0\x0c"), "an SOA record too short for its names"),
]


@pytest.mark.parametrize(("payload", "reason"), MALFORMED, ids=[m[1][:40] for m in MALFORMED])
def test_malformed(payload: bytes, reason: str) -> None:
    verdict = judge(QUERY, payload)
    assert verdict.outcome is Outcome.MALFORMED, verdict
    assert verdict.reason.startswith("malformed answer: ")
    assert reason in verdict.reason, verdict.reason
    assert verdict.received == payload[:512]
    assert verdict.rcode is None and verdict.text == ""
    with pytest.raises(MalformedMessage) as raised:
        decode_message(payload)
    assert reason in raised.value.reason


def _long_name_answer(records: int) -> bytes:
    """
    The most decoding work a message can ask for: one 127-label name, and
    C{records} records whose owners point at it (each 129 steps).
    """
    name = b"\x01a" * 127 + b"\x00"
    empty = struct.pack("!HHIH", 99, dns.IN, 0, 0)
    pointer = struct.pack("!H", 0xC000 | len(header() + QUESTION))
    body = name + empty + (pointer + empty) * (records - 1)
    return header(an=records) + QUESTION + body


def test_decoding_work_is_bounded() -> None:
    """Within the bound the worst message still decodes, quickly; past it, it is refused."""
    most = MAX_DECODE_STEPS // 129 - 3
    start = time.perf_counter()
    verdict = judge(QUERY, _long_name_answer(most))
    assert time.perf_counter() - start < QUICK
    assert verdict.outcome is Outcome.NO_RECORD_OF_TYPE
    start = time.perf_counter()
    verdict = judge(QUERY, _long_name_answer(most + 10))
    assert time.perf_counter() - start < QUICK
    assert verdict.outcome is Outcome.MALFORMED
    assert "more than 65536 labels and pointers" in verdict.reason


def test_a_large_real_answer_decodes() -> None:
    """4000 compressed records (a 64 KiB answer) are far within the bound."""
    answers = [a(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(4000)]
    payload = reply(QUERY, *answers)
    assert len(payload) > 60000
    start = time.perf_counter()
    verdict = judge(QUERY, payload)
    assert time.perf_counter() - start < QUICK
    assert verdict.ok and len(verdict.records) == 4000


# --------------------------------------------------------------------------
# Arbitrary bytes: declared outcomes only, quickly, silently


@pytest.fixture
def twisted_log() -> Iterator[list[dict[str, Any]]]:
    """Every event Twisted logs while the test runs."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(events.append)


def _judged_quietly(payload: bytes) -> DnsVerdict:
    start = time.perf_counter()
    verdict = judge(QUERY, payload)
    assert time.perf_counter() - start < QUICK
    assert isinstance(verdict, DnsVerdict) and isinstance(verdict.outcome, Outcome)
    assert verdict.reason.isprintable() and verdict.text.isprintable()
    try:
        decode_message(payload)
    except MalformedMessage as e:
        assert verdict.outcome is Outcome.MALFORMED
        assert e.reason in verdict.reason
    else:
        assert verdict.outcome is not Outcome.MALFORMED
    return verdict


GOOD = [
    reply(QUERY, a("192.0.2.1"), a("192.0.2.2")),
    reply(
        QUERY,
        rr(QUERY.name, dns.Record_CNAME(b"host.example.test")),
        rr(b"host.example.test", dns.Record_MX(10, b"mail.example.test")),
        rr(b"host.example.test", dns.Record_SRV(1, 2, 3, b"sip.example.test")),
        rr(b"host.example.test", dns.Record_TXT(b"abc", b"def")),
        authority=(rr(b"example.test", SOA),),
    ),
]


@settings(
    derandomize=True,
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_give_a_declared_outcome(
    twisted_log: list[dict[str, Any]], payload: bytes
) -> None:
    _judged_quietly(payload)
    assert twisted_log == []


@settings(
    derandomize=True,
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(GOOD),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10_000),
)
def test_damaged_answers_give_a_declared_outcome(
    twisted_log: list[dict[str, Any]],
    good: bytes,
    damage: list[tuple[int, int]],
    cut: int,
) -> None:
    """Real answers with bytes overwritten and cut short reach the deeper paths."""
    payload = bytearray(good)
    for where, value in damage:
        payload[where % len(payload)] = value
    # One in four is also cut short; the others keep their length.
    keep = len(payload) if cut % 4 else max(12, len(payload) - cut % 40)
    _judged_quietly(bytes(payload[:keep]))
    assert twisted_log == []


def test_nothing_printed(capfd: pytest.CaptureFixture[str]) -> None:
    """Neither Twisted nor this module writes to stdout or stderr (no traceback)."""
    for payload, _ in MALFORMED:
        judge(QUERY, payload)
    for payload, _, _ in FAILURES:
        judge(QUERY, payload)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# --------------------------------------------------------------------------
# DNS over TCP


def test_stream_reader_one_byte_at_a_time() -> None:
    payload = reply(QUERY, a("192.0.2.1"))
    stream = struct.pack("!H", len(payload)) + payload + b"more after the first message"
    reader = DnsStreamReader()
    got = [reader.feed(stream[i : i + 1]) for i in range(len(stream))]
    first = len(payload) + 1
    assert got[:first] == [None] * first
    assert got[first:] == [payload] * (len(stream) - first)
    assert reader.received == len(stream)
    assert not reader.pending
    assert reader.end() == "closed after the answer"


def test_stream_reader_in_one_piece_and_empty_message() -> None:
    payload = reply(QUERY, a("192.0.2.1"))
    assert DnsStreamReader().feed(struct.pack("!H", len(payload)) + payload) == payload
    reader = DnsStreamReader()
    assert reader.feed(b"\x00\x00junk") == b""
    assert judge(QUERY, b"").outcome is Outcome.MALFORMED


def test_stream_reader_says_where_the_stream_ended() -> None:
    reader = DnsStreamReader()
    assert reader.end() == "closed before any byte of the answer"
    assert not reader.pending
    reader.feed(b"\x01")
    assert reader.pending
    assert reader.end() == "closed after 1 of the 2 length bytes"
    reader.feed(b"\x00" + b"x" * 10)
    assert reader.end() == "closed after 10 of the 256 bytes of the answer"


def test_stream_reader_memory_is_bounded() -> None:
    """A 65535-byte announcement is the most it holds; what follows it is not kept."""
    chunk = b"x" * 1_000_000
    reader = DnsStreamReader()
    tracemalloc.start()
    try:
        reader.feed(b"\xff\xff")
        message = None
        for _ in range(10):
            message = reader.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message is not None and len(message) == 65535
    assert peak < 400_000, peak
    assert reader.received == 2 + 10_000_000
