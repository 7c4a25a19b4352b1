"""WorkerGroup: the registration-token Secret, and the group's workers aggregated from Leases.

- The registration Secret (`names.registration_secret_name(group)`, type
  `names.SECRET_TYPE_REGISTRATION`, key `names.REGISTRATION_TOKEN_KEY`, owned by the group) is
  created with a fresh random token when it is absent. **Rotation**: delete the Secret; the
  operator notices and creates a new one with a new token (already registered workers keep
  their own credentials; new agents need the new token).
- `status.workers`, `status.readyWorkers` and the `Available` condition come from the workers'
  Leases (`leases.LeaseView`). The status is written only when a worker joins, leaves or
  changes readiness: a Lease renewal updates the in-memory view and nothing else. One timer per
  group wakes at the earliest expiry of a ready worker's Lease to notice a silent death.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import kopf

from hrw_api import Condition, WorkerStatus, conditions, names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import SECRETS, WORKER_GROUPS
from hrw_api.times import now as utcnow

from . import events
from . import status as status_util
from .leases import LeaseInfo
from .logs import kv
from .scheduler import Timers

if TYPE_CHECKING:
    from .context import Operator

logger = logging.getLogger("hrw.operator.workergroups")

Key = tuple[str, str]


def aggregate(leases: Iterable[LeaseInfo], now: datetime) -> tuple[list[WorkerStatus], datetime | None]:
    """The workers (sorted by name) and the next moment one of them may change readiness. Pure."""
    workers: list[WorkerStatus] = []
    next_change: datetime | None = None
    for lease in sorted(leases, key=lambda lease: lease.worker):
        workers.append(lease.worker_status(now))
        expiry = lease.expires_at
        if expiry is not None and expiry > now and (next_change is None or expiry < next_change):
            next_change = expiry
    return workers, next_change


def desired_status(body: Mapping[str, Any], workers: list[WorkerStatus]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    ready = sum(1 for w in workers if w.ready and not w.draining)
    existing = [Condition.parse(c) for c in (body.get("status") or {}).get("conditions") or []]
    if ready:
        available = conditions.make(conditions.AVAILABLE, True, "WorkersReady",
                                    f"{ready} of {len(workers)} worker(s) ready", generation)
    else:
        available = conditions.make(conditions.AVAILABLE, False, "NoReadyWorkers",
                                    f"none of {len(workers)} worker(s) ready", generation)
    return {
        "workers": [w.to_dict() for w in workers],
        "readyWorkers": ready,
        "registrationTokenSecret": names.registration_secret_name(str(meta.get("name") or "")),
        "observedGeneration": generation,
        "conditions": [c.to_dict() for c in conditions.merge(existing, available)],
    }


def registration_secret(group: Mapping[str, Any]) -> dict[str, Any]:
    """A new registration-token Secret for `group`, owned by it (garbage-collected with it)."""
    meta = group.get("metadata") or {}
    name = str(meta.get("name") or "")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.registration_secret_name(name),
            "namespace": meta.get("namespace"),
            "labels": {names.LABEL_WORKER_GROUP: name, names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [{
                "apiVersion": names.API_VERSION,
                "kind": names.WORKER_GROUP,
                "name": name,
                "uid": meta.get("uid"),
                "controller": True,
            }],
        },
        "type": names.SECRET_TYPE_REGISTRATION,
        "stringData": {names.REGISTRATION_TOKEN_KEY: secrets.token_urlsafe(32)},
    }


class WorkerGroupController:
    def __init__(self, operator: Operator) -> None:
        self.op = operator
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.timers = Timers("workergroups")
        self._locks: dict[Key, asyncio.Lock] = {}
        self._secret_ok: set[Key] = set()
        self._pruned: set[str] = set()
        self.status_writes = 0

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self._secret_ok.discard(key)
            self.timers.cancel(key)
            return
        self.bodies[key] = dict(body)
        await self.reconcile(key)

    async def on_registration_secret_deleted(self, namespace: str, group: str) -> None:
        key = (namespace, group)
        self._secret_ok.discard(key)
        if key in self.bodies:
            await self.reconcile(key)

    async def on_lease(self, old: LeaseInfo | None, new: LeaseInfo | None) -> None:
        """A Lease changed: reconcile its group only if that worker's entry in the status would change."""
        lease = new or old
        if lease is None:
            return
        key = (lease.namespace, lease.group)
        body = self.bodies.get(key)
        if body is None:
            return
        listed = {w.get("name"): w for w in (body.get("status") or {}).get("workers") or []}
        if new is None:
            if lease.worker in listed:
                await self.reconcile(key)
            return
        wanted = new.worker_status(utcnow()).to_dict()
        current = listed.get(new.worker)
        if current is None or any(current.get(k) != v for k, v in wanted.items() if k not in self._pruned):
            await self.reconcile(key)

    async def reconcile(self, key: Key) -> None:
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                await self._reconcile(key)
            except Exception as exc:
                kv(logger, logging.ERROR, "workergroup.reconcile_failed", namespace=key[0], group=key[1],
                   error=type(exc).__name__, detail=str(exc)[:300])
                retry_at = utcnow() + timedelta(seconds=self.op.settings.error_retry_seconds)
                self.timers.schedule(key, retry_at, lambda: self.reconcile(key))

    async def _ensure_secret(self, key: Key, body: Mapping[str, Any]) -> None:
        if key in self._secret_ok:
            return
        name = names.registration_secret_name(key[1])
        try:
            await self.op.client.get(SECRETS.path(key[0], name))
        except ApiError as exc:
            if exc.code != 404:
                raise
            try:
                await self.op.client.create(SECRETS.path(key[0]), registration_secret(body))
            except ApiError as create_exc:
                if create_exc.code != 409:  # created meanwhile: fine
                    raise
            else:
                kv(logger, logging.INFO, "workergroup.registration_secret_created", namespace=key[0], group=key[1],
                   secret=name)
                await self.op.recorder.post(body, type_=events.NORMAL, reason="RegistrationTokenCreated",
                                            action="CreateSecret",
                                            note=f"registration token Secret {name} created")
        self._secret_ok.add(key)

    async def _reconcile(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None:
            return
        await self._ensure_secret(key, body)
        now = utcnow()
        workers, next_change = aggregate(self.op.leases.of_group(*key), now)
        desired = desired_status(body, workers)
        if status_util.differs(desired, body.get("status") or {}, ignore=self._pruned):
            answer = await self.op.client.patch(WORKER_GROUPS.path(key[0], key[1], "status"), {"status": desired})
            self.status_writes += 1
            self.bodies[key] = answer
            lost = status_util.pruned(desired, answer.get("status") or {})
            if lost - self._pruned:
                kv(logger, logging.WARNING, "workergroup.status_fields_pruned", fields=",".join(sorted(lost)))
                self._pruned |= lost
            kv(logger, logging.INFO, "workergroup.status", namespace=key[0], group=key[1],
               workers=len(workers), ready=desired["readyWorkers"])
        if next_change is not None:
            self.timers.schedule(key, next_change, lambda: self.reconcile(key))
        else:
            self.timers.cancel(key)

    async def close(self) -> None:
        await self.timers.close()


@kopf.on.event(names.GROUP, names.VERSION, "workergroups")
async def workergroup_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    await memo.groups.on_event(event.get("type"), event["object"])


@kopf.on.event("v1", "secrets", field="type", value=names.SECRET_TYPE_REGISTRATION)
async def registration_secret_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    if event.get("type") != "DELETED":
        return
    meta = event["object"].get("metadata") or {}
    group = (meta.get("labels") or {}).get(names.LABEL_WORKER_GROUP)
    if group:
        await memo.groups.on_registration_secret_deleted(str(meta.get("namespace") or ""), str(group))


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels={names.LABEL_WORKER_GROUP: kopf.PRESENT})
async def lease_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    obj = event["object"]
    meta = obj.get("metadata") or {}
    if event.get("type") == "DELETED":
        old = memo.leases.remove(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        await memo.groups.on_lease(old, None)
        return
    lease = LeaseInfo.parse(obj)
    if lease is None:
        return
    old = memo.leases.put(lease)
    await memo.groups.on_lease(old, lease)
