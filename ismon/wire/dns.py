# -*- test-case-name: tests.test_wire_dns -*-
"""
Sans-io DNS for a probe: build one query, read a DNS-over-TCP stream, and
judge the answer.  Encoding and decoding are Twisted Names'
(L{twisted.names.dns}); the socket, the deadline and the retry over TCP are
the probe's business.

    query = build_query("www.example.com", RecordType.A)
    expect = [parse_expected(RecordType.A, "192.0.2.1")]
    sock.send(query.udp)                    # or query.tcp on a stream
    verdict = judge(query, sock.recv(65535), expect)
    verdict.ok, verdict.outcome, verdict.reason, verdict.text

This module imports nothing of ismon: a verdict is an L{Outcome} and a
one-line reason, and the probe maps it to a catalogue message.  Twisted
Names is imported when a message is first built or read: checking the
operator's input (L{query_name}, L{RecordType.parse}, L{parse_expected})
loads none of Twisted, so the option parsers can run it before a watch
decides whether to load the TLS stack.

Declared errors: L{DnsInputError} (a C{ValueError}) from L{query_name},
L{reverse_name}, L{RecordType.parse}, L{parse_expected} and
L{build_query} (and a plain C{ValueError} for an ID beyond 16 bits);
L{MalformedMessage} from L{decode_message}, and nothing
else whatever the bytes; L{judge} and L{DnsStreamReader} raise nothing
(a message that cannot be read is a verdict, L{Outcome.MALFORMED}).

What passes
===========

L{judge} passes an answer that decodes, has the QR (response) bit and the
QUERY opcode, our ID, exactly our question (one question: the name in any
ASCII case, the type, class IN), RCODE NOERROR, no TC bit, and at least one
answer record of the asked type, class IN, whose owner is the asked name or
a name the answer's CNAME records lead to from it (a record of another
owner does not count).  For C{--type CNAME} the CNAME of the asked name
itself counts.  With expected values, one of those records must equal one
of them.

Everything else is a failure with its own L{Outcome}, checked in this
order: L{Outcome.MALFORMED} (but an answer to our query, with the TC bit,
that is cut short in the middle of its records is L{Outcome.TRUNCATED}, as
resolvers take it); L{Outcome.NOT_A_RESPONSE} (no QR bit, or an
opcode other than QUERY); L{Outcome.WRONG_ID}; L{Outcome.WRONG_QUESTION}
(another name, type or class, more than one question, or none -- an answer
without a question is tolerated only when its RCODE is an error, as servers
answer FORMERR and NOTIMP); L{Outcome.TRUNCATED} (the probe asks again over
TCP inside the same deadline; a truncated answer over TCP is a failure);
L{Outcome.NXDOMAIN}, L{Outcome.SERVFAIL}, L{Outcome.REFUSED},
L{Outcome.OTHER_RCODE} (name and number, e.g. C{RCODE NOTIMP (4)});
L{Outcome.NO_ANSWER} (NOERROR with an empty answer section: NODATA);
L{Outcome.NO_RECORD_OF_TYPE} (answer records, none of the asked type, e.g.
a CNAME only); L{Outcome.NOT_EXPECTED}.

What an expected value looks like (C{--expect VALUE})
=====================================================

Values are typed as an operator reads them in C{dig +short}, without
quotes and without the trailing dot of names:

  - C{A}: an IPv4 address, C{192.0.2.1}; C{AAAA}: an IPv6 address, compared
    as an address (C{::1} equals C{0:0:0:0:0:0:0:1}; no C{%zone}).
  - C{NS}, C{CNAME}, C{PTR}: a name, C{ns1.example.com}; names compare in
    any ASCII case, with or without the trailing dot.
  - C{MX}: C{EXCHANGE} or C{PREFERENCE EXCHANGE} (C{mail.example.com} or
    C{10 mail.example.com}); the exchange alone accepts any preference.
  - C{SRV}: the last fields of C{PRIORITY WEIGHT PORT TARGET}: C{TARGET},
    C{PORT TARGET} (C{5060 sip.example.com}), C{WEIGHT PORT TARGET}, or all
    four.
  - C{SOA}: the first fields of C{MNAME RNAME SERIAL REFRESH RETRY EXPIRE
    MINIMUM}: C{ns1.example.com}, C{ns1.example.com hostmaster.example.com},
    C{ns1.example.com hostmaster.example.com 2024010101}, ... or all seven.
  - C{TXT}: the record's character-strings joined with nothing between
    them (as SPF and DKIM read them), compared byte for byte, case
    included, with the UTF-8 of VALUE: C{v=spf1 -all}.

Numbers are decimal (MX/SRV fields 0-65535, SOA fields 0-4294967295);
fields are separated by spaces.  L{parse_expected} refuses anything else
with a L{DnsInputError} that says what the type takes.  The records a
verdict shows (L{DnsVerdict.records}) are in this same form, TXT in double
quotes, so a value seen in a status can be given to C{--expect} as it is
(without the quotes).

Names
=====

L{query_name} takes a host name as typed: ASCII letters, digits and the
printable ASCII punctuation but the backslash (no escapes), labels of 1-63
bytes, at most 253 characters (255 bytes on the wire), the trailing dot
optional, C{.} alone for the root.  A name with non-ASCII letters is
converted with IDNA 2003 (Python's C{idna} codec), as Twisted does.

Bounds
======

A message is at most 65535 bytes (UDP datagram or TCP length prefix).
Before Twisted decodes it, L{decode_message} walks its structure once:
every name at most 255 bytes, labels of the two supported kinds only, every
compression pointer pointing before the previous one (so a pointer loop is
refused, never followed), at most L{MAX_DECODE_STEPS} labels and pointers
in the whole message, the record data of the nine types above exactly as
long as RDLENGTH says, and no byte after the last record.  Twisted then
decodes only what was walked, with records of other types kept as opaque
bytes (L{twisted.names.dns.UnknownRecord}); so decoding is linear in the
message (one decode step per label or pointer: the worst, a 64 KiB answer
of 4093 A records, takes some 40-50 ms to judge here, half of it Twisted's
decode, under the fuzzing bound of 100 ms), never loops, never
logs (Twisted's only decode-time warning, about TXT data that does not fill
its record, cannot be reached), and raises nothing but L{MalformedMessage}.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import secrets
import struct
from collections.abc import Iterable, Sequence
from io import BytesIO
from typing import Any

import attrs

__all__ = [
    "MAX_DECODE_STEPS",
    "MAX_MESSAGE_BYTES",
    "RCODE_NAMES",
    "DnsInputError",
    "DnsQuery",
    "DnsStreamReader",
    "DnsVerdict",
    "Expected",
    "MalformedMessage",
    "Outcome",
    "RecordType",
    "build_query",
    "decode_message",
    "judge",
    "parse_expected",
    "query_name",
    "reverse_name",
]

#: The largest DNS message: a UDP payload, or what a 16-bit TCP length
#: prefix can announce.
MAX_MESSAGE_BYTES = 65535
#: Labels read plus compression pointers followed, over one whole message.
#: A real 64 KiB answer needs well under one step per byte (~4000 records
#: of a 3-label name take ~15000); a crafted one could otherwise ask for
#: 127 label steps per 2-byte name, ~4 million in Python.
MAX_DECODE_STEPS = 65536
#: Characters of a verdict's text (the status/log line's part for the reply).
TEXT_LIMIT = 300
#: Bytes of a payload a verdict keeps for display.
RECEIVED_LIMIT = 512

_HEADER = struct.Struct("!HBBHHHH")
_MAX_NAME_WIRE = 255
_MAX_LABEL = 63
_CLASS_IN = 1  # IN
_OP_QUERY = 0  # a standard query


@functools.cache
def _names() -> Any:
    """
    Twisted Names' message codec, imported when a message is first built
    or read: checking what the operator gave (L{query_name},
    L{RecordType.parse}, L{parse_expected}) needs none of it, and the
    option parsers run those before the watch decides whether to load the
    TLS stack (Twisted's Deferreds import asyncio, which imports C{ssl}).
    """
    from twisted.names import dns

    return dns


class RecordType(enum.IntEnum):
    """The record types a DNS probe may ask for (C{--type})."""

    # The type codes of RFC 1035 §3.2.2, RFC 3596 (AAAA) and RFC 2782 (SRV),
    # as twisted.names.dns has them.
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33

    @classmethod
    def parse(cls, text: str) -> RecordType:
        """
        The type called C{text} (any case).

        @raise DnsInputError: not one of the nine types.
        """
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = "|".join(member.name for member in cls)
            raise DnsInputError(f"the record type must be one of {names}, not {text!r}") from None


#: The type codes L{RecordType} names: the records decoded, compared and shown.
_TYPE_CODES = frozenset(int(rtype) for rtype in RecordType)


#: RCODE names (RFC 1035 §4.1.1, RFC 2136 §2.2, RFC 6895 §2.3), 4-bit codes.
RCODE_NAMES: dict[int, str] = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}


def _rcode_text(rcode: int) -> str:
    name = RCODE_NAMES.get(rcode)
    return f"RCODE {name} ({rcode})" if name else f"RCODE {rcode}"


class DnsInputError(ValueError):
    """What the operator gave (a name, a type, an expected value) cannot be used."""


class MalformedMessage(Exception):
    """
    The bytes are not a DNS message this module can read: C{reason} says
    why, C{received} holds (the start of) them.
    """

    def __init__(self, reason: str, received: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.received = received[:RECEIVED_LIMIT]


# --------------------------------------------------------------------------
# Names


def query_name(text: str) -> bytes:
    """
    The wire-ready form of the host name C{text}: ASCII, labels joined by
    dots, no trailing dot (C{b""} for the root, given as C{"."}).  Case is
    kept (DNS preserves it; the answer's question is compared in any case).

    @raise DnsInputError: not a name a query can ask for (see the module
        docstring, "Names").
    """
    if text in (".", ""):
        if text == "":
            raise DnsInputError("the name is empty (the root is '.')")
        return b""
    name = text[:-1] if text.endswith(".") else text
    if not name.isascii():
        try:
            encoded = name.encode("idna")
        except UnicodeError as e:
            raise DnsInputError(f"{text!r} is not a valid internationalized name: {e}") from None
    else:
        encoded = name.encode("ascii")
    for byte in encoded:
        if not 0x21 <= byte <= 0x7E or byte == 0x5C:
            raise DnsInputError(
                f"{text!r} is not a host name: printable ASCII without spaces or backslashes only"
            )
    labels = encoded.split(b".")
    for label in labels:
        if not label:
            raise DnsInputError(f"{text!r} has an empty label")
        if len(label) > _MAX_LABEL:
            raise DnsInputError(f"{text!r} has a label over {_MAX_LABEL} bytes")
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_NAME_WIRE:
        raise DnsInputError(f"{text!r} is longer than a DNS name can be (253 characters)")
    return encoded


def reverse_name(address: str) -> str:
    """
    The PTR name of an IPv4 or IPv6 address: C{192.0.2.1} ->
    C{1.2.0.192.in-addr.arpa}, as C{dig -x} asks.

    @raise DnsInputError: C{address} is not an IP address.
    """
    try:
        return ipaddress.ip_address(address).reverse_pointer
    except ValueError:
        raise DnsInputError(f"{address!r} is not an IP address") from None


def _name_key(name: bytes) -> bytes:
    """How names compare: ASCII case folded (RFC 4343), no trailing dot."""
    return name.lower().rstrip(b".")


def _show_name(name: bytes) -> str:
    """A name in presentation form, log-safe: other bytes as C{\\DDD}; the root as C{.}."""
    if not name:
        return "."
    return "".join(
        chr(b) if 0x21 <= b <= 0x7E and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in name
    )


def _show_text(data: bytes) -> str:
    """TXT data in double quotes, log-safe: C{"} and C{\\} escaped, other bytes as C{\\DDD}."""
    out = []
    for b in data:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


# --------------------------------------------------------------------------
# The query


@attrs.frozen
class DnsQuery:
    """
    One query: ID, name, type, class IN, RD set.  C{udp} is the message as
    a UDP payload; L{tcp} the same message with its 2-byte length prefix
    (RFC 1035 §4.2.2).  A retry over TCP after a truncated answer sends the
    same message, ID included.
    """

    id: int
    name: bytes
    type: RecordType
    udp: bytes

    @property
    def tcp(self) -> bytes:
        return struct.pack("!H", len(self.udp)) + self.udp

    @property
    def text(self) -> str:
        """The question as shown: C{www.example.com IN A}."""
        return f"{_show_name(self.name)} IN {self.type.name}"


def build_query(name: str, type: RecordType = RecordType.A, *, id: int | None = None) -> DnsQuery:
    """
    Build one query for C{name}: a random 16-bit ID (C{secrets}) unless
    C{id} is given, RD set, one question of C{type}, class IN, no EDNS (a
    UDP answer over 512 bytes then comes truncated, and the probe asks
    again over TCP).

    @raise DnsInputError: C{name} is not a name (see L{query_name}).
    """
    wire_name = query_name(name)
    query_id = secrets.randbits(16) if id is None else id
    if not 0 <= query_id <= 0xFFFF:
        raise ValueError(f"a DNS ID is 16 bits, not {query_id}")
    dns = _names()
    message = dns.Message(id=query_id, recDes=1)
    message.queries = [dns.Query(wire_name, int(type), _CLASS_IN)]
    return DnsQuery(id=query_id, name=wire_name, type=type, udp=message.toStr())


# --------------------------------------------------------------------------
# Decoding


class _Walk:
    """
    One bounded pass over a message's structure, before Twisted decodes
    it (see the module docstring, "Bounds").  Keeps the question sections'
    labels, which compare exactly (a label holding a dot stays one label).
    """

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.steps = 0
        self.questions: list[tuple[tuple[bytes, ...], int, int]] = []

    def fail(self, reason: str) -> MalformedMessage:
        return MalformedMessage(reason, self.payload)

    def name(self, pos: int) -> tuple[tuple[bytes, ...], int]:
        """The labels of the name at C{pos}, and where the name ends there."""
        data = self.payload
        labels: list[bytes] = []
        wire = 1
        end: int | None = None
        # A pointer must point before the previous one (before the name's
        # start for the first): pointers can then never loop.
        limit = pos
        while True:
            self.steps += 1
            if self.steps > MAX_DECODE_STEPS:
                raise self.fail(f"more than {MAX_DECODE_STEPS} labels and pointers in the message")
            if pos >= len(data):
                raise self.fail("the message ends inside a name")
            length = data[pos]
            kind = length >> 6
            if kind == 3:
                if pos + 1 >= len(data):
                    raise self.fail("the message ends inside a compression pointer")
                target = ((length & 0x3F) << 8) | data[pos + 1]
                if end is None:
                    end = pos + 2
                if target >= limit:
                    raise self.fail(
                        f"a compression pointer at byte {pos} points forward or loops"
                        f" (to byte {target})"
                    )
                limit = pos = target
                continue
            if kind != 0:
                raise self.fail(f"label type {length:#04x} at byte {pos} is not supported")
            if length == 0:
                return tuple(labels), pos + 1 if end is None else end
            wire += length + 1
            if wire > _MAX_NAME_WIRE:
                raise self.fail(f"a name longer than {_MAX_NAME_WIRE} bytes at byte {pos}")
            if pos + 1 + length > len(data):
                raise self.fail("the message ends inside a label")
            labels.append(data[pos + 1 : pos + 1 + length])
            pos += 1 + length

    def _name_fills(self, start: int, end: int, what: str) -> None:
        _, after = self.name(start)
        if after != end:
            raise self.fail(f"{what} record data does not end with its name")

    def rdata(self, rtype: int, start: int, end: int) -> None:
        """Check the record data of the types Twisted decodes for us."""
        size = end - start
        if rtype in (RecordType.A, RecordType.AAAA):
            wanted = 4 if rtype == RecordType.A else 16
            if size != wanted:
                raise self.fail(f"an {_type_name(rtype)} record of {size} bytes, not {wanted}")
        elif rtype in (RecordType.NS, RecordType.CNAME, RecordType.PTR):
            self._name_fills(start, end, _type_name(rtype))
        elif rtype in (RecordType.MX, RecordType.SRV):
            fixed = 2 if rtype == RecordType.MX else 6
            if size < fixed + 1:
                raise self.fail(f"an {_type_name(rtype)} record of {size} bytes is too short")
            self._name_fills(start + fixed, end, _type_name(rtype))
        elif rtype == RecordType.SOA:
            _, after = self.name(start)
            if after >= end:
                raise self.fail("an SOA record too short for its names")
            _, after = self.name(after)
            if end - after != 20:
                raise self.fail("an SOA record whose numbers are not 20 bytes")
        elif rtype == RecordType.TXT:
            pos = start
            while pos < end:
                pos += 1 + self.payload[pos]
            if pos != end:
                raise self.fail("a TXT record whose strings do not fill its data")

    def run(self) -> None:
        data = self.payload
        if len(data) < _HEADER.size:
            raise self.fail(f"{len(data)} bytes, shorter than a DNS header (12)")
        if len(data) > MAX_MESSAGE_BYTES:
            raise self.fail(f"{len(data)} bytes, longer than a DNS message can be")
        _, _, _, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
        pos = _HEADER.size
        for _ in range(qdcount):
            labels, pos = self.name(pos)
            if pos + 4 > len(data):
                raise self.fail("the message ends inside its question")
            qtype, qclass = struct.unpack_from("!HH", data, pos)
            pos += 4
            self.questions.append((labels, qtype, qclass))
        for _ in range(ancount + nscount + arcount):
            _, pos = self.name(pos)
            if pos + 10 > len(data):
                raise self.fail("the message ends inside a record")
            rtype, _, _, rdlength = struct.unpack_from("!HHIH", data, pos)
            pos += 10
            end = pos + rdlength
            if end > len(data):
                raise self.fail("a record's data runs past the end of the message")
            self.rdata(rtype, pos, end)
            pos = end
        if pos != len(data):
            raise self.fail(f"{len(data) - pos} bytes after the last record")


@functools.cache
def _message_class() -> Any:
    """
    Twisted's message, decoding only the nine record types the probe reads
    (the others stay opaque bytes), with Twisted's cap on compression
    pointers raised to ours: the walk has already bounded them.
    """
    dns = _names()
    decoded = {int(rtype): getattr(dns, f"Record_{rtype.name}") for rtype in RecordType}

    class _Message(dns.Message):  # type: ignore[misc,name-defined]
        maxCompressionPointers = MAX_DECODE_STEPS

        def lookupRecordType(self, type: int) -> Any:
            return decoded.get(type, dns.UnknownRecord)

    return _Message


@attrs.frozen
class _Decoded:
    message: Any  # a twisted.names.dns.Message
    questions: tuple[tuple[tuple[bytes, ...], int, int], ...]


def _decode(payload: bytes) -> _Decoded:
    message_class = _message_class()
    walk = _Walk(payload)
    walk.run()
    message = message_class()
    try:
        message.decode(BytesIO(payload))
    except Exception as e:
        # The walk should leave Twisted nothing to refuse; whatever it still
        # raises on hostile bytes is the declared error, never an escape.
        raise MalformedMessage(f"Twisted could not decode it: {e!r}"[:200], payload) from None
    # Twisted stops quietly at the end of the bytes; the walk saw them all.
    _, _, _, qd, an, ns, ar = _HEADER.unpack_from(payload)
    records = len(message.answers) + len(message.authority) + len(message.additional)
    if len(message.queries) != qd or records != an + ns + ar:
        raise MalformedMessage("Twisted decoded fewer sections than the header counts", payload)
    return _Decoded(message, tuple(walk.questions))


def decode_message(payload: bytes) -> Any:
    """
    Decode one DNS message with Twisted Names, after the bounded walk of
    the module docstring ("Bounds").

    @return: a L{twisted.names.dns.Message}.
    @raise MalformedMessage: the only exception it raises, whatever the bytes.
    """
    return _decode(payload).message


# --------------------------------------------------------------------------
# Records: compared fields and shown text


def _type_name(rtype: int) -> str:
    return str(_names().QUERY_TYPES.get(rtype, f"TYPE{rtype}"))


def _u32(value: int) -> int:
    # Twisted unpacks refresh, retry and expire as signed 32-bit numbers.
    return value & 0xFFFFFFFF


def _values(rtype: int, payload: Any) -> tuple[Any, ...]:
    """
    The fields of a decoded record of one of the nine types, in
    presentation order, names as the server sent them.
    """
    if rtype == RecordType.A:
        return (ipaddress.IPv4Address(payload.address),)
    if rtype == RecordType.AAAA:
        return (ipaddress.IPv6Address(payload.address),)
    if rtype in (RecordType.NS, RecordType.CNAME, RecordType.PTR):
        return (payload.name.name,)
    if rtype == RecordType.MX:
        return (payload.preference, payload.name.name)
    if rtype == RecordType.SRV:
        return (payload.priority, payload.weight, payload.port, payload.target.name)
    if rtype == RecordType.SOA:
        numbers = (payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum)
        return (payload.mname.name, payload.rname.name, *(_u32(n) for n in numbers))
    assert rtype == RecordType.TXT
    return (b"".join(payload.data),)


def _fields(rtype: int, payload: Any) -> tuple[Any, ...]:
    """The compared fields of a record: L{_values}, names as L{_name_key}."""
    if rtype == RecordType.TXT:
        return _values(rtype, payload)
    return tuple(
        _name_key(value) if isinstance(value, bytes) else value for value in _values(rtype, payload)
    )


def _show_record(rtype: int, payload: Any) -> str:
    """C{TYPE VALUE}, the value in the form C{--expect} takes (TXT quoted)."""
    name = _type_name(rtype)
    if rtype not in _TYPE_CODES:
        return f"{name} ({len(payload.data)} bytes)"
    if rtype == RecordType.TXT:
        return f"{name} {_show_text(b''.join(payload.data))}"
    shown = [
        _show_name(value) if isinstance(value, bytes) else str(value)
        for value in _values(rtype, payload)
    ]
    return f"{name} {' '.join(shown)}"


# --------------------------------------------------------------------------
# Expected values


# How the fields of a value line up with a record's: MX and SRV values give
# the last fields, SOA values the first ones, the others their one field.
_FIELD_KINDS: dict[RecordType, tuple[str, ...]] = {
    RecordType.A: ("ipv4",),
    RecordType.AAAA: ("ipv6",),
    RecordType.NS: ("name",),
    RecordType.CNAME: ("name",),
    RecordType.PTR: ("name",),
    RecordType.MX: ("u16", "name"),
    RecordType.SRV: ("u16", "u16", "u16", "name"),
    RecordType.SOA: ("name", "name", "u32", "u32", "u32", "u32", "u32"),
    RecordType.TXT: ("text",),
}
_FORMS: dict[RecordType, str] = {
    RecordType.A: "an IPv4 address (192.0.2.1)",
    RecordType.AAAA: "an IPv6 address (2001:db8::1)",
    RecordType.NS: "a name (ns1.example.com)",
    RecordType.CNAME: "a name (host.example.com)",
    RecordType.PTR: "a name (host.example.com)",
    RecordType.MX: "EXCHANGE or PREFERENCE EXCHANGE (10 mail.example.com)",
    RecordType.SRV: "the last fields of PRIORITY WEIGHT PORT TARGET (5060 sip.example.com)",
    RecordType.SOA: "the first fields of MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM",
    RecordType.TXT: "the text of the record",
}


@attrs.frozen
class Expected:
    """
    One expected value of L{parse_expected}: its type, its compared fields
    (the last ones of the record's for MX and SRV, the first ones for SOA),
    and C{text}, the value as given.
    """

    type: RecordType
    fields: tuple[Any, ...]
    text: str

    def matches(self, record: tuple[Any, ...]) -> bool:
        """Whether a record's L{_fields} equal this value."""
        if self.type is RecordType.SOA:
            return record[: len(self.fields)] == self.fields
        return record[-len(self.fields) :] == self.fields


def _field(kind: str, text: str, type: RecordType) -> Any:
    if kind == "ipv4":
        return ipaddress.IPv4Address(text)
    if kind == "ipv6":
        if "%" in text:
            raise ValueError("a zone index (%...) has no place in a DNS record")
        return ipaddress.IPv6Address(text)
    if kind == "name":
        try:
            return _name_key(query_name(text))
        except DnsInputError as e:
            raise ValueError(str(e)) from None
    top = 0xFFFF if kind == "u16" else 0xFFFFFFFF
    if not (text.isascii() and text.isdigit()) or int(text) > top:
        raise ValueError(f"{text!r} is not a number from 0 to {top}")
    return int(text)


def parse_expected(type: RecordType, text: str) -> Expected:
    """
    Parse one C{--expect} value for records of C{type} (forms: the module
    docstring, "What an expected value looks like").

    @raise DnsInputError: C{text} is not a value of that type's form.
    """
    kinds = _FIELD_KINDS[type]
    if kinds == ("text",):
        return Expected(type, (text.encode("utf-8", "surrogateescape"),), text)
    words = text.split()
    if type is RecordType.SOA:
        kinds = kinds[: len(words)]
    else:
        kinds = kinds[len(kinds) - len(words) :]
    if not words or len(words) != len(kinds):
        raise DnsInputError(f"an expected {type.name} value is {_FORMS[type]}, not {text!r}")
    try:
        fields = tuple(_field(kind, word, type) for kind, word in zip(kinds, words, strict=True))
    except ValueError as e:
        raise DnsInputError(
            f"an expected {type.name} value is {_FORMS[type]}, not {text!r} ({e})"
        ) from None
    return Expected(type, fields, text)


# --------------------------------------------------------------------------
# The verdict


class Outcome(enum.Enum):
    """What L{judge} found; every one but C{OK} fails the probe."""

    OK = "ok"
    MALFORMED = "malformed"
    NOT_A_RESPONSE = "not a response"
    WRONG_ID = "wrong ID"
    WRONG_QUESTION = "wrong question"
    TRUNCATED = "truncated"
    NXDOMAIN = "NXDOMAIN"
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"
    OTHER_RCODE = "other RCODE"
    NO_ANSWER = "no answer"
    NO_RECORD_OF_TYPE = "no record of the asked type"
    NOT_EXPECTED = "no expected value"


_RCODE_OUTCOMES = {3: Outcome.NXDOMAIN, 2: Outcome.SERVFAIL, 5: Outcome.REFUSED}


@attrs.frozen
class DnsVerdict:
    """
    L{judge}'s verdict on one answer.

    @ivar outcome: what was found.
    @ivar reason: one printable line saying why (for C{OK}, what passed).
    @ivar text: the answer as the status shows it, printable, at most
        L{TEXT_LIMIT} characters: C{NOERROR 2 answers: A 192.0.2.1, A
        192.0.2.2}; empty for a malformed message.
    @ivar rcode: the answer's RCODE, C{None} when it could not be read.
    @ivar records: the answer section's records, C{TYPE VALUE} each.
    @ivar received: the first L{RECEIVED_LIMIT} bytes of the payload.
    """

    outcome: Outcome
    reason: str
    text: str = ""
    rcode: int | None = None
    records: tuple[str, ...] = ()
    received: bytes = b""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _bounded(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _listed(items: Sequence[str], limit: int = 200) -> str:
    """C{a, b, c}, cut to about C{limit} characters with a count of the rest."""
    shown: list[str] = []
    size = 0
    for item in items:
        if shown and size + len(item) > limit:
            return ", ".join(shown) + f" (+{len(items) - len(shown)} more)"
        shown.append(item)
        size += len(item) + 2
    return ", ".join(shown)


def _summary(message: Any, records: Sequence[str]) -> str:
    name = RCODE_NAMES.get(message.rCode, f"RCODE{message.rCode}")
    flags = " TC" if message.trunc else ""
    count = f"{len(records)} answer{'' if len(records) == 1 else 's'}"
    return _bounded(f"{name}{flags} {count}" + (f": {_listed(records)}" if records else ""))


def _question_text(labels: Iterable[bytes], qtype: int, qclass: int) -> str:
    cls = "IN" if qclass == _CLASS_IN else f"CLASS{qclass}"
    return f"{_show_name(b'.'.join(labels))} {cls} {_type_name(qtype)}"


def _wrong_question(query: DnsQuery, decoded: _Decoded, rcode: int) -> str | None:
    """Why the answer's question is not ours, or C{None} when it is (or may be absent)."""
    questions = decoded.questions
    if not questions:
        # FORMERR and NOTIMP answers often leave the question out.
        return None if rcode != 0 else "the answer has no question"
    if len(questions) > 1:
        return f"the answer has {len(questions)} questions, not 1"
    labels, qtype, qclass = questions[0]
    ours = tuple(label.lower() for label in query.name.split(b".")) if query.name else ()
    if tuple(label.lower() for label in labels) == ours and qtype == query.type:
        if qclass == _CLASS_IN:
            return None
    return f"the answer's question is {_question_text(labels, qtype, qclass)}, not {query.text}"


def _of_asked_type(query: DnsQuery, answers: Sequence[Any]) -> list[Any]:
    """The answer records of the asked type owned by the asked name or its CNAME chain."""
    owners = {_name_key(query.name)}
    if query.type is not RecordType.CNAME:
        cnames = {
            _name_key(rr.name.name): _name_key(rr.payload.name.name)
            for rr in answers
            if rr.type == RecordType.CNAME and rr.cls == _CLASS_IN
        }
        current = _name_key(query.name)
        # Each step adds a new owner; a CNAME loop ends when it comes round.
        while current in cnames and cnames[current] not in owners:
            current = cnames[current]
            owners.add(current)
    return [
        rr
        for rr in answers
        if rr.type == query.type and rr.cls == _CLASS_IN and _name_key(rr.name.name) in owners
    ]


def _cut_short_answer(query: DnsQuery, payload: bytes) -> bool:
    """
    Whether C{payload}, which does not decode, has a header saying "an
    answer to this query, truncated": some servers (Twisted Names' own
    among them) cut a UDP answer at 512 bytes in the middle of a record and
    keep the counts; resolvers then ask again over TCP, as the probe will.
    """
    if len(payload) < _HEADER.size:
        return False
    message_id, flags, _, _, _, _, _ = _HEADER.unpack_from(payload)
    # QR set, opcode QUERY (0), TC set; AA and RD may be anything.
    return bool(message_id == query.id and flags & 0b1111_1010 == 0b1000_0010)


def judge(query: DnsQuery, payload: bytes, expect: Sequence[Expected] = ()) -> DnsVerdict:
    """
    Judge C{payload}, the answer to C{query} (the UDP payload, or the TCP
    message without its length prefix), against the rules of the module
    docstring ("What passes").  Never raises: a message that cannot be
    read is L{Outcome.MALFORMED}.

    @param expect: the expected values (L{parse_expected}, for C{query}'s
        type); empty: any record of the type passes.
    """
    received = payload[:RECEIVED_LIMIT]
    try:
        decoded = _decode(payload)
    except MalformedMessage as e:
        if _cut_short_answer(query, payload):
            return DnsVerdict(
                Outcome.TRUNCATED,
                f"the answer is truncated (TC) and cut short ({e.reason}): ask again over TCP",
                received=received,
            )
        return DnsVerdict(Outcome.MALFORMED, f"malformed answer: {e.reason}", received=received)
    message = decoded.message
    rcode = message.rCode
    answers = list(message.answers)
    records = tuple(_show_record(rr.type, rr.payload) for rr in answers)
    text = _summary(message, records)

    def verdict(outcome: Outcome, reason: str) -> DnsVerdict:
        return DnsVerdict(outcome, _bounded(reason), text, rcode, records, received)

    if not message.answer:
        return verdict(Outcome.NOT_A_RESPONSE, "a query, not an answer (the QR bit is clear)")
    if message.opCode != _OP_QUERY:
        return verdict(
            Outcome.NOT_A_RESPONSE, f"an answer with opcode {message.opCode}, not QUERY (0)"
        )
    if message.id != query.id:
        return verdict(Outcome.WRONG_ID, f"the answer's ID is {message.id}, not {query.id}")
    wrong = _wrong_question(query, decoded, rcode)
    if wrong is not None:
        return verdict(Outcome.WRONG_QUESTION, wrong)
    if message.trunc:
        return verdict(Outcome.TRUNCATED, "the answer is truncated (TC): ask again over TCP")
    if rcode != 0:
        outcome = _RCODE_OUTCOMES.get(rcode, Outcome.OTHER_RCODE)
        detail = {
            Outcome.NXDOMAIN: f": {_show_name(query.name)} does not exist",
            Outcome.SERVFAIL: ": the server failed to answer",
            Outcome.REFUSED: ": the server refused the query",
        }.get(outcome, "")
        return verdict(outcome, f"{_rcode_text(rcode)}{detail}")
    asked = f"{query.type.name} record for {_show_name(query.name)}"
    if not answers:
        return verdict(Outcome.NO_ANSWER, f"NOERROR without an answer record (no {asked})")
    matching = _of_asked_type(query, answers)
    if not matching:
        return verdict(
            Outcome.NO_RECORD_OF_TYPE,
            f"no {asked} among the answer's records: {_listed(records)}",
        )
    shown = [_show_record(rr.type, rr.payload) for rr in matching]
    if expect:
        fields = [_fields(rr.type, rr.payload) for rr in matching]
        hits = [
            shown[i]
            for i, record in enumerate(fields)
            if any(value.matches(record) for value in expect)
        ]
        if not hits:
            wanted = _listed([value.text for value in expect], 100)
            return verdict(
                Outcome.NOT_EXPECTED,
                f"no expected value ({wanted}) among {_listed(shown)}",
            )
        return verdict(Outcome.OK, f"{hits[0]} as expected")
    return verdict(Outcome.OK, _listed(shown))


# --------------------------------------------------------------------------
# DNS over TCP


class DnsStreamReader:
    """
    The first message of a DNS-over-TCP stream (RFC 1035 §4.2.2, RFC
    7766): a 2-byte length, then that many bytes.  Feed it what arrives;
    it keeps at most the prefix and one message (at most 65537 bytes), and
    ignores whatever follows the first message.  A trickle only makes it
    wait: the deadline is the probe's.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None
        self.message: bytes | None = None
        #: Every byte fed, those ignored after the first message included.
        self.received = 0

    def feed(self, data: bytes) -> bytes | None:
        """Take the next bytes; return the first message once it is complete."""
        self.received += len(data)
        at = 0
        # Slicing by index: a flood costs no copy of what is not kept.
        while self.message is None and at < len(data):
            want = (2 if self._length is None else self._length) - len(self._buffer)
            self._buffer += data[at : at + want]
            at += want
            if self._length is None:
                if len(self._buffer) == 2:
                    (self._length,) = struct.unpack("!H", self._buffer)
                    self._buffer.clear()
                    if self._length == 0:
                        self.message = b""  # judged malformed: shorter than a header
            elif len(self._buffer) == self._length:
                self.message = bytes(self._buffer)
                self._buffer.clear()
        return self.message

    @property
    def pending(self) -> bool:
        """Part of the first message has arrived, not all of it."""
        return self.message is None and (self._length is not None or bool(self._buffer))

    def end(self) -> str:
        """
        The connection closed before a whole message: why, in words (the
        probe's verdict for a close says it).
        """
        if self.message is not None:
            return "closed after the answer"
        if self._length is None:
            if not self._buffer:
                return "closed before any byte of the answer"
            return "closed after 1 of the 2 length bytes"
        return f"closed after {len(self._buffer)} of the {self._length} bytes of the answer"
