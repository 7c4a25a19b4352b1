"""Rotating this worker's credential on the group's schedule, without a moment of downtime.

Where the group sets `spec.credentialRotation.periodSeconds`, a credential stops working that
long after it was issued. The agent rotates at each start and then whenever half the period has
passed: it asks the proxy for a new credential, writes it to `<stateDir>/credential` (0600,
atomically), then sends it with every request. The old one keeps working for the group's
overlap, so requests already on their way and the open watch carry on; the watch reconnects with
the new one when the proxy ends it. A failed rotation is tried again with backoff while the old
credential still works. Credentials are never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hrw_api import WorkerGroupSpec

from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient
from .config import AgentConfig
from .logs import log
from .spool import write_atomic

_IDLE_CHECK_SECONDS = 5.0  # how soon a schedule newly set on the group is noticed


async def rotate_once(config: AgentConfig, client: ProxyClient) -> None:
    """Get a new credential, store it, then use it (in that order: a crash never loses it)."""
    answer = await client.rotate_credential()
    await asyncio.to_thread(write_atomic, config.credential_path, (answer.credential + "\n").encode(), mode=0o600)
    client.credential.value = answer.credential
    log.info("agent.credential.rotated", worker=config.worker, expires=answer.expires_at or "never")


async def rotation_loop(config: AgentConfig, client: ProxyClient, settings: Callable[[], WorkerGroupSpec],
                        loaded: asyncio.Event) -> None:
    """Rotate on the group's schedule, forever (cancelled when the agent stops)."""
    await loaded.wait()
    backoff = Backoff(initial=1.0, maximum=30.0)
    rotated_at: float | None = None  # monotonic time of this life's last rotation
    while True:
        period = settings().credential_rotation_seconds
        wait = _IDLE_CHECK_SECONDS
        if period is not None:
            due_in = 0.0 if rotated_at is None else rotated_at + period / 2 - time.monotonic()
            if due_in <= 0:
                try:
                    await rotate_once(config, client)
                    rotated_at = time.monotonic()
                    backoff.reset()
                    due_in = period / 2
                except (*CallError, OSError) as exc:
                    due_in = backoff.next_delay()
                    level = log.warning if isinstance(exc, OSError) or is_transient(exc) else log.error
                    level("agent.credential.rotate.failed", error=type(exc).__name__, detail=str(exc)[:200],
                          retry_in=f"{due_in:.2f}")
            wait = min(wait, max(due_in, 0.0))
        await asyncio.sleep(wait)
