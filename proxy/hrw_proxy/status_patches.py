"""A worker's write to a job's `/status`: may it send this JSON Patch, and the times in it.

The patch must be one of the shapes `hrw_api.patches` builds, for a transition `intents.agent_may`
allows: a claim only in the caller's own name, anything else only as the claimer of the job's
current attempt (fencing), a retry only where the job's retryPolicy retries its cause. The proxy
then forwards the patch unchanged but for its times: its `test` operations make it atomic in the
apiserver (a lost race is the apiserver's 422, passed back as is).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hrw_api import RetryOn, RunbookJob
from hrw_api.intents import agent_may
from hrw_api.patches import agent_patch_intent
from hrw_api.phases import JobPhase
from hrw_api.times import format_time

from .auth import WorkerIdentity
from .policy import check_holds_attempt, check_job_of_group
from .refusals import forbidden


def check_status_patch(identity: WorkerIdentity, patch: Any, job: RunbookJob) -> None:
    """May `identity` send `patch` to `job`'s /status? Raises ProxyError (403) saying why not."""
    if not isinstance(patch, list):
        raise forbidden("a status patch must be a JSON Patch: a list of operations")
    try:
        intent = agent_patch_intent(patch)
    except ValueError as exc:
        raise forbidden(f"status patch refused: {exc}") from None
    if not agent_may(intent.source, intent.target):
        raise forbidden(f"an agent may not move a job from {intent.source.value} to {intent.target.value}")
    check_job_of_group(identity, job)
    writes_claim = any(op.get("path") == "/status/claim" and op.get("op") == "add" for op in patch)
    if intent.target is JobPhase.CLAIMED:
        if intent.claim_worker != identity.worker:
            raise forbidden(f"a claim must name the calling worker {identity.worker!r} in /status/claim/worker, "
                            f"not {intent.claim_worker!r}")
        claim_value = next(op.get("value") for op in patch if op.get("path") == "/status/claim")
        if not isinstance(claim_value, Mapping) or claim_value.get("attempt") != intent.attempt:
            raise forbidden("a claim must record the attempt it tests in /status/claim/attempt")
        return
    if writes_claim:
        raise forbidden("only a claim (Queued -> Claimed) may write /status/claim")
    if intent.worker != identity.worker:
        raise forbidden(f"a status patch must test /status/claim/worker == {identity.worker!r} (fencing)")
    check_holds_attempt(identity, job, intent.attempt)
    cause = intent.retry_cause or RetryOn.FAILED
    if intent.target is JobPhase.QUEUED and not job.spec.retry_policy.allows(intent.attempt, cause):
        raise forbidden(f"job {job.meta.name} may not be retried for {cause.value} after attempt {intent.attempt}: "
                        f"its retryPolicy "
                        f"(maxAttempts {job.spec.retry_policy.max_attempts}, retryOn "
                        f"{sorted(r.value for r in job.spec.retry_policy.retry_on)}) does not allow it")


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
