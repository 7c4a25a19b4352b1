"""A job's bundle (runbook content and assets) and its output: only for the worker holding its current
attempt, only while it holds it."""

from __future__ import annotations

import pytest

from hrw_api import JobBundle, content_digest, names, patches, wire
from hrw_api.errors import Forbidden
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOK_JOBS, RUNBOOKS
from hrw_api.patches import JobResult
from hrw_api.phases import JobPhase

from .conftest import CONFIGMAP_SCRIPT, INLINE_SCRIPT


def _bundle(world, job: str, attempt: int = 1) -> str:
    return f"{wire.bundle_path(world.namespace, job)}?{wire.BUNDLE_ATTEMPT_PARAM}={attempt}"


async def test_the_bundle_of_a_held_job_carries_its_runbook_content(world):
    await world.create_job("a1", "g1", runbook="rb-inline")
    await world.create_job("a2", "g1", runbook="rb-cm")
    await world.claim("a1", "w1")
    await world.claim("a2", "w1")
    async with world.client("w1") as kube:
        inline = JobBundle.parse(await kube.get(_bundle(world, "a1"))).runbook
        body = await kube.get(_bundle(world, "a2"))
    from_cm = JobBundle.parse(body).runbook
    assert (body["kind"], body["apiVersion"]) == ("RunbookJobBundle", names.API_VERSION)
    assert inline.spec.content == INLINE_SCRIPT
    assert from_cm.spec.content == CONFIGMAP_SCRIPT and from_cm.spec.content_from is None
    assert content_digest(from_cm.spec.content) == (await world.job("a2"))["status"]["runbookDigest"]


async def test_the_bundle_of_a_held_job_carries_its_assets_resolved_and_secret_fields_marked(world):
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    async with world.client("w1") as kube:
        bundle = JobBundle.parse(await kube.get(_bundle(world, "a1")))
    assets = {a.name: a for a in bundle.assets}
    assert assets["greeting"].values == {"value": "Hello"} and not assets["greeting"].secret_fields
    assert assets["db"].values == {"username": "app", "password": "s3cret-pw"}
    assert assets["db"].secret_fields == {"password"}
    assert "s3cret-pw" not in world.proxy.process.logs()


async def test_the_bundle_of_a_job_not_held_or_finished_is_forbidden(world):
    await world.create_job("a1", "g1")
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden):  # queued
            await kube.get(_bundle(world, "a1"))
    await world.claim("a1", "w1")
    async with world.client("w2") as kube:
        with pytest.raises(Forbidden):  # held by w1
            await kube.get(_bundle(world, "a1"))
    async with world.client("w1") as kube:
        await kube.patch(RUNBOOK_JOBS.path(world.namespace, "a1", "status"), patches.finish(
            1, "w1", JobResult(JobPhase.FAILED, "NonZeroExit", "exit 3", exit_code=3)), json_patch=True)
        with pytest.raises(Forbidden) as caught:  # finished
            await kube.get(_bundle(world, "a1"))
    assert "Failed" in caught.value.message


async def test_the_bundle_of_a_stale_attempt_is_forbidden_even_to_the_new_holder(world):
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    await world.admin.patch(RUNBOOK_JOBS.path(world.namespace, "a1", "status"),
                            patches.requeue(JobPhase.RUNNING, 1, "w1 lost"), json_patch=True)
    await world.claim("a1", "w1", attempt=2)
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden) as caught:
            await kube.get(_bundle(world, "a1", attempt=1))
        assert JobBundle.parse(await kube.get(_bundle(world, "a1", attempt=2))).runbook.meta.name == "rb-inline"
    assert "stale" in caught.value.message


async def test_the_bundle_is_asked_for_one_attempt(world):
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    async with world.proxy.http(world.credentials["w1"]) as http:
        response = await http.get(wire.bundle_path(world.namespace, "a1"))
    assert response.status_code == 400 and "attempt" in response.json()["message"]


async def test_runbooks_are_not_read_apart_from_a_job(world):
    """The bundle is the one way to a runbook's content: no route that would need to LIST jobs."""
    await world.create_job("a1", "g1", runbook="rb-inline")
    await world.claim("a1", "w1")
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden):
            await kube.get(RUNBOOKS.path(world.namespace, "rb-inline"))


async def test_output_chunks_are_stored_owned_by_the_job_and_idempotent(world):
    job = await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    chunk = wire.OutputChunk(attempt=1, seq=0, data="line 1\nline 2\n").to_dict()
    async with world.proxy.http(world.credentials["w1"]) as http:
        first = await http.post(wire.output_path(world.namespace, "a1"), json=chunk)
        again = await http.post(wire.output_path(world.namespace, "a1"), json=chunk)
    assert (first.status_code, again.status_code) == (201, 200)
    stored = await world.admin.get(CONFIG_MAPS.path(world.namespace, names.output_chunk_name("a1", 1, 0)))
    assert stored["data"][names.OUTPUT_CHUNK_KEY] == "line 1\nline 2\n"
    labels = stored["metadata"]["labels"]
    assert (labels[names.LABEL_JOB], labels[names.LABEL_ATTEMPT], labels[names.LABEL_WORKER_GROUP]) == ("a1", "1", "g1")
    owner = stored["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("RunbookJob", "a1", job["metadata"]["uid"])


async def test_output_is_refused_for_a_job_not_held_a_stale_attempt_or_beyond_the_limits(world):
    await world.create_job("a1", "g1")
    path = wire.output_path(world.namespace, "a1")
    async with world.proxy.http(world.credentials["w1"]) as http:
        not_held = await http.post(path, json=wire.OutputChunk(1, 0, "x").to_dict())
        await world.claim("a1", "w1")
        stale = await http.post(path, json=wire.OutputChunk(2, 0, "x").to_dict())
        big = await http.post(path, json=wire.OutputChunk(1, 0, "x" * (64 * 1024 + 1)).to_dict())
        # The group's outputLimitBytes is 4 x 64 KiB: chunk 4 is the last one accepted.
        last = await http.post(path, json=wire.OutputChunk(1, 4, "x").to_dict())
        beyond = await http.post(path, json=wire.OutputChunk(1, 5, "x").to_dict())
    async with world.proxy.http(world.credentials["w2"]) as http:
        other = await http.post(path, json=wire.OutputChunk(1, 1, "x").to_dict())
    assert (not_held.status_code, stale.status_code, other.status_code) == (403, 403, 403)
    assert (big.status_code, last.status_code, beyond.status_code) == (413, 201, 413)
    assert "outputLimitBytes" in beyond.json()["message"]
    assert big.json()["reason"] == "RequestEntityTooLarge"
