"""A worker's credential record: which credential hashes work now, and until when.

The worker's Secret (`names.worker_secret_name`) holds the current credential's sha256 and,
where the group rotates credentials (`spec.credentialRotation.periodSeconds`), when it expires.
Rotating (`rotate_path`, with the current credential) moves the current hash to `previous-*`,
valid until the group's overlap ends, and stores a new current one: old and new both work for
the overlap, then only the new one. Registering again replaces the record (no previous).
Deleting the Secret revokes every credential of the worker at once.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hrw_api import WorkerGroupSpec, names
from hrw_api.times import format_time, parse_time

from .auth import decode_secret_value, tokens_equal


@dataclass(frozen=True)
class CredentialRecord:
    current: str
    """The current credential's hex sha256."""
    expires: datetime | None = None
    previous: str | None = None
    previous_until: datetime | None = None
    resource_version: str = ""

    def accepts(self, presented: str, now: datetime) -> bool:
        """Does the credential whose hash is `presented` work at `now`? (Constant-time comparisons.)"""
        current = tokens_equal(presented, self.current) and (self.expires is None or now < self.expires)
        previous = (self.previous is not None and self.previous_until is not None
                    and tokens_equal(presented, self.previous) and now < self.previous_until)
        return current or previous

    def is_current(self, presented: str) -> bool:
        return tokens_equal(presented, self.current)

    def rotated(self, new_hash: str, spec: WorkerGroupSpec, now: datetime) -> CredentialRecord:
        """The record after a rotation at `now`: the new hash current, this one valid for the overlap."""
        until = now + timedelta(seconds=spec.credential_overlap_seconds)
        if self.expires is not None:
            until = min(until, self.expires)
        return CredentialRecord(new_hash, expiry(spec, now), self.current, until, self.resource_version)

    def secret_data(self) -> dict[str, str | None]:
        """The Secret's `data` (base64); None deletes a key in a merge patch."""
        return {names.WORKER_CREDENTIAL_HASH_KEY: _b64(self.current),
                names.WORKER_CREDENTIAL_EXPIRES_KEY: _b64(format_time(self.expires)) if self.expires else None,
                names.WORKER_PREVIOUS_HASH_KEY: _b64(self.previous) if self.previous else None,
                names.WORKER_PREVIOUS_UNTIL_KEY: _b64(format_time(self.previous_until))
                if self.previous_until else None}

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> CredentialRecord | None:
        """The record in a worker's Secret, or None when it is not one (then nothing works)."""
        if secret.get("type") != names.SECRET_TYPE_WORKER_CREDENTIAL:
            return None
        found = secret.get("metadata")
        meta: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        if meta.get("deletionTimestamp"):
            return None
        data = dict(secret)
        current = decode_secret_value(data, names.WORKER_CREDENTIAL_HASH_KEY)
        if not current:
            return None
        try:
            expires = parse_time(decode_secret_value(data, names.WORKER_CREDENTIAL_EXPIRES_KEY))
            until = parse_time(decode_secret_value(data, names.WORKER_PREVIOUS_UNTIL_KEY))
        except ValueError:
            return None
        return cls(current, expires, decode_secret_value(data, names.WORKER_PREVIOUS_HASH_KEY), until,
                   str(meta.get("resourceVersion") or ""))


def expiry(spec: WorkerGroupSpec, now: datetime) -> datetime | None:
    """When a credential issued at `now` stops working, under the group's rotation period."""
    if spec.credential_rotation_seconds is None:
        return None
    return now + timedelta(seconds=spec.credential_rotation_seconds)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
