"""deploy/rbac grants enough: the operator running as the hrw-operator ServiceAccount (not admin),
with its Role (deploy/rbac/per-namespace/operator.yaml) in the test's namespace only and its
read-only discovery ClusterRole (deploy/rbac/operator.yaml), validates and queues a job, writes
statuses, creates the registration Secret and posts Events, and kopf finds nothing forbidden."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from hrw_api import names
from hrw_api.kubeclient import ASSETS, LEASES, RUNBOOK_JOBS, RUNBOOK_SCHEDULES, WORKER_GROUPS
from hrw_api.times import format_time
from hrw_dev.stack import grant_namespace
from tests.support import async_wait_until, wait_until

from .conftest import Kit, ready

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "operator.yaml"
ROLE = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "per-namespace" / "operator.yaml"


def operator_kubeconfig(cluster, directory: Path, namespace: str) -> Path:
    if cluster.kubectl_run("get", "namespace", "hrw-system").returncode != 0:
        cluster.kubectl("create", "namespace", "hrw-system")
    cluster.kubectl("apply", "-f", str(RBAC))
    grant_namespace(cluster, namespace, ROLE, "hrw-operator")
    token = wait_until(lambda: cluster.kubectl_run("create", "token", "hrw-operator", "-n", "hrw-system",
                                                   "--duration=1h").stdout.strip(),
                       timeout=30, message="a token for hrw-system/hrw-operator")
    entry = {"server": cluster.server}
    if cluster.ca_path is not None:
        entry["certificate-authority"] = str(cluster.ca_path)
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "hrw", "cluster": entry}],
              "users": [{"name": "op", "user": {"token": token}}],
              "contexts": [{"name": "op", "context": {"cluster": "hrw", "user": "op"}}], "current-context": "op"}
    path = directory / "operator.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    return path


async def test_operator_works_as_its_own_least_privilege_service_account(kit: Kit, processes, cluster,
                                                                         tmp_path: Path) -> None:
    kubeconfig = operator_kubeconfig(cluster, tmp_path, kit.namespace)
    proc = processes.start("hrw-operator", "--namespace", kit.namespace, "--kubeconfig", str(kubeconfig),
                           "--log-format", "json", name="hrw-operator-sa")
    proc.wait_for_log(r"operator\.started", timeout=30)
    await kit.secret("s", {"password": "pw-value-never-logged"})
    await kit.asset("cred", {"type": "Credential", "username": "u",
                             "passwordFrom": {"secretKeyRef": {"name": "s", "key": "password"}}})
    await kit.runbook("rb", assets=["cred"])
    await kit.group("pool", registration={"groupToken": True})  # the operator creates its token Secret
    await kit.job("j", "rb", "pool")
    await kit.wait_phase("j", "Queued")
    await kit.wait_event("j", "NoCapableWorker")  # the group has no workers yet
    asset = await kit.admin.get(ASSETS.path(kit.namespace, "cred"))
    assert ready(asset["status"])["status"] == "True"
    await kit.wait_status(WORKER_GROUPS.path(kit.namespace, "pool"), lambda s: s.get("registrationTokenSecret"))
    logs = proc.logs()
    assert "Forbidden" not in logs and not re.search(r"\b403\b", logs), logs[-2000:]  # not a timestamp's digits
    assert "Not enough permissions" not in logs, logs[-2000:]  # kopf's fallback without discovery
    assert "pw-value-never-logged" not in logs


async def test_operator_runs_a_schedule_as_its_own_service_account(kit: Kit, processes, cluster,
                                                                   tmp_path: Path) -> None:
    """Create a job, cancel the one it replaces, delete it past the history limit, write the
    schedule's status and post its Events: every verb the schedule rules of the Role grant."""
    kubeconfig = operator_kubeconfig(cluster, tmp_path, kit.namespace)
    proc = processes.start("hrw-operator", "--namespace", kit.namespace, "--kubeconfig", str(kubeconfig),
                           "--log-format", "json", name="hrw-operator-sa")
    proc.wait_for_log(r"operator\.started", timeout=30)
    await kit.runbook("rb")
    await kit.group("pool")
    path = RUNBOOK_SCHEDULES.path(kit.namespace, "replacing")
    created = await kit.admin.create(RUNBOOK_SCHEDULES.path(kit.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_SCHEDULE, "metadata": {"name": "replacing"},
        "spec": {"schedule": "* * * * *", "suspend": True, "concurrencyPolicy": "Replace",
                 "failedJobsHistoryLimit": 0, "jobTemplate": {"runbookRef": {"name": "rb"}, "workerGroup": "pool"}}})
    await kit.wait_status(path, lambda s: (ready(s) or {}).get("reason") == "Suspended")
    owner = {"apiVersion": names.API_VERSION, "kind": names.RUNBOOK_SCHEDULE, "name": "replacing",
             "uid": created["metadata"]["uid"], "controller": True}
    await kit.admin.create(RUNBOOK_JOBS.path(kit.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB,
        "metadata": {"name": "older-run", "labels": {names.LABEL_SCHEDULE: "replacing"}, "ownerReferences": [owner]},
        "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "pool"}})
    await kit.wait_phase("older-run", "Queued")
    await kit.admin.patch(RUNBOOK_SCHEDULES.path(kit.namespace, "replacing", "status"),
                          {"status": {"lastScheduleTime": format_time(datetime.now(UTC) - timedelta(hours=1))}})
    await kit.admin.patch(path, {"spec": {"suspend": False}})

    async def replaced() -> list[str] | None:
        listed = await kit.admin.list(RUNBOOK_JOBS.path(kit.namespace),
                                      labelSelector=f"{names.LABEL_SCHEDULE}=replacing")
        found = [j["metadata"]["name"] for j in listed["items"]]
        return found if found and "older-run" not in found else None

    await async_wait_until(replaced, timeout=30, message="the older run cancelled, deleted and replaced")
    await kit.wait_event("replacing", "Created")
    logs = proc.logs()
    assert "Forbidden" not in logs and not re.search(r"\b403\b", logs), logs[-2000:]  # not a timestamp's digits


async def test_operator_elects_itself_on_its_lease_in_hrw_system_as_its_service_account(
        kit: Kit, processes, cluster, tmp_path: Path) -> None:
    """deploy/rbac/operator.yaml's leader-election Role: create, renew and release hrw-system/hrw-operator."""
    kubeconfig = operator_kubeconfig(cluster, tmp_path, kit.namespace)
    proc = processes.start("hrw-operator", "--namespace", kit.namespace, "--kubeconfig", str(kubeconfig),
                           "--leader-elect", "--leader-elect-resource-namespace", "hrw-system",
                           "--leader-elect-retry-period", "1", name="hrw-operator-sa-elected")
    proc.wait_for_log(r"operator\.started", timeout=60)
    lease = await kit.admin.get(LEASES.path("hrw-system", "hrw-operator"))
    assert lease["spec"]["holderIdentity"].endswith(f"-{proc.pid}")
    renewed = lease["spec"]["renewTime"]

    async def renewed_again() -> bool:
        return (await kit.admin.get(LEASES.path("hrw-system", "hrw-operator")))["spec"]["renewTime"] != renewed

    await async_wait_until(renewed_again, timeout=30, message="the leader renews its Lease")
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.job("j", "rb", "pool")
    await kit.wait_phase("j", "Queued")
    assert proc.stop(timeout=30) == 0
    released = await kit.admin.get(LEASES.path("hrw-system", "hrw-operator"))
    assert not released["spec"].get("holderIdentity")
    logs = proc.logs()
    assert "Forbidden" not in logs and not re.search(r"\b403\b", logs), logs[-2000:]


async def test_a_leader_that_cannot_renew_exits_at_its_renew_deadline(kit: Kit, processes, cluster,
                                                                     tmp_path: Path) -> None:
    """Renewals refused (its leader-election RoleBinding deleted): the leader stops acting by exiting,
    code 1, once the renew deadline passed, before its Lease could be taken over."""
    kubeconfig = operator_kubeconfig(cluster, tmp_path, kit.namespace)
    proc = processes.start("hrw-operator", "--namespace", kit.namespace, "--kubeconfig", str(kubeconfig),
                           "--leader-elect", "--leader-elect-resource-namespace", "hrw-system",
                           "--leader-elect-lease-duration", "8", "--leader-elect-renew-deadline", "5",
                           "--leader-elect-retry-period", "1", name="hrw-operator-sa-cut-off")
    try:
        proc.wait_for_log(r"operator\.started", timeout=60)
        cluster.kubectl("delete", "rolebinding", "hrw-operator-leader-election", "-n", "hrw-system")
        assert proc.wait(timeout=60) == 1
        logs = proc.logs()
        assert re.search(r"leader\.renew_failed\b.*Forbidden", logs), logs[-2000:]
        assert re.search(r"leader\.lost\b.*renew deadline passed", logs), logs[-2000:]
    finally:
        cluster.kubectl("apply", "-f", str(RBAC))  # the binding back, for the tests after this one
