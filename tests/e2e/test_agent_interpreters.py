"""A runbook for an interpreter the worker does not have ends at once with a reason, instead of
waiting in the queue for nobody.

The choice this test pins down: an agent cannot know a job's interpreter before it claims the
job. The RunbookJob does not carry it, and the proxy lets a worker read a Runbook only while it
holds a job that runs it (least privilege). So the agent claims, reads the runbook, and when
the interpreter is missing on its host it ends the attempt `Failed`/`InterpreterMissing` with a
message naming the worker and what it has, before anything runs. The alternative, leaving the
job Queued, would hide the problem until the queue timeout (an hour by default) with no reason
at all. The agents still advertise what they have (Lease annotation, group status), so a person
sees why. What this does not yet cover is a mixed group where another worker has the
interpreter: filtering before the claim needs the job to carry its interpreter (e.g. an
operator-written status field next to `runbookDigest`), a contract change.

An interpreter the group does not allow is refused earlier, by the operator, and never claimed.
"""

from __future__ import annotations

import shutil

import pytest

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"


@pytest.mark.skipif(shutil.which("pwsh") is not None, reason="pwsh is installed here; the job would run")
async def test_job_for_an_interpreter_the_worker_lacks_fails_interpreter_missing(stack: Stack):
    await stack.group(GROUP, interpreters=["bash", "pwsh"], maxJobsPerWorker=2)
    stack.start_agent(GROUP, "w1")
    lease_path = LEASES.path(stack.namespace, names.lease_name(GROUP, "w1"))
    lease = await async_wait_until(lambda: stack.admin.get(lease_path), timeout=10, ignore=(NotFound,),
                                   message="w1's Lease")  # written right after agent.ready, not before
    advertised = lease["metadata"]["annotations"][names.ANNOTATION_INTERPRETERS].split(",")
    assert "bash" in advertised and "pwsh" not in advertised

    await stack.runbook("ps", "Write-Output 'hello from pwsh'\n", interpreter="pwsh")
    await stack.runbook("py", "print('hello from python')\n", interpreter="python3")
    await stack.job("ps-job", "ps", GROUP)
    await stack.job("py-job", "py", GROUP)

    ps = await stack.wait_phase("ps-job", "Failed")
    status = ps["status"]
    assert status["reason"] == "InterpreterMissing", status
    assert "pwsh" in status["message"] and "w1" in status["message"]
    assert status["claim"]["worker"] == "w1"
    assert "exitCode" not in status
    assert await stack.output("ps-job") == ""

    py = await stack.wait_phase("py-job", "Failed")
    assert py["status"]["reason"] == "InterpreterNotAllowed", py["status"]
    assert "claim" not in py["status"]  # the operator refused it; no agent held it
