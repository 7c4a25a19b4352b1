"""The RunbookJob decision, pure: `decide(job, facts, now) -> Decision`.

From what is known (the job, its runbook, group, assets and the claimer's Lease) to at most
one action out of a closed set and the moment to look again. No I/O, no clock of its own:
tested without a cluster (tests/unit/test_operator_jobs.py). `jobs.writes` turns an action
into the contract's fenced patch and the Events that report it; `jobs.controller` gathers the
facts and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hrw_api import (
    Asset,
    Condition,
    RetryOn,
    RunAs,
    Runbook,
    RunbookJob,
    WorkerGroup,
    WorkerLease,
    conditions,
    fanout,
    names,
    params,
    patches,
)
from hrw_api.phases import RUN_DEADLINE_GRACE_SECONDS, JobPhase, Reason

DEFAULT_LEASE_DURATION_SECONDS = 30


# ------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Queue:
    digest: str
    interpreter: str
    run_as: RunAs
    warning: str = ""  # why no worker of the group can run it now (it waits for one that can)


@dataclass(frozen=True)
class StartFanOut:
    """A valid fan-out job starts (Running, never Queued: no agent claims it); `fanout` creates its children."""

    digest: str
    interpreter: str
    run_as: RunAs
    message: str


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


Action = Queue | StartFanOut | Reject | End | Requeue | MarkFinished | Delete


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
    lease: WorkerLease | None = None  # the claimer's Lease, None if there is none
    runbook_timeout_seconds: int | None = None  # for held jobs (the runbook may be gone by then)
    lease_duration_seconds: int = DEFAULT_LEASE_DURATION_SECONDS  # the group's, for held jobs
    default_ttl_seconds_after_finished: int | None = None
    """The group's `spec.jobDefaults.ttlSecondsAfterFinished`, for finished jobs that set no TTL."""
    reachable_since: datetime | None = None
    """When the API server became reachable again after an outage the operator saw (`reachability`): a
    worker is lost only after a whole lease duration without renewal while it was reachable."""


@dataclass(frozen=True)
class Tunables:
    pending_retry_seconds: float = 2.0
    pending_give_up_seconds: float = 60.0
    arrival_grace_seconds: float = 3.0
    """How long a new job waits for a runbook or worker group that is not in the store yet: one
    `kubectl apply` (or a GitOps sync) of a folder may send the job a moment before its group."""


# ------------------------------------------------------------------------------------ decisions


def _evaluated(generation: int, conds: tuple[Condition, ...]) -> bool:
    ready = conditions.find(conds, conditions.READY)
    return ready is not None and ready.observed_generation >= generation


def _decide_pending(job: RunbookJob, facts: JobFacts, now: datetime, tunables: Tunables) -> Decision:
    spec, ns = job.spec, job.meta.namespace
    if spec.cancel:
        return Decision(Reject(Reason.CANCELLED, "cancelled before it was queued", JobPhase.CANCELLED))
    fan_out_child = bool(job.meta.controller_uid and job.meta.labels.get(names.LABEL_FAN_OUT_JOB))
    if spec.pinned_worker is not None and not fan_out_child:
        return Decision(Reject(fanout.REASON_PIN_NOT_ALLOWED,
                               f"spec.pinnedWorker is set by the operator on the children of a fan-out job only; to "
                               f"run on worker {spec.pinned_worker!r}, create a job with spec.fanOut.selector"))
    created = job.meta.creation_timestamp or now

    def arriving(what: str) -> Decision | None:
        if now - created < timedelta(seconds=tunables.arrival_grace_seconds):
            return Decision(None, now + timedelta(seconds=tunables.pending_retry_seconds), f"waiting for {what}")
        return None

    runbook = facts.runbook
    if runbook is None:
        if not facts.runbook_problem and (waiting := arriving(f"runbook {spec.runbook!r}")):
            return waiting
        if facts.runbook_problem:
            return Decision(Reject(Reason.RUNBOOK_NOT_READY,
                                   f"runbook {spec.runbook!r} is invalid: {facts.runbook_problem}"))
        return Decision(Reject(Reason.RUNBOOK_NOT_FOUND, f"runbook {spec.runbook!r} not found in namespace {ns!r}"))

    def wait(what: str) -> Decision:
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
        if not facts.group_problem and (waiting := arriving(f"worker group {spec.worker_group!r}")):
            return waiting
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
    run_as = group.spec.run_as.identity_for(runbook.spec.run_as)
    refusal = group.spec.run_as.refusal(run_as)
    if refusal is not None:
        return Decision(Reject(Reason.RUN_AS_NOT_ALLOWED,
                               f"runbook {spec.runbook!r} runs as {run_as}, which worker group "
                               f"{spec.worker_group!r} does not allow: {refusal}"))
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
    snapshotted = job.meta.annotations.get(names.ANNOTATION_RUNBOOK_DIGEST)
    if spec.pinned_worker is not None and snapshotted and snapshotted != runbook.status.digest:
        return Decision(Reject(fanout.REASON_RUNBOOK_CHANGED,
                               f"runbook {spec.runbook!r} changed since its fan-out job started (digest "
                               f"{runbook.status.digest}, not {snapshotted}): every worker runs the same content"))
    if spec.fan_out is not None:
        return Decision(StartFanOut(runbook.status.digest, runbook.spec.interpreter.value, run_as,
                                    f"runs on {spec.fan_out.describe()} of group {spec.worker_group!r}, "
                                    f"at most {spec.fan_out.max_concurrency} at once"), why="valid fan-out")
    return Decision(Queue(runbook.status.digest, runbook.spec.interpreter.value, run_as,
                          _no_capable_worker(runbook, group)), why="valid")


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
    queued_at = status.queued_time or job.meta.creation_timestamp or now
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
    started = status.start_time or (claim.claimed_at if claim else None)
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
                renewed = lease.renew_time or lease.acquire_time
                lost = f"worker {worker} lost: its Lease was last renewed at {renewed} and expired"
            else:
                wakes.append(expiry)
        else:
            claimed_at = claim.claimed_at or status.start_time or now
            grace = claimed_at + timedelta(seconds=facts.lease_duration_seconds)
            if now >= grace:
                lost = f"worker {worker} lost: it has no Lease {facts.lease_duration_seconds}s after its claim"
            else:
                wakes.append(grace)
        if lost is not None and facts.reachable_since is not None:
            settled = facts.reachable_since + timedelta(seconds=facts.lease_duration_seconds)
            if now < settled:  # the outage stopped every renewal: give the worker a whole Lease to renew
                lost = None
                wakes.append(settled)
        if lost is not None:
            policy = job.spec.retry_policy
            if policy.allows(status.attempt, RetryOn.WORKER_LOST):
                return Decision(Requeue(phase, status.attempt, worker,
                                        f"{lost}; attempt {status.attempt + 1} of {policy.max_attempts} queued"))
            return Decision(End(phase, status.attempt, JobPhase.FAILED, Reason.WORKER_LOST,
                                f"{lost}; no attempt left ({status.attempt} of {policy.max_attempts}, "
                                f"retryOn {sorted(r.value for r in policy.retry_on)})"))
    return Decision(None, min(wakes) if wakes else None, "run deadline / claimer's Lease")


def _decide_terminal(job: RunbookJob, facts: JobFacts, now: datetime) -> Decision:
    status = job.status
    if patches.finished_conditions(status.phase, status.reason or status.phase.value, status.message or "",
                                   job.meta.generation, status.conditions) is not None:
        return Decision(MarkFinished(status.phase, status.reason or status.phase.value, status.message or ""))
    ttl = job.spec.ttl_seconds_after_finished
    if ttl is None:
        ttl = facts.default_ttl_seconds_after_finished
    if ttl is None:
        return Decision(None, None, "finished")
    done = status.completion_time or job.meta.creation_timestamp or now
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
    if phase.held and job.spec.fan_out is not None:
        return Decision(None, None, "a fan-out job: its children run it, and `fanout` ends it")
    if phase.held:
        return _decide_held(job, facts, now)
    return _decide_terminal(job, facts, now)
