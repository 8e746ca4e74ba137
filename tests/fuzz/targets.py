"""
The fuzz targets, in one table: name -> one-input function, the exceptions
it declares (its parse errors: anything else is a crash), its seed corpus
and its libFuzzer settings (docs/fuzzing.md).

This is the only module under tests/fuzz that imports ismon, and it does
so in the block just below, one line per module: when the package layout
moves (issue 20), each target follows with a one-line change there.
"""

from __future__ import annotations

import contextlib
import functools
import io
import ipaddress
import json
import os
import re
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from OpenSSL import crypto
from twisted.logger import globalLogPublisher
from twisted.protocols import amp
from twisted.test.iosim import FakeTransport

# -- the target table's imports: every ismon module the targets read ----------
# One import each, in the package's layers (docs/architecture.md): when a
# module moves, its target follows with a one-line change here.
from ismon.cmdline import auth_file as cmdline_auth_file
from ismon.cmdline import options as cmdline_options
from ismon.control import client as control_client
from ismon.control import commands as status_text  # format_status, _format_ended
from ismon.control import recognise as recognising
from ismon.control import request as control_request  # ControlRequest, pause_detail
from ismon.metrics import render as metrics_render
from ismon.probes import ca_file as probes_ca_file
from ismon.state import record as state_record
from ismon.wire import ampbox as wire_ampbox
from ismon.wire import dns as wire_dns
from ismon.wire import ftp as wire_ftp
from ismon.wire import http as wire_http
from ismon.wire import imap as wire_imap
from ismon.wire import pop3 as wire_pop3
from ismon.wire import smtp as wire_smtp
from ismon.wire import tcp as wire_tcp

# ---------------------------------------------------------------------------
from tests.fuzz.harness import (
    READ_SIZE,
    HarnessFailure,
    Refused,
    argv_of,
    check,
    cut,
    envelope,
    holds_at_most,
    outcome,
    overhead,
    scratch_dir,
    unguarded,
    utf8_safe,
)

# ---------------------------------------------------------------------------

# The reference parsers of the metrics text (the test extra has them; a
# machine without checks a little less).  Imported here, before any
# input: their import reads /proc, which the guard would refuse.
try:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as parse_openmetrics,
    )
    from prometheus_client.parser import text_string_to_metric_families as parse_classic
except ImportError:
    parse_openmetrics = parse_classic = None

__all__ = ["CORPUS", "DICTIONARIES", "REGRESSIONS", "TARGETS", "Target"]

HERE = Path(__file__).resolve().parent
#: The seed corpus in the repository: CORPUS/<target>/.
CORPUS = HERE / "corpus"
#: Inputs that once crashed a target, replayed by tests/test_fuzz.py: REGRESSIONS/<target>/.
REGRESSIONS = HERE / "regressions"
#: libFuzzer dictionaries: DICTIONARIES/<target>.dict.
DICTIONARIES = HERE / "dicts"


@dataclass(frozen=True)
class Target:
    """One fuzz target: C{one_input(data)} may raise C{declared}, nothing else."""

    name: str
    one_input: Callable[[bytes], object]
    declared: tuple[type[BaseException], ...]
    summary: str
    # Inputs longer than this are not generated (libFuzzer -max_len); the
    # envelope's flood bit reaches the 64 KiB bounds without long inputs.
    max_len: int = 4096
    # Extra libFuzzer arguments this target always gets.
    extra: tuple[str, ...] = field(default=())
    # Inputs tests/test_fuzz.py runs (libFuzzer -runs): 3-8 s here.
    ci_runs: int = 2000

    @property
    def corpus(self) -> Path:
        return CORPUS / self.name

    @property
    def regressions(self) -> Path:
        return REGRESSIONS / self.name

    @property
    def dictionary(self) -> Path | None:
        path = DICTIONARIES / f"{self.name}.dict"
        return path if path.is_file() else None


def _same(whole: object, split: object, what: str) -> None:
    """The whole stream and the split stream must end the same way."""
    with overhead():
        differ = whole != split
    if differ:
        raise HarnessFailure(f"{what}: fed whole -> {whole!r:.600}\nfed split -> {split!r:.600}")


def _fed(pieces: list[bytes]) -> Iterator[tuple[bytes, bool]]:
    """
    The pieces, each with whether to check the parser's retained bytes
    after it: after pieces 1, 2, 4, 8... and the last.  Checking after
    every one made 66 KiB fed a byte at a time quadratic in the harness.
    """
    last = len(pieces)
    for number, piece in enumerate(pieces, 1):
        yield piece, number == last or not number & (number - 1)


def _whole(stream: bytes) -> list[bytes]:
    """The stream as the network would deliver it at best: reads of READ_SIZE bytes."""
    return [stream[at : at + READ_SIZE] for at in range(0, len(stream), READ_SIZE)]


def _differential(
    read: Callable[[list[bytes]], object],
    stream_pieces: list[bytes],
    stream: bytes,
    declared: tuple[type[BaseException], ...],
    what: str,
) -> object:
    whole = outcome(lambda: read(_whole(stream)), declared)
    split = outcome(lambda: read(stream_pieces), declared)
    _same(whole, split, what)
    return whole


# -- HTTP ------------------------------------------------------------------------

_HEAD_BOUND = wire_http.MAX_HEADER_BYTES + wire_http.MAX_LINE_BYTES
_BODY_LIMITS = (16, 1024, 65536, 1 << 20)


def _http_read(pieces: list[bytes], method: str, limit: int) -> tuple[object, ...]:
    """What a probe reads of an answer: the head, then the body (ismon.probes.http)."""
    head = wire_http.HttpHeadParser()
    body: Any = None
    for piece, audit in _fed(pieces):
        if body is None:
            status = head.feed(piece)
            if audit:
                holds_at_most(head, _HEAD_BOUND + len(piece) + 64, "the head parser")
            if status is None:
                continue
            framing, length = wire_http.body_framing(method, status, head)
            body = wire_http.HttpBodyReader(framing, length, limit)
            done = body.feed(head.rest)
        else:
            done = body.feed(piece)
        if audit:
            holds_at_most(
                body, limit + wire_http.MAX_CHUNK_LINE_BYTES + len(piece) + 64, "the body"
            )
        if done:
            return ("answered", head.status, tuple(head.headers), body.body, body.truncated)
    # The server closed the connection.  A refusal only now is another
    # outcome than one while reading: the probe would have waited for it.
    if body is not None:
        return ("closed in body", head.status, tuple(head.headers), body.body, body.end())
    if head.received:
        try:
            status = head.end()
        except wire_http.InvalidResponse as e:
            return ("refused at the close", Refused(type(e).__name__, e.reason))
        return ("closed in head", status, tuple(head.headers))
    return ("closed",)


def http_answer(data: bytes) -> object:
    """
    An HTTP answer as the probe reads it: status line and headers
    (interim answers included), then the body by its framing (none,
    Content-Length, chunked, until the close) up to a --max-body limit.
    Flags: bit 0 GET (else HEAD), bits 1-2 the body limit.
    """
    env = envelope(data)
    method = "GET" if env.flags & 1 else "HEAD"
    limit = _BODY_LIMITS[(env.flags >> 1) & 3]
    return _differential(
        lambda pieces: _http_read(pieces, method, limit),
        env.pieces(),
        env.stream,
        (wire_http.InvalidResponse,),
        "HTTP answer",
    )


def _body_read(pieces: list[bytes], framing: Any, length: int, limit: int) -> tuple[object, ...]:
    reader = wire_http.HttpBodyReader(framing, length, limit)
    for piece, audit in _fed(pieces):
        done = reader.feed(piece)
        if audit:
            holds_at_most(
                reader, limit + wire_http.MAX_CHUNK_LINE_BYTES + len(piece) + 64, "the body"
            )
        if done:
            return ("done", reader.body, reader.truncated)
    return ("closed", reader.body, reader.truncated, reader.end())


def http_body(data: bytes) -> object:
    """
    The body reader alone, chunked above all: flags bits 0-1 the framing
    (chunked, length, close, none), bits 2-3 the limit; with length
    framing the stream's first two bytes are the Content-Length.
    """
    env = envelope(data)
    framings = (
        wire_http.BodyFraming.CHUNKED,
        wire_http.BodyFraming.LENGTH,
        wire_http.BodyFraming.CLOSE,
        wire_http.BodyFraming.NONE,
    )
    framing = framings[env.flags & 3]
    limit = _BODY_LIMITS[(env.flags >> 2) & 3]
    stream = env.stream
    length = 0
    if framing is wire_http.BodyFraming.LENGTH:
        length, stream = int.from_bytes(stream[:2], "big"), stream[2:]
    return _differential(
        lambda pieces: _body_read(pieces, framing, length, limit),
        cut(stream, env.sizes),
        stream,
        (wire_http.InvalidResponse,),
        "HTTP body",
    )


# -- SMTP, POP3, IMAP4, FTP ----------------------------------------------------------


def _line_replies(
    make: Callable[[], Any], bound: int, what: str, declared: type[Exception]
) -> Callable[[bytes], object]:
    """
    The one-input function of a parser whose C{feed} returns the replies
    it completed (SMTP, FTP): whole = split, and at most C{bound} bytes
    retained beyond the piece just fed; C{declared} is its parse error.
    """

    def read(pieces: list[bytes]) -> tuple[object, ...]:
        parser = make()
        replies: list[object] = []
        for piece, audit in _fed(pieces):
            replies += parser.feed(piece)
            if audit:
                holds_at_most(parser, bound + len(piece), f"the {what} parser")
        return tuple(replies), parser.pending

    def one_input(data: bytes) -> object:
        env = envelope(data)
        return _differential(read, env.pieces(), env.stream, (declared,), f"{what} replies")

    return one_input


#: SMTP replies (RFC 5321 §4.2), multi-line included.
smtp_replies = _line_replies(
    wire_smtp.SmtpReplyParser,
    wire_smtp.MAX_SMTP_LINE_BYTES + wire_smtp.MAX_SMTP_REPLY_BYTES,
    "SMTP",
    wire_smtp.InvalidReply,
)


_POP3_BOUND = 2 * wire_pop3.MAX_POP3_REPLY_BYTES + wire_pop3.MAX_POP3_LINE_BYTES


def _pop3_read(pieces: list[bytes], pattern: int) -> tuple[object, ...]:
    parser = wire_pop3.Pop3ReplyParser()
    replies: list[object] = []
    for piece, audit in _fed(pieces):
        parser.feed(piece)
        # As the probe: take every complete response, saying for each
        # whether its command opens a body (the flags' pattern, in turn).
        while True:
            reply = parser.reply(multiline=bool(pattern >> (len(replies) % 4) & 1))
            if reply is None:
                break
            replies.append(reply)
        if audit:
            holds_at_most(parser, _POP3_BOUND + len(piece), "the POP3 parser")
    return tuple(replies), parser.pending


def pop3_replies(data: bytes) -> object:
    """
    POP3 responses (RFC 1939, CAPA of RFC 2449): flags bits 0-3 say, in
    turn, whether each response opens a multi-line body.
    """
    env = envelope(data)
    return _differential(
        lambda pieces: _pop3_read(pieces, env.flags),
        env.pieces(),
        env.stream,
        (wire_pop3.InvalidReply,),
        "POP3 replies",
    )


#: The password the IMAP4 target hides; a server may echo it (LOGIN).
IMAP_PASSWORD = 'pa"ss\\w0rd'
_IMAP_HIDDEN = (IMAP_PASSWORD.encode(), wire_imap.quoted(IMAP_PASSWORD)[1:-1])
_IMAP_BOUND = wire_imap.MAX_IMAP_LINE_BYTES + wire_imap.MAX_IMAP_RESPONSE_BYTES


def _no_secret(shown: str | bytes, hidden: tuple[bytes, ...], what: str) -> None:
    raw = shown.encode("utf-8", "surrogateescape") if isinstance(shown, str) else shown
    for secret in hidden:
        check(secret not in raw, f"the password shows in {what}: {raw[:200]!r}")


def _imap_read(pieces: list[bytes], hidden: tuple[bytes, ...]) -> tuple[object, ...]:
    parser = wire_imap.ImapResponseParser(hidden)
    responses: list[Any] = []
    try:
        for piece, audit in _fed(pieces):
            found = parser.feed(piece)
            for response in found:
                _no_secret(response.text, hidden, "a response's text")
            responses += found
            if audit:
                holds_at_most(
                    parser, _IMAP_BOUND + len(piece) + 2 * sum(map(len, hidden)), "the IMAP4 parser"
                )
    except wire_imap.InvalidImapResponse as e:
        _no_secret(e.received, hidden, "a refusal")
        raise
    return tuple(responses), parser.pending, parser.pending_completion


def imap_responses(data: bytes) -> object:
    """
    IMAP4 responses (RFC 9051 §7), literals included; with flag bit 0 off
    a LOGIN password is hidden and must never show in a response's text
    or a refusal (with it on, nothing is hidden: the parser's plain path).
    """
    env = envelope(data)
    hidden = () if env.flags & 1 else _IMAP_HIDDEN
    return _differential(
        lambda pieces: _imap_read(pieces, hidden),
        env.pieces(),
        env.stream,
        (wire_imap.InvalidImapResponse,),
        "IMAP4 responses",
    )


#: FTP control-connection replies (RFC 959 §4.2), multi-line included.
ftp_replies = _line_replies(
    wire_ftp.FtpReplyParser,
    wire_ftp.MAX_FTP_LINE_BYTES + wire_ftp.MAX_FTP_REPLY_BYTES,
    "FTP",
    wire_ftp.InvalidReply,
)


# -- AMP boxes and the control client ---------------------------------------------


def _boxes_read(pieces: list[bytes], max_box: int) -> tuple[object, ...]:
    reader = wire_ampbox.BoxReader(max_box)
    boxes: list[dict[bytes, bytes]] = []
    for piece in pieces:
        boxes += reader.feed(piece)
        check(reader.pending <= max_box, f"the box reader holds {reader.pending} bytes")
    return tuple(tuple(sorted(box.items())) for box in boxes), reader.pending


def _twisted_boxes(stream: bytes) -> list[dict[bytes, bytes]]:
    """What Twisted's own AMP parser makes of the stream (the reference)."""
    found: list[dict[bytes, bytes]] = []

    class Collector:
        def startReceivingBoxes(self, sender: object) -> None:
            pass

        def ampBoxReceived(self, box: dict[bytes, bytes]) -> None:
            found.append(dict(box))

        def stopReceivingBoxes(self, reason: object) -> None:
            pass

    protocol = amp.BinaryBoxProtocol(Collector())
    protocol.makeConnection(FakeTransport(protocol, isServer=False))
    protocol.dataReceived(stream)
    return found


def amp_boxes(data: bytes) -> object:
    """
    The stdlib AMP box reader (the control client's): flags 0 keep the
    default box bound, 1-15 make it flags x 64 bytes.  Each box read must
    encode back to itself, and a stream it reads whole must give the same
    boxes as Twisted's own parser.
    """
    env = envelope(data)
    max_box = env.flags * 64 if env.flags else wire_ampbox.DEFAULT_MAX_BOX_BYTES
    result = _differential(
        lambda pieces: _boxes_read(pieces, max_box),
        env.pieces(),
        env.stream,
        (wire_ampbox.MalformedBox,),
        "AMP boxes",
    )
    if isinstance(result, Refused):
        return result
    assert isinstance(result, tuple)
    boxes = [dict(items) for items in result[0]]
    with overhead():  # the harness's check, once per distinct box
        for items in set(result[0]):
            box = dict(items)
            again = wire_ampbox.BoxReader().feed(wire_ampbox.encode_box(box))
            _same([box], again, "an AMP box encoded and read again")
    if not env.flags:
        with overhead():
            reference = _twisted_boxes(env.stream)[: len(boxes)]
        _same(boxes, reference, "AMP boxes, ours against Twisted's")
    return result


class _FakeSocket:
    """A connected UNIX socket whose peer sends the given pieces, then closes."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = deque(pieces)
        self.sent = b""

    def __enter__(self) -> _FakeSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def settimeout(self, timeout: float | None) -> None:
        pass

    def connect(self, address: str) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def recv(self, size: int) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces.popleft()
        if len(piece) > size:
            piece, rest = piece[:size], piece[size:]
            self._pieces.appendleft(rest)
        return piece


class _FakeSocketModule:
    """Stands in for the C{socket} module the control client uses: no real socket."""

    AF_UNIX = 1
    SOCK_STREAM = 1
    SOCK_CLOEXEC = 0

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def socket(self, family: int, kind: int) -> _FakeSocket:
        return _FakeSocket(self._pieces)


@contextlib.contextmanager
def _peer_sends(pieces: list[bytes]) -> Any:
    real = control_client.socket
    control_client.socket = _FakeSocketModule(pieces)  # type: ignore[assignment]
    try:
        yield
    finally:
        control_client.socket = real


_CONTROL_DECLARED = (control_client.ControlError,)


def control_answer(data: bytes) -> object:
    """
    The stdlib control client reading a watch's answer: flags bits 0-1
    choose the request (stop, pause, continue, status); the stream is what
    the watch sends back, then it closes.
    """
    env = envelope(data)
    request = env.flags & 3
    path = "/nonexistent/ismon-fuzz.sock"  # never opened: the socket is a fake
    with _peer_sends(env.pieces()):
        if request == 0:
            check(control_client.stop(path) is None, "stop returned something")
            return None
        if request == 1:
            changed: object = control_client.pause(path, duration=60.0, reason="fuzz")
        elif request == 2:
            changed = control_client.resume(path)
        else:
            document = control_client.status(path)
            check(isinstance(document, dict), "status is not a dict")
            return None
    check(isinstance(changed, bool), f"pause/continue answered {changed!r}")
    return changed


# -- DNS answers and the TCP watch's reader ------------------------------------------

#: The ID of the dns target's queries: the seeds' answers carry it (the
#: fuzzer changes it like any byte, which must then be a wrong ID).
DNS_ID = 0x1092


def _ip4(text: str) -> tuple[object, ...]:
    return (ipaddress.IPv4Address(text),)


def _ip6(text: str) -> tuple[object, ...]:
    return (ipaddress.IPv6Address(text),)


#: The dns target's queries, the test zone's (tests/dns_server.py) first:
#: name, type, and the --expect values given with flag bit 1, each with the
#: fields a record must have to equal it, as the reference below reads a
#: record (names lower case without the final dot; MX and SRV values are
#: the record's last fields, SOA values its first ones).  The stream's first
#: byte picks one (mod 16); tests/fuzz/make_corpus.py names them by index.
_DNS_QUERIES: tuple[tuple[str, str, tuple[tuple[str, tuple[object, ...]], ...]], ...] = (
    ("www.ismon.test", "A", (("127.0.0.2", _ip4("127.0.0.2")), ("192.0.2.1", _ip4("192.0.2.1")))),
    ("www.ismon.test", "AAAA", (("0:0:0::1", _ip6("::1")), ("2001:db8::1", _ip6("2001:db8::1")))),
    (
        "ismon.test",
        "MX",
        (
            ("10 MAIL.ismon.test.", (10, b"mail.ismon.test")),
            ("mx2.ismon.test", (b"mx2.ismon.test",)),
        ),
    ),
    ("txt.ismon.test", "TXT", (("v=spf1 -all", (b"v=spf1 -all",)), ("V=SPF1", (b"V=SPF1",)))),
    (
        "ismon.test",
        "SOA",
        (
            (
                "ns1.ismon.test hostmaster.ismon.test 2024010101",
                (b"ns1.ismon.test", b"hostmaster.ismon.test", 2024010101),
            ),
            ("ns2.ismon.test", (b"ns2.ismon.test",)),
        ),
    ),
    (
        "_sip._tcp.ismon.test",
        "SRV",
        (
            ("5060 sip.ismon.test", (5060, b"sip.ismon.test")),
            ("0 5 5061 sip.ismon.test", (0, 5, 5061, b"sip.ismon.test")),
        ),
    ),
    ("alias.ismon.test", "CNAME", (("www.ismon.test", (b"www.ismon.test",)),)),
    ("ismon.test", "NS", (("ns1.ismon.test", (b"ns1.ismon.test",)),)),
    ("10.2.0.192.in-addr.arpa", "PTR", (("host.ismon.test", (b"host.ismon.test",)),)),
    ("alias.ismon.test", "A", (("127.0.0.1", _ip4("127.0.0.1")),)),  # through its CNAME
    ("nothere.ismon.test", "A", (("127.0.0.1", _ip4("127.0.0.1")),)),  # NXDOMAIN
    ("big.ismon.test", "TXT", (("a" * 200, (b"a" * 200,)),)),  # truncated over UDP
    ("www.refused.test", "A", (("127.0.0.1", _ip4("127.0.0.1")),)),  # REFUSED
    ("txt.ismon.test", "A", (("127.0.0.1", _ip4("127.0.0.1")),)),  # NODATA
    (".", "NS", (("a.root-servers.net", (b"a.root-servers.net",)),)),  # the root
    ("WWW.Ismon.TEST", "A", (("127.0.0.1", _ip4("127.0.0.1")),)),  # any case
)


@functools.cache
def _dns_query(index: int) -> tuple[Any, tuple[Any, ...]]:
    """The query and its parsed --expect values, built as the probe builds them."""
    name, type_name, values = _DNS_QUERIES[index]
    rtype = wire_dns.RecordType.parse(type_name)
    expect = tuple(wire_dns.parse_expected(rtype, text) for text, _ in values)
    return wire_dns.build_query(name, rtype, id=DNS_ID), expect


# Twisted's log events while a DNS answer is judged: there must be none
# (ismon.wire.dns: "never logs").  One observer for the process's life,
# idle outside L{_no_log}.
_LOGGED: list[dict[str, Any]] = []
_LOG_WATCH = [False, False]  # listening now, observer added


def _log_event(event: dict[str, Any]) -> None:
    if _LOG_WATCH[0]:
        _LOGGED.append(event)


@contextlib.contextmanager
def _no_log(what: str) -> Iterator[None]:
    if not _LOG_WATCH[1]:
        globalLogPublisher.addObserver(_log_event)
        _LOG_WATCH[1] = True
    _LOGGED.clear()
    _LOG_WATCH[0] = True
    try:
        yield
    finally:
        _LOG_WATCH[0] = False
    if _LOGGED:
        event = _LOGGED[0]
        raise HarnessFailure(f"{what} logged: {event.get('log_format')!r} {event!r:.300}")


def _key(name: bytes) -> bytes:
    return name.lower().rstrip(b".")


def _reference_fields(rtype: int, payload: Any) -> tuple[object, ...]:
    """A record's fields read off Twisted's record (the reference, not ismon's reading)."""
    if rtype == 1:
        return (ipaddress.IPv4Address(payload.address),)
    if rtype == 28:
        return (ipaddress.IPv6Address(payload.address),)
    if rtype == 15:
        return (payload.preference, _key(payload.name.name))
    if rtype == 16:
        return (b"".join(payload.data),)
    if rtype == 6:
        numbers = (payload.serial, payload.refresh, payload.retry, payload.expire, payload.minimum)
        return (
            _key(payload.mname.name),
            _key(payload.rname.name),
            *(n & 0xFFFFFFFF for n in numbers),
        )
    if rtype == 33:
        return (payload.priority, payload.weight, payload.port, _key(payload.target.name))
    return (_key(payload.name.name),)


def _dns_really_answers(query: Any, payload: bytes, values: tuple[Any, ...]) -> None:
    """
    An answer judged OK really is one, read without ismon: the header's
    bytes (our ID, QR, QUERY, no TC, NOERROR, one question), then Twisted's
    own decoder for the question and the records: one of the asked type,
    class IN, owned by the asked name or a name its CNAMEs lead to, and
    with --expect one equal to an expected value.
    """
    check(len(payload) >= 12, "an answer shorter than a header passed")
    ident, flags, codes, questions = struct.unpack_from("!HBBH", payload)
    check(ident == query.id, f"an answer with ID {ident} passed, ours is {query.id}")
    check(flags & 0x80, "an answer without the QR bit passed")
    check(not flags & 0x78, f"an answer with opcode {flags >> 3 & 15} passed")
    check(not flags & 0x02, "a truncated (TC) answer passed")
    check(not codes & 0x0F, f"an answer with RCODE {codes & 15} passed")
    check(questions == 1, f"an answer with {questions} questions passed")
    with overhead():
        dns = wire_dns._names()
        asked = int(query.type)

        class Reference(dns.Message):  # type: ignore[misc,name-defined]
            maxCompressionPointers = wire_dns.MAX_DECODE_STEPS

            def lookupRecordType(self, type: int) -> Any:
                if type in (asked, 5):
                    return dns.Message.lookupRecordType(self, type)
                return dns.UnknownRecord

        message = Reference()
        message.fromStr(payload)
    question = message.queries[0]
    check(
        (_key(question.name.name), question.type, question.cls) == (_key(query.name), asked, 1),
        f"an answer to another question passed: {question!r}",
    )
    owners = {_key(query.name)}
    if asked != 5:
        cnames = [
            (_key(rr.name.name), _key(rr.payload.name.name))
            for rr in message.answers
            if rr.type == 5 and rr.cls == 1
        ]
        grew = True
        while grew:
            grew = False
            for owner, target in cnames:
                if owner in owners and target not in owners:
                    owners.add(target)
                    grew = True
    records = [
        _reference_fields(asked, rr.payload)
        for rr in message.answers
        if rr.type == asked and rr.cls == 1 and _key(rr.name.name) in owners
    ]
    check(records, "an answer without a record of the asked type passed")
    if values:
        suffix = asked != 6
        check(
            any(
                (record[-len(fields) :] if suffix else record[: len(fields)]) == fields
                for record in records
                for fields in values
            ),
            f"an answer without an expected value passed: {records!r:.300}",
        )


def _dns_judged(
    query: Any, payload: bytes, expect: tuple[Any, ...], values: tuple[Any, ...]
) -> Any:
    """judge() as the probe calls it, then what it promises of its verdict."""
    with _no_log("judging a DNS answer"):
        verdict = wire_dns.judge(query, payload, expect)
    outcome = verdict.outcome
    check(isinstance(outcome, wire_dns.Outcome), repr(verdict))
    check(
        verdict.reason and verdict.reason.isprintable(),
        f"a reason not one printable line: {verdict.reason!r:.300}",
    )
    check(
        len(verdict.text) <= wire_dns.TEXT_LIMIT,
        f"a verdict's text of {len(verdict.text)} characters",
    )
    check(verdict.text.isprintable(), f"a verdict's text not printable: {verdict.text!r:.300}")
    check(all(map(str.isprintable, verdict.records)), "a record shown not printable")
    check(
        verdict.received == payload[: wire_dns.RECEIVED_LIMIT], "the payload kept is not its start"
    )
    # decode_message, the decoder judge() uses, raises MalformedMessage and
    # nothing else; a payload it refuses is judged so, and only such a one.
    # (The harness's check: its time is not the input's.)
    try:
        with overhead(), _no_log("decoding a DNS message"):
            wire_dns.decode_message(payload)
        readable = True
    except wire_dns.MalformedMessage as e:
        check(isinstance(e.reason, str) and e.reason.isprintable(), f"a refusal of {e.reason!r}")
        readable = False
    unreadable = {wire_dns.Outcome.MALFORMED, wire_dns.Outcome.TRUNCATED}
    check(readable or outcome in unreadable, f"an unreadable message judged {outcome}")
    check(
        not readable or outcome is not wire_dns.Outcome.MALFORMED,
        "a readable message judged malformed",
    )
    check(
        (verdict.rcode is None) == (not readable), f"RCODE {verdict.rcode} of a verdict {outcome}"
    )
    if verdict.ok:
        _dns_really_answers(query, payload, values)
    return verdict


def _dns_stream_read(
    pieces: list[bytes], query: Any, expect: tuple[Any, ...], values: tuple[Any, ...]
) -> tuple[object, ...]:
    """As the probe over TCP: feed what arrives; judge the first whole message."""
    reader = wire_dns.DnsStreamReader()
    for piece, audit in _fed(pieces):
        message = reader.feed(piece)
        if audit:
            holds_at_most(reader, wire_dns.MAX_MESSAGE_BYTES + 2, "the DNS stream reader")
        if message is not None:
            check(len(message) <= wire_dns.MAX_MESSAGE_BYTES, "a message over 65535 bytes")
            return ("answer", _dns_judged(query, message, expect, values))
    # The server closed the connection before a whole message.
    return ("closed", reader.pending, reader.end())


def dns_answer(data: bytes) -> object:
    """
    A DNS answer as the probe reads it: flag bit 0 over TCP (the stream is
    length-prefixed messages, fed whole and split: the same verdict), else
    the stream is one UDP datagram; bit 1 with the query's --expect values.
    The stream's first byte picks the query (L{_DNS_QUERIES}), the rest is
    what the server sends.  judge() and the stream reader raise nothing:
    a message that cannot be read is a verdict (MALFORMED).  An answer that
    passes must really be one (L{_dns_really_answers}); Twisted may not log.
    """
    env = envelope(data)
    if not env.stream:
        return None
    query, expect = _dns_query(env.stream[0] % len(_DNS_QUERIES))
    values = tuple(fields for _, fields in _DNS_QUERIES[env.stream[0] % len(_DNS_QUERIES)][2])
    if not env.flags & 2:
        expect, values = (), ()
    stream = env.stream[1:]
    if env.flags & 1:
        return _differential(
            lambda pieces: _dns_stream_read(pieces, query, expect, values),
            cut(stream, env.sizes),
            stream,
            (),
            "DNS over TCP",
        )
    # A datagram is one read: the largest is 65535 bytes (the socket's recv).
    return _dns_judged(query, stream[: wire_dns.MAX_MESSAGE_BYTES], expect, values)


#: The tcp target's --expect regexes (flag bits 0-2; 7: the regex is the
#: stream up to its first NUL): the documented redis check first.
_TCP_PATTERNS = (
    r"\+PONG",
    r"^\+PONG\r\n",
    r"(?m)^\+PONG\r?$",
    r"redis_version:\d+\.\d+\.\d+",
    r"(?i)^220[ -][^\r\n]*esmtp",
    r"^SSH-2\.0-[^\r\n]+\r?\n",
    r"\bOK\b",
)


@functools.cache
def _tcp_pattern(index: int) -> Any:
    return wire_tcp.compile_expect(_TCP_PATTERNS[index])


def _expect_read(pieces: list[bytes], pattern: Any, closes: bool) -> str:
    """
    As the probe (ismon.probes.tcp): feed what arrives, never more than the
    bound and one byte; at a clean close, end().  The verdict's outcome, or
    "undecided" (a reset or the deadline).
    """
    matcher = wire_tcp.ExpectMatcher(pattern)
    bound = matcher.limit + 1
    for piece, audit in _fed(pieces):
        room = bound - matcher.received
        verdict = matcher.feed(piece[: max(room, 0)])
        if audit:
            holds_at_most(matcher, bound, "the --expect matcher")
        if verdict is not None:
            break
    else:
        verdict = matcher.end() if closes else None
    if verdict is None:
        return "undecided"
    check(verdict.reason.isprintable(), f"a reason not one printable line: {verdict.reason!r:.300}")
    check(verdict.received <= matcher.limit, f"a verdict after {verdict.received} bytes")
    return verdict.outcome.value


def tcp_expect(data: bytes) -> object:
    """
    The TCP watch's --expect reader: RE2 on the bytes the server sends,
    at most 64 KiB.  Flag bits 0-2 the regex (L{_TCP_PATTERNS}; 7: the
    stream up to its first NUL is the regex, as a command line gives it:
    a refused one is the declared TcpInputError); bit 3 the server closes
    cleanly at the end (else a reset: no end()).  Whole = split; the
    outcome (match, the bound reached, closed without one) is that of one
    RE2 search of the first 64 KiB (and the byte after, as context).
    """
    env = envelope(data)
    stream = env.stream
    choice = env.flags & 7
    closes = bool(env.flags & 8)
    if choice == 7:
        text, _, stream = stream.partition(b"\x00")
        try:
            pattern = wire_tcp.compile_expect(os.fsdecode(text))
        except wire_tcp.TcpInputError as e:
            check(str(e).isprintable(), f"a refusal not one printable line: {str(e)!r:.300}")
            raise
    else:
        pattern = _tcp_pattern(choice)
    outcome = _differential(
        lambda pieces: _expect_read(pieces, pattern, closes),
        cut(stream, env.sizes),
        stream,
        (),
        "TCP --expect",
    )
    limit = wire_tcp.MAX_EXPECT_BYTES
    with overhead():
        found = pattern.regex.search(stream[: limit + 1], 0, min(len(stream), limit)) is not None
    matched = outcome == wire_tcp.ExpectOutcome.MATCHED.value
    if len(stream) > limit or closes:
        check(matched == found, f"the reader says {outcome}, one search says found={found}")
    else:
        check(found or not matched, "a match the end of the stream does not hold")
    return outcome


_SEND_ESCAPE = re.compile(r"\\(.)", re.S)
_SEND_VALID = re.compile(r"(?:[^\\]|\\[rn\\])*", re.S)


def tcp_send(data: bytes) -> object:
    """
    --send TEXT: the input (after the envelope byte) is the argument's
    bytes, decoded as Python decodes argv.  Declared: TcpInputError, one
    printable line.  What it sends is what a plain re.sub makes of the
    escapes, and the text escaped again sends the same bytes.  No flood:
    the 64 KiB bound is one length check (tests/test_wire_tcp.py has it),
    and 66 KiB walked a character at a time, instrumented, took the
    fuzzer down to a few inputs a second.
    """
    env = envelope(data, flood=False)
    text = os.fsdecode(env.stream)
    try:
        payload = wire_tcp.unescape_send(text)
    except wire_tcp.TcpInputError as e:
        check(str(e).isprintable(), f"a refusal not one printable line: {str(e)!r:.300}")
        raise
    check(_SEND_VALID.fullmatch(text), f"{text!r:.300} was taken")
    with overhead():
        escapes = {"r": "\r", "n": "\n", "\\": "\\"}
        reference = _SEND_ESCAPE.sub(lambda m: escapes[m[1]], text).encode(
            "utf-8", "surrogateescape"
        )
        again = os.fsdecode(payload).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    _same(payload, reference, "--send against re.sub")
    check(1 <= len(payload) <= wire_tcp.MAX_SEND_BYTES, f"{len(payload)} bytes to send")
    _same(wire_tcp.unescape_send(again), payload, "--send escaped again")
    return payload


# -- the status document and the last-exit record ------------------------------------


def _metrics_valid(text: str, openmetrics: bool) -> None:
    """The metrics text parses as what it claims to be (prometheus_client's parsers)."""
    utf8_safe(text, "the metrics text")
    parse = parse_openmetrics if openmetrics else parse_classic
    if parse is None:
        return
    try:
        with overhead():
            for _family in parse(text):
                pass
    except Exception as e:
        raise HarnessFailure(f"the metrics text does not parse ({e}):\n{text[:2000]}") from None


def _render_all(snapshot: Any) -> None:
    for openmetrics in (False, True):
        _metrics_valid(metrics_render.render([snapshot], openmetrics=openmetrics), openmetrics)


def status_document(data: bytes) -> object:
    """
    A watch's status document (JSON) as `ismon status ID`, `ismon pause`
    and `ismon metrics` read it: through the control client, then
    formatted for people and rendered as metrics, which must never raise
    on a hostile document and must print.  The stream is the JSON text;
    the harness frames it as the watch's answer box.
    """
    env = envelope(data)
    box = wire_ampbox.encode_box({b"_answer": b"1", b"status": env.stream[:0xFFFF]})
    with _peer_sends(cut(box, env.sizes)):
        document = control_client.status("/nonexistent/ismon-fuzz.sock")
    utf8_safe(status_text.format_status(document), "`ismon status ID`")
    utf8_safe(
        control_request.pause_detail(document.get("paused_until"), document.get("pause_reason")),
        "`ismon pause` (message 100)",
    )
    json.dumps(document)  # `ismon status ID --json`
    _render_all(metrics_render.WatchSnapshot("fuzz", document, None))
    return None


def last_record(data: bytes) -> object:
    """
    A watch's last-exit record, C{ID.last} (README "Records"): read as
    `ismon status` reads it, then shown and rendered as metrics, which
    must never raise.  The whole input is the file's content.
    """
    path = scratch_dir() / "fuzz.last"
    with unguarded(), overhead():
        _write(path, data, 0o600)
    record = state_record.read_record(path)
    if record is None:
        raise HarnessFailure("the record that is there was read as none")
    ended = {"last_exit": record}
    utf8_safe(status_text._format_ended(ended), "`ismon status` of an ended watch")
    json.dumps({"watch_id": "fuzz", "state": "not running", **ended})
    _render_all(metrics_render.WatchSnapshot("fuzz", None, record))
    return None


# -- command lines ---------------------------------------------------------------------

_PROGRAMS = (
    "ismon",
    "clp_httpmon",
    "clp_smtpmon",
    "clp_pop3mon",
    "clp_imapmon",
    "clp_ftpmon",
    "clp_othermon",
    "ismon-http",
    # Past the first eight: reached by flags 8 and 9 (and 0-5 again above).
    "clp_dnsmon",
    "clp_tcpmon",
)
#: The watch's own options parser (the long way) of each 2004 command.
_OPTIONS_OF_COMMAND = {cls.command: cls for cls in cmdline_options.OPTIONS.values()}


def control_command_line(data: bytes) -> object:
    """
    The control-command recogniser (the fast way of ismon.entry): it may
    only answer a request or None.  A request it takes for a clp_*mon
    command must be the one the watch's own options parser (the long way)
    makes of the same line.  The flags (0-15) modulo the number of
    programs: the program; the stream is the arguments, NUL-separated.
    """
    env = envelope(data, flood=False)
    program = _PROGRAMS[env.flags % len(_PROGRAMS)]
    argv = argv_of(env.stream)
    request = recognising.recognise(program, argv)
    check(request is None or isinstance(request, control_request.ControlRequest), repr(request))
    protocol = _OPTIONS_OF_COMMAND.get(program)
    if request is not None and protocol is not None:
        options = protocol()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                options.parseOptions(list(argv))
        except BaseException as e:
            raise HarnessFailure(f"recognised {request!r}, but the long way refused: {e!r}") from e
        _same(request, options.control, "the fast way against the long way")
    return request


def _scratch_files() -> dict[str, Path]:
    """The files the confined options may read, made once: a CA bundle and auth files."""
    folder = scratch_dir()
    files = {
        "ca-good": folder / "ca-good.pem",
        "ca-none": folder / "ca-none.pem",
        "ca-missing": folder / "ca-missing.pem",
        "auth-good": folder / "auth-good",
        "auth-open": folder / "auth-open",
        "auth-missing": folder / "auth-missing",
    }
    if not files["ca-good"].exists():
        with unguarded():
            seeds = sorted((CORPUS / "ca_file").glob("*real*"))
            pem = seeds[0].read_bytes() if seeds else b""
            _write(files["ca-good"], pem, 0o600)
            _write(files["ca-none"], b"no certificate here\n", 0o600)
            _write(files["auth-good"], b"watcher:pw\n", 0o600)
            _write(files["auth-open"], b"watcher:pw\n", 0o644)
    return files


def _write(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
    finally:
        os.close(fd)


def _confine(value: str, kind: str) -> str:
    """Any path given maps to one of this process's scratch files, never the path itself."""
    choices = sorted(name for name in _scratch_files() if name.startswith(kind))
    pick = choices[zlib.crc32(value.encode("utf-8", "surrogateescape")) % len(choices)]
    return str(_scratch_files()[pick])


_CONFINED: dict[str, type[Any]] = {}


def _confined_options(name: str) -> type[Any]:
    """The protocol's options class, with --ca-file and --auth-file kept in the scratch folder."""
    if name not in _CONFINED:
        base = cmdline_options.OPTIONS[name]

        class Confined(base):  # type: ignore[misc,valid-type]
            def postOptions(self) -> None:
                for option, kind in (("ca-file", "ca-"), ("auth-file", "auth-")):
                    if option in self and self[option] is not None:
                        self[option] = _confine(self[option], kind)
                super().postOptions()

        Confined.__name__ = f"Confined{base.__name__}"
        _CONFINED[name] = Confined
    return _CONFINED[name]


def watch_command_line(data: bytes) -> object:
    """
    A watch's command line, parsed as a start (or --check) parses it,
    for the protocol the flags (0-15) name modulo the number of protocols
    (seven: http, smtp, pop3, imap, ftp, dns, tcp): a refusal is a
    usage.UsageError (ParameterError); --help and --version end with
    SystemExit(0).  Nothing starts, no file but the scratch folder's is
    read: any --ca-file or --auth-file given names one of those.
    """
    env = envelope(data, flood=False)
    names = list(cmdline_options.OPTIONS)
    options = _confined_options(names[env.flags % len(names)])()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            options.parseOptions(argv_of(env.stream))
    except SystemExit as e:
        check(e.code in (0, None), f"the options parser exited {e.code!r}")
        return None
    except cmdline_options.ParameterError as e:
        check(isinstance(e.detail, str) and e.detail, "a refusal without its reason")
        raise
    parsed = [options.config, options.control]
    check(
        sum(p is not None for p in parsed) == 1,
        f"a command line must give a watch or a control request, not {parsed!r}",
    )
    return None


# -- the files a watch is given -------------------------------------------------------


def auth_file(data: bytes) -> object:
    """
    The --auth-file reader: the input is the file's content, flags bits
    0-1 its mode (0600, 0400, 0640, 0600).  A refusal never quotes the
    content, and what it accepts is one printable user and password.
    """
    env_flags = data[0] >> 4 if data else 0
    mode = (0o600, 0o400, 0o640, 0o600)[env_flags & 3]
    content = data[1:]
    path = scratch_dir() / "fuzz.auth"
    with unguarded(), overhead():
        _write(path, content, mode)
    try:
        credentials = cmdline_auth_file.read_auth_file(str(path))
    except cmdline_auth_file.AuthFileError as e:
        _no_content(str(e), content)
        raise
    check(mode in (0o600, 0o400), f"an auth file of mode {mode:o} was accepted")
    for text in (credentials.user, credentials.password):
        check(text and text.isprintable(), "a user or password that is not printable")
    check(":" not in credentials.user, "the user holds a colon")
    for shown in (repr(credentials), str(credentials)):
        _no_content(shown, credentials.password.encode("utf-8"))
    return None


def _no_content(shown: str, content: bytes) -> None:
    """No secret of the file shows: no line of it, no password of 4 or more characters."""
    text = content.decode("utf-8", "replace")
    for line in text.splitlines():
        _, colon, password = line.partition(":")
        for secret in (line, password if colon else ""):
            if len(secret.strip()) >= 4:
                check(secret not in shown, f"a refusal shows the file's content: {shown!r}")


def ca_file(data: bytes) -> object:
    """
    The --ca-file reader: the input is the PEM bundle.  Declared: no
    certificate (ValueError), one OpenSSL cannot parse (OpenSSL's
    crypto.Error).  The command line refuses every such file with a
    ParameterError, never a traceback.
    """
    path = scratch_dir() / "fuzz-ca.pem"
    with unguarded(), overhead():
        _write(path, data, 0o600)
    options = cmdline_options.OPTIONS["http"]()
    refusal = ""
    try:
        options.parseOptions(["fuzz", "--tls", "--ca-file", str(path), "--check"])
    except cmdline_options.ParameterError as e:
        refusal = e.detail
        check(str(path) in refusal, f"a --ca-file refusal that does not name it: {refusal}")
    certificates = probes_ca_file.read_ca_file(str(path))
    check(not refusal, f"--check refused a bundle the reader took: {refusal}")
    check(len(certificates) >= 1, "no certificates and no error")
    return None


# -- the table ----------------------------------------------------------------------------

_TABLE = (
    Target(
        "http",
        http_answer,
        (wire_http.InvalidResponse,),
        "HTTP status line, headers, body",
        ci_runs=6000,
    ),
    Target(
        "http_body",
        http_body,
        (wire_http.InvalidResponse,),
        "HTTP body reader, chunked above all",
        ci_runs=2000,
    ),
    Target("smtp", smtp_replies, (wire_smtp.InvalidReply,), "SMTP replies", ci_runs=1200),
    Target("pop3", pop3_replies, (wire_pop3.InvalidReply,), "POP3 responses", ci_runs=800),
    Target(
        "imap", imap_responses, (wire_imap.InvalidImapResponse,), "IMAP4 responses", ci_runs=2000
    ),
    Target("ftp", ftp_replies, (wire_ftp.InvalidReply,), "FTP replies", ci_runs=2400),
    Target("ampbox", amp_boxes, (wire_ampbox.MalformedBox,), "AMP box reader", ci_runs=6000),
    Target(
        "control_answer",
        control_answer,
        _CONTROL_DECLARED,
        "control client's answers",
        ci_runs=1600,
    ),
    Target(
        "status_document",
        status_document,
        _CONTROL_DECLARED,
        "status JSON -> ismon status, pause, metrics",
        max_len=8192,
        ci_runs=1500,
    ),
    Target(
        "last_record",
        last_record,
        (state_record.RecordUnreadable,),
        ".last record -> ismon status, metrics",
        max_len=8192,
        ci_runs=20000,
    ),
    Target(
        "control_command_line",
        control_command_line,
        (),
        "control-command recogniser",
        ci_runs=30000,
    ),
    Target(
        "watch_command_line",
        watch_command_line,
        (cmdline_options.usage.UsageError,),
        "a watch's command line, every protocol",
        ci_runs=20000,
    ),
    Target(
        "auth_file",
        auth_file,
        (cmdline_auth_file.AuthFileError,),
        "--auth-file reader",
        ci_runs=20000,
    ),
    Target("ca_file", ca_file, (ValueError, crypto.Error), "--ca-file reader", ci_runs=12000),
    Target("dns", dns_answer, (), "DNS answers, UDP and TCP, judged", ci_runs=3500),
    Target("tcp", tcp_expect, (wire_tcp.TcpInputError,), "TCP --expect reader", ci_runs=12000),
    Target("tcp_send", tcp_send, (wire_tcp.TcpInputError,), "TCP --send unescaping", ci_runs=40000),
)

#: Every target, by name, in the table's order.
TARGETS: dict[str, Target] = {target.name: target for target in _TABLE}
