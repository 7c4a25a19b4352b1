"""A group's workers as its status lists them, from their Leases: pure, tested without a cluster.

`aggregate` turns the group's Leases into one entry per worker (`WorkerStatus`, built by the
contract's `WorkerLease.worker_status`) and says when to look again; `changes` compares the
entries before and after, for the Events a fleet owner reads (`kubectl describe wg`).

Everything here reads what workers wrote, so nothing here trusts it (issue 13): a Lease that
does not fit the contract is an entry of its own with reason `InvalidLease`; two Leases that
name the same worker make one entry (the one named after it wins), never a status the API
server refuses for a duplicate key; a worker whose Lease expired more than `forget_after` ago
drops out of the list by itself (the operator's `forget_missing_worker_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hrw_api import WorkerLease, WorkerState, WorkerStatus, names
from hrw_api.workergroup import WORKER_STATUS_SOFT_FIELDS


@dataclass(frozen=True)
class Aggregate:
    workers: list[WorkerStatus]
    next_change: datetime | None
    """The next moment an entry may change by time alone (a Lease expires, a missing worker is forgotten)."""


def _preferred(current: WorkerLease, other: WorkerLease) -> WorkerLease:
    """Of two Leases naming the same worker, the one named after it (then the valid one)."""

    def rank(lease: WorkerLease) -> tuple[bool, bool, str]:
        return (lease.name != names.lease_name(lease.group, lease.worker), lease.problem is not None, lease.name)

    return min(current, other, key=rank)


def aggregate(leases: Iterable[WorkerLease], now: datetime, *, forget_after: timedelta,
              min_agent_version: str | None = None) -> Aggregate:
    """The workers (sorted by name) and when to look again."""
    by_worker: dict[str, WorkerLease] = {}
    for lease in leases:
        held = by_worker.get(lease.worker)
        by_worker[lease.worker] = lease if held is None else _preferred(held, lease)
    workers: list[WorkerStatus] = []
    wakes: list[datetime] = []
    for worker in sorted(by_worker):
        lease = by_worker[worker]
        expiry = lease.expires_at
        if expiry is not None and expiry <= now:
            forget_at = expiry + forget_after
            if forget_at <= now:
                continue
            wakes.append(forget_at)
        elif expiry is not None:
            wakes.append(expiry)
        workers.append(lease.worker_status(now, min_agent_version))
    return Aggregate(workers, min(wakes) if wakes else None)


def hard_view(workers: Sequence[Mapping[str, Any]], skip: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The entries without the members that change all the time (and without `skip`)."""
    dropped = WORKER_STATUS_SOFT_FIELDS | set(skip)
    return [{k: v for k, v in w.items() if k not in dropped} for w in workers]


@dataclass(frozen=True)
class WorkerChange:
    """One worker's change worth an Event on its group."""

    worker: str
    reason: str  # the Event's reason
    warning: bool
    note: str


def _describe(entry: WorkerStatus) -> str:
    parts = [f"host {entry.hostname or '?'}", f"agent {entry.agent_version or '?'}"]
    if entry.platform:
        parts.append(entry.platform)
    return ", ".join(parts)


def changes(before: Iterable[WorkerStatus], after: Iterable[WorkerStatus]) -> list[WorkerChange]:
    """Joined, missing, back, stopped, left, outdated, invalid: what changed between two lists."""
    old = {w.name: w for w in before}
    new = {w.name: w for w in after}
    found: list[WorkerChange] = []
    for name, entry in new.items():
        previous = old.get(name)
        state = entry.reason
        if previous is not None and previous.reason == state:
            continue
        if state == WorkerState.INVALID_LEASE:
            found.append(WorkerChange(name, "WorkerLeaseInvalid", True, f"worker {name}: {entry.message}"))
        elif state == WorkerState.OUTDATED:
            found.append(WorkerChange(name, "WorkerOutdated", True, f"worker {name} claims nothing: {entry.message}"))
        elif previous is None:
            found.append(WorkerChange(name, "WorkerJoined", not entry.ready and state != WorkerState.STOPPED,
                                      f"worker {name} joined ({_describe(entry)})" if entry.ready
                                      else f"worker {name} joined, not ready ({state}: {entry.message})"))
        elif state == WorkerState.MISSING:
            found.append(WorkerChange(name, "WorkerMissing", True, f"worker {name} is missing: {entry.message}"))
        elif state == WorkerState.STOPPED:
            found.append(WorkerChange(name, "WorkerStopped", False, f"worker {name} stopped: {entry.message}"))
        elif entry.ready and previous.reason in (WorkerState.MISSING, WorkerState.STOPPED):
            found.append(WorkerChange(name, "WorkerBack", False, f"worker {name} is back ({_describe(entry)})"))
        elif entry.ready and not previous.ready:
            found.append(WorkerChange(name, "WorkerReady", False, f"worker {name} is ready ({_describe(entry)})"))
    for name in old.keys() - new.keys():
        found.append(WorkerChange(name, "WorkerLeft", False,
                                  f"worker {name} left the group (its Lease was deleted, or it was missing too long)"))
    return found
