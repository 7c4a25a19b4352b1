"""Builders for every status patch a party sends about a RunbookJob.

All of them are JSON Patches (`application/json-patch+json`) whose first operations `test` the
fields the transition depends on — the phase it moves from, the attempt, and for the agent the
claimer. The API server applies a patch atomically, so when two parties race exactly one wins
and the other gets 422 (a failed `test`), whatever else changed on the object meanwhile. That is
the claim protocol and the fencing of DESIGN.md in one mechanism.

The agent's four patches are built from its intents (`intents`), whose table of allowed moves
also reads a patch back for the proxy (`intents.read_agent_patch`): the proxy cannot trust a
patch it did not build, so it checks the same facts again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import conditions
from .intents import ClaimIntent, FinishIntent, GiveBackIntent, JobResult, StartIntent
from .meta import Condition
from .phases import JobPhase, Reason
from .runbookjob import RetryOn
from .times import now_rfc3339, parse_time

__all__ = ["JSON_PATCH", "MERGE_PATCH", "RETRY_REMOVES", "AgentIntent", "JobResult", "JsonPatch", "agent_patch_intent",
           "claim", "end", "finish", "finished_conditions", "queue", "reject", "requeue", "retry", "start"]

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
    """Queued -> Claimed: exactly one agent of the group wins attempt `attempt`."""
    return ClaimIntent(attempt, worker, at=parse_time(now)).to_patch()


def start(attempt: int, worker: str, *, now: str | None = None) -> JsonPatch:
    """Claimed -> Running: the content checked out and the process started."""
    return StartIntent(attempt, worker, at=parse_time(now)).to_patch()


def finish(attempt: int, worker: str, result: JobResult, *, from_phase: JobPhase = JobPhase.RUNNING,
           now: str | None = None) -> JsonPatch:
    """Running (or Claimed, for a job that could not start) -> a terminal phase."""
    return FinishIntent(attempt, worker, result, from_phase=from_phase, at=parse_time(now)).to_patch()


def retry(attempt: int, worker: str, reason: str, message: str, *, exit_code: int | None = None,
          cause: RetryOn = RetryOn.FAILED, from_phase: JobPhase = JobPhase.RUNNING,
          now: str | None = None) -> JsonPatch:
    """Running (or Claimed) -> Queued with attempt + 1: see `intents.GiveBackIntent`.

    `reason` and `message` say how the attempt ended; the status message names them."""
    return GiveBackIntent.for_attempt(attempt, worker, reason, message, cause=cause, exit_code=exit_code,
                                      from_phase=from_phase, at=parse_time(now)).to_patch()


# ------------------------------------------------ the old reader: to remove once the proxy calls
# `intents.read_agent_patch` (kept only while proxy/hrw_proxy/rules.py still imports it).

# The only fields an agent's patch may remove: a retry drops the claim and the attempt's start time.
RETRY_REMOVES = frozenset({"/status/claim", "/status/startTime"})


@dataclass(frozen=True)
class AgentIntent:
    """What an agent's status patch claims to do, read back by the proxy to check it."""

    source: JobPhase
    target: JobPhase
    attempt: int
    worker: str | None  # the claimer it tests (None: a claim, which names the worker in its value)
    claim_worker: str | None  # for a claim: the worker it writes into status.claim
    retry_cause: RetryOn | None = None  # for a retry (Running -> Queued): why, as `retry` encodes it


def agent_patch_intent(patch: Sequence[Mapping[str, Any]]) -> AgentIntent:
    """Read the fence and the target of an agent's patch; ValueError names what is wrong.

    The proxy accepts only patches of the shapes built above: tests first, then `add`/`remove`
    on `/status/...` paths, touching no other part of the object.
    """
    tests: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    changed = False
    for op in patch:
        if not isinstance(op, Mapping):
            raise ValueError("each JSON Patch operation must be an object")
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str) or not path.startswith("/status/"):
            raise ValueError(f"an agent may only patch /status fields, not {path!r}")
        if kind == "test":
            # A test after a write could test the patch's own write (add claim/worker=me, then test
            # it): the fence would hold for anyone. The builders put every test first.
            if changed:
                raise ValueError("the test operations must come before any add or remove")
            tests[path] = op.get("value")
            continue
        changed = True
        if kind == "add":
            sets[path] = op.get("value")
        elif kind != "remove":
            raise ValueError(f"JSON Patch op {kind!r} is not allowed here")
    allowed = {"phase", "claim", "reason", "message", "startTime", "completionTime", "exitCode", "outputs",
               "output", "attempt", "queuedTime"}
    for path in list(sets) + [p for p in (o.get("path") for o in patch if o.get("op") == "remove")]:
        if str(path).split("/")[2] not in allowed:
            raise ValueError(f"an agent may not write {path}")
    try:
        source = JobPhase(tests["/status/phase"])
        target = JobPhase(sets["/status/phase"])
        attempt = tests["/status/attempt"]
    except (KeyError, ValueError):
        raise ValueError("the patch must test /status/phase and /status/attempt and set /status/phase") from None
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise ValueError("/status/attempt must be tested as an integer")
    worker = tests.get("/status/claim/worker")
    claim_value = sets.get("/status/claim")
    claim_worker = claim_value.get("worker") if isinstance(claim_value, Mapping) else None
    if target is JobPhase.QUEUED and sets.get("/status/attempt") != attempt + 1:
        raise ValueError("a retry must set /status/attempt to the tested attempt + 1")
    if target is not JobPhase.QUEUED and "/status/attempt" in sets:
        raise ValueError("only a retry may change /status/attempt")
    removes = [str(o.get("path")) for o in patch if o.get("op") == "remove"]
    if removes and (target is not JobPhase.QUEUED or not set(removes) <= RETRY_REMOVES):
        # Removing the phase, the attempt or the claim would leave a job that no fenced patch (the
        # operator's included) can ever move again: only a retry drops the claim and its start time.
        raise ValueError(f"an agent may remove only {sorted(RETRY_REMOVES)}, and only in a retry, not {removes}")
    claim_writes = [p for p in sets if p == "/status/claim" or p.startswith("/status/claim/")]
    if claim_writes and target is not JobPhase.CLAIMED:
        raise ValueError("only a claim may write /status/claim")
    if target is JobPhase.CLAIMED and (claim_writes != ["/status/claim"] or not isinstance(claim_value, Mapping)
                                       or claim_value.get("attempt") != attempt):
        raise ValueError("a claim must record the attempt it tests in /status/claim/attempt")
    if source is JobPhase.CLAIMED and target is JobPhase.QUEUED and sets.get("/status/reason") != Reason.REQUEUED:
        raise ValueError("a job that never started can only be given up (status reason Requeued), not retried")
    retry_cause = None
    if target is JobPhase.QUEUED:
        lost = sets.get("/status/reason") == Reason.REQUEUED.value
        retry_cause = RetryOn.WORKER_LOST if lost else RetryOn.FAILED
    return AgentIntent(source, target, attempt, worker if isinstance(worker, str) else None,
                       claim_worker if isinstance(claim_worker, str) else None, retry_cause)


# --------------------------------------------------------------------------------- the operator


def _conditions_for(phase: JobPhase, reason: str, message: str, generation: int) -> list[dict[str, Any]]:
    """batch/v1 Job style: `Complete` or `Failed` becomes True when the job ends."""
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
