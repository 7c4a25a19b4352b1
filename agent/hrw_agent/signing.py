"""Runbook signatures: a detached ed25519 signature over the content digest string.

A group that sets `requireSignedRunbooks` lists trusted public keys (base64 of the raw 32-byte
key, with a key id); the runbook carries `spec.signature` (key id + base64 of the raw 64-byte
signature over the UTF-8 bytes of `sha256:<hex>`). The agent checks it before a job runs, so a
runbook changed by someone who cannot sign never runs on a server of that group.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hrw_api import Signature, TrustedKey


def verify(digest: str, signature: Signature | None, trusted_keys: Sequence[TrustedKey]) -> str | None:
    """None if `signature` is a valid signature of `digest` by a trusted key, else why not."""
    if signature is None:
        return "the group requires signed runbooks and the runbook has no spec.signature"
    key = next((k for k in trusted_keys if k.key_id == signature.key_id), None)
    if key is None:
        known = ", ".join(sorted(k.key_id for k in trusted_keys)) or "none"
        return f"signature key id {signature.key_id!r} is not among the group's trusted keys ({known})"
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key, validate=True))
    except (binascii.Error, ValueError):
        return f"trusted key {key.key_id!r} is not base64 of a raw 32-byte ed25519 public key"
    try:
        raw = base64.b64decode(signature.value, validate=True)
    except (binascii.Error, ValueError):
        return "spec.signature.value is not valid base64"
    try:
        public.verify(raw, digest.encode("utf-8"))
    except InvalidSignature:
        return f"the signature by key {key.key_id!r} does not match the runbook's digest {digest}"
    return None


def sign(digest: str, private_key: Ed25519PrivateKey) -> str:
    """The base64 signature of `digest` (for tests and tooling that signs runbooks)."""
    return base64.b64encode(private_key.sign(digest.encode("utf-8"))).decode()
