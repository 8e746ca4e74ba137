# -*- test-case-name: tests.test_options,tests.test_http,tests.test_smtp -*-
"""
What a watch asks its server, as plain frozen values: the TLS settings and
one request value per protocol, with the README's defaults ("Running a
watch").  No Twisted here: the option parsers build these, the probes read
them, and the status document describes them (L{ProbeRequest.target}).

They live here, not beside their probes: the option parsers build them
before the watch decides whether to load the TLS stack
(L{ismon.cmdline.startup.leave_out_tls_stack}), and a probe module imports
Twisted's networking, which loads pyOpenSSL.  A value a protocol's own
parser reads (a DNS record type, a TCP regex) is kept as the text the
operator gave, checked when the command line is parsed and read again by
the probe.
"""

from __future__ import annotations

import base64
import re
from typing import Protocol

import attrs

__all__ = [
    "DEFAULT_MAX_BODY",
    "BasicCredentials",
    "ConversationRequest",
    "DnsRequest",
    "Expectation",
    "HeaderExpectation",
    "HttpRequest",
    "ProbeRequest",
    "SmtpRequest",
    "StatusSet",
    "TLSSettings",
    "TcpRequest",
]

#: Bytes of a GET's body read at most (README "Running a watch", --max-body).
DEFAULT_MAX_BODY = 64 * 1024


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


@attrs.frozen
class TLSSettings:
    """How to speak TLS to the server (absent: plain TCP)."""

    servername: str
    ca_file: str | None = None
    insecure: bool = False


class ProbeRequest(Protocol):
    """
    What every protocol's request holds: where, how long, and TLS.  The
    service, the schedule's timing and the status document need no more.
    """

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def timeout(self) -> float: ...

    @property
    def tls(self) -> TLSSettings | None: ...

    def target(self, protocol: str) -> str:
        """The target as the status document and message 99 show it."""
        ...


def _target(protocol: str, host: str, port: int, tls: TLSSettings | None, starttls: bool) -> str:
    scheme = protocol
    if tls is not None:
        scheme += "+starttls" if starttls else "s"
    return f"{scheme}://{host}:{port}"


@attrs.frozen
class Expectation:
    """A regular expression searched for in the answer (--expect-body)."""

    text: str
    pattern: re.Pattern[str] = attrs.field(eq=False, repr=False)

    @classmethod
    def compile(cls, text: str) -> Expectation:
        """@raise re.error: C{text} is not a regular expression."""
        return cls(text, re.compile(text))

    def found_in(self, value: str) -> bool:
        return self.pattern.search(value) is not None


@attrs.frozen
class HeaderExpectation:
    """A header field that must be present with a value matching (--expect-header)."""

    name: str
    value: Expectation

    @classmethod
    def parse(cls, text: str) -> HeaderExpectation:
        """
        C{Name: REGEX}.

        @raise ValueError: no field name before a colon.
        @raise re.error: the regular expression does not compile.
        """
        name, colon, regex = text.partition(":")
        name = name.strip()
        if not colon or not name or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError("not 'Name: REGEX'")
        return cls(name, Expectation.compile(regex.strip()))

    def __str__(self) -> str:
        return f"{self.name}: {self.value.text}"


@attrs.frozen
class BasicCredentials:
    """
    The user and password of --auth-file.  Neither is ever shown: the repr
    and str hide them, so no log line, status or traceback can carry them.
    """

    user: str = attrs.field(repr=False)
    password: str = attrs.field(repr=False)

    def authorization(self) -> str:
        """The value of the C{Authorization} header (RFC 7617)."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def __str__(self) -> str:
        return "BasicCredentials(hidden)"


@attrs.frozen
class HttpRequest:
    """What an HTTP watch asks."""

    host: str = "localhost"
    port: int = 80
    timeout: float = 10
    version: str = "1.1"
    uri: str = "/"
    expect_status: StatusSet | None = None
    tls: TLSSettings | None = None
    method: str = "HEAD"
    max_body: int = DEFAULT_MAX_BODY
    expect_headers: tuple[HeaderExpectation, ...] = ()
    expect_body: Expectation | None = None
    host_header: str | None = None
    credentials: BasicCredentials | None = attrs.field(default=None, repr=False)

    def target(self, protocol: str = "http") -> str:
        base = _target(protocol, self.host, self.port, self.tls, False)
        # HEAD, the 2004 method, is not named: its target reads as it always did.
        method = "" if self.method == "HEAD" else f"{self.method} "
        return f"{method}{base}{self.uri} HTTP/{self.version}"


@attrs.frozen
class SmtpRequest:
    """What an SMTP watch asks."""

    host: str = "localhost"
    port: int = 25
    timeout: float = 10
    # tls alone: implicit TLS (port 465 style); with starttls: upgrade after EHLO.
    tls: TLSSettings | None = None
    starttls: bool = False
    helo_name: str = ""
    # --auth-file: log in (AUTH PLAIN or LOGIN) before NOOP.
    credentials: BasicCredentials | None = attrs.field(default=None, repr=False)

    def target(self, protocol: str = "smtp") -> str:
        return _target(protocol, self.host, self.port, self.tls, self.starttls)


@attrs.frozen
class ConversationRequest:
    """
    What a POP3, IMAP4 or FTP watch asks (README "Running a watch"): the
    greeting, one command, and with --auth-file a login first.
    """

    host: str = "localhost"
    port: int = 110
    timeout: float = 10
    # tls alone: implicit TLS (995/993/990); with starttls: upgrade after the greeting.
    tls: TLSSettings | None = None
    starttls: bool = False
    credentials: BasicCredentials | None = attrs.field(default=None, repr=False)

    def target(self, protocol: str) -> str:
        return _target(protocol, self.host, self.port, self.tls, self.starttls)


@attrs.frozen
class DnsRequest:
    """
    What a DNS watch asks (README "Running a watch", DNS): one query for
    C{query} of C{record_type}, over UDP (then TCP after a truncated
    answer), over TCP with C{tcp}, or over TLS (DNS over TLS, RFC 7858).
    C{query}, C{record_type} and each of C{expect} are as the operator gave
    them; L{ismon.wire.dns} checked them when the command line was parsed.
    """

    host: str = "localhost"
    port: int = 53
    timeout: float = 10
    tls: TLSSettings | None = None
    query: str = "localhost"
    record_type: str = "A"
    expect: tuple[str, ...] = ()
    tcp: bool = False

    def target(self, protocol: str = "dns") -> str:
        transport = "+tls" if self.tls is not None else "+tcp" if self.tcp else ""
        return f"{protocol}{transport}://{self.host}:{self.port} {self.query} {self.record_type}"


@attrs.frozen
class TcpRequest:
    """
    What a plain TCP watch asks (README "Running a watch", TCP): connect
    (and with C{tls}, a verified handshake), write C{send}, and read until
    what came matches C{expect}.  C{send} is the text as the operator gave
    it, escapes and all, C{expect} the regex; L{ismon.wire.tcp} checked both
    when the command line was parsed.
    """

    host: str = "localhost"
    port: int = 0
    timeout: float = 10
    tls: TLSSettings | None = None
    send: str | None = None
    expect: str | None = None

    def target(self, protocol: str = "tcp") -> str:
        return _target(protocol, self.host, self.port, self.tls, False)
