"""Fan-out jobs: one RunbookJob run on every worker of its group, or on those a label selector picks.

A RunbookJob with `spec.fanOut` is a *parent*: no agent ever claims it. The operator snapshots its
target set (the ready workers that match, fixed when the parent starts), then creates one *child*
RunbookJob per target, owned by the parent and pinned to its worker by `spec.pinnedWorker`, which
only the operator sets: a child still names its group, the pin only narrows which worker of the
group may claim it (the proxy refuses any other, the agent passes it over). At most
`maxConcurrency` children run at once; once more than `maxErrors` have failed no new child starts
(like AWS SSM Run Command's concurrency and error budget). The parent's `status.fanOut` summarises
the children: counts and one entry per worker with its child's name and phase.

    FanOut.parse(spec["fanOut"])          the spec block; `targets(workers)` picks the workers
    Budget.parse("50%").resolve(targets)  a count or a percent of the target set
    LabelSelector.matches(labels)         Kubernetes label selector semantics
    child_name(parent, worker, uid)       a child's deterministic name (a 409 on a second create)
    FanOutStatus / WorkerRun              the parent's summary, as the operator writes it
    check_worker_labels(labels)           what a worker may publish as its labels
    start(...)                            the parent's Pending -> Running patch

Nothing here talks to anything.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject
from .phases import JobPhase

DEFAULT_MAX_CONCURRENCY: Final = "50"
"""As AWS SSM Run Command's default: at most 50 workers at once."""
DEFAULT_MAX_ERRORS: Final = "0"
"""As SSM's default: no new child starts after the first failure."""
MAX_JOB_NAME: Final = 63
MAX_WORKER_LABELS: Final = 32

REASON_FANNING_OUT: Final = "FanningOut"
REASON_ALL_SUCCEEDED: Final = "AllWorkersSucceeded"
REASON_WORKERS_FAILED: Final = "WorkersFailed"
REASON_MAX_ERRORS: Final = "MaxErrorsExceeded"
REASON_NO_WORKERS: Final = "NoMatchingWorkers"
REASON_PIN_NOT_ALLOWED: Final = "PinnedWorkerNotAllowed"
REASON_RUNBOOK_CHANGED: Final = "RunbookChanged"


# ------------------------------------------------------------------------------ label selectors

_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def is_label_key(key: str) -> bool:
    """A Kubernetes label key: an optional DNS-subdomain prefix and '/', then a name of at most 63."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return False
    return bool(_LABEL_NAME.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def check_worker_labels(labels: Any, path: str) -> dict[str, str]:
    """The labels a worker publishes about itself (its agent config's `labels`): at most
    `MAX_WORKER_LABELS`, each key and value as Kubernetes labels have them."""
    if not isinstance(labels, Mapping):
        raise InvalidObject(path, "must be a mapping of label keys to values")
    if len(labels) > MAX_WORKER_LABELS:
        raise InvalidObject(path, f"must hold at most {MAX_WORKER_LABELS} labels, not {len(labels)}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not is_label_key(key):
            raise InvalidObject(path, f"key {key!r} is not a label key (an optional DNS prefix and '/', then up to "
                                      "63 letters, digits, '-', '_' or '.', starting and ending alphanumeric)")
        if not isinstance(value, str) or not is_label_value(value):
            raise InvalidObject(f"{path}[{key}]", f"value {value!r} is not a label value (up to 63 letters, digits, "
                                                  "'-', '_' or '.', starting and ending alphanumeric)")
        checked[key] = value
    return checked


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case Operator.IN:
                return labels.get(self.key) in self.values
            case Operator.NOT_IN:
                return labels.get(self.key) not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels
        raise AssertionError(self.operator)


@dataclass(frozen=True)
class LabelSelector:
    """A `metav1.LabelSelector`: every matchLabels pair and every expression must hold."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) \
            and all(r.matches(labels) for r in self.match_expressions)

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for r in self.match_expressions:
            values = f" ({','.join(r.values)})" if r.values else ""
            parts.append(f"{r.key} {r.operator.value}{values}")
        return ", ".join(parts)

    @classmethod
    def parse(cls, data: Any, path: str) -> LabelSelector:
        data = f.obj(data, path)
        expressions = []
        for i, item in enumerate(f.array(data, "matchExpressions", path)):
            where = f"{path}.matchExpressions[{i}]"
            item = f.obj(item, where)
            expressions.append(Requirement(f.req_str(item, "key", where),
                                           f.enum(Operator, item.get("operator"), f.member(where, "operator")),
                                           f.strings(item, "values", where)))
        return cls(f.string_map(data, "matchLabels", path), tuple(expressions))


# ---------------------------------------------------------------------------------- budgets

_BUDGET = re.compile(r"^([0-9]+)(%?)$")


@dataclass(frozen=True)
class Budget:
    """A count (`3`) or a percent of the target set (`"25%"`)."""

    value: int
    percent: bool = False

    def resolve(self, targets: int, *, at_least_one: bool) -> int:
        """The count for `targets` workers: a percent rounds up for concurrency (`at_least_one`, never
        below 1) and down for errors (SSM: `10%` of 5 workers tolerates no failure)."""
        if not self.percent:
            count = self.value
        elif at_least_one:
            count = math.ceil(self.value * targets / 100)
        else:
            count = math.floor(self.value * targets / 100)
        return max(count, 1) if at_least_one else count

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)

    @classmethod
    def parse(cls, value: Any, path: str) -> Budget:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        match = _BUDGET.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidObject(path, f"must be a count (3) or a percent of the targets ('25%'), not {value!r}")
        return cls(int(match.group(1)), bool(match.group(2)))


# ------------------------------------------------------------------------------------ the spec


@dataclass(frozen=True)
class FanOut:
    """`spec.fanOut`: which workers of the group (every one, or a selector's), how many at once, how many failures."""

    all_workers: bool = False
    selector: LabelSelector | None = None
    max_concurrency: Budget = Budget(50)
    max_errors: Budget = Budget(0)

    def picks(self, labels: Mapping[str, str]) -> bool:
        return self.all_workers or (self.selector is not None and self.selector.matches(labels))

    def describe(self) -> str:
        if self.all_workers or self.selector is None:
            return "every worker"
        return f"the workers matching {self.selector.describe()}"

    @classmethod
    def parse(cls, data: Any, path: str = "spec.fanOut") -> FanOut:
        data = f.obj(data, path)
        all_workers = f.boolean(data, "all", path)
        selector = LabelSelector.parse(data["selector"], f.member(path, "selector")) \
            if data.get("selector") is not None else None
        if all_workers == (selector is not None):
            raise InvalidObject(path, "must set exactly one of all: true or selector")
        return cls(all_workers, selector,
                   Budget.parse(data.get("maxConcurrency", DEFAULT_MAX_CONCURRENCY), f.member(path, "maxConcurrency")),
                   Budget.parse(data.get("maxErrors", DEFAULT_MAX_ERRORS), f.member(path, "maxErrors")))


def child_name(parent: str, worker: str, parent_uid: str) -> str:
    """`<parent>-<worker>-<hash>`, cut to fit 63 characters: one name per (parent, worker), so a
    restarted operator that creates a child again gets a 409. The hash covers the parent's uid,
    so a parent deleted and created again under its name never meets its predecessor's children."""
    digest = hashlib.sha256(f"{parent_uid}/{worker}".encode()).hexdigest()[:5]
    room = MAX_JOB_NAME - len(digest) - 2
    head, tail = parent, worker
    if len(head) + len(tail) > room:
        tail = tail[:max(room // 2, room - len(head))]
        head = head[:room - len(tail)]
    return "-".join(p.strip("-.") for p in (head, tail, digest) if p.strip("-."))


# ---------------------------------------------------------------------------------- the status


class RunPhase(StrEnum):
    """One target worker's run, as the parent's summary shows it."""

    PENDING = "Pending"  # no child yet (waiting for a concurrency slot)
    RUNNING = "Running"  # its child exists and has not ended (Pending, Queued or held)
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # its child ended Failed, TimedOut or Cancelled
    SKIPPED = "Skipped"  # never started: the error budget ran out, or the parent was cancelled

    @classmethod
    def of_child(cls, phase: JobPhase) -> RunPhase:
        if phase is JobPhase.SUCCEEDED:
            return cls.SUCCEEDED
        if phase.terminal:
            return cls.FAILED
        return cls.RUNNING

    @property
    def done(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.SKIPPED)


@dataclass(frozen=True)
class WorkerRun:
    worker: str
    phase: RunPhase = RunPhase.PENDING
    job: str = ""  # the child's name, once created: `hrw logs <job>`
    reason: str = ""  # the ended child's status reason, or why the run was skipped

    def to_dict(self) -> JSON:
        body: JSON = {"worker": self.worker, "phase": self.phase.value}
        if self.job:
            body["job"] = self.job
        if self.reason:
            body["reason"] = self.reason
        return body

    @classmethod
    def parse(cls, data: Any, path: str) -> WorkerRun:
        data = f.obj(data, path)
        return cls(f.req_str(data, "worker", path), f.enum(RunPhase, data.get("phase", "Pending"),
                                                             f.member(path, "phase")),
                   f.opt_str(data, "job", path) or "", f.opt_str(data, "reason", path) or "")


@dataclass(frozen=True)
class FanOutStatus:
    """The parent's `status.fanOut`: the fixed target set, one entry per worker, and the counts."""

    workers: tuple[WorkerRun, ...] = ()

    def count(self, phase: RunPhase) -> int:
        return sum(1 for w in self.workers if w.phase is phase)

    @property
    def progress(self) -> str:
        """The printer column: `2/3 done, 1 failed`."""
        done = sum(1 for w in self.workers if w.phase.done)
        text = f"{done}/{len(self.workers)} done"
        failed, skipped = self.count(RunPhase.FAILED), self.count(RunPhase.SKIPPED)
        if failed:
            text += f", {failed} failed"
        if skipped:
            text += f", {skipped} skipped"
        return text

    def to_dict(self) -> JSON:
        return {
            "targets": len(self.workers),
            "succeeded": self.count(RunPhase.SUCCEEDED),
            "failed": self.count(RunPhase.FAILED),
            "running": self.count(RunPhase.RUNNING),
            "pending": self.count(RunPhase.PENDING),
            "skipped": self.count(RunPhase.SKIPPED),
            "progress": self.progress,
            "workers": [w.to_dict() for w in self.workers],
        }

    @classmethod
    def parse(cls, data: Any, path: str = "status.fanOut") -> FanOutStatus | None:
        """None when the parent has no target set yet."""
        if data is None:
            return None
        data = f.obj(data, path)
        return cls(tuple(WorkerRun.parse(w, f"{path}.workers[{i}]")
                         for i, w in enumerate(f.array(data, "workers", path))))

    @classmethod
    def of_targets(cls, workers: Iterable[str]) -> FanOutStatus:
        return cls(tuple(WorkerRun(w) for w in sorted(workers)))


def start(resource_version: str, digest: str, generation: int, *, interpreter: str, run_as: Mapping[str, str],
          message: str, now: str) -> list[dict[str, Any]]:
    """A parent's Pending -> Running, attempt 1, the runbook's digest (interpreter, identity) snapshotted
    as for a queued job; its children run that digest. Only the operator writes a Pending job, so
    the resourceVersion is the fence (as `patches.queue`)."""
    status = {
        "phase": JobPhase.RUNNING.value, "attempt": 1, "runbookDigest": digest, "interpreter": interpreter,
        "runAs": dict(run_as), "queuedTime": now, "startTime": now, "reason": REASON_FANNING_OUT,
        "message": message, "observedGeneration": generation,
    }
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "add", "path": "/status", "value": status}]
