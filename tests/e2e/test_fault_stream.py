"""A stream of jobs through one fault after another: nothing lost, nothing run twice at once (issue 11).

At least 200 short jobs flow (a new one every 0.3 s while fewer than 16 are unfinished) through
three agents (w3 reaches the proxy through a TCP relay the test can cut) while the test, one fault
at a time, waiting for the jobs each one caught to end before the next:
- kills an agent with SIGKILL (its jobs' processes are not in its process group: they are left
  to the agent's parent-death signal and its next start, as on a host without systemd) and starts
  it again on the same state dir;
- kills the leading one of two operator replicas with SIGKILL (the standby takes over when the
  leader-election Lease lapses; the killed one is started again, as a Deployment would, and
  stands by);
- kills the proxy with SIGKILL and starts it again on its port;
- kills kube-apiserver with SIGKILL and starts it again on the same etcd (on a control plane of
  this test's own: the session's shared one must not go down under other tests), whose RBAC and
  CRDs are not ready for a few seconds after it answers;
- cuts worker w3 off (a black hole, not a refusal) until the operator has requeued its job, which
  takes longer than its Lease.

Each runbook stamps `start`, `alive` and `end` with its job, attempt, worker and the time into a
file outside its work dir, from a background child that a killed agent leaves behind. Then:
every job ends Succeeded with a reason (retried where a fault took its attempt); no two attempts
of one job overlap in time; no job's side effect (`end`) happens twice unless the attempt that
did it first ended while its worker could not report it (killed with its agent before the result
was spooled, or cut off until its Lease lapsed: at-least-once, see README "Delivery guarantees");
every Succeeded job has its full output; no status message or Event names a ServiceAccount or an
RBAC object. The table of faults, the jobs each caught, their outcomes and the time to recover
is printed, and shown in pytest's summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hrw_api import WorkerLease, names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import CONFIG_MAPS, EVENTS, LEASES, RUNBOOK_JOBS
from hrw_api.phases import JobPhase
from hrw_dev.controlplane import ControlPlane
from hrw_dev.crds import apply_crds
from tests.support.processes import ManagedProcess, ProcessFactory
from tests.support.proxy import ProxyTLS, RunningProxy, proxy_kubeconfig
from tests.support.relay import TcpRelay
from tests.support.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "dc"
JOBS = 200
FEED_INTERVAL = 0.3
"""Seconds between two new jobs at most: the stream."""
IN_FLIGHT = 16
"""Jobs not yet ended that the stream keeps at most: a steady flow, not a backlog that hides recovery."""
LEASE_SECONDS = 20  # twice the least a WorkerGroup allows: a proxy restart on a busy machine takes up to 10 s
MAX_ATTEMPTS = 3
RECOVERY_DEADLINE = 120.0
TERMINAL = frozenset(p.value for p in JobPhase if p.terminal)
INTERNALS = re.compile(r"serviceaccount|clusterrole|rolebinding|\brbac\b|system:", re.IGNORECASE)

# `stamp WHAT` appends "WHAT JOB ATTEMPT WORKER EPOCH-SECONDS"; the `alive` stamps come from a
# background child, which outlives a leader killed with its agent until the agent's next start.
RUNBOOK = """\
stamp() { echo "$1 $HRW_JOB_NAME $HRW_JOB_ATTEMPT $HRW_WORKER_NAME $(date +%s.%N)" >> "$HRW_PARAM_LOG"; }
stamp start
( for i in 1 2 3 4; do sleep 0.3; stamp alive; done ) &
wait $!
echo "output of $HRW_JOB_NAME, line 1"
echo "output of $HRW_JOB_NAME, line 2"
stamp end
"""


def expected_output(job: str) -> str:
    return f"output of {job}, line 1\noutput of {job}, line 2\n"


@dataclass
class Measured:
    """One fault as it happened."""

    name: str
    caught: dict[str, str]  # job -> phase when the fault began (the jobs not yet ended)
    began: float
    healed: float
    all_ended: float | None = None


@dataclass
class Stream:
    """The running product, the jobs' state as last listed, and what the faults did."""

    cluster: ControlPlane
    stack: Stack
    relay: TcpRelay
    operators: list[ManagedProcess]
    log: Path
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> status, as last listed
    ended_at: dict[str, float] = field(default_factory=dict)  # name -> when first seen terminal
    fed: list[str] = field(default_factory=list)
    unreachable: list[tuple[str, float, float]] = field(default_factory=list)
    """(worker, from, to) in wall time: a worker could not report then (killed, or cut off)."""
    measured: list[Measured] = field(default_factory=list)
    feeding: bool = True
    began: tuple[dict[str, str], float] | None = None  # the jobs not yet ended, and when, as a fault strikes

    @property
    def agents(self) -> dict[str, ManagedProcess]:
        return self.stack.agents

    # ---------------------------------------------------------------------------- the stream

    async def feed(self) -> None:
        """New jobs, one every FEED_INTERVAL while fewer than IN_FLIGHT are unfinished, until told to stop
        and at least JOBS were made."""
        while self.feeding or len(self.fed) < JOBS:
            if sum(1 for job in self.fed if job not in self.ended_at) >= IN_FLIGHT:
                await asyncio.sleep(FEED_INTERVAL)
                continue
            name = f"j{len(self.fed):04d}"
            try:
                await self.stack.job(name, "stamped", GROUP, parameters={"log": str(self.log)},
                                     retryPolicy={"maxAttempts": MAX_ATTEMPTS, "retryOn": ["WorkerLost"]},
                                     timeoutSeconds=120)
            except ApiError as exc:
                if exc.code != 409:  # 409: made already, its answer lost in an apiserver restart
                    await asyncio.sleep(FEED_INTERVAL)
                    continue
            except httpx.HTTPError:
                await asyncio.sleep(FEED_INTERVAL)  # the apiserver is down: a user would try again too
                continue
            self.fed.append(name)
            await asyncio.sleep(FEED_INTERVAL)

    async def watch(self) -> None:
        """List the jobs twice a second (an apiserver restart breaks any watch; a list just fails)."""
        while True:
            with contextlib.suppress(ApiError, httpx.HTTPError):
                await self.list_now()
            await asyncio.sleep(0.5)

    async def list_now(self) -> None:
        listing = await self.stack.admin.list(RUNBOOK_JOBS.path(self.stack.namespace))
        now = time.monotonic()
        for item in listing.get("items") or []:
            name, status = item["metadata"]["name"], item.get("status") or {}
            self.jobs[name] = status
            if status.get("phase") in TERMINAL:
                self.ended_at.setdefault(name, now)

    def unfinished(self) -> dict[str, str]:
        return {name: status.get("phase") or "Pending" for name, status in self.jobs.items()
                if status.get("phase") not in TERMINAL}

    def running_on(self, worker: str) -> list[str]:
        return [name for name, status in self.jobs.items()
                if status.get("phase") == "Running" and (status.get("claim") or {}).get("worker") == worker]

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = RECOVERY_DEADLINE) -> Any:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}; unfinished: {self.unfinished()}")
            await asyncio.sleep(0.2)
        return result

    # ---------------------------------------------------------------------------- the faults

    async def kill_an_agent(self) -> None:
        await self.until(lambda: self.running_on("w1"), "w1 runs a job")
        agent = self.agents["w1"]
        self.strike()
        agent.kill()  # the agent's process group only: each job leads a session of its own
        killed = time.time()
        self.unreachable.append(("w1", killed - 5.0, killed))  # what ended just before may not be spooled yet
        agent.start()  # the same config and state dir
        await asyncio.to_thread(agent.wait_for_log, r"event=agent\.ready", 60)

    async def kill_an_operator(self) -> None:
        leader = await self.stack.leader()
        self.strike()
        leader.kill()  # the standby takes over once the Lease lapses; the killed one comes back as a standby
        await self.stack.leader(timeout=120)

    async def restart_the_proxy(self) -> None:
        self.strike()
        self.stack.proxy.process.kill()
        await asyncio.to_thread(self.stack.restart_proxy)

    async def restart_the_apiserver(self) -> None:
        self.strike()
        self.cluster.kill_apiserver()
        await asyncio.to_thread(self.cluster.start_apiserver)

    async def lease_lapsed(self, worker: str) -> bool:
        with contextlib.suppress(ApiError, httpx.HTTPError):
            lease = WorkerLease.parse(await self.stack.admin.get(
                LEASES.path(self.stack.namespace, names.lease_name(GROUP, worker))))
            return not lease.ready(datetime.now(UTC))
        return False

    def just_started_on(self, worker: str, within: float = 0.4) -> bool:
        """A job's attempt on `worker` stamped its start less than `within` seconds ago (it runs ~1.5 s)."""
        rows = read_stamps(self.log) if self.log.exists() else []
        ended = {(job, attempt) for what, job, attempt, _, _ in rows if what == "end"}
        now = time.time()
        return any(what == "start" and w == worker and now - at < within and (job, attempt) not in ended
                   for what, job, attempt, w, at in rows)

    async def cut_off_a_worker(self) -> None:
        await self.until(lambda: self.just_started_on("w3"), "w3 starts a job")  # the cut catches it running
        await self.list_now()  # and the jobs caught include it
        self.strike()
        self.relay.cut()
        cut = time.time()
        lapsed = False

        async def check() -> None:
            nonlocal lapsed
            while not lapsed:
                lapsed = await self.lease_lapsed("w3")
                await asyncio.sleep(0.2)

        checking = asyncio.create_task(check())
        try:
            # Past its Lease, and until the operator has moved every job w3 held then to another attempt.
            await self.until(lambda: lapsed and not self.running_on("w3"), "w3's Lease lapses and its jobs move on",
                             timeout=60)
        finally:
            checking.cancel()
            self.relay.restore()
            self.unreachable.append(("w3", cut - 1.0, time.time()))  # a report in flight at the cut is lost too

    def strike(self) -> None:
        """The fault begins now: the jobs it catches are those not ended yet."""
        self.began = (self.unfinished(), time.monotonic())

    async def run(self, name: str, fault: Callable[[], Awaitable[None]]) -> None:
        await self.until(lambda: sum(1 for p in self.unfinished().values() if p == "Running") >= 3,
                         "jobs running before the fault")
        self.began = None
        await fault()
        assert self.began is not None, f"{name} calls strike() as it strikes"
        caught, began = self.began
        measured = Measured(name, caught, began, time.monotonic())
        self.measured.append(measured)
        await self.until(lambda: all(job in self.ended_at for job in caught), f"the jobs {name} caught end")
        measured.all_ended = max((self.ended_at[job] for job in caught), default=measured.healed)
        # The stream flows again before the next fault, so that each row measures one fault only.
        await self.until(lambda: any(at > measured.healed for at in self.ended_at.values()),
                         f"a job ends after {name}")


FAULTS: list[tuple[str, Callable[[Stream], Awaitable[None]]]] = [
    ("kill -9 agent w1, restart", Stream.kill_an_agent),
    ("kill -9 the leading operator replica", Stream.kill_an_operator),
    ("kill -9 proxy, restart", Stream.restart_the_proxy),
    ("kill -9 kube-apiserver, restart", Stream.restart_the_apiserver),
    ("cut w3 off past its Lease", Stream.cut_off_a_worker),
]


# -------------------------------------------------------------------------------------- checks

def read_stamps(log: Path) -> list[tuple[str, str, int, str, float]]:
    """(what, job, attempt, worker, time) per line; a line cut short by a kill is skipped."""
    rows = []
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[2].isdigit():
            with contextlib.suppress(ValueError):
                rows.append((fields[0], fields[1], int(fields[2]), fields[3], float(fields[4])))
    return rows


def overlapping_attempts(rows: list[tuple[str, str, int, str, float]]) -> list[str]:
    spans: dict[str, dict[int, list[float]]] = {}
    for _, job, attempt, _, at in rows:
        spans.setdefault(job, {}).setdefault(attempt, []).append(at)
    problems = []
    for job, attempts in spans.items():
        ordered = sorted(attempts.items())
        for (first, times_a), (second, times_b) in itertools.pairwise(ordered):
            if max(times_a) >= min(times_b):
                problems.append(f"{job}: attempt {first} was alive {max(times_a) - min(times_b):.3f}s after "
                                f"attempt {second} started")
    return problems


def repeated_side_effects(rows: list[tuple[str, str, int, str, float]],
                          unreachable: list[tuple[str, float, float]]) -> list[str]:
    """Jobs whose `end` happened in two attempts, where the earlier attempt did not end while its worker
    could not report (killed with its agent before the result was spooled, or cut off from the cluster
    until its Lease lapsed): only then may the cluster run a completed attempt again (at-least-once)."""
    ends: dict[str, list[tuple[int, str, float]]] = {}
    for what, job, attempt, worker, at in rows:
        if what == "end":
            ends.setdefault(job, []).append((attempt, worker, at))
    problems = []
    for job, done in ends.items():
        for attempt, worker, at in sorted(done)[:-1]:
            if not any(w == worker and start <= at <= end for w, start, end in unreachable):
                problems.append(f"{job}: attempt {attempt} on {worker} completed, yet a later attempt ran it again")
    return problems


async def stored_outputs(stack: Stack) -> dict[tuple[str, int], str]:
    """(job, attempt) -> its output as `hrw logs` shows it: chunks in order, then the inline output."""
    listing = await stack.admin.list(CONFIG_MAPS.path(stack.namespace), labelSelector=names.LABEL_JOB)
    chunks: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for item in listing.get("items") or []:
        labels = item["metadata"].get("labels") or {}
        key = (labels[names.LABEL_JOB], int(labels.get(names.LABEL_ATTEMPT, 0)))
        chunks.setdefault(key, []).append((item["metadata"]["name"],
                                           (item.get("data") or {}).get(names.OUTPUT_CHUNK_KEY, "")))
    return {key: "".join(data for _, data in sorted(parts)) for key, parts in chunks.items()}


def output_of(job: str, status: dict[str, Any], chunks: dict[tuple[str, int], str]) -> str:
    attempt = int(status.get("attempt") or 0)
    inline = (status.get("output") or {}).get("inline") or {}
    return chunks.get((job, attempt), "") + inline.get("stdout", "") + inline.get("stderr", "")


def table(stream: Stream) -> str:
    def outcomes(jobs: list[str]) -> str:
        counts = Counter(stream.jobs[job].get("phase") for job in jobs)
        retried = sum(1 for job in jobs if int(stream.jobs[job].get("attempt") or 1) > 1)
        text = ", ".join(f"{n} {phase}" for phase, n in sorted(counts.items()))
        return f"{text} ({retried} on a later attempt)" if retried else text

    def first_done_after(moment: float) -> str:
        after = [at for at in stream.ended_at.values() if at >= moment]
        return f"{min(after) - moment:.1f} s" if after else "-"

    rows = [("fault", "jobs caught", "their outcomes", "fault lasted", "first job ended after healing",
             "all caught ended after the fault began")]
    for m in stream.measured:
        rows.append((m.name, str(len(m.caught)), outcomes(list(m.caught)), f"{m.healed - m.began:.1f} s",
                     first_done_after(m.healed), f"{(m.all_ended or m.healed) - m.began:.1f} s"))
    rows.append(("the whole stream", str(len(stream.fed)), outcomes(stream.fed), "", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- test

@pytest.fixture
def own_cluster() -> Any:
    """A control plane of this test's own: it kills kube-apiserver, which the session's shared one must survive."""
    with ControlPlane("fault-stream") as plane:
        yield plane


async def test_a_stream_of_jobs_through_every_fault_loses_nothing_and_never_runs_a_job_twice_at_once(
        own_cluster: ControlPlane, processes: ProcessFactory, tmp_path: Path, tls: ProxyTLS, job_user: str,
        scratch: Path, summary: Callable[[str], None]):
    cluster = own_cluster
    apply_crds(cluster, REPO_ROOT / "crds")
    namespace = "fault-stream"
    cluster.kubectl("create", "namespace", namespace)
    stack = await Stack.create(cluster, namespace, processes, tmp_path,
                               proxy_kubeconfig(cluster, tmp_path / "proxy-identity"), tls,
                               operator_replicas=2, restart_operators=True)
    relay = TcpRelay("127.0.0.1", int(stack.proxy.url.rsplit(":", 1)[1])).start()
    try:
        await stack.group(GROUP, maxJobsPerWorker=4, leaseDurationSeconds=LEASE_SECONDS, jobGracePeriodSeconds=2)
        await stack.runbook("stamped", RUNBOOK, parameters=[{"name": "log", "type": "string"}])
        for worker in ("w1", "w2"):
            await asyncio.to_thread(stack.start_agent, GROUP, worker)
        behind_relay = RunningProxy(f"https://127.0.0.1:{relay.port}", stack.proxy.ca_path, stack.proxy.metrics_url,
                                    stack.proxy.process)
        await asyncio.to_thread(stack.start_agent, GROUP, "w3", proxy=behind_relay)

        stream = Stream(cluster, stack, relay, stack.operators, scratch / "stamps.log")
        feeder = asyncio.create_task(stream.feed())
        watcher = asyncio.create_task(stream.watch())
        try:
            for name, fault in FAULTS:
                await stream.run(name, lambda fault=fault: fault(stream))
            stream.feeding = False
            await asyncio.wait_for(feeder, timeout=JOBS * FEED_INTERVAL + 60)
            await stream.until(lambda: all(job in stream.ended_at for job in stream.fed), "every job ends",
                               timeout=180)
        finally:
            feeder.cancel()
            watcher.cancel()
            summary(f"fault stream ({len(stream.fed)} jobs):\n{table(stream)}")

        statuses = {job: stream.jobs[job] for job in stream.fed}
        assert len(statuses) >= JOBS
        endless = {job: s for job, s in statuses.items() if s.get("phase") not in TERMINAL or not s.get("reason")}
        assert not endless, f"jobs without a terminal phase and a reason: {endless}"
        not_succeeded = {job: (s["phase"], s["reason"], s.get("message")) for job, s in statuses.items()
                         if s["phase"] != "Succeeded"}
        assert not not_succeeded, f"jobs that did not succeed despite their retries: {not_succeeded}"

        rows = read_stamps(stream.log)
        assert not overlapping_attempts(rows)
        assert not repeated_side_effects(rows, stream.unreachable)
        assert {job for _, job, *_ in rows} >= set(stream.fed), "every job ran"

        chunks = await stored_outputs(stack)
        incomplete = {job: output_of(job, s, chunks) for job, s in statuses.items()
                      if s["phase"] == "Succeeded" and output_of(job, s, chunks) != expected_output(job)}
        assert not incomplete, f"Succeeded jobs without their full output: {incomplete}"

        messages = [s.get("message") or "" for s in statuses.values()]
        messages += [c.get("message") or "" for s in statuses.values() for c in s.get("conditions") or []]
        events = (await stack.admin.list(EVENTS.path(namespace))).get("items") or []
        messages += [event.get("note") or "" for event in events]
        leaking = [m for m in messages if INTERNALS.search(m)]
        assert not leaking, f"status messages or Events naming a ServiceAccount or RBAC object: {leaking}"
    finally:
        relay.close()
        processes.close()  # before the control plane stops under them
        await stack.close()
