"""An agent rotates its credential on its group's schedule and keeps running jobs across the
rotations: a job that runs through one succeeds, one queued after it too, and a credential it
rotated out stops working once the overlap has passed."""

from __future__ import annotations

import re

from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until, wait_until

GROUP = "dc"
# Agents rotate at start and at half the period: every 15 s here; an old credential works 3 s more.
ROTATION = {"periodSeconds": 30, "overlapSeconds": 3}


def rotations(agent) -> int:
    return len(re.findall(r"event=agent\.credential\.rotated", agent.logs()))


async def test_an_agent_keeps_running_jobs_across_credential_rotations(stack: Stack, scratch):
    await stack.group(GROUP, credentialRotation=ROTATION)
    agent = stack.start_agent(GROUP, "w1")
    credential_file = stack.agent_dir("w1") / "state" / "credential"
    wait_until(lambda: rotations(agent) >= 1, timeout=30, message="the rotation at start")
    first = credential_file.read_text().strip()
    marker = scratch / "rotated"
    # Runs until the test says the agent has rotated again: the job spans a rotation.
    await stack.runbook("long", f'while [ ! -e "{marker}" ]; do sleep 0.2; done\necho done\n')
    await stack.job("through", "long", GROUP)
    await stack.wait_phase("through", "Running")
    wait_until(lambda: rotations(agent) >= 2, timeout=40, message="the scheduled rotation (half the period)")
    second = credential_file.read_text().strip()
    assert second != first
    marker.touch()
    done = await stack.wait_phase("through", "Succeeded", timeout=60)
    assert done["status"]["claim"]["worker"] == "w1"

    async def first_refused() -> bool:
        async with stack.proxy.http(first) as http:
            return (await http.get(RUNBOOK_JOBS.path(stack.namespace))).status_code == 401

    await async_wait_until(first_refused, timeout=30, message="the rotated-out credential refused")
    await stack.runbook("hello", "echo hi\n")
    await stack.job("after", "hello", GROUP)
    after = await stack.wait_phase("after", "Succeeded", timeout=60)
    assert after["status"]["claim"]["worker"] == "w1"
    assert agent.alive
    logs = agent.logs()
    assert first not in logs and second not in logs
    assert "agent.credential.rotate.failed" not in logs
