# -*- test-case-name: tests.test_tls,tests.test_options -*-
"""
Reading a C{--ca-file}: the certificates of a PEM bundle.  Apart from
L{ismon.probes.tls} so that the option parser can refuse a bad file before the
watch starts without loading Twisted's networking.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["read_ca_file"]

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def read_ca_file(ca_file: str) -> list[Any]:
    """
    The certificates (C{OpenSSL.crypto.X509}) of a PEM bundle.

    @raise ValueError: the file holds no certificate.
    @raise OSError: the file cannot be read.
    @raise OpenSSL.crypto.Error: a certificate cannot be parsed.
    """
    from OpenSSL import crypto

    with open(ca_file, "rb") as f:
        pem = f.read()
    certificates = [
        crypto.load_certificate(crypto.FILETYPE_PEM, block) for block in _PEM_CERT.findall(pem)
    ]
    if not certificates:
        raise ValueError(f"no PEM certificate in {ca_file}")
    return certificates
