"""Builders for every status patch a party sends about a RunbookJob.

All of them are JSON Patches (`application/json-patch+json`) whose first operations `test` the
fields the transition depends on — the phase it moves from, the attempt, and for the agent the
claimer. The API server applies a patch atomically, so when two parties race exactly one wins
and the other gets 422 (a failed `test`), whatever else changed on the object meanwhile. That is
the claim protocol and the fencing of DESIGN.md in one mechanism.

The agent's three patches are built from its intents (`intents`), whose table of allowed moves
also reads a patch back for the proxy (`intents.read_agent_patch`): the proxy cannot trust a
patch it did not build, so it checks the same facts again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import conditions
from .intents import ClaimIntent, FinishIntent, GiveBackIntent, JobResult
from .meta import Condition
from .phases import JobPhase, Reason
from .runbookjob import RetryOn
from .times import now_rfc3339, parse_time

__all__ = ["JSON_PATCH", "MERGE_PATCH", "JobResult", "JsonPatch", "claim", "end", "finish", "finished_conditions",
           "queue", "reject", "requeue", "retry"]

JsonPatch = list[dict[str, Any]]
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def _test(path: str, value: Any) -> dict[str, Any]:
    return {"op": "test", "path": path, "value": value}


def _set(path: str, value: Any) -> dict[str, Any]:
    # `add` on an object member replaces it if present: one verb for "set".
    return {"op": "add", "path": path, "value": value}


def _fence(phase: JobPhase, attempt: int, worker: str | None = None) -> JsonPatch:
    ops = [_test("/status/phase", phase.value), _test("/status/attempt", attempt)]
    if worker is not None:
        ops.append(_test("/status/claim/worker", worker))
    return ops


# ------------------------------------------------------------------------------------ the agent


def claim(attempt: int, worker: str, *, now: str | None = None) -> JsonPatch:
    """Queued -> Running: exactly one agent of the group wins attempt `attempt`, and starts it."""
    return ClaimIntent(attempt, worker, at=parse_time(now)).to_patch()


def finish(attempt: int, worker: str, result: JobResult, *, from_phase: JobPhase = JobPhase.RUNNING,
           now: str | None = None) -> JsonPatch:
    """Running (or Claimed, a job an older agent claimed) -> a terminal phase."""
    return FinishIntent(attempt, worker, result, from_phase=from_phase, at=parse_time(now)).to_patch()


def retry(attempt: int, worker: str, reason: str, message: str, *, exit_code: int | None = None,
          cause: RetryOn = RetryOn.FAILED, from_phase: JobPhase = JobPhase.RUNNING,
          now: str | None = None) -> JsonPatch:
    """Running (or Claimed) -> Queued with attempt + 1: see `intents.GiveBackIntent`.

    `reason` and `message` say how the attempt ended; the status message names them."""
    return GiveBackIntent.for_attempt(attempt, worker, reason, message, cause=cause, exit_code=exit_code,
                                      from_phase=from_phase, at=parse_time(now)).to_patch()


# --------------------------------------------------------------------------------- the operator


_CONDITION_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_CONDITION_MESSAGE_MAX = 32768


def _conditions_for(phase: JobPhase, reason: str, message: str, generation: int) -> list[dict[str, Any]]:
    """batch/v1 Job style: `Complete` or `Failed` becomes True when the job ends.

    The reason and message may be an agent's (its finish): untrusted, so a reason the condition's
    schema would refuse becomes the phase, and the message is cut to the schema's bound, rather
    than a condition write the API server refuses on every reconcile (issue 13)."""
    if len(reason) > 1024 or not _CONDITION_REASON.match(reason):
        reason = phase.value
    message = message[:_CONDITION_MESSAGE_MAX]
    if phase is JobPhase.SUCCEEDED:
        return [conditions.make(conditions.COMPLETE, True, reason, message, generation).to_dict()]
    if phase.terminal:
        return [conditions.make(conditions.FAILED, True, reason, message, generation).to_dict()]
    return []


def queue(resource_version: str, digest: str, generation: int, *, interpreter: str | None = None,
          run_as: Mapping[str, str] | None = None, now: str | None = None) -> JsonPatch:
    """Pending -> Queued, attempt 1, the runbook's digest (interpreter, Run As identity) snapshotted.
    Only the operator writes a Pending job, so the resourceVersion is the fence.

    The interpreter lets an agent pass over a job it could not run before claiming it, so that in
    a group of mixed servers the job waits for one that can. The identity is what the agent runs
    the job as: a later change of the group or runbook does not change a queued job's identity."""
    status: dict[str, Any] = {
        "phase": JobPhase.QUEUED.value,
        "attempt": 1,
        "runbookDigest": digest,
        "queuedTime": now or now_rfc3339(),
        "reason": Reason.QUEUED.value,
        "message": "waiting for a worker of the group to claim it",
        "observedGeneration": generation,
    }
    if interpreter is not None:
        status["interpreter"] = interpreter
    if run_as is not None:
        status["runAs"] = dict(run_as)
    return [_test("/metadata/resourceVersion", resource_version), _set("/status", status)]


def reject(resource_version: str, reason: str, message: str, generation: int, *,
           phase: JobPhase = JobPhase.FAILED, now: str | None = None) -> JsonPatch:
    """Pending -> Failed (or Cancelled): the job was not accepted; the message names the problem."""
    stamp = now or now_rfc3339()
    return [
        _test("/metadata/resourceVersion", resource_version),
        _set("/status", {
            "phase": phase.value,
            "attempt": 0,
            "reason": reason,
            "message": message,
            "completionTime": stamp,
            "observedGeneration": generation,
            "conditions": _conditions_for(phase, reason, message, generation),
        }),
    ]


def end(from_phase: JobPhase, attempt: int, phase: JobPhase, reason: str, message: str, generation: int, *,
        now: str | None = None) -> JsonPatch:
    """The operator ends a queued or held job: TimedOut, Cancelled, or Failed (WorkerLost)."""
    if not phase.terminal:
        raise ValueError(f"end needs a terminal phase, not {phase}")
    return [
        *_fence(from_phase, attempt),
        _set("/status/phase", phase.value),
        _set("/status/reason", reason),
        _set("/status/message", message),
        _set("/status/completionTime", now or now_rfc3339()),
        _set("/status/conditions", _conditions_for(phase, reason, message, generation)),
        _set("/status/observedGeneration", generation),
    ]


def requeue(from_phase: JobPhase, attempt: int, message: str, *, now: str | None = None) -> JsonPatch:
    """Claimed/Running -> Queued with attempt + 1 after the claimer's Lease expired."""
    ops = [
        *_fence(from_phase, attempt),
        _set("/status/phase", JobPhase.QUEUED.value),
        _set("/status/attempt", attempt + 1),
        {"op": "remove", "path": "/status/claim"},
        _set("/status/reason", Reason.REQUEUED.value),
        _set("/status/message", message),
        _set("/status/queuedTime", now or now_rfc3339()),
    ]
    if from_phase is JobPhase.RUNNING:
        ops.append({"op": "remove", "path": "/status/startTime"})
    return ops


def finished_conditions(phase: JobPhase, reason: str, message: str, generation: int,
                        existing: Sequence[Condition]) -> JsonPatch | None:
    """After an agent ended a job: the batch-style condition, or None if it is already there."""
    wanted = [Condition.parse(c) for c in _conditions_for(phase, reason, message, generation)]
    if all(conditions.is_true(existing, c.type) for c in wanted):
        return None
    return [
        _test("/status/phase", phase.value),
        _set("/status/conditions", [c.to_dict() for c in wanted]),
        _set("/status/observedGeneration", generation),
    ]
