"""The worker's heartbeat: a coordination.k8s.io/v1 Lease renewed through the proxy.

The operator reads the Leases of a group to know which workers live (and requeues the jobs of
a worker whose Lease lapsed); the annotations carry what the group's status shows about each
worker (hostname, agent version, interpreters, capacity, draining). Renewed every third of
the lease duration, so two renewals can fail before the worker counts as lost.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hrw_api import names
from hrw_api.errors import NotFound

from . import __version__
from .client import ProxyClient


def micro_time(moment: datetime | None = None) -> str:
    """A `metav1.MicroTime`: `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(*, namespace: str, group: str, worker: str, duration_seconds: int, interpreters: Sequence[str],
               capacity: int, draining: bool, now: str | None = None, acquire: bool = False) -> dict[str, Any]:
    stamp = now or micro_time()
    spec: dict[str, Any] = {"holderIdentity": worker, "leaseDurationSeconds": duration_seconds, "renewTime": stamp}
    if acquire:
        spec["acquireTime"] = stamp
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": names.lease_name(group, worker),
            "namespace": namespace,
            "labels": {names.LABEL_WORKER_GROUP: group, names.LABEL_WORKER: worker,
                       names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "annotations": {
                names.ANNOTATION_HOSTNAME: socket.gethostname(),
                names.ANNOTATION_AGENT_VERSION: __version__,
                names.ANNOTATION_INTERPRETERS: ",".join(interpreters),
                names.ANNOTATION_CAPACITY: str(capacity),
                names.ANNOTATION_DRAINING: "true" if draining else "false",
            },
        },
        "spec": spec,
    }


async def renew(client: ProxyClient, *, duration_seconds: int, interpreters: Sequence[str], capacity: int,
                draining: bool) -> None:
    """Renew (merge patch) the Lease, creating it the first time."""
    body = lease_body(namespace=client.namespace, group=client.group, worker=client.worker,
                      duration_seconds=duration_seconds, interpreters=interpreters, capacity=capacity,
                      draining=draining)
    name = names.lease_name(client.group, client.worker)
    try:
        await client.patch_lease(name, {"metadata": {"labels": body["metadata"]["labels"],
                                                     "annotations": body["metadata"]["annotations"]},
                                        "spec": body["spec"]})
    except NotFound:
        body["spec"]["acquireTime"] = body["spec"]["renewTime"]
        await client.create_lease(body)
