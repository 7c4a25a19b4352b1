"""Deliver the spool to the proxy: output chunks in order, then the attempt's result.

A record is acknowledged (deleted) when the proxy took it, or when it can never be taken:
a chunk the proxy already has (409) or refuses for an attempt no longer held (403/404/422),
a result patch whose fence fails (422: the job already shows this result, or the attempt moved
on and this report is stale). A transient failure (proxy down, 5xx, 429) leaves the record for
the next round, after a backoff with jitter. Delivery is therefore idempotent per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hrw_api import OutputChunk
from hrw_api.errors import ApiError, Conflict, InvalidObject

from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient
from .logs import log
from .spool import AttemptKey, Record, Spool


class Transient(Exception):
    pass


class Delivery:
    def __init__(self, spool: Spool, client: ProxyClient, is_active: Callable[[AttemptKey], bool], *,
                 backoff: Backoff | None = None, idle_interval: float = 5.0) -> None:
        self._spool = spool
        self._client = client
        self._is_active = is_active
        self._backoff = backoff or Backoff(initial=0.5, maximum=10.0)
        self._wake = asyncio.Event()
        self._idle_interval = idle_interval
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_interval)
            self._wake.clear()
            if await self.deliver_all():
                self._backoff.reset()
            else:
                await asyncio.sleep(self._backoff.next_delay())

    async def drain(self, within: float) -> bool:
        """Deliver until the spool is empty or `within` seconds pass; True if empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        backoff = Backoff(initial=0.2, maximum=2.0)
        while True:
            if await self.deliver_all() and not await asyncio.to_thread(self._spool.pending):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - loop.time())))

    async def deliver_all(self) -> bool:
        """One pass over the spool; False if the proxy could not be reached."""
        async with self._lock:
            for key in await asyncio.to_thread(self._spool.attempts):
                # Read before the records: a job marks itself inactive only after its result is spooled,
                # so an attempt inactive now has all its records in the listing below.
                active = self._is_active(key)
                records = await asyncio.to_thread(self._spool.records, key)
                try:
                    for record in records:
                        await self._deliver(record)
                except Transient:
                    return False
                if not records and not active:
                    self._spool.drop(key)  # an attempt that left nothing to say
                elif records and not records[-1].is_result and not active:
                    # Output of an attempt this process no longer runs (a crash): delivered; forget it.
                    self._spool.drop(key)
            return True

    @staticmethod
    def _chunk(record: Record) -> OutputChunk | None:
        """The spooled chunk; None for one that does not parse: spool records are written whole by this
        agent (see spool.py), so such a record can never be delivered, and must not hold back the rest."""
        try:
            return OutputChunk.parse(record.body)
        except InvalidObject as exc:
            log.warning("delivery.dropped", job=record.key.job, attempt=record.key.attempt, record=record.path.name,
                        why=f"not an output chunk: {exc}"[:200])
            return None

    async def _deliver(self, record: Record) -> None:
        key = record.key
        try:
            if record.is_result:
                await self._client.patch_job_status(key.job, record.body["patch"])
                log.info("delivery.result.delivered", job=key.job, attempt=key.attempt,
                         phase=record.body.get("phase"))
            else:
                chunk = self._chunk(record)
                if chunk is not None:
                    await self._client.post_output(key.job, chunk)
        except Conflict:
            pass  # a chunk the proxy already stored
        except CallError as exc:
            if is_transient(exc):
                log.info("delivery.deferred", job=key.job, attempt=key.attempt, error=type(exc).__name__,
                         pending=record.path.name)
                raise Transient() from exc
            code = exc.code if isinstance(exc, ApiError) else None
            log.info("delivery.dropped", job=key.job, attempt=key.attempt, record=record.path.name, code=code,
                     why="already applied or the attempt moved on" if code == 422 else str(exc)[:200])
        await asyncio.to_thread(self._spool.ack, record)
