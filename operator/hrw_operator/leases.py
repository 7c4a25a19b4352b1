"""The operator's in-memory view of worker Leases: who is alive, without a write per heartbeat.

Agents renew a `coordination.k8s.io/v1` Lease (`names.lease_name(group, worker)`, labelled with
the group and the worker) every few seconds. The operator watches those Leases and keeps only
this view of the contract's `WorkerLease`s; the WorkerGroup status and the RunbookJob
lost-worker timer read it. A renewal updates the view and nothing else: the group's status is
written only when a worker joins, leaves or changes readiness (see `workergroups`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hrw_api import InvalidObject, WorkerLease

from .logs import kv

logger = logging.getLogger("hrw.operator.leases")

Key = tuple[str, str]  # (namespace, name)


def worker_lease(body: Mapping[str, Any]) -> WorkerLease | None:
    """The worker's Lease `body` holds, read as untrusted (`WorkerLease.read`: a value that does not
    fit is kept as its `problem`, logged); None (logged) for a Lease that is not a worker's."""
    meta = body.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    try:
        lease = WorkerLease.read(body)
    except InvalidObject as exc:
        kv(logger, logging.WARNING, "lease.unparseable", lease=name, field=exc.field, problem=exc.message[:300])
        return None
    if lease.problem is not None:
        kv(logger, logging.WARNING, "lease.invalid", lease=name, field=lease.problem.field,
           problem=lease.problem.message[:300])
    return lease


class LeaseView:
    """Worker Leases by (namespace, name) and by (namespace, group). Fed by the Lease watch."""

    def __init__(self) -> None:
        self._by_key: dict[Key, WorkerLease] = {}
        self._by_group: dict[Key, dict[str, WorkerLease]] = {}
        self._followers: list[Callable[[WorkerLease | None, WorkerLease | None], None]] = []

    def follow(self, callback: Callable[[WorkerLease | None, WorkerLease | None], None]) -> None:
        """Call `callback(old, new)` after every put (`new` the Lease) and removal (`new` None); cheap
        callbacks only (a controller's `soon`), as `frame.View.follow`."""
        self._followers.append(callback)

    def _changed(self, old: WorkerLease | None, new: WorkerLease | None) -> None:
        for callback in self._followers:
            callback(old, new)

    def put(self, lease: WorkerLease) -> WorkerLease | None:
        """Store a Lease; return the one it replaces."""
        key = (lease.namespace, lease.name)
        old = self._by_key.get(key)
        if old is not None and old.group != lease.group:
            self._by_group.get((old.namespace, old.group), {}).pop(old.name, None)
        self._by_key[key] = lease
        self._by_group.setdefault((lease.namespace, lease.group), {})[lease.name] = lease
        self._changed(old, lease)
        return old

    def remove(self, namespace: str, name: str) -> WorkerLease | None:
        old = self._by_key.pop((namespace, name), None)
        if old is not None:
            members = self._by_group.get((namespace, old.group), {})
            members.pop(name, None)
            if not members:
                self._by_group.pop((namespace, old.group), None)
            self._changed(old, None)
        return old

    def get(self, namespace: str, name: str) -> WorkerLease | None:
        return self._by_key.get((namespace, name))

    def of_group(self, namespace: str, group: str) -> Iterable[WorkerLease]:
        return tuple(self._by_group.get((namespace, group), {}).values())
