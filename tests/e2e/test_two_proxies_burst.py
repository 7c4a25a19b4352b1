"""A burst of jobs through two proxy replicas, each offering jobs to its own agents: every job runs exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.proxy import start_proxy
from tests.support.stack import PROXY_ARGS, Stack
from tests.support.waiting import async_wait_until

GROUP = "burst"
JOBS = 60


async def test_a_burst_through_two_proxies_runs_every_job_exactly_once(stack: Stack, proxy_sa_kubeconfig: Path,
                                                                         tls, scratch: Path):
    ran = scratch / "ran.txt"
    second = start_proxy(stack.processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, name="hrw-proxy-replica")
    await stack.group(GROUP)
    await stack.runbook("mark", f'echo "$HRW_PARAM_NAME" >> {ran}\n',
                        parameters=[{"name": "name", "type": "string", "required": True}])
    for worker, proxy in (("w1", stack.proxy), ("w2", stack.proxy), ("w3", second), ("w4", second)):
        stack.start_agent(GROUP, worker, proxy=proxy, maxConcurrentJobs=4)
    names = [f"j{i:02d}" for i in range(JOBS)]
    await asyncio.gather(*(stack.job(name, "mark", GROUP, parameters={"name": name}) for name in names))

    async def all_succeeded() -> bool:
        for name in names:
            if ((await stack.get_job(name)).get("status") or {}).get("phase") != "Succeeded":
                return False
        return True

    await async_wait_until(all_succeeded, timeout=240, message=f"{JOBS} jobs Succeeded")
    assert sorted(ran.read_text().split()) == names  # each ran once: no job twice, none missing
    workers = set()
    for name in names:
        status = (await stack.get_job(name))["status"]
        assert status["claim"]["attempt"] == 1, status
        workers.add(status["claim"]["worker"])
    assert workers & {"w1", "w2"} and workers & {"w3", "w4"}  # both replicas' agents took part
