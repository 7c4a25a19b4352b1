"""How each job action is written and reported: its fenced patch and its Events. Pure.

Every patch is one of the contract's builders (`hrw_api.patches`), which test phase, attempt
and claimer, so a write can never overwrite a move another party made first (422 instead).
Event notes carry names, reasons and numbers only.

Events only where a person needs them: a job on the success path (Queued, Running, Succeeded)
posts none, since its status and printer columns show each step and an Event per step would
double the writes per job (issue 10). Failures, timeouts, cancels, requeues, lost
workers, refusals and a queued job no worker can run each post one.
"""

from __future__ import annotations

from hrw_api import RunbookJob, fanout, patches
from hrw_api.phases import JobPhase
from hrw_api.times import now_rfc3339

from .. import events
from .decide import Action, Delete, End, MarkFinished, Queue, Reject, Requeue, StartFanOut


def build_patch(job: RunbookJob, action: Action) -> patches.JsonPatch | None:
    """The contract's patch for `action` (None for Delete)."""
    gen = job.meta.generation
    match action:
        case Queue(digest=digest, interpreter=interpreter, run_as=run_as):
            return patches.queue(job.meta.resource_version, digest, gen, interpreter=interpreter,
                                 run_as=run_as.to_dict())
        case StartFanOut(digest=digest, interpreter=interpreter, run_as=run_as, message=message):
            return fanout.start(job.meta.resource_version, digest, gen, interpreter=interpreter,
                                run_as=run_as.to_dict(), message=message, now=now_rfc3339())
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
    """(type, reason, note) of the Events that report `action`: the transition's where a person needs
    it, and a queued job's warning that no worker can run it yet."""
    described = _transition_event(action)
    found = [described] if described is not None else []
    if isinstance(action, Queue) and action.warning:
        found.append((events.WARNING, "NoCapableWorker", action.warning))
    return found


def _transition_event(action: Action) -> tuple[str, str, str] | None:
    """(type, reason, note) of the Event that reports `action`, or None (the success path)."""
    match action:
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
        case MarkFinished(phase=JobPhase.SUCCEEDED):
            return None
        case MarkFinished(phase=phase, reason=reason, message=message):
            return events.WARNING, phase.value, f"{reason}: {message}"
    return None
