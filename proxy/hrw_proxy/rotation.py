"""Rotating a worker's credential without downtime: the current credential in, a new one out.

The agent calls `wire.rotate_path` with its current credential (a rotated-out one, still valid
during the overlap, is refused: it would take over from the newest). The proxy issues a new
credential, and the worker's record keeps the old hash valid until the group's overlap ends
(`spec.credentialRotation.overlapSeconds`): requests already on their way, an open watch and
other replicas' caches carry on, then only the new credential works. The record is written with
a resourceVersion precondition, so two rotations at once cannot both win. Where the group sets
`spec.credentialRotation.periodSeconds` the new credential expires that long after now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hrw_api import WorkerGroup, wire
from hrw_api.times import format_time

from .audit import log
from .auth import CredentialVerifier, WorkerIdentity, credential_hash, new_credential
from .bodies import parse_object
from .credentials import CredentialRecord
from .refusals import ProxyError, forbidden
from .routes import Route
from .upstream import Upstream


def check_own_credential(identity: WorkerIdentity, route: Route) -> None:
    if (route.name, route.worker) != (identity.group, identity.worker):
        raise forbidden(f"worker {identity} may rotate only its own credential, not that of "
                        f"{route.namespace}/{route.name}/{route.worker}")


async def rotate(upstream: Upstream, verifier: CredentialVerifier, credential: str,
                 identity: WorkerIdentity) -> tuple[str, CredentialRecord]:
    """Issue a new credential for `identity`, whose current one is `credential`; the new one and its record."""
    found = await verifier.record(credential)
    if found is None or found[0] != identity:
        raise ProxyError(401, "the worker credential is invalid or revoked: register the worker again")
    record = found[1]
    if not record.is_current(credential_hash(credential)):
        raise ProxyError(409, "this credential was rotated already and works only until the overlap ends: rotate "
                              "with the newest one (the agent's credential file)", reason="Conflict")
    group = parse_object(WorkerGroup, await upstream.get_group(identity.namespace, identity.group), "WorkerGroup")
    new = new_credential(identity)
    now = datetime.now(UTC)
    rotated = record.rotated(credential_hash(new), group.spec, now)
    await upstream.rotate_worker_secret(identity, rotated)
    verifier.remember(identity, rotated)
    log.info("worker credential rotated", worker=str(identity),
             old_valid_until=format_time(rotated.previous_until) if rotated.previous_until else "-",
             expires=format_time(rotated.expires) if rotated.expires else "never")
    return new, rotated


def answer(identity: WorkerIdentity, credential: str, record: CredentialRecord) -> dict[str, Any]:
    """The body an agent gets after registering or rotating (`wire.RegisterResponse`)."""
    expires = format_time(record.expires) if record.expires else None
    return wire.RegisterResponse(identity.worker, credential, expires).to_dict()
