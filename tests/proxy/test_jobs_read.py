"""A worker reads its own group's RunbookJobs, and only those: list, watch, get."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from hrw_api.errors import Forbidden, NotFound
from hrw_api.kubeclient import RUNBOOK_JOBS


async def test_list_shows_only_the_workers_own_group(world):
    await world.create_job("a1", "g1")
    await world.create_job("b1", "g2")
    async with world.client("w1") as kube:
        own = await kube.list(RUNBOOK_JOBS.path(world.namespace))
    async with world.client("x1") as kube:
        other = await kube.list(RUNBOOK_JOBS.path(world.namespace))
    assert [i["metadata"]["name"] for i in own["items"]] == ["a1"]
    assert [i["metadata"]["name"] for i in other["items"]] == ["b1"]


async def test_list_accepts_its_own_group_selector_and_refuses_another(world):
    await world.create_job("a1", "g1")
    async with world.client("w1") as kube:
        listed = await kube.list(RUNBOOK_JOBS.path(world.namespace), fieldSelector="spec.workerGroup=g1")
        assert len(listed["items"]) == 1
        for selector in ("spec.workerGroup=g2", "spec.workerGroup!=g1", "metadata.name=a1,spec.workerGroup==g2"):
            with pytest.raises(Forbidden):
                await kube.list(RUNBOOK_JOBS.path(world.namespace), fieldSelector=selector)


async def test_list_in_another_namespace_is_forbidden(world):
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden) as caught:
            await kube.list(RUNBOOK_JOBS.path("default"))
        with pytest.raises(Forbidden):
            await kube.list(RUNBOOK_JOBS.path())  # across namespaces
    assert world.namespace in caught.value.message


async def test_get_own_groups_job_and_not_another_groups(world):
    await world.create_job("a1", "g1")
    await world.create_job("b1", "g2")
    async with world.client("w1") as kube:
        job = await kube.get(RUNBOOK_JOBS.path(world.namespace, "a1"))
        assert job["spec"]["workerGroup"] == "g1"
        with pytest.raises(NotFound) as hidden:
            await kube.get(RUNBOOK_JOBS.path(world.namespace, "b1"))
        with pytest.raises(NotFound) as missing:
            await kube.get(RUNBOOK_JOBS.path(world.namespace, "does-not-exist"))
    # Indistinguishable from a job that does not exist: nothing of b1 leaks.
    assert hidden.value.message == 'runbookjobs.hrw.dev "b1" not found'
    assert missing.value.reason == hidden.value.reason == "NotFound"


async def test_watch_streams_own_group_events_as_they_happen(world):
    async with world.client("w1") as kube:
        listed = await kube.list(RUNBOOK_JOBS.path(world.namespace))
        seen: list[tuple[str, str]] = []
        watch = kube.watch(RUNBOOK_JOBS.path(world.namespace),
                           resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=30)

        async def first_own_event() -> None:
            async for event in watch:
                if event["type"] == "BOOKMARK":
                    continue
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                if event["object"]["metadata"]["name"] == "a2":
                    return

        task = asyncio.create_task(first_own_event())
        await asyncio.sleep(0)  # let the watch open before the jobs exist
        await world.create_job("b2", "g2", queue=False)  # another group's: never seen
        await world.create_job("a2", "g1", queue=False)
        await asyncio.wait_for(task, timeout=20)  # arrives while the watch is open: no buffering
        await watch.aclose()
    assert seen == [("ADDED", "a2")]


async def test_watch_of_another_group_is_forbidden(world):
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden):
            async for _ in kube.watch(RUNBOOK_JOBS.path(world.namespace), timeout_seconds=5,
                                      fieldSelector="spec.workerGroup=g2"):
                pass


async def test_watch_timeout_is_bounded_and_bookmarks_pass(world):
    async with world.proxy.http(world.credentials["w1"]) as http:
        listed = (await http.get(RUNBOOK_JOBS.path(world.namespace))).json()
        params = {"watch": "true", "timeoutSeconds": "1", "allowWatchBookmarks": "true",
                  "resourceVersion": listed["metadata"]["resourceVersion"]}
        async with http.stream("GET", RUNBOOK_JOBS.path(world.namespace), params=params) as response:
            assert response.status_code == 200
            lines = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
    assert all(event["type"] in {"BOOKMARK", "ADDED", "MODIFIED"} for event in lines)


async def test_request_counts_show_in_metrics(world):
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(world.proxy.metrics_url)).text
    assert "hrw_proxy_requests_total" in text
    assert "hrw_proxy_active_watches" in text
    assert "hrw_proxy_request_duration_seconds_bucket" in text
