"""A worker's life after install (issue 14): seen with `hrw workers`, refused work when its agent
is below a raised minimum version, removed with `hrw worker remove`, and cleaned up with its group.

(An agent restarted on the same state dir keeping its identity and delivering its spool is
`test_agent_delivers_everything.py`; an upgrade through the installer, `tests/install/`.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES, SECRETS, WORKER_GROUPS
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

from .test_cli_jobs import hrw

GROUP = "dc"
OLD_VERSION = "0.0.1"
# The agent as it is, claiming to be an old release: what a server still running one looks like.
OLD_AGENT = (sys.executable, "-c", f"import sys, hrw_agent; hrw_agent.__version__ = {OLD_VERSION!r}; "
                                   "from hrw_agent.main import main; sys.exit(main(sys.argv[1:]))")
WAITING = """\
echo "attempt $HRW_JOB_ATTEMPT on $HRW_WORKER_NAME"
while [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.1; done
"""


async def _worker(stack: Stack, worker: str) -> dict:
    group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
    return next((w for w in (group.get("status") or {}).get("workers") or [] if w["name"] == worker), {})


async def _gone(stack: Stack, path: str) -> bool:
    try:
        await stack.admin.get(path)
    except NotFound:
        return True
    return False


async def test_an_agent_below_a_raised_minimum_version_is_refused_work_and_shown_outdated(stack: Stack):
    await stack.group(GROUP)
    old = stack.start_agent(GROUP, "w-old", program=OLD_AGENT)
    stack.start_agent(GROUP, "w-new")
    await async_wait_until(lambda: _both_ready(stack), timeout=30, message="both workers ready")
    listed = await hrw(stack, "workers", GROUP)
    assert listed.code == 0, listed.stderr
    assert OLD_VERSION in listed.stdout and "Ready" in listed.stdout and "\x1b" not in listed.stdout

    await stack.admin.patch(WORKER_GROUPS.path(stack.namespace, GROUP), {"spec": {"minAgentVersion": "0.0.2"}})
    old.wait_for_log(r"event=agent\.outdated", timeout=30)
    entry = await async_wait_until(lambda: _outdated(stack), timeout=30, message="w-old shown outdated")
    assert entry["ready"] is False and "0.0.2" in entry["message"]
    await stack.runbook("hello", "echo hello\n")
    for i in range(3):
        await stack.job(f"j{i}", "hello", GROUP)
    for i in range(3):
        job = await stack.wait_phase(f"j{i}", "Succeeded", timeout=60)
        assert job["status"]["claim"]["worker"] == "w-new"
    assert "job.claim" not in old.logs()  # it did not even try

    listed = await hrw(stack, "workers", GROUP)
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert rows["w-old"].split()[1] == "Outdated" and "0.0.2" in rows["w-old"]
    assert rows["w-new"].split()[1] == "Ready"


async def _both_ready(stack: Stack) -> bool:
    entries = [await _worker(stack, w) for w in ("w-old", "w-new")]
    return all(entry.get("ready") for entry in entries)


async def _outdated(stack: Stack) -> dict | None:
    entry = await _worker(stack, "w-old")
    return entry if entry.get("reason") == "Outdated" else None


async def test_hrw_workers_says_clearly_what_is_wrong(stack: Stack):
    missing = await hrw(stack, "workers", "nope")
    assert missing.code == 1 and missing.stderr.strip() == f"hrw: error: WorkerGroup {stack.namespace}/nope not found"
    await stack.group(GROUP)
    empty = await hrw(stack, "workers", GROUP)
    assert empty.code == 0 and empty.stdout == "" and "no workers in group" in empty.stderr
    unknown = await hrw(stack, "worker", "remove", GROUP, "ghost")
    assert unknown.code == 1 and "worker 'ghost' not found" in unknown.stderr


async def test_hrw_worker_remove_revokes_the_worker_gives_its_job_back_and_deletes_its_lease(stack: Stack,
                                                                                           scratch: Path):
    go = scratch / "go"
    await stack.group(GROUP, leaseDurationSeconds=10)
    removed = stack.start_agent(GROUP, "w1")
    await stack.runbook("wait", WAITING, parameters=[{"name": "go", "type": "string"}])
    await stack.job("j1", "wait", GROUP, parameters={"go": str(go)},
                    retryPolicy={"maxAttempts": 2, "retryOn": ["WorkerLost"]})
    job = await stack.wait_phase("j1", "Running")
    assert job["status"]["claim"]["worker"] == "w1"
    stack.start_agent(GROUP, "w2")

    result = await hrw(stack, "worker", "remove", GROUP, "w1", timeout=120)
    assert result.code == 0, result.stderr
    assert "credential revoked" in result.stdout and "removed from group" in result.stdout
    assert await _gone(stack, SECRETS.path(stack.namespace, names.worker_secret_name(GROUP, "w1")))
    assert await _gone(stack, LEASES.path(stack.namespace, names.lease_name(GROUP, "w1")))
    removed.wait_for_log(r"event=lease\.renew\.failed", timeout=10)

    job = await stack.wait_job("j1", lambda j: (j.get("status") or {}).get("attempt") == 2
                               and (j["status"].get("claim") or {}).get("worker") == "w2", timeout=60,
                               message="attempt 2 on w2")
    go.touch()
    job = await stack.wait_phase("j1", "Succeeded", timeout=60)
    assert job["status"]["claim"]["worker"] == "w2"
    group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
    assert [w["name"] for w in group["status"]["workers"]] == ["w2"]
    listed = await hrw(stack, "workers", GROUP)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["WORKER", "w2"]


async def test_deleting_a_group_deletes_its_workers_leases_and_credentials(stack: Stack):
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
    lease_path = LEASES.path(stack.namespace, names.lease_name(GROUP, "w1"))
    secret_path = SECRETS.path(stack.namespace, names.worker_secret_name(GROUP, "w1"))
    owner = {"apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "name": GROUP,
             "uid": group["metadata"]["uid"]}
    for path in (lease_path, secret_path):
        obj = await async_wait_until(lambda path=path: stack.admin.get(path), timeout=30, ignore=(NotFound,),
                                     message=f"{path} created")
        assert obj["metadata"]["ownerReferences"] == [owner]
    agent.stop(timeout=60)  # SIGTERM: it drains and exits, its Lease stays

    await stack.admin.delete(WORKER_GROUPS.path(stack.namespace, GROUP))
    # The control plane's kube-controller-manager runs the garbage collector (hrw_dev.controlplane).
    for path in (lease_path, secret_path):
        await async_wait_until(lambda path=path: _gone(stack, path), timeout=60, message=f"{path} collected")
