"""The pin of a fan-out child is enforced at claim time: only the worker it is pinned to may claim it,
and a fan-out parent is never claimed at all (even if it were Queued)."""

from __future__ import annotations

from typing import Any

import pytest

from hrw_api import content_digest, names, patches
from hrw_api.errors import Forbidden
from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.proxy.conftest import INLINE_SCRIPT


async def _queued_job(world, name: str, **spec: Any) -> dict[str, Any]:
    job = await world.admin.create(RUNBOOK_JOBS.path(world.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB, "metadata": {"name": name},
        "spec": {"runbookRef": {"name": "rb-inline"}, "workerGroup": "g1", **spec}})
    return await world.admin.patch(RUNBOOK_JOBS.path(world.namespace, name, "status"),
                                   patches.queue(job["metadata"]["resourceVersion"], content_digest(INLINE_SCRIPT),
                                                 job["metadata"]["generation"]), json_patch=True)


async def test_only_the_pinned_worker_may_claim_a_fan_out_child(world):
    await _queued_job(world, "child", pinnedWorker="w2")
    with pytest.raises(Forbidden) as caught:
        await world.claim("child", "w1")
    assert "pinned to worker 'w2'" in caught.value.message
    assert (await world.job("child"))["status"]["phase"] == "Queued"
    claimed = await world.claim("child", "w2")
    assert claimed["status"]["claim"]["worker"] == "w2"


async def test_a_fan_out_parent_is_never_claimed(world):
    await _queued_job(world, "parent", fanOut={"all": True})
    with pytest.raises(Forbidden) as caught:
        await world.claim("parent", "w1")
    assert "is a fan-out job" in caught.value.message
    assert (await world.job("parent"))["status"]["phase"] == "Queued"
