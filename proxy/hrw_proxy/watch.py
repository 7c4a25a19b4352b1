"""A worker's watch of its group's RunbookJobs, streamed line by line as the apiserver sends it.

Each agent watch is one upstream watch with the forced field selector; events of another group
are dropped and bookmarks passed on. A watch outlives the credential check that opened it, so
each event is checked again against the verifier's cache. On shutdown every open watch ends
cleanly, as the apiserver's do, so agents re-watch at once from their last resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .auth import CredentialVerifier, WorkerIdentity, bearer_token
from .listing import job_visible
from .metrics import Metrics
from .refusals import ProxyError
from .upstream import Upstream


class JobWatches:
    """The open RunbookJob watches of this process."""

    def __init__(self, upstream: Upstream, verifier: CredentialVerifier, metrics: Metrics) -> None:
        self.upstream = upstream
        self.verifier = verifier
        self.metrics = metrics
        self._watches: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def end_all(self) -> None:
        """On shutdown, end the open watches cleanly, as the apiserver does: each agent re-watches at
        once from its last resourceVersion (through another replica) instead of hanging on a
        stream that the shutdown timeout would cut."""
        self._stopping = True
        for task in list(self._watches):
            task.cancel()

    async def serve(self, request: web.Request, identity: WorkerIdentity,
                    params: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.metrics.active_watches.inc()
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        credential = bearer_token(request.headers.get("Authorization")) or ""
        try:
            try:
                async for event in self.upstream.watch_jobs(identity.namespace, params):
                    obj = event.get("object") or {}
                    if event.get("type") != "BOOKMARK" and not job_visible(identity.group, obj):
                        continue
                    # A watch outlives the credential check that opened it: each event is checked
                    # again (from the verifier's cache, refetched after its TTL), so a revoked
                    # worker stops hearing its group's jobs as soon as any request of its would fail.
                    if await self.verifier.verify(credential) != identity:
                        raise ProxyError(401, "the worker credential was revoked during the watch")
                    await response.write(json.dumps(event).encode() + b"\n")
            except ProxyError as exc:
                await response.write(json.dumps({"type": "ERROR", "object": exc.body()}).encode() + b"\n")
            except asyncio.CancelledError:
                if not self._stopping:
                    raise  # the agent went away (handler cancellation)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the agent went away; its next watch resumes from its last resourceVersion
        finally:
            if task is not None:
                self._watches.discard(task)
            self.metrics.active_watches.dec()
        return response
