"""WorkerGroup: the registration-token Secret, and the group's workers aggregated from Leases.

- The long-lived registration Secret (`names.registration_secret_name(group)`, type
  `names.SECRET_TYPE_REGISTRATION`, key `names.REGISTRATION_TOKEN_KEY`, owned by the group) is
  created with a fresh random token when it is absent, only for a group that opts in
  (`spec.registration.groupToken: true`); other groups register agents with the expiring tokens
  `hrw get-token --ttl` issues (hrw_api.regtokens). **Rotation**: delete the Secret; the
  operator notices and creates a new one with a new token (already registered workers keep
  their own credentials; new agents need the new token). Turning the opt-in off leaves an
  existing Secret in place (the operator deletes nothing) and the proxy stops accepting it.
- `status.workers`, `status.readyWorkers` and the `Available` condition come from the workers'
  Leases (`leases.LeaseView`, handed in by main). The status is written only when a worker joins, leaves or
  changes readiness: a Lease renewal updates the in-memory view and nothing else. One timer per
  group wakes at the earliest expiry of a ready worker's Lease to notice a silent death.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hrw_api import Meta, WorkerGroup, WorkerLease, WorkerStatus, conditions, names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import SECRETS, WORKER_GROUPS
from hrw_api.times import now as utcnow

from . import events
from .frame import Controller, Key, Observed, Pass, Store, Tools
from .leases import LeaseView
from .logs import kv

logger = logging.getLogger("hrw.operator.workergroups")


def aggregate(leases: Iterable[WorkerLease], now: datetime) -> tuple[list[WorkerStatus], datetime | None]:
    """The workers (sorted by name) and the next moment one of them may change readiness. Pure."""
    workers: list[WorkerStatus] = []
    next_change: datetime | None = None
    for lease in sorted(leases, key=lambda lease: lease.worker):
        workers.append(lease.worker_status(now))
        expiry = lease.expires_at
        if expiry is not None and expiry > now and (next_change is None or expiry < next_change):
            next_change = expiry
    return workers, next_change


def _has_group_token(observed: Observed[WorkerGroup]) -> bool:
    return observed.model is not None and observed.model.spec.group_token


def desired_status(observed: Observed[WorkerGroup], workers: list[WorkerStatus]) -> dict[str, Any]:
    """The status that lists `workers`. Pure."""
    generation = observed.meta.generation
    ready = sum(1 for w in workers if w.ready and not w.draining)
    if ready:
        available = conditions.make(conditions.AVAILABLE, True, "WorkersReady",
                                    f"{ready} of {len(workers)} worker(s) ready", generation)
    else:
        available = conditions.make(conditions.AVAILABLE, False, "NoReadyWorkers",
                                    f"none of {len(workers)} worker(s) ready", generation)
    return {
        "workers": [w.to_dict() for w in workers],
        "readyWorkers": ready,
        "registrationTokenSecret": names.registration_secret_name(observed.meta.name)
        if _has_group_token(observed) else None,
        "observedGeneration": generation,
        "conditions": [c.to_dict() for c in conditions.merge(observed.conditions, available)],
    }


def registration_secret(group: Meta) -> dict[str, Any]:
    """A new registration-token Secret for `group`, owned by it (garbage-collected with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.registration_secret_name(group.name),
            "namespace": group.namespace,
            "labels": {names.LABEL_WORKER_GROUP: group.name, names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [{
                "apiVersion": names.API_VERSION,
                "kind": names.WORKER_GROUP,
                "name": group.name,
                "uid": group.uid,
                "controller": True,
            }],
        },
        "type": names.SECRET_TYPE_REGISTRATION,
        "stringData": {names.REGISTRATION_TOKEN_KEY: secrets.token_urlsafe(32)},
    }


class WorkerGroupController(Controller[WorkerGroup]):
    kind = "workergroup"
    resource = WORKER_GROUPS

    def __init__(self, tools: Tools, store: Store[WorkerGroup], *, leases: LeaseView) -> None:
        super().__init__(tools, store)
        self.leases = leases
        self._secret_ok: set[Key] = set()

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._secret_ok.discard(key)

    async def on_registration_secret_deleted(self, namespace: str, group: str) -> None:
        key = (namespace, group)
        self._secret_ok.discard(key)
        if key in self.store:
            await self.reconcile(key)

    async def on_lease(self, old: WorkerLease | None, new: WorkerLease | None) -> None:
        """A Lease changed: reconcile its group only if that worker's entry in the status would change."""
        lease = new or old
        if lease is None:
            return
        key = (lease.namespace, lease.group)
        observed = self.store.get(key)
        if observed is None:
            return
        if observed.model is None:  # a group whose spec does not parse still lists its workers
            await self.reconcile(key)
            return
        listed = {w.name: w.to_dict() for w in observed.model.workers}
        if new is None:
            if lease.worker in listed:
                await self.reconcile(key)
            return
        wanted = new.worker_status(utcnow()).to_dict()
        current = listed.get(new.worker)
        skip = self.status_writer.pruned_fields
        if current is None or any(current.get(k) != v for k, v in wanted.items() if k not in skip):
            await self.reconcile(key)

    async def _ensure_secret(self, group: Meta) -> None:
        key = (group.namespace, group.name)
        if key in self._secret_ok:
            return
        name = names.registration_secret_name(group.name)
        try:
            await self.client.get(SECRETS.path(group.namespace, name))
        except ApiError as exc:
            if exc.code != 404:
                raise
            try:
                await self.client.create(SECRETS.path(group.namespace), registration_secret(group))
            except ApiError as create_exc:
                if create_exc.code != 409:  # created meanwhile: fine
                    raise
            else:
                kv(logger, logging.INFO, "workergroup.registration_secret_created", namespace=group.namespace,
                   group=group.name, secret=name)
                await self.tools.recorder.post(group, names.WORKER_GROUP, type_=events.NORMAL,
                                               reason="RegistrationTokenCreated", action="CreateSecret",
                                               note=f"registration token Secret {name} created")
        self._secret_ok.add(key)

    async def reconcile_once(self, observed: Observed[WorkerGroup]) -> Pass:
        if _has_group_token(observed):
            await self._ensure_secret(observed.meta)
        workers, next_change = aggregate(self.leases.of_group(*observed.key), utcnow())
        desired = desired_status(observed, workers)
        if await self.write_status(observed, desired):
            kv(logger, logging.INFO, "workergroup.status", namespace=observed.meta.namespace,
               group=observed.meta.name, workers=len(workers), ready=desired["readyWorkers"])
        return Pass(wake_at=next_change)
