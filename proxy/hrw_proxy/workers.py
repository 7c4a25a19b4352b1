"""What the claim offer knows of each worker: how many jobs it runs at once, and whether it drains.

A worker says both in its Lease (the contract's `WorkerInfo`: the capacity and draining
annotations), and each of its Lease writes passes through a proxy (leases.py). This view keeps
the last word each worker wrote through this process, and learns the Lease of a worker it has
not heard from with one GET when that worker's watch opens (its renewals may go through another
replica). It orders deliveries, it never decides a claim: a worker the view does not know counts
as able to take one job, and the apiserver's test-and-set still settles every race, so two
replicas with different views stay correct.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hrw_api import InvalidObject, WorkerInfo, names

from .auth import WorkerIdentity
from .refusals import ProxyError
from .upstream import Upstream

_MAX_WORKERS = 100_000


@dataclass(frozen=True)
class WorkerState:
    capacity: int
    """Jobs the worker runs at once (its Lease's capacity annotation)."""
    draining: bool
    """The agent is shutting down: it claims nothing more."""


UNKNOWN = WorkerState(capacity=1, draining=False)
"""A worker whose Lease this process has not seen: offered one job at a time."""


class WorkerView:
    """Each worker's capacity and draining flag, as its Lease writes through this process said."""

    def __init__(self, upstream: Upstream | None) -> None:
        self._upstream = upstream
        self._states: dict[WorkerIdentity, WorkerState] = {}
        self._learning: set[asyncio.Task[None]] = set()

    def state(self, identity: WorkerIdentity) -> WorkerState:
        return self._states.get(identity, UNKNOWN)

    def heard(self, identity: WorkerIdentity, annotations: Any) -> None:
        """A Lease write of `identity` went through (already checked against the contract): keep the
        capacity and draining flag it sets; a merge patch that sets neither changes nothing."""
        if not isinstance(annotations, Mapping):
            return
        present = {key: value for key, value in annotations.items()
                   if key in (names.ANNOTATION_CAPACITY, names.ANNOTATION_DRAINING) and value is not None}
        if not present:
            return
        try:
            info = WorkerInfo.from_annotations(present)
        except InvalidObject:
            return
        known = self._states.get(identity, UNKNOWN)
        self._states[identity] = WorkerState(
            capacity=info.capacity if names.ANNOTATION_CAPACITY in present else known.capacity,
            draining=info.draining if names.ANNOTATION_DRAINING in present else known.draining)
        if len(self._states) > _MAX_WORKERS:
            self._states.pop(next(iter(self._states)))

    def learn(self, identity: WorkerIdentity) -> None:
        """Read the Lease of a worker this process has not heard from, in the background."""
        if identity in self._states or self._upstream is None:
            return
        task = asyncio.create_task(self._read(identity), name=f"lease of {identity}")
        self._learning.add(task)
        task.add_done_callback(self._learning.discard)

    async def _read(self, identity: WorkerIdentity) -> None:
        assert self._upstream is not None
        try:
            lease = await self._upstream.get_lease(identity.namespace, names.lease_name(identity.group,
                                                                                         identity.worker))
        except ProxyError:
            return  # unknown stays UNKNOWN: one job at a time until its next renewal says more
        if identity in self._states:
            return  # a Lease write came through meanwhile: it is newer
        self._states[identity] = UNKNOWN  # no Lease yet: not read again at each watch; its first write tells
        if lease is not None:
            self.heard(identity, (lease.get("metadata") or {}).get("annotations"))

    async def stop(self) -> None:
        for task in list(self._learning):
            task.cancel()
        await asyncio.gather(*self._learning, return_exceptions=True)
