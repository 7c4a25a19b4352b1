"""A worker cut off from the cluster stops its job before its Lease can lapse (self-fencing), so the
requeued attempt never overlaps the stale one; when it comes back it reports nothing the job has
moved past (DESIGN.md, "Worker loss", "At most one live attempt", and fencing; issue 11).

The cut is real: the worker reaches the cluster through a proxy replica of its own, and that
replica is killed (SIGKILL: no goodbye, connections reset). Its Lease stops being renewed; at
leaseDuration - margin after its last successful renewal the agent stops the job (SIGTERM, then
SIGKILL), before the operator requeues the job as attempt 2 for a worker behind the other replica.
The runbook stamps what each attempt does, with the time, into a file outside its work dir.
"""

from __future__ import annotations

from pathlib import Path

from hrw_dev.controlplane import pid_runs
from tests.support.processes import ManagedProcess
from tests.support.proxy import ProxyTLS, start_proxy
from tests.support.stack import PROXY_ARGS, Stack, spool_files
from tests.support.stamps import STAMPED, STAMPED_PARAMETERS, assert_attempts_do_not_overlap
from tests.support.waiting import wait_until

GROUP = "dc"


async def test_a_cut_off_worker_stops_its_job_before_the_lease_lapses_and_the_requeued_attempt_does_not_overlap(
        stack: Stack, scratch: Path, proxy_sa_kubeconfig: Path, tls: ProxyTLS):
    log, pids = scratch / "stamps.log", scratch / "attempt-1.pids"
    await stack.group(GROUP, leaseDurationSeconds=10)
    replica = start_proxy(stack.processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, name="hrw-proxy-w1")
    w1: ManagedProcess = stack.start_agent(GROUP, "w1", proxy=replica)
    await stack.runbook("stamped", STAMPED, parameters=STAMPED_PARAMETERS)
    await stack.job("j1", "stamped", GROUP, parameters={"log": str(log), "pids": str(pids)})
    running = await stack.wait_phase("j1", "Running")
    assert running["status"]["claim"]["worker"] == "w1"
    leader, child = (int(p) for p in wait_until(lambda: pids.exists() and pids.read_text().split(),
                                                message="attempt 1 started its background child"))

    replica.process.kill()  # the cut: w1 can no longer reach the cluster
    w1.wait_for_log(r"event=job\.fenced job=j1 attempt=1", timeout=15)
    wait_until(lambda: not pid_runs(leader) and not pid_runs(child), timeout=10,
               message="w1 stopped attempt 1 (SIGTERM, then SIGKILL for the child that ignores it)")
    held = (await stack.get_job("j1"))["status"]
    assert (held["phase"], held["attempt"]) == ("Running", 1), \
        f"the job was requeued before the stale attempt had stopped: {held}"
    assert "event=lease.fenced" in w1.logs()

    stack.start_agent(GROUP, "w2")
    done = await stack.wait_job("j1", lambda job: bool(
        [c for c in job["status"].get("conditions") or [] if c["type"] == "Complete"]), timeout=60,
        message="j1 requeued after w1's Lease lapsed, run by w2, and Complete")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["attempt"] == 2 and done["status"]["claim"]["worker"] == "w2"
    assert_attempts_do_not_overlap(log)

    replica.process.start()  # the network is back: w1's give-back for attempt 1 is stale and refused
    state = stack.agent_dir("w1") / "state"
    wait_until(lambda: not spool_files(state), timeout=30, message="w1 dropped its reports for attempt 1")
    final = await stack.get_job("j1")
    assert final["metadata"]["resourceVersion"] == done["metadata"]["resourceVersion"], \
        f"the job was written after it ended: {final['status']}"


async def test_a_fenced_job_that_may_not_run_again_fails_with_the_reason_once_the_worker_is_back(
        stack: Stack, scratch: Path, proxy_sa_kubeconfig: Path, tls: ProxyTLS):
    """With a margin large enough, the agent fences early and reaches the cluster again before its
    Lease lapses: then its own report is what the job shows, and it says why the job stopped."""
    log, pids = scratch / "stamps.log", scratch / "attempt-1.pids"
    await stack.group(GROUP, leaseDurationSeconds=30, selfFencingMarginSeconds=24, jobGracePeriodSeconds=1)
    replica = start_proxy(stack.processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, name="hrw-proxy-w1")
    w1 = stack.start_agent(GROUP, "w1", proxy=replica)
    await stack.runbook("stamped", STAMPED, parameters=STAMPED_PARAMETERS)
    await stack.job("j1", "stamped", GROUP, parameters={"log": str(log), "pids": str(pids)},
                    retryPolicy={"maxAttempts": 1, "retryOn": ["WorkerLost"]})
    await stack.wait_phase("j1", "Running")
    leader, child = (int(p) for p in wait_until(lambda: pids.exists() and pids.read_text().split(),
                                                message="attempt 1 started its background child"))

    replica.process.kill()
    w1.wait_for_log(r"event=job\.fenced job=j1 attempt=1", timeout=15)
    wait_until(lambda: not pid_runs(leader) and not pid_runs(child), timeout=10, message="w1 stopped attempt 1")
    replica.process.start()

    failed = (await stack.wait_phase("j1", "Failed", timeout=30))["status"]
    assert failed["attempt"] == 1 and failed["reason"] == "WorkerLost"
    assert "the agent could not renew its Lease for" in failed["message"]
    assert "stopped the job so that no second attempt overlaps it" in failed["message"]
    assert failed["exitCode"] == 128 + 15, "SIGTERM first: the leader ends on it (its child needs the SIGKILL)"
