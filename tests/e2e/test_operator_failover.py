"""Two operator replicas with leader election (issue 11): one acts, the other stands by; a clean
stop hands the Lease over at once; a leader killed with SIGKILL while jobs flow is replaced
within the Lease's duration, and every job still ends, once, having run once."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS
from hrw_api.phases import JobPhase
from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS
from tests.support.stack import LEADER_LEASE, Stack
from tests.support.waiting import WaitTimeout, async_wait_until

GROUP = "ha"
TERMINAL = {p.value for p in JobPhase if p.terminal}
LEASE_DURATION = 12  # tests.support.stack.LEADER_ELECTION_ARGS


@pytest.fixture
async def ha(cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path, proxy_sa_kubeconfig: Path,
             tls: ProxyTLS, job_user: str, request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """Two replicas; `@pytest.mark.parametrize("ha", [True], indirect=True)` restarts those that exit."""
    built = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, tls,
                               operator_replicas=2, operator_args=("--verbose",),
                               restart_operators=getattr(request, "param", False))
    try:
        yield built
    finally:
        await built.close()


def wrote_job(process, job: str) -> bool:
    return re.search(rf"job\.write\b.*\bjob={re.escape(job)}\b", process.logs()) is not None


async def mark_runbook(stack: Stack, ran: Path) -> None:
    await stack.runbook("mark", f'echo "$HRW_PARAM_NAME" >> {ran}\n',
                        parameters=[{"name": "name", "type": "string", "required": True}])


async def test_one_replica_acts_the_other_waits_and_a_clean_stop_hands_over_at_once(ha: Stack, scratch: Path):
    leader = await ha.leader()
    standby = next(p for p in ha.operators if p is not leader)
    standby.wait_for_log(rf"leader\.waiting\b.*\bholder={re.escape(await ha.lease_holder() or '-')}", timeout=30)
    ran = scratch / "ran.txt"
    await ha.group(GROUP)
    ha.start_agent(GROUP, "w1")
    await mark_runbook(ha, ran)
    await ha.job("before", "mark", GROUP, parameters={"name": "before"})
    await ha.wait_phase("before", "Succeeded")
    assert wrote_job(leader, "before") and not wrote_job(standby, "before")
    assert "operator.started" not in standby.logs()  # the standby never started its controllers

    assert ha.stop_operator(leader, signal.SIGTERM) == 0
    assert re.search(r"leader\.released", leader.logs()), leader.log_tail()
    successor = await ha.leader(other_than=leader, timeout=30)
    assert successor is standby
    # It took a released Lease (no holder), not one it waited out: the handover needed no expiry.
    acquired = standby.wait_for_log(r"leader\.acquired\b[^\n]*", timeout=5).group(0)
    assert "previous=" not in acquired, acquired

    await ha.job("after", "mark", GROUP, parameters={"name": "after"})
    await ha.wait_phase("after", "Succeeded")
    assert wrote_job(standby, "after")
    assert sorted(ran.read_text().split()) == ["after", "before"]


@pytest.mark.parametrize("ha", [True], indirect=True, ids=["restarted-like-a-deployment"])
async def test_a_leader_killed_while_jobs_flow_is_replaced_and_every_job_ends_once(ha: Stack, scratch: Path):
    ran = scratch / "ran.txt"
    await ha.group(GROUP, maxJobsPerWorker=4)
    for worker in ("w1", "w2"):
        ha.start_agent(GROUP, worker, maxConcurrentJobs=4)
    await mark_runbook(ha, ran)
    leader = await ha.leader()
    old_identity = await ha.lease_holder()

    phases: dict[str, list[str]] = defaultdict(list)
    listed = await ha.admin.list(RUNBOOK_JOBS.path(ha.namespace))

    async def record() -> None:
        async for event in ha.admin.watch(RUNBOOK_JOBS.path(ha.namespace),
                                          resource_version=listed["metadata"]["resourceVersion"]):
            body = event.get("object") or {}
            phase = (body.get("status") or {}).get("phase")
            if event.get("type") in ("ADDED", "MODIFIED") and phase:
                phases[body["metadata"]["name"]].append(phase)

    recorder = asyncio.create_task(record())
    names = [f"j{i:02d}" for i in range(40)]
    killed_at = 0.0
    try:
        for index, name in enumerate(names):
            await ha.job(name, "mark", GROUP, parameters={"name": name})
            if index == 15:
                leader.kill()  # SIGKILL: no release, no goodbye; the Lease must expire (then it is restarted)
                killed_at = time.monotonic()
            await asyncio.sleep(0.1)  # a stream, not a burst: jobs keep coming while no replica leads

        async def new_holder() -> bool:
            return (await ha.lease_holder()) not in (None, old_identity)

        await async_wait_until(new_holder, timeout=LEASE_DURATION * 6, message="another replica takes the Lease")
        took_over = time.monotonic() - killed_at
        print(f"\na new leader {took_over:.1f} s after the leader was killed (lease duration {LEASE_DURATION} s)")
        acquired = [line for p in ha.operators for line in re.findall(r"leader\.acquired\b[^\n]*", p.logs())]
        assert any(f"previous={old_identity}" in line for line in acquired), acquired  # the dead one's Lease expired

        still_open: dict[str, str | None] = {}

        async def all_terminal() -> bool:
            still_open.clear()
            for name in names:
                phase = ((await ha.get_job(name)).get("status") or {}).get("phase")
                if phase not in TERMINAL:
                    still_open[name] = phase
            return not still_open

        try:
            await async_wait_until(all_terminal, timeout=240, message=f"{len(names)} jobs terminal")
        except WaitTimeout:
            raise AssertionError(f"jobs not terminal (name: phase): {still_open}") from None
    finally:
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder

    for name in names:
        status = (await ha.get_job(name))["status"]
        assert status["phase"] == "Succeeded" and status["attempt"] == 1, (name, status)
        seen = phases[name]
        first_terminal = next(i for i, phase in enumerate(seen) if phase in TERMINAL)
        assert set(seen[first_terminal:]) == {"Succeeded"}, (name, seen)  # terminal once, never left
    assert sorted(ran.read_text().split()) == names  # each ran exactly once


async def test_a_leader_that_finds_its_lease_taken_stops_at_once(ha: Stack):
    leader = await ha.leader()
    path = LEASES.path(ha.namespace, LEADER_LEASE)
    lease = await ha.admin.get(path)
    lease["spec"]["holderIdentity"] = "someone-else"
    await ha.admin.replace(path, lease)
    assert leader.wait(timeout=30) == 1
    assert re.search(r"leader\.lost\b.*held by another replica", leader.logs()), leader.log_tail()

    async def taken_back() -> bool:
        return (await ha.lease_holder()) not in (None, "someone-else")

    await async_wait_until(taken_back, timeout=LEASE_DURATION * 6, message="the standby takes the Lease")
    await ha.leader(other_than=leader)
