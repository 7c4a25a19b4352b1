"""Fan-out jobs: run one RunbookJob on every worker of its group (or a selector's), a few at a time.

The shape every kind has: a pure `plan(parent, summary, facts) -> Plan` (which children to create,
which to cancel, the parent's summary and, once every target is done, its end), tested without a
cluster; and `FanOutController`, which gathers the facts, writes the plan and is woken by every
change of a parent or of one of its children (it follows the job store, as schedules do).

The job controller validates a fan-out parent like any job and starts it (Pending -> Running,
the runbook's digest snapshotted; `hrw_api.fanout.start`); from then on this controller is the
parent's only writer:

- **The target set is fixed when the parent starts**: the ready, not draining workers of the
  group whose labels match (`all: true`: every one), as this operator's Lease view holds them at
  its first look at the running parent. It is written into `status.fanOut.workers` at once; a
  worker that joins later is not a target (create another job to reach it).
- **One child per target**, named `hrw_api.fanout.child_name` (a second create is a 409), owned by
  the parent (deleting the parent deletes them), labelled with the parent and the worker, pinned
  by `spec.pinnedWorker` to its worker and annotated with the parent's digest (a child whose
  runbook changed meanwhile ends `RunbookChanged` instead of running other content). A child is
  an ordinary job otherwise: validated, queued, claimed, timed out, retried and requeued after a
  lost worker by the job controller and the agents, by the rules every job follows. A requeued
  child waits for its own worker (only it may claim it) until its queue timeout.
- Children start in the target set's order (worker names sorted), at most `maxConcurrency` not
  ended at once. Once more than `maxErrors` have ended badly (Failed, TimedOut, Cancelled), no
  new child starts: the rest are `Skipped` (reason `MaxErrorsExceeded`) and those running finish.
- `spec.cancel` on the parent cancels its running children and skips the rest; the parent ends
  `Cancelled` when they have ended.
- The parent ends when every target is done: `Succeeded` if every child succeeded, else `Failed`
  (`MaxErrorsExceeded` or `WorkersFailed`), `Failed` (`NoMatchingWorkers`) when nothing matched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hrw_api import RunbookJob, names, patches
from hrw_api.errors import ApiError, InvalidObject
from hrw_api.fanout import (
    REASON_ALL_SUCCEEDED,
    REASON_MAX_ERRORS,
    REASON_NO_WORKERS,
    REASON_WORKERS_FAILED,
    FanOutStatus,
    RunPhase,
    WorkerRun,
    child_name,
)
from hrw_api.kubeclient import RUNBOOK_JOBS
from hrw_api.phases import JobPhase, Reason
from hrw_api.times import now as utcnow

from . import events
from .frame import Controller, Observed, Pass, Store, Tools, View
from .leases import LeaseView
from .logs import kv

logger = logging.getLogger("hrw.operator.fanout")


# -------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Child:
    """One child of the parent, as much of it as the plan needs."""

    name: str
    phase: JobPhase
    reason: str = ""
    cancel: bool = False


@dataclass(frozen=True)
class FanOutFacts:
    children: Mapping[str, Child] = field(default_factory=dict)
    """The parent's children by worker."""
    ready_workers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The group's ready, not draining workers and their labels (read only to fix the target set)."""


@dataclass(frozen=True)
class End:
    phase: JobPhase
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    summary: FanOutStatus
    create: tuple[str, ...] = ()
    """Workers whose child to create now."""
    cancel: tuple[str, ...] = ()
    """Children (job names) to cancel."""
    end: End | None = None


# ------------------------------------------------------------------------------------- the plan


def plan(parent: RunbookJob, summary: FanOutStatus | None, facts: FanOutFacts) -> Plan:
    """What to do about a running fan-out parent. Pure."""
    fan = parent.spec.fan_out
    if fan is None:
        raise ValueError(f"job {parent.meta.name} is not a fan-out job")
    if summary is None:
        summary = FanOutStatus.of_targets(w for w, labels in facts.ready_workers.items() if fan.picks(labels))
    runs = []
    for run in summary.workers:
        child = facts.children.get(run.worker)
        if child is not None:
            # The child's reason only once it ended: the parent's status changes when a run starts
            # or ends, not on each step of a child (Queued, Started, ...).
            phase = RunPhase.of_child(child.phase)
            run = WorkerRun(run.worker, phase, child.name, child.reason if phase.done else "")
        runs.append(run)
    targets = len(runs)
    errors = sum(1 for r in runs if r.phase is RunPhase.FAILED)
    budget = fan.max_errors.resolve(targets, at_least_one=False)
    concurrency = fan.max_concurrency.resolve(targets, at_least_one=True)
    create: list[str] = []
    cancel: list[str] = []
    if parent.spec.cancel:
        stop_reason: str | None = Reason.CANCELLED.value
        cancel = [c.name for c in facts.children.values() if not c.phase.terminal and not c.cancel]
    elif errors > budget:
        stop_reason = REASON_MAX_ERRORS
    else:
        stop_reason = None
    active = sum(1 for r in runs if r.phase is RunPhase.RUNNING)
    for i, run in enumerate(runs):
        if run.phase is not RunPhase.PENDING:
            continue
        if stop_reason is not None:
            runs[i] = replace(run, phase=RunPhase.SKIPPED, reason=stop_reason)
        elif active < concurrency:
            runs[i] = replace(run, phase=RunPhase.RUNNING, job=child_name(parent.meta.name, run.worker,
                                                                          parent.meta.uid))
            create.append(run.worker)
            active += 1
    summary = FanOutStatus(tuple(runs))
    end = None
    if all(r.phase.done for r in runs):
        end = _end(parent, summary, errors, budget)
    return Plan(summary, tuple(create), tuple(cancel), end)


def _end(parent: RunbookJob, summary: FanOutStatus, errors: int, budget: int) -> End:
    fan = parent.spec.fan_out
    assert fan is not None
    targets = len(summary.workers)
    succeeded = summary.count(RunPhase.SUCCEEDED)
    skipped = summary.count(RunPhase.SKIPPED)
    if parent.spec.cancel:
        return End(JobPhase.CANCELLED, Reason.CANCELLED, f"cancelled: {succeeded} of {targets} workers succeeded, "
                                                         f"{errors} failed, {skipped} skipped")
    if targets == 0:
        return End(JobPhase.FAILED, REASON_NO_WORKERS, f"no ready worker of group {parent.spec.worker_group!r} is "
                                                       f"one of {fan.describe()}")
    if succeeded == targets:
        return End(JobPhase.SUCCEEDED, REASON_ALL_SUCCEEDED, f"all {targets} workers succeeded")
    failed = ", ".join(r.worker for r in summary.workers if r.phase is RunPhase.FAILED)
    if errors > budget:
        return End(JobPhase.FAILED, REASON_MAX_ERRORS,
                   f"{errors} of {targets} workers failed ({failed}), more than maxErrors {fan.max_errors} "
                   f"allows; {skipped} not started, {succeeded} succeeded")
    return End(JobPhase.FAILED, REASON_WORKERS_FAILED,
               f"{errors} of {targets} workers failed ({failed}); {succeeded} succeeded")


def child_body(parent: RunbookJob, worker: str) -> dict[str, Any]:
    """The child of `parent` for `worker`: the parent's spec but fanOut, TTL and cancel, pinned to `worker`."""
    spec = parent.spec
    body: dict[str, Any] = {
        "runbookRef": {"name": spec.runbook},
        "workerGroup": spec.worker_group,
        "parameters": dict(spec.parameters),
        "queueTimeoutSeconds": spec.queue_timeout_seconds,
        "retryPolicy": {"maxAttempts": spec.retry_policy.max_attempts,
                        "retryOn": sorted(r.value for r in spec.retry_policy.retry_on)},
        "pinnedWorker": worker,
    }
    if spec.timeout_seconds is not None:
        body["timeoutSeconds"] = spec.timeout_seconds
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.RUNBOOK_JOB,
        "metadata": {
            "name": child_name(parent.meta.name, worker, parent.meta.uid),
            "namespace": parent.meta.namespace,
            "labels": {names.LABEL_FAN_OUT_JOB: parent.meta.name, names.LABEL_WORKER: worker},
            "annotations": {names.ANNOTATION_RUNBOOK_DIGEST: parent.status.runbook_digest or ""},
            "ownerReferences": [{"apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB, "name": parent.meta.name,
                                 "uid": parent.meta.uid, "controller": True}],
        },
        "spec": body,
    }


# ---------------------------------------------------------------------------------- controller


class FanOutController(Controller[RunbookJob]):
    """Drives each running fan-out parent from its children (the job store) and the group's Leases.

    Its store holds the parents only, fed by following the job store: it is not subscribed to a
    watch of its own."""

    kind = "fanout"
    resource = RUNBOOK_JOBS

    def __init__(self, tools: Tools, store: Store[RunbookJob], *, jobs: View[RunbookJob], leases: LeaseView) -> None:
        super().__init__(tools, store)
        self.jobs = jobs
        self.leases = leases
        jobs.follow(self._job_changed)

    def _job_changed(self, job: Observed[RunbookJob]) -> None:
        key = job.key
        if self.jobs.get(key) is None:  # removed
            if key in self.store:
                self.forget(key)
            parent = job.meta.labels.get(names.LABEL_FAN_OUT_JOB)
            if parent and (job.meta.namespace, parent) in self.store:
                self.soon((job.meta.namespace, parent))
            return
        if job.model is not None and job.model.spec.fan_out is not None:
            self.store.put(job)
            self.soon(key)
            return
        parent = job.meta.labels.get(names.LABEL_FAN_OUT_JOB)
        if parent and (job.meta.namespace, parent) in self.store:
            self.soon((job.meta.namespace, parent))

    async def reconcile_once(self, observed: Observed[RunbookJob]) -> Pass:
        parent = observed.model
        if parent is None or parent.spec.fan_out is None or parent.meta.deletion_timestamp is not None \
                or parent.status.phase is not JobPhase.RUNNING:
            return Pass()
        try:
            summary = FanOutStatus.parse(observed.status.get("fanOut"))
        except InvalidObject:
            summary = None  # not ours to keep: fixed again from the Leases
        facts = await self._facts(parent, summary)
        decided = plan(parent, summary, facts)
        ns = parent.meta.namespace
        for name in decided.cancel:
            await self._cancel(ns, name)
        for worker in decided.create:
            await self._create(parent, worker)
        await self._write(observed, parent, decided)
        return Pass()

    async def _facts(self, parent: RunbookJob, summary: FanOutStatus | None) -> FanOutFacts:
        ns, name = parent.meta.namespace, parent.meta.name
        children: dict[str, Child] = {}
        for observed in self.jobs.in_namespace(ns):
            job = observed.model
            if job is None or observed.meta.labels.get(names.LABEL_FAN_OUT_JOB) != name \
                    or observed.meta.controller_uid != parent.meta.uid or job.spec.pinned_worker is None:
                continue
            children[job.spec.pinned_worker] = Child(job.meta.name, job.status.phase, job.status.reason or "",
                                                     job.spec.cancel)
        if summary is not None:
            for run in summary.workers:
                if run.job and run.worker not in children and not run.phase.done:
                    children.update(await self._missing_child(ns, run))
        ready: dict[str, Mapping[str, str]] = {}
        if summary is None:
            now = utcnow()
            ready = {lease.worker: lease.info.labels for lease in self.leases.of_group(ns, parent.spec.worker_group)
                     if lease.ready(now) and not lease.info.draining}
        return FanOutFacts(children, ready)

    async def _missing_child(self, namespace: str, run: WorkerRun) -> dict[str, Child]:
        """A child the summary names that the job view does not hold: just created (the view lags),
        or deleted by someone, which ends that worker's run Failed."""
        try:
            body = await self.client.get(RUNBOOK_JOBS.path(namespace, run.job))
        except ApiError as exc:
            if exc.code != 404:
                raise
            return {run.worker: Child(run.job, JobPhase.FAILED, "JobDeleted")}
        job = RunbookJob.parse(body)
        return {run.worker: Child(job.meta.name, job.status.phase, job.status.reason or "", job.spec.cancel)}

    async def _create(self, parent: RunbookJob, worker: str) -> None:
        body = child_body(parent, worker)
        ns, name = parent.meta.namespace, body["metadata"]["name"]
        try:
            await self.client.create(RUNBOOK_JOBS.path(ns), body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            kv(logger, logging.INFO, "fanout.child_exists", namespace=ns, job=parent.meta.name, child=name)
            return
        kv(logger, logging.INFO, "fanout.child_created", namespace=ns, job=parent.meta.name, child=name, worker=worker)

    async def _cancel(self, namespace: str, name: str) -> None:
        try:
            await self.client.patch(RUNBOOK_JOBS.path(namespace, name), {"spec": {"cancel": True}})
        except ApiError as exc:
            if exc.code != 404:
                raise
        kv(logger, logging.INFO, "fanout.child_cancelled", namespace=namespace, child=name)

    async def _write(self, observed: Observed[RunbookJob], parent: RunbookJob, decided: Plan) -> None:
        summary = decided.summary.to_dict()
        if decided.end is None:
            await self.write_status(observed, {"fanOut": summary, "message": _progress_message(parent, decided)})
            return
        end = decided.end
        ns, name = parent.meta.namespace, parent.meta.name
        patch = [*patches.end(JobPhase.RUNNING, parent.status.attempt, end.phase, end.reason, end.message,
                              parent.meta.generation),
                 {"op": "add", "path": "/status/fanOut", "value": summary}]
        try:
            answer = await self.client.patch(RUNBOOK_JOBS.path(ns, name, "status"), patch, json_patch=True)
        except ApiError as exc:
            if exc.code in (404, 409, 422):  # gone, or moved by someone else first: look again on its event
                kv(logger, logging.INFO, "fanout.end_conflict", namespace=ns, job=name, code=exc.code)
                return
            raise
        self.store.observe(answer)
        kv(logger, logging.INFO, "fanout.ended", namespace=ns, job=name, phase=end.phase.value, reason=end.reason)
        if end.phase is not JobPhase.SUCCEEDED:
            await self.tools.recorder.post(parent.meta, names.RUNBOOK_JOB, type_=events.WARNING, reason=end.reason,
                                           action="FanOut", note=end.message)


def _progress_message(parent: RunbookJob, decided: Plan) -> str:
    fan = parent.spec.fan_out
    assert fan is not None
    return (f"{decided.summary.progress} on {fan.describe()} of group {parent.spec.worker_group!r} "
            f"(maxConcurrency {fan.max_concurrency}, maxErrors {fan.max_errors})")
