"""A runbook runs on a group that demands signatures only if a trusted key signed its digest."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hrw_agent.signing import sign, verify
from hrw_api import Signature, TrustedKey, content_digest

DIGEST = content_digest("echo hello\n")


def _key(key_id: str = "ops") -> tuple[Ed25519PrivateKey, TrustedKey]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, TrustedKey(key_id, base64.b64encode(raw).decode())


def test_valid_signature_by_trusted_key_verifies():
    private, trusted = _key()
    assert verify(DIGEST, Signature("ops", sign(DIGEST, private)), [trusted]) is None


def test_signature_of_other_content_is_rejected():
    private, trusted = _key()
    other = sign(content_digest("rm -rf /\n"), private)
    problem = verify(DIGEST, Signature("ops", other), [trusted])
    assert problem is not None and "does not match" in problem


def test_unknown_key_id_is_rejected_naming_the_known_keys():
    private, trusted = _key("ops")
    problem = verify(DIGEST, Signature("mallory", sign(DIGEST, private)), [trusted])
    assert problem is not None and "mallory" in problem and "ops" in problem


def test_signature_by_untrusted_key_under_a_trusted_id_is_rejected():
    _, trusted = _key("ops")
    attacker = Ed25519PrivateKey.generate()
    assert verify(DIGEST, Signature("ops", sign(DIGEST, attacker)), [trusted]) is not None


def test_missing_signature_is_rejected():
    _, trusted = _key()
    assert "no spec.signature" in (verify(DIGEST, None, [trusted]) or "")


def test_garbage_base64_is_rejected_not_raised():
    _, trusted = _key()
    assert verify(DIGEST, Signature("ops", "not base64!!"), [trusted]) is not None
    assert verify(DIGEST, Signature("ops", "AAAA"), [TrustedKey("ops", "%%%")]) is not None
