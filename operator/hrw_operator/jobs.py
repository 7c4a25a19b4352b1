"""RunbookJob: the hot kind, reconciled by a pure decision and a thin layer that writes it.

`decide(job, facts, now)` is a pure function from what is known (the job, its runbook, group,
assets and the claimer's Lease) to at most one action and the moment to look again. The
`JobController` gathers the facts, applies the action with the contract's fenced patch
builders (`hrw_api.patches`), posts an Event, and schedules its own timer for the next
deadline. kopf only feeds it watch events (`@kopf.on.event`): no change handler, so kopf
writes no progress or diff-base annotation on any job, and the operator's writes for one job
from creation to success are exactly two (the queue patch and the batch-style condition).

A 422 from a fenced patch means another party moved the job first: re-read, decide again,
never overwrite. A 404 means the job is gone. All state lives in the API: a restarted
operator lists the jobs and rebuilds every timer from their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import kopf

from hrw_api import Asset, Condition, RetryOn, Runbook, RunbookJob, WorkerGroup, conditions, names, params, patches
from hrw_api.errors import ApiError, InvalidObject
from hrw_api.kubeclient import ASSETS, LEASES, RUNBOOK_JOBS, RUNBOOKS, WORKER_GROUPS
from hrw_api.phases import RUN_DEADLINE_GRACE_SECONDS, JobPhase, Reason
from hrw_api.times import now as utcnow
from hrw_api.times import parse_time

from . import events
from .leases import LeaseInfo
from .logs import kv
from .scheduler import Timers

if TYPE_CHECKING:
    from .context import Operator

logger = logging.getLogger("hrw.operator.jobs")

Key = tuple[str, str]
DEFAULT_LEASE_DURATION_SECONDS = 30


# ------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Queue:
    digest: str
    interpreter: str
    warning: str = ""  # why no worker of the group can run it now (it waits for one that can)


@dataclass(frozen=True)
class Reject:
    reason: str
    message: str
    phase: JobPhase = JobPhase.FAILED


@dataclass(frozen=True)
class End:
    from_phase: JobPhase
    attempt: int
    phase: JobPhase
    reason: str
    message: str


@dataclass(frozen=True)
class Requeue:
    from_phase: JobPhase
    attempt: int
    worker: str
    message: str


@dataclass(frozen=True)
class MarkFinished:
    """Add the batch-style `Complete`/`Failed` condition to a job an agent ended."""

    phase: JobPhase
    reason: str
    message: str


@dataclass(frozen=True)
class Delete:
    """`ttlSecondsAfterFinished` has passed."""


Action = Queue | Reject | End | Requeue | MarkFinished | Delete


@dataclass(frozen=True)
class Decision:
    action: Action | None = None
    wake_at: datetime | None = None
    why: str = ""


@dataclass(frozen=True)
class JobFacts:
    """What `decide` may look at besides the job. Only what the job's phase needs is filled in."""

    runbook: Runbook | None = None
    runbook_problem: str | None = None  # the runbook exists but does not parse
    group: WorkerGroup | None = None
    group_problem: str | None = None
    assets: Mapping[str, Asset | None] = field(default_factory=dict)
    lease: LeaseInfo | None = None  # the claimer's Lease, None if there is none
    runbook_timeout_seconds: int | None = None  # for held jobs (the runbook may be gone by then)
    lease_duration_seconds: int = DEFAULT_LEASE_DURATION_SECONDS  # the group's, for held jobs


@dataclass(frozen=True)
class Tunables:
    pending_retry_seconds: float = 2.0
    pending_give_up_seconds: float = 60.0


# ------------------------------------------------------------------------------------ decisions


def _evaluated(generation: int, conds: tuple[Condition, ...]) -> bool:
    ready = conditions.find(conds, conditions.READY)
    return ready is not None and ready.observed_generation >= generation


def _decide_pending(job: RunbookJob, facts: JobFacts, now: datetime, tunables: Tunables) -> Decision:
    spec, ns = job.spec, job.meta.namespace
    if spec.cancel:
        return Decision(Reject(Reason.CANCELLED, "cancelled before it was queued", JobPhase.CANCELLED))
    runbook = facts.runbook
    if runbook is None:
        if facts.runbook_problem:
            return Decision(Reject(Reason.RUNBOOK_NOT_READY,
                                   f"runbook {spec.runbook!r} is invalid: {facts.runbook_problem}"))
        return Decision(Reject(Reason.RUNBOOK_NOT_FOUND, f"runbook {spec.runbook!r} not found in namespace {ns!r}"))

    def wait(what: str) -> Decision:
        created = parse_time(job.meta.creation_timestamp) or now
        if now - created >= timedelta(seconds=tunables.pending_give_up_seconds):
            return Decision(Reject(Reason.RUNBOOK_NOT_READY if what.startswith("runbook") else Reason.ASSET_NOT_READY,
                                   f"{what} was not evaluated within {tunables.pending_give_up_seconds:g}s"))
        return Decision(None, now + timedelta(seconds=tunables.pending_retry_seconds), f"waiting for {what}")

    if not _evaluated(runbook.meta.generation, runbook.status.conditions):
        return wait(f"runbook {spec.runbook!r}")
    ready = conditions.find(runbook.status.conditions, conditions.READY)
    if ready is None or ready.status != "True" or not runbook.status.digest:
        detail = f"{ready.reason}: {ready.message}" if ready else "no Ready condition"
        return Decision(Reject(Reason.RUNBOOK_NOT_READY, f"runbook {spec.runbook!r} is not ready ({detail})"))
    group = facts.group
    if group is None:
        detail = f" ({facts.group_problem})" if facts.group_problem else ""
        return Decision(Reject(Reason.WORKER_GROUP_NOT_FOUND,
                               f"worker group {spec.worker_group!r} not found in namespace {ns!r}{detail}"))
    try:
        _, problems = params.check(runbook.spec.parameters, spec.parameters)
    except Exception as exc:  # a pattern the runbook check missed must not crash the reconcile
        problems = [f"cannot check parameters: {exc}"]
    if problems:
        return Decision(Reject(Reason.INVALID_PARAMETERS,
                               f"parameters do not fit runbook {spec.runbook!r}: " + "; ".join(problems)))
    asset_problems: list[str] = []
    for name in runbook.spec.assets:
        asset = facts.assets.get(name)
        if asset is None:
            asset_problems.append(f"asset {name!r} not found")
            continue
        if not _evaluated(asset.meta.generation, asset.conditions):
            return wait(f"asset {name!r}")
        cond = conditions.find(asset.conditions, conditions.READY)
        if cond is None or cond.status != "True":
            asset_problems.append(f"asset {name!r} is not ready ({cond.message if cond else 'no Ready condition'})")
    if asset_problems:
        listed = "; ".join(asset_problems)
        return Decision(Reject(Reason.ASSET_NOT_READY,
                               f"runbook {spec.runbook!r} needs assets that are not ready: {listed}"))
    if runbook.spec.interpreter not in group.spec.interpreters:
        allowed = ", ".join(i.value for i in group.spec.interpreters)
        return Decision(Reject(Reason.INTERPRETER_NOT_ALLOWED,
                               f"runbook {spec.runbook!r} uses interpreter {runbook.spec.interpreter.value}; "
                               f"worker group {spec.worker_group!r} allows {allowed}"))
    if group.spec.require_signed_runbooks:
        signature = runbook.spec.signature
        if signature is None:
            return Decision(Reject(Reason.UNSIGNED_RUNBOOK,
                                   f"worker group {spec.worker_group!r} requires signed runbooks and runbook "
                                   f"{spec.runbook!r} has no spec.signature"))
        if signature.key_id not in {k.key_id for k in group.spec.trusted_keys}:
            return Decision(Reject(Reason.UNSIGNED_RUNBOOK,
                                   f"runbook {spec.runbook!r} is signed with key {signature.key_id!r}, which worker "
                                   f"group {spec.worker_group!r} does not trust"))
    return Decision(Queue(runbook.status.digest, runbook.spec.interpreter.value, _no_capable_worker(runbook, group)),
                    why="valid")


def _no_capable_worker(runbook: Runbook, group: WorkerGroup) -> str:
    """A scheduler-style warning when no ready worker has the runbook's interpreter ("" if one has)."""
    interpreter = runbook.spec.interpreter.value
    ready = [w for w in group.workers if w.ready]
    if any(interpreter in w.interpreters for w in ready):
        return ""
    have = "; ".join(f"{w.name}: {', '.join(w.interpreters) or 'none'}" for w in ready) or "no ready workers"
    return f"no ready worker of group {group.meta.name} has interpreter {interpreter} ({have}); it waits for one"


def _decide_queued(job: RunbookJob, now: datetime) -> Decision:
    status = job.status
    if job.spec.cancel:
        return Decision(End(JobPhase.QUEUED, status.attempt, JobPhase.CANCELLED, Reason.CANCELLED,
                            "cancelled while queued"))
    queued_at = parse_time(status.queued_time) or parse_time(job.meta.creation_timestamp) or now
    deadline = queued_at + timedelta(seconds=job.spec.queue_timeout_seconds)
    if now >= deadline:
        return Decision(End(JobPhase.QUEUED, status.attempt, JobPhase.TIMED_OUT, Reason.QUEUE_TIMEOUT,
                            f"no worker of group {job.spec.worker_group!r} claimed attempt {status.attempt} "
                            f"within {job.spec.queue_timeout_seconds}s"))
    return Decision(None, deadline, "queue timeout")


def _decide_held(job: RunbookJob, facts: JobFacts, now: datetime) -> Decision:
    status, phase = job.status, job.status.phase
    claim = status.claim
    worker = claim.worker if claim else "?"
    if job.spec.cancel:
        return Decision(End(phase, status.attempt, JobPhase.CANCELLED, Reason.CANCELLED,
                            f"cancelled while {phase.value.lower()} on worker {worker}"))
    wakes: list[datetime] = []
    timeout = job.spec.timeout_seconds or facts.runbook_timeout_seconds
    started = parse_time(status.start_time) or (parse_time(claim.claimed_at) if claim else None)
    if timeout and started:
        deadline = started + timedelta(seconds=timeout + RUN_DEADLINE_GRACE_SECONDS)
        if now >= deadline:
            return Decision(End(phase, status.attempt, JobPhase.TIMED_OUT, Reason.DEADLINE_EXCEEDED,
                                f"attempt {status.attempt} on worker {worker} did not end within {timeout}s "
                                f"(+{RUN_DEADLINE_GRACE_SECONDS}s grace)"))
        wakes.append(deadline)
    if claim is not None and claim.attempt == status.attempt:
        lost: str | None = None
        lease = facts.lease
        if lease is not None:
            expiry = lease.expires_at
            if expiry is None or now >= expiry:
                lost = f"worker {worker} lost: its Lease was last renewed at {lease.renew_time} and expired"
            else:
                wakes.append(expiry)
        else:
            claimed_at = parse_time(claim.claimed_at) or parse_time(status.start_time) or now
            grace = claimed_at + timedelta(seconds=facts.lease_duration_seconds)
            if now >= grace:
                lost = f"worker {worker} lost: it has no Lease {facts.lease_duration_seconds}s after its claim"
            else:
                wakes.append(grace)
        if lost is not None:
            policy = job.spec.retry_policy
            if policy.allows(status.attempt, RetryOn.WORKER_LOST):
                return Decision(Requeue(phase, status.attempt, worker,
                                        f"{lost}; attempt {status.attempt + 1} of {policy.max_attempts} queued"))
            return Decision(End(phase, status.attempt, JobPhase.FAILED, Reason.WORKER_LOST,
                                f"{lost}; no attempt left ({status.attempt} of {policy.max_attempts}, "
                                f"retryOn {sorted(r.value for r in policy.retry_on)})"))
    return Decision(None, min(wakes) if wakes else None, "run deadline / claimer's Lease")


def _decide_terminal(job: RunbookJob, now: datetime) -> Decision:
    status = job.status
    if patches.finished_conditions(status.phase, status.reason or status.phase.value, status.message or "",
                                   job.meta.generation, status.conditions) is not None:
        return Decision(MarkFinished(status.phase, status.reason or status.phase.value, status.message or ""))
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None:
        return Decision(None, None, "finished")
    done = parse_time(status.completion_time) or parse_time(job.meta.creation_timestamp) or now
    expiry = done + timedelta(seconds=ttl)
    if now >= expiry:
        return Decision(Delete(), why=f"finished {ttl}s ago")
    return Decision(None, expiry, "ttlSecondsAfterFinished")


def decide(job: RunbookJob, facts: JobFacts, now: datetime, tunables: Tunables | None = None) -> Decision:
    """The one thing to do about `job` now, and when to look again. Pure."""
    if job.meta.deletion_timestamp:
        return Decision(None, None, "being deleted")
    phase = job.status.phase
    if phase is JobPhase.PENDING:
        return _decide_pending(job, facts, now, tunables or Tunables())
    if phase is JobPhase.QUEUED:
        return _decide_queued(job, now)
    if phase.held:
        return _decide_held(job, facts, now)
    return _decide_terminal(job, now)


def build_patch(job: RunbookJob, action: Action) -> patches.JsonPatch | None:
    """The contract's patch for `action` (None for Delete)."""
    gen = job.meta.generation
    match action:
        case Queue(digest=digest, interpreter=interpreter):
            return patches.queue(job.meta.resource_version, digest, gen, interpreter=interpreter)
        case Reject(reason=reason, message=message, phase=phase):
            return patches.reject(job.meta.resource_version, reason, message, gen, phase=phase)
        case End(from_phase=src, attempt=attempt, phase=phase, reason=reason, message=message):
            return patches.end(src, attempt, phase, reason, message, gen)
        case Requeue(from_phase=src, attempt=attempt, message=message):
            return patches.requeue(src, attempt, message)
        case MarkFinished(phase=phase, reason=reason, message=message):
            return patches.finished_conditions(phase, reason, message, gen, job.status.conditions)
        case Delete():
            return None
    raise AssertionError(f"unknown action {action!r}")


def events_for(action: Action, job: RunbookJob) -> list[tuple[str, str, str]]:
    """(type, reason, note) of the Events that report `action`: the transition's, and a queued job's
    warning that no worker can run it yet."""
    described = _transition_event(action, job)
    found = [described] if described is not None else []
    if isinstance(action, Queue) and action.warning:
        found.append((events.WARNING, "NoCapableWorker", action.warning))
    return found


def _transition_event(action: Action, job: RunbookJob) -> tuple[str, str, str] | None:
    """(type, reason, note) of the Event that reports `action`, or None."""
    match action:
        case Queue(digest=digest):
            return events.NORMAL, "Queued", f"attempt 1 queued for worker group {job.spec.worker_group} ({digest})"
        case Reject(phase=JobPhase.CANCELLED, message=message):
            return events.NORMAL, "Cancelled", message
        case Reject(reason=reason, message=message):
            return events.WARNING, "Rejected", f"{reason}: {message}"
        case End(phase=JobPhase.CANCELLED, message=message):
            return events.NORMAL, "Cancelled", message
        case End(phase=JobPhase.TIMED_OUT, reason=reason, message=message):
            return events.WARNING, "TimedOut", f"{reason}: {message}"
        case End(reason=reason, message=message):
            return events.WARNING, str(reason), message
        case Requeue(message=message):
            return events.WARNING, "Requeued", message
        case MarkFinished(phase=JobPhase.SUCCEEDED, reason=reason, message=message):
            return events.NORMAL, "Succeeded", f"{reason}: {message}"
        case MarkFinished(phase=phase, reason=reason, message=message):
            return events.WARNING, phase.value, f"{reason}: {message}"
    return None


# ----------------------------------------------------------------------------------- controller


def _rv(body: Mapping[str, Any]) -> int | None:
    text = str((body.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


class JobController:
    """Keeps the latest body of every job it serves, reconciles one job at a time per key."""

    MAX_ROUNDS = 6  # decide/apply rounds per reconcile (a conflict or a follow-up action each)

    def __init__(self, operator: Operator) -> None:
        self.op = operator
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.timers = Timers("jobs")
        self._locks: dict[Key, asyncio.Lock] = {}
        self._runbook_timeouts: dict[tuple[str, str, str], int | None] = {}  # (ns, job uid, runbook)
        self.writes = 0

    @property
    def tunables(self) -> Tunables:
        s = self.op.settings
        return Tunables(s.pending_retry_seconds, s.pending_give_up_seconds)

    # -- feeding

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.forget(key)
            return
        old = self.bodies.get(key)
        if old is not None and (old.get("metadata") or {}).get("uid") == meta.get("uid"):
            new_rv, old_rv = _rv(body), _rv(old)
            if new_rv is not None and old_rv is not None and new_rv < old_rv:
                return  # we already hold a newer version (from our own patch's answer)
        self.bodies[key] = dict(body)
        await self.reconcile(key)

    def forget(self, key: Key) -> None:
        self.bodies.pop(key, None)
        self.timers.cancel(key)
        self._locks.pop(key, None)
        for k in [k for k in self._runbook_timeouts if k[0] == key[0] and k[1] == key[1]]:
            self._runbook_timeouts.pop(k, None)

    def kick_pending(self, namespace: str) -> None:
        """Look again at the namespace's Pending jobs now (a runbook or an asset was just evaluated)."""
        moment = utcnow()
        for key, body in list(self.bodies.items()):
            if key[0] == namespace and not (body.get("status") or {}).get("phase"):
                self.timers.schedule(key, moment, functools.partial(self.reconcile, key))

    # -- reconciling

    async def reconcile(self, key: Key) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                await self._reconcile(key)
            except Exception as exc:
                kv(logger, logging.ERROR, "job.reconcile_failed", namespace=key[0], job=key[1],
                   error=type(exc).__name__, detail=str(exc)[:300])
                self._retry_later(key)

    def _retry_later(self, key: Key) -> None:
        if key in self.bodies:
            when = utcnow() + timedelta(seconds=self.op.settings.error_retry_seconds)
            self.timers.schedule(key, when, lambda: self.reconcile(key))

    async def _reconcile(self, key: Key) -> None:
        for _ in range(self.MAX_ROUNDS):
            body = self.bodies.get(key)
            if body is None:
                return
            try:
                job = RunbookJob.parse(body)
            except InvalidObject as exc:
                kv(logger, logging.WARNING, "job.unparseable", namespace=key[0], job=key[1], field=exc.field,
                   problem=exc.message)
                return
            facts = await self._facts(job)
            decision = decide(job, facts, utcnow(), self.tunables)
            if isinstance(decision.action, Requeue) or (
                    isinstance(decision.action, End) and decision.action.reason == Reason.WORKER_LOST):
                # The view of Leases may lag (a fresh start, a slow watch): confirm with the API.
                facts = await self._confirm_lease(job, facts)
                decision = decide(job, facts, utcnow(), self.tunables)
            if decision.action is None:
                if decision.wake_at is not None:
                    self.timers.schedule(key, decision.wake_at, lambda: self.reconcile(key))
                else:
                    self.timers.cancel(key)
                return
            outcome = await self._apply(job, body, decision.action)
            if outcome == "gone":
                self.forget(key)
                return
            if outcome == "error":
                self._retry_later(key)
                return
            # "applied" or "conflict": the stored body is fresh again; decide once more.
        kv(logger, logging.WARNING, "job.too_many_rounds", namespace=key[0], job=key[1])
        self._retry_later(key)

    async def _apply(self, job: RunbookJob, body: Mapping[str, Any], action: Action) -> str:
        ns, name = job.meta.namespace, job.meta.name
        key = (ns, name)
        client = self.op.client
        kind = type(action).__name__
        try:
            if isinstance(action, Delete):
                await client.request("DELETE", RUNBOOK_JOBS.path(ns, name),
                                     body={"preconditions": {"uid": job.meta.uid}})
                self.writes += 1
                kv(logger, logging.INFO, "job.write", namespace=ns, job=name, action=kind,
                   phase=job.status.phase.value)
                self.forget(key)
                return "gone"
            patch = build_patch(job, action)
            if patch is None:
                return "applied"
            answer = await client.patch(RUNBOOK_JOBS.path(ns, name, "status"), patch, json_patch=True)
        except ApiError as exc:
            if exc.code == 404:
                kv(logger, logging.INFO, "job.gone", namespace=ns, job=name, action=kind)
                return "gone"
            if exc.code in (409, 422):
                kv(logger, logging.INFO, "job.conflict", namespace=ns, job=name, action=kind,
                   phase=job.status.phase.value, attempt=job.status.attempt)
                return await self._reread(key)
            kv(logger, logging.WARNING, "job.write_failed", namespace=ns, job=name, action=kind, code=exc.code,
               reason=exc.reason)
            return "error"
        except Exception as exc:  # network trouble: try again later
            kv(logger, logging.WARNING, "job.write_failed", namespace=ns, job=name, action=kind,
               error=type(exc).__name__)
            return "error"
        self.writes += 1
        self.bodies[key] = answer
        new_status = answer.get("status") or {}
        kv(logger, logging.INFO, "job.write", namespace=ns, job=name, action=kind,
           phase=new_status.get("phase"), attempt=new_status.get("attempt"), reason=new_status.get("reason"))
        for type_, reason, note in events_for(action, job):
            await self.op.recorder.post(answer, type_=type_, reason=reason, action=kind, note=note)
        return "applied"

    async def _reread(self, key: Key) -> str:
        try:
            self.bodies[key] = await self.op.client.get(RUNBOOK_JOBS.path(*key))
        except ApiError as exc:
            if exc.code == 404:
                return "gone"
            return "error"
        return "conflict"

    # -- facts

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.op.client.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def _facts(self, job: RunbookJob) -> JobFacts:
        ns = job.meta.namespace
        phase = job.status.phase
        if phase is JobPhase.PENDING and not job.spec.cancel:
            return await self._pending_facts(job)
        if not phase.held:
            return JobFacts()
        group_body = self.op.groups.bodies.get((ns, job.spec.worker_group))
        if group_body is None:
            group_body = await self._get(WORKER_GROUPS.path(ns, job.spec.worker_group))
        duration = DEFAULT_LEASE_DURATION_SECONDS
        if group_body is not None:
            with contextlib.suppress(InvalidObject):
                duration = WorkerGroup.parse(group_body).spec.lease_duration_seconds
        lease = None
        if job.status.claim is not None:
            lease = self.op.leases.get(ns, names.lease_name(job.spec.worker_group, job.status.claim.worker))
        return JobFacts(lease=lease, lease_duration_seconds=duration,
                        runbook_timeout_seconds=await self._runbook_timeout(job))

    async def _runbook_timeout(self, job: RunbookJob) -> int | None:
        if job.spec.timeout_seconds:
            return None  # the job's own timeout wins
        cache_key = (job.meta.namespace, job.meta.name, job.meta.uid)
        if cache_key in self._runbook_timeouts:
            return self._runbook_timeouts[cache_key]
        body = self.op.runbooks.bodies.get((job.meta.namespace, job.spec.runbook))
        if body is None:
            body = await self._get(RUNBOOKS.path(job.meta.namespace, job.spec.runbook))
        timeout = None
        if body is not None:
            try:
                timeout = Runbook.parse(body).spec.timeout_seconds
            except InvalidObject:
                timeout = None
        self._runbook_timeouts[cache_key] = timeout
        return timeout

    async def _pending_facts(self, job: RunbookJob) -> JobFacts:
        ns = job.meta.namespace
        runbook = group = None
        runbook_problem = group_problem = None
        assets: dict[str, Asset | None] = {}
        rb_body = await self._get(RUNBOOKS.path(ns, job.spec.runbook))
        if rb_body is not None:
            try:
                runbook = Runbook.parse(rb_body)
            except InvalidObject as exc:
                runbook_problem = str(exc)
        group_body = await self._get(WORKER_GROUPS.path(ns, job.spec.worker_group))
        if group_body is not None:
            try:
                group = WorkerGroup.parse(group_body)
            except InvalidObject as exc:
                group_problem = str(exc)
        if runbook is not None:
            for asset_name in runbook.spec.assets:
                asset_body = await self._get(ASSETS.path(ns, asset_name))
                try:
                    assets[asset_name] = Asset.parse(asset_body) if asset_body is not None else None
                except InvalidObject:
                    assets[asset_name] = None
        return JobFacts(runbook=runbook, runbook_problem=runbook_problem, group=group, group_problem=group_problem,
                        assets=assets)

    async def _confirm_lease(self, job: RunbookJob, facts: JobFacts) -> JobFacts:
        claim = job.status.claim
        if claim is None:
            return facts
        name = names.lease_name(job.spec.worker_group, claim.worker)
        body = await self._get(LEASES.path(job.meta.namespace, name))
        lease = LeaseInfo.parse(body) if body is not None else None
        if lease is not None:
            self.op.leases.put(lease)
        return JobFacts(lease=lease, lease_duration_seconds=facts.lease_duration_seconds,
                        runbook_timeout_seconds=facts.runbook_timeout_seconds)

    async def close(self) -> None:
        await self.timers.close()


# -------------------------------------------------------------------------------------- handlers


@kopf.on.event(names.GROUP, names.VERSION, "runbookjobs")
async def runbookjob_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    await memo.jobs.on_event(event.get("type"), event["object"])
