"""Certificates for local, throwaway TLS: a CA, serving certificates and client certificates.

A real kube-apiserver needs a serving certificate and a client CA; its admin user is a client
certificate with ``O=system:masters``; the hrw API proxy needs a serving certificate that its
agents can verify. All of these are test or development material that lives for one run, so
they are made here with ``cryptography`` (no openssl CLI, no cfssl) and written as PEM files
that kubectl, httpx, aiohttp and the Go binaries all read.

Keys are ECDSA P-256: fast to generate (a few milliseconds, which matters once per test
session) and accepted by every TLS stack involved. The service-account signing key is RSA
because that is what the apiserver's token issuer expects by default (RS256).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_SANS",
    "CertificateAuthority",
    "create_ca",
    "issue_client_cert",
    "issue_serving_cert",
    "write_rsa_key_pair",
]

DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1")
"""Subject alternative names for a server listening on the loopback interface."""

_VALIDITY = datetime.timedelta(days=365)
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate small clock differences between processes


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA whose certificate and key live as PEM files on disk (``cert_path``, ``key_path``)."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate
    private_key: CertificateIssuerPrivateKeyTypes

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        """Load a CA written earlier by :func:`create_ca` (e.g. by another process)."""
        certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TypeError(f"unsupported CA key type in {key_path}: {type(key).__name__}")
        return cls(Path(cert_path), Path(key_path), certificate, key)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (0600), whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def create_ca(directory: Path, name: str = "ca", common_name: str = "hrw-dev-ca") -> CertificateAuthority:
    """Create a self-signed CA and write ``<name>.crt`` and ``<name>.key`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    subject = _name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(_cert_pem(cert))
    _write_private(key_path, _key_pem(key))
    return CertificateAuthority(cert_path, key_path, cert, key)


def _issue(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: Sequence[str],
) -> tuple[Path, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key()
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(_san(sans), critical=False)
    cert = builder.sign(ca.private_key, hashes.SHA256())
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(_cert_pem(cert))
    _write_private(key_path, _key_pem(key))
    return cert_path, key_path


def issue_serving_cert(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    sans: Sequence[str] = DEFAULT_SANS,
) -> tuple[Path, Path]:
    """Issue a TLS server certificate for ``sans`` (DNS names or IP addresses).

    Writes ``<name>.crt`` and ``<name>.key`` into ``directory`` and returns their paths.
    The first SAN is also the subject's common name.
    """
    if not sans:
        raise ValueError("a serving certificate needs at least one subject alternative name")
    return _issue(ca, directory, name, _name(sans[0]), ExtendedKeyUsageOID.SERVER_AUTH, sans)


def issue_client_cert(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    common_name: str,
    organizations: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Issue a TLS client certificate: Kubernetes reads CN as the user and each O as a group.

    Writes ``<name>.crt`` and ``<name>.key`` into ``directory`` and returns their paths.
    """
    return _issue(
        ca, directory, name, _name(common_name, organizations), ExtendedKeyUsageOID.CLIENT_AUTH, ()
    )


def write_rsa_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write an RSA key pair as ``<name>.key`` (PKCS#8) and ``<name>.pub`` (SubjectPublicKeyInfo).

    Used for the apiserver's service-account token signing key.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path = directory / f"{name}.key"
    pub_path = directory / f"{name}.pub"
    _write_private(key_path, _key_pem(key))
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path
