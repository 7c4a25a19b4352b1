"""How fast does a job get from `kubectl apply` to a worker, and how does that compare with what
the API server itself can do on this machine?

Starts a local control plane and the real operator, proxy and two agents (the demo's steps),
then measures, in the same run:

  floor/watch      create a RunbookJob -> ADDED seen on a field-selected watch (raw apiserver)
  floor/dispatch   create -> watcher A patches it Queued -> watcher B's test-and-set claim wins
                   (the bare claim protocol, two admin clients, no hrw process involved)
  hrw/claimed      create -> Claimed: the operator validates and queues, an agent claims through the proxy
  hrw/succeeded    create -> Succeeded for a runbook that does nothing: the whole path, one job at a time
  hrw/burst        N jobs created at once, two agents: jobs per second until all have Succeeded

and prints percentiles and the ratios of hrw's figures to the floor's. Absolute numbers on a
2-core machine are noisy; the ratios are the point. Nothing here asserts a time.

    .venv/bin/python bench/dispatch.py [--sequential 40] [--burst 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hrw_api import content_digest, patches
from hrw_api.kubeclient import NAMESPACES, RUNBOOK_JOBS, RUNBOOKS, WORKER_GROUPS, KubeClient
from hrw_api.phases import JobPhase
from hrw_dev import demo
from hrw_dev.build import ensure_built
from hrw_dev.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[1]
HRW_NS = "default"  # where the demo's operator, group and agents live
FLOOR_NS = "bench-floor"  # no hrw process watches this one
GROUP = demo.DEMO_GROUP
NOOP = "bench-noop"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return (f"n={len(ordered):<4} p50 {pick(0.5):7.1f} ms  p90 {pick(0.9):7.1f} ms  "
            f"p99 {pick(0.99):7.1f} ms  mean {statistics.fmean(ordered) * 1000:7.1f} ms")


def job(name: str, runbook: str = NOOP) -> dict[str, Any]:
    return {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob", "metadata": {"name": name},
            "spec": {"runbookRef": {"name": runbook}, "workerGroup": GROUP}}


class PhaseWatch:
    """One watch on a namespace's jobs, recording when each job is first seen in each phase."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.kube.list(RUNBOOK_JOBS.path(self.namespace))
        self.task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        while True:
            async for event in self.kube.watch(RUNBOOK_JOBS.path(self.namespace), resource_version=rv,
                                               fieldSelector=f"spec.workerGroup={GROUP}"):
                obj = event["object"]
                rv = obj["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                phase = (obj.get("status") or {}).get("phase") or "Pending"
                self.seen.setdefault((obj["metadata"]["name"], phase), time.perf_counter())
                self.changed.set()

    async def until(self, name: str, phase: str, within: float = 60.0) -> float:
        async with asyncio.timeout(within):
            while (name, phase) not in self.seen:
                self.changed.clear()  # no await since the check: the watch task cannot slip in between
                await self.changed.wait()
        return self.seen[(name, phase)]

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def timed(count: int, one: Callable[[int], Awaitable[float]]) -> list[float]:
    return [await one(i) for i in range(count)]


async def floor(kube: KubeClient, count: int) -> tuple[list[float], list[float]]:
    await kube.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FLOOR_NS}})
    watch = PhaseWatch(kube, FLOOR_NS)
    await watch.start()

    async def added(i: int) -> float:
        t0 = time.perf_counter()
        await kube.create(RUNBOOK_JOBS.path(FLOOR_NS), job(f"w-{i}"))
        return await watch.until(f"w-{i}", "Pending") - t0

    watch_samples = await timed(count, added)

    # Watcher A queues what appears; watcher B claims what is queued; the clock stops at B's win.
    path = RUNBOOK_JOBS.path(FLOOR_NS)
    won: dict[str, float] = {}
    winning: dict[str, asyncio.Event] = {}

    async def queuer() -> None:
        async for event in kube.watch(path, fieldSelector=f"spec.workerGroup={GROUP}"):
            obj = event["object"]
            if event["type"] == "ADDED" and obj["metadata"]["name"].startswith("d-") and not obj.get("status"):
                await kube.patch(path + f"/{obj['metadata']['name']}/status",
                                 patches.queue(obj["metadata"]["resourceVersion"], "sha256:x", 1), json_patch=True)

    async def claimer() -> None:
        async for event in kube.watch(path, fieldSelector=f"spec.workerGroup={GROUP}"):
            obj = event["object"]
            if (obj.get("status") or {}).get("phase") == "Queued":
                name = obj["metadata"]["name"]
                await kube.patch(path + f"/{name}/status", patches.claim(1, "floor"), json_patch=True)
                won[name] = time.perf_counter()
                winning.setdefault(name, asyncio.Event()).set()

    tasks = [asyncio.create_task(queuer()), asyncio.create_task(claimer())]
    await asyncio.sleep(0.5)  # let both watches open before the first create (bench set-up, not a race)

    async def dispatched(i: int) -> float:
        name = f"d-{i}"
        t0 = time.perf_counter()
        await kube.create(path, job(name))
        async with asyncio.timeout(60):
            await winning.setdefault(name, asyncio.Event()).wait()
        return won[name] - t0

    dispatch_samples = await timed(count, dispatched)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await watch.stop()
    return watch_samples, dispatch_samples


async def hrw(kube: KubeClient, count: int, burst: int) -> tuple[list[float], list[float], float]:
    content = "exit 0\n"
    await kube.create(RUNBOOKS.path(HRW_NS), {
        "apiVersion": "hrw.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": NOOP},
        "spec": {"interpreter": "sh", "content": content}})
    deadline = time.monotonic() + 30
    while (await kube.get(RUNBOOKS.path(HRW_NS, NOOP))).get("status", {}).get("digest") != content_digest(content):
        if time.monotonic() > deadline:
            raise TimeoutError("the operator did not mark the bench runbook Ready")
        await asyncio.sleep(0.1)
    watch = PhaseWatch(kube, HRW_NS)
    await watch.start()

    claimed: list[float] = []

    async def succeeded(i: int) -> float:
        name = f"s-{i}"
        t0 = time.perf_counter()
        await kube.create(RUNBOOK_JOBS.path(HRW_NS), job(name))
        done = await watch.until(name, JobPhase.SUCCEEDED)
        claimed.append(await watch.until(name, JobPhase.CLAIMED) - t0)
        return done - t0

    succeeded_samples = await timed(count, succeeded)

    t0 = time.perf_counter()
    await asyncio.gather(*(kube.create(RUNBOOK_JOBS.path(HRW_NS), job(f"b-{i}")) for i in range(burst)))
    ends = [await watch.until(f"b-{i}", JobPhase.SUCCEEDED, within=300) for i in range(burst)]
    rate = burst / (max(ends) - t0)
    await watch.stop()
    return claimed, succeeded_samples, rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=40, help="jobs measured one at a time")
    parser.add_argument("--burst", type=int, default=60, help="jobs created at once for the throughput figure")
    args = parser.parse_args()
    ensure_built()
    with ControlPlane("hrw-bench") as plane:
        ctx = demo.DemoContext(cluster=plane, repo_root=REPO)
        try:
            for step in (demo.apply_hrw_crds, demo.start_operator, demo.start_proxy, demo.apply_examples,
                         demo.start_agents):
                step(ctx)

            async def measure() -> None:
                async with KubeClient.from_kubeconfig(plane.kubeconfig_path) as kube:
                    group = await kube.get(WORKER_GROUPS.path(HRW_NS, GROUP))
                    per_worker = group["spec"]["maxJobsPerWorker"]
                    watch_s, dispatch_s = await floor(kube, args.sequential)
                    claimed_s, succeeded_s, rate = await hrw(kube, args.sequential, args.burst)
                floor_p50 = statistics.median(dispatch_s)
                print("\n== results (2 agents, maxJobsPerWorker "
                      f"{per_worker}; lower is better except throughput)")
                print(f"floor/watch     {percentiles(watch_s)}")
                print(f"floor/dispatch  {percentiles(dispatch_s)}")
                print(f"hrw/claimed     {percentiles(claimed_s)}   "
                      f"p50 x{statistics.median(claimed_s) / floor_p50:.1f} floor/dispatch")
                print(f"hrw/succeeded   {percentiles(succeeded_s)}   "
                      f"p50 x{statistics.median(succeeded_s) / floor_p50:.1f} floor/dispatch")
                print(f"hrw/burst       {args.burst} jobs: {rate:.1f} jobs/s to Succeeded")

            asyncio.run(measure())
        finally:
            demo.stop_processes(ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
