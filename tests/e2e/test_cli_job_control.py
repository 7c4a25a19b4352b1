"""`hrw jobs`, `hrw cancel` and `hrw rerun` as a user runs them: real `hrw` subprocesses (stdout a
pipe, as in a script) against the real control plane, operator, proxy and agent.

Piped output is plain: no colour codes, columns aligned with spaces. Mistakes (a job that does not
exist, a finished job to cancel, an unknown phase) are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

from hrw_api import names
from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.e2e.test_cli_jobs import _created, hrw
from tests.support.stack import Stack

GROUP = "dc"


async def test_hrw_jobs_lists_jobs_in_plain_aligned_columns_filtered_by_group_and_phase(stack: Stack):
    await stack.group(GROUP)
    await stack.group("elsewhere")  # no agent: its job stays Queued
    stack.start_agent(GROUP, "w1")
    await stack.runbook("quick", "echo hi\n")
    await stack.job("done-job", "quick", GROUP)
    await stack.wait_phase("done-job", "Succeeded")
    await stack.job("waiting-job", "quick", "elsewhere")
    await stack.wait_phase("waiting-job", "Queued")

    listed = await hrw(stack, "jobs")
    assert listed.code == 0, listed
    assert "\x1b" not in listed.stdout and "\t" not in listed.stdout
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "RUNBOOK", "GROUP", "PHASE", "ATTEMPT", "WORKER", "REASON", "AGE"]
    assert [row.split()[:6] for row in rows] == [["done-job", "quick", GROUP, "Succeeded", "1", "w1"],
                                                 ["waiting-job", "quick", "elsewhere", "Queued", "1", "-"]]
    phase_at = header.index("PHASE")
    assert [row[phase_at:].split()[0] for row in rows] == ["Succeeded", "Queued"]  # aligned under its header

    only_group = await hrw(stack, "jobs", "-g", GROUP)
    assert [row.split()[0] for row in only_group.stdout.splitlines()[1:]] == ["done-job"]
    only_queued = await hrw(stack, "jobs", "--phase", "Queued")
    assert [row.split()[0] for row in only_queued.stdout.splitlines()[1:]] == ["waiting-job"]

    nothing = await hrw(stack, "jobs", "-g", "nobody")
    assert nothing.code == 0 and nothing.stdout == ""
    assert nothing.stderr == f"No RunbookJobs found in namespace {stack.namespace} in group nobody.\n"
    bad_phase = await hrw(stack, "jobs", "--phase", "Done")
    assert bad_phase.code == 2 and "invalid choice: 'Done'" in bad_phase.stderr


async def test_hrw_cancel_stops_a_running_job_and_refuses_a_finished_or_missing_one(stack: Stack, scratch: Path):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("slow", 'echo started\nwhile [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.05; done\n',
                        parameters=[{"name": "go", "type": "string"}])
    await stack.job("long", "slow", GROUP, parameters={"go": str(scratch / "never")})
    await stack.wait_phase("long", "Running")

    cancelled = await hrw(stack, "cancel", "long")
    assert cancelled.code == 0, cancelled
    assert cancelled.stdout == "runbookjob.hrw.dev/long cancel requested\n"
    job = await stack.wait_phase("long", "Cancelled")
    assert job["spec"]["cancel"] is True

    again = await hrw(stack, "cancel", "long")
    assert again.code == 1
    assert again.stderr == (f"hrw: error: RunbookJob {stack.namespace}/long has already finished (Cancelled); "
                            "there is nothing to cancel\n")
    missing = await hrw(stack, "cancel", "ghost")
    assert missing.code == 1 and missing.stderr == f"hrw: error: RunbookJob {stack.namespace}/ghost not found\n"


async def test_hrw_rerun_creates_a_new_job_with_the_same_runbook_group_and_parameters_that_runs(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("greet", 'echo "hello $HRW_PARAM_NAME"\n', parameters=[{"name": "name", "type": "string"}])
    await stack.job("first", "greet", GROUP, parameters={"name": "World"}, retryPolicy={"maxAttempts": 2},
                    ttlSecondsAfterFinished=600)
    original = await stack.wait_phase("first", "Succeeded")

    rerun = await hrw(stack, "rerun", "first")
    assert rerun.code == 0, rerun
    name = _created(rerun.stdout)
    assert name != "first" and name.startswith("greet-")
    again = await stack.wait_phase(name, "Succeeded")
    assert again["spec"] == original["spec"]
    assert again["metadata"]["annotations"][names.ANNOTATION_RERUN_OF] == "first"
    assert await stack.output(name) == "hello World\n"

    named = await hrw(stack, "rerun", "first", "--name", "second")
    assert named.code == 0 and _created(named.stdout) == "second"
    missing = await hrw(stack, "rerun", "ghost")
    assert missing.code == 1 and "RunbookJob" in missing.stderr and "ghost" in missing.stderr
    listing = await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace))
    assert sorted(item["metadata"]["name"] for item in listing["items"]) == sorted(["first", name, "second"])
