# -*- test-case-name: tests.test_tls -*-
"""
Client TLS for probes: verified by default (chain + hostname through
service_identity), an explicit CA file, an SNI/verification name, an opt-out,
and the certificate expiry check.

Only imported when a watch uses TLS, so plain watches stay light.
"""

from __future__ import annotations

import datetime
import functools
import math
from typing import Any

import attrs
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from ismon.core.requests import TLSSettings
from ismon.probes.ca_file import read_ca_file
from ismon.probes.probe import ITLSClient

__all__ = [
    "certificate_days_left",
    "certificate_not_after",
    "client_tls",
    "connection_creator",
    "describe_tls_failure",
    "load_trust_root",
]


def load_trust_root(ca_file: str) -> Any:
    """
    The certificates of a PEM bundle as a trust root.

    @raise ValueError: the file holds no certificate.
    @raise OSError: the file cannot be read.
    """
    certificates = [ssl.Certificate(x509) for x509 in read_ca_file(ca_file)]
    return ssl.trustRootFromCertificates(certificates)  # type: ignore[no-untyped-call]


@implementer(IOpenSSLClientConnectionCreator)
class _Unverified:
    """
    TLS that encrypts but checks nothing, for --insecure.  Twisted's
    C{optionsForClientTLS} always verifies; this still sends SNI so that
    virtual hosts answer as they would to a verifying client.
    """

    def __init__(self, servername: str) -> None:
        self._context = ssl.CertificateOptions(verify=False).getContext()
        self._context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
        self._servername = servername

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if not _is_ip(self._servername):
            connection.set_tlsext_host_name(self._servername.encode("idna"))
        return connection


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=16)
def connection_creator(settings: TLSSettings) -> IOpenSSLClientConnectionCreator:
    """
    A client connection creator for C{settings}, built once per settings
    (loading a CA bundle per probe would be wasted work).
    """
    if settings.insecure:
        return _Unverified(settings.servername)
    trust = load_trust_root(settings.ca_file) if settings.ca_file else None
    creator: IOpenSSLClientConnectionCreator = ssl.optionsForClientTLS(
        settings.servername.strip("[]"), trustRoot=trust
    )
    return creator


def _not_after(transport: object) -> datetime.datetime | None:
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    certificate = get()
    if certificate is None:
        return None
    not_after: datetime.datetime = certificate.to_cryptography().not_valid_after_utc
    return not_after


def certificate_days_left(transport: object, now: datetime.datetime | None = None) -> int | None:
    """
    Whole days until the peer certificate expires (negative when expired),
    or None when there is no peer certificate.
    """
    not_after = _not_after(transport)
    if not_after is None:
        return None
    now = now or datetime.datetime.now(datetime.UTC)
    days: int = math.floor((not_after - now).total_seconds() / 86400)
    return days


def certificate_not_after(transport: object) -> float | None:
    """
    When the peer certificate expires (its notAfter, epoch seconds), or
    None when there is no peer certificate.
    """
    not_after = _not_after(transport)
    return None if not_after is None else not_after.timestamp()


def describe_tls_failure(reason: Failure) -> tuple[bool, str] | None:
    """
    Tell a TLS failure apart: C{(True, text)} when the certificate was not
    trusted (chain, expiry, hostname), C{(False, text)} for any other TLS
    error, None when C{reason} is not a TLS error.
    """
    value = reason.value
    if isinstance(value, VerificationError):
        return True, "certificate does not match the server name"
    if isinstance(value, SSL.Error):
        reasons = []
        for entry in value.args[0] if value.args and isinstance(value.args[0], list) else []:
            if isinstance(entry, tuple) and entry:
                reasons.append(str(entry[-1]))
        text = "; ".join(r for r in reasons if r) or str(value)[:160] or "TLS error"
        return "certificate verify failed" in text, text
    return None


@implementer(ITLSClient)
@attrs.frozen
class _ClientTLS:
    """L{ITLSClient} over this module's functions, for one L{TLSSettings}."""

    settings: TLSSettings

    def connection_creator(self) -> IOpenSSLClientConnectionCreator:
        return connection_creator(self.settings)

    def days_left(self, transport: object) -> int | None:
        return certificate_days_left(transport)

    def not_after(self, transport: object) -> float | None:
        return certificate_not_after(transport)

    def describe_failure(self, reason: Failure) -> tuple[bool, str] | None:
        return describe_tls_failure(reason)


def client_tls(settings: TLSSettings) -> ITLSClient:
    """
    The TLS a probe speaks for C{settings} (L{ismon.probes.probe.run_probe}).  The
    connection creator is built here, once: a CA file that cannot be read
    fails now, when the watch starts, not at the first probe.
    """
    connection_creator(settings)
    return _ClientTLS(settings)
