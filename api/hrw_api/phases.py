"""The RunbookJob phase machine: the phases, which are terminal, and who may move a job where.

A job starts with no phase (read as Pending). The operator queues it or fails it; an agent of the
job's group claims it, runs it and reports the end; the operator also ends it on timeout, cancel
or the loss of its worker. Terminal phases never change again. The agent's half of the table is
`intents.AGENT_TRANSITIONS` (the proxy enforces it); the operator's patches test the phase they
move from, so a race between the two resolves in the API server and never produces a second
terminal phase.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class JobPhase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    CLAIMED = "Claimed"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def held(self) -> bool:
        """A worker holds the job (it is claimed and not finished)."""
        return self in (JobPhase.CLAIMED, JobPhase.RUNNING)


TERMINAL_PHASES: Final = frozenset(
    {JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.TIMED_OUT, JobPhase.CANCELLED}
)

# The moves an agent may make are in `intents.AGENT_TRANSITIONS`, with what each patch may touch.

# Transitions the operator makes.
OPERATOR_TRANSITIONS: Final[frozenset[tuple[JobPhase, JobPhase]]] = frozenset(
    {
        (JobPhase.PENDING, JobPhase.QUEUED),
        (JobPhase.PENDING, JobPhase.FAILED),
        (JobPhase.PENDING, JobPhase.CANCELLED),
        (JobPhase.QUEUED, JobPhase.TIMED_OUT),
        (JobPhase.QUEUED, JobPhase.CANCELLED),
        (JobPhase.CLAIMED, JobPhase.QUEUED),  # worker lost, retry allowed
        (JobPhase.RUNNING, JobPhase.QUEUED),  # worker lost, retry allowed
        (JobPhase.CLAIMED, JobPhase.FAILED),  # worker lost, no retry left
        (JobPhase.RUNNING, JobPhase.FAILED),
        (JobPhase.CLAIMED, JobPhase.TIMED_OUT),
        (JobPhase.RUNNING, JobPhase.TIMED_OUT),
        (JobPhase.CLAIMED, JobPhase.CANCELLED),
        (JobPhase.RUNNING, JobPhase.CANCELLED),
    }
)


class Reason(StrEnum):
    """Machine-readable `status.reason` values (CamelCase, as Kubernetes conventions ask)."""

    # Operator, validation (job -> Failed before it is queued).
    RUNBOOK_NOT_FOUND = "RunbookNotFound"
    RUNBOOK_NOT_READY = "RunbookNotReady"
    WORKER_GROUP_NOT_FOUND = "WorkerGroupNotFound"
    INVALID_PARAMETERS = "InvalidParameters"
    ASSET_NOT_READY = "AssetNotReady"
    INTERPRETER_NOT_ALLOWED = "InterpreterNotAllowed"
    RUN_AS_NOT_ALLOWED = "RunAsNotAllowed"  # also the agent's, for a uid 0 the group did not allow
    UNSIGNED_RUNBOOK = "UnsignedRunbook"
    # Operator, lifecycle.
    QUEUED = "Queued"
    REQUEUED = "Requeued"
    QUEUE_TIMEOUT = "QueueTimeout"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    CANCELLED = "Cancelled"
    WORKER_LOST = "WorkerLost"
    # Agent.
    CLAIMED = "Claimed"
    STARTED = "Started"
    COMPLETED = "Completed"
    NON_ZERO_EXIT = "NonZeroExit"
    TIMEOUT = "Timeout"
    DIGEST_MISMATCH = "DigestMismatch"
    SIGNATURE_INVALID = "SignatureInvalid"
    INTERPRETER_MISSING = "InterpreterMissing"
    SETUP_FAILED = "SetupFailed"
    RUN_AS_UNKNOWN = "RunAsUnknown"  # the job's user or group does not exist on the server
    RUN_AS_UNAVAILABLE = "RunAsUnavailable"  # an unprivileged agent cannot switch to the job's identity
    RETRYING = "Retrying"


# Seconds the operator waits past a job's run deadline before it ends the job itself: the agent
# enforces the deadline first and reports TimedOut with the output it captured.
RUN_DEADLINE_GRACE_SECONDS: Final = 15
