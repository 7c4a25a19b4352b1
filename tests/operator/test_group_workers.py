"""A group's workers in its status, from their Leases, with Leases written as admin (what slips
past the proxy): a bad value marks only its own entry, the others keep working; Events on join,
missing, back, outdated and leave; missing workers forgotten; errors shown without a write per renewal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES, WORKER_GROUPS
from tests.support import ManagedProcess, ProcessFactory

from .conftest import Kit, micro_time

GROUP = "pool"


def start_operator(processes: ProcessFactory, cluster: Any, namespace: str) -> ManagedProcess:
    proc = processes.start("hrw-operator", "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig_path),
                           "--verbose", "--forget-missing-workers-after", "4", "--worker-status-refresh", "1",
                           name="hrw-operator")
    proc.wait_for_log(r"operator\.started", timeout=30)
    return proc


async def put_lease(kit: Kit, worker: str, annotations: dict[str, str], *, duration: int = 10,
                    name: str | None = None) -> None:
    """Create or renew (as admin, past the proxy) a worker's Lease with these annotations."""
    name = name or names.lease_name(GROUP, worker)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "labels": {names.LABEL_WORKER_GROUP: GROUP, names.LABEL_WORKER: worker},
                         "annotations": annotations},
            "spec": {"holderIdentity": worker, "leaseDurationSeconds": duration, "renewTime": micro_time()}}
    try:
        await kit.admin.get(LEASES.path(kit.namespace, name))
    except NotFound:
        await kit.admin.create(LEASES.path(kit.namespace), body)
        return
    await kit.admin.patch(LEASES.path(kit.namespace, name), {"metadata": {"annotations": annotations},
                                                             "spec": {"renewTime": micro_time()}})


GOOD = {names.ANNOTATION_HOSTNAME: "srv-1", names.ANNOTATION_AGENT_VERSION: "0.1.0",
        names.ANNOTATION_INTERPRETERS: "bash,sh", names.ANNOTATION_CAPACITY: "2",
        names.ANNOTATION_PLATFORM: "Linux-6.1-x86_64; CPython 3.12.3"}


def entries(group: dict) -> dict[str, dict]:
    return {w["name"]: w for w in (group.get("status") or {}).get("workers") or []}


async def test_a_bad_value_in_one_lease_marks_only_its_entry_and_the_others_become_ready_within_a_lease_period(
        kit: Kit, processes: ProcessFactory, cluster, crds) -> None:
    operator = start_operator(processes, cluster, kit.namespace)
    await kit.group(GROUP, leaseDurationSeconds=10)
    path = WORKER_GROUPS.path(kit.namespace, GROUP)
    await kit.wait_status(path, lambda s: s.get("observedGeneration"))  # the operator has seen the group
    await put_lease(kit, "w1", GOOD)
    # Values the proxy refuses, written straight to the Leases: out of range, ill-typed, a terminal
    # escape, and a Lease that names w1 but is not w1's.
    await put_lease(kit, "bad-capacity", {**GOOD, names.ANNOTATION_CAPACITY: "99999999999"})
    await put_lease(kit, "bad-host", {**GOOD, names.ANNOTATION_HOSTNAME: "srv\x1b]0;pwned\x07"})
    await put_lease(kit, "w1", {**GOOD, names.ANNOTATION_HOSTNAME: "impostor"}, name="impostor-of-w1")
    started = datetime.now(UTC)
    await put_lease(kit, "w2", GOOD)

    group = await kit.wait_status(path, lambda s: s.get("readyWorkers") == 2 and len(s.get("workers") or []) == 4,
                                  timeout=10, message="w1 and w2 ready, the bad ones listed, within a lease period")
    assert (datetime.now(UTC) - started).total_seconds() < 10
    workers = entries(group)
    assert sorted(workers) == ["bad-capacity", "bad-host", "w1", "w2"]
    for bad, field in (("bad-capacity", names.ANNOTATION_CAPACITY), ("bad-host", names.ANNOTATION_HOSTNAME)):
        assert workers[bad]["ready"] is False and workers[bad]["reason"] == "InvalidLease"
        assert field in workers[bad]["message"]
    assert workers["w1"]["hostname"] == "srv-1" and workers["w1"]["reason"] == "Ready"
    assert workers["w2"]["platform"] == "Linux-6.1-x86_64; CPython 3.12.3"
    assert "\x1b" not in str(group["status"])
    await kit.wait_event(GROUP, "WorkerLeaseInvalid")

    # A fix of the bad value heals that entry; a third good worker still joins at once.
    await put_lease(kit, "bad-capacity", GOOD)
    await put_lease(kit, "w3", GOOD)
    await kit.wait_status(path, lambda s: s.get("readyWorkers") == 4, timeout=10, message="healed and joined")
    assert "reconcile_failed" not in operator.logs()


async def test_workers_join_go_missing_come_back_turn_outdated_and_are_forgotten_with_events(
        kit: Kit, processes: ProcessFactory, cluster, crds) -> None:
    start_operator(processes, cluster, kit.namespace)
    await kit.group(GROUP, leaseDurationSeconds=10)
    path = WORKER_GROUPS.path(kit.namespace, GROUP)
    await kit.wait_status(path, lambda s: s.get("observedGeneration"))  # the operator has seen the group
    await put_lease(kit, "steady", GOOD, duration=60)
    await put_lease(kit, "flaky", GOOD, duration=2)
    await kit.wait_status(path, lambda s: s.get("readyWorkers") == 2, message="two workers joined")
    await kit.wait_event(GROUP, "WorkerJoined")

    group = await kit.wait_status(path, lambda s: entries({"status": s}).get("flaky", {}).get("reason") == "Missing",
                                  timeout=15, message="flaky missing")
    assert entries(group)["flaky"]["lastHeartbeatTime"]
    await kit.wait_event(GROUP, "WorkerMissing")
    await put_lease(kit, "flaky", GOOD, duration=2)
    await kit.wait_event(GROUP, "WorkerBack")

    # Its last error reaches the status within the refresh period (1 s here), without a state change.
    error = {names.ANNOTATION_LAST_ERROR: "renewing the Lease failed: ConnectError",
             names.ANNOTATION_LAST_ERROR_TIME: "2026-11-25T12:00:00Z", names.ANNOTATION_RUNNING_JOBS: "1"}
    await put_lease(kit, "steady", {**GOOD, **error}, duration=60)
    group = await kit.wait_status(path, lambda s: entries({"status": s})["steady"].get("lastError"), timeout=10,
                                  message="steady's last error shown")
    assert entries(group)["steady"]["runningJobs"] == 1

    # flaky stops for good: missing, then forgotten 4 s after its Lease expired (its Lease stays).
    await kit.wait_status(path, lambda s: "flaky" not in entries({"status": s}), timeout=20,
                          message="flaky forgotten")
    await kit.wait_event(GROUP, "WorkerLeft")
    await kit.admin.get(LEASES.path(kit.namespace, names.lease_name(GROUP, "flaky")))

    # A minimum agent version above steady's 0.1.0: outdated, not ready, an Event says so.
    await kit.admin.patch(path, {"spec": {"minAgentVersion": "0.2.0"}})
    group = await kit.wait_status(path, lambda s: entries({"status": s})["steady"].get("reason") == "Outdated",
                                  message="steady outdated")
    steady = entries(group)["steady"]
    assert steady["ready"] is False and steady["outdated"] is True and "0.2.0" in steady["message"]
    assert group["status"]["readyWorkers"] == 0
    await kit.wait_event(GROUP, "WorkerOutdated")
