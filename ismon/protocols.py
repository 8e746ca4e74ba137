# -*- test-case-name: tests.test_layers,tests.test_options -*-
"""
The protocols a watch can speak, in one table: for each, its name (C{ismon
http}, C{twistd ismon-http}), the 2004 command (C{clp_httpmon}), its ports,
and where its option parser and probe live.  The command line, the
service, the twistd plugins and the manual read this table instead of
asking which protocol a request is; adding a protocol is one new module
and one L{register} line here (docs/architecture.md, "Adding a protocol").

The parser and probe are named, not imported: reading the table loads no
Twisted, so the pure rooms may use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ismon.options import WatchOptions
    from ismon.probe import IProbe
    from ismon.requests import ProbeRequest

__all__ = ["PROTOCOLS", "WatchProtocol", "by_command", "register"]


def _load(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@attrs.frozen
class WatchProtocol:
    """One protocol a watch can speak."""

    name: str  # ismon NAME, twistd ismon-NAME
    command: str  # the 2004 command, and the name every message starts with
    default_port: int
    tls_port: int  # the port with --tls
    options: str  # "module:class" of its WatchOptions subclass
    probe: str  # "module:class" of its IProbe, made as probe(reactor, request)
    description: str  # one line, for twistd --help

    @property
    def tapname(self) -> str:
        return f"ismon-{self.name}"

    def options_class(self) -> type[WatchOptions]:
        found: type[WatchOptions] = _load(self.options)
        return found

    def make_probe(self, reactor: Any, request: ProbeRequest) -> IProbe:
        made: IProbe = _load(self.probe)(reactor, request)
        return made


#: Every protocol, by name, in the order they were registered.
PROTOCOLS: dict[str, WatchProtocol] = {}


def register(protocol: WatchProtocol) -> WatchProtocol:
    if protocol.name in PROTOCOLS or any(p.command == protocol.command for p in PROTOCOLS.values()):
        raise ValueError(f"{protocol.name} ({protocol.command}) is already registered")
    PROTOCOLS[protocol.name] = protocol
    return protocol


def by_command(command: str) -> WatchProtocol | None:
    """The protocol of a 2004 command name (C{clp_httpmon}), if any."""
    for protocol in PROTOCOLS.values():
        if protocol.command == command:
            return protocol
    return None


register(
    WatchProtocol(
        name="http",
        command="clp_httpmon",
        default_port=80,
        tls_port=443,
        options="ismon.options:HttpOptions",
        probe="ismon.http:HttpProbe",
        description="Watch an HTTP daemon with HEAD (clp_httpmon compatible).",
    )
)
register(
    WatchProtocol(
        name="smtp",
        command="clp_smtpmon",
        default_port=25,
        tls_port=465,
        options="ismon.options:SmtpOptions",
        probe="ismon.smtp:SmtpProbe",
        description="Watch an SMTP daemon with NOOP (clp_smtpmon compatible).",
    )
)
register(
    WatchProtocol(
        name="pop3",
        command="clp_pop3mon",
        default_port=110,
        tls_port=995,
        options="ismon.options:Pop3Options",
        probe="ismon.pop3:Pop3Probe",
        description="Watch a POP3 daemon with CAPA (clp_smtpmon syntax).",
    )
)
register(
    WatchProtocol(
        name="imap",
        command="clp_imapmon",
        default_port=143,
        tls_port=993,
        options="ismon.options:ImapOptions",
        probe="ismon.imap:ImapProbe",
        description="Watch an IMAP4 daemon with NOOP (clp_smtpmon syntax).",
    )
)
register(
    WatchProtocol(
        name="ftp",
        command="clp_ftpmon",
        default_port=21,
        tls_port=990,
        options="ismon.options:FtpOptions",
        probe="ismon.ftp:FtpProbe",
        description="Watch an FTP daemon with NOOP (clp_smtpmon syntax).",
    )
)
