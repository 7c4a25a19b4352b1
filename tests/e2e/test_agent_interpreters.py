"""A job runs on a worker that has its runbook's interpreter, and waits (with a reason) when none has.

The operator snapshots the runbook's interpreter on the job when it queues it (next to
`runbookDigest`), and an agent passes over a job whose interpreter its server lacks — so in a
group of mixed servers only one that can run the job claims it, the way a Pod waits for a node
that fits. When no ready worker of the group has the interpreter, the operator says so in a
Warning Event (`NoCapableWorker`, naming what the workers have) and the job waits in the queue
until one joins or its queue timeout ends it. An interpreter the group does not allow at all is
refused at once by the operator and never claimed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hrw_api.errors import NotFound
from hrw_api.kubeclient import WORKER_GROUPS
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"

# Stands in for PowerShell on one server: answers the agent's probe, then runs the script with sh.
FAKE_PWSH = """#!/bin/sh
if [ "$1" = "-NoProfile" ]; then exit 0; fi
echo "fake-pwsh ran"
exec /bin/sh "$@"
"""


async def _ready_workers(stack: Stack, count: int) -> None:
    async def ready() -> bool:
        group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
        return (group.get("status") or {}).get("readyWorkers") == count

    await async_wait_until(ready, timeout=30, ignore=(NotFound,), message=f"{count} ready workers in {GROUP}")


@pytest.mark.skipif(shutil.which("pwsh") is not None, reason="pwsh is installed here; the job would run")
async def test_a_job_no_worker_can_run_waits_with_a_warning_and_is_never_claimed(stack: Stack):
    await stack.group(GROUP, interpreters=["bash", "pwsh"], maxJobsPerWorker=2)
    stack.start_agent(GROUP, "w1")
    await _ready_workers(stack, 1)

    await stack.runbook("ps", "Write-Output 'hello from pwsh'\n", interpreter="pwsh")
    await stack.runbook("py", "print('hello from python')\n", interpreter="python3")
    await stack.job("ps-job", "ps", GROUP, queueTimeoutSeconds=6)
    await stack.job("py-job", "py", GROUP)

    py = await stack.wait_phase("py-job", "Failed")
    assert py["status"]["reason"] == "InterpreterNotAllowed", py["status"]
    assert "claim" not in py["status"]  # the operator refused it; no agent held it

    ps = await stack.wait_phase("ps-job", "TimedOut", timeout=30)
    assert ps["status"]["reason"] == "QueueTimeout", ps["status"]
    assert ps["status"]["interpreter"] == "pwsh"
    assert "claim" not in ps["status"], "an agent without pwsh claimed the job"
    warnings = [e for e in await stack.events() if e.get("reason") == "NoCapableWorker"]
    assert warnings, "no NoCapableWorker event"
    note = warnings[0].get("note") or warnings[0].get("message") or ""
    assert "interpreter pwsh" in note and "w1: " in note and "bash" in note, note


async def test_in_a_mixed_group_only_the_worker_with_the_interpreter_runs_the_job(stack: Stack, scratch: Path):
    fake = scratch / "pwsh"
    fake.write_text(FAKE_PWSH)
    fake.chmod(0o755)
    await stack.group(GROUP, interpreters=["bash", "pwsh"], maxJobsPerWorker=2)
    stack.start_agent(GROUP, "w1")  # no pwsh on this server
    stack.start_agent(GROUP, "w2", interpreterPaths={"pwsh": str(fake)})
    await _ready_workers(stack, 2)

    await stack.runbook("ps", 'echo "hello from $HRW_JOB_NAME"\n', interpreter="pwsh")
    jobs = [f"ps-{i}" for i in range(4)]
    for name in jobs:
        await stack.job(name, "ps", GROUP)

    for name in jobs:
        done = await stack.wait_phase(name, "Succeeded")
        assert done["status"]["claim"]["worker"] == "w2", done["status"]
        assert done["status"]["attempt"] == 1
        assert await stack.output(name) == f"fake-pwsh ran\nhello from {name}\n"
    assert "InterpreterMissing" not in stack.agents["w1"].logs()
