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
  Leases (`leases.LeaseView`, handed in by main; the entries are built in `workers`). The status
  is written at once when a worker joins, leaves or changes state (ready, draining, outdated,
  missing, invalid); what changes all the time (last heartbeat, running jobs, last error) is
  written at most every `worker_status_refresh_seconds`, so a Lease renewal alone writes nothing.
  One timer per group wakes at the earliest expiry of a ready worker's Lease to notice a silent
  death, and when a missing worker is to be forgotten (`forget_missing_worker_seconds`).
- Events on the group when a worker joins, goes missing, stops, comes back, turns outdated or
  invalid, or leaves (`workers.changes`), posted after the status that shows it was written.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from hrw_api import Meta, WorkerGroup, WorkerLease, WorkerStatus, conditions, names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import SECRETS, WORKER_GROUPS
from hrw_api.times import now as utcnow

from . import events, workers
from .frame import Controller, Key, Observed, Pass, Store, Tools
from .frame.status import differs
from .leases import LeaseView
from .logs import kv

logger = logging.getLogger("hrw.operator.workergroups")


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
        self._written_at: dict[Key, datetime] = {}

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._secret_ok.discard(key)
        self._written_at.pop(key, None)

    async def on_registration_secret_deleted(self, namespace: str, group: str) -> None:
        key = (namespace, group)
        self._secret_ok.discard(key)
        if key in self.store:
            await self.reconcile(key)

    def _min_agent_version(self, observed: Observed[WorkerGroup]) -> str | None:
        return observed.model.spec.min_agent_version if observed.model is not None else None

    def _aggregate(self, observed: Observed[WorkerGroup], now: datetime) -> workers.Aggregate:
        forget_after = timedelta(seconds=self.tools.settings.forget_missing_worker_seconds)
        return workers.aggregate(self.leases.of_group(*observed.key), now,
                                 min_agent_version=self._min_agent_version(observed), forget_after=forget_after)

    def _refresh_at(self, key: Key) -> datetime | None:
        """When the group's ever-changing members (heartbeats, running jobs, errors) may be written
        again; None: now."""
        written = self._written_at.get(key)
        if written is None:
            return None
        return written + timedelta(seconds=self.tools.settings.worker_status_refresh_seconds)

    def _refresh_due(self, key: Key, now: datetime) -> bool:
        due = self._refresh_at(key)
        return due is None or due <= now

    async def on_lease(self, old: WorkerLease | None, new: WorkerLease | None) -> None:
        """A Lease changed: reconcile its group only if that worker's entry in the status would change
        (at once for its state, at most every refresh period for its heartbeat, jobs and error)."""
        lease = new or old
        if lease is None:
            return
        key = (lease.namespace, lease.group)
        observed = self.store.get(key)
        if observed is None:
            return
        # The store parsed the group's entries once per change of the group, not once per renewal.
        entries = observed.model.workers if observed.model is not None else tuple(_listed(observed))
        entry = next((w for w in entries if w.name == lease.worker), None)
        if new is None:
            if entry is not None:
                await self.reconcile(key)
            return
        now = utcnow()
        wanted = new.worker_status(now, self._min_agent_version(observed)).to_dict()
        current = entry.to_dict() if entry is not None else None
        skip = self.status_writer.pruned_fields
        state_changed = current is None or workers.hard_view([current], skip) != workers.hard_view([wanted], skip)
        refresh = current is not None and self._refresh_due(key, now) \
            and any(current.get(k) != v for k, v in wanted.items() if k not in skip)
        if state_changed or refresh:
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
        now = utcnow()
        found = self._aggregate(observed, now)
        desired = desired_status(observed, found.workers)
        wake = found.next_change
        skip = self.status_writer.pruned_fields
        if not self._refresh_due(observed.key, now) and not differs(_hard(desired), _hard(observed.status), skip):
            # Only heartbeats, running jobs or errors changed: they wait for the refresh period.
            due = self._refresh_at(observed.key)
            return Pass(wake_at=min(w for w in (wake, due) if w is not None))
        before = _listed(observed)
        if await self.write_status(observed, desired):
            self._written_at[observed.key] = now
            kv(logger, logging.INFO, "workergroup.status", namespace=observed.meta.namespace,
               group=observed.meta.name, workers=len(found.workers), ready=desired["readyWorkers"])
            for change in workers.changes(before, found.workers):
                kv(logger, logging.INFO, "workergroup.worker", namespace=observed.meta.namespace,
                   group=observed.meta.name, worker=change.worker, change=change.reason)
                await self.tools.recorder.post(observed.meta, names.WORKER_GROUP,
                                               type_=events.WARNING if change.warning else events.NORMAL,
                                               reason=change.reason, action="Observe", note=change.note)
        return Pass(wake_at=wake)


def _listed(observed: Observed[WorkerGroup]) -> list[WorkerStatus]:
    """The entries the group's status holds now (read leniently: an older operator wrote some)."""
    return [WorkerStatus.parse(w) for w in observed.status.get("workers") or [] if isinstance(w, Mapping)]


def _hard(status: Mapping[str, Any]) -> dict[str, Any]:
    """A status without its workers' ever-changing members."""
    entries = [w for w in status.get("workers") or [] if isinstance(w, Mapping)]
    return {**status, "workers": workers.hard_view(entries)}
