"""Deliver the spool to the proxy: output chunks in order, then the attempt's result.

A record is acknowledged (deleted) only when it is stored, or when it provably never will be:
- stored: the proxy took it (2xx), or a chunk it already has (409);
- malformed: a chunk the proxy refuses for its own content (400, 413), which no retry changes;
- moved on: any other refusal (401, 403, 404, 422, ...) is checked, not assumed: the agent reads
  the job, and drops the attempt's records only if the job is gone or shows another attempt, a
  terminal phase, the queue or another holder (a result whose answer was lost shows here as the
  job already past it). While the job still shows this attempt held by this worker, the record
  stays, and so do the attempt's later records (the result never overtakes its output).
A transient failure (proxy down, 5xx such as the proxy's 503 `UpstreamUnavailable`, 429) leaves
every record for the next round, after a backoff with jitter no shorter than the answer's
`Retry-After`. Delivery is idempotent per attempt: a chunk's name on the cluster is
deterministic and a result is a fenced patch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from hrw_api import OutputChunk
from hrw_api.errors import ApiError, Conflict, InvalidObject, NotFound
from hrw_api.phases import JobPhase

from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient, retry_after
from .logs import log
from .spool import AttemptKey, Record, Spool

_CHUNK_NEVER_STORED = frozenset({400, 413})
"""A chunk refused for its own content: no retry can store it."""


class Transient(Exception):
    """The proxy could not be reached or asked for a retry: stop this round."""

    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__()
        self.retry_after = retry_after


class Held(Exception):
    """A record was refused while the job still shows its attempt held by this worker: keep it, and
    send nothing more of that attempt this round."""


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
        self._retry_after: float | None = None  # what the last refusal of a round asked to wait

    def wake(self) -> None:
        self._wake.set()

    async def put_result(self, key: AttemptKey, body: dict[str, Any]) -> None:
        """Spool the last word of an attempt no task runs (an orphan the start found), under the lock of
        the delivery pass: a pass that lists the attempt between the creation of its directory and the
        rename of its record would take it for an attempt with nothing to say and remove it (the fault
        stream test lost a restarted agent's give-back that way, and the job stayed Running)."""
        async with self._lock:
            await asyncio.to_thread(self._spool.put_result, key, body)
        self.wake()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._idle_interval)
            self._wake.clear()
            if await self.deliver_all():
                self._backoff.reset()
            else:
                await asyncio.sleep(self._backoff.next_delay(self._retry_after))

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
            await asyncio.sleep(min(backoff.next_delay(self._retry_after), max(0.0, deadline - loop.time())))

    async def deliver_all(self) -> bool:
        """One pass over the spool; False if a record is left to retry (the proxy unreachable, or a
        record refused while its attempt is still held)."""
        async with self._lock:
            self._retry_after = None
            everything = True
            for key in await asyncio.to_thread(self._spool.attempts):
                # Read before the records: a job marks itself inactive only after its result is spooled,
                # so an attempt inactive now has all its records in the listing below.
                active = self._is_active(key)
                records = await asyncio.to_thread(self._spool.records, key)
                try:
                    for record in records:
                        if not await self._deliver(record):
                            await asyncio.to_thread(self._spool.drop, key)  # moved on: nothing more to say
                            break
                except Transient as transient:
                    self._retry_after = transient.retry_after
                    return False
                except Held:
                    everything = False
                    continue
                if not records and not active:
                    self._spool.drop(key)  # an attempt that left nothing to say
                elif records and not records[-1].is_result and not active:
                    # Output of an attempt this process no longer runs (a crash): delivered; forget it.
                    self._spool.drop(key)
            return everything

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

    async def _deliver(self, record: Record) -> bool:
        """Send one record and forget it once stored; False if the attempt moved on (forget all of it)."""
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
                raise Transient(retry_after(exc)) from exc
            code = exc.code if isinstance(exc, ApiError) else None
            if not record.is_result and code in _CHUNK_NEVER_STORED:
                log.warning("delivery.dropped", job=key.job, attempt=key.attempt, record=record.path.name, code=code,
                            why=str(exc)[:200])
            else:
                moved_on = await self._moved_on(key)
                if moved_on is None:
                    log.warning("delivery.refused.kept", job=key.job, attempt=key.attempt, record=record.path.name,
                                code=code, why=str(exc)[:200])
                    raise Held() from exc
                log.info("delivery.dropped", job=key.job, attempt=key.attempt, record=record.path.name, code=code,
                         why=moved_on)
                return False
        await asyncio.to_thread(self._spool.ack, record)
        return True

    async def _moved_on(self, key: AttemptKey) -> str | None:
        """How the job shows that attempt `key` is over (read now, through the proxy), or None while it
        still shows that attempt held by this worker."""
        try:
            job = await self._client.get_job(key.job)
        except NotFound:
            return "the job was deleted"
        except InvalidObject:
            return None
        except CallError as exc:
            if is_transient(exc):
                raise Transient(retry_after(exc)) from exc
            return None  # unreadable now (e.g. a credential the proxy does not know yet): keep, ask again later
        status = job.status
        if status.attempt != key.attempt:
            return f"the job is at attempt {status.attempt}"
        if status.phase.terminal:
            return f"the job is {status.phase.value}"
        if status.phase is JobPhase.QUEUED or job.holder != self._client.worker:
            return f"the job is {status.phase.value}, held by {job.holder or 'nobody'}"
        return None
