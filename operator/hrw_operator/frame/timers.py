"""Our own timers: one asyncio task per object, sleeping until the object's next deadline.

kopf's timers and daemons keep per-object state in the API; a RunbookJob's deadlines are
already in its status (queuedTime, startTime, completionTime, the claimer's Lease), so a timer
here is just "reconcile this object again at that moment". Nothing is persisted: a restarted
operator lists the objects and schedules again from their status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime

from hrw_api.times import now

from ..logs import kv

logger = logging.getLogger("hrw.operator.scheduler")


class Timers:
    """At most one pending wake-up per key; scheduling again replaces it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: dict[Hashable, tuple[datetime, asyncio.Task[None]]] = {}

    def schedule(self, key: Hashable, when: datetime, callback: Callable[[], Awaitable[None]]) -> None:
        current = self._tasks.get(key)
        if current is not None:
            at, task = current
            if at == when and not task.done():
                return
            if task is not asyncio.current_task():
                task.cancel()
        task = asyncio.get_running_loop().create_task(self._fire(key, when, callback))
        self._tasks[key] = (when, task)

    def cancel(self, key: Hashable) -> None:
        current = self._tasks.pop(key, None)
        if current is not None and current[1] is not asyncio.current_task():
            current[1].cancel()

    def when(self, key: Hashable) -> datetime | None:
        current = self._tasks.get(key)
        return current[0] if current else None

    def __len__(self) -> int:
        return len(self._tasks)

    async def _fire(self, key: Hashable, when: datetime, callback: Callable[[], Awaitable[None]]) -> None:
        delay = (when - now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        current = self._tasks.get(key)
        if current is not None and current[1] is asyncio.current_task():
            del self._tasks[key]
        try:
            await callback()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            kv(logger, logging.ERROR, "timer.failed", timers=self._name, key=key, error=type(exc).__name__,
               detail=str(exc)[:300])

    async def close(self) -> None:
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
