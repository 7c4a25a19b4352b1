"""How fast does a job get from `kubectl apply` to a worker, and how does that compare with what
the API server itself can do on this machine?

Starts a local control plane and the real operator, proxy and two agents (the demo's steps),
then measures, in the same run:

  floor/watch      create a RunbookJob -> ADDED seen on a field-selected watch (raw apiserver)
  floor/dispatch   create -> watcher A patches it Queued -> watcher B's test-and-set claim wins
                   (the bare claim protocol, two admin clients, no hrw process involved)
  hrw/claimed      create -> Running: the operator validates and queues, an agent claims (and so starts) it
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

from harness import HRW_NS, NOOP, REPO, PhaseWatch, ensure_runbook, floor, job, percentiles, timed

from hrw_api.kubeclient import RUNBOOK_JOBS, WORKER_GROUPS, KubeClient
from hrw_api.phases import JobPhase
from hrw_dev import demo
from hrw_dev.build import ensure_built
from hrw_dev.controlplane import ControlPlane

GROUP = demo.DEMO_GROUP


async def hrw(kube: KubeClient, count: int, burst: int) -> tuple[list[float], list[float], float]:
    await ensure_runbook(kube, NOOP, "exit 0\n")
    watch = PhaseWatch(kube, HRW_NS)
    await watch.start()

    claimed: list[float] = []

    async def succeeded(i: int) -> float:
        name = f"s-{i}"
        t0 = time.perf_counter()
        await kube.create(RUNBOOK_JOBS.path(HRW_NS), job(name))
        done = await watch.until(name, JobPhase.SUCCEEDED)
        claimed.append(await watch.until(name, JobPhase.RUNNING) - t0)
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
