"""Per-worker (and per-webhook) rate limits and request body bounds: an internet-facing door must not be a hose.

The rate limit is a token bucket per worker identity, kept in this process only: with N proxy
replicas behind a load balancer a worker gets up to N times the rate, which is the price of
keeping no shared state (and still bounds a misbehaving agent). Refusals are `Status` 429 with
`Retry-After`; bodies over `--max-body-bytes` are `Status` 413, read without buffering more than
the limit.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from .refusals import ProxyError

_MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`check(key)` takes one token from `key`'s bucket or raises a 429 `ProxyError`."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, key: str, *, subject: str = "worker") -> None:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self._burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = math.ceil((1.0 - bucket.tokens) / self._rate)
        raise ProxyError(429, f"rate limit of {self._rate:g} requests/s (burst {self._burst}) exceeded for "
                              f"{subject} {key}; retry after {wait}s", retry_after=max(1, wait))


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The request body, or a 413 `ProxyError` as soon as it exceeds `max_bytes`."""
    too_large = ProxyError(413, f"request body larger than the proxy's limit of {max_bytes} bytes")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
