"""A worker's writes to its own Lease: its heartbeat, and the only Lease it may touch.

A worker gets, creates, replaces and merge-patches `names.lease_name(group, worker)` and nothing
else; the proxy forces the Lease's labels (the operator finds a group's workers by them), keeps
`spec.holderIdentity` the worker's own name, drops owner references and finalizers, and writes
the renewal times from its own clock (see `_stamp_lease_times`). What the worker writes must
fit the contract's `WorkerLease` (its annotations are the worker's own words about itself,
typed and bounded there), and carry only the contract's labels, annotations and spec members
(`hrw_api.lease.WORKER_LABELS`, `WORKER_ANNOTATIONS`, `WORKER_LEASE_SPEC`), or it is refused with
a 400 naming the field: a Lease the operator cannot read would mark the worker's entry invalid.
A Lease the proxy creates or replaces is owned by the worker's WorkerGroup (`owned_by_group`), so
deleting the group takes its workers' Leases with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hrw_api import InvalidObject, WorkerGroup, WorkerLease, names
from hrw_api.lease import WORKER_ANNOTATIONS, WORKER_LABELS, WORKER_LEASE_SPEC
from hrw_api.times import format_micro_time

from .auth import WorkerIdentity
from .ownership import owner_reference
from .refusals import ProxyError, forbidden

MAX_LEASE_TRANSITIONS = 2**31 - 1


def check_lease_name(identity: WorkerIdentity, name: str) -> None:
    own = names.lease_name(identity.group, identity.worker)
    if name != own:
        raise forbidden(f"worker {identity} may only use its own Lease {own!r}, not {name!r}")


def sanitize_lease(identity: WorkerIdentity, body: Any, *, path_name: str | None,
                   now: datetime | None = None) -> dict[str, Any]:
    """A Lease body to create or replace: own name, labels forced, holder must be the worker, and
    its renewTime/acquireTime are the proxy's clock (see `_stamp_lease_times`)."""
    if not isinstance(body, Mapping):
        raise ProxyError(400, "a Lease must be a JSON object")
    lease = dict(body)
    if lease.get("kind", "Lease") != "Lease":
        raise ProxyError(400, "the body must be a coordination.k8s.io/v1 Lease")
    meta = dict(_mapping(lease.get("metadata"), "metadata"))
    name = meta.get("name") or path_name
    if path_name is not None and meta.get("name") not in (None, path_name):
        raise ProxyError(400, f"metadata.name {meta.get('name')!r} does not match the path's {path_name!r}")
    check_lease_name(identity, str(name))
    meta["name"] = name
    meta["namespace"] = identity.namespace
    meta["labels"] = {**_mapping(meta.get("labels"), "metadata.labels"), **lease_labels(identity)}
    for dropped in ("ownerReferences", "finalizers"):
        meta.pop(dropped, None)
    lease["metadata"] = meta
    spec = dict(_mapping(lease.get("spec"), "spec"))
    holder = spec.setdefault("holderIdentity", identity.worker)
    if holder != identity.worker:
        raise forbidden(f"spec.holderIdentity of worker {identity.worker!r}'s Lease must be {identity.worker!r}")
    _stamp_lease_times(spec, now)
    lease["spec"] = spec
    _check_fits(lease)
    return lease


def sanitize_lease_patch(identity: WorkerIdentity, patch: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """A merge patch of the worker's own Lease: labels stay forced, the holder stays the worker, the
    times it renews are the proxy's clock."""
    if not isinstance(patch, Mapping):
        raise forbidden("a worker may patch its Lease only with a merge patch (a JSON object)")
    result = dict(patch)
    meta = dict(_mapping(result.get("metadata"), "metadata"))
    for key in ("name", "namespace"):
        if key in meta:
            raise forbidden(f"a Lease patch may not change metadata.{key}")
    for dropped in ("ownerReferences", "finalizers"):
        if dropped in meta:
            raise forbidden(f"a Lease patch may not set metadata.{dropped}")
    if "labels" in meta:
        if meta["labels"] is None:
            raise forbidden("a Lease patch may not remove the Lease's labels")
        meta["labels"] = {**_mapping(meta["labels"], "metadata.labels"), **lease_labels(identity)}
    if meta:
        result["metadata"] = meta
    if "spec" in result:
        spec = _mapping(result["spec"], "spec")
        if "holderIdentity" in spec and spec["holderIdentity"] != identity.worker:
            raise forbidden(f"spec.holderIdentity of worker {identity.worker!r}'s Lease must be {identity.worker!r}")
        spec = dict(spec)
        _stamp_lease_times(spec, now)
        result["spec"] = spec
    _check_fits(_patched_fields(identity, result))
    return result


def _patched_fields(identity: WorkerIdentity, patch: Mapping[str, Any]) -> dict[str, Any]:
    """The worker's Lease as far as a merge patch sets it (members it deletes with null left out),
    so that what the patch writes is checked like a whole Lease."""
    meta = _mapping(patch.get("metadata"), "metadata")
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    spec = _mapping(patch.get("spec"), "spec")
    return {"metadata": {"name": names.lease_name(identity.group, identity.worker),
                         "labels": {**{k: v for k, v in labels.items() if v is not None}, **lease_labels(identity)},
                         "annotations": {k: v for k, v in annotations.items() if v is not None}},
            "spec": {k: v for k, v in spec.items() if v is not None}}


def _check_fits(lease: Mapping[str, Any]) -> None:
    meta = _mapping(lease.get("metadata"), "metadata")
    for key in _mapping(meta.get("labels"), "metadata.labels"):
        if key not in WORKER_LABELS:
            raise ProxyError(400, f"metadata.labels[{key}]: a worker's Lease carries only the labels "
                                  f"{sorted(WORKER_LABELS)}")
    managed_by = _mapping(meta.get("labels"), "metadata.labels").get(names.LABEL_MANAGED_BY)
    if managed_by not in (None, names.MANAGED_BY):
        raise ProxyError(400, f"metadata.labels[{names.LABEL_MANAGED_BY}]: must be {names.MANAGED_BY!r}")
    for key in _mapping(meta.get("annotations"), "metadata.annotations"):
        if key not in WORKER_ANNOTATIONS:
            raise ProxyError(400, f"metadata.annotations[{key}]: a worker's Lease carries only the annotations "
                                  f"{sorted(WORKER_ANNOTATIONS)}")
    spec = _mapping(lease.get("spec"), "spec")
    for key in spec:
        if key not in WORKER_LEASE_SPEC:
            raise ProxyError(400, f"spec.{key}: a worker's Lease sets only {sorted(WORKER_LEASE_SPEC)}")
    transitions = spec.get("leaseTransitions")
    if transitions is not None and (isinstance(transitions, bool) or not isinstance(transitions, int)
                                    or not 0 <= transitions <= MAX_LEASE_TRANSITIONS):
        raise ProxyError(400, f"spec.leaseTransitions: must be an integer from 0 to {MAX_LEASE_TRANSITIONS}")
    try:
        WorkerLease.parse(lease)
    except InvalidObject as exc:
        raise ProxyError(400, f"the Lease does not fit the hrw contract: {exc}") from None


def owned_by_group(lease: dict[str, Any], group: WorkerGroup) -> dict[str, Any]:
    """The Lease (as `sanitize_lease` made it) owned by the worker's WorkerGroup: deleting the group
    deletes it (the API server's garbage collector)."""
    meta = dict(lease["metadata"])
    meta["ownerReferences"] = [owner_reference(names.WORKER_GROUP, group.meta.name, group.meta.uid)]
    return {**lease, "metadata": meta}


def _stamp_lease_times(spec: dict[str, Any], now: datetime | None) -> None:
    """The renewal times a worker writes, replaced by the proxy's own clock.

    The operator declares a worker lost when renewTime + leaseDurationSeconds passes on *its*
    clock. A datacenter server's clock is not the cluster's: one running behind by more than the
    lease duration would have every job it claims requeued at once, one running ahead would keep a
    dead worker's jobs held for as long as it is ahead. The proxy's clock is the cluster's.
    """
    stamp = format_micro_time(now or datetime.now(UTC))
    for key in ("renewTime", "acquireTime"):
        if spec.get(key) is not None:
            spec[key] = stamp


def lease_labels(identity: WorkerIdentity) -> dict[str, str]:
    return {names.LABEL_WORKER_GROUP: identity.group, names.LABEL_WORKER: identity.worker}


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProxyError(400, f"{path} must be an object")
    return value
