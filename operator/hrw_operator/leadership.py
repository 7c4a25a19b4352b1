"""Leader election: several operator replicas, exactly one acting (issue 11).

The operator is no single point of failure when two replicas run and one of them leads. They
elect the leader the way client-go's `leaderelection` package does, on a
`coordination.k8s.io/v1` Lease in the operator's own namespace:

- **Acquire.** A replica reads the Lease. It takes it (an update carrying the resourceVersion it
  read, so of two racers exactly one wins; or a create when there is none) when the Lease is
  free (no holder: released), is its own, or has not changed for the Lease's
  `leaseDurationSeconds` *as this replica observed it on its own monotonic clock* (client-go's
  rule: the holder's `renewTime` is never compared with the standby's wall clock, so clock
  skew between machines does not matter, only clock rates). A standby tries every
  `retry_period` seconds.
- **Renew.** The leader writes `renewTime` every `retry_period` seconds.
- **Stop acting.** A leader whose renewals keep failing must stop before a standby can take
  over: `renew_deadline` seconds after it *sent* its last renewal that succeeded, a watchdog
  thread ends the process at once (`os._exit`, exit code 1), wherever the event loop is, and the
  Deployment restarts it as a standby. This is what client-go users do (`OnStoppedLeading`
  exits); nothing needs cleaning up, since everything the operator knows lives in the API. A
  standby observed that renewal no earlier than it was sent and waits `lease_duration` from its
  observation, so the two never act at once as long as
  `renew_deadline + (time to end a process) < lease_duration` and the clocks' rates agree to
  within that margin (defaults 10 s and 15 s: 5 s of margin). A leader that reads the Lease
  held by someone else stops the same way, at once.
- **Release.** On a clean shutdown (SIGTERM), after the controllers have stopped, the leader
  empties `holderIdentity` (and sets `leaseDurationSeconds` to 1), so a standby takes over at
  its next try (within `retry_period`) instead of waiting out the Lease.

`LeaderElector` does the API work; the watchdog is `Fence`. `main` runs the controllers only
once `acquire` returned True.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from hrw_api.errors import ApiError
from hrw_api.kubeclient import LEASES, KubeClient
from hrw_api.times import format_micro_time, now, parse_time

from .logs import kv
from .settings import LeaderElection

__all__ = ["EXIT_LEADERSHIP_LOST", "Fence", "LeaderElection", "LeaderElector", "LeaseRecord"]

logger = logging.getLogger("hrw.operator.leader")

EXIT_LEADERSHIP_LOST = 1
"""The exit code of a leader that could not renew in time (the Deployment restarts it)."""


@dataclass(frozen=True)
class LeaseRecord:
    """What the election reads of the Lease."""

    holder: str
    duration_seconds: int
    acquire_time: datetime | None
    transitions: int
    resource_version: str

    @classmethod
    def parse(cls, body: dict[str, Any]) -> LeaseRecord:
        spec = body.get("spec") or {}
        try:
            acquired = parse_time(spec.get("acquireTime"))
        except ValueError:
            acquired = None
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(holder=str(spec.get("holderIdentity") or ""),
                   duration_seconds=duration if isinstance(duration, int) and duration > 0 else 1,
                   acquire_time=acquired,
                   transitions=transitions if isinstance(transitions, int) and transitions >= 0 else 0,
                   resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""))


class Fence:
    """The watchdog: a thread that ends the process when the leader's deadline passes.

    A thread, not a task: a busy or blocked event loop cannot keep a stale leader acting.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 exit_process: Callable[[int], None] = os._exit) -> None:
        self._clock = clock
        self._exit = exit_process
        self._deadline: float | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def arm(self, deadline: float) -> None:
        """Act only until `deadline` (on `clock`); moved forward by each renewal."""
        with self._lock:
            self._deadline = deadline
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="hrw-leader-fence", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        """We stopped acting of our own accord (clean shutdown): no deadline any more."""
        with self._lock:
            self._deadline = None

    def close(self) -> None:
        self.disarm()
        self._stopped.set()

    def expired(self) -> bool:
        with self._lock:
            return self._deadline is not None and self._clock() >= self._deadline

    def stop_now(self, why: str, **fields: Any) -> None:
        """End the process at once: we may not act any more."""
        kv(logger, logging.ERROR, "leader.lost", why=why, exit_code=EXIT_LEADERSHIP_LOST, **fields)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(EXIT_LEADERSHIP_LOST)

    def _watch(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                deadline = self._deadline
            if deadline is not None:
                late = self._clock() - deadline
                if late >= 0:
                    self.stop_now("renew deadline passed without a successful renewal", late_seconds=round(late, 3))
                    return
            self._stopped.wait(0.05)


class LeaderElector:
    """client-go's leader election on one Lease, for one replica."""

    def __init__(self, client: KubeClient, election: LeaderElection, *, fence: Fence | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.client = client
        self.election = election
        self.fence = fence or Fence(clock=clock)
        self._clock = clock
        self._on_change = on_change
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self.leading = False

    @property
    def _duration_seconds(self) -> int:
        return max(1, round(self.election.lease_duration))

    @property
    def _path(self) -> str:
        return LEASES.path(self.election.namespace, self.election.name)

    # -- the one step (client-go's tryAcquireOrRenew)

    async def try_acquire_or_renew(self) -> bool:
        """One read and at most one write. True when we hold the Lease afterwards."""
        election = self.election
        stamp = format_micro_time(now())
        try:
            body = await self.client.get(self._path)
        except ApiError as exc:
            if exc.code != 404:
                raise
            return await self._create(stamp)
        record = LeaseRecord.parse(body)
        if self._observed is None or record.resource_version != self._observed.resource_version:
            self._observed, self._observed_at = record, self._clock()
        ours = record.holder == election.identity
        if record.holder and not ours and self._observed_at + record.duration_seconds > self._clock():
            return False  # someone else holds it and renewed it within its duration, as far as we saw
        spec: dict[str, Any] = {
            "holderIdentity": election.identity,
            "leaseDurationSeconds": self._duration_seconds,
            "renewTime": stamp,
            "acquireTime": format_micro_time(record.acquire_time) if ours and record.acquire_time else stamp,
            "leaseTransitions": record.transitions if ours else record.transitions + 1,
        }
        updated = {**body, "spec": {**(body.get("spec") or {}), **spec}}
        try:
            answer = await self.client.replace(self._path, updated)
        except ApiError as exc:
            if exc.code == 409:  # someone wrote it since we read it: they won this round
                return False
            raise
        self._observed, self._observed_at = LeaseRecord.parse(answer), self._clock()
        if not ours:
            kv(logger, logging.INFO, "leader.acquired", lease=f"{election.namespace}/{election.name}",
               identity=election.identity, previous=record.holder or None, transitions=spec["leaseTransitions"])
        return True

    async def _create(self, stamp: str) -> bool:
        election = self.election
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": election.name, "namespace": election.namespace,
                         "labels": {"app.kubernetes.io/name": "hrw", "app.kubernetes.io/component": "operator"}},
            "spec": {"holderIdentity": election.identity, "leaseDurationSeconds": self._duration_seconds,
                     "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0},
        }
        try:
            answer = await self.client.create(LEASES.path(election.namespace), body)
        except ApiError as exc:
            if exc.code == 409:  # created by another replica meanwhile
                return False
            raise
        self._observed, self._observed_at = LeaseRecord.parse(answer), self._clock()
        kv(logger, logging.INFO, "leader.acquired", lease=f"{election.namespace}/{election.name}",
           identity=election.identity, created=True)
        return True

    # -- the loops

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until we lead (True) or `stop` is set first (False)."""
        election = self.election
        waiting_logged_for: str | None = None
        while not stop.is_set():
            started = self._clock()
            try:
                acquired = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=election.lease_duration)
            except (ApiError, httpx.HTTPError, OSError, TimeoutError) as exc:
                kv(logger, logging.WARNING, "leader.try_failed", error=type(exc).__name__, detail=str(exc)[:200])
                acquired = False
            if acquired:
                self._start_leading(started)
                return True
            holder = self._observed.holder if self._observed else None
            if holder != waiting_logged_for:
                kv(logger, logging.INFO, "leader.waiting", lease=f"{election.namespace}/{election.name}",
                   identity=election.identity, holder=holder)
                waiting_logged_for = holder
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=election.retry_period)
        return False

    def _start_leading(self, sent_at: float) -> None:
        self.fence.arm(sent_at + self.election.renew_deadline)
        self.leading = True
        if self._on_change is not None:
            self._on_change(True)

    async def keep_leading(self) -> None:
        """Renew every `retry_period` for as long as we run (cancel it to stop). The fence ends the
        process when no renewal succeeds in time; a Lease taken by another ends it at once."""
        election = self.election
        while True:
            await asyncio.sleep(election.retry_period)
            sent_at = self._clock()
            try:
                renewed = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=election.renew_deadline)
            except (ApiError, httpx.HTTPError, OSError, TimeoutError) as exc:
                kv(logger, logging.WARNING, "leader.renew_failed", error=type(exc).__name__, detail=str(exc)[:200])
                continue
            if renewed:
                self.fence.arm(sent_at + election.renew_deadline)
            elif self._observed is not None and self._observed.holder != election.identity:
                self.fence.stop_now("the Lease is held by another replica", holder=self._observed.holder)
                return

    async def release(self) -> None:
        """Give the Lease up (clean shutdown, controllers stopped): a standby takes it at its next try."""
        election = self.election
        self.fence.disarm()
        if not self.leading:
            return
        self.leading = False
        if self._on_change is not None:
            self._on_change(False)
        try:
            body = await asyncio.wait_for(self.client.get(self._path), timeout=election.retry_period * 2)
            if (body.get("spec") or {}).get("holderIdentity") != election.identity:
                return
            spec = {**(body.get("spec") or {}), "leaseDurationSeconds": 1, "renewTime": format_micro_time(now())}
            spec.pop("holderIdentity", None)
            await asyncio.wait_for(self.client.replace(self._path, {**body, "spec": spec}),
                                   timeout=election.retry_period * 2)
        except (ApiError, httpx.HTTPError, OSError, TimeoutError) as exc:
            kv(logger, logging.WARNING, "leader.release_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return
        kv(logger, logging.INFO, "leader.released", lease=f"{election.namespace}/{election.name}",
           identity=election.identity)
