"""Per-worker rate limits, body limits from flags, and two stateless proxies serving the same worker."""

from __future__ import annotations

import httpx

from hrw_api import patches
from hrw_api.kubeclient import RUNBOOK_JOBS
from hrw_api.phases import JobPhase
from tests.support.proxy import start_proxy


async def test_a_worker_over_its_rate_limit_gets_429_with_retry_after(world, processes, proxy_sa_kubeconfig, tls):
    limited = start_proxy(processes, proxy_sa_kubeconfig, tls, "--rate-limit-rps", "0.5", "--rate-limit-burst", "3",
                          name="hrw-proxy-limited")
    async with limited.http(world.credentials["w1"]) as http:
        codes = [(await http.get(RUNBOOK_JOBS.path(world.namespace))).status_code for _ in range(3)]
        refused = await http.get(RUNBOOK_JOBS.path(world.namespace))
    async with limited.http(world.credentials["w2"]) as http:  # another worker has its own bucket
        other = await http.get(RUNBOOK_JOBS.path(world.namespace))
    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["reason"] == "TooManyRequests"
    assert other.status_code == 200


async def test_max_body_bytes_comes_from_the_environment(world, processes, proxy_sa_kubeconfig, tls, monkeypatch):
    monkeypatch.setenv("HRW_PROXY_MAX_BODY_BYTES", "2048")
    small = start_proxy(processes, proxy_sa_kubeconfig, tls, name="hrw-proxy-small")
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")
    async with small.http(world.credentials["w1"]) as http:
        response = await http.post(f"/apis/hrw.dev/v1alpha1/namespaces/{world.namespace}/runbookjobs/a1/output",
                                   json={"attempt": 1, "seq": 0, "data": "y" * 4096})
    assert response.status_code == 413
    assert "2048" in response.json()["message"]


async def test_two_proxies_serve_the_same_worker(world, processes, proxy_sa_kubeconfig, tls):
    second = start_proxy(processes, proxy_sa_kubeconfig, tls, name="hrw-proxy-second")
    await world.create_job("a1", "g1")
    await world.claim("a1", "w1")  # through the shared proxy, where w1 registered
    async with second.client(world.credentials["w1"]) as kube:  # a proxy that never saw w1 before
        done = await kube.patch(RUNBOOK_JOBS.path(world.namespace, "a1", "status"), patches.finish(
            1, "w1", patches.JobResult(JobPhase.SUCCEEDED, "Completed", "exit 0", exit_code=0)), json_patch=True)
    assert done["status"]["phase"] == "Succeeded"
    async with httpx.AsyncClient(timeout=5) as http:
        metrics = (await http.get(second.metrics_url)).text
    assert 'hrw_proxy_requests_total{code="200",outcome="allowed",verb="patch"} 1.0' in metrics


async def test_a_stopping_proxy_ends_open_watches_cleanly_so_agents_rewatch_at_once(world, processes,
                                                                                     proxy_sa_kubeconfig, tls):
    """SIGTERM ends each open watch with a proper end of stream (as the apiserver does), so the agent
    re-watches from its last resourceVersion instead of hanging until the shutdown timeout cuts it."""
    stopping = start_proxy(processes, proxy_sa_kubeconfig, tls, name="hrw-proxy-stopping")
    await world.create_job("a1", "g1")
    seen: list[str] = []
    async with stopping.client(world.credentials["w1"]) as kube:
        async for event in kube.watch(RUNBOOK_JOBS.path(world.namespace), timeout_seconds=60):
            seen.append(event["type"])
            if event["type"] == "ADDED":
                stopping.process.stop()  # SIGTERM; the loop must then end without a protocol error
    assert seen[0] == "ADDED"
    assert stopping.process.returncode == 0


async def test_made_up_credentials_are_throttled_together_and_known_workers_are_not(world, processes,
                                                                                  proxy_sa_kubeconfig, tls):
    """Each credential the proxy has not seen costs a Secret GET; a flood of made-up ones gets 429s
    from one shared bucket instead of becoming apiserver load, while a known worker goes on."""
    guarded = start_proxy(processes, proxy_sa_kubeconfig, tls, "--new-credential-rps", "0.2",
                          "--new-credential-burst", "3", name="hrw-proxy-guarded")
    path = RUNBOOK_JOBS.path(world.namespace)
    async with guarded.http(world.credentials["w1"]) as http:
        assert (await http.get(path)).status_code == 200  # w1 is looked up once, then known
    codes = []
    for i in range(5):
        fake = f"hrw1.{world.namespace}.g1.made-up-{i}.{'x' * 43}"
        async with guarded.http(fake) as http:
            codes.append((await http.get(path)).status_code)
    assert codes[:2] == [401, 401]
    assert codes[2:] == [429, 429, 429]
    async with guarded.http(world.credentials["w1"]) as http:
        assert (await http.get(path)).status_code == 200
