"""Worker identity: the credential format, registration, and verifying a credential on each request.

A worker credential is `hrw1.<namespace>.<group>.<worker>.<secret>`. Namespace, group and worker
are DNS-1123 labels (no dots), so the proxy finds the worker's record — the Secret
`names.worker_secret_name(group, worker)` in that namespace — with one GET, never a cluster-wide
search. The cluster stores only `sha256(credential)`; the proxy compares digests in constant
time. Deleting the Secret (or its WorkerGroup, which owns it) revokes the worker.

A worker's record (credentials.py) may hold two hashes for a while: after a rotation the old
credential works beside the new one until the group's overlap ends, and where the group rotates
credentials the current one expires. Verification caches each worker's record for a short TTL
(`--credential-cache-ttl`, at most 5 s): a revoked credential stops working within that TTL.
A presented credential that does not match a cached hash refetches it (at most once a second
per worker), so a re-registered worker is accepted at once by a proxy that had cached its old
hash.

Registration tokens and credentials are never logged: only `<ns>/<group>/<worker>` is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hrw_api import times

if TYPE_CHECKING:
    from .credentials import CredentialRecord

CREDENTIAL_PREFIX = "hrw1"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_PART = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_REFETCH_AFTER_MISMATCH = 1.0
_CACHE_SIZE = 10_000


def is_dns_label(value: object) -> bool:
    return isinstance(value, str) and bool(_DNS_LABEL.match(value))


@dataclass(frozen=True)
class WorkerIdentity:
    """Who is calling: the worker `worker` of WorkerGroup `group` in `namespace`."""

    namespace: str
    group: str
    worker: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.group}/{self.worker}"


def new_credential(identity: WorkerIdentity) -> str:
    """A fresh credential for `identity` (256 bits of randomness)."""
    return f"{CREDENTIAL_PREFIX}.{identity.namespace}.{identity.group}.{identity.worker}.{secrets.token_urlsafe(32)}"


def parse_credential(credential: str) -> WorkerIdentity | None:
    """The identity a credential claims, or None if it is not of our format (then: 401)."""
    parts = credential.split(".")
    if len(parts) != 5 or parts[0] != CREDENTIAL_PREFIX:
        return None
    _, namespace, group, worker, secret = parts
    if not (is_dns_label(namespace) and is_dns_label(group) and is_dns_label(worker)):
        return None
    if not _SECRET_PART.match(secret):
        return None
    return WorkerIdentity(namespace, group, worker)


def credential_hash(credential: str) -> str:
    """What the cluster stores: the hex sha256 of the whole credential."""
    return hashlib.sha256(credential.encode()).hexdigest()


def tokens_equal(presented: str, expected: str) -> bool:
    """Constant-time comparison of two tokens (or digests)."""
    return hmac.compare_digest(presented.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def decode_secret_value(secret: dict[str, object], key: str) -> str | None:
    """A Secret's `data[key]` decoded, or None when absent or not valid base64/UTF-8."""
    data = secret.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(key), str):
        return None
    try:
        return base64.b64decode(data[key], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


# (ns, group, worker) -> the worker's credential record, or None when there is no (valid) record.
RecordFetcher = Callable[[WorkerIdentity], Awaitable["CredentialRecord | None"]]


@dataclass
class _Entry:
    stored: CredentialRecord | None
    fetched_at: float


class CredentialVerifier:
    """Checks worker credentials against the hashes stored in the cluster, with a short-TTL cache.

    The cache is an optimisation only: every process verifies on its own, so several proxies
    serve the same workers and a restart loses nothing.
    """

    def __init__(self, fetch: RecordFetcher, *, ttl: float, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = times.now) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._cache: OrderedDict[WorkerIdentity, _Entry] = OrderedDict()

    def knows(self, identity: WorkerIdentity) -> bool:
        """Has this process looked this worker up before (whatever the answer)?"""
        return identity in self._cache

    def cached_at(self, identity: WorkerIdentity) -> float | None:
        """When the cached verdict on this worker was fetched, or None when there is none still fresh.

        A long-lived request (a watch) re-verifies only when this changes, not at each event."""
        entry = self._cache.get(identity)
        if entry is None or self._clock() - entry.fetched_at >= self._ttl:
            return None
        return entry.fetched_at

    def remember(self, identity: WorkerIdentity, stored: CredentialRecord) -> None:
        """Record what this process just wrote (registration, rotation), so its own next check needs no GET."""
        self._put(identity, stored)

    async def record(self, credential: str) -> tuple[WorkerIdentity, CredentialRecord] | None:
        """The caller's identity and its record, fetched fresh (a rotation decides on it), or None."""
        identity = parse_credential(credential)
        if identity is None:
            return None
        stored = await self._fetch(identity)
        self._put(identity, stored)
        if stored is None or not stored.accepts(credential_hash(credential), self._wall_clock()):
            return None
        return identity, stored

    def _put(self, identity: WorkerIdentity, stored: CredentialRecord | None) -> None:
        self._cache[identity] = _Entry(stored, self._clock())
        self._cache.move_to_end(identity)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    async def verify(self, credential: str) -> WorkerIdentity | None:
        """The caller's identity, or None: malformed, unknown, revoked or wrong credential."""
        identity = parse_credential(credential)
        if identity is None:
            return None
        presented = credential_hash(credential)
        now = self._clock()
        entry = self._cache.get(identity)
        if entry is not None and now - entry.fetched_at < self._ttl:
            if entry.stored is not None and entry.stored.accepts(presented, self._wall_clock()):
                return identity
            if now - entry.fetched_at < _REFETCH_AFTER_MISMATCH:
                return None
        stored = await self._fetch(identity)
        self._put(identity, stored)
        if stored is not None and stored.accepts(presented, self._wall_clock()):
            return identity
        return None
