"""Self-fencing arithmetic: when an agent that cannot renew its Lease stops its jobs, how long it
gives them, how often it renews, and the group setting it reads (`selfFencingMarginSeconds`)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from hrw_agent.agent import Agent
from hrw_agent.client import ProxyClient
from hrw_agent.config import from_values
from hrw_agent.fencing import Renewal
from hrw_api import RunbookJob, WorkerGroupSpec
from hrw_api.errors import InvalidObject
from hrw_api.kubeclient import KubeClient


def test_the_default_margin_is_a_third_of_the_lease():
    assert WorkerGroupSpec().self_fencing_margin == 10.0
    assert WorkerGroupSpec(lease_duration_seconds=12).self_fencing_margin == 4.0


def test_the_group_sets_the_margin():
    spec = WorkerGroupSpec.parse({"leaseDurationSeconds": 20, "selfFencingMarginSeconds": 5})
    assert spec.self_fencing_margin_seconds == 5 and spec.self_fencing_margin == 5.0
    assert spec.to_agent_settings()["selfFencingMarginSeconds"] == 5
    assert "selfFencingMarginSeconds" not in WorkerGroupSpec().to_agent_settings()


def test_a_margin_not_below_the_lease_falls_back_to_the_default():
    # The CRD refuses it (CEL); an old object or a direct write must still not fence at once or never.
    assert WorkerGroupSpec(lease_duration_seconds=30, self_fencing_margin_seconds=30).self_fencing_margin == 10.0


def test_a_margin_below_one_second_is_refused():
    with pytest.raises(InvalidObject, match="selfFencingMarginSeconds"):
        WorkerGroupSpec.parse({"selfFencingMarginSeconds": 0})


def test_jobs_are_stopped_at_lease_duration_minus_margin_after_the_last_successful_send():
    renewal = Renewal.of(100.0, WorkerGroupSpec(lease_duration_seconds=30, self_fencing_margin_seconds=6))
    assert renewal.stop_at == 124.0
    assert not renewal.stopped(123.999)
    assert renewal.stopped(124.0)


def test_the_kill_follows_within_half_the_margin_so_it_lands_before_the_lease_can_lapse():
    renewal = Renewal(sent_at=0.0, duration_seconds=30, margin_seconds=10)
    assert renewal.kill_grace(job_grace_seconds=10) == 5.0
    assert renewal.kill_grace(job_grace_seconds=2) == 2.0
    assert renewal.stop_at + renewal.kill_grace(3600) == 25.0  # SIGKILL by D - M/2, the lease lapses at D


def test_renewals_leave_at_least_two_tries_before_the_fence():
    assert Renewal(0.0, 30, 10).renew_interval == 10.0  # the default: a third of the lease
    assert Renewal(0.0, 30, 20).renew_interval == 5.0  # a large margin: renew more often
    assert Renewal(0.0, 10, 9).renew_interval == 1.0  # but not more than once a second
    for duration, margin in [(10, 10 / 3), (30, 10), (30, 20), (3600, 60)]:
        renewal = Renewal(0.0, duration, margin)
        assert 2 * renewal.renew_interval <= renewal.stop_at or renewal.renew_interval == 1.0


def test_the_reason_says_how_long_the_lease_went_unrenewed_and_why_the_job_stopped():
    why = Renewal(sent_at=50.0, duration_seconds=30, margin_seconds=10).why(now=70.4)
    assert why == ("the agent could not renew its Lease for 20s (leaseDurationSeconds 30, selfFencingMarginSeconds "
                   "10) and stopped the job so that no second attempt overlaps it")


# ------------------------------------------------------------------ the agent while fenced


def _fenced_agent(tmp_path, calls: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return httpx.Response(503, json={"kind": "Status", "code": 503, "reason": "ServiceUnavailable"})

    config = from_values({"proxy_url": "https://proxy", "namespace": "ns", "group": "g", "worker": "w",
                          "state_dir": tmp_path})
    client = ProxyClient(config, "cred", kube=KubeClient("https://proxy", transport=httpx.MockTransport(handler)))
    agent = Agent(config, client, {})
    agent.renewal = Renewal(sent_at=time.monotonic() - 25, duration_seconds=30, margin_seconds=10)
    return agent


async def _until(condition, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


CLAIMED = {"phase": "Claimed", "attempt": 1, "runbookDigest": "sha256:ab",
           "claim": {"worker": "w", "attempt": 1, "claimedAt": "2026-11-25T22:00:01Z"}}


def _claimed_job() -> RunbookJob:
    return RunbookJob.parse({"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
                             "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "5", "uid": "u"},
                             "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"}, "status": CLAIMED})


async def test_a_fenced_agent_claims_nothing(tmp_path):
    calls: list[str] = []
    agent = _fenced_agent(tmp_path, calls)
    assert agent.fenced()
    agent.settings_loaded.set()
    agent.queued["q"] = RunbookJob.parse({"metadata": {"name": "q", "namespace": "ns"},
                                          "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"},
                                          "status": {"phase": "Queued", "attempt": 1}})
    loop = asyncio.create_task(agent._claim_loop())
    try:
        agent._wake_claim.set()
        await _until(lambda: not agent._wake_claim.is_set())  # the loop took the wake-up and ran its round
        assert calls == [] and not agent.claiming
        agent.renewal = Renewal(sent_at=time.monotonic(), duration_seconds=30, margin_seconds=10)  # renewed
        agent._wake_claim.set()
        await _until(lambda: bool(calls))
        assert calls[0] == "PATCH /apis/hrw.dev/v1alpha1/namespaces/ns/runbookjobs/q/status"
    finally:
        for task in [loop, *agent._helpers, *agent._task_handles]:
            task.cancel()
        await asyncio.gather(loop, *agent._helpers, *agent._task_handles, return_exceptions=True)


async def test_a_claim_answered_after_the_fence_never_runs_and_is_given_back_saying_why(tmp_path):
    calls: list[str] = []
    agent = _fenced_agent(tmp_path, calls)
    agent._start(_claimed_job())
    await asyncio.wait_for(asyncio.gather(*agent._task_handles), timeout=10)
    assert calls == [], "a fenced attempt makes no call: not the runbook, not the start"
    [key] = agent.spool.attempts()
    [record] = agent.spool.records(key)
    patch = record.body["patch"]
    assert record.body["phase"] == "Queued"
    assert {"op": "test", "path": "/status/phase", "value": "Claimed"} in patch
    message = next(op["value"] for op in patch if op["path"] == "/status/message")
    assert message.startswith("attempt 1 failed (WorkerLost: the agent could not renew its Lease for 25s")
    assert "stopped the job so that no second attempt overlaps it" in message
