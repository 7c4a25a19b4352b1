"""Watch the group's RunbookJobs through the proxy, forever, without missing a change.

List once, then watch from the list's resourceVersion; every event (bookmarks included) moves
the resume point, so a dropped connection resumes where it stopped. A `410 Gone` (the resume
point is older than the apiserver keeps) means relist. Errors and a proxy that is down mean
reconnect after an exponential backoff with jitter. The consumer gets the full list on each
(re)list (`on_sync`) and each change afterwards (`on_event`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from hrw_api import RunbookJob
from hrw_api.errors import Gone

from .backoff import Backoff
from .client import CallError, JobEvent, ProxyClient, retry_after
from .logs import log

OnSync = Callable[[list[RunbookJob]], Awaitable[None]]
OnEvent = Callable[[str, RunbookJob], Awaitable[None]]


def _job(event: JobEvent) -> RunbookJob | None:
    if event.problem is not None:
        log.warning("watch.object.invalid", job=event.name, field=event.problem.field, problem=event.problem.message)
    return event.job


class JobWatcher:
    def __init__(self, client: ProxyClient, on_sync: OnSync, on_event: OnEvent, *,
                 backoff: Backoff | None = None, watch_timeout: int = 240) -> None:
        self._client = client
        self._on_sync = on_sync
        self._on_event = on_event
        self._backoff = backoff or Backoff(initial=0.5, maximum=15.0)
        self._watch_timeout = watch_timeout
        self.resource_version = ""
        self.connected = asyncio.Event()

    async def _list(self) -> None:
        items, self.resource_version = await self._client.list_jobs()
        jobs = [job for job in (_job(item) for item in items) if job is not None]
        log.info("watch.listed", jobs=len(jobs), resource_version=self.resource_version)
        await self._on_sync(jobs)

    async def run(self) -> None:
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                    self.connected.set()
                    self._backoff.reset()
                async for event in self._client.watch_jobs(self.resource_version, self._watch_timeout):
                    self._backoff.reset()
                    job = _job(event)
                    if job is not None:
                        await self._on_event(event.type, job)
                    if event.resource_version:
                        self.resource_version = event.resource_version
            except Gone:
                log.info("watch.gone.relisting", resource_version=self.resource_version)
                self.resource_version = ""
            except CallError as exc:
                self.connected.clear()
                delay = self._backoff.next_delay(retry_after(exc))
                log.warning("watch.error", error=type(exc).__name__, detail=str(exc)[:200],
                            retry_in=f"{delay:.2f}", failures=self._backoff.failures)
                await asyncio.sleep(delay)
