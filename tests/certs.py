"""
A throwaway certificate authority and server certificates for TLS tests.

Every key and certificate is made fresh (EC P-256: fast) and written as PEM
files into a directory the caller owns, usually a pytest tmp dir::

    certs = make_test_certs(tmp_path)
    certs.ca                 # the CA certificate: the trust root for clients
    certs.valid.cert, .key   # CA-signed, localhost / 127.0.0.1 / ::1
    certs.expired            # CA-signed, expired yesterday
    certs.wrong_host         # CA-signed, only names wrong.example
    certs.self_signed        # valid names but signed by itself, not the CA
    certs.expiring_soon      # CA-signed, expires in 5 days (and an hour)

Nothing here touches the network or the system trust store.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SOON_DAYS", "CertPair", "TestCerts", "make_test_certs"]

# Days the "expiring soon" certificate has left (plus one hour of margin, so a
# whole-days count made during the test run still reads SOON_DAYS).
SOON_DAYS = 5

_LOCAL_NAMES: tuple[x509.GeneralName, ...] = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
)


@dataclass(frozen=True)
class CertPair:
    """PEM paths of one server certificate and its private key."""

    cert: Path
    key: Path
    # Certificate followed by its issuer (for servers that want a chain).
    chain: Path


@dataclass(frozen=True)
class TestCerts:
    """Everything L{make_test_certs} wrote."""

    __test__ = False  # not a pytest test class, despite the name

    directory: Path
    ca: Path
    ca_key: Path
    valid: CertPair
    expired: CertPair
    wrong_host: CertPair
    self_signed: CertPair
    expiring_soon: CertPair


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ismon tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _server_cert(
    *,
    subject_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    names: tuple[x509.GeneralName, ...],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    subject = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer if issuer is not None else subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def make_test_certs(directory: Path | str) -> TestCerts:
    """Create the CA and the five server certificates as PEM files in C{directory}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    hour = datetime.timedelta(hours=1)
    day = datetime.timedelta(days=1)

    ca_key = _key()
    ca_name = _name("ismon test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - day)
        .not_valid_after(now + 365 * day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(_pem(ca_cert))
    ca_key_path = directory / "ca.key"
    _write_key(ca_key_path, ca_key)

    def issue(
        stem: str,
        *,
        names: tuple[x509.GeneralName, ...] = _LOCAL_NAMES,
        common_name: str = "localhost",
        not_before: datetime.datetime = now - day,
        not_after: datetime.datetime = now + 90 * day,
        self_signed: bool = False,
    ) -> CertPair:
        key = _key()
        cert = _server_cert(
            subject_key=key,
            common_name=common_name,
            names=names,
            not_before=not_before,
            not_after=not_after,
            issuer=None if self_signed else ca_name,
            issuer_key=key if self_signed else ca_key,
        )
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}.key"
        chain_path = directory / f"{stem}-chain.pem"
        cert_path.write_bytes(_pem(cert))
        chain_path.write_bytes(_pem(cert) + (b"" if self_signed else _pem(ca_cert)))
        _write_key(key_path, key)
        return CertPair(cert=cert_path, key=key_path, chain=chain_path)

    return TestCerts(
        directory=directory,
        ca=ca_path,
        ca_key=ca_key_path,
        valid=issue("valid"),
        expired=issue("expired", not_before=now - 30 * day, not_after=now - day),
        wrong_host=issue(
            "wrong-host", names=(x509.DNSName("wrong.example"),), common_name="wrong.example"
        ),
        self_signed=issue("self-signed", self_signed=True),
        expiring_soon=issue("expiring-soon", not_after=now + SOON_DAYS * day + hour),
    )
