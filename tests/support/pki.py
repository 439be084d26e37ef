"""A private certificate authority for tests: every TLS link of a test setup (HAProxy, Redis,
Sentinel, PostgreSQL, `sharelock serve`) gets a certificate from it, and every client verifies
against its root, exactly as in production with the operator's own CA.

Keys are RSA-4096 by default (seed 003: "an SSL certificate based on a 4096-bit RSA key");
generating one takes about a second, so a test session makes its CA once and issues few
certificates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_KEY_SIZE = 4096
_LIFETIME = timedelta(days=2)


@dataclass(frozen=True)
class Issued:
    """One certificate and its key, as PEM files; `bundle` is both in one file (HAProxy's
    `crt` wants that form)."""

    cert: Path
    key: Path
    bundle: Path


def _key(size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=size)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sharelock test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class PrivateCA:
    """A root CA whose files live in `directory`: `ca_cert` is what clients trust."""

    def __init__(self, directory: Path, *, key_size: int = DEFAULT_KEY_SIZE) -> None:
        self.directory = directory
        self.key_size = key_size
        directory.mkdir(parents=True, exist_ok=True)
        self._key = _key(key_size)
        now = datetime.now(UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Sharelock test root CA"))
            .issuer_name(_name("Sharelock test root CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
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
            .sign(self._key, hashes.SHA256())
        )
        self.ca_cert = directory / "ca.pem"
        self.ca_cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        client: bool = False,
    ) -> Issued:
        """A certificate for `hosts` (DNS names or IP addresses), for a server or, with
        `client`, for a client authenticating with it (mutual TLS). Files are named `name`."""
        key = _key(self.key_size)
        now = datetime.now(UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0] if hosts else name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = _pem_key(key)
        issued = Issued(
            cert=self.directory / f"{name}.crt",
            key=self.directory / f"{name}.key",
            bundle=self.directory / f"{name}.pem",
        )
        issued.cert.write_bytes(cert_pem)
        issued.key.write_bytes(key_pem)
        issued.key.chmod(0o600)  # PostgreSQL refuses a key file others can read
        issued.bundle.write_bytes(cert_pem + key_pem)
        issued.bundle.chmod(0o600)
        return issued
