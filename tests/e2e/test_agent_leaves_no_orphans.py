"""A job's processes never outlive the agent that started them (issue 11, "No orphans").

The agent is killed with SIGKILL, as the OOM killer would, on a host without systemd to take its
process tree down: the job's leader dies with it (its parent-death signal), but the child the job
started in the background lives on. The agent restarts with the same state dir, finds that child
through the process group it recorded, kills it (SIGTERM, then SIGKILL: this child ignores SIGTERM),
and gives the attempt back; the job runs again and succeeds, and the two attempts never overlap:
the runbook stamps what each attempt does, with the time, into a file outside its work dir.
"""

from __future__ import annotations

import json
from pathlib import Path

from hrw_dev.controlplane import pid_runs
from tests.support.stack import Stack
from tests.support.stamps import STAMPED, STAMPED_PARAMETERS, assert_attempts_do_not_overlap, stamps
from tests.support.waiting import wait_until

GROUP = "dc"


async def test_a_killed_agent_kills_its_jobs_leftovers_on_restart_and_the_job_runs_again_without_overlap(
        stack: Stack, scratch: Path):
    log, pids = scratch / "stamps.log", scratch / "attempt-1.pids"
    await stack.group(GROUP, jobGracePeriodSeconds=2)
    w1 = stack.start_agent(GROUP, "w1")
    await stack.runbook("stamped", STAMPED, parameters=STAMPED_PARAMETERS)
    await stack.job("j1", "stamped", GROUP, parameters={"log": str(log), "pids": str(pids)})
    await stack.wait_phase("j1", "Running")
    leader, child = (int(p) for p in wait_until(lambda: pids.exists() and pids.read_text().split(),
                                                message="attempt 1 started its background child"))
    records = stack.agent_dir("w1") / "state" / "processes"
    recorded = [json.loads(p.read_text()) for p in records.glob("*.json")]
    assert [(r["job"], r["attempt"], r["pgid"]) for r in recorded] == [("j1", 1, leader)]

    w1.kill()  # SIGKILL to the agent's own process group: the job's session is not in it
    wait_until(lambda: not pid_runs(leader), timeout=5,
               message=f"the job's leader {leader} died with the agent (parent-death signal)")
    assert pid_runs(child), "the job's background child outlives the agent, as on a host without systemd"
    alive_after_kill = len(stamps(log))
    wait_until(lambda: len(stamps(log)) > alive_after_kill + 2, timeout=5, message="the orphan keeps working")

    w1.start()  # the same config and state dir
    w1.wait_for_log(rf"event=orphans\.killed job=j1 attempt=1 pgid={leader} pids=\S*{child}", timeout=30)
    assert not pid_runs(child) and not pid_runs(leader)
    assert not list(records.glob("*.json")), "the leftover's record is forgotten once it is killed"
    w1.wait_for_log(r"event=job\.orphaned job=j1 attempt=1 phase=Running to=Queued", timeout=30)

    done = (await stack.wait_phase("j1", "Succeeded", timeout=60))["status"]
    assert done["attempt"] == 2 and done["claim"]["worker"] == "w1"
    assert_attempts_do_not_overlap(log)
    assert not list(records.glob("*.json")), "a finished job's record is removed"
