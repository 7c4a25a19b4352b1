"""Registration tokens that expire: what `hrw get-token --ttl` issues and the proxy spends.

A group's long-lived registration token (the Secret `names.registration_secret_name(group)`)
works any number of times and never expires, so a group accepts it only when it opts in
(`spec.registration.groupToken: true`). The default way to register an agent is an issued
token: `hrw get-token GROUP --ttl 1h [--uses N]` writes one Secret per token,
`names.issued_token_secret_name(group, id)` of type `names.SECRET_TYPE_ISSUED_TOKEN`, labelled
with its group and owned by the WorkerGroup (deleted with it), holding the token's sha256 and
never the token, its expiry, and how many registrations it has left (no count: any number until
it expires). Deleting the Secret revokes the token.

A token reads `hrwr1.<id>.<secret>`: the id names its Secret, so the proxy finds it with one GET
(it may not list Secrets). The proxy spends a use with a merge patch that carries the Secret's
resourceVersion, a precondition the apiserver checks: of two replicas spending the last use at
once, one gets 409 Conflict, reads the Secret again and finds no use left.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from . import _fields as f
from . import names
from ._fields import JSON
from .errors import InvalidObject
from .times import format_time, parse_time

TOKEN_PREFIX: Final = "hrwr1"
MAX_TTL_SECONDS: Final = 30 * 86400
"""The longest a token may live: a token meant for one install should not outlive the month."""
MAX_USES: Final = 10_000
HASH_KEY: Final = "sha256"
EXPIRES_KEY: Final = "expires"
USES_KEY: Final = "uses"
_ID_LENGTH: Final = 10
_ID = re.compile(r"^[a-z0-9]{10}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_TTL = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def token_hash(token: str) -> str:
    """What the cluster stores of a token: its hex sha256."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its id (the id is not secret: it names the token's Secret)."""
    token_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(_ID_LENGTH))
    return f"{TOKEN_PREFIX}.{token_id}.{secrets.token_urlsafe(32)}", token_id


def issued_token_id(token: str) -> str | None:
    """The id of an issued token, or None when `token` is not one (a group's long-lived token)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not _ID.match(parts[1]) or not _SECRET.match(parts[2]):
        return None
    return parts[1]


def parse_ttl(text: str) -> int:
    """`90s`, `30m`, `1h`, `7d` in seconds; ValueError naming the accepted forms otherwise."""
    match = _TTL.match(text.strip())
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else 0
    if not 0 < seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"a token's lifetime is a number and a unit (s, m, h, d), e.g. 1h, between 1s and "
                         f"{MAX_TTL_SECONDS // 86400}d, not {text!r}")
    return seconds


@dataclass(frozen=True)
class IssuedToken:
    """An issued token's record, as its Secret holds it."""

    token_id: str
    digest: str
    expires: datetime
    uses_left: int | None
    """Registrations it still allows; None: any number until it expires."""
    resource_version: str

    def refusal(self, now: datetime) -> str | None:
        """Why the token can no longer register anyone, or None while it can."""
        if now >= self.expires:
            return f"registration token {self.token_id} expired at {format_time(self.expires)}"
        if self.uses_left is not None and self.uses_left < 1:
            return f"registration token {self.token_id} has been used as many times as it allowed"
        return None

    def spend_patch(self) -> JSON:
        """A merge patch taking one use, valid only against the Secret as it was read."""
        assert self.uses_left is not None and self.uses_left > 0
        return {"metadata": {"resourceVersion": self.resource_version},
                "data": {USES_KEY: _b64(str(self.uses_left - 1))}}

    @classmethod
    def parse(cls, secret: Mapping[str, Any]) -> IssuedToken:
        """The record in an issued token's Secret; InvalidObject when it is not one."""
        if secret.get("type") != names.SECRET_TYPE_ISSUED_TOKEN:
            raise InvalidObject("type", f"must be {names.SECRET_TYPE_ISSUED_TOKEN}")
        meta = f.obj(secret.get("metadata"), "metadata")
        labels = f.string_map(meta, "labels", "metadata")
        data = f.string_map(secret, "data", "")
        digest = _decoded(data, HASH_KEY)
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidObject(f"data.{HASH_KEY}", "must be a hex sha256")
        try:
            expires = parse_time(_decoded(data, EXPIRES_KEY))
        except ValueError:
            expires = None
        if expires is None:
            raise InvalidObject(f"data.{EXPIRES_KEY}", "must be an RFC 3339 time")
        uses_text = _decoded(data, USES_KEY) if USES_KEY in data else None
        if uses_text is not None and not uses_text.isdigit():
            raise InvalidObject(f"data.{USES_KEY}", "must be a whole number")
        return cls(token_id=labels.get(names.LABEL_TOKEN_ID, ""), digest=digest, expires=expires,
                   uses_left=int(uses_text) if uses_text is not None else None,
                   resource_version=f.opt_str(meta, "resourceVersion", "metadata") or "")


def token_secret(namespace: str, group: str, group_uid: str, token: str, *, ttl_seconds: int, uses: int | None,
                 now: datetime) -> JSON:
    """The Secret that records an issued `token` of WorkerGroup `group` (uid `group_uid`)."""
    token_id = issued_token_id(token)
    if token_id is None:
        raise ValueError("not an issued token")
    if uses is not None and not 1 <= uses <= MAX_USES:
        raise ValueError(f"a token allows between 1 and {MAX_USES} registrations")
    data = {HASH_KEY: _b64(token_hash(token)),
            EXPIRES_KEY: _b64(format_time(now + timedelta(seconds=ttl_seconds)))}
    if uses is not None:
        data[USES_KEY] = _b64(str(uses))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.SECRET_TYPE_ISSUED_TOKEN,
        "metadata": {
            "name": names.issued_token_secret_name(group, token_id),
            "namespace": namespace,
            "labels": {names.LABEL_WORKER_GROUP: group, names.LABEL_TOKEN_ID: token_id,
                       names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [{"apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "name": group,
                                 "uid": group_uid}],
        },
        "data": data,
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _decoded(data: Mapping[str, str], key: str) -> str:
    try:
        return base64.b64decode(data.get(key, ""), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidObject(f"data.{key}", "must be base64 of UTF-8 text") from None
