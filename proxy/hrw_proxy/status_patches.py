"""A worker's write to a job's `/status`: may it send this JSON Patch, and the times in it.

The contract reads the patch back (`hrw_api.intents.read_agent_patch`): it must be one of the
agent's intents, a move of the one table `AGENT_TRANSITIONS` touching only what that move may
touch, a claim only in the caller's own name, anything else only as the claimer of the job's
current attempt (fencing), a give-back only where the job's retryPolicy retries its cause. The
proxy first checks that the job is of the caller's group, and then forwards the patch unchanged
but for its times: its `test` operations make it atomic in the apiserver (a lost race is the
apiserver's 422, passed back as is). A value out of the contract's bounds (the CRD's) is a 400
naming the field, before the apiserver could answer it with a 422 the agent would read as a lost race.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hrw_api import ClaimIntent, Intent, PatchInvalid, PatchRefused, RunbookJob, read_agent_patch
from hrw_api.phases import JobPhase
from hrw_api.times import format_time

from .auth import WorkerIdentity
from .policy import check_job_of_group, check_may_claim_job
from .refusals import ProxyError, bad_request, forbidden


def check_status_patch(identity: WorkerIdentity, patch: Any, job: RunbookJob) -> Intent:
    """The intent of the status patch `identity` sends to `job`; a `ProxyError` (404 for another
    group's job, 400 naming the field for a value out of the contract's types and bounds, else 403)
    saying why not."""
    check_job_of_group(identity, job)
    try:
        intent = read_agent_patch(patch, job, worker=identity.worker)
    except PatchInvalid as exc:
        raise bad_request(str(exc)) from None
    except PatchRefused as exc:
        raise forbidden(str(exc)) from None
    if isinstance(intent, ClaimIntent):
        check_may_claim_job(identity, job)
    return intent


def lost_claim(intent: Intent, seen: RunbookJob) -> ProxyError | None:
    """The answer to a claim that `seen` (an earlier state of the job, from the shared watch)
    shows already lost, or None when only the apiserver can tell.

    A claim tests `phase == Queued` and `attempt == n`, and a job never comes back to Queued at
    the same attempt (a requeue or a give-back is attempt n + 1): once the job was seen past
    that, the apiserver's test would fail. Answered here as the apiserver would (422 Invalid),
    such a claim costs no upstream call: in a burst, an agent whose view lags tries several
    jobs that others took a moment ago (issue 10).
    """
    if not isinstance(intent, ClaimIntent):
        return None
    status = seen.status
    if status.attempt < intent.attempt or (status.attempt == intent.attempt and status.phase is JobPhase.QUEUED):
        return None
    if status.attempt == intent.attempt and status.phase is JobPhase.PENDING:
        return None
    return ProxyError(422, f"RunbookJob {seen.meta.name} is no longer Queued at attempt {intent.attempt} "
                           f"(it was {status.phase.value} at attempt {status.attempt}, held by "
                           f"{seen.holder or 'nobody'}): another worker claimed it first", reason="Invalid")


STATUS_TIME_PATHS = frozenset({"/status/startTime", "/status/completionTime", "/status/queuedTime"})


def stamp_status_times(patch: list[Any], now: datetime | None = None) -> list[Any]:
    """The agent's (checked) status patch with every time it sets taken from the proxy's clock.

    The operator measures the run deadline from `startTime` (or `claim.claimedAt`) and the queue
    timeout from `queuedTime`, on its own clock: a server whose clock runs ten minutes behind
    would have each job it starts timed out at once, and each job it retries queue-timed-out.
    """
    stamp = format_time(now or datetime.now(UTC))
    stamped: list[Any] = []
    for op in patch:
        if isinstance(op, Mapping) and op.get("op") == "add":
            if op.get("path") in STATUS_TIME_PATHS:
                op = {**op, "value": stamp}
            elif op.get("path") == "/status/claim" and isinstance(op.get("value"), Mapping):
                op = {**op, "value": {**op["value"], "claimedAt": stamp}}
        stamped.append(op)
    return stamped
