"""Agent watches served from one upstream watch per group: resume, 410, bookmarks, isolation, the claim offer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import httpx
import pytest

from hrw_agent.client import ProxyClient
from hrw_agent.config import AgentConfig
from hrw_agent.watcher import JobWatcher
from hrw_api import RunbookJob, WorkerInfo, WorkerLease, names, patches
from hrw_api.errors import ApiError
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, KubeClient
from hrw_api.times import now
from tests.support.proxy import RunningProxy, register_worker, start_proxy
from tests.support.waiting import async_wait_until


async def _metric(proxy: RunningProxy, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(proxy.metrics_url)).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def _listed(kube: KubeClient, namespace: str, names: set[str]) -> str | None:
    """The list's resourceVersion once it holds exactly `names`, else None."""
    listed = await kube.list(RUNBOOK_JOBS.path(namespace))
    if {item["metadata"]["name"] for item in listed["items"]} != names:
        return None
    return str(listed["metadata"]["resourceVersion"])


async def _rv_listing(kube: KubeClient, namespace: str, names: set[str]) -> str:
    found: list[str] = []

    async def check() -> bool:
        version = await _listed(kube, namespace, names)
        if version is not None:
            found.append(version)
        return version is not None

    await async_wait_until(check, timeout=15, message=f"the proxy listing {sorted(names)}")
    return found[-1]


async def _names_until(kube: KubeClient, namespace: str, resource_version: str, last: str) -> list[str]:
    """Names of the watch's events (bookmarks skipped) from `resource_version` until `last` arrives."""
    seen: list[str] = []
    watch = kube.watch(RUNBOOK_JOBS.path(namespace), resource_version=resource_version, timeout_seconds=30)
    async with contextlib.aclosing(watch), asyncio.timeout(20):
        async for event in watch:
            if event["type"] == "BOOKMARK":
                continue
            seen.append(event["object"]["metadata"]["name"])
            if seen[-1] == last:
                break
    return seen


async def test_a_watch_resumes_after_its_resource_version_and_an_expired_one_gets_410(
        world, processes, proxy_sa_kubeconfig, tls):
    small = start_proxy(processes, proxy_sa_kubeconfig, tls, "--watch-ring-size", "2", name="hrw-proxy-ring")
    ns = world.namespace
    async with small.client(world.credentials["w1"]) as kube:
        await _rv_listing(kube, ns, set())
        await world.create_job("a1", "g1", queue=False)
        after_a1 = await _rv_listing(kube, ns, {"a1"})
        await world.create_job("a2", "g1", queue=False)
        await _rv_listing(kube, ns, {"a1", "a2"})
        assert await _names_until(kube, ns, after_a1, "a2") == ["a2"]  # after its RV: a2, nothing before

        await world.create_job("a3", "g1", queue=False)
        await world.create_job("a4", "g1", queue=False)
        await _rv_listing(kube, ns, {"a1", "a2", "a3", "a4"})  # the ring (2 events) no longer reaches a1
        with pytest.raises(ApiError) as caught:
            await _names_until(kube, ns, after_a1, "a4")
        assert caught.value.code == 410
        assert caught.value.reason == "Expired"

        relisted = await _rv_listing(kube, ns, {"a1", "a2", "a3", "a4"})  # what an agent does on 410
        watching = asyncio.create_task(_names_until(kube, ns, relisted, "a5"))
        await world.create_job("a5", "g1", queue=False)
        assert await watching == ["a5"]


async def test_a_watch_without_resource_version_starts_with_the_current_jobs(world, proxy):
    await world.create_job("a1", "g1", queue=False)
    async with proxy.client(world.credentials["w1"]) as kube:
        await _rv_listing(kube, world.namespace, {"a1"})
        watching = asyncio.create_task(_names_until(kube, world.namespace, "", "a2"))
        await world.create_job("a2", "g1", queue=False)
        assert await watching == ["a1", "a2"]


async def _open_watch(proxy: RunningProxy, credential: str, namespace: str, seen: list[str]) -> None:
    async with proxy.client(credential) as kube:
        version = (await kube.list(RUNBOOK_JOBS.path(namespace)))["metadata"]["resourceVersion"]
        async for event in kube.watch(RUNBOOK_JOBS.path(namespace), resource_version=version, timeout_seconds=60):
            if event["type"] != "BOOKMARK":
                seen.append(event["object"]["metadata"]["name"])


async def test_workers_of_a_group_share_one_upstream_watch_and_never_hear_another_group(
        world, processes, proxy_sa_kubeconfig, tls):
    own = start_proxy(processes, proxy_sa_kubeconfig, tls, name="hrw-proxy-sharing")
    seen: dict[str, list[str]] = {worker: [] for worker in ("w1", "w2", "x1")}
    tasks = [asyncio.create_task(_open_watch(own, world.credentials[w], world.namespace, seen[w]))
             for w in seen]
    try:
        async def three_subscribers() -> bool:
            return await _metric(own, "hrw_proxy_watch_subscribers") == 3

        await async_wait_until(three_subscribers, timeout=20, message="three watches subscribed")
        assert await _metric(own, "hrw_proxy_upstream_watches") == 2  # g1 (w1 and w2) and g2 (x1)
        await world.create_job("a1", "g1", queue=False)
        await world.create_job("b1", "g2", queue=False)

        async def all_heard() -> bool:
            return seen["w1"] == seen["w2"] == ["a1"] and "b1" in seen["x1"]

        await async_wait_until(all_heard, timeout=20, message="each watch hearing its group's job")
        assert seen["x1"] == ["b1"]  # a1 came first and never reached group g2
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_bookmarks_arrive_on_a_watch_that_asked_for_them(world, processes, proxy_sa_kubeconfig, tls):
    ticking = start_proxy(processes, proxy_sa_kubeconfig, tls, "--watch-bookmark-seconds", "0.5",
                          name="hrw-proxy-bookmarks")
    async with ticking.http(world.credentials["w1"]) as http:
        listed = (await http.get(RUNBOOK_JOBS.path(world.namespace))).json()
        version = listed["metadata"]["resourceVersion"]
        params = {"watch": "true", "timeoutSeconds": "2", "allowWatchBookmarks": "true", "resourceVersion": version}
        async with http.stream("GET", RUNBOOK_JOBS.path(world.namespace), params=params) as response:
            events = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
        params["allowWatchBookmarks"] = "false"
        async with http.stream("GET", RUNBOOK_JOBS.path(world.namespace), params=params) as response:
            unasked = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
    bookmarks = [event for event in events if event["type"] == "BOOKMARK"]
    assert len(bookmarks) >= 2
    assert all(event["object"]["metadata"]["resourceVersion"] == version for event in bookmarks)
    assert unasked == []


async def test_with_the_claim_offer_most_claims_win_at_the_first_try_and_each_job_is_claimed_once(
        world, processes, proxy_sa_kubeconfig, tls):
    """Three agents that claim every Queued job they hear of, each with a Lease saying it takes them
    all: the offer (a generous grace, so the test does not depend on timing) makes the apiserver's
    test-and-set rarely need to refuse one."""
    offering = start_proxy(processes, proxy_sa_kubeconfig, tls, "--claim-offer-grace", "2",
                           "--rate-limit-rps", "200", "--rate-limit-burst", "400", name="hrw-proxy-offer")
    world.credentials["w3"] = register_worker(world.proxy, world.namespace, "g1", "w3", world.tokens["g1"])
    jobs = [f"j{i}" for i in range(12)]
    won: dict[str, list[str]] = {}
    lost: list[str] = []
    ready = {worker: asyncio.Event() for worker in ("w1", "w2", "w3")}

    async def agent(worker: str) -> None:
        async with offering.client(world.credentials[worker]) as kube:
            lease = WorkerLease(name=names.lease_name("g1", worker), namespace=world.namespace, group="g1",
                                worker=worker, duration_seconds=60, renew_time=now(),
                                info=WorkerInfo(capacity=len(jobs)))
            await kube.create(LEASES.path(world.namespace), lease.to_dict())
            listed = await kube.list(RUNBOOK_JOBS.path(world.namespace))
            ready[worker].set()
            async for event in kube.watch(RUNBOOK_JOBS.path(world.namespace),
                                          resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=60):
                obj: dict[str, Any] = event["object"]
                if event["type"] == "BOOKMARK" or (obj.get("status") or {}).get("phase") != "Queued":
                    continue
                name = obj["metadata"]["name"]
                try:
                    await kube.patch(RUNBOOK_JOBS.path(world.namespace, name, "status"), patches.claim(1, worker),
                                     json_patch=True)
                except ApiError as exc:
                    assert exc.code == 422, exc
                    lost.append(name)
                else:
                    won.setdefault(name, []).append(worker)

    tasks = [asyncio.create_task(agent(worker)) for worker in ready]
    try:
        for event in ready.values():
            await asyncio.wait_for(event.wait(), 20)

        async def subscribed() -> bool:
            return await _metric(offering, "hrw_proxy_watch_subscribers") == 3

        await async_wait_until(subscribed, timeout=20, message="three agents watching")
        for job in jobs:
            await world.create_job(job, "g1")

        async def all_claimed() -> bool:
            return set(won) == set(jobs)

        await async_wait_until(all_claimed, timeout=60, message="every job claimed")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(len(winners) == 1 for winners in won.values()), won
    for job in jobs:
        status = (await world.job(job))["status"]
        assert (status["phase"], status["claim"]["worker"]) == ("Running", won[job][0])  # the claim is the start
    assert len(lost) <= len(jobs) // 2, f"{len(lost)} losing claims for {len(jobs)} jobs"
    assert await _metric(offering, "hrw_proxy_claim_offers_total") >= len(jobs)
    assert len({winners[0] for winners in won.values()}) == 3  # offered round the group, not to one agent


async def test_the_agents_own_watcher_resumes_from_its_resource_version_and_relists_after_410(
        world, processes, proxy_sa_kubeconfig, tls):
    """The agent's `JobWatcher` through the shared upstream: each re-watch (here every second)
    continues from the last resourceVersion without a relist; one that fell out of the ring
    gets 410 and relists, and the relist brings every job."""
    small = start_proxy(processes, proxy_sa_kubeconfig, tls, "--watch-ring-size", "2", name="hrw-proxy-agent-watch")
    ns = world.namespace
    config = AgentConfig(proxy_url=small.url, namespace=ns, group="g1", worker="w1")
    client = ProxyClient(config, world.credentials["w1"], kube=small.client(world.credentials["w1"]))
    syncs: list[list[str]] = []
    events: list[str] = []

    async def on_sync(jobs: list[RunbookJob]) -> None:
        syncs.append(sorted(job.meta.name for job in jobs))

    async def on_event(kind: str, job: RunbookJob) -> None:
        events.append(job.meta.name)

    watcher = JobWatcher(client, on_sync, on_event, watch_timeout=1)
    running = asyncio.create_task(watcher.run())
    try:
        await async_wait_until(lambda: _truthy(syncs), timeout=20, message="the agent's first list")
        for name in ("a1", "a2"):
            watches = await _watches_served(small)

            async def rewatched(before: float = watches) -> bool:
                return await _watches_served(small) >= before + 2  # a 1 s watch ended, and another after it

            await async_wait_until(rewatched, timeout=20, message="the agent re-watching")
            await world.create_job(name, "g1", queue=False)
            await async_wait_until(lambda job=name: _truthy(job in events), timeout=20,
                                   message=f"the agent hearing {name}")
        assert syncs == [[]]  # re-watched from its resourceVersion each time, never relisted
        assert events == ["a1", "a2"]  # and nothing twice
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    for name in ("a3", "a4", "a5"):  # while the agent is away, its resourceVersion falls out of the ring
        await world.create_job(name, "g1", queue=False)
    async with small.client(world.credentials["w2"]) as other:
        await _rv_listing(other, ns, {"a1", "a2", "a3", "a4", "a5"})  # the proxy's cache has them all
    running = asyncio.create_task(watcher.run())
    try:
        await async_wait_until(lambda: _truthy(len(syncs) == 2), timeout=20, message="the agent relisting after 410")
        assert syncs[1] == ["a1", "a2", "a3", "a4", "a5"]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.aclose()


async def _truthy(value: bool | list[Any]) -> bool:
    return bool(value)


async def _watches_served(proxy: RunningProxy) -> float:
    """Watch requests the proxy has answered (its request counter, all codes)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(proxy.metrics_url)).text
    return sum(float(value) for value in re.findall(r'^hrw_proxy_requests_total\{[^}]*verb="watch"[^}]*\} (\S+)$',
                                                   text, re.MULTILINE))
