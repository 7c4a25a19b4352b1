"""Registering a worker: the group's registration token in, the worker's own credential out.

The request names the worker (a DNS-1123 label) and says what it runs (hostname, agent version,
interpreters). The cluster keeps only the credential's sha256, in a Secret owned by the
WorkerGroup; registering again replaces it. A name whose Lease is live is refused (409): with
the group's token alone, a second agent could otherwise take over a running worker's jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hrw_api.times import parse_time

from .refusals import ProxyError


def check_worker_name_free(worker: str, lease: Mapping[str, Any] | None, now: datetime) -> None:
    """Registration may not take the name of a live worker: with the group's token alone, a second
    agent could otherwise replace a running worker's credential and take over the jobs it holds.
    An agent that lost its state dir registers again once its old Lease has lapsed."""
    spec = (lease or {}).get("spec") or {}
    renewed = parse_time(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(duration, int):
        return
    ago = max(0.0, (now - renewed).total_seconds())
    left = duration - ago
    if left > 0:
        raise ProxyError(409, f"worker {worker!r} is live (its Lease was renewed {ago:.0f}s ago): a second agent "
                              f"cannot take its name. Stop that agent, or register again in {left:.0f}s when its "
                              f"Lease has lapsed, or choose another worker name", reason="AlreadyExists")
