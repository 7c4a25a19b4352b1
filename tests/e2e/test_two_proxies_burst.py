"""A burst of jobs through two proxy replicas, each offering jobs to its own agents: every job runs exactly once.

Issue 10's correctness check of the speed-ups: 20 agents, half behind each replica, and 300 jobs
created at once. Each replica's claim offer and its cache-settled lost claims are its own; the
apiserver's test-and-set is the only arbiter, so no attempt may run twice and no job may be left.
(On a machine so loaded that an agent cannot renew its Lease in time, the agent fences itself and
gives the attempt back; the job then runs as attempt 2, once.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.support.proxy import start_proxy
from tests.support.stack import PROXY_ARGS, Stack
from tests.support.waiting import async_wait_until

GROUP = "burst"
JOBS = 300
AGENTS = 20


async def test_a_burst_through_two_proxies_runs_every_job_exactly_once(stack: Stack, proxy_sa_kubeconfig: Path,
                                                                         tls, scratch: Path):
    ran = scratch / "ran.txt"
    second = start_proxy(stack.processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, name="hrw-proxy-replica")
    await stack.group(GROUP)
    await stack.runbook("mark", f'echo "$HRW_PARAM_NAME/$HRW_JOB_ATTEMPT" >> {ran}\n',
                        parameters=[{"name": "name", "type": "string", "required": True}])
    workers = [f"w{i:02d}" for i in range(AGENTS)]
    first_half = set(workers[:AGENTS // 2])
    for worker in workers:
        stack.start_agent(GROUP, worker, proxy=stack.proxy if worker in first_half else second, ready=False,
                          maxConcurrentJobs=4, logLevel="info")
    for worker in workers:
        stack.agents[worker].wait_for_log(r"event=agent\.ready", timeout=120)
    names = [f"j{i:03d}" for i in range(JOBS)]
    gate = asyncio.Semaphore(32)

    async def create(name: str) -> None:
        async with gate:
            await stack.job(name, "mark", GROUP, parameters={"name": name})

    await asyncio.gather(*(create(name) for name in names))

    async def all_succeeded() -> bool:
        listed = await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace))
        done = [item for item in listed["items"] if (item.get("status") or {}).get("phase") == "Succeeded"]
        return len(done) == JOBS

    await async_wait_until(all_succeeded, timeout=480, message=f"{JOBS} jobs Succeeded")
    runs = ran.read_text().split()
    assert len(runs) == len(set(runs)), sorted(run for run in runs if runs.count(run) > 1)  # no attempt twice
    claimers = set()
    for item in (await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace)))["items"]:
        status = item["status"]
        assert f"{item['metadata']['name']}/{status['attempt']}" in runs, status  # the attempt that succeeded ran
        claimers.add(status["claim"]["worker"])
    assert claimers & first_half and claimers - first_half  # both replicas' agents took part
