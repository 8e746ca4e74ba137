"""
The HTTP checks of issue 12 (README "Running a watch"): --method GET with a
body read up to --max-body under the one deadline, --expect-header,
--expect-body, --host-header and --auth-file.

The body reader is tested as a pure parser (seeded, every split of the
bytes); the options as the parser refuses them; the probe against a real
nginx configured for each case (tests/servers.py), and a whole watch
process is scanned for the password it was given.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.protocol import Factory, Protocol

from ismon.cmdline.options import HttpOptions, ParameterError
from ismon.core.catalogue import MessageId, render
from ismon.core.protocols import label_of
from ismon.core.requests import BasicCredentials, Expectation, HeaderExpectation, HttpRequest
from ismon.probes.http import HttpProbe, build_request
from ismon.wire.http import (
    BodyFraming,
    HttpBodyReader,
    HttpHeadParser,
    InvalidResponse,
    body_framing,
)
from tests.servers import (
    NGINX_AUTH_PASSWORD,
    NGINX_AUTH_USER,
    NGINX_BIG_RATE,
    NGINX_PAGE_MARKER,
    Nginx,
    Rsyslog,
)
from tests.test_integration_probes import _probe, inline_callbacks, reactor
from tests.watchproc import LOOPBACK, Processes, command

# --------------------------------------------------------------------------
# The body reader (pure)


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out = b""
    rest = body
    for size in sizes:
        if not rest:
            break
        part, rest = rest[:size], rest[size:]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    if rest:
        out += b"%X\r\n" % len(rest) + rest + b"\r\n"
    return out + b"0\r\nTrailer: x\r\n\r\n"


def _feed_in_pieces(reader: HttpBodyReader, data: bytes, cuts: list[int]) -> bool:
    done = False
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if reader.feed(data[start:cut]):
            done = True
            break
        start = cut
    return done


@given(
    body=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), max_size=8),
    cuts=st.lists(st.integers(0, 6000), max_size=12),
)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_chunked_body_any_split(body: bytes, sizes: list[int], cuts: list[int]) -> None:
    """A chunked body is decoded the same however the bytes arrive."""
    reader = HttpBodyReader(BodyFraming.CHUNKED, 0, 64 * 1024)
    assert _feed_in_pieces(reader, _chunked(body, sizes), cuts)
    assert reader.body == body and not reader.truncated


@given(
    body=st.binary(max_size=3000),
    limit=st.integers(1, 4000),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    framing=st.sampled_from([BodyFraming.LENGTH, BodyFraming.CHUNKED, BodyFraming.CLOSE]),
)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_body_bounded(body: bytes, limit: int, cuts: list[int], framing: BodyFraming) -> None:
    """At most C{limit} bytes are kept, and a longer body ends the read at the bound."""
    data = _chunked(body, [500]) if framing is BodyFraming.CHUNKED else body
    reader = HttpBodyReader(framing, len(body), limit)
    done = _feed_in_pieces(reader, data, cuts)
    if framing is BodyFraming.CLOSE and len(body) <= limit:
        assert not done and reader.end()
    else:
        assert done
    assert reader.body == body[:limit]
    assert reader.truncated == (len(body) > limit)


def test_length_body_ignores_what_follows() -> None:
    reader = HttpBodyReader(BodyFraming.LENGTH, 3, 100)
    assert reader.feed(b"abcdef")
    assert reader.body == b"abc"


def test_length_body_cut_short_is_incomplete() -> None:
    reader = HttpBodyReader(BodyFraming.LENGTH, 10, 100)
    assert not reader.feed(b"abc")
    assert not reader.end()


@pytest.mark.parametrize(
    "data",
    [b"zz\r\n", b"5\r\nabcdefgh\r\n", b"1" * 2000, b"-1\r\n", b"\r\n"],
)
def test_malformed_chunks_refused(data: bytes) -> None:
    reader = HttpBodyReader(BodyFraming.CHUNKED, 0, 100)
    with pytest.raises(InvalidResponse):
        reader.feed(data)


def _head(raw: bytes) -> HttpHeadParser:
    parser = HttpHeadParser()
    assert parser.feed(raw) is not None
    return parser


@pytest.mark.parametrize(
    ("method", "raw", "framing", "length"),
    [
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", BodyFraming.NONE, 0),
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", BodyFraming.LENGTH, 9),
        ("GET", b"HTTP/1.1 200 OK\r\ncontent-length: 9, 9\r\n\r\n", BodyFraming.LENGTH, 9),
        ("GET", b"HTTP/1.1 204 No\r\nContent-Length: 9\r\n\r\n", BodyFraming.NONE, 0),
        ("GET", b"HTTP/1.1 304 Same\r\n\r\n", BodyFraming.NONE, 0),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: 9\r\n\r\n",
            BodyFraming.CHUNKED,
            0,
        ),
        ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", BodyFraming.CLOSE, 0),
        ("GET", b"HTTP/1.0 200 OK\r\n\r\n", BodyFraming.CLOSE, 0),
    ],
)
def test_framing(method: str, raw: bytes, framing: BodyFraming, length: int) -> None:
    parser = _head(raw)
    assert parser.status is not None
    assert body_framing(method, parser.status, parser) == (framing, length)


@pytest.mark.parametrize("value", [b"9, 10", b"-1", b"0x10", b"nine"])
def test_bad_content_length_refused(value: bytes) -> None:
    parser = _head(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")
    assert parser.status is not None
    with pytest.raises(InvalidResponse):
        body_framing("GET", parser.status, parser)


def test_head_parser_keeps_headers_and_rest() -> None:
    parser = _head(b"HTTP/1.1 200 OK\r\nX-A: one \r\nx-a:two\r\n\r\nbody")
    assert parser.header_values("X-A") == ["one", "two"]
    assert parser.rest == b"body"


def test_interim_answer_headers_forgotten() -> None:
    parser = _head(b"HTTP/1.1 103 Early\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nX: 1\r\n\r\n")
    assert parser.headers == [("x", "1")]


# --------------------------------------------------------------------------
# Options


def _parse(*args: str) -> HttpRequest:
    options = HttpOptions()
    options.parseOptions(["w1", *args])
    assert options.config is not None
    request = options.config.request
    assert isinstance(request, HttpRequest)
    return request


def _refusal(*args: str) -> str:
    with pytest.raises(ParameterError) as caught:
        _parse(*args)
    assert caught.value.message is MessageId.INVALID_PARAMETER
    return caught.value.detail


def test_defaults_unchanged() -> None:
    request = _parse()
    assert request.method == "HEAD" and request.max_body == 64 * 1024
    assert request.expect_headers == () and request.expect_body is None
    assert request.host_header is None and request.credentials is None
    assert build_request(request).startswith(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n")


def test_options_parsed() -> None:
    request = _parse(
        *("--method", "GET", "--max-body", "100", "--expect-body", "ok$"),
        *("--expect-header", "X-A: ^1", "--expect-header", "Server:nginx"),
        *("--host-header", "www.example.com:8080"),
    )
    assert request.method == "GET" and request.max_body == 100
    assert request.expect_body is not None and request.expect_body.text == "ok$"
    assert [str(h) for h in request.expect_headers] == ["X-A: ^1", "Server: nginx"]
    sent = build_request(request)
    assert sent.startswith(b"GET / HTTP/1.1\r\nHost: www.example.com:8080\r\n")
    assert request.target() == "GET http://localhost:80/ HTTP/1.1"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--method", "POST"), '--method must be HEAD or GET, not "POST"'),
        (("--method", "get"), "--method must be HEAD or GET"),
        (
            ("--method", "GET", "--max-body", "0"),
            "--max-body must be a whole number from 1 to 16777216",
        ),
        # HEAD reads no body: a bound on it would do nothing.
        (("--max-body", "100"), "--max-body needs --method GET"),
        (("--expect-body", "x"), "--expect-body needs --method GET"),
        (
            ("--method", "GET", "--expect-body", "(x"),
            '--expect-body "(x" is not a regular expression: missing ), unterminated subpattern',
        ),
        (("--expect-header", "X-A: [a"), '--expect-header "X-A: [a" is not a regular expression'),
        (("--expect-header", "no colon"), "--expect-header must be 'Name: REGEX'"),
        (("--expect-header", "Bad Name: x"), "--expect-header must be 'Name: REGEX'"),
        (("--host-header", "a b"), "--host-header must be a host name or address"),
        (("--host-header", "x\r\nEvil: 1"), "--host-header must be a host name or address"),
    ],
)
def test_bad_options_refused(args: tuple[str, ...], words: str) -> None:
    assert words in _refusal(*args)


def _auth_file(tmp_path: Path, mode: int, text: str = "user:pass-9d1\n") -> Path:
    path = tmp_path / "auth"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_auth_file_read(tmp_path: Path, mode: int) -> None:
    request = _parse("--auth-file", str(_auth_file(tmp_path, mode)))
    assert request.credentials == BasicCredentials("user", "pass-9d1")
    token = base64.b64encode(b"user:pass-9d1")
    assert b"\r\nAuthorization: Basic " + token + b"\r\n" in build_request(request)
    # Neither the request nor its credentials show the password.
    for shown in (repr(request), str(request), repr(request.credentials), str(request.credentials)):
        assert "pass-9d1" not in shown and "user" not in shown.replace("user=", "")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o700, 0o660])
def test_auth_file_mode_refused(tmp_path: Path, mode: int) -> None:
    path = _auth_file(tmp_path, mode)
    assert _refusal("--auth-file", str(path)) == (
        f'--auth-file "{path}" has mode {mode:04o}: use 0600 or 0400'
    )


@pytest.mark.parametrize("text", ["", "nocolon\n", ":nouser\n", "user:\n"])
def test_auth_file_content_refused_without_quoting_it(tmp_path: Path, text: str) -> None:
    detail = _refusal("--auth-file", str(_auth_file(tmp_path, 0o600, text)))
    assert detail.endswith("must hold one line user:password")


def test_auth_file_with_crlf_read(tmp_path: Path) -> None:
    request = _parse("--auth-file", str(_auth_file(tmp_path, 0o600, "user:pass-9d1\r\n")))
    assert request.credentials == BasicCredentials("user", "pass-9d1")


@pytest.mark.parametrize("text", ["user:pa\rss\n", "user:pa\x00ss\n", "us\rer:pass\n"])
def test_auth_file_control_characters_refused(tmp_path: Path, text: str) -> None:
    """A CR inside the line is refused, not taken as a line end that cuts the password."""
    detail = _refusal("--auth-file", str(_auth_file(tmp_path, 0o600, text)))
    assert detail.endswith("must hold printable user:password")


def test_auth_file_not_utf8_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth"
    path.write_bytes(b"bob:p\xe4ss\n")
    path.chmod(0o600)
    assert _refusal("--auth-file", str(path)).endswith("must be UTF-8 text")


def test_auth_file_missing(tmp_path: Path) -> None:
    assert "cannot be read: No such file or directory" in _refusal(
        "--auth-file", str(tmp_path / "none")
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_auth_file_of_another_user_refused(tmp_path: Path) -> None:
    path = _auth_file(tmp_path, 0o600)
    os.chown(path, 4242, -1)
    assert "belongs to UID 4242" in _refusal("--auth-file", str(path))


def test_failure_lines_fit() -> None:
    """Messages 84 and 85 with the longest details stay one 400-byte line."""
    headers = [("x-" + "a" * 300, "v" * 5000)]
    from ismon.wire.http import judge_http_body, judge_http_headers

    expectation = HeaderExpectation("X-" + "A" * 300, Expectation.compile("^" + "z" * 500))
    detail = judge_http_headers(headers, [expectation])
    assert detail is not None
    body_detail = judge_http_body(b"x" * 70000, True, Expectation.compile("y" * 500))
    assert body_detail is not None
    for message, text in (
        (MessageId.HEADER_MISSING, detail),
        (MessageId.BODY_MISSING, body_detail),
    ):
        line = render(
            message,
            command="clp_httpmon",
            protocol=label_of("clp_httpmon"),
            watch_id="W" * 64,
            detail=text,
        )
        assert len(line.encode()) <= 400, line


# --------------------------------------------------------------------------
# Against a real nginx

TIMEOUT = 10.0


def _get(nginx: Nginx, uri: str, **fields: Any) -> HttpProbe:
    return HttpProbe(
        reactor,
        HttpRequest(host="127.0.0.1", port=nginx.port, timeout=TIMEOUT, uri=uri, **fields),
    )


def _credentials(password: str = NGINX_AUTH_PASSWORD) -> BasicCredentials:
    return BasicCredentials(NGINX_AUTH_USER, password)


@inline_callbacks
def test_auth_accepted(nginx: Nginx) -> Generator[Any, Any, None]:
    for method in ("HEAD", "GET"):
        result, _ = yield _probe(
            _get(nginx, "/auth.txt", method=method, credentials=_credentials())
        )
        assert result.ok, result.describe()


@inline_callbacks
def test_auth_refused_names_401(nginx: Nginx) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_get(nginx, "/auth.txt", credentials=_credentials("wrong")))
    assert (result.message, result.number) == (MessageId.AUTH_REFUSED, 401)
    assert "wrong" not in result.describe()
    # Without credentials it stays the 2004 rule: message 83 with 401.
    result, _ = yield _probe(_get(nginx, "/auth.txt"))
    assert (result.message, result.number) == (MessageId.INVALID_STATUS, 401)


@inline_callbacks
def test_head_405_get_200(nginx: Nginx) -> Generator[Any, Any, None]:
    """No fallback: HEAD fails with 405, GET succeeds."""
    result, _ = yield _probe(_get(nginx, "/get-only"))
    assert (result.message, result.number) == (MessageId.INVALID_STATUS, 405)
    result, _ = yield _probe(_get(nginx, "/get-only", method="GET"))
    assert result.ok, result.describe()
    nginx.wait_for_access(r'"GET /get-only HTTP/1\.1" 200')


@inline_callbacks
def test_expect_header(nginx: Nginx) -> Generator[Any, Any, None]:
    def expect(text: str) -> tuple[HeaderExpectation, ...]:
        return (HeaderExpectation.parse(text),)

    for method in ("HEAD", "GET"):
        result, _ = yield _probe(
            _get(nginx, "/headers", method=method, expect_headers=expect("x-ismon-check: ^probe-"))
        )
        assert result.ok, result.describe()
    result, _ = yield _probe(_get(nginx, "/headers", expect_headers=expect("X-Ismon-Check: ^ok$")))
    assert result.message is MessageId.HEADER_MISSING
    assert result.detail == "X-Ismon-Check probe-ok does not match ^ok$"
    result, _ = yield _probe(_get(nginx, "/", expect_headers=expect("X-Ismon-Check: ok")))
    assert (result.message, result.detail) == (MessageId.HEADER_MISSING, "no X-Ismon-Check field")


@inline_callbacks
def test_expect_body(nginx: Nginx) -> Generator[Any, Any, None]:
    marker = Expectation.compile(f"<body>{NGINX_PAGE_MARKER}</body>")
    result, _ = yield _probe(_get(nginx, "/page.html", method="GET", expect_body=marker))
    assert result.ok, result.describe()
    result, _ = yield _probe(_get(nginx, "/", method="GET", expect_body=marker))
    assert result.message is MessageId.BODY_MISSING
    assert result.detail == f"<body>{NGINX_PAGE_MARKER}</body> not found in the 3-byte body"


@inline_callbacks
def test_big_trickling_body(nginx: Nginx) -> Generator[Any, Any, None]:
    """
    /big.txt trickles at NGINX_BIG_RATE with the marker past the bound:
    read up to --max-body and closed, a success unless the marker was
    expected; the bound is read under the probe's one deadline.
    """
    limit = 2 * NGINX_BIG_RATE  # about 2 s of trickle
    result, elapsed = yield _probe(_get(nginx, "/big.txt", method="GET", max_body=limit))
    assert result.ok, result.describe()
    assert elapsed < TIMEOUT
    marker = Expectation.compile(NGINX_PAGE_MARKER)
    result, _ = yield _probe(
        _get(nginx, "/big.txt", method="GET", max_body=limit, expect_body=marker)
    )
    assert result.message is MessageId.BODY_MISSING
    assert result.detail == f"{NGINX_PAGE_MARKER} not found in the first {limit} bytes"
    # 8 s of trickle in a 1 s deadline: the deadline wins (message 74).
    start = time.monotonic()
    probe = HttpProbe(
        reactor,
        HttpRequest(
            host="127.0.0.1",
            port=nginx.port,
            timeout=1,
            uri="/big.txt",
            method="GET",
            max_body=8 * NGINX_BIG_RATE,
        ),
    )
    result, _ = yield _probe(probe)
    assert (result.message, result.number) == (MessageId.SELECT_ERROR, 110)
    assert time.monotonic() - start < 1 + 0.5 + 1.0


@inline_callbacks
def test_host_header(nginx: Nginx) -> Generator[Any, Any, None]:
    result, _ = yield _probe(_get(nginx, "/", host_header="vhost.example:8080"))
    assert result.ok
    nginx.wait_for_access(r'"HEAD / HTTP/1\.1" 200 host="vhost\.example:8080"')


# --------------------------------------------------------------------------
# The password never leaves the watch


def test_password_written_nowhere(
    processes: Processes, nginx: Nginx, rsyslog: Rsyslog, tmp_path: Path
) -> None:
    """
    A watch given --auth-file probes with it, is refused once with a wrong
    one (message 86), and nothing it wrote or shows holds the password
    (L{password_written_nowhere}).
    """

    def argv(watch_id: str, auth: Path) -> list[str]:
        return [
            *command("clp_httpmon"),
            watch_id,
            *("-s", LOOPBACK, "-n", str(nginx.port), "-h", "/auth.txt", "--method", "GET"),
            *("-i", "1", "-c", "1", "-r", "5", "--auth-file", str(auth)),
        ]

    def secrets(password: str) -> list[str]:
        return [password, base64.b64encode(f"{NGINX_AUTH_USER}:{password}".encode()).decode()]

    password_written_nowhere(
        processes,
        rsyslog,
        tmp_path,
        "clp_httpmon",
        argv,
        NGINX_AUTH_USER,
        (NGINX_AUTH_PASSWORD, "ismon-Wrong-5b8e01"),
        secrets,
        "authentication refused[401]",
    )


def password_written_nowhere(
    processes: Processes,
    rsyslog: Rsyslog,
    tmp_path: Path,
    cmd: str,
    argv: Callable[[str, Path], list[str]],
    user: str,
    passwords: tuple[str, str],
    secrets_of: Callable[[str], list[str]],
    refused: str,
) -> None:
    """
    Two watches of C{cmd} (C{argv(watch_id, auth_file)}): C{good} logs in
    with the first password and probes well, C{bad} is refused with the
    second (C{refused} in its log) and exits 1.  Nothing either wrote or
    shows holds a password or any of C{secrets_of(password)}: stdout,
    --logfile, --json-log, syslog, status (text and JSON), the state
    folder's records, and the running watch's /proc/PID/cmdline.
    """
    state, logfile, json_log = tmp_path / "state", tmp_path / "watch.log", tmp_path / "w.jsonl"
    secrets: list[str] = []
    watches = []
    for watch_id, password in zip(("good", "bad"), passwords, strict=True):
        auth = tmp_path / f"{watch_id}.auth"
        auth.write_text(f"{user}:{password}\n")
        auth.chmod(0o600)
        secrets += secrets_of(password)
        watch = processes.start(
            [
                *argv(watch_id, auth),
                *("--state-dir", str(state), "--syslog-socket", str(rsyslog.socket)),
                *("--logfile", str(logfile), "--json-log", str(json_log), "--debug"),
            ],
            name=watch_id,
        )
        watches.append(watch)
    good, bad = watches
    assert bad.wait(30) == 1, bad.output()
    assert refused in bad.output()
    cmdline = Path(f"/proc/{good.pid}/cmdline").read_bytes().decode()
    deadline = time.monotonic() + 30
    while True:
        shown = processes.run(
            [*command("ismon"), "status", "good", "--json", "--state-dir", str(state)]
        )
        if shown.returncode == 0 and (json.loads(shown.stdout).get("last_probe") or {}).get("ok"):
            break
        assert time.monotonic() < deadline, shown.stdout + shown.stderr + good.output()
        time.sleep(0.2)
    texts = [
        shown.stdout,
        processes.run([*command("ismon"), "status", "--state-dir", str(state)]).stdout,
        cmdline,
        good.output(),
    ]
    stopped = processes.run([*command(cmd), "good", "--stop", "--state-dir", str(state)])
    assert stopped.returncode == 0, stopped.stderr
    assert good.wait(10) == 0
    rsyslog.wait_for(rf"{cmd}\[\d+\]: The {cmd} will terminate\. \[ID:good\]")
    texts += [good.output(), bad.output(), logfile.read_text(), json_log.read_text()]
    texts += ["\n".join(rsyslog.lines())]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in state.rglob("*") if p.is_file()]
    for where in (logfile.read_text(), json_log.read_text(), "\n".join(rsyslog.lines())):
        assert refused in where
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_random_bodies_against_limits() -> None:
    """Seeded: a reader fed random CLOSE bodies keeps exactly the first bytes."""
    rng = random.Random(1212)
    for _ in range(200):
        body = rng.randbytes(rng.randrange(0, 5000))
        limit = rng.randrange(1, 6000)
        reader = HttpBodyReader(BodyFraming.CLOSE, 0, limit)
        cuts = sorted(rng.randrange(0, len(body) + 1) for _ in range(5))
        _feed_in_pieces(reader, body, cuts)
        reader.end()
        assert reader.body == body[:limit]


# --------------------------------------------------------------------------
# GET against scripted servers on loopback: how a body arrives and fails


class _Scripted(Protocol):
    """
    Reads the request's header block, then plays C{steps}: bytes to send
    (after a delay), C{"close"}, C{"reset"}; after the last step it stays
    silent.
    """

    def __init__(self, steps: list[tuple[float, bytes | str]]) -> None:
        self._steps = list(steps)
        self._request = b""
        self._calls: list[Any] = []

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in self._request:
            return
        self._request += data
        if b"\r\n\r\n" in self._request:
            self._next()

    def _next(self) -> None:
        if not self._steps:
            return
        delay, step = self._steps.pop(0)
        self._calls.append(reactor.callLater(delay, self._play, step))

    def _play(self, step: bytes | str) -> None:
        if step == "close":
            self.transport.loseConnection()  # type: ignore[union-attr]
        elif step == "reset":
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            assert isinstance(step, bytes)
            self.transport.write(step)  # type: ignore[union-attr]
            self._next()

    def connectionLost(self, reason: Any = None) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()


def _segments(data: bytes, size: int, delay: float) -> list[tuple[float, bytes | str]]:
    return [(delay, data[i : i + size]) for i in range(0, len(data), size)]


HEAD_200 = b"HTTP/1.1 200 OK\r\nServer: scripted\r\n"
CHUNKED_PAGE = (
    HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n"
    b"6\r\n<html>\r\n5;x=y\r\nismon\r\n" + b"c\r\n-page-marker\r\n0\r\n\r\n"
)
SCRIPTS: dict[str, list[tuple[float, bytes | str]]] = {
    "chunked in 3-byte segments": [*_segments(CHUNKED_PAGE, 3, 0.005), (0, "close")],
    "until close": [(0, HEAD_200 + b"\r\n<p>ismon-page-marker</p>"), (0.05, "close")],
    "length, then silence": [(0, HEAD_200 + b"Content-Length: 17\r\n\r\nismon-page-marker")],
    "length cut short": [
        (0, HEAD_200 + b"Content-Length: 999\r\n\r\nismon-page-marker"),
        (0, "close"),
    ],
    "stall mid-body": [(0, HEAD_200 + b"Content-Length: 999\r\n\r\nismon-page-marker")],
    "reset mid-body": [(0, HEAD_200 + b"Content-Length: 999\r\n\r\nismon"), (0.05, "reset")],
    "malformed chunk": [(0, HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")],
    "401 on /": [(0, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")],
    "endless body": [
        (0, HEAD_200 + b"\r\n"),
        *[(0, b"y" * 4096) for _ in range(64)],
        (0, b"ismon-page-marker"),
    ],
}
OK, TIMED_OUT = (None, None), (MessageId.SELECT_ERROR, 110)
GET_CASES: list[tuple[str, dict[str, Any], tuple[MessageId | None, int | None]]] = [
    ("chunked in 3-byte segments", {}, OK),
    ("until close", {}, OK),
    ("length, then silence", {}, OK),
    ("length cut short", {}, (MessageId.RECV_ERROR, 0)),
    ("stall mid-body", {}, TIMED_OUT),
    ("reset mid-body", {}, (MessageId.RECV_ERROR, 104)),
    ("malformed chunk", {}, (MessageId.INVALID_RESPONSE, None)),
    ("401 on /", {"credentials": BasicCredentials("u", "p")}, (MessageId.AUTH_REFUSED, 401)),
    ("endless body", {"expect_body": None, "max_body": 65536}, OK),
    ("endless body", {"max_body": 65536}, (MessageId.BODY_MISSING, None)),
]


@pytest.mark.parametrize(
    ("script", "fields", "expected"),
    GET_CASES,
    ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(GET_CASES)],
)
@inline_callbacks
def test_get_bodies(
    script: str, fields: dict[str, Any], expected: tuple[MessageId | None, int | None]
) -> Generator[Any, Any, None]:
    served: list[_Scripted] = []

    def serve() -> _Scripted:
        served.append(_Scripted(SCRIPTS[script]))
        return served[-1]

    port = reactor.listenTCP(0, Factory.forProtocol(serve), interface="127.0.0.1")
    try:
        request = HttpRequest(
            host="127.0.0.1",
            port=port.getHost().port,
            timeout=1.5,
            method="GET",
            **{"expect_body": Expectation.compile("ismon-page-marker"), **fields},
        )
        before = set(reactor.getDelayedCalls())
        start = time.monotonic()
        result = yield HttpProbe(reactor, request).probe()
        elapsed = time.monotonic() - start
        # The server's own steps may still be pending: only the probe's count.
        leftover = [
            c
            for c in reactor.getDelayedCalls()
            if c not in before and c.active() and getattr(c.func, "__self__", None) not in served
        ]
        assert leftover == [], f"the probe left delayed calls behind: {leftover}"
        for protocol in served:
            protocol.connectionLost()
            if protocol.transport is not None:
                protocol.transport.abortConnection()
    finally:
        yield port.stopListening()
    assert (result.message, result.number) == expected, result.describe()
    # A verdict the probe can see comes at once; a stall, within the deadline.
    assert elapsed < (1.5 + 0.5 if expected == TIMED_OUT else 1.0), elapsed
