# -*- test-case-name: tests.test_options,tests.test_http,tests.test_smtp -*-
"""
What a watch asks its server, as plain frozen values: the TLS settings and
one request value per protocol, with the README's defaults ("Running a
watch").  No Twisted here: the option parsers build these, the probes read
them, and the status document describes them (L{ProbeRequest.target}).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from ismon.result import StatusSet

__all__ = ["HttpRequest", "ProbeRequest", "SmtpRequest", "TLSSettings"]


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
class HttpRequest:
    """What an HTTP watch asks."""

    host: str = "localhost"
    port: int = 80
    timeout: float = 10
    version: str = "1.1"
    uri: str = "/"
    expect_status: StatusSet | None = None
    tls: TLSSettings | None = None

    def target(self, protocol: str = "http") -> str:
        base = _target(protocol, self.host, self.port, self.tls, False)
        return f"{base}{self.uri} HTTP/{self.version}"


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

    def target(self, protocol: str = "smtp") -> str:
        return _target(protocol, self.host, self.port, self.tls, self.starttls)
