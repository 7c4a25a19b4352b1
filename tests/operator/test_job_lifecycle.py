"""After a job is queued the operator owns its timers and its end: queue timeout, cancel, loss
of the claimer, the batch-style conditions of an agent's result, and ttlSecondsAfterFinished."""

from __future__ import annotations

import asyncio
import json

from hrw_api.errors import NotFound
from hrw_api.kubeclient import WORKER_GROUPS
from tests.support import async_wait_until

from .conftest import Kit


async def _queued(kit: Kit, name: str, **spec) -> dict:
    await kit.job(name, "rb", "pool", **spec)
    return await kit.wait_phase(name, "Queued")


async def test_job_nobody_claims_times_out_in_the_queue(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await _queued(kit, "lonely", queueTimeoutSeconds=2)
    job = await kit.wait_phase("lonely", "TimedOut", timeout=15)
    assert job["status"]["reason"] == "QueueTimeout"
    assert "2s" in job["status"]["message"] and "'pool'" in job["status"]["message"]
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]} == {"Failed": "True"}
    await kit.wait_event("lonely", "TimedOut")


async def test_cancel_ends_a_queued_and_a_running_job_as_cancelled(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1")
    await _queued(kit, "waiting")
    await _queued(kit, "busy")
    await kit.claim_and_start("busy", "w1")
    for name in ("waiting", "busy"):
        await kit.admin.patch(f"/apis/hrw.dev/v1alpha1/namespaces/{kit.namespace}/runbookjobs/{name}",
                              {"spec": {"cancel": True}})
    waiting = await kit.wait_phase("waiting", "Cancelled")
    busy = await kit.wait_phase("busy", "Cancelled")
    assert waiting["status"]["message"] == "cancelled while queued"
    assert "w1" in busy["status"]["message"]
    assert busy["status"]["reason"] == "Cancelled"
    await kit.wait_event("busy", "Cancelled")


async def test_lost_worker_requeues_the_job_or_fails_it_when_no_attempt_is_left(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool", leaseDurationSeconds=10)
    await kit.lease("pool", "w1", duration=3)
    await _queued(kit, "retried")
    await _queued(kit, "single", retryPolicy={"maxAttempts": 1})
    await kit.claim_and_start("retried", "w1")
    await kit.claim_and_start("single", "w1")
    # w1 stops renewing: its Lease lapses 3 s after the last renewal.
    retried = await kit.wait_job("retried", lambda s: s.get("attempt") == 2, timeout=20)
    assert retried["status"]["phase"] == "Queued"
    assert retried["status"]["reason"] == "Requeued"
    assert "claim" not in retried["status"] and "startTime" not in retried["status"]
    assert "w1" in retried["status"]["message"]
    single = await kit.wait_phase("single", "Failed", timeout=20)
    assert single["status"]["reason"] == "WorkerLost"
    assert single["status"]["attempt"] == 1
    await kit.wait_event("retried", "Requeued")
    await kit.wait_event("single", "WorkerLost")


async def test_a_claimer_that_keeps_renewing_keeps_its_job(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1", duration=2)
    await _queued(kit, "steady")
    await kit.claim_and_start("steady", "w1")
    for _ in range(8):  # ~4 s: twice the Lease duration
        await kit.lease("pool", "w1", duration=2)
        await asyncio.sleep(0.5)  # the agent's renewal period, not a wait for a result
    job = await kit.get_job("steady")
    assert (job["status"]["phase"], job["status"]["attempt"]) == ("Running", 1)


async def test_kubectl_wait_for_condition_complete_returns_after_success(kit: Kit, operator, cluster) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1")
    await _queued(kit, "done")
    await kit.claim_and_start("done", "w1")
    await kit.succeed("done", "w1")
    out = await asyncio.to_thread(cluster.kubectl, "wait", "-n", kit.namespace, "--for=condition=Complete",
                                  "runbookjob/done", "--timeout=30s")
    assert "condition met" in out


async def test_finished_job_is_deleted_after_its_ttl(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1")
    await _queued(kit, "short-lived", ttlSecondsAfterFinished=1)
    await kit.claim_and_start("short-lived", "w1")
    await kit.succeed("short-lived", "w1")

    async def gone() -> bool:
        try:
            await kit.get_job("short-lived")
        except NotFound:
            return True
        return False

    await async_wait_until(gone, timeout=20, message="the finished job to be deleted by its TTL")


async def test_a_groups_default_ttl_deletes_its_finished_jobs_without_one_and_a_jobs_own_ttl_wins(
        kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool", jobDefaults={"ttlSecondsAfterFinished": 1})
    await kit.lease("pool", "w1")
    await _queued(kit, "own-ttl", ttlSecondsAfterFinished=3600)
    await _queued(kit, "defaulted")
    for name in ("own-ttl", "defaulted"):  # its own TTL's job ends first: the default would delete it first
        await kit.claim_and_start(name, "w1")
        await kit.succeed(name, "w1")

    async def gone() -> bool:
        try:
            await kit.get_job("defaulted")
        except NotFound:
            return True
        return False

    await async_wait_until(gone, timeout=20, message="the finished job deleted by its group's default TTL")
    kept = await kit.get_job("own-ttl")
    assert kept["status"]["phase"] == "Succeeded", "a job's own TTL wins over its group's default"


async def test_operator_writes_one_job_exactly_twice_from_create_to_succeeded(kit: Kit, operator) -> None:
    """Bookkeeping writes must not creep in: the queue patch and the Complete condition, nothing else,
    and no Event on the success path (its status shows each step)."""
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1")
    # A ready worker that can run it: otherwise the queued job's NoCapableWorker warning is an Event.
    await kit.wait_status(WORKER_GROUPS.path(kit.namespace, "pool"), lambda s: s.get("readyWorkers") == 1)
    seen: list[dict] = []
    path = f"/apis/hrw.dev/v1alpha1/namespaces/{kit.namespace}/runbookjobs"

    start = (await kit.admin.list(path))["metadata"]["resourceVersion"]

    async def watch() -> None:
        async for event in kit.admin.watch(path, resource_version=start, fieldSelector="metadata.name=counted",
                                           bookmarks=False, timeout_seconds=60):
            seen.append(event)
            conds = (event["object"].get("status") or {}).get("conditions") or []
            if any(c["type"] == "Complete" for c in conds):
                return

    watcher = asyncio.create_task(watch())
    await _queued(kit, "counted")
    await kit.claim_and_start("counted", "w1")
    await kit.succeed("counted", "w1")
    await asyncio.wait_for(watcher, 30)
    await asyncio.sleep(1.0)  # an observation window: a late bookkeeping write would land in it
    final = await kit.get_job("counted")
    versions = [e["object"]["metadata"]["resourceVersion"] for e in seen]
    # ADDED, Queued (operator), Running (the agent's claim), Succeeded (agent), Complete condition
    # (operator): 4 writes beyond the create, the issue-10 target for a job with small output.
    assert [e["type"] for e in seen] == ["ADDED"] + ["MODIFIED"] * 4, json.dumps(
        [(e["type"], (e["object"].get("status") or {}).get("phase")) for e in seen])
    assert final["metadata"]["resourceVersion"] == versions[-1], "the job was written again after Complete"
    assert not [k for k in final["metadata"].get("annotations") or {} if "kopf" in k or "operator.hrw.dev" in k]
    assert not final["metadata"].get("finalizers")
    managers = {m["manager"] for m in final["metadata"].get("managedFields") or []}
    assert managers <= {"hrw-operator", "hrw-test"}, managers
    writes = [line for line in operator.logs().splitlines() if "job.write" in line and "job=counted" in line]
    assert len(writes) == 2, writes
    assert await kit.events_of("counted") == []
