# -*- test-case-name: tests.test_protocols,tests.test_service -*-
"""
The probe of each protocol of L{ismon.core.protocols}: one small factory
per protocol name, each importing its probe's module only when called, so
that a watch loads its own protocol's probe and no other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ismon.core.requests import (
    ConversationRequest,
    DnsRequest,
    HttpRequest,
    ProbeRequest,
    SmtpRequest,
    TcpRequest,
)
from ismon.probes.probe import IProbe, ReactorType

__all__ = ["PROBES", "ProbeFactory", "make_probe"]

#: Makes a protocol's probe: C{factory(reactor, request)}.
ProbeFactory = Callable[[ReactorType, ProbeRequest], IProbe]


_R = TypeVar("_R")


def _request(request: ProbeRequest, kind: type[_R]) -> _R:
    if not isinstance(request, kind):
        raise TypeError(f"a {kind.__name__} is needed, not {type(request).__name__}")
    return request


def _http(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.http import HttpProbe

    return HttpProbe(reactor, _request(request, HttpRequest))


def _smtp(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.smtp import SmtpProbe

    return SmtpProbe(reactor, _request(request, SmtpRequest))


def _pop3(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.pop3 import Pop3Probe

    return Pop3Probe(reactor, _request(request, ConversationRequest))


def _imap(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.imap import ImapProbe

    return ImapProbe(reactor, _request(request, ConversationRequest))


def _ftp(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.ftp import FtpProbe

    return FtpProbe(reactor, _request(request, ConversationRequest))


def _dns(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.dns import DnsProbe

    return DnsProbe(reactor, _request(request, DnsRequest))


def _tcp(reactor: ReactorType, request: ProbeRequest) -> IProbe:
    from ismon.probes.tcp import TcpProbe

    return TcpProbe(reactor, _request(request, TcpRequest))


#: Each protocol's probe, by name (ismon.core.protocols.PROTOCOLS).
PROBES: dict[str, ProbeFactory] = {
    "http": _http,
    "smtp": _smtp,
    "pop3": _pop3,
    "imap": _imap,
    "ftp": _ftp,
    "dns": _dns,
    "tcp": _tcp,
}


def make_probe(reactor: ReactorType, protocol: str, request: ProbeRequest) -> IProbe:
    """The probe of C{protocol} (a name of L{ismon.core.protocols.PROTOCOLS})."""
    return PROBES[protocol](reactor, request)
