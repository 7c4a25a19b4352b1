"""A WorkerGroup's settings are the agents' configuration, applied while they run: raising
`maxJobsPerWorker` lets a running agent take more jobs at once without a restart (the agent
re-reads its group with every Lease renewal and advertises the new capacity on its Lease).

Each job records its start in a ledger and then waits for a file the test creates, so the
overlap of jobs is read from the ledger, not guessed from timing.
"""

from __future__ import annotations

from pathlib import Path

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES, WORKER_GROUPS
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"
HOLD = """\
echo "start $HRW_JOB_NAME" >> "$HRW_PARAM_LEDGER"
while [ ! -e "$HRW_PARAM_GODIR/$HRW_JOB_NAME" ]; do sleep 0.05; done
echo "end $HRW_JOB_NAME" >> "$HRW_PARAM_LEDGER"
"""


async def _phases(stack: Stack, jobs: list[str]) -> dict[str, str | None]:
    return {name: ((await stack.get_job(name)).get("status") or {}).get("phase") for name in jobs}


async def test_raising_max_jobs_per_worker_lets_a_running_agent_run_more_at_once(stack: Stack, scratch: Path):
    ledger = scratch / "ledger"
    godir = scratch / "go"
    godir.mkdir()
    await stack.group(GROUP, maxJobsPerWorker=1, leaseDurationSeconds=10)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("hold", HOLD, parameters=[{"name": "ledger", "type": "string"},
                                                  {"name": "godir", "type": "string"}])
    params = {"ledger": str(ledger), "godir": str(godir)}

    # maxJobsPerWorker 1: the two jobs run one after the other.
    before = ["one-a", "one-b"]
    for name in before:
        await stack.job(name, "hold", GROUP, parameters=params)
    order = []
    for _ in before:
        async def one_running() -> str | None:
            phases = await _phases(stack, before)
            running = [name for name, phase in phases.items() if phase == "Running"]
            assert len(running) <= 1, phases
            return running[0] if running else None

        current = await async_wait_until(one_running, message="one job of the pair Running")
        others = await _phases(stack, [name for name in before if name not in order and name != current])
        assert set(others.values()) <= {"Queued"}, others
        order.append(current)
        (godir / current).touch()
        await stack.wait_phase(current, "Succeeded")
    assert ledger.read_text().splitlines() == [f"{verb} {name}" for name in order for verb in ("start", "end")]

    # Raised to 3 while the agent runs: it applies the change on its next renewal.
    await stack.admin.patch(WORKER_GROUPS.path(stack.namespace, GROUP), {"spec": {"maxJobsPerWorker": 3}})
    lease_path = LEASES.path(stack.namespace, names.lease_name(GROUP, "w1"))

    async def advertised_capacity() -> bool:
        lease = await stack.admin.get(lease_path)
        return lease["metadata"]["annotations"].get(names.ANNOTATION_CAPACITY) == "3"

    # Renewals come every third of the group's 10 s lease, so within ~3.4 s; 7 s leaves slack and
    # still catches an agent that times its renewals by the 30 s default (it renewed after 10 s).
    await async_wait_until(advertised_capacity, timeout=7, ignore=(NotFound,),
                           message="w1's Lease advertising capacity 3")
    stack.agents["w1"].wait_for_log(r"event=group\.settings .*max_jobs_per_worker=3 capacity=3", timeout=5)

    burst = ["burst-1", "burst-2", "burst-3"]
    for name in burst:
        await stack.job(name, "hold", GROUP, parameters=params)

    async def all_running() -> bool:
        phases = await _phases(stack, burst)
        return all(phase == "Running" for phase in phases.values())

    await async_wait_until(all_running, timeout=20, message="the whole burst Running at once")

    def burst_started() -> bool:
        return sum(line.startswith("start burst-") for line in ledger.read_text().splitlines()) == 3

    await async_wait_until(_as_async(burst_started), timeout=10, message="three burst scripts started")
    assert not any(line.startswith("end burst-") for line in ledger.read_text().splitlines())
    for name in burst:
        (godir / name).touch()
    for name in burst:
        await stack.wait_phase(name, "Succeeded")


def _as_async(check):  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(check())

    return run
