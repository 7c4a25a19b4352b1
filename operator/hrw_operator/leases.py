"""The operator's in-memory view of worker Leases: who is alive, without a write per heartbeat.

Agents renew a `coordination.k8s.io/v1` Lease (`names.lease_name(group, worker)`, labelled with
the group and the worker) every few seconds. The operator watches those Leases and keeps only
this view; the WorkerGroup status and the RunbookJob lost-worker timer read it. A renewal
updates the view and nothing else: the group's status is written only when a worker joins,
leaves or changes readiness (see `workergroups`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hrw_api import WorkerStatus, names
from hrw_api.times import parse_time

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class LeaseInfo:
    """What the operator needs from one worker's Lease."""

    namespace: str
    name: str
    group: str
    worker: str
    renew_time: datetime | None
    duration_seconds: int
    hostname: str = ""
    agent_version: str = ""
    interpreters: tuple[str, ...] = ()
    capacity: int = 0
    draining: bool = False

    @property
    def expires_at(self) -> datetime | None:
        if self.renew_time is None:
            return None
        return self.renew_time + timedelta(seconds=self.duration_seconds)

    def ready(self, now: datetime) -> bool:
        """Held: renewed within its duration (renewTime + leaseDurationSeconds > now)."""
        expiry = self.expires_at
        return expiry is not None and expiry > now

    def worker_status(self, now: datetime) -> WorkerStatus:
        return WorkerStatus(
            name=self.worker,
            hostname=self.hostname,
            agent_version=self.agent_version,
            interpreters=self.interpreters,
            capacity=self.capacity,
            ready=self.ready(now),
            draining=self.draining,
        )

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> LeaseInfo | None:
        """None for a Lease that is not a worker's (no group label)."""
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        group = labels.get(names.LABEL_WORKER_GROUP)
        if not group:
            return None
        spec = obj.get("spec") or {}
        worker = labels.get(names.LABEL_WORKER) or spec.get("holderIdentity") or meta.get("name", "")
        try:
            capacity = int(annotations.get(names.ANNOTATION_CAPACITY) or 0)
        except ValueError:
            capacity = 0
        interpreters = tuple(
            i.strip() for i in str(annotations.get(names.ANNOTATION_INTERPRETERS) or "").split(",") if i.strip()
        )
        try:
            renew = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
        except ValueError:
            renew = None
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            group=str(group),
            worker=str(worker),
            renew_time=renew,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            hostname=str(annotations.get(names.ANNOTATION_HOSTNAME) or ""),
            agent_version=str(annotations.get(names.ANNOTATION_AGENT_VERSION) or ""),
            interpreters=interpreters,
            capacity=capacity,
            draining=str(annotations.get(names.ANNOTATION_DRAINING) or "").lower() == "true",
        )


class LeaseView:
    """Worker Leases by (namespace, name) and by (namespace, group). Fed by the Lease watch."""

    def __init__(self) -> None:
        self._by_key: dict[Key, LeaseInfo] = {}
        self._by_group: dict[Key, dict[str, LeaseInfo]] = {}

    def put(self, lease: LeaseInfo) -> LeaseInfo | None:
        """Store a Lease; return the one it replaces."""
        key = (lease.namespace, lease.name)
        old = self._by_key.get(key)
        if old is not None and old.group != lease.group:
            self._by_group.get((old.namespace, old.group), {}).pop(old.name, None)
        self._by_key[key] = lease
        self._by_group.setdefault((lease.namespace, lease.group), {})[lease.name] = lease
        return old

    def remove(self, namespace: str, name: str) -> LeaseInfo | None:
        old = self._by_key.pop((namespace, name), None)
        if old is not None:
            members = self._by_group.get((namespace, old.group), {})
            members.pop(name, None)
            if not members:
                self._by_group.pop((namespace, old.group), None)
        return old

    def get(self, namespace: str, name: str) -> LeaseInfo | None:
        return self._by_key.get((namespace, name))

    def of_group(self, namespace: str, group: str) -> Iterable[LeaseInfo]:
        return tuple(self._by_group.get((namespace, group), {}).values())
