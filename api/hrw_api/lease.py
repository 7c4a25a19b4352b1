"""A worker's Lease: the heartbeat every agent renews, and what it tells about the worker.

An agent renews a `coordination.k8s.io/v1` Lease named `names.lease_name(group, worker)`
through the proxy; the operator reads the Leases of a group to know which workers live. The
annotations carry what the group's status shows about each worker (`WorkerInfo`): hostname,
agent version, interpreters, capacity, draining. They are a worker's own words, so they are
typed and bounded here, and a Lease that does not fit is refused by `WorkerLease.parse`.

    agent:    WorkerLease(...).to_dict() / .renewal_patch()
    proxy:    WorkerInfo.from_annotations(...) on what a worker writes; times from its own clock
    operator: WorkerLease.parse(obj).ready(now), .worker_status(now)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from . import _fields as f
from . import names
from ._fields import JSON
from .errors import InvalidObject
from .fanout import MAX_WORKER_LABELS, check_worker_labels
from .times import format_micro_time
from .workerconfiguration import MAX_REPORT_BYTES, ComplianceReport
from .workergroup import WorkerStatus

LEASE_API_VERSION: Final = "coordination.k8s.io/v1"
LEASE_KIND: Final = "Lease"

MAX_HOSTNAME: Final = 253
MAX_AGENT_VERSION: Final = 64
MAX_INTERPRETERS: Final = 16
MAX_CAPACITY: Final = 256  # a WorkerGroup's maxJobsPerWorker is at most 256
MAX_LABELS_TEXT: Final = MAX_WORKER_LABELS * (317 + 64 + 6)  # keys of up to 317, values of up to 63, JSON punctuation
_INTERPRETER_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,32}$")


def _interpreters(text: str, path: str) -> tuple[str, ...]:
    items = tuple(i.strip() for i in text.split(",") if i.strip())
    if len(items) > MAX_INTERPRETERS or not all(_INTERPRETER_NAME.match(i) for i in items):
        raise InvalidObject(path, f"must be at most {MAX_INTERPRETERS} comma-separated interpreter names "
                                  "(letters, digits, '.', '_', '+', '-', up to 32 characters each)")
    return items


def _labels(text: str, path: str) -> dict[str, str]:
    if not text:
        return {}
    try:
        labels = json.loads(text)
    except ValueError:
        raise InvalidObject(path, "must be a JSON object of label keys to values") from None
    return check_worker_labels(labels, path)


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker publishes about itself, as annotations on its Lease."""

    hostname: str = ""
    agent_version: str = ""
    interpreters: tuple[str, ...] = ()
    capacity: int = 0  # jobs this worker runs at once
    draining: bool = False  # the agent shuts down: it claims nothing more
    compliance: ComplianceReport | None = None  # the configuration it applied (workerconfiguration)
    labels: Mapping[str, str] = field(default_factory=dict)  # its agent config's `labels`: fan-out selectors read them

    def to_annotations(self) -> dict[str, str]:
        return {
            names.ANNOTATION_COMPLIANCE: self.compliance.to_annotation() if self.compliance else "",
            names.ANNOTATION_WORKER_LABELS: json.dumps(dict(sorted(self.labels.items())), separators=(",", ":")),
            names.ANNOTATION_HOSTNAME: self.hostname,
            names.ANNOTATION_AGENT_VERSION: self.agent_version,
            names.ANNOTATION_INTERPRETERS: ",".join(self.interpreters),
            names.ANNOTATION_CAPACITY: str(self.capacity),
            names.ANNOTATION_DRAINING: "true" if self.draining else "false",
        }

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, Any], path: str = "metadata.annotations") -> WorkerInfo:
        """Read the worker's annotations (others are ignored); a missing one reads as its default."""

        def text(key: str, limit: int) -> str:
            value = annotations.get(key)
            if value is None:
                return ""
            if not isinstance(value, str) or len(value) > limit:
                raise InvalidObject(f"{path}[{key}]", f"must be a string of at most {limit} characters")
            return value

        capacity_text = text(names.ANNOTATION_CAPACITY, 4) or "0"
        if not capacity_text.isdigit() or int(capacity_text) > MAX_CAPACITY:
            raise InvalidObject(f"{path}[{names.ANNOTATION_CAPACITY}]",
                                f"must be an integer from 0 to {MAX_CAPACITY}, not {capacity_text!r}")
        draining = text(names.ANNOTATION_DRAINING, 5).lower()
        if draining not in ("", "true", "false"):
            raise InvalidObject(f"{path}[{names.ANNOTATION_DRAINING}]", f"must be true or false, not {draining!r}")
        return cls(
            labels=_labels(text(names.ANNOTATION_WORKER_LABELS, MAX_LABELS_TEXT),
                           f"{path}[{names.ANNOTATION_WORKER_LABELS}]"),
            hostname=text(names.ANNOTATION_HOSTNAME, MAX_HOSTNAME),
            agent_version=text(names.ANNOTATION_AGENT_VERSION, MAX_AGENT_VERSION),
            interpreters=_interpreters(text(names.ANNOTATION_INTERPRETERS, 32 * MAX_INTERPRETERS),
                                       f"{path}[{names.ANNOTATION_INTERPRETERS}]"),
            capacity=int(capacity_text),
            draining=draining == "true",
            compliance=ComplianceReport.from_annotation(text(names.ANNOTATION_COMPLIANCE, MAX_REPORT_BYTES),
                                                        f"{path}[{names.ANNOTATION_COMPLIANCE}]"),
        )


@dataclass(frozen=True)
class WorkerLease:
    """One worker's Lease. `renew_time`/`acquire_time` are the proxy's clock once stored.

    `name` is `names.lease_name(group, worker)` for every Lease an agent writes (the proxy allows
    no other); it is read, not derived, so that a view keyed by name matches delete events."""

    name: str
    namespace: str
    group: str
    worker: str
    duration_seconds: int
    renew_time: datetime | None
    acquire_time: datetime | None = None
    info: WorkerInfo = field(default_factory=WorkerInfo)
    holder: str | None = None  # spec.holderIdentity when it is not the worker (the proxy refuses such a Lease)

    @property
    def holder_identity(self) -> str:
        return self.holder or self.worker

    @property
    def expires_at(self) -> datetime | None:
        renewed = self.renew_time or self.acquire_time
        if renewed is None:
            return None
        return renewed + timedelta(seconds=self.duration_seconds)

    def ready(self, now: datetime) -> bool:
        """Held: renewed within its duration (renewTime + leaseDurationSeconds > now)."""
        expiry = self.expires_at
        return expiry is not None and expiry > now

    def worker_status(self, now: datetime) -> WorkerStatus:
        return WorkerStatus(
            name=self.worker,
            hostname=self.info.hostname,
            agent_version=self.info.agent_version,
            interpreters=self.info.interpreters,
            capacity=self.info.capacity,
            ready=self.ready(now),
            draining=self.info.draining,
            labels=dict(self.info.labels),
        )

    def _spec(self) -> JSON:
        spec: JSON = {"holderIdentity": self.holder_identity, "leaseDurationSeconds": self.duration_seconds}
        if self.renew_time is not None:
            spec["renewTime"] = format_micro_time(self.renew_time)
        if self.acquire_time is not None:
            spec["acquireTime"] = format_micro_time(self.acquire_time)
        return spec

    def _labels(self) -> dict[str, str]:
        return {names.LABEL_WORKER_GROUP: self.group, names.LABEL_WORKER: self.worker,
                names.LABEL_MANAGED_BY: names.MANAGED_BY}

    def to_dict(self) -> JSON:
        return {
            "apiVersion": LEASE_API_VERSION,
            "kind": LEASE_KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self._labels(),
                         "annotations": self.info.to_annotations()},
            "spec": self._spec(),
        }

    def renewal_patch(self) -> JSON:
        """The merge patch that renews an existing Lease (its name and namespace are the path's)."""
        return {"metadata": {"labels": self._labels(), "annotations": self.info.to_annotations()},
                "spec": self._spec()}

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> WorkerLease:
        """A worker's Lease; `InvalidObject` for any other Lease (no group label) or a bad field."""
        kind = obj.get("kind", LEASE_KIND)
        if kind != LEASE_KIND:
            raise InvalidObject("kind", f"must be {LEASE_KIND}, not {kind!r}")
        meta = f.obj(obj.get("metadata"), "metadata")
        labels = f.string_map(meta, "labels", "metadata")
        group = labels.get(names.LABEL_WORKER_GROUP)
        if not group:
            raise InvalidObject(f"metadata.labels[{names.LABEL_WORKER_GROUP}]", "is required on a worker's Lease")
        spec = f.obj(obj.get("spec"), "spec")
        holder = f.opt_str(spec, "holderIdentity", "spec") or ""
        worker = labels.get(names.LABEL_WORKER) or holder or str(meta.get("name") or "")
        name = f.req_str(meta, "name", "metadata")
        return cls(
            name=name,
            namespace=f.opt_str(meta, "namespace", "metadata") or "",
            group=group,
            worker=worker,
            duration_seconds=f.opt_int(spec, "leaseDurationSeconds", "spec", 0, minimum=0) or 0,
            renew_time=f.time(spec, "renewTime", "spec"),
            acquire_time=f.time(spec, "acquireTime", "spec"),
            info=WorkerInfo.from_annotations(f.obj(meta.get("annotations"), "metadata.annotations")),
            holder=holder if holder and holder != worker else None,
        )
