"""Status patches through the proxy: the agent's transitions only, by the claimer of the current attempt."""

from __future__ import annotations

import asyncio

import pytest

from hrw_api import patches
from hrw_api.errors import Forbidden, Invalid, NotFound
from hrw_api.kubeclient import RUNBOOK_JOBS
from hrw_api.patches import JobResult
from hrw_api.phases import JobPhase

_DONE = JobResult(JobPhase.SUCCEEDED, "Completed", "exit 0", exit_code=0)


def _path(world, job: str) -> str:
    return RUNBOOK_JOBS.path(world.namespace, job, "status")


async def test_a_worker_claims_runs_and_finishes_its_groups_job(world):
    await world.create_job("a1", "g1")
    claimed = await world.claim("a1", "w1")
    assert claimed["status"]["phase"] == "Running"  # the claim is the start
    assert claimed["status"]["claim"]["worker"] == "w1"
    assert claimed["status"]["startTime"] == claimed["status"]["claim"]["claimedAt"]  # the proxy's clock
    async with world.client("w1") as kube:
        done = await kube.patch(_path(world, "a1"), patches.finish(
            1, "w1", JobResult(JobPhase.SUCCEEDED, "Completed", "exit 0", exit_code=0)), json_patch=True)
    assert done["status"]["phase"] == "Succeeded"


async def test_claiming_another_groups_job_is_refused(world):
    await world.create_job("b1", "g2")
    with pytest.raises(NotFound):
        await world.claim("b1", "w1")
    assert (await world.job("b1"))["status"]["phase"] == "Queued"


async def test_a_claim_in_another_workers_name_is_forbidden(world):
    await world.create_job("a1", "g1")
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden) as caught:
            await kube.patch(_path(world, "a1"), patches.claim(1, "w2"), json_patch=True)
    assert "w1" in caught.value.message


async def test_two_racing_claims_have_exactly_one_winner(world):
    await world.create_job("a1", "g1")
    results = await asyncio.gather(world.claim("a1", "w1"), world.claim("a1", "w2"), return_exceptions=True)
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1
    assert len(losers) == 1 and isinstance(losers[0], Invalid)  # the apiserver's 422, passed back as is
    assert (await world.job("a1"))["status"]["claim"]["worker"] == winners[0]["status"]["claim"]["worker"]


async def test_patching_a_job_held_by_another_worker_is_forbidden(world):
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    async with world.client("w2") as kube:
        with pytest.raises(Forbidden):  # tests w2 as claimer: the proxy refuses before the apiserver would
            await kube.patch(_path(world, "a1"), patches.finish(1, "w2", _DONE), json_patch=True)
        with pytest.raises(Forbidden):  # tests w1 as claimer, sent by w2
            await kube.patch(_path(world, "a1"), patches.finish(1, "w1", _DONE), json_patch=True)
    assert (await world.job("a1"))["status"]["phase"] == "Running"


async def test_a_write_for_a_stale_attempt_is_forbidden(world):
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    # The operator requeues the job (w1's Lease expired): attempt 2, and w2 claims it.
    await world.admin.patch(_path(world, "a1"), patches.requeue(JobPhase.RUNNING, 1, "worker lost"), json_patch=True)
    await world.claim("a1", "w2", attempt=2)
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden) as caught:
            await kube.patch(_path(world, "a1"), patches.finish(1, "w1", _DONE), json_patch=True)
    assert "claimed by w2" in caught.value.message
    async with world.client("w2") as kube:
        await kube.patch(_path(world, "a1"), patches.finish(2, "w2", _DONE), json_patch=True)


async def test_an_illegal_transition_is_forbidden(world):
    await world.create_job("a1", "g1")
    skip = [{"op": "test", "path": "/status/phase", "value": "Queued"},
            {"op": "test", "path": "/status/attempt", "value": 1},
            {"op": "test", "path": "/status/claim/worker", "value": "w1"},
            {"op": "add", "path": "/status/phase", "value": "Succeeded"}]
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden) as caught:
            await kube.patch(_path(world, "a1"), skip, json_patch=True)
        with pytest.raises(Forbidden):  # a merge patch carries no fence at all
            await kube.patch(_path(world, "a1"), {"status": {"phase": "Succeeded"}})
        with pytest.raises(Forbidden):  # nor may a patch touch the spec
            await kube.patch(_path(world, "a1"), [{"op": "add", "path": "/spec/cancel", "value": True}],
                             json_patch=True)
    assert "Queued to Succeeded" in caught.value.message
    assert (await world.job("a1"))["status"]["phase"] == "Queued"


async def test_a_retry_is_allowed_only_when_the_retry_policy_retries_failures(world):
    await world.create_job("a1", "g1", retry={"maxAttempts": 2, "retryOn": ["Failed"]})
    await world.create_job("a2", "g1", retry={"maxAttempts": 2, "retryOn": ["WorkerLost"]})
    for job in ("a1", "a2"):
        await world.claim(job, "w1")
    async with world.client("w1") as kube:
        again = await kube.patch(_path(world, "a1"), patches.retry(1, "w1", "NonZeroExit", "exit 1"),
                                 json_patch=True)
        assert (again["status"]["phase"], again["status"]["attempt"]) == ("Queued", 2)
        with pytest.raises(Forbidden) as caught:
            await kube.patch(_path(world, "a2"), patches.retry(1, "w1", "NonZeroExit", "exit 1"), json_patch=True)
    assert "retryPolicy" in caught.value.message
