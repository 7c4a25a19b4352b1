"""What the benchmarks share: a local control plane with the real hrw processes, the apiserver's
own floor, and the small instruments (phase watch, percentiles, /proc and /metrics readers).

`dispatch.py` and `fleet.py` both start the demo's stack through the dev package (``hrw_dev``)
and measure hrw against the bare apiserver in the same run; this module is the one place that
does either, so the two scripts report comparable numbers. Nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from hrw_api import content_digest, patches
from hrw_api.kubeclient import NAMESPACES, RUNBOOK_JOBS, RUNBOOKS, KubeClient, ssl_context
from hrw_dev import demo, stack
from hrw_dev.controlplane import ControlPlane, ControlPlaneError, free_port
from hrw_dev.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
HRW_NS = "default"  # where the demo's operator, group and agents live
FLOOR_NS = "bench-floor"  # no hrw process watches this one
GROUP = demo.DEMO_GROUP
NOOP = "bench-noop"
STAMP = "bench-stamp"
STAMP_CONTENT = 'echo "started=$(date +%s.%N)" | tee -a "$HRW_OUTPUTS"\n'
"""A runbook that records, as its first act, the wall-clock time its process started: printed
(one line of output) and kept as the output key ``started``."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ statistics


def pick(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    """n, p50, p90, p99, max and mean of `samples` (seconds); empty for no samples."""
    if not samples:
        return {}
    return {"n": len(samples), "p50": pick(samples, 0.5), "p90": pick(samples, 0.9), "p99": pick(samples, 0.99),
            "max": max(samples), "mean": statistics.fmean(samples)}


def percentiles(samples: list[float]) -> str:
    s = summary(samples)
    return (f"n={int(s['n']):<4} p50 {s['p50'] * 1000:7.1f} ms  p90 {s['p90'] * 1000:7.1f} ms  "
            f"p99 {s['p99'] * 1000:7.1f} ms  mean {s['mean'] * 1000:7.1f} ms")


# -------------------------------------------------------------------------------- the objects


def job(name: str, runbook: str = NOOP, group: str = GROUP, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"runbookRef": {"name": runbook}, "workerGroup": group}}


async def ensure_runbook(kube: KubeClient, name: str, content: str, within: float = 60.0) -> None:
    """Create a `sh` Runbook and wait until the operator has computed its digest."""
    await kube.create(RUNBOOKS.path(HRW_NS), {
        "apiVersion": "hrw.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": name},
        "spec": {"interpreter": "sh", "content": content}})

    async def ready() -> bool:
        return bool((await kube.get(RUNBOOKS.path(HRW_NS, name))).get("status", {}).get("digest")
                    == content_digest(content))

    if not await poll(ready, within=within, interval=0.1):
        raise TimeoutError(f"the operator did not mark Runbook {name} Ready within {within:g} s")


class PhaseWatch:
    """One watch on a namespace's jobs, recording when each job is first seen in each phase."""

    def __init__(self, kube: KubeClient, namespace: str, group: str = GROUP) -> None:
        self.kube, self.namespace, self.group = kube, namespace, group
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.kube.list(RUNBOOK_JOBS.path(self.namespace))
        self.task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        while True:
            async for event in self.kube.watch(RUNBOOK_JOBS.path(self.namespace), resource_version=rv,
                                               fieldSelector=f"spec.workerGroup={self.group}"):
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

    async def count_until(self, names_: list[str], phase: str, deadline: float) -> int:
        """Wait until every job of `names_` was seen in `phase` or the monotonic `deadline` passes;
        return how many were."""
        while True:
            done = sum(1 for name in names_ if (name, phase) in self.seen)
            if done == len(names_) or time.monotonic() >= deadline:
                return done
            self.changed.clear()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    await self.changed.wait()
            except TimeoutError:
                pass

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def poll(check: Callable[[], Awaitable[bool]], *, within: float, interval: float) -> bool:
    """Ask `check` every `interval` seconds until it answers True (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


async def timed(count: int, one: Callable[[int], Awaitable[float]]) -> list[float]:
    return [await one(i) for i in range(count)]


# ------------------------------------------------------------------------------------ the floor


async def floor(kube: KubeClient, count: int) -> tuple[list[float], list[float]]:
    """The apiserver's own figures, no hrw process involved: create -> ADDED on a watch, and
    create -> watcher A patches it Queued -> watcher B's test-and-set claim wins."""
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


async def write_rate(kube: KubeClient, writers: int = 8, seconds: float = 10.0) -> float:
    """Status writes per second the apiserver takes from `writers` concurrent clients, each
    patching its own job's status in a loop: the write-bound rate a job pipeline is held to."""
    path = RUNBOOK_JOBS.path(FLOOR_NS)
    await asyncio.gather(*(kube.create(path, job(f"wr-{i}")) for i in range(writers)))
    done = 0
    stop = time.monotonic() + seconds

    async def writer(i: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < stop:
            n += 1
            await kube.patch(path + f"/wr-{i}/status", {"status": {"message": f"write {n}"}})
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    return done / (time.monotonic() - t0)


# ----------------------------------------------------------------------------- the hrw processes


def start_process(ctx: demo.DemoContext, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
    """Start one hrw process with its log in the context's work dir, quietly (the demo's way)."""
    return demo.start_process(ctx, name, argv, echo=False)


def wait_log(ctx: demo.DemoContext, name: str, needle: str, timeout: float = 120.0) -> None:
    demo.wait_log(ctx, name, needle, timeout)


def start_proxy(ctx: demo.DemoContext, extra: list[str]) -> str:
    """The demo's proxy (own ServiceAccount, TLS) with `extra` flags; returns its metrics URL."""
    rbac = ctx.repo_root / "deploy" / "rbac" / "proxy.yaml"
    role = ctx.repo_root / "deploy" / "rbac" / "per-namespace" / "proxy.yaml"
    kubeconfig = stack.proxy_kubeconfig(ctx.cluster, ctx.work_dir, rbac, duration="24h")
    stack.grant_namespace(ctx.cluster, ctx.namespace, role, stack.PROXY_SERVICE_ACCOUNT)
    tls = stack.proxy_tls(ctx.work_dir / "tls", common_name="hrw-bench-proxy-ca")
    port, metrics_port = free_port(), free_port()
    ctx.proxy_url, ctx.proxy_ca = f"https://127.0.0.1:{port}", tls.ca_path
    start_process(ctx, "hrw-proxy", [
        *stack.process_command("hrw-proxy"), "--listen", f"127.0.0.1:{port}", "--tls-cert", str(tls.cert_path),
        "--tls-key", str(tls.key_path), "--kubeconfig", str(kubeconfig),
        "--metrics-listen", f"127.0.0.1:{metrics_port}", *extra])
    verify = ssl_context(ca_file=str(tls.ca_path))

    def ready() -> bool:
        if ctx.processes["hrw-proxy"].poll() is not None:
            raise ControlPlaneError(f"hrw-proxy exited; see {ctx.work_dir / 'logs' / 'hrw-proxy.log'}")
        return httpx.get(f"{ctx.proxy_url}/readyz", verify=verify, timeout=2).status_code == 200

    wait_until(ready, timeout=60, ignore=(httpx.HTTPError,), message="hrw-proxy /readyz")
    return f"http://127.0.0.1:{metrics_port}/metrics"


def registration_token(ctx: demo.DemoContext, group: str) -> str:
    """A token registering any number of the bench's workers for an hour (`hrw get-token --ttl`)."""
    return demo.issue_registration_token(ctx, group)


def start_agents(ctx: demo.DemoContext, workers: list[str], group: str = GROUP) -> None:
    """Start one real `hrw-agent` process per worker name and wait until each is ready."""
    token = registration_token(ctx, group)
    run_all_as_agent_user = demo.prepare_job_user(ctx)
    for worker in workers:
        demo.start_agent(ctx, group, worker, token, run_all_as_agent_user=run_all_as_agent_user)
    for worker in workers:
        wait_log(ctx, f"hrw-agent-{worker}", "event=agent.ready", timeout=180)


def stop_agents(ctx: demo.DemoContext, grace: float = 60.0) -> None:
    """Stop every agent at once (SIGTERM: they drain) and forget them; the proxy and operator keep
    running. An agent still there after `grace` seconds is killed."""
    agents = {name: process for name, process in ctx.processes.items() if name.startswith("hrw-agent")}
    for process in agents.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in agents.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for name in agents:
        del ctx.processes[name]


def agent_pids(ctx: demo.DemoContext) -> list[int]:
    return [process.pid for name, process in ctx.processes.items() if name.startswith("hrw-agent")]


# --------------------------------------------------------------------------------- instruments


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (not its children), in seconds; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the Prometheus samples of `name` whose labels include `labels` (text format)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{want}"' in label_text for key, want in labels.items()):
            try:
                total += float(value)
            except ValueError:
                continue
    return total


def metric_names(text: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


async def scrape(url: str, verify: Any = True) -> str:
    """GET a Prometheus text endpoint; empty on any error (a figure then reads as missing)."""
    try:
        async with httpx.AsyncClient(verify=verify, timeout=10) as client:
            response = await client.get(url)
            return response.text if response.status_code == 200 else ""
    except httpx.HTTPError:
        return ""


async def apiserver_metrics(plane: ControlPlane) -> str:
    return await scrape(f"{plane.server}/metrics", verify=plane.ssl_context())
