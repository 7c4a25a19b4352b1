"""What an agent may do to a job: its three status intents and the one table of allowed moves.

    claim      Queued  -> Running, startTime               (exactly one agent wins the attempt)
    finish     Running -> Succeeded | Failed | TimedOut    (Failed also when it could not start)
    give back  Running -> Queued, attempt + 1              (a retry the policy allows, or a job given up)

The claim is the start (issue 10: fewer writes, one round trip from claim to start): the winner
fetches the job's bundle and starts the process right after, and a job that cannot start
(digest, signature, interpreter) ends Failed from Running. The operator measures the run deadline
from `startTime`, which the claim sets, and treats a held job alike whether it is Claimed or
Running, so nothing waits on a separate start. `Claimed` stays a phase: a job an older agent
claimed in two steps can still be ended (finish) or given back from it, never started.

`AGENT_TRANSITIONS` says, per (from, to) phase, which intent it is and which `/status` members
its patch may set or remove. The same table builds an intent's patch (`intent.to_patch()`, used
by the builders in `patches`) and reads a patch back (`read_agent_patch`), which the proxy calls
on every status patch a worker sends: a patch is either one of these intents, fenced on the
attempt and the claimer, or it is refused with a `PatchRefused` saying why.

Times in a patch are the agent's clock; the proxy replaces them with its own, so an intent read
back from a patch carries no time (`at` is None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from .errors import HrwError, InvalidObject
from .phases import JobPhase, Reason
from .runbookjob import OutputSummary, RetryOn, RunbookJob
from .times import format_time, now

JsonPatch = list[dict[str, Any]]


class Step(StrEnum):
    CLAIM = "claim"
    FINISH = "finish"
    GIVE_BACK = "give back"


@dataclass(frozen=True)
class Transition:
    """One move an agent may make, and the `/status` members its patch may touch."""

    step: Step
    source: JobPhase
    target: JobPhase
    writes: frozenset[str]
    removes: frozenset[str] = frozenset()

    @property
    def fenced_on_claimer(self) -> bool:
        """Every move but the claim tests `/status/claim/worker`: only the claimer makes it."""
        return self.step is not Step.CLAIM


_CLAIM = frozenset({"phase", "claim", "startTime", "reason", "message"})
_FINISH = frozenset({"phase", "reason", "message", "completionTime", "exitCode", "outputs", "output"})
_GIVE_BACK = frozenset({"phase", "attempt", "reason", "message", "queuedTime", "exitCode"})

AGENT_TRANSITIONS: Final[Mapping[tuple[JobPhase, JobPhase], Transition]] = {
    (t.source, t.target): t
    for t in (
        Transition(Step.CLAIM, JobPhase.QUEUED, JobPhase.RUNNING, _CLAIM),
        # A job an agent of before issue 10 claimed (Claimed, never started by this version) and
        # cannot start: it ends, as a job that cannot start does.
        Transition(Step.FINISH, JobPhase.CLAIMED, JobPhase.FAILED, _FINISH),
        Transition(Step.FINISH, JobPhase.RUNNING, JobPhase.SUCCEEDED, _FINISH),
        Transition(Step.FINISH, JobPhase.RUNNING, JobPhase.FAILED, _FINISH),
        Transition(Step.FINISH, JobPhase.RUNNING, JobPhase.TIMED_OUT, _FINISH),
        # A failed attempt that the job's retry policy retries, or a job the agent gives up
        # (shutdown grace ran out, process lost): back to the queue, attempt + 1. Removing the
        # claim and the attempt's start time is all an agent may ever remove: removing the phase
        # or the attempt would leave a job no fenced patch (the operator's included) can move.
        Transition(Step.GIVE_BACK, JobPhase.RUNNING, JobPhase.QUEUED, _GIVE_BACK,
                   frozenset({"claim", "startTime"})),
        # A job an older agent claimed in two steps and this agent gives up (it restarted and lost it).
        Transition(Step.GIVE_BACK, JobPhase.CLAIMED, JobPhase.QUEUED, _GIVE_BACK, frozenset({"claim"})),
    )
}


def agent_may(source: JobPhase, target: JobPhase) -> bool:
    return (source, target) in AGENT_TRANSITIONS


class PatchRefused(HrwError):
    """A status patch that is not one of the agent's intents, or not this worker's to send now.

    The message says why, for a person; the proxy answers it as a 403."""


class PatchInvalid(PatchRefused):
    """One of the agent's intents whose value does not fit the contract's types and bounds (a reason
    that is not CamelCase, an exit code beyond int32, outputs too large, ...): `field` names it, and
    the proxy answers a 400. The same bounds as the CRD's, so that the API server would never refuse
    (422, which an agent reads as a lost race) what the proxy let through."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"status patch refused: {field} {problem}")
        self.field = field


MAX_REASON: Final = 1024  # the CRD's status.reason (and a condition's reason, which the operator copies it to)
MAX_MESSAGE: Final = 32768  # the CRD's status.message
MAX_OUTPUTS: Final = 1024  # key/value pairs in status.outputs
MAX_OUTPUTS_CHARS: Final = 128 * 1024  # keys and values together (the agent reads at most 64 KiB of them)
MAX_TAIL: Final = 8192  # characters of status.output.tail (the agent keeps 4 KiB)
INT32: Final = (-(2**31), 2**31 - 1)
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")  # metav1.Condition's reason


# --------------------------------------------------------------------------------- the intents


@dataclass(frozen=True)
class JobResult:
    """How an attempt ended, as the agent reports it."""

    phase: JobPhase  # Succeeded, Failed or TimedOut
    reason: str
    message: str
    exit_code: int | None = None
    outputs: Mapping[str, str] | None = None
    output: OutputSummary | None = None


def _test(path: str, value: Any) -> dict[str, Any]:
    return {"op": "test", "path": path, "value": value}


def _set(member: str, value: Any) -> dict[str, Any]:
    # `add` on an object member replaces it if present: one verb for "set".
    return {"op": "add", "path": f"/status/{member}", "value": value}


def _remove(member: str) -> dict[str, Any]:
    return {"op": "remove", "path": f"/status/{member}"}


def _stamp(at: datetime | None) -> str:
    return format_time(at or now())


def _patch(transition: Transition, attempt: int, worker: str, body: list[dict[str, Any]]) -> JsonPatch:
    """The fence the table asks for, the target phase, then `body`, each member checked against the table."""
    ops = [_test("/status/phase", transition.source.value), _test("/status/attempt", attempt)]
    if transition.fenced_on_claimer:
        ops.append(_test("/status/claim/worker", worker))
    ops.append(_set("phase", transition.target.value))
    for op in body:
        member = op["path"].removeprefix("/status/")
        allowed = transition.writes if op["op"] == "add" else transition.removes
        if member not in allowed:
            raise ValueError(f"a {transition.step.value} may not {op['op']} /status/{member}")
        ops.append(op)
    return ops


@dataclass(frozen=True)
class ClaimIntent:
    """Queued -> Running: exactly one agent of the group wins attempt `attempt`, and starts it."""

    attempt: int
    worker: str
    at: datetime | None = None

    @property
    def transition(self) -> Transition:
        return AGENT_TRANSITIONS[(JobPhase.QUEUED, JobPhase.RUNNING)]

    def to_patch(self) -> JsonPatch:
        at = _stamp(self.at)
        return _patch(self.transition, self.attempt, self.worker, [
            _set("claim", {"worker": self.worker, "attempt": self.attempt, "claimedAt": at}),
            _set("startTime", at),
            _set("reason", Reason.STARTED.value),
            _set("message", f"running on worker {self.worker}"),
        ])


@dataclass(frozen=True)
class FinishIntent:
    """Running (or Claimed, a job an older agent claimed) -> a terminal phase."""

    attempt: int
    worker: str
    result: JobResult
    from_phase: JobPhase = JobPhase.RUNNING
    at: datetime | None = None

    @property
    def transition(self) -> Transition:
        if not self.result.phase.terminal:
            raise ValueError(f"finish needs a terminal phase, not {self.result.phase}")
        transition = AGENT_TRANSITIONS.get((self.from_phase, self.result.phase))
        if transition is None or transition.step is not Step.FINISH:
            raise ValueError(f"an agent may not finish a job from {self.from_phase.value} "
                             f"as {self.result.phase.value}")
        return transition

    def to_patch(self) -> JsonPatch:
        result = self.result
        body = [_set("reason", result.reason), _set("message", result.message),
                _set("completionTime", _stamp(self.at))]
        if result.exit_code is not None:
            body.append(_set("exitCode", result.exit_code))
        if result.outputs:
            body.append(_set("outputs", dict(result.outputs)))
        if result.output is not None:
            body.append(_set("output", result.output.to_dict()))
        return _patch(self.transition, self.attempt, self.worker, body)


@dataclass(frozen=True)
class GiveBackIntent:
    """Running (or Claimed) -> Queued with attempt + 1: the attempt ends without a result.

    `cause` is why: the script failed and the retry policy runs it again (`Failed`, status reason
    `Retrying`), or the agent gives the job up, e.g. its shutdown grace ran out or it restarted and
    lost the process (`WorkerLost`, status reason `Requeued`, as when the operator requeues the job
    of a lost worker; the only cause for a Claimed job, which never started). `message` is the status message.
    """

    attempt: int
    worker: str
    cause: RetryOn
    message: str
    exit_code: int | None = None
    from_phase: JobPhase = JobPhase.RUNNING
    at: datetime | None = None

    @classmethod
    def for_attempt(cls, attempt: int, worker: str, reason: str, message: str, *, cause: RetryOn = RetryOn.FAILED,
                    exit_code: int | None = None, from_phase: JobPhase = JobPhase.RUNNING,
                    at: datetime | None = None) -> GiveBackIntent:
        """Attempt `attempt` ended by `reason`/`message` and goes back to the queue; the status message names both."""
        return cls(attempt, worker, cause, f"attempt {attempt} failed ({reason}: {message}); queued again",
                   exit_code=exit_code, from_phase=from_phase, at=at)

    @property
    def status_reason(self) -> Reason:
        return Reason.REQUEUED if self.cause is RetryOn.WORKER_LOST else Reason.RETRYING

    @property
    def transition(self) -> Transition:
        if self.from_phase is JobPhase.CLAIMED and self.cause is not RetryOn.WORKER_LOST:
            raise ValueError("a job that never started can only be given up (cause WorkerLost)")
        transition = AGENT_TRANSITIONS.get((self.from_phase, JobPhase.QUEUED))
        if transition is None:
            raise ValueError(f"an agent may not give back a job that is {self.from_phase.value}")
        return transition

    def to_patch(self) -> JsonPatch:
        transition = self.transition
        body = [_set("attempt", self.attempt + 1), *(_remove(m) for m in ("claim", "startTime")
                                                     if m in transition.removes),
                _set("reason", self.status_reason.value), _set("message", self.message),
                _set("queuedTime", _stamp(self.at))]
        if self.exit_code is not None:
            body.append(_set("exitCode", self.exit_code))
        return _patch(transition, self.attempt, self.worker, body)


Intent = ClaimIntent | FinishIntent | GiveBackIntent


# ------------------------------------------------------------------------- reading a patch back


def _refuse(problem: str) -> PatchRefused:
    return PatchRefused(f"status patch refused: {problem}")


def _shape(patch: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The patch's tests, sets and removes by path; only the shapes the intents build."""
    if not isinstance(patch, list):
        raise PatchRefused("a status patch must be a JSON Patch: a list of operations")
    tests: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    removes: list[str] = []
    for op in patch:
        if not isinstance(op, Mapping):
            raise _refuse("each JSON Patch operation must be an object")
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str) or not path.startswith("/status/"):
            raise _refuse(f"an agent may only patch /status fields, not {path!r}")
        if kind == "test":
            # A test after a write could test the patch's own write (add claim/worker=me, then test
            # it): the fence would hold for anyone. The intents put every test first.
            if sets or removes:
                raise _refuse("the test operations must come before any add or remove")
            tests[path] = op.get("value")
        elif kind == "add":
            sets[path] = op.get("value")
        elif kind == "remove":
            removes.append(path)
        else:
            raise _refuse(f"JSON Patch op {kind!r} is not allowed here")
    return tests, sets, removes


def _transition(tests: Mapping[str, Any], sets: Mapping[str, Any]) -> tuple[Transition, int]:
    try:
        source = JobPhase(tests["/status/phase"])
        target = JobPhase(sets["/status/phase"])
        attempt = tests["/status/attempt"]
    except (KeyError, ValueError, TypeError):
        raise _refuse("the patch must test /status/phase and /status/attempt and set /status/phase") from None
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise _refuse("/status/attempt must be tested as an integer")
    transition = AGENT_TRANSITIONS.get((source, target))
    if transition is None:
        raise PatchRefused(f"an agent may not move a job from {source.value} to {target.value}")
    return transition, attempt


def _members(transition: Transition, sets: Mapping[str, Any], removes: list[str]) -> dict[str, Any]:
    """The members the patch sets, each one the table allows this move to set (or remove)."""
    written: dict[str, Any] = {}
    for path, value in sets.items():
        member = path.removeprefix("/status/")
        if member not in transition.writes:
            raise _refuse(f"a {transition.step.value} may not write {path}")
        written[member] = value
    for path in removes:
        if path.removeprefix("/status/") not in transition.removes:
            raise _refuse(f"a {transition.step.value} may remove only {sorted(transition.removes)}, not {path}")
    return written


def _text(written: Mapping[str, Any], member: str) -> str:
    value = written.get(member, "")
    if not isinstance(value, str):
        raise PatchInvalid(f"/status/{member}", "must be a string")
    if member == "reason" and value and (len(value) > MAX_REASON or not _REASON.match(value)):
        raise PatchInvalid("/status/reason", f"must be a CamelCase reason of at most {MAX_REASON} characters "
                                             f"(letters, digits, '_', ',', ':'), not {value[:80]!r}")
    if member == "message" and len(value) > MAX_MESSAGE:
        raise PatchInvalid("/status/message", f"must be at most {MAX_MESSAGE} characters, not {len(value)}")
    return value


def _exit_code(written: Mapping[str, Any]) -> int | None:
    value = written.get("exitCode")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PatchInvalid("/status/exitCode", "must be an integer")
    if value is not None and not INT32[0] <= value <= INT32[1]:
        raise PatchInvalid("/status/exitCode", f"must be a 32-bit integer, not {value}")
    return value


def _outputs(written: Mapping[str, Any]) -> dict[str, str] | None:
    outputs = written.get("outputs")
    if outputs is None:
        return None
    if not isinstance(outputs, Mapping) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                   for k, v in outputs.items()):
        raise PatchInvalid("/status/outputs", "must map names to strings")
    size = sum(len(k) + len(v) for k, v in outputs.items())
    if len(outputs) > MAX_OUTPUTS or size > MAX_OUTPUTS_CHARS:
        raise PatchInvalid("/status/outputs", f"must hold at most {MAX_OUTPUTS} entries and {MAX_OUTPUTS_CHARS} "
                                              f"characters, not {len(outputs)} and {size}")
    return dict(outputs)


def _result(transition: Transition, written: Mapping[str, Any]) -> JobResult:
    outputs = _outputs(written)
    output = None
    if written.get("output") is not None:
        try:
            output = OutputSummary.parse(written["output"], "/status/output")
        except InvalidObject as exc:
            raise PatchInvalid(exc.field, exc.message) from None
        if len(output.tail) > MAX_TAIL:
            raise PatchInvalid("/status/output.tail", f"must be at most {MAX_TAIL} characters")
    return JobResult(transition.target, _text(written, "reason"), _text(written, "message"),
                     exit_code=_exit_code(written), outputs=outputs, output=output)


def _intent(patch: Any) -> Intent:
    """The intent a patch expresses, from its shape alone (no job, no caller)."""
    tests, sets, removes = _shape(patch)
    transition, attempt = _transition(tests, sets)
    written = _members(transition, sets, removes)
    for member in ("reason", "message"):  # every move may write them: each is bounded as the CRD bounds it
        _text(written, member)
    tested = tests.get("/status/claim/worker")
    worker = tested if isinstance(tested, str) else ""
    if transition.step is Step.CLAIM:
        claim = written.get("claim")
        if not isinstance(claim, Mapping) or claim.get("attempt") != attempt:
            raise _refuse("a claim must record the attempt it tests in /status/claim/attempt")
        named = claim.get("worker")
        return ClaimIntent(attempt, named if isinstance(named, str) else "")
    if transition.step is Step.FINISH:
        return FinishIntent(attempt, worker, _result(transition, written), from_phase=transition.source)
    if written.get("attempt") != attempt + 1:
        raise _refuse("a retry must set /status/attempt to the tested attempt + 1")
    lost = written.get("reason") == Reason.REQUEUED.value
    if transition.source is JobPhase.CLAIMED and not lost:
        raise _refuse("a job that never started can only be given up (status reason Requeued), not retried")
    return GiveBackIntent(attempt, worker, RetryOn.WORKER_LOST if lost else RetryOn.FAILED,
                          _text(written, "message"), exit_code=_exit_code(written), from_phase=transition.source)


def read_agent_patch(patch: Any, job: RunbookJob, *, worker: str) -> Intent:
    """The intent of the status patch `worker` sends about `job`, or `PatchRefused` saying why not.

    Checks, in order: the patch is one of the intents' shapes and a move of `AGENT_TRANSITIONS`;
    a claim is in `worker`'s own name; anything else is fenced on `worker` as the claimer and
    `worker` holds the job's current attempt; a give-back is one the job's retry policy allows.
    (That the job is of `worker`'s group is the caller's to check first.) The apiserver then
    applies the patch atomically: its tests decide a race.
    """
    intent = _intent(patch)
    if isinstance(intent, ClaimIntent):
        if intent.worker != worker:
            raise PatchRefused(f"a claim must name the calling worker {worker!r} in /status/claim/worker, "
                               f"not {intent.worker or None!r}")
        return intent
    if intent.worker != worker:
        raise PatchRefused(f"a status patch must test /status/claim/worker == {worker!r} (fencing)")
    check_holds_attempt(job, worker, intent.attempt)
    if isinstance(intent, GiveBackIntent):
        policy = job.spec.retry_policy
        if not policy.allows(intent.attempt, intent.cause):
            raise PatchRefused(f"job {job.meta.name} may not be retried for {intent.cause.value} after attempt "
                               f"{intent.attempt}: its retryPolicy (maxAttempts {policy.max_attempts}, retryOn "
                               f"{sorted(r.value for r in policy.retry_on)}) does not allow it")
    return intent


def check_holds_attempt(job: RunbookJob, worker: str, attempt: int) -> None:
    """Fencing: the job's current claim is `worker`'s, for `attempt`, and `attempt` is current."""
    claim = job.status.claim
    if claim is None or claim.worker != worker:
        holder = claim.worker if claim else "nobody"
        raise PatchRefused(f"job {job.meta.name} is claimed by {holder}, not by worker {worker!r}")
    if attempt != job.status.attempt or claim.attempt != job.status.attempt:
        raise PatchRefused(f"attempt {attempt} of job {job.meta.name} is stale: the job is at attempt "
                           f"{job.status.attempt}")
