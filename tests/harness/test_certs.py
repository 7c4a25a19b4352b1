"""Certificates from hrw_dev.certs verify the way TLS clients and the apiserver need them to."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from hrw_dev import certs


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_certificate_verifies_for_localhost_and_loopback_ip_only(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path)
    cert_path, key_path = certs.issue_serving_cert(ca, tmp_path, "proxy", ("localhost", "127.0.0.1"))
    leaf = _load(cert_path)
    store = Store([_load(ca.cert_path)])

    for subject in (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))):
        PolicyBuilder().store(store).build_server_verifier(subject).verify(leaf, [])
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName("example.com")).verify(leaf, [])
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_client_certificate_carries_user_and_groups(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path)
    cert_path, _ = certs.issue_client_cert(ca, tmp_path, "admin", "admin", ("system:masters", "ops"))
    leaf = _load(cert_path)

    # (cryptography's client verifier enforces web-PKI rules the apiserver does not, so check the
    # signature directly; the admin kubeconfig working against the apiserver proves the rest.)
    leaf.verify_directly_issued_by(_load(ca.cert_path))
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["admin"]
    assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters", "ops",
    ]


def test_ca_written_to_disk_can_be_loaded_again_and_keeps_signing(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path, "root")
    again = certs.CertificateAuthority.load(ca.cert_path, ca.key_path)
    cert_path, _ = certs.issue_serving_cert(again, tmp_path / "out", "server")
    leaf = _load(cert_path)
    PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])
