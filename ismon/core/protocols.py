# -*- test-case-name: tests.test_protocols,tests.test_layers -*-
"""
The protocols a watch can speak, in one table: for each, its name (C{ismon
http}, C{twistd ismon-http}), the 2004 command (C{clp_httpmon}), the name
its messages give it (C{HTTP}), its ports and its description.  An entry
here is a protocol's registration (docs/architecture.md, "Adding a
protocol"); what it does lives in the layers above, each keyed by the
name: its probe (L{ismon.probes.table}), its options, which register
themselves (L{ismon.cmdline.options}), and its manual page
(L{ismon.cmdline.pages}).  C{tests/test_protocols.py} fails while one of
them is missing.

Standard library only: the catalogue (and so the fast control commands)
reads it.
"""

from __future__ import annotations

__all__ = ["PROTOCOLS", "WatchProtocol", "by_command", "label_of"]


class WatchProtocol:
    """
    One protocol a watch can speak.  Written by hand rather than with
    attrs: the fast control commands read this table (docs/architecture.md,
    "The fast path").
    """

    __slots__ = ("command", "default_port", "description", "label", "name", "tls_port")

    def __init__(
        self,
        name: str,
        command: str,
        label: str,
        default_port: int,
        tls_port: int,
        description: str,
    ) -> None:
        self.name = name  # ismon NAME, twistd ismon-NAME
        self.command = command  # the 2004 command, and the name every message starts with
        self.label = label  # the protocol as messages name it: {proto}
        self.default_port = default_port
        self.tls_port = tls_port  # the port with --tls
        self.description = description  # one line, for twistd --help

    @property
    def tapname(self) -> str:
        return f"ismon-{self.name}"

    def __repr__(self) -> str:
        return f"<WatchProtocol {self.name} ({self.command})>"


#: Every protocol, by name, in the order of their pages and listings.
PROTOCOLS: dict[str, WatchProtocol] = {
    protocol.name: protocol
    for protocol in (
        WatchProtocol(
            "http",
            "clp_httpmon",
            "HTTP",
            80,
            443,
            "Watch an HTTP daemon with HEAD (clp_httpmon compatible).",
        ),
        WatchProtocol(
            "smtp",
            "clp_smtpmon",
            "SMTP",
            25,
            465,
            "Watch an SMTP daemon with NOOP (clp_smtpmon compatible).",
        ),
        WatchProtocol(
            "pop3",
            "clp_pop3mon",
            "POP3",
            110,
            995,
            "Watch a POP3 daemon with CAPA (clp_smtpmon syntax).",
        ),
        WatchProtocol(
            "imap",
            "clp_imapmon",
            "IMAP4",
            143,
            993,
            "Watch an IMAP4 daemon with NOOP (clp_smtpmon syntax).",
        ),
        WatchProtocol(
            "ftp",
            "clp_ftpmon",
            "FTP",
            21,
            990,
            "Watch an FTP daemon with NOOP (clp_smtpmon syntax).",
        ),
        WatchProtocol(
            "dns",
            "clp_dnsmon",
            "DNS",
            53,
            853,  # DNS over TLS (RFC 7858)
            "Watch a DNS server with one query (clp_smtpmon syntax).",
        ),
        WatchProtocol(
            "tcp",
            "clp_tcpmon",
            "TCP",
            0,  # no standard port: -n is compulsory
            0,
            "Watch a TCP daemon: connect, send, expect (clp_smtpmon syntax).",
        ),
    )
}


def by_command(command: str) -> WatchProtocol | None:
    """The protocol of a 2004 command name (C{clp_httpmon}), if any."""
    for protocol in PROTOCOLS.values():
        if protocol.command == command:
            return protocol
    return None


def label_of(command: str) -> str:
    """
    The protocol a command's messages name (C{IMAP4} for C{clp_imapmon});
    C{HTTP} for C{ismon} itself, whose control messages have always read as
    clp_httpmon's.
    """
    protocol = by_command(command)
    return "HTTP" if protocol is None else protocol.label
