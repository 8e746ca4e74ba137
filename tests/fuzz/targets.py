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
import io
import json
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from OpenSSL import crypto
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
from ismon.wire import ftp as wire_ftp
from ismon.wire import http as wire_http
from ismon.wire import imap as wire_imap
from ismon.wire import pop3 as wire_pop3
from ismon.wire import smtp as wire_smtp

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
)
#: The watch's own options parser (the long way) of each 2004 command.
_OPTIONS_OF_COMMAND = {cls.command: cls for cls in cmdline_options.OPTIONS.values()}


def control_command_line(data: bytes) -> object:
    """
    The control-command recogniser (the fast way of ismon.entry): it may
    only answer a request or None.  A request it takes for a clp_*mon
    command must be the one the watch's own options parser (the long way)
    makes of the same line.  Flags bits 0-2: the program; the stream is
    the arguments, NUL-separated.
    """
    env = envelope(data, flood=False)
    program = _PROGRAMS[env.flags & 7]
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
    for the protocol in flags bits 0-2 (mod 5): a refusal is a
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
)

#: Every target, by name, in the table's order.
TARGETS: dict[str, Target] = {target.name: target for target in _TABLE}
