"""A job on every worker of a group (`spec.fanOut`), like AWS SSM Run Command: one child job per
target worker, pinned to it, at most `maxConcurrency` at once, none started after more than
`maxErrors` failures; a label selector picks workers by the labels of their agent config.

Each run appends `start <worker>` and `end <worker>` to a ledger in the `scratch` folder (jobs run
as the job user, outside the work dir), so how many ran where, and whether they overlapped, is
read from the ledger, not guessed from timing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrw_api import names
from hrw_api.kubeclient import RUNBOOK_JOBS, WORKER_GROUPS
from tests.e2e.test_cli_jobs import hrw
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "fleet"
WORKERS = ("w-a", "w-b", "w-c")
# Fails on the workers named in $HRW_PARAM_FAIL_ON (space-separated); the pause makes an overlap
# of two runs visible in the ledger if one ever happened.
RECORD = """\
echo "start $HRW_WORKER_NAME" >> "$HRW_PARAM_LEDGER"
sleep 0.5
echo "output of $HRW_WORKER_NAME"
echo "end $HRW_WORKER_NAME" >> "$HRW_PARAM_LEDGER"
for bad in $HRW_PARAM_FAIL_ON; do
  if [ "$bad" = "$HRW_WORKER_NAME" ]; then exit 3; fi
done
"""
PARAMETERS = [{"name": "ledger", "type": "string"}, {"name": "fail_on", "type": "string", "default": ""}]


async def _fleet(stack: Stack, labels: dict[str, dict[str, str]] | None = None) -> None:
    await stack.group(GROUP, maxJobsPerWorker=2, leaseDurationSeconds=15)
    for worker in WORKERS:
        stack.start_agent(GROUP, worker, labels=(labels or {}).get(worker, {}))
    await stack.runbook("record", RECORD, parameters=PARAMETERS)

    async def all_ready() -> bool:
        group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
        return (group.get("status") or {}).get("readyWorkers") == len(WORKERS)

    await async_wait_until(all_ready, timeout=30, message="three ready workers in the group's status")


async def _children(stack: Stack, parent: str) -> list[dict[str, Any]]:
    listed = await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace),
                                    labelSelector=f"{names.LABEL_FAN_OUT_JOB}={parent}")
    return list(listed.get("items") or [])


def _ledger(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_a_group_wide_job_with_max_concurrency_1_runs_on_each_worker_once_one_at_a_time(
        stack: Stack, scratch: Path):
    ledger = scratch / "ledger"
    await _fleet(stack)
    await stack.job("patch-all", "record", GROUP, parameters={"ledger": str(ledger)},
                    fanOut={"all": True, "maxConcurrency": 1})

    parent = await stack.wait_phase("patch-all", "Succeeded", timeout=90)

    lines = _ledger(ledger)
    started = [line.split()[1] for line in lines if line.startswith("start ")]
    assert sorted(started) == list(WORKERS), lines  # each worker exactly once
    # One at a time: every start is followed by its own end before the next start.
    assert lines == [f"{verb} {worker}" for worker in started for verb in ("start", "end")], lines
    fan = parent["status"]["fanOut"]
    assert (fan["targets"], fan["succeeded"], fan["failed"], fan["skipped"]) == (3, 3, 0, 0)
    assert fan["progress"] == "3/3 done"
    assert [w["worker"] for w in fan["workers"]] == list(WORKERS)
    assert parent["status"]["reason"] == "AllWorkersSucceeded"

    children = await _children(stack, "patch-all")
    assert sorted(c["spec"]["pinnedWorker"] for c in children) == list(WORKERS)
    for child in children:
        worker = child["spec"]["pinnedWorker"]
        assert child["status"]["phase"] == "Succeeded"
        assert child["status"]["claim"]["worker"] == worker  # run by the worker it is pinned to
        assert child["metadata"]["ownerReferences"][0]["uid"] == parent["metadata"]["uid"]
        assert child["metadata"]["labels"][names.LABEL_WORKER] == worker
        entry = next(w for w in fan["workers"] if w["worker"] == worker)
        assert entry["job"] == child["metadata"]["name"] and entry["phase"] == "Succeeded"
        # One worker's output, under its child's name: what `hrw logs CHILD` prints.
        assert await stack.output(child["metadata"]["name"]) == f"output of {worker}\n"
    # No agent ever claimed the parent, and none tried a child pinned to another worker.
    assert "claim" not in parent["status"]
    for worker in WORKERS:
        assert "pinned to worker" not in stack.agents[worker].logs()


async def test_a_group_wide_job_stops_starting_children_after_max_errors_failures(stack: Stack, scratch: Path):
    ledger = scratch / "ledger"
    await _fleet(stack)
    await stack.job("patch-risky", "record", GROUP, parameters={"ledger": str(ledger), "fail_on": "w-a w-b"},
                    fanOut={"all": True, "maxConcurrency": 1, "maxErrors": 1})

    parent = await stack.wait_phase("patch-risky", "Failed", timeout=90)

    started = [line.split()[1] for line in _ledger(ledger) if line.startswith("start ")]
    assert started == ["w-a", "w-b"]  # the targets in name order; w-c never ran
    status = parent["status"]
    assert status["reason"] == "MaxErrorsExceeded"
    assert "2 of 3 workers failed (w-a, w-b), more than maxErrors 1" in status["message"]
    fan = status["fanOut"]
    assert (fan["succeeded"], fan["failed"], fan["skipped"], fan["running"], fan["pending"]) == (0, 2, 1, 0, 0)
    skipped = next(w for w in fan["workers"] if w["worker"] == "w-c")
    assert skipped == {"worker": "w-c", "phase": "Skipped", "reason": "MaxErrorsExceeded"}
    assert sorted(c["spec"]["pinnedWorker"] for c in await _children(stack, "patch-risky")) == ["w-a", "w-b"]
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in status["conditions"])

    # `hrw logs PARENT --worker W`: one worker's output; a skipped worker has none; the parent says how.
    one = await hrw(stack, "logs", "patch-risky", "--worker", "w-b")
    assert (one.code, one.stdout) == (0, "output of w-b\n"), one
    none = await hrw(stack, "logs", "patch-risky", "--worker", "w-c")
    assert none.code != 0 and "has no child job: it is Skipped (MaxErrorsExceeded)" in none.stderr, none
    parent_only = await hrw(stack, "logs", "patch-risky")
    assert parent_only.code != 0 and "hrw logs patch-risky --worker W" in parent_only.stderr, parent_only


async def test_a_selector_picks_only_the_workers_whose_labels_match_and_an_ordinary_job_is_unchanged(
        stack: Stack, scratch: Path):
    ledger = scratch / "ledger"
    await _fleet(stack, labels={"w-a": {"role": "web", "zone": "a"}, "w-b": {"role": "db"},
                                "w-c": {"role": "web", "zone": "c"}})

    async def labels_shown() -> bool:
        group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
        return {w["name"]: w.get("labels") for w in group["status"]["workers"]} == {
            "w-a": {"role": "web", "zone": "a"}, "w-b": {"role": "db"}, "w-c": {"role": "web", "zone": "c"}}

    await async_wait_until(labels_shown, timeout=20, message="each worker's labels in the group's status")
    await stack.job("web-only", "record", GROUP, parameters={"ledger": str(ledger)},
                    fanOut={"selector": {"matchLabels": {"role": "web"},
                                         "matchExpressions": [{"key": "zone", "operator": "Exists"}]},
                            "maxConcurrency": "100%"})

    parent = await stack.wait_phase("web-only", "Succeeded", timeout=90)

    assert sorted(line.split()[1] for line in _ledger(ledger) if line.startswith("start ")) == ["w-a", "w-c"]
    assert [w["worker"] for w in parent["status"]["fanOut"]["workers"]] == ["w-a", "w-c"]

    # An ordinary job of the same group: one run on one worker, no children, no fan-out status.
    ledger.unlink()
    await stack.job("once", "record", GROUP, parameters={"ledger": str(ledger)})
    job = await stack.wait_phase("once", "Succeeded")
    assert len([line for line in _ledger(ledger) if line.startswith("start ")]) == 1
    assert "fanOut" not in job["status"] and "pinnedWorker" not in job["spec"]
    assert await _children(stack, "once") == []


async def test_a_job_that_pins_itself_to_a_worker_is_refused(stack: Stack):
    await stack.group(GROUP)
    await stack.runbook("record", RECORD, parameters=PARAMETERS)
    await stack.job("sneaky", "record", GROUP, parameters={"ledger": "/dev/null"}, pinnedWorker="w-a")
    job = await stack.wait_phase("sneaky", "Failed")
    assert job["status"]["reason"] == "PinnedWorkerNotAllowed"
    assert "spec.pinnedWorker is set by the operator on the children of a fan-out job only" in job["status"]["message"]


HOLD = """\
echo "start $HRW_WORKER_NAME $HRW_JOB_ATTEMPT" >> "$HRW_PARAM_LEDGER"
while [ ! -e "$HRW_PARAM_GODIR/$HRW_WORKER_NAME.$HRW_JOB_ATTEMPT" ]; do sleep 0.05; done
echo "end $HRW_WORKER_NAME $HRW_JOB_ATTEMPT" >> "$HRW_PARAM_LEDGER"
"""


async def test_a_lost_workers_child_is_requeued_for_that_worker_and_the_fan_out_goes_on_when_it_returns(
        stack: Stack, scratch: Path):
    ledger, godir = scratch / "ledger", scratch / "go"
    godir.mkdir()
    for go in ("w-a.2", "w-b.1"):  # w-a's first attempt holds until its agent is gone
        (godir / go).touch()
    await stack.group(GROUP, leaseDurationSeconds=10)
    for worker in ("w-a", "w-b"):
        stack.start_agent(GROUP, worker)
    await stack.runbook("hold", HOLD, parameters=[{"name": "ledger", "type": "string"},
                                                  {"name": "godir", "type": "string"}])

    async def two_ready() -> bool:
        group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
        return (group.get("status") or {}).get("readyWorkers") == 2

    await async_wait_until(two_ready, timeout=30, message="two ready workers")
    await stack.job("roll", "hold", GROUP, parameters={"ledger": str(ledger), "godir": str(godir)},
                    fanOut={"all": True, "maxConcurrency": 1})
    async def first_attempt_running() -> bool:
        return "start w-a 1" in _ledger(ledger)

    await async_wait_until(first_attempt_running, timeout=60, message="w-a's first attempt running")
    stack.agents["w-a"].kill()

    parent = await stack.get_job("roll")
    child = parent["status"]["fanOut"]["workers"][0]["job"]
    requeued = await stack.wait_job(child, lambda j: (j.get("status") or {}).get("attempt") == 2, timeout=60,
                                    message="w-a's child requeued after its Lease lapsed")
    assert requeued["status"]["phase"] == "Queued" and requeued["status"]["reason"] == "Requeued"
    assert "start w-b 1" not in _ledger(ledger)  # maxConcurrency 1: w-b waits for w-a's child to end

    stack.agents["w-a"].start()
    parent = await stack.wait_phase("roll", "Succeeded", timeout=90)
    done = await stack.get_job(child)
    assert (done["status"]["phase"], done["status"]["claim"]["worker"], done["status"]["attempt"]) == (
        "Succeeded", "w-a", 2)
    lines = _ledger(ledger)
    assert lines.index("end w-a 2") < lines.index("start w-b 1"), lines
    assert "end w-a 1" not in lines
