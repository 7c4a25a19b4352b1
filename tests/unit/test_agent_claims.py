"""A claim whose answer is lost on the way back is settled: the agent reads the job and, if the claim
did apply, runs it. Otherwise the job stays Running in this worker's name, its watch event having
arrived while the claim was in flight, and nothing would ever run it or end it while the worker's
Lease lives (a job without a timeout would never end)."""

from __future__ import annotations

import asyncio
import json

import httpx

from hrw_agent.agent import Agent
from hrw_agent.client import ProxyClient
from hrw_agent.config import from_values
from hrw_api import RunbookJob
from hrw_api.kubeclient import KubeClient


def _job(status: dict) -> dict:
    return {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
            "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "5", "uid": "u"},
            "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"}, "status": status}


QUEUED = {"phase": "Queued", "attempt": 1, "runbookDigest": "sha256:ab", "queuedTime": "2026-11-25T22:00:00Z"}
CLAIMED = {**QUEUED, "phase": "Running", "startTime": "2026-11-25T22:00:01Z",  # the claim is the start
           "claim": {"worker": "w", "attempt": 1, "claimedAt": "2026-11-25T22:00:01Z"}}


class LostAnswerProxy:
    """Applies the claim, then the connection drops before the answer; later reads show the claim."""

    def __init__(self, *, applies: bool) -> None:
        self.applies = applies
        self.status = QUEUED
        self.calls: list[tuple[str, str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        if request.method == "PATCH" and request.url.path.endswith("/j/status"):
            ops = json.loads(request.content)
            assert {"op": "test", "path": "/status/phase", "value": "Queued"} in ops
            if self.applies:
                self.status = CLAIMED
            raise httpx.ReadTimeout("the answer was lost", request=request)
        if request.method == "GET" and request.url.path.endswith("/runbookjobs/j"):
            return httpx.Response(200, json=_job(self.status))
        # The bundle: the proxy is busy, so the started task keeps retrying (and stays visible).
        return httpx.Response(503, json={"kind": "Status", "code": 503, "reason": "ServiceUnavailable"})


def _agent(tmp_path, proxy: LostAnswerProxy) -> Agent:
    config = from_values({"proxy_url": "https://proxy", "namespace": "ns", "group": "g", "worker": "w",
                          "state_dir": tmp_path})
    client = ProxyClient(config, "cred", kube=KubeClient("https://proxy", transport=httpx.MockTransport(proxy.handler)))
    return Agent(config, client, {})


async def _until(condition, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_claim_applied_but_unanswered_is_run_by_the_worker_it_names(tmp_path) -> None:
    proxy = LostAnswerProxy(applies=True)
    agent = _agent(tmp_path, proxy)
    job = RunbookJob.parse(_job(QUEUED))
    agent.queued["j"] = job
    assert await agent._claim(job) is False  # transient: this claim round stops
    assert agent.free == agent.capacity - 1  # the unsettled claim holds a slot meanwhile
    try:
        await _until(lambda: "j" in agent.tasks)
        assert agent.tasks["j"].attempt == 1
        assert not agent.settling
    finally:
        for handle in [*agent._task_handles, *agent._helpers]:
            handle.cancel()
        await asyncio.gather(*agent._task_handles, *agent._helpers, return_exceptions=True)
        await agent.client.aclose()


async def test_a_claim_that_did_not_apply_leaves_the_job_to_the_claim_loop(tmp_path) -> None:
    proxy = LostAnswerProxy(applies=False)
    agent = _agent(tmp_path, proxy)
    job = RunbookJob.parse(_job(QUEUED))
    agent.queued["j"] = job
    assert await agent._claim(job) is False
    try:
        await _until(lambda: not agent.settling)
        assert "j" not in agent.tasks
        assert agent.queued["j"] is job  # still a candidate for the next round
        assert ("GET", "/apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/j") in proxy.calls
    finally:
        await agent.client.aclose()
