"""Jobs survive failures the retry policy covers: a failed script runs again while the policy
allows it (`retryOn: [Failed]`), and a worker that dies mid-job (SIGKILL, no restart) loses the
job to another worker of its group once its Lease lapses (the default `retryOn: [WorkerLost]`):
high availability, the product's main promise.
"""

from __future__ import annotations

from pathlib import Path

from hrw_dev.controlplane import pid_runs
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until, wait_until

GROUP = "dc"

SECOND_TIME_LUCKY = """\
echo "attempt $HRW_JOB_ATTEMPT on $HRW_WORKER_NAME"
if [ "$HRW_JOB_ATTEMPT" -lt 2 ]; then echo "failing"; exit 4; fi
echo "attempt=$HRW_JOB_ATTEMPT" >> "$HRW_OUTPUTS"
"""


async def test_failed_attempt_runs_again_while_the_retry_policy_allows(stack: Stack):
    await stack.group(GROUP, maxJobsPerWorker=2)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("flaky", SECOND_TIME_LUCKY)
    await stack.job("retried", "flaky", GROUP, retryPolicy={"maxAttempts": 2, "retryOn": ["Failed"]})
    await stack.job("once", "flaky", GROUP, retryPolicy={"maxAttempts": 1, "retryOn": ["Failed"]})

    retried = (await stack.wait_phase("retried", "Succeeded"))["status"]
    assert retried["attempt"] == 2
    assert retried["claim"]["attempt"] == 2
    assert retried["outputs"] == {"attempt": "2"}
    assert await stack.output("retried", attempt=1) == "attempt 1 on w1\nfailing\n"
    assert await stack.output("retried", attempt=2) == "attempt 2 on w1\n"

    once = (await stack.wait_phase("once", "Failed"))["status"]
    assert once["attempt"] == 1
    assert once["reason"] == "NonZeroExit"
    assert once["exitCode"] == 4
    assert await stack.output("once") == "attempt 1 on w1\nfailing\n"


LOST_ON_FIRST_ATTEMPT = """\
echo "attempt $HRW_JOB_ATTEMPT on $HRW_WORKER_NAME"
if [ "$HRW_JOB_ATTEMPT" = 1 ]; then
  echo $$ > "$HRW_PARAM_PIDFILE"
  while [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.1; done
  echo "released"
fi
"""


async def test_job_of_a_killed_worker_is_requeued_and_another_worker_finishes_it(stack: Stack, scratch: Path):
    """SIGKILL leaves no chance to say goodbye: the agent's Lease stops being renewed, the operator
    requeues the job as attempt 2 when the Lease expires, and the surviving worker runs it. The first
    attempt's script (its own session, not killed with the agent, as on a real server that lost
    its network) is released at the end so it leaves nothing behind."""
    go = scratch / "go"
    pidfile = scratch / "attempt-1.pid"
    await stack.group(GROUP, leaseDurationSeconds=10)
    w1 = stack.start_agent(GROUP, "w1")
    await stack.runbook("hold", LOST_ON_FIRST_ATTEMPT, parameters=[
        {"name": "go", "type": "string"}, {"name": "pidfile", "type": "string"}])
    await stack.job("j1", "hold", GROUP, parameters={"go": str(go), "pidfile": str(pidfile)})
    running = await stack.wait_phase("j1", "Running")
    assert running["status"]["claim"]["worker"] == "w1"
    stack.start_agent(GROUP, "w2")
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), message="attempt 1's script started")
        await async_wait_until(lambda: _output_is(stack, "attempt 1 on w1\n", attempt=1), timeout=10,
                               message="attempt 1's first output chunk stored")
        w1.kill()

        requeued = await stack.wait_job("j1", lambda job: job["status"]["attempt"] >= 2, timeout=30,
                                        message="j1 requeued as attempt 2 after w1's Lease lapsed")
        assert requeued["status"]["attempt"] == 2
        job = await stack.wait_phase("j1", "Succeeded", timeout=30)
        status = job["status"]
        assert status["attempt"] == 2
        assert status["claim"] == {**status["claim"], "worker": "w2", "attempt": 2}
        assert await stack.output("j1", attempt=2) == "attempt 2 on w2\n"
        assert await stack.output("j1", attempt=1) == "attempt 1 on w1\n"
        reasons = {event.get("reason") for event in await stack.events()}
        assert "Requeued" in reasons, reasons
    finally:
        go.touch()  # the orphaned attempt-1 script exits on its own
    pid = int(pidfile.read_text().strip())
    wait_until(lambda: not pid_runs(pid), timeout=10, message=f"attempt 1's orphaned script {pid} exited")


async def _output_is(stack: Stack, expected: str, *, attempt: int) -> bool:
    return await stack.output("j1", attempt=attempt) == expected
