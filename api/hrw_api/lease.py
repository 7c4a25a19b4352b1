"""A worker's Lease: the heartbeat every agent renews, and what it tells about the worker.

An agent renews a `coordination.k8s.io/v1` Lease named `names.lease_name(group, worker)`
through the proxy; the operator reads the Leases of a group to know which workers live. The
annotations carry what the group's status shows about each worker (`WorkerInfo`): hostname,
agent version, platform, interpreters, capacity, running jobs, draining, last error. They are a
worker's own words, so they are typed and bounded here (no control characters either: they end
up in terminals), and a Lease that does not fit is refused by `WorkerLease.parse`.

    agent:    WorkerLease(...).to_dict() / .renewal_patch()
    proxy:    WorkerLease.parse on what a worker writes (400 naming the field); times from its own clock
    operator: WorkerLease.read(obj): never refused, a bad value kept in `problem` so that it marks
              that worker's entry alone; .ready(now), .worker_status(now, min_agent_version)
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
from .times import format_micro_time, format_time, parse_time
from .versions import AGENT_VERSION_PATTERN, outdated_reason
from .workerconfiguration import MAX_REPORT_BYTES, ComplianceReport
from .workergroup import WorkerState, WorkerStatus

LEASE_API_VERSION: Final = "coordination.k8s.io/v1"
LEASE_KIND: Final = "Lease"

MAX_HOSTNAME: Final = 253
MAX_AGENT_VERSION: Final = 64
MAX_PLATFORM: Final = 128
MAX_LAST_ERROR: Final = 256
MAX_INTERPRETERS: Final = 16
MAX_CAPACITY: Final = 256  # a WorkerGroup's maxJobsPerWorker is at most 256
MAX_LABELS_TEXT: Final = MAX_WORKER_LABELS * (317 + 64 + 6)  # keys of up to 317, values of up to 63, JSON punctuation
MIN_LEASE_DURATION: Final = 1
MAX_LEASE_DURATION: Final = 3600  # a WorkerGroup's leaseDurationSeconds is at most 3600
_INTERPRETER_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,32}$")
_COUNT = re.compile(r"^[0-9]{1,4}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

WORKER_ANNOTATIONS: Final = frozenset({
    names.ANNOTATION_HOSTNAME, names.ANNOTATION_AGENT_VERSION, names.ANNOTATION_INTERPRETERS,
    names.ANNOTATION_CAPACITY, names.ANNOTATION_DRAINING, names.ANNOTATION_PLATFORM,
    names.ANNOTATION_RUNNING_JOBS, names.ANNOTATION_LAST_ERROR, names.ANNOTATION_LAST_ERROR_TIME,
    names.ANNOTATION_COMPLIANCE, names.ANNOTATION_WORKER_LABELS,
})
"""The annotations a worker may write on its Lease: its words about itself, each typed below."""

WORKER_LABELS: Final = frozenset({names.LABEL_WORKER_GROUP, names.LABEL_WORKER, names.LABEL_MANAGED_BY})
"""The labels a worker's Lease carries (the proxy forces the first two)."""

WORKER_LEASE_SPEC: Final = frozenset({"holderIdentity", "leaseDurationSeconds", "renewTime", "acquireTime",
                                      "leaseTransitions"})
"""The members of a Lease's spec a worker may write."""


def printable(value: str) -> bool:
    """No control characters: a worker's words end up in status, Events and terminals (`hrw workers`)."""
    return not _CONTROL.search(value)


def check_interpreter_names(items: tuple[str, ...], path: str) -> tuple[str, ...]:
    """Interpreter names as a worker lists them (registration, Lease), or `InvalidObject` naming `path`."""
    if len(items) > MAX_INTERPRETERS or not all(_INTERPRETER_NAME.match(i) for i in items):
        raise InvalidObject(path, f"must be at most {MAX_INTERPRETERS} interpreter names (letters, digits, "
                                  "'.', '_', '+', '-', up to 32 characters each)")
    return items


def _interpreters(text: str, path: str) -> tuple[str, ...]:
    return check_interpreter_names(tuple(i.strip() for i in text.split(",") if i.strip()), path)


def check_agent_version(value: str, path: str) -> str:
    if value and not AGENT_VERSION_PATTERN.match(value):
        raise InvalidObject(path, f"must be a version of at most {MAX_AGENT_VERSION} characters (letters, "
                                  f"digits, '.', '+', '_', '-'), not {value[:80]!r}")
    return value


def check_text(value: str, path: str, limit: int) -> str:
    if len(value) > limit or not printable(value):
        raise InvalidObject(path, f"must be a string of at most {limit} printable characters")
    return value


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
    platform: str = ""  # e.g. "Linux-6.1.0-x86_64-with-glibc2.36; CPython 3.12.3"
    running_jobs: int = 0  # jobs the agent runs now
    last_error: str = ""  # the agent's last problem, one line, no secret (its own words)
    last_error_time: datetime | None = None

    def to_annotations(self) -> dict[str, str]:
        annotations = {
            names.ANNOTATION_COMPLIANCE: self.compliance.to_annotation() if self.compliance else "",
            names.ANNOTATION_WORKER_LABELS: json.dumps(dict(sorted(self.labels.items())), separators=(",", ":")),
            names.ANNOTATION_HOSTNAME: self.hostname,
            names.ANNOTATION_AGENT_VERSION: self.agent_version,
            names.ANNOTATION_INTERPRETERS: ",".join(self.interpreters),
            names.ANNOTATION_CAPACITY: str(self.capacity),
            names.ANNOTATION_DRAINING: "true" if self.draining else "false",
            names.ANNOTATION_PLATFORM: self.platform,
            names.ANNOTATION_RUNNING_JOBS: str(self.running_jobs),
            names.ANNOTATION_LAST_ERROR: self.last_error,
            names.ANNOTATION_LAST_ERROR_TIME: format_time(self.last_error_time) if self.last_error_time else "",
        }
        return annotations

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, Any], path: str = "metadata.annotations") -> WorkerInfo:
        """Read the worker's annotations (others are ignored); a missing one reads as its default."""

        def text(key: str, limit: int) -> str:
            value = annotations.get(key)
            if value is None:
                return ""
            if not isinstance(value, str):
                raise InvalidObject(f"{path}[{key}]", f"must be a string of at most {limit} characters")
            return check_text(value, f"{path}[{key}]", limit)

        def count(key: str, maximum: int) -> int:
            value = annotations.get(key)
            if value is None or value == "":
                return 0
            if not isinstance(value, str) or not _COUNT.match(value) or int(value) > maximum:
                raise InvalidObject(f"{path}[{key}]",
                                    f"must be an integer from 0 to {maximum}, not {str(value)[:20]!r}")
            return int(value)

        draining = text(names.ANNOTATION_DRAINING, 5).lower()
        if draining not in ("", "true", "false"):
            raise InvalidObject(f"{path}[{names.ANNOTATION_DRAINING}]", f"must be true or false, not {draining!r}")
        error_time_text = text(names.ANNOTATION_LAST_ERROR_TIME, 40)
        try:
            error_time = parse_time(error_time_text)
        except ValueError:
            raise InvalidObject(f"{path}[{names.ANNOTATION_LAST_ERROR_TIME}]",
                                f"must be an RFC 3339 time, not {error_time_text!r}") from None
        return cls(
            labels=_labels(text(names.ANNOTATION_WORKER_LABELS, MAX_LABELS_TEXT),
                           f"{path}[{names.ANNOTATION_WORKER_LABELS}]"),
            hostname=text(names.ANNOTATION_HOSTNAME, MAX_HOSTNAME),
            agent_version=check_agent_version(text(names.ANNOTATION_AGENT_VERSION, MAX_AGENT_VERSION),
                                              f"{path}[{names.ANNOTATION_AGENT_VERSION}]"),
            interpreters=_interpreters(text(names.ANNOTATION_INTERPRETERS, 33 * MAX_INTERPRETERS),
                                       f"{path}[{names.ANNOTATION_INTERPRETERS}]"),
            capacity=count(names.ANNOTATION_CAPACITY, MAX_CAPACITY),
            draining=draining == "true",
            compliance=ComplianceReport.from_annotation(text(names.ANNOTATION_COMPLIANCE, MAX_REPORT_BYTES),
                                                        f"{path}[{names.ANNOTATION_COMPLIANCE}]"),
            platform=text(names.ANNOTATION_PLATFORM, MAX_PLATFORM),
            running_jobs=count(names.ANNOTATION_RUNNING_JOBS, MAX_CAPACITY),
            last_error=text(names.ANNOTATION_LAST_ERROR, MAX_LAST_ERROR),
            last_error_time=error_time,
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
    problem: InvalidObject | None = field(default=None, compare=False)
    """Set by `read` for a worker's Lease that does not fit the contract: only this worker's entry
    shows it; `info` is then empty and the times are what could be read."""

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

    def worker_status(self, now: datetime, min_agent_version: str | None = None) -> WorkerStatus:
        """This worker's entry in its group's status: what it says about itself, and why it is or is
        not ready (`WorkerState`). Ready: its Lease is live, it fits the contract, its agent is not
        below the group's minimum version."""
        info = self.info
        live = self.ready(now)
        outdated = outdated_reason(info.agent_version, min_agent_version) if self.problem is None else None
        expiry = self.expires_at
        state: WorkerState
        if self.problem is not None:
            state, message = WorkerState.INVALID_LEASE, f"its Lease does not fit the hrw contract: {self.problem}"
        elif not live:
            expired = f"its Lease expired at {format_time(expiry)}" if expiry else "its Lease was never renewed"
            if info.draining:
                state, message = WorkerState.STOPPED, f"the agent stopped; {expired}"
            else:
                state, message = WorkerState.MISSING, f"{expired} without the agent stopping"
        elif outdated is not None:
            state, message = WorkerState.OUTDATED, outdated
        elif info.draining:
            state, message = WorkerState.DRAINING, "the agent shuts down and claims no new job"
        else:
            state, message = WorkerState.READY, "its Lease is live"
        return WorkerStatus(
            name=self.worker,
            hostname=info.hostname,
            agent_version=info.agent_version,
            interpreters=info.interpreters,
            capacity=info.capacity,
            ready=state in (WorkerState.READY, WorkerState.DRAINING),
            draining=info.draining,
            platform=info.platform,
            running_jobs=info.running_jobs,
            outdated=outdated is not None,
            reason=state.value,
            message=message,
            last_heartbeat_time=self.renew_time or self.acquire_time,
            last_error=info.last_error,
            last_error_time=info.last_error_time,
            labels=dict(info.labels),
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
        if name != names.lease_name(group, worker):
            raise InvalidObject("metadata.name", f"a worker's Lease is named {names.lease_name(group, worker)!r} "
                                                 f"after its group and worker labels, not {name!r}")
        duration = f.opt_int(spec, "leaseDurationSeconds", "spec", 0, minimum=0) or 0
        if duration and not MIN_LEASE_DURATION <= duration <= MAX_LEASE_DURATION:
            raise InvalidObject("spec.leaseDurationSeconds",
                                f"must be from {MIN_LEASE_DURATION} to {MAX_LEASE_DURATION}, not {duration}")
        return cls(
            name=name,
            namespace=f.opt_str(meta, "namespace", "metadata") or "",
            group=group,
            worker=worker,
            duration_seconds=duration,
            renew_time=f.time(spec, "renewTime", "spec"),
            acquire_time=f.time(spec, "acquireTime", "spec"),
            info=WorkerInfo.from_annotations(f.obj(meta.get("annotations"), "metadata.annotations")),
            holder=holder if holder and holder != worker else None,
        )

    @classmethod
    def read(cls, obj: Mapping[str, Any]) -> WorkerLease:
        """A worker's Lease as the operator reads it: never refused for what the worker wrote.

        `InvalidObject` only for a Lease that is not a worker's (no group label). Anything else that
        does not fit `parse` is kept in `problem`, with the worker's identity and whatever times can
        be read, so that one bad value marks this worker's entry alone (issue 13)."""
        try:
            return cls.parse(obj)
        except InvalidObject as exc:
            problem = exc
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
        assert isinstance(labels, Mapping)
        group = labels.get(names.LABEL_WORKER_GROUP)
        name = meta.get("name")
        if not isinstance(group, str) or not group or not isinstance(name, str):
            raise problem
        worker = labels.get(names.LABEL_WORKER)
        spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
        assert isinstance(spec, Mapping)

        def when(key: str) -> datetime | None:
            try:
                return parse_time(spec.get(key)) if isinstance(spec.get(key), str) else None
            except ValueError:
                return None

        duration = spec.get("leaseDurationSeconds")
        duration_ok = isinstance(duration, int) and not isinstance(duration, bool) \
            and MIN_LEASE_DURATION <= duration <= MAX_LEASE_DURATION
        namespace = meta.get("namespace")
        return cls(
            name=name,
            namespace=namespace if isinstance(namespace, str) else "",
            group=group,
            worker=worker if isinstance(worker, str) and worker else name,
            duration_seconds=duration if duration_ok and isinstance(duration, int) else 0,
            renew_time=when("renewTime"),
            acquire_time=when("acquireTime"),
            problem=problem,
        )
