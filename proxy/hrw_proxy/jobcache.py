"""One upstream watch per (namespace, worker group), shared by every agent watch of that group.

Without it each agent watch was its own upstream watch: every job event crossed the wire once per
agent, and the upstream connection pool capped the fleet near a hundred agents. A `GroupCache`
does what client-go's reflector does: LIST the group's RunbookJobs (the CRD's selectable field
`spec.workerGroup`), WATCH from the list's resourceVersion with bookmarks, keep the objects by
name and a bounded ring of recent events, and on `410 Gone` relist and hand subscribers the
differences as synthesized ADDED/MODIFIED/DELETED events. Nothing survives a restart: a new
process rebuilds each cache from a LIST. A cache nobody subscribes to stops after
`idle_seconds`, so memory is bounded by the groups that have agents connected.

Subscribers are served with the watch protocol (see `subscribe`): an unset or "0"
resourceVersion starts with a synthetic ADDED per current object, a resourceVersion within the
ring replays the events after it, an older one is answered `410 Gone` (Expired). Each subscriber
has a bounded queue; one that overflows is ended (it resumes from its last resourceVersion)
instead of slowing the others or growing memory.

The claim offer: a Queued job is given first to one subscribed worker with a free slot (a
fan-out child: to the worker it is pinned to), and to the others `offer_grace` seconds later, so
a burst does not become a claim storm of 422s. A worker's free slots are its capacity, less the
jobs it holds (Claimed or Running in its name, in this cache) and the offers it has not answered
yet; its capacity and draining flag come from its Lease (`workers.WorkerView`). The one with the
most free slots is chosen, the least recently offered among equals (round-robin in a burst); a
draining worker is offered nothing. When no worker has a free slot the job goes to all at once:
the first to free a slot takes it. (Offering to busy workers made each job wait out the grace,
and then be raced for.) The apiserver's test-and-set stays the only arbiter; the offer is only
an order of delivery, so two replicas with different views stay correct.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .audit import log
from .auth import WorkerIdentity
from .listing import JOB_SELECTOR_FIELD
from .metrics import Metrics
from .refusals import ProxyError
from .upstream import Upstream
from .upstream_errors import unavailable
from .workers import UNKNOWN, WorkerState, WorkerView

JSON = dict[str, Any]
_RETRY_SECONDS = 1.0
_UPSTREAM_WATCH_SECONDS = 300
HELD_PHASES = frozenset({"Claimed", "Running"})


def resource_version(obj: JSON) -> int:
    """An object's resourceVersion as a number (etcd's revision); 0 when absent or opaque."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _phase(obj: JSON) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def _pinned(obj: JSON) -> str | None:
    """The worker a fan-out child is pinned to (only it may claim the job), or None."""
    worker = (obj.get("spec") or {}).get("pinnedWorker")
    return worker if isinstance(worker, str) else None


def _holder(obj: JSON) -> str | None:
    status = obj.get("status") or {}
    claim = status.get("claim") or {}
    if status.get("phase") in HELD_PHASES and isinstance(claim, dict):
        worker = claim.get("worker")
        return worker if isinstance(worker, str) else None
    return None


def encode(event: JSON) -> bytes:
    """An event as a line of the watch stream, encoded once however many watches it goes to."""
    return json.dumps(event).encode() + b"\n"


def expired(resource_version_text: str, oldest: int) -> ProxyError:
    return ProxyError(410, f"too old resource version: {resource_version_text} ({oldest})", reason="Expired")


@dataclass(eq=False)
class Delivery:
    """An event held back by a claim offer until `not_before`; dropped if a newer one of its job comes."""

    line: bytes
    job: str
    not_before: float
    superseded: bool = False


@dataclass(eq=False)
class Subscription:
    """One agent watch: the events ready to send, those held back by a claim offer, and whether it fell behind.

    Held events are sent when due, after the ready ones that came meanwhile: an agent offered a
    job must hear of it at once, not behind another agent's offer. A held Queued event that a
    newer event of the same job overtakes is dropped, so the others do not try a claim already won.
    """

    worker: str
    bookmarks: bool
    capacity: int
    after: int = 0
    """Events at or before this resourceVersion are not sent (the agent has them)."""
    ready: deque[bytes] = field(default_factory=deque)
    held: deque[Delivery] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    _held_by_job: dict[str, Delivery] = field(default_factory=dict)

    def push(self, job: str, line: bytes, not_before: float = 0.0) -> bool:
        """Queue the encoded event of `job`; False (and the watch marked to end) when the queue is full."""
        if self.overflowed:
            return False
        if len(self.ready) + len(self.held) >= self.capacity:
            self.overflowed = True
            self.wake.set()
            return False
        previous = self._held_by_job.pop(job, None)
        if previous is not None:
            previous.superseded = True
        if not_before > 0:
            delivery = Delivery(line, job, not_before)
            self.held.append(delivery)
            self._held_by_job[job] = delivery
        else:
            self.ready.append(line)
        self.wake.set()
        return True

    def due(self, now: float, *, flush: bool = False) -> list[bytes]:
        """The encoded events to send now (with `flush`, the held ones too: the watch is ending)."""
        out: list[bytes] = []
        while self.held and (flush or self.held[0].not_before <= now):
            delivery = self.held.popleft()
            if self._held_by_job.get(delivery.job) is delivery:
                del self._held_by_job[delivery.job]
            if not delivery.superseded:
                out.append(delivery.line)
        out.extend(self.ready)
        self.ready.clear()
        return out

    @property
    def next_due(self) -> float | None:
        return self.held[0].not_before if self.held else None

    @property
    def empty(self) -> bool:
        return not self.ready and not self.held


class GroupCache:
    """The RunbookJobs of one worker group in one namespace, kept by one upstream LIST+WATCH."""

    def __init__(self, upstream: Upstream, metrics: Metrics, namespace: str, group: str, *,
                 ring_size: int, offer_grace: float,
                 workers: Callable[[str], WorkerState] = lambda _: UNKNOWN) -> None:
        self.upstream = upstream
        self.workers = workers
        """A worker's capacity and draining flag, by name (the proxy's `WorkerView`)."""
        self.metrics = metrics
        self.namespace = namespace
        self.group = group
        self.offer_grace = offer_grace
        self.objects: dict[str, JSON] = {}
        self.ring: deque[tuple[int, str, bytes]] = deque(maxlen=max(1, ring_size))
        self.oldest = 0
        """Events after this resourceVersion are all in the ring (a watch from older gets 410)."""
        self.latest = 0
        self.synced = asyncio.Event()
        self.settled = asyncio.Event()
        """Set once the first LIST succeeded or failed (then `failure` says how)."""
        self.failure: ProxyError | None = None
        self.subscribers: set[Subscription] = set()
        self.idle_since: float | None = time.monotonic()
        self._offered_at: dict[str, float] = {}
        self._offers: dict[str, tuple[str, float]] = {}
        """Queued jobs offered and not yet answered: job -> (worker, until when the offer counts)."""
        self._holders: dict[str, str] = {}
        self._held: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"jobcache {self.namespace}/{self.group}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in list(self.subscribers):
            sub.overflowed = True  # ends the watch; its agent resumes elsewhere
            sub.wake.set()

    @property
    def params(self) -> dict[str, str]:
        return {"fieldSelector": f"{JOB_SELECTOR_FIELD}={self.group}"}

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
            except ProxyError as exc:
                if exc.code == 410:
                    need_list = True
                    continue
                self.metrics.upstream_errors.labels("jobcache").inc()
                if not self.synced.is_set():
                    self.failure = exc  # the watches waiting for the first LIST get this answer
                    self.settled.set()
                log.warning("job cache upstream failed; retrying", namespace=self.namespace, group=self.group,
                            code=exc.code, error=exc.message)
                await asyncio.sleep(_RETRY_SECONDS)
            except Exception as exc:  # a malformed answer must not leave the group's watches silent for good
                self.metrics.upstream_errors.labels("jobcache").inc()
                log.error("job cache failed; relisting", namespace=self.namespace, group=self.group,
                          error=type(exc).__name__)
                if not self.synced.is_set():
                    self.settled.set()  # its waiters get a 503 rather than wait out the timeout
                need_list = True
                await asyncio.sleep(_RETRY_SECONDS)

    async def _relist(self) -> None:
        listed = await self.upstream.list_jobs(self.namespace, self.params)
        version = resource_version(listed)
        items = {_name(item): item for item in listed.get("items") or []
                 if (item.get("spec") or {}).get("workerGroup") == self.group}
        if self.synced.is_set():
            # After a 410: what changed while the watch was lost, as the events a watch would have sent.
            for name, obj in self.objects.items():
                if name not in items:
                    self._publish({"type": "DELETED", "object": obj}, record=False)
            for name, obj in items.items():
                old = self.objects.get(name)
                if old is None:
                    self._publish({"type": "ADDED", "object": obj}, record=False)
                elif resource_version(old) != resource_version(obj):
                    self._publish({"type": "MODIFIED", "object": obj}, record=False)
        self.objects = items
        self._holders.clear()
        self._held.clear()
        for name, obj in items.items():
            self._track_holder(name, obj)
        self.ring.clear()
        self.oldest = self.latest = version
        self._publish(self._bookmark(), record=False, bookmark=True)
        self.failure = None
        self.synced.set()
        self.settled.set()

    async def _watch(self) -> None:
        params = {**self.params, "resourceVersion": str(self.latest), "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(_UPSTREAM_WATCH_SECONDS)}
        async for event in self.upstream.watch_jobs(self.namespace, params):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "BOOKMARK":
                self.latest = max(self.latest, resource_version(obj))
                continue
            if kind not in {"ADDED", "MODIFIED", "DELETED"}:
                continue
            if (obj.get("spec") or {}).get("workerGroup") != self.group:
                continue
            if kind == "DELETED":
                self.objects.pop(_name(obj), None)
                self._track_holder(_name(obj), None)
            else:
                self.objects[_name(obj)] = obj
                self._track_holder(_name(obj), obj)
            self.latest = max(self.latest, resource_version(obj))
            self._publish({"type": kind, "object": obj}, record=True)

    # ------------------------------------------------------------------------------ fan-out

    def _bookmark(self) -> JSON:
        return {"type": "BOOKMARK", "object": {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
                                               "metadata": {"resourceVersion": str(self.latest)}}}

    def _publish(self, event: JSON, *, record: bool, bookmark: bool = False) -> None:
        line = encode(event)
        job = _name(event["object"])
        version = resource_version(event["object"])
        if record:
            if len(self.ring) == self.ring.maxlen:
                self.oldest = self.ring[0][0]
            self.ring.append((version, job, line))
        if bookmark:
            for sub in list(self.subscribers):
                if sub.bookmarks:
                    self._push(sub, job, line)
            return
        first = self._offer_to(event)
        later = time.monotonic() + self.offer_grace if first is not None else 0.0
        for sub in list(self.subscribers):
            if record and version <= sub.after:
                continue  # the agent's list was newer than this cache when it subscribed
            self._push(sub, job, line, 0.0 if first is None or sub.worker == first else later)

    def _push(self, sub: Subscription, job: str, line: bytes, not_before: float = 0.0) -> None:
        if sub.push(job, line, not_before):
            self.metrics.fanned_out_events.inc()
        elif sub in self.subscribers:
            self.metrics.subscriber_overflows.inc()
            self.unsubscribe(sub)

    def _track_holder(self, name: str, obj: JSON | None) -> None:
        """Keep the count of jobs each worker holds up to date with the job's latest state."""
        old = self._holders.pop(name, None)
        if old is not None:
            self._held[old] -= 1
            if self._held[old] <= 0:
                del self._held[old]
        worker = _holder(obj) if obj is not None else None
        if worker is not None:
            self._holders[name] = worker
            self._held[worker] += 1

    def _offer_to(self, event: JSON) -> str | None:
        """The worker a Queued job goes to first, or None: everyone at once."""
        job = _name(event["object"])
        self._offers.pop(job, None)  # any news of the job answers its offer
        if self.offer_grace <= 0 or event["type"] == "DELETED" or _phase(event["object"]) != "Queued":
            return None
        workers = {sub.worker for sub in self.subscribers}
        if len(workers) < 2:
            return None
        pinned = _pinned(event["object"])
        if pinned is not None:  # a fan-out child: its worker first, the others pass it over anyway
            return pinned if pinned in workers else None
        now = time.monotonic()
        for name, (_, until) in list(self._offers.items()):
            if until <= now:
                del self._offers[name]
        pending = Counter(worker for worker, _ in self._offers.values())
        chosen: str | None = None
        best: tuple[int, float, str] | None = None
        for worker in workers:
            state = self.workers(worker)
            free = state.capacity - self._held.get(worker, 0) - pending.get(worker, 0)
            if state.draining or free <= 0:
                continue
            rank = (-free, self._offered_at.get(worker, 0.0), worker)
            if best is None or rank < best:
                chosen, best = worker, rank
        if chosen is None:
            self.metrics.claim_offers_unplaced.inc()
            return None  # nobody has a free slot: the first to free one takes it
        self._offered_at[chosen] = now
        self._offers[job] = (chosen, now + self.offer_grace)
        self.metrics.claim_offers.inc()
        return chosen

    def held_by(self) -> dict[str, int]:
        """Jobs each worker holds (Claimed or Running in its name), from the cache."""
        return dict(self._held)

    # ---------------------------------------------------------------------------- subscribers

    def subscribe(self, worker: str, resource_version_text: str | None, *, bookmarks: bool,
                  queue_size: int) -> Subscription:
        """A new subscriber, primed as the apiserver primes a watch (the cache must be synced).

        Unset or "0": a synthetic ADDED for each current object, then live events. N: the events
        of the ring after N, then live events; N older than the ring raises 410 Expired.
        """
        sub = Subscription(worker, bookmarks, queue_size)
        if resource_version_text in (None, "", "0"):
            initial = [(name, encode({"type": "ADDED", "object": obj})) for name, obj in self.objects.items()]
        else:
            wanted = int(resource_version_text) if resource_version_text.isdigit() else -1
            if wanted < self.oldest:
                raise expired(resource_version_text, self.oldest)
            initial = [(job, line) for version, job, line in self.ring if version > wanted]
            sub.after = wanted
        sub.capacity = max(queue_size, len(initial) + queue_size)
        for job, line in initial:
            sub.push(job, line)
        self.subscribers.add(sub)
        self.idle_since = None
        self.metrics.subscribers.inc()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            self.metrics.subscribers.dec()
            if not self.subscribers:
                self.idle_since = time.monotonic()

    def list_body(self) -> JSON:
        """The group's jobs as a list answer, at the cache's resourceVersion."""
        return {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJobList",
                "metadata": {"resourceVersion": str(self.latest)}, "items": sorted(self.objects.values(), key=_name)}

    def bookmark(self) -> bytes:
        return encode(self._bookmark())


class JobCaches:
    """The group caches of this process, started on first use and stopped when idle."""

    def __init__(self, upstream: Upstream, metrics: Metrics, workers: WorkerView, *, ring_size: int,
                 offer_grace: float, idle_seconds: float, sync_timeout: float) -> None:
        self.upstream = upstream
        self.workers = workers
        self.metrics = metrics
        self.ring_size = ring_size
        self.offer_grace = offer_grace
        self.idle_seconds = idle_seconds
        self.sync_timeout = sync_timeout
        self._caches: dict[tuple[str, str], GroupCache] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __iter__(self) -> Iterator[GroupCache]:
        return iter(list(self._caches.values()))

    async def synced(self, namespace: str, group: str) -> GroupCache:
        """The group's cache, started if need be and synced (503 UpstreamUnavailable if its LIST takes too long)."""
        cache = self._caches.get((namespace, group))
        if cache is None:
            cache = GroupCache(self.upstream, self.metrics, namespace, group, ring_size=self.ring_size,
                               offer_grace=self.offer_grace,
                               workers=lambda worker: self.workers.state(WorkerIdentity(namespace, group, worker)))
            self._caches[(namespace, group)] = cache
            cache.start()
            self.metrics.upstream_watches.set(len(self._caches))
            if self._reaper is None:
                self._reaper = asyncio.create_task(self._reap(), name="jobcache reaper")
        elif cache.idle_since is not None:
            cache.idle_since = time.monotonic()  # in use: not reaped before its caller subscribes
        try:
            await asyncio.wait_for(cache.settled.wait(), self.sync_timeout)
        except TimeoutError:
            raise unavailable(f"it did not list the group's jobs within {self.sync_timeout:g}s") from None
        if not cache.synced.is_set():
            raise cache.failure or unavailable("the group's jobs could not be listed")
        return cache

    def peek(self, namespace: str, group: str) -> GroupCache | None:
        """The group's cache if it runs and is synced (nothing is started)."""
        cache = self._caches.get((namespace, group))
        return cache if cache is not None and cache.synced.is_set() else None

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.idle_seconds / 4))
            now = time.monotonic()
            for key, cache in list(self._caches.items()):
                if cache.idle_since is not None and now - cache.idle_since >= self.idle_seconds:
                    del self._caches[key]
                    self.metrics.upstream_watches.set(len(self._caches))
                    await cache.stop()

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for cache in list(self._caches.values()):
            await cache.stop()
        self._caches.clear()
        self.metrics.upstream_watches.set(0)
