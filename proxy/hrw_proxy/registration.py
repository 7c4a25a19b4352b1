"""Registering a worker: a registration token in, the worker's own credential out.

The token is one issued by `hrw get-token --ttl` (it expires, and may allow only so many
registrations), or the group's long-lived one where the group opted in (admission.py).

The request names the worker (a DNS-1123 label) and says what it runs (hostname, agent version,
interpreters). The cluster keeps only the credential's sha256, in a Secret owned by the
WorkerGroup; registering again replaces it. A name whose Lease is live is refused (409): with
the group's token alone, a second agent could otherwise take over a running worker's jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hrw_api import InvalidObject, RegisterRequest, WorkerGroup, names
from hrw_api.times import parse_time

from . import admission
from .audit import log
from .auth import CredentialVerifier, WorkerIdentity, credential_hash, new_credential
from .bodies import parse_object
from .credentials import CredentialRecord, expiry
from .ownership import owner_reference
from .refusals import ProxyError, bad_request
from .upstream import Upstream


def parse_registration(body: Any) -> RegisterRequest:
    """The contract's `RegisterRequest`, or 400 naming the field that does not fit."""
    try:
        return RegisterRequest.parse(body)
    except InvalidObject as exc:
        raise bad_request(str(exc)) from None


async def register(upstream: Upstream, verifier: CredentialVerifier, token: str, namespace: str, group: str,
                   body: Any) -> tuple[WorkerIdentity, str, CredentialRecord]:
    """Check the request and the token, store the new credential's hash; the identity, the
    credential (shown to the agent once) and its record."""
    request = parse_registration(body)
    now = datetime.now(UTC)
    admitted = await admission.check(upstream, token, namespace, group, now)
    group_obj = parse_object(WorkerGroup, await upstream.get_group(namespace, group), "WorkerGroup")
    admission.check_group_accepts(admitted, group_obj)
    group_uid = group_obj.meta.uid
    lease = await upstream.get_lease(namespace, names.lease_name(group, request.worker))
    check_worker_name_free(request.worker, lease, now)
    await admission.spend(upstream, admitted, namespace, group, now)
    identity = WorkerIdentity(namespace, group, request.worker)
    credential = new_credential(identity)
    record = CredentialRecord(credential_hash(credential), expiry(group_obj.spec, now))
    await upstream.store_worker_secret(worker_secret(identity, group_uid, record, request))
    verifier.remember(identity, record)
    log.info("worker registered", worker=str(identity), hostname=request.hostname, token=admitted.description)
    return identity, credential, record


def worker_secret(identity: WorkerIdentity, group_uid: str, record: CredentialRecord,
                  request: RegisterRequest) -> dict[str, Any]:
    """The worker's record: its credential's hash, what it said it runs, owned by its WorkerGroup."""
    # The request's fields are bounded by `RegisterRequest.parse`, as the annotations need.
    annotations = {names.ANNOTATION_HOSTNAME: request.hostname,
                   names.ANNOTATION_AGENT_VERSION: request.agent_version,
                   names.ANNOTATION_INTERPRETERS: ",".join(request.interpreters)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.SECRET_TYPE_WORKER_CREDENTIAL,
        "metadata": {
            "name": names.worker_secret_name(identity.group, identity.worker),
            "namespace": identity.namespace,
            "labels": {names.LABEL_WORKER_GROUP: identity.group, names.LABEL_WORKER: identity.worker,
                       names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [owner_reference(names.WORKER_GROUP, identity.group, group_uid)],
        },
        "data": record.secret_data(),  # None: no such key (upstream drops them from a create)
    }


def check_worker_name_free(worker: str, lease: Mapping[str, Any] | None, now: datetime) -> None:
    """Registration may not take the name of a live worker: with the group's token alone, a second
    agent could otherwise replace a running worker's credential and take over the jobs it holds.
    An agent that lost its state dir registers again once its old Lease has lapsed."""
    spec = (lease or {}).get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return
    ago = max(0.0, (now - renewed).total_seconds())
    left = duration - ago
    if left > 0:
        raise ProxyError(409, f"worker {worker!r} is live (its Lease was renewed {ago:.0f}s ago): a second agent "
                              f"cannot take its name. Stop that agent, or register again in {left:.0f}s when its "
                              f"Lease has lapsed, or choose another worker name", reason="AlreadyExists")
