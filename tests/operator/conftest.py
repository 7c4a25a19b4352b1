"""Fixtures of the operator's tests: the real `hrw-operator` process scoped to the test's
namespace, an admin KubeClient, and a small kit to create objects and wait for their status.

Agents are played by the test itself with the contract's patch builders (`patches.claim`,
`patches.finish`) and Leases written as admin: the operator is tested alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from hrw_api import names, patches
from hrw_api.errors import NotFound
from hrw_api.kubeclient import (
    ASSETS,
    CONFIG_MAPS,
    EVENTS,
    LEASES,
    RUNBOOK_JOBS,
    RUNBOOKS,
    SECRETS,
    WORKER_GROUPS,
    KubeClient,
)
from hrw_api.phases import JobPhase, Reason
from tests.support import ManagedProcess, ProcessFactory, async_wait_until

JSON = dict[str, Any]


def micro_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def start_operator(processes: ProcessFactory, cluster: Any, namespace: str, name: str = "hrw-operator"
                   ) -> ManagedProcess:
    proc = processes.start("hrw-operator", "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig_path),
                           "--verbose", name=name)
    proc.wait_for_log(r"operator\.started", timeout=30)
    return proc


@pytest.fixture
async def admin(cluster, crds) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(cluster.kubeconfig_path, user_agent="hrw-test") as client:
        yield client


@pytest.fixture
def operator(processes: ProcessFactory, cluster, crds, namespace: str) -> ManagedProcess:
    return start_operator(processes, cluster, namespace)


@dataclass
class Kit:
    """Create hrw objects in one namespace and wait for what the operator makes of them."""

    namespace: str
    admin: KubeClient

    # -- objects

    async def runbook(self, name: str, *, content: str | None = "echo hi\n", interpreter: str = "bash",
                      parameters: list[JSON] | None = None, assets: list[str] | None = None,
                      timeout_seconds: int | None = None, configmap: tuple[str, str] | None = None,
                      signature: JSON | None = None, run_as: JSON | None = None) -> JSON:
        spec: JSON = {"interpreter": interpreter}
        if configmap is not None:
            spec["contentFrom"] = {"configMapKeyRef": {"name": configmap[0], "key": configmap[1]}}
        else:
            spec["content"] = content
        if parameters:
            spec["parameters"] = parameters
        if assets:
            spec["assets"] = assets
        if timeout_seconds:
            spec["timeoutSeconds"] = timeout_seconds
        if signature:
            spec["signature"] = signature
        if run_as:
            spec["runAs"] = run_as
        return await self.admin.create(RUNBOOKS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK, "metadata": {"name": name}, "spec": spec})

    async def group(self, name: str, **spec: Any) -> JSON:
        return await self.admin.create(WORKER_GROUPS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "metadata": {"name": name}, "spec": spec})

    async def asset(self, name: str, spec: JSON) -> JSON:
        return await self.admin.create(ASSETS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.ASSET, "metadata": {"name": name}, "spec": spec})

    async def secret(self, name: str, data: dict[str, str], type_: str = "Opaque") -> JSON:
        return await self.admin.create(SECRETS.path(self.namespace), {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": type_, "stringData": data})

    async def configmap(self, name: str, data: dict[str, str]) -> JSON:
        return await self.admin.create(CONFIG_MAPS.path(self.namespace), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})

    async def job(self, name: str, runbook: str, group: str, **spec: Any) -> JSON:
        body: JSON = {"runbookRef": {"name": runbook}, "workerGroup": group, **spec}
        return await self.admin.create(RUNBOOK_JOBS.path(self.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB, "metadata": {"name": name}, "spec": body})

    async def lease(self, group: str, worker: str, *, duration: int = 30, renew: datetime | None = None,
                    hostname: str = "host-1", interpreters: str = "bash,sh,python3") -> JSON:
        """Create or renew a worker's Lease as the agent would (admin here)."""
        name = names.lease_name(group, worker)
        body: JSON = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": name,
                "labels": {names.LABEL_WORKER_GROUP: group, names.LABEL_WORKER: worker},
                "annotations": {names.ANNOTATION_HOSTNAME: hostname, names.ANNOTATION_AGENT_VERSION: "0.1.0",
                                names.ANNOTATION_INTERPRETERS: interpreters, names.ANNOTATION_CAPACITY: "2"},
            },
            "spec": {"holderIdentity": worker, "leaseDurationSeconds": duration,
                     "renewTime": micro_time(renew), "acquireTime": micro_time(renew)},
        }
        try:
            current = await self.admin.get(LEASES.path(self.namespace, name))
        except NotFound:
            return await self.admin.create(LEASES.path(self.namespace), body)
        return await self.admin.patch(LEASES.path(self.namespace, name),
                                      {"spec": {"renewTime": micro_time(renew), "leaseDurationSeconds": duration},
                                       "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}})

    # -- acting as an agent

    async def claim_and_start(self, job: str, worker: str, attempt: int = 1) -> JSON:
        """The agent's claim, which is its start (Queued -> Running)."""
        return await self.admin.patch(RUNBOOK_JOBS.path(self.namespace, job, "status"),
                                      patches.claim(attempt, worker), json_patch=True)

    async def succeed(self, job: str, worker: str, attempt: int = 1) -> JSON:
        result = patches.JobResult(JobPhase.SUCCEEDED, Reason.COMPLETED, "exit code 0", exit_code=0)
        return await self.admin.patch(RUNBOOK_JOBS.path(self.namespace, job, "status"),
                                      patches.finish(attempt, worker, result), json_patch=True)

    # -- reading and waiting

    async def get_job(self, name: str) -> JSON:
        return await self.admin.get(RUNBOOK_JOBS.path(self.namespace, name))

    async def wait_job(self, name: str, predicate: Callable[[JSON], bool], *, timeout: float = 30,  # noqa: ASYNC109
                       message: str = "") -> JSON:
        async def check() -> JSON | None:
            job = await self.get_job(name)
            return job if predicate(job.get("status") or {}) else None

        return await async_wait_until(check, timeout=timeout, interval=0.1,
                                      message=message or f"job {name} to reach the expected status")

    async def wait_phase(self, name: str, phase: str, *, timeout: float = 30) -> JSON:  # noqa: ASYNC109
        return await self.wait_job(name, lambda s: s.get("phase") == phase, timeout=timeout,
                                   message=f"job {name} to reach phase {phase}")

    async def wait_status(self, path: str, predicate: Callable[[JSON], bool], *, timeout: float = 30,  # noqa: ASYNC109
                          message: str = "the status") -> JSON:
        async def check() -> JSON | None:
            obj = await self.admin.get(path)
            return obj if predicate(obj.get("status") or {}) else None

        return await async_wait_until(check, timeout=timeout, interval=0.1, message=message)

    async def events_of(self, name: str) -> list[JSON]:
        listed = await self.admin.list(EVENTS.path(self.namespace), fieldSelector=f"regarding.name={name}")
        return sorted(listed.get("items") or [], key=lambda e: e.get("eventTime") or "")

    async def wait_event(self, name: str, reason: str, *, timeout: float = 30) -> JSON:  # noqa: ASYNC109
        async def check() -> JSON | None:
            return next((e for e in await self.events_of(name) if e.get("reason") == reason), None)

        return await async_wait_until(check, timeout=timeout, message=f"an Event {reason} about {name}")


def ready(status: JSON) -> JSON | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)


@pytest.fixture
async def kit(admin: KubeClient, namespace: str) -> Kit:
    return Kit(namespace, admin)
