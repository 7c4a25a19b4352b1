"""GitOps without surprises: syncing the examples again (what Flux or Argo CD does on every
interval) never runs a job again. The one-shot job has no ttlSecondsAfterFinished, so it is
still there at the next sync and `kubectl apply` leaves it unchanged; the schedule is unchanged
too. The test plays the agent that runs the job."""

from __future__ import annotations

from pathlib import Path

from .conftest import Kit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sync(cluster, namespace: str) -> dict[str, str]:
    """`kubectl apply` of examples/ as a GitOps tool would: what kubectl did to each object."""
    out = cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    return {line.split(" ")[0]: line.split(" ", 1)[1] for line in out.splitlines() if " " in line}


async def test_applying_the_gitops_examples_twice_runs_the_job_once(kit: Kit, operator, cluster) -> None:
    first = sync(cluster, kit.namespace)
    assert first["runbookjob.hrw.dev/hello-world"] == "created"
    assert first["runbookschedule.hrw.dev/hello-weekdays"] == "created"
    await kit.lease("datacenter-a", "w1", duration=300)
    queued = await kit.wait_phase("hello-world", "Queued", timeout=30)
    await kit.claim_and_start("hello-world", "w1")
    await kit.succeed("hello-world", "w1")
    await kit.wait_job("hello-world", lambda s: any(c["type"] == "Complete" for c in s.get("conditions") or []))

    again = sync(cluster, kit.namespace)
    assert again["runbookjob.hrw.dev/hello-world"] == "unchanged"
    assert again["runbookschedule.hrw.dev/hello-weekdays"] == "unchanged"
    job = await kit.get_job("hello-world")
    assert job["metadata"]["uid"] == queued["metadata"]["uid"]
    assert job["status"]["phase"] == "Succeeded" and job["status"]["attempt"] == 1
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert [e["reason"] for e in await kit.events_of("hello-world")].count("Queued") == 1
