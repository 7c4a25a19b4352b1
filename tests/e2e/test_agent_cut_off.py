"""A worker cut off from the cluster loses its job to another worker, and when it comes back it
stops the stale attempt and reports nothing for it (DESIGN.md, "Worker loss", and fencing).

The cut is real: the worker reaches the cluster through a proxy replica of its own, and that
replica is killed (SIGKILL: no goodbye, connections reset). Its Lease stops being renewed, the
operator requeues the job as attempt 2, a worker behind the other replica runs it to the end;
then the replica comes back, the cut-off worker's watch shows the job at attempt 2, and it kills
its attempt-1 process and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

from hrw_dev.controlplane import pid_runs
from tests.support.processes import ManagedProcess
from tests.support.proxy import ProxyTLS, start_proxy
from tests.support.stack import PROXY_ARGS, Stack, spool_files
from tests.support.waiting import wait_until

GROUP = "dc"

HOLD_ON_FIRST_ATTEMPT = """\
echo "attempt $HRW_JOB_ATTEMPT on $HRW_WORKER_NAME"
if [ "$HRW_JOB_ATTEMPT" = 1 ]; then
  echo $$ > "$HRW_PARAM_PIDFILE"
  while true; do sleep 0.1; done
fi
echo "done=$HRW_WORKER_NAME" >> "$HRW_OUTPUTS"
"""


async def test_a_cut_off_worker_loses_its_job_and_on_return_kills_the_stale_attempt_and_reports_nothing(
        stack: Stack, scratch: Path, proxy_sa_kubeconfig: Path, tls: ProxyTLS):
    pidfile = scratch / "attempt-1.pid"
    await stack.group(GROUP, leaseDurationSeconds=10)
    replica = start_proxy(stack.processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, name="hrw-proxy-w1")
    w1: ManagedProcess = stack.start_agent(GROUP, "w1", proxy=replica)
    await stack.runbook("hold", HOLD_ON_FIRST_ATTEMPT, parameters=[{"name": "pidfile", "type": "string"}])
    await stack.job("j1", "hold", GROUP, parameters={"pidfile": str(pidfile)})
    running = await stack.wait_phase("j1", "Running")
    assert running["status"]["claim"]["worker"] == "w1"
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(),
                         message="attempt 1's script started"))

    replica.process.kill()  # the cut: w1 can no longer reach the cluster
    stack.start_agent(GROUP, "w2")
    done = await stack.wait_job("j1", lambda job: bool(
        [c for c in job["status"].get("conditions") or [] if c["type"] == "Complete"]), timeout=60,
        message="j1 requeued after w1's Lease lapsed, run by w2, and Complete")
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["attempt"] == 2 and done["status"]["claim"]["worker"] == "w2"
    assert done["status"]["outputs"] == {"done": "w2"}
    assert pid_runs(pid), "attempt 1 should still run on the cut-off server until it hears the news"

    replica.process.start()  # the network is back
    w1.wait_for_log(r"event=job\.superseded job=j1 attempt=1", timeout=60)
    wait_until(lambda: not pid_runs(pid), timeout=30, message=f"w1 killed its stale attempt-1 process {pid}")
    state = stack.agent_dir("w1") / "state"
    wait_until(lambda: not spool_files(state), timeout=30, message="w1 dropped its reports for attempt 1")

    final = await stack.get_job("j1")
    assert final["metadata"]["resourceVersion"] == done["metadata"]["resourceVersion"], \
        f"the job was written after it ended: {final['status']}"
    assert await stack.output("j1", attempt=2) == "attempt 2 on w2\n"
