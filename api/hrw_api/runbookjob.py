"""The RunbookJob kind: one run of a runbook on a worker group, and its status as an API.

Status times are parsed into datetimes here. The phase machine is in `phases`, the moves an
agent may make in `intents`, and every status patch in `patches`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from . import _fields as f
from ._fields import JSON
from .errors import InvalidObject
from .fanout import FanOut
from .meta import Condition, Meta, conditions_of
from .phases import JobPhase
from .runas import RunAs
from .runbook import Interpreter

DEFAULT_QUEUE_TIMEOUT_SECONDS = 3600


class RetryOn(StrEnum):
    WORKER_LOST = "WorkerLost"
    FAILED = "Failed"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_on: frozenset[RetryOn] = frozenset({RetryOn.WORKER_LOST})

    def allows(self, attempt: int, cause: RetryOn) -> bool:
        """May a job whose `attempt` ended by `cause` run again?"""
        return cause in self.retry_on and attempt < self.max_attempts


@dataclass(frozen=True)
class RunbookJobSpec:
    runbook: str
    worker_group: str
    parameters: Mapping[str, Any]
    timeout_seconds: int | None
    queue_timeout_seconds: int
    retry_policy: RetryPolicy
    ttl_seconds_after_finished: int | None
    cancel: bool
    fan_out: FanOut | None = None
    """A fan-out parent: run on every worker (or a selector's) through one child per worker (`fanout`)."""
    pinned_worker: str | None = None
    """A fan-out child: only this worker of the group may claim it. Set by the operator only."""


@dataclass(frozen=True)
class Claim:
    worker: str
    attempt: int
    claimed_at: datetime | None


INLINE_OUTPUT_MAX_BYTES = 4 * 1024
"""The most output (UTF-8 bytes after masking, both streams together) a finish patch may carry in
`status.output.inline`: a job whose whole output fits is reported in its final status write, with
no output ConfigMap at all (issue 10: fewer writes per job)."""


@dataclass(frozen=True)
class InlineOutput:
    """A small attempt's whole output, per stream, carried in its final status instead of chunks."""

    stdout: str = ""
    stderr: str = ""

    @property
    def size(self) -> int:
        return len(self.stdout.encode("utf-8")) + len(self.stderr.encode("utf-8"))

    def to_dict(self) -> JSON:
        return {"stdout": self.stdout, "stderr": self.stderr}

    @classmethod
    def parse(cls, data: Any, path: str) -> InlineOutput:
        data = f.obj(data, path)
        inline = cls(stdout=f.opt_str(data, "stdout", path, max_length=INLINE_OUTPUT_MAX_BYTES) or "",
                     stderr=f.opt_str(data, "stderr", path, max_length=INLINE_OUTPUT_MAX_BYTES) or "")
        if inline.size > INLINE_OUTPUT_MAX_BYTES:
            raise InvalidObject(path, f"is {inline.size} bytes, more than {INLINE_OUTPUT_MAX_BYTES}; larger "
                                      "output goes in output chunks")
        return inline


@dataclass(frozen=True)
class OutputSummary:
    """What an attempt wrote: counts, the tail, and either the number of output chunks that hold
    the log or (`inline`, only when no chunk was sent) the whole of a small output."""

    bytes: int = 0
    lines: int = 0
    chunks: int = 0
    tail: str = ""
    truncated: bool = False
    inline: InlineOutput | None = None

    def to_dict(self) -> JSON:
        body: JSON = {"bytes": self.bytes, "lines": self.lines, "chunks": self.chunks, "tail": self.tail,
                      "truncated": self.truncated}
        if self.inline is not None:
            body["inline"] = self.inline.to_dict()
        return body

    @classmethod
    def parse(cls, data: Any, path: str = "status.output") -> OutputSummary:
        data = f.obj(data, path)
        inline = InlineOutput.parse(data["inline"], f.member(path, "inline")) if data.get("inline") is not None \
            else None
        summary = cls(
            bytes=f.opt_int(data, "bytes", path, 0, minimum=0) or 0,
            lines=f.opt_int(data, "lines", path, 0, minimum=0) or 0,
            chunks=f.opt_int(data, "chunks", path, 0, minimum=0) or 0,
            tail=f.opt_str(data, "tail", path) or "",
            truncated=f.boolean(data, "truncated", path),
            inline=inline,
        )
        if inline is not None and summary.chunks:
            raise InvalidObject(f.member(path, "inline"), f"excludes output chunks (the summary counts "
                                                          f"{summary.chunks})")
        return summary


@dataclass(frozen=True)
class RunbookJobStatus:
    phase: JobPhase
    attempt: int
    claim: Claim | None
    runbook_digest: str | None
    interpreter: Interpreter | None  # snapshotted with the digest: agents without it pass the job over
    run_as: RunAs | None  # snapshotted with the digest: the identity the job runs as on its server
    queued_time: datetime | None
    start_time: datetime | None
    completion_time: datetime | None
    exit_code: int | None
    reason: str | None
    message: str | None
    outputs: Mapping[str, str]
    output: OutputSummary | None
    observed_generation: int
    conditions: tuple[Condition, ...]


def _interpreter(value: Any) -> Interpreter | None:
    """A job's snapshotted interpreter; an unknown one (a newer operator's) reads as not given."""
    try:
        return Interpreter(value) if value is not None else None
    except ValueError:
        return None


def _claim(status: Mapping[str, Any]) -> Claim | None:
    if not status.get("claim"):
        return None
    c = f.obj(status["claim"], "status.claim")
    return Claim(
        worker=f.req_str(c, "worker", "status.claim"),
        attempt=f.opt_int(c, "attempt", "status.claim", 0) or 0,
        claimed_at=f.time(c, "claimedAt", "status.claim"),
    )


def _output(status: Mapping[str, Any]) -> OutputSummary | None:
    """Lenient, as it always was: the summary is informational and written by the claimer's agent."""
    if not status.get("output"):
        return None
    o = f.obj(status["output"], "status.output")
    carried = o.get("inline")
    inline = InlineOutput(stdout=str(carried.get("stdout") or ""), stderr=str(carried.get("stderr") or "")) \
        if isinstance(carried, Mapping) else None
    return OutputSummary(
        bytes=int(o.get("bytes") or 0), lines=int(o.get("lines") or 0), chunks=int(o.get("chunks") or 0),
        tail=str(o.get("tail") or ""), truncated=bool(o.get("truncated")), inline=inline,
    )


@dataclass(frozen=True)
class RunbookJob:
    meta: Meta
    spec: RunbookJobSpec
    status: RunbookJobStatus

    @property
    def holder(self) -> str | None:
        """The worker that holds the current attempt, if the job is held."""
        if self.status.phase.held and self.status.claim and self.status.claim.attempt == self.status.attempt:
            return self.status.claim.worker
        return None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> RunbookJob:
        spec = f.obj(obj.get("spec"), "spec")
        status = f.obj(obj.get("status"), "status")
        ref = f.obj(spec.get("runbookRef"), "spec.runbookRef")
        retry = f.obj(spec.get("retryPolicy"), "spec.retryPolicy")
        try:
            retry_on = frozenset(RetryOn(r) for r in retry.get("retryOn", [RetryOn.WORKER_LOST]))
        except ValueError:
            raise InvalidObject("spec.retryPolicy.retryOn", "must be among WorkerLost, Failed") from None
        try:
            phase = JobPhase(status.get("phase") or JobPhase.PENDING)
        except ValueError:
            raise InvalidObject("status.phase", f"unknown phase {status.get('phase')!r}") from None
        return cls(
            meta=Meta.parse(obj),
            spec=RunbookJobSpec(
                runbook=f.req_str(ref, "name", "spec.runbookRef"),
                worker_group=f.req_str(spec, "workerGroup", "spec"),
                parameters=dict(f.obj(spec.get("parameters"), "spec.parameters")),
                timeout_seconds=f.opt_int(spec, "timeoutSeconds", "spec"),
                queue_timeout_seconds=f.opt_int(spec, "queueTimeoutSeconds", "spec", DEFAULT_QUEUE_TIMEOUT_SECONDS)
                or DEFAULT_QUEUE_TIMEOUT_SECONDS,
                retry_policy=RetryPolicy(
                    max_attempts=f.opt_int(retry, "maxAttempts", "spec.retryPolicy", 3) or 3, retry_on=retry_on
                ),
                ttl_seconds_after_finished=f.opt_int(spec, "ttlSecondsAfterFinished", "spec"),
                cancel=f.boolean(spec, "cancel", "spec"),
                fan_out=FanOut.parse(spec["fanOut"]) if spec.get("fanOut") is not None else None,
                pinned_worker=f.opt_str(spec, "pinnedWorker", "spec"),
            ),
            status=RunbookJobStatus(
                phase=phase,
                attempt=f.opt_int(status, "attempt", "status", 0) or 0,
                claim=_claim(status),
                runbook_digest=f.opt_str(status, "runbookDigest", "status"),
                interpreter=_interpreter(status.get("interpreter")),
                run_as=RunAs.parse_optional(status, "runAs", "status"),
                queued_time=f.time(status, "queuedTime", "status"),
                start_time=f.time(status, "startTime", "status"),
                completion_time=f.time(status, "completionTime", "status"),
                exit_code=f.opt_int(status, "exitCode", "status"),
                reason=f.opt_str(status, "reason", "status"),
                message=f.opt_str(status, "message", "status"),
                outputs={str(k): str(v) for k, v in f.obj(status.get("outputs"), "status.outputs").items()},
                output=_output(status),
                observed_generation=f.opt_int(status, "observedGeneration", "status", 0) or 0,
                conditions=conditions_of(status),
            ),
        )
