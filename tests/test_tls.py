# -*- test-case-name: tests.test_tls -*-
"""
Tests for L{ismon.probes.tls}: telling TLS failures apart, the certificate expiry
count, connection creators (verified, with a CA file, and --insecure), and
whole HTTPS / implicit-TLS probes against an in-memory TLS server.

Keys are EC P-256 made by C{cryptography} (fast); nothing touches the
network or the system trust store.
"""

from __future__ import annotations

import datetime
import errno
import shutil
import tempfile
from pathlib import Path
from typing import Any

import twisted.protocols.tls
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump
from twisted.test.iosim import connect as pump_connect
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from ismon.core.catalogue import MessageId
from ismon.core.requests import HttpRequest, SmtpRequest, TLSSettings
from ismon.core.result import Phase, ProbeResult
from ismon.probes.http import HttpProbe
from ismon.probes.smtp import SmtpProbe
from ismon.probes.tls import (
    certificate_days_left,
    connection_creator,
    describe_tls_failure,
    load_trust_root,
)
from tests.certs import SOON_DAYS, CertPair, TestCerts, make_test_certs
from tests.test_probe import collect, resolving, v4

_NOW = datetime.datetime(2030, 6, 1, 12, 0, tzinfo=datetime.UTC)


def _certificate(not_after: datetime.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "days.example")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(_NOW, not_after) - datetime.timedelta(days=400))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def _tempdir(case: SynchronousTestCase) -> Path:
    """
    A private directory removed after the test (not C{mktemp}: under pytest
    that would write into the working tree).
    """
    path = Path(tempfile.mkdtemp(prefix="ismon-test-tls-"))
    case.addCleanup(shutil.rmtree, path, True)
    return path


class _PeerTransport:
    """What certificate_days_left needs of a TLS transport."""

    def __init__(self, certificate: Any) -> None:
        self._certificate = certificate

    def getPeerCertificate(self) -> Any:
        return self._certificate


class DescribeTlsFailureTests(SynchronousTestCase):
    def test_hostname_mismatch(self) -> None:
        """
        service_identity's VerificationError (raised by Twisted's hostname
        check) is a trust failure.
        """
        self.assertEqual(
            describe_tls_failure(Failure(VerificationError(errors=[]))),
            (True, "certificate does not match the server name"),
        )

    def test_verify_failed(self) -> None:
        error = SSL.Error(
            [("SSL routines", "tls_process_server_certificate", "certificate verify failed")]
        )
        self.assertEqual(describe_tls_failure(Failure(error)), (True, "certificate verify failed"))

    def test_handshake_failure(self) -> None:
        error = SSL.Error([("SSL routines", "ssl3_read_bytes", "sslv3 alert handshake failure")])
        self.assertEqual(
            describe_tls_failure(Failure(error)), (False, "sslv3 alert handshake failure")
        )

    def test_several_reasons(self) -> None:
        error = SSL.Error(
            [
                ("SSL routines", "f", "wrong version number"),
                ("SSL routines", "g", ""),
                ("SSL routines", "h", "record layer failure"),
            ]
        )
        self.assertEqual(
            describe_tls_failure(Failure(error)),
            (False, "wrong version number; record layer failure"),
        )

    def test_odd_arguments(self) -> None:
        self.assertEqual(describe_tls_failure(Failure(SSL.Error())), (False, "TLS error"))
        self.assertEqual(
            describe_tls_failure(Failure(SSL.Error("something broke"))),
            (False, "something broke"),
        )
        self.assertEqual(
            describe_tls_failure(Failure(SSL.Error([("only", "tuple", "")]))),
            (False, "[('only', 'tuple', '')]"),
        )
        self.assertEqual(
            describe_tls_failure(Failure(SSL.Error([]))),
            (False, "[]"),
        )

    def test_subclasses(self) -> None:
        """
        Every pyOpenSSL error is an SSL.Error: ZeroReturnError, SysCallError.
        """
        described = describe_tls_failure(Failure(SSL.SysCallError(-1, "Unexpected EOF")))
        assert described is not None
        self.assertFalse(described[0])

    def test_not_tls(self) -> None:
        for value in (ConnectionDone(), ConnectionLost(), OSError(errno.EPIPE, "pipe")):
            with self.subTest(value=value):
                self.assertIsNone(describe_tls_failure(Failure(value)))


class CertificateDaysLeftTests(SynchronousTestCase):
    def test_days_left(self) -> None:
        certificate = crypto.X509.from_cryptography(
            _certificate(_NOW + datetime.timedelta(days=30, hours=5))
        )
        self.assertEqual(certificate_days_left(_PeerTransport(certificate), now=_NOW), 30)

    def test_less_than_a_day(self) -> None:
        certificate = crypto.X509.from_cryptography(
            _certificate(_NOW + datetime.timedelta(hours=23))
        )
        self.assertEqual(certificate_days_left(_PeerTransport(certificate), now=_NOW), 0)

    def test_expired(self) -> None:
        certificate = crypto.X509.from_cryptography(
            _certificate(_NOW - datetime.timedelta(days=2, hours=1))
        )
        self.assertEqual(certificate_days_left(_PeerTransport(certificate), now=_NOW), -3)

    def test_default_now_is_aware(self) -> None:
        """
        Without C{now}, the current UTC time is used (no naive/aware mixup).
        """
        not_after = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10, hours=1)
        certificate = crypto.X509.from_cryptography(_certificate(not_after))
        self.assertEqual(certificate_days_left(_PeerTransport(certificate)), 10)

    def test_twisted_certificate(self) -> None:
        """
        A L{twisted.internet.ssl.Certificate} (what some transports give)
        works too.
        """
        certificate = ssl.Certificate(
            crypto.X509.from_cryptography(_certificate(_NOW + datetime.timedelta(days=7)))
        )
        self.assertEqual(certificate_days_left(_PeerTransport(certificate.original), now=_NOW), 7)

    def test_no_certificate(self) -> None:
        self.assertIsNone(certificate_days_left(_PeerTransport(None), now=_NOW))
        self.assertIsNone(certificate_days_left(object(), now=_NOW))


class TrustRootTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = _tempdir(self)
        self.certs = make_test_certs(self.directory / "certs")

    def test_load_ca(self) -> None:
        trust = load_trust_root(str(self.certs.ca))
        self.assertIsNotNone(trust)

    def test_bundle_with_noise(self) -> None:
        """
        Text around and between the PEM blocks (as in distribution bundles)
        is ignored; every certificate is loaded.
        """
        bundle = self.directory / "bundle.pem"
        bundle.write_bytes(
            b"# my bundle\n"
            + self.certs.ca.read_bytes()
            + b"\nsome comment\n"
            + self.certs.valid.cert.read_bytes()
        )
        self.assertIsNotNone(load_trust_root(str(bundle)))

    def test_no_certificate(self) -> None:
        for i, content in enumerate((b"", b"not a certificate\n", self.certs.ca_key.read_bytes())):
            with self.subTest(content=content[:20]):
                path = self.directory / f"empty{i}.pem"
                path.write_bytes(content)
                error = self.assertRaises(ValueError, load_trust_root, str(path))
                self.assertIn(str(path), str(error))

    def test_missing_file(self) -> None:
        self.assertRaises(OSError, load_trust_root, str(self.directory / "missing.pem"))


def _client_connection(creator: IOpenSSLClientConnectionCreator) -> SSL.Connection:
    """The connection C{creator} makes for a client TLS protocol."""
    factory = TLSMemoryBIOFactory(creator, True, Factory.forProtocol(Protocol))
    return creator.clientConnectionForTLS(factory.buildProtocol(None))


class ConnectionCreatorTests(SynchronousTestCase):
    def setUp(self) -> None:
        connection_creator.cache_clear()
        self.addCleanup(connection_creator.cache_clear)

    def test_insecure(self) -> None:
        creator = connection_creator(TLSSettings(servername="www.example", insecure=True))
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator))
        connection = _client_connection(creator)
        self.assertIsInstance(connection, SSL.Connection)
        # SNI still goes out, so virtual hosts answer as to anyone else.
        self.assertEqual(connection.get_servername(), b"www.example")
        self.assertEqual(connection.get_context().get_verify_mode(), SSL.VERIFY_NONE)

    def test_insecure_ip_address_sends_no_sni(self) -> None:
        for name in ("192.0.2.1", "::1", "[::1]"):
            with self.subTest(name=name):
                creator = connection_creator(TLSSettings(servername=name, insecure=True))
                connection = _client_connection(creator)
                self.assertIsNone(connection.get_servername())

    def test_insecure_idn(self) -> None:
        creator = connection_creator(TLSSettings(servername="b\u00fccher.example", insecure=True))
        connection = _client_connection(creator)
        self.assertEqual(connection.get_servername(), b"xn--bcher-kva.example")

    def test_verified_by_default(self) -> None:
        creator = connection_creator(TLSSettings(servername="www.example"))
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator))
        connection = _client_connection(creator)
        self.assertTrue(connection.get_context().get_verify_mode() & SSL.VERIFY_PEER)
        self.assertEqual(connection.get_servername(), b"www.example")

    def test_ca_file(self) -> None:
        certs = make_test_certs(_tempdir(self))
        creator = connection_creator(TLSSettings(servername="localhost", ca_file=str(certs.ca)))
        self.assertTrue(IOpenSSLClientConnectionCreator.providedBy(creator))
        connection = _client_connection(creator)
        self.assertTrue(connection.get_context().get_verify_mode() & SSL.VERIFY_PEER)

    def test_ca_file_without_certificate(self) -> None:
        path = _tempdir(self) / "empty.pem"
        path.write_text("nothing here\n")
        self.assertRaises(
            ValueError,
            connection_creator,
            TLSSettings(servername="localhost", ca_file=str(path)),
        )

    def test_built_once_per_settings(self) -> None:
        settings = TLSSettings(servername="www.example", insecure=True)
        self.assertIs(connection_creator(settings), connection_creator(settings))
        self.assertIs(
            connection_creator(settings),
            connection_creator(TLSSettings(servername="www.example", insecure=True)),
        )
        self.assertIsNot(
            connection_creator(settings),
            connection_creator(TLSSettings(servername="other.example", insecure=True)),
        )


# ---------------------------------------------------------------------------
# Whole probes over real TLS (pyOpenSSL in memory), connected with iosim.


class _HeadServer(Protocol):
    """Answers any request with a 200 and closes."""

    def dataReceived(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            self.transport.write(b"HTTP/1.1 200 OK\r\nServer: test\r\n\r\n")  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]


class _SmtpServer(Protocol):
    """Greets, answers NOOP with 250 and QUIT with 221."""

    def connectionMade(self) -> None:
        self.transport.write(b"220 localhost ESMTP test\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        for line in data.splitlines():
            if line == b"NOOP":
                self.transport.write(b"250 2.0.0 Ok\r\n")  # type: ignore[union-attr]
            elif line == b"QUIT":
                self.transport.write(b"221 bye\r\n")  # type: ignore[union-attr]
                self.transport.loseConnection()  # type: ignore[union-attr]


@implementer(IOpenSSLServerConnectionCreator)
class _ServerContext:
    """A server's TLS from PEM files (plain pyOpenSSL, no deprecated paths)."""

    def __init__(self, pair: CertPair) -> None:
        self._context = SSL.Context(SSL.TLS_METHOD)
        self._context.use_certificate_file(str(pair.cert))
        self._context.use_privatekey_file(str(pair.key))

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        return SSL.Connection(self._context, None)


class TlsProbeTests(SynchronousTestCase):
    """
    HTTPS and implicit-TLS SMTP probes against in-memory TLS servers: the
    chain and the name are verified, the expiry is counted, and failures are
    messages 90/91 at the TLS phase.
    """

    certs: TestCerts

    def setUp(self) -> None:
        self.certs = make_test_certs(_tempdir(self))
        connection_creator.cache_clear()
        self.addCleanup(connection_creator.cache_clear)
        self.reactor = MemoryReactorClock()
        # wrapClientTLS takes no clock: TLS write aggregation schedules its
        # flush on the global reactor unless told otherwise (Twisted's own
        # tests patch this hook the same way).
        self.patch(twisted.protocols.tls, "_get_default_clock", lambda: self.reactor)

    def serve(self, pair: CertPair, server: type[Protocol]) -> IOPump:
        """
        Complete the probe's connection to a TLS server using C{pair}, and
        pump bytes until both sides are quiet.
        """
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        address = IPv4Address("TCP", host, port)
        client = factory.buildProtocol(address)
        server_factory = TLSMemoryBIOFactory(
            _ServerContext(pair), False, Factory.forProtocol(server)
        )
        server_protocol = server_factory.buildProtocol(address)
        pump = pump_connect(
            server_protocol,
            FakeTransport(server_protocol, isServer=True),
            client,
            FakeTransport(client, isServer=False),
            greet=False,
            clock=self.reactor,
        )
        pump.flush()
        return pump

    def https(
        self, pair: CertPair, *, insecure: bool = False, servername: str = "localhost"
    ) -> ProbeResult:
        request = HttpRequest(
            host="127.0.0.1",
            port=443,
            tls=TLSSettings(
                servername=servername,
                ca_file=None if insecure else str(self.certs.ca),
                insecure=insecure,
            ),
        )
        results = collect(HttpProbe(self.reactor, request, resolving(v4("127.0.0.1", 443))).probe())
        self.serve(pair, _HeadServer)
        self.assertEqual(len(results), 1, results)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        result: ProbeResult = results[0]
        return result

    def test_valid(self) -> None:
        result = self.https(self.certs.valid)
        self.assertTrue(result.ok, result)
        self.assertEqual(result.reply, "HTTP/1.1 200 OK")
        self.assertIn(result.cert_days_left, (88, 89))

    def test_expiring_soon(self) -> None:
        result = self.https(self.certs.expiring_soon)
        self.assertTrue(result.ok, result)
        self.assertEqual(result.cert_days_left, SOON_DAYS)

    def test_untrusted(self) -> None:
        result = self.https(self.certs.self_signed)
        self.assertFalse(result.ok)
        self.assertEqual((result.message, result.phase), (MessageId.TLS_VERIFY_ERROR, Phase.TLS))

    def test_expired(self) -> None:
        result = self.https(self.certs.expired)
        self.assertEqual((result.message, result.phase), (MessageId.TLS_VERIFY_ERROR, Phase.TLS))

    def test_wrong_host(self) -> None:
        result = self.https(self.certs.wrong_host)
        self.assertFalse(result.ok)
        self.assertEqual((result.message, result.phase), (MessageId.TLS_VERIFY_ERROR, Phase.TLS))
        self.assertEqual(result.detail, "certificate does not match the server name")

    def test_servername_chosen(self) -> None:
        """
        The verification name is the configured server name, not the
        address connected to.
        """
        result = self.https(self.certs.wrong_host, servername="wrong.example")
        self.assertTrue(result.ok, result)

    def test_insecure_accepts_anything(self) -> None:
        for pair in (self.certs.self_signed, self.certs.wrong_host, self.certs.expired):
            with self.subTest(pair=pair.cert.name):
                self.reactor = MemoryReactorClock()
                result = self.https(pair, insecure=True)
                self.assertTrue(result.ok, result)

    def test_not_tls_at_all(self) -> None:
        """
        A plain HTTP server on the HTTPS port is a handshake error (90).
        """
        request = HttpRequest(
            host="127.0.0.1",
            port=443,
            tls=TLSSettings(servername="localhost", ca_file=str(self.certs.ca)),
        )
        results = collect(HttpProbe(self.reactor, request, resolving(v4("127.0.0.1", 443))).probe())
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        client = factory.buildProtocol(IPv4Address("TCP", host, port))
        server = Protocol()
        pump = pump_connect(
            server,
            FakeTransport(server, isServer=True),
            client,
            FakeTransport(client, isServer=False),
            greet=False,
            clock=self.reactor,
        )
        pump.flush()
        server.transport.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # type: ignore[union-attr]
        pump.flush()
        self.assertEqual(len(results), 1, results)
        (result,) = results
        self.assertEqual((result.message, result.phase), (MessageId.TLS_HANDSHAKE_ERROR, Phase.TLS))

    def test_handshake_stalls(self) -> None:
        """
        A server that accepts and never speaks TLS: the deadline, at the TLS
        phase.
        """
        request = HttpRequest(
            host="127.0.0.1",
            port=443,
            timeout=5,
            tls=TLSSettings(servername="localhost", ca_file=str(self.certs.ca)),
        )
        results = collect(HttpProbe(self.reactor, request, resolving(v4("127.0.0.1", 443))).probe())
        host, port, factory, _, _ = self.reactor.tcpClients[0]
        client = factory.buildProtocol(IPv4Address("TCP", host, port))
        server = Protocol()
        pump = pump_connect(
            server,
            FakeTransport(server, isServer=True),
            client,
            FakeTransport(client, isServer=False),
            greet=False,
            clock=self.reactor,
        )
        pump.flush()
        self.reactor.advance(5)
        pump.flush()
        self.assertEqual(len(results), 1, results)
        (result,) = results
        self.assertEqual(
            (result.message, result.number, result.phase),
            (MessageId.SELECT_ERROR, errno.ETIMEDOUT, Phase.TLS),
        )
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_smtp_implicit_tls(self) -> None:
        request = SmtpRequest(
            host="127.0.0.1",
            port=465,
            tls=TLSSettings(servername="localhost", ca_file=str(self.certs.ca)),
            helo_name="monitor.example",
        )
        results = collect(SmtpProbe(self.reactor, request, resolving(v4("127.0.0.1", 465))).probe())
        self.serve(self.certs.valid, _SmtpServer)
        self.assertEqual(len(results), 1, results)
        (result,) = results
        self.assertTrue(result.ok, result)
        self.assertEqual(result.reply, "250 2.0.0 Ok")
        self.assertIn(result.cert_days_left, (88, 89))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
