"""`metav1.Condition` helpers: set a condition without losing its transition time.

Status is an API: a condition's `lastTransitionTime` moves only when its `status` changes, and
a writer compares before it writes, so an unchanged condition costs no API call.
"""

from __future__ import annotations

from collections.abc import Iterable

from .meta import Condition
from .times import now_rfc3339

# Condition types.
READY = "Ready"          # Runbook, Asset
AVAILABLE = "Available"  # WorkerGroup: at least one ready worker
COMPLETE = "Complete"    # RunbookJob succeeded (as batch/v1 Job, so `kubectl wait --for=condition=Complete`)
FAILED = "Failed"        # RunbookJob ended without success (Failed, TimedOut, Cancelled)


def make(type_: str, ok: bool, reason: str, message: str, generation: int) -> Condition:
    return Condition(
        type=type_,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        last_transition_time=now_rfc3339(),
        observed_generation=generation,
    )


def merge(existing: Iterable[Condition], new: Condition) -> tuple[Condition, ...]:
    """The condition list with `new` set; its transition time is kept if its status is unchanged."""
    out: list[Condition] = []
    found = False
    for cond in existing:
        if cond.type != new.type:
            out.append(cond)
            continue
        found = True
        if cond.status == new.status:
            new = Condition(new.type, new.status, new.reason, new.message, cond.last_transition_time,
                            new.observed_generation)
        out.append(new)
    if not found:
        out.append(new)
    return tuple(out)


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.status == "True"


def same(a: Iterable[Condition], b: Iterable[Condition]) -> bool:
    """Equal apart from transition times: nothing worth a status write."""

    def key(c: Condition) -> tuple[str, str, str, str, int]:
        return (c.type, c.status, c.reason, c.message, c.observed_generation)

    return sorted(map(key, a)) == sorted(map(key, b))
