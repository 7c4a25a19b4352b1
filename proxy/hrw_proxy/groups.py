"""A worker's WorkerGroup as the proxy needs it on a write: read once per `ttl`, not per request.

A claim asks for the group's `minAgentVersion`, an output chunk for its `outputLimitBytes`, a new
Lease for its uid (the Lease is owned by the group). A group changes rarely and a fleet claims
often, so the parsed group is kept for `ttl` seconds per (namespace, group), as the credential
cache keeps a worker's hash: a raised minimum takes effect on every replica within that time.
Nothing but this cache lives here, so replicas still need no coordination.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hrw_api import WorkerGroup

from .bodies import parse_object
from .upstream import Upstream

DEFAULT_GROUP_CACHE_TTL = 2.0
"""Seconds a group read from the apiserver is used before it is read again."""


class GroupCache:
    def __init__(self, upstream: Upstream, *, ttl: float = DEFAULT_GROUP_CACHE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._upstream = upstream
        self._ttl = ttl
        self._clock = clock
        self._groups: dict[tuple[str, str], tuple[float, WorkerGroup]] = {}

    async def get(self, namespace: str, group: str) -> WorkerGroup:
        """The group (a 404 `ProxyError` if there is none, 500 if it does not fit the contract)."""
        key = (namespace, group)
        now = self._clock()
        held = self._groups.get(key)
        if held is not None and now - held[0] < self._ttl:
            return held[1]
        model = parse_object(WorkerGroup, await self._upstream.get_group(namespace, group), f"WorkerGroup {group}")
        self._groups[key] = (now, model)
        return model
