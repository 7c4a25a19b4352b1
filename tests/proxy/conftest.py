"""Fixtures of the proxy's tests: one proxy for the session (as its own ServiceAccount), and per test a
namespace with two worker groups, registered workers, runbooks, assets and a way to queue jobs.

Jobs are queued by the test itself as admin with `patches.queue` (what the operator does), so the
proxy is tested on its own: no operator runs here.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hrw_api import content_digest, names, patches
from hrw_api.kubeclient import ASSETS, CONFIG_MAPS, RUNBOOK_JOBS, RUNBOOKS, SECRETS, WORKER_GROUPS, KubeClient
from tests.support.processes import ProcessFactory
from tests.support.proxy import (
    ProxyTLS,
    RunningProxy,
    create_registration_secret,
    grant_proxy,
    register_worker,
    start_proxy,
)

INLINE_SCRIPT = "echo hello from the inline runbook\n"
CONFIGMAP_SCRIPT = "print('hello from a ConfigMap')\n"
# Generous: most tests are about rules, not limits (the limits have their own proxy).
SHARED_PROXY_ARGS = ("--rate-limit-rps", "200", "--rate-limit-burst", "400", "--credential-cache-ttl", "1")


@pytest.fixture(scope="session")
def proxy(session_processes: ProcessFactory, proxy_sa_kubeconfig: Path, tls: ProxyTLS) -> RunningProxy:
    return start_proxy(session_processes, proxy_sa_kubeconfig, tls, *SHARED_PROXY_ARGS, name="hrw-proxy-shared")


@pytest.fixture
async def admin(cluster) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(cluster.kubeconfig_path) as client:
        yield client


@dataclass
class World:
    """A namespace with groups g1 (workers w1, w2) and g2 (worker x1), runbooks and assets."""

    namespace: str
    admin: KubeClient
    proxy: RunningProxy
    tokens: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)

    def client(self, worker: str) -> KubeClient:
        return self.proxy.client(self.credentials[worker])

    async def create_job(self, name: str, group: str, *, runbook: str = "rb-inline",
                         retry: dict[str, Any] | None = None, queue: bool = True) -> dict[str, Any]:
        spec: dict[str, Any] = {"runbookRef": {"name": runbook}, "workerGroup": group, "parameters": {}}
        if retry is not None:
            spec["retryPolicy"] = retry
        job = await self.admin.create(RUNBOOK_JOBS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB,
            "metadata": {"name": name, "namespace": self.namespace}, "spec": spec})
        if queue:
            digest = content_digest(INLINE_SCRIPT if runbook == "rb-inline" else CONFIGMAP_SCRIPT)
            job = await self.admin.patch(RUNBOOK_JOBS.path(self.namespace, name, "status"),
                                         patches.queue(job["metadata"]["resourceVersion"], digest,
                                                       job["metadata"]["generation"]), json_patch=True)
        return job

    async def job(self, name: str) -> dict[str, Any]:
        return await self.admin.get(RUNBOOK_JOBS.path(self.namespace, name))

    async def claim(self, job: str, worker: str, attempt: int = 1) -> dict[str, Any]:
        async with self.client(worker) as kube:
            return await kube.patch(RUNBOOK_JOBS.path(self.namespace, job, "status"),
                                    patches.claim(attempt, worker), json_patch=True)


async def _create(admin: KubeClient, path: str, obj: dict[str, Any]) -> None:
    await admin.create(path, obj)


@pytest.fixture
async def world(cluster, crds, namespace: str, admin: KubeClient, proxy: RunningProxy) -> World:
    ns = namespace
    grant_proxy(cluster, ns)
    hrw = {"apiVersion": names.API_VERSION}
    for group in ("g1", "g2"):
        await _create(admin, WORKER_GROUPS.path(ns), {**hrw, "kind": names.WORKER_GROUP,
                                                      "metadata": {"name": group},
                                                      "spec": {"outputLimitBytes": 4 * 65536,
                                                               "registration": {"groupToken": True}}})
    await _create(admin, SECRETS.path(ns), {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "data": {"password": base64.b64encode(b"s3cret-pw").decode()}})
    await _create(admin, ASSETS.path(ns), {**hrw, "kind": names.ASSET, "metadata": {"name": "greeting"},
                                           "spec": {"type": "Variable", "value": "Hello"}})
    await _create(admin, ASSETS.path(ns), {**hrw, "kind": names.ASSET, "metadata": {"name": "db"},
                                           "spec": {"type": "Credential", "username": "app",
                                                    "passwordFrom": {"secretKeyRef": {"name": "db",
                                                                                      "key": "password"}}}})
    await _create(admin, RUNBOOKS.path(ns), {**hrw, "kind": names.RUNBOOK, "metadata": {"name": "rb-inline"},
                                             "spec": {"interpreter": "bash", "content": INLINE_SCRIPT,
                                                      "assets": ["greeting", "db"]}})
    await _create(admin, CONFIG_MAPS.path(ns), {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "script"}, "data": {"run.py": CONFIGMAP_SCRIPT}})
    await _create(admin, RUNBOOKS.path(ns), {**hrw, "kind": names.RUNBOOK, "metadata": {"name": "rb-cm"},
                                             "spec": {"interpreter": "python3",
                                                      "contentFrom": {"configMapKeyRef": {"name": "script",
                                                                                          "key": "run.py"}}}})
    result = World(ns, admin, proxy)
    for group in ("g1", "g2"):
        result.tokens[group] = create_registration_secret(cluster, ns, group)
    for worker, group in (("w1", "g1"), ("w2", "g1"), ("x1", "g2")):
        result.credentials[worker] = register_worker(proxy, ns, group, worker, result.tokens[group])
    return result
