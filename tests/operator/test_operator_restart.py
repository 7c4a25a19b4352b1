"""State lives only in the API: an operator killed in the middle of a job's life and started
again rebuilds its timers from the jobs it lists, so the run deadline still fires and a job an
agent finished while no operator ran still gets its Complete condition."""

from __future__ import annotations

from hrw_api.phases import RUN_DEADLINE_GRACE_SECONDS

from .conftest import Kit, start_operator


async def test_run_deadline_and_completion_survive_an_operator_kill(kit: Kit, processes, cluster) -> None:
    first = start_operator(processes, cluster, kit.namespace, name="hrw-operator-1")
    await kit.runbook("rb", timeout_seconds=1)
    await kit.group("pool")
    await kit.lease("pool", "w1", duration=300)
    for name in ("overdue", "finishes"):
        await kit.job(name, "rb", "pool")
        await kit.wait_phase(name, "Queued")
        await kit.claim_and_start(name, "w1")

    first.kill()  # SIGKILL: no cleanup, no goodbye
    await kit.succeed("finishes", "w1")  # the agent reports while no operator runs
    start_operator(processes, cluster, kit.namespace, name="hrw-operator-2")

    done = await kit.wait_job("finishes", lambda s: any(c["type"] == "Complete" for c in s.get("conditions") or []))
    assert done["status"]["phase"] == "Succeeded"
    overdue = await kit.wait_phase("overdue", "TimedOut", timeout=RUN_DEADLINE_GRACE_SECONDS + 15)
    assert overdue["status"]["reason"] == "DeadlineExceeded"
    assert "w1" in overdue["status"]["message"] and "1s" in overdue["status"]["message"]
    await kit.wait_event("overdue", "TimedOut")
