"""The worker's heartbeat: its `WorkerLease`, renewed through the proxy.

The operator reads the Leases of a group to know which workers live (and requeues the jobs of
a worker whose Lease lapsed); the Lease's `WorkerInfo` carries what the group's status shows
about each worker (hostname, agent version, platform, interpreters, capacity, running jobs,
draining, last error, labels) and its report on the group's configuration (`compliance`).
Renewed every third of the lease duration, so two renewals can fail before the worker counts as
lost.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import replace

from hrw_api import ComplianceReport, WorkerInfo, WorkerLease, names
from hrw_api.errors import NotFound
from hrw_api.lease import MAX_CAPACITY
from hrw_api.times import now

from . import __version__
from .client import ProxyClient
from .health import Health, describe_platform


def worker_lease(client: ProxyClient, *, duration_seconds: int, interpreters: Sequence[str], capacity: int,
                 draining: bool, running_jobs: int = 0, health: Health | None = None,
                 compliance: ComplianceReport | None = None,
                 labels: Mapping[str, str] | None = None) -> WorkerLease:
    """This worker's Lease as of now."""
    health = health or Health()
    return WorkerLease(
        name=names.lease_name(client.group, client.worker), namespace=client.namespace, group=client.group,
        worker=client.worker, duration_seconds=duration_seconds, renew_time=now(),
        info=WorkerInfo(hostname=socket.gethostname()[:253], agent_version=__version__,
                        interpreters=tuple(interpreters), capacity=capacity, draining=draining,
                        platform=describe_platform(), running_jobs=min(running_jobs, MAX_CAPACITY),
                        last_error=health.last_error, last_error_time=health.last_error_time,
                        compliance=compliance, labels=dict(labels or {})),
    )


async def renew(client: ProxyClient, *, duration_seconds: int, interpreters: Sequence[str], capacity: int,
                draining: bool, running_jobs: int = 0, health: Health | None = None,
                compliance: ComplianceReport | None = None,
                labels: Mapping[str, str] | None = None) -> None:
    """Renew (merge patch) the Lease, creating it the first time."""
    lease = worker_lease(client, duration_seconds=duration_seconds, interpreters=interpreters, capacity=capacity,
                         draining=draining, running_jobs=running_jobs, health=health, compliance=compliance,
                         labels=labels)
    try:
        await client.renew_lease(lease)
    except NotFound:
        await client.create_lease(replace(lease, acquire_time=lease.renew_time))
