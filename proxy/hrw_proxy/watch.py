"""A worker's watch of its group's RunbookJobs, served from the group's shared cache (jobcache.py).

Every agent watch of a group is a subscriber of the one upstream watch of that group; the
watch protocol is kept (initial ADDED events, resume from a resourceVersion, `410 Gone` when it
is too old, bookmarks, `timeoutSeconds`). A watch whose query the cache cannot answer (a label
selector, another field selector term) is relayed to its own upstream watch as before.

A watch outlives the credential check that opened it: before events are written the credential
is checked again, but only when the verifier's cached verdict has changed or expired (so a
revoked worker stops hearing jobs as soon as any request of its would fail, and a busy watch costs
no hashing per event). On shutdown every open watch ends cleanly, as the apiserver's do, so
agents re-watch at once from their last resourceVersion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .auth import CredentialVerifier, WorkerIdentity, bearer_token
from .jobcache import JobCaches, Subscription
from .listing import JOB_SELECTOR_FIELD, job_visible
from .metrics import Metrics
from .refusals import ProxyError
from .upstream import Upstream
from .workers import WorkerView

JSON = dict[str, Any]
# Query parameters the shared cache answers; any other makes the watch its own upstream watch.
CACHEABLE_PARAMS = frozenset({"watch", "resourceVersion", "timeoutSeconds", "allowWatchBookmarks", "fieldSelector"})


def cacheable(params: Mapping[str, str], group: str) -> bool:
    """Can the group's cache answer this list/watch query (the forced group selector and nothing more)?"""
    return (set(params) <= CACHEABLE_PARAMS
            and params.get("fieldSelector") == f"{JOB_SELECTOR_FIELD}={group}")


UNVERIFIED_GRACE_SECONDS = 30.0
"""How long a watch goes on streaming while its credential cannot be checked again (the apiserver
is slow or unreachable), counted from the last check that succeeded."""


class CredentialCheck:
    """A watch's credential, checked again only when the verifier's cached answer changed or expired.

    A revoked credential (its Secret gone: the check answers no) ends the watch at once. A check
    the apiserver does not answer does not: with a thousand watches of one group, a new job made
    each of them check again at once, and on a loaded apiserver most of those checks timed out
    and ended healthy watches with a 504 (issue 10's bench). Such a watch goes on for up to
    `UNVERIFIED_GRACE_SECONDS` after its last good check, and checks again at its next event.
    """

    def __init__(self, verifier: CredentialVerifier, credential: str, identity: WorkerIdentity,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.verifier = verifier
        self.credential = credential
        self.identity = identity
        self._clock = clock
        self._verified_at: float | None = None
        self._good_at = clock()  # the request that opened the watch was just authenticated

    async def require(self) -> None:
        cached_at = self.verifier.cached_at(self.identity)
        if cached_at is not None and cached_at == self._verified_at:
            return
        try:
            verified = await self.verifier.verify(self.credential)
        except ProxyError as exc:
            if exc.code < 500 or self._clock() - self._good_at > UNVERIFIED_GRACE_SECONDS:
                raise
            return
        if verified != self.identity:
            raise ProxyError(401, "the worker credential was revoked during the watch")
        self._verified_at = self.verifier.cached_at(self.identity)
        self._good_at = self._clock()


class JobWatches:
    """The open RunbookJob watches of this process."""

    def __init__(self, upstream: Upstream, verifier: CredentialVerifier, metrics: Metrics, caches: JobCaches,
                 workers: WorkerView, *, queue_size: int, bookmark_seconds: float) -> None:
        self.upstream = upstream
        self.workers = workers
        self.verifier = verifier
        self.metrics = metrics
        self.caches = caches
        self.queue_size = queue_size
        self.bookmark_seconds = bookmark_seconds
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
        shared = cacheable(params, identity.group)
        # Before the headers: a cache that cannot be listed is an error answer, not an empty stream.
        cache = await self.caches.synced(identity.namespace, identity.group) if shared else None
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.metrics.active_watches.inc()
        task = asyncio.current_task()
        if task is not None:
            self._watches.add(task)
        check = CredentialCheck(self.verifier, bearer_token(request.headers.get("Authorization")) or "", identity)
        try:
            try:
                if cache is not None:
                    self.workers.learn(identity)  # its capacity, for the claim offer
                    sub = cache.subscribe(identity.worker, params.get("resourceVersion"),
                                          bookmarks=_wants_bookmarks(params), queue_size=self.queue_size)
                    try:
                        await self._stream(response, sub, check, int(params["timeoutSeconds"]), cache.bookmark)
                    finally:
                        cache.unsubscribe(sub)
                else:
                    await self._relay(response, identity, params, check)
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

    async def _stream(self, response: web.StreamResponse, sub: Subscription, check: CredentialCheck,
                      timeout_seconds: int, bookmark: Callable[[], bytes]) -> None:
        """Write the subscriber's events as they become due, bookmarks when idle, until the timeout."""
        now = time.monotonic()
        deadline = now + timeout_seconds
        next_bookmark = now + self.bookmark_seconds
        while True:
            now = time.monotonic()
            ending = now >= deadline or sub.overflowed  # overflowed: it fell behind, and resumes (or relists on 410)
            due = sub.due(now, flush=ending)
            if due:
                await check.require()
                await response.write(b"".join(due))
                if not ending:
                    continue
            if ending:
                if sub.bookmarks and not sub.overflowed:
                    await response.write(bookmark())
                return
            if now >= next_bookmark:
                if sub.bookmarks and sub.empty:
                    await response.write(bookmark())
                next_bookmark = now + self.bookmark_seconds
            wake_at = min(deadline, next_bookmark)
            if sub.next_due is not None:
                wake_at = min(wake_at, sub.next_due)  # an event held back by a claim offer
            sub.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), max(0.0, wake_at - now))

    async def _relay(self, response: web.StreamResponse, identity: WorkerIdentity, params: dict[str, str],
                     check: CredentialCheck) -> None:
        """A watch the cache cannot answer: its own upstream watch, relayed event by event."""
        async for event in self.upstream.watch_jobs(identity.namespace, params):
            obj = event.get("object") or {}
            if event.get("type") != "BOOKMARK" and not job_visible(identity.group, obj):
                continue
            await check.require()
            await response.write(json.dumps(event).encode() + b"\n")


def _wants_bookmarks(params: Mapping[str, str]) -> bool:
    return params.get("allowWatchBookmarks", "").lower() in {"true", "1"}
