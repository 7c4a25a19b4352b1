"""Since when the operator has reached the API server without a break: a worker is not lost for an outage.

A worker's Lease lapses when nobody could renew it, and an apiserver outage (a restart, a network
cut between the cluster's parts) stops every renewal at once: agents, whose reports wait in their
spools, and the operator alike. Judged by `renewTime` alone, every worker would be lost the
moment the apiserver answers again, and every job whose attempt had finished but not yet
reported would run a second time (issue 11: a kube-apiserver restart). So, as the Kubernetes
node lifecycle controller does with node heartbeats, the operator does not count time it could
not observe: a worker is lost only once its Lease has also gone a whole lease duration without
renewal while the API server was reachable (`JobFacts.reachable_since`).

That only ever delays a requeue, so the self-fencing bound (no requeue before renewTime + D)
still holds. The probe is one `GET /version` a second; a failed one marks the outage, the first
answer after it starts the count again. At start nothing is known and nothing is delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from hrw_api.errors import ApiError
from hrw_api.kubeclient import KubeClient

from .logs import kv

logger = logging.getLogger("hrw.operator.reachability")


class Reachability:
    def __init__(self, client: KubeClient, *, interval: float = 1.0, timeout: float = 2.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._client = client
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._since: datetime | None = None
        self._down_since: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def since(self) -> datetime | None:
        """When the API server last became reachable after an outage this process saw; None when it saw none
        (and during one: then the operator cannot write anyway)."""
        return self._since

    def failed(self) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            kv(logger, logging.WARNING, "apiserver.unreachable")

    def answered(self) -> None:
        if self._down_since is not None:
            self._since = self._clock()
            kv(logger, logging.INFO, "apiserver.reachable.again",
               after=f"{(self._since - self._down_since).total_seconds():.1f}s")
            self._down_since = None

    def start(self) -> None:
        """Probe in the background (idempotent; from inside the event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._probe(), name="apiserver reachability")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _probe(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._client.get("/version"), self._timeout)
            except (ApiError, httpx.HTTPError, TimeoutError):
                self.failed()
            else:
                self.answered()
            await asyncio.sleep(self._interval)
