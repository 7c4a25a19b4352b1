"""Desired State Configuration of the worker servers (issue 16), with real agents.

The configuration ensures a file with a given content in the shared scratch dir (its scripts run
as the job user, like jobs): one file per worker (`$HRW_WORKER_NAME`), so that several agents on
this one machine each have their own. The test changes the file behind the agent's back and
reads what the agent reports through the group's `status.compliance`, its Lease and Events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hrw_api import ClaimIntent, names
from hrw_api.errors import Forbidden
from hrw_api.kubeclient import LEASES, WORKER_CONFIGURATIONS, WORKER_GROUPS
from tests.e2e.test_cli_jobs import hrw
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

JSON = dict[str, Any]
GROUP = "dc"
CONFIG = "files"
TEST = '[ "$(cat "$HRW_PARAM_DIR/$HRW_WORKER_NAME" 2>/dev/null)" = "$HRW_PARAM_CONTENT" ]\n'
SET = 'printf "%s" "$HRW_PARAM_CONTENT" > "$HRW_PARAM_DIR/$HRW_WORKER_NAME"\n'


def file_resource(scratch: Path, content: str, *, set_script: str = SET) -> JSON:
    return {"name": "motd", "interpreter": "bash", "test": TEST, "set": set_script,
            "parameters": {"dir": str(scratch), "content": content}}


async def configuration(stack: Stack, mode: str, resources: list[JSON], name: str = CONFIG) -> JSON:
    return await stack.admin.create(WORKER_CONFIGURATIONS.path(stack.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.WORKER_CONFIGURATION, "metadata": {"name": name},
        "spec": {"mode": mode, "resources": resources}})


async def group_with_configuration(stack: Stack, *, refresh: int = 5, require: bool = False, **spec: Any) -> None:
    await stack.group(GROUP, leaseDurationSeconds=10,
                      configuration={"name": CONFIG, "refreshSeconds": refresh, "requireCompliance": require},
                      **spec)


async def compliance(stack: Stack) -> JSON:
    group = await stack.admin.get(WORKER_GROUPS.path(stack.namespace, GROUP))
    return dict((group.get("status") or {}).get("compliance") or {})


async def wait_worker(stack: Stack, worker: str, state: str, *, digest: str | None = None,
                      timeout: float = 60) -> JSON:  # noqa: ASYNC109
    async def reached() -> JSON | None:
        summary = await compliance(stack)
        entry = next((w for w in summary.get("workers") or [] if w["name"] == worker), None)
        if entry is None or entry.get("state") != state:
            return None
        if digest is not None and entry.get("digest") != digest:
            return None
        return entry

    entry: JSON = await async_wait_until(reached, timeout=timeout, message=f"worker {worker} {state}")
    return entry


async def ready_digest(stack: Stack, name: str = CONFIG, *, not_: str | None = None) -> str:
    async def digest() -> str | None:
        obj = await stack.admin.get(WORKER_CONFIGURATIONS.path(stack.namespace, name))
        status = obj.get("status") or {}
        ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        value = status.get("digest")
        if ready is None or ready["status"] != "True" or not value or value == not_:
            return None
        return str(value)

    found: str = await async_wait_until(digest, timeout=30, message=f"WorkerConfiguration {name} Ready")
    return found


async def lease_report(stack: Stack, worker: str) -> JSON:
    lease = await stack.admin.get(LEASES.path(stack.namespace, names.lease_name(GROUP, worker)))
    text = lease["metadata"]["annotations"].get(names.ANNOTATION_COMPLIANCE) or "{}"
    report: JSON = json.loads(text)
    return report


async def event_reasons(stack: Stack) -> list[tuple[str, str]]:
    return [(e.get("reason", ""), e.get("note", "")) for e in await stack.events()
            if (e.get("regarding") or {}).get("kind") == names.WORKER_GROUP]


async def wait_event(stack: Stack, reason: str, note: str, *, count: int = 1) -> None:
    """At least `count` Events `reason` about the group whose note holds `note` (posted after the status)."""
    async def posted() -> bool:
        return sum(1 for r, n in await event_reasons(stack) if r == reason and note in n) >= count

    await async_wait_until(posted, timeout=30, message=f"{count} Event(s) {reason} with {note!r}")


async def test_a_new_agent_applies_the_configuration_and_reports_drift_without_changing_the_file(
        stack: Stack, scratch: Path):
    await configuration(stack, "ApplyAndMonitor", [file_resource(scratch, "hello from hrw")])
    await group_with_configuration(stack)
    digest = await ready_digest(stack)
    stack.start_agent(GROUP, "w1")

    entry = await wait_worker(stack, "w1", "Compliant", digest=digest)
    # Applied on joining: the file was absent, set made it (shown until the next test finds it in place).
    assert entry["resources"] in ([], [{"name": "motd", "state": "Corrected",
                                        "message": "test exited with code 1; set corrected it"}]), entry
    await wait_event(stack, "ConfigurationCorrected",
                     "worker w1: resource motd was corrected: test exited with code 1; set corrected it")
    target = scratch / "w1"
    assert target.read_text() == "hello from hrw"
    summary = await compliance(stack)
    assert (summary["compliantWorkers"], summary["readyWorkers"], summary["summary"]) == (1, 1, "1/1")
    report = await lease_report(stack, "w1")
    assert report["configuration"] == CONFIG and report["digest"] == digest

    target.write_text("changed behind the agent's back")
    entry = await wait_worker(stack, "w1", "Drifted", timeout=60)
    assert entry["resources"][0]["name"] == "motd" and entry["resources"][0]["state"] == "Drifted"
    assert target.read_text() == "changed behind the agent's back"
    assert (await compliance(stack))["summary"] == "0/1"
    await wait_event(stack, "ConfigurationDrifted", "worker w1: resource motd drifted: test exited with code 1")

    # Monitoring changes nothing, however often it tests.
    report = await lease_report(stack, "w1")
    checked = report["checkedTime"]

    async def tested_again() -> bool:
        return (await lease_report(stack, "w1"))["checkedTime"] != checked

    await async_wait_until(tested_again, timeout=60, message="the agent tests again after a refresh period")
    assert target.read_text() == "changed behind the agent's back"


async def test_auto_correct_sets_a_drifted_resource_back_and_reports_it_corrected(stack: Stack, scratch: Path):
    await configuration(stack, "ApplyAndAutoCorrect", [file_resource(scratch, "desired")])
    await group_with_configuration(stack)
    digest = await ready_digest(stack)
    stack.start_agent(GROUP, "w1")
    await wait_worker(stack, "w1", "Compliant", digest=digest)
    note = "worker w1: resource motd was corrected: test exited with code 1; set corrected it"
    await wait_event(stack, "ConfigurationCorrected", note)  # the apply on joining
    target = scratch / "w1"
    target.write_text("drifted")
    await wait_event(stack, "ConfigurationCorrected", note, count=2)  # the refresh that found it drifted
    assert target.read_text() == "desired"
    report = await lease_report(stack, "w1")
    assert report["resources"] in ([{"name": "motd", "state": "Corrected",
                                     "message": "test exited with code 1; set corrected it"}],
                                   [{"name": "motd", "state": "Compliant"}]), report
    assert (await compliance(stack))["workers"][0]["state"] == "Compliant"


async def test_a_failing_set_shows_failed_with_its_message(stack: Stack, scratch: Path):
    failing = 'echo "cannot write the motd" >&2\nexit 3\n'
    await configuration(stack, "ApplyAndMonitor", [file_resource(scratch, "never", set_script=failing)])
    await group_with_configuration(stack)
    digest = await ready_digest(stack)
    stack.start_agent(GROUP, "w1")
    entry = await wait_worker(stack, "w1", "Failed", digest=digest)
    assert entry["resources"] == [{"name": "motd", "state": "Failed",
                                   "message": "set exited with code 3: cannot write the motd"}]
    await wait_event(stack, "ConfigurationFailed",
                     "worker w1: resource motd failed: set exited with code 3: cannot write the motd")
    assert (await compliance(stack))["summary"] == "0/1"


async def test_a_configuration_change_is_applied_by_every_worker_of_the_group(stack: Stack, scratch: Path):
    await configuration(stack, "ApplyOnly", [file_resource(scratch, "first")])
    await group_with_configuration(stack, refresh=3600)
    first = await ready_digest(stack)
    for worker in ("w1", "w2"):
        stack.start_agent(GROUP, worker)
    for worker in ("w1", "w2"):
        await wait_worker(stack, worker, "Compliant", digest=first)
        assert (scratch / worker).read_text() == "first"

    await stack.admin.patch(WORKER_CONFIGURATIONS.path(stack.namespace, CONFIG),
                            {"spec": {"resources": [file_resource(scratch, "second")]}})
    second = await ready_digest(stack, not_=first)
    for worker in ("w1", "w2"):
        entry = await wait_worker(stack, worker, "Compliant", digest=second)
        assert (scratch / worker).read_text() == "second"
        assert entry["digest"] == second
    assert (await compliance(stack))["summary"] == "2/2"
    shown = await hrw(stack, "compliance", GROUP)
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"WorkerGroup {GROUP}: WorkerConfiguration {CONFIG} ({second[:19]}), 2/2 ready")
    assert [line.split()[:2] + line.split()[4:6] for line in lines[2:]] == [
        ["w1", "Compliant", "motd", "Corrected"], ["w2", "Compliant", "motd", "Corrected"]], shown.stdout


async def test_a_group_requiring_compliance_keeps_a_drifted_worker_from_claiming_jobs(stack: Stack, scratch: Path):
    await configuration(stack, "ApplyAndMonitor", [file_resource(scratch, "ok")])
    await group_with_configuration(stack, require=True)
    digest = await ready_digest(stack)
    await stack.runbook("hello", "echo hello\n")
    stack.start_agent(GROUP, "w1")
    await wait_worker(stack, "w1", "Compliant", digest=digest)
    await stack.job("before", "hello", GROUP)
    await stack.wait_phase("before", "Succeeded")

    (scratch / "w1").write_text("drifted")
    await wait_worker(stack, "w1", "Drifted")
    # The agent does not try; the proxy refuses the claim anyway (here made with the worker's own credential).
    await stack.job("while-drifted", "hello", GROUP, queueTimeoutSeconds=5)
    job = await stack.wait_job("while-drifted",
                               lambda j: (j.get("status") or {}).get("phase") in {"TimedOut", "Failed"},
                               message="the job ends unclaimed")
    assert job["status"]["reason"] == "QueueTimeout", job["status"]
    credential = (stack.agent_dir("w1") / "state" / "credential").read_text().strip()
    await stack.job("claim-by-hand", "hello", GROUP)
    queued = await stack.wait_phase("claim-by-hand", "Queued")
    async with stack.proxy.client(credential) as kube:
        try:
            await kube.patch(f"/apis/hrw.dev/v1alpha1/namespaces/{stack.namespace}/runbookjobs/claim-by-hand/status",
                             ClaimIntent(queued["status"]["attempt"], "w1").to_patch(), json_patch=True)
        except Forbidden as refused:
            assert "requires compliance" in refused.message and "Drifted" in refused.message, refused.message
        else:
            raise AssertionError("the proxy let a drifted worker claim a job")

    (scratch / "w1").write_text("ok")
    await wait_worker(stack, "w1", "Compliant", digest=digest)
    await stack.wait_phase("claim-by-hand", "Succeeded", timeout=60)
    # A worker reads its own group's configuration only.
    await stack.group("other", configuration={"name": CONFIG})
    async with stack.proxy.client(credential) as kube:
        try:
            await kube.get(f"/apis/hrw.dev/v1alpha1/namespaces/{stack.namespace}/workergroups/other/configuration")
        except Forbidden as refused:
            assert "may read only its own WorkerGroup" in refused.message
        else:
            raise AssertionError("a worker read another group's configuration")


async def test_a_configuration_naming_a_missing_runbook_or_a_refused_interpreter_is_reported_with_a_reason(
        stack: Stack, scratch: Path):
    await stack.group(GROUP, interpreters=["bash"])
    await configuration(stack, "ApplyOnly", [{"name": "ref", "runbookRef": {"name": "absent"}}], name="missing")
    await configuration(stack, "ApplyOnly", [{"name": "py", "interpreter": "python3", "test": "pass\n",
                                              "set": "pass\n"}], name="python")
    await configuration(stack, "ApplyOnly", [{"name": "broken", "interpreter": "python3", "test": "def (:\n",
                                              "set": "pass\n"}], name="broken")
    await stack.admin.patch(WORKER_GROUPS.path(stack.namespace, GROUP),
                            {"spec": {"configuration": {"name": "python"}}})

    async def ready_condition(name: str, reason: str) -> JSON | None:
        obj = await stack.admin.get(WORKER_CONFIGURATIONS.path(stack.namespace, name))
        ready = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
        return ready if ready is not None and ready["reason"] == reason else None

    missing = await async_wait_until(lambda: ready_condition("missing", "RunbookNotFound"), timeout=30,
                                     message="RunbookNotFound")
    assert missing["status"] == "False" and "Runbook 'absent' not found" in missing["message"]
    refused = await async_wait_until(lambda: ready_condition("python", "InterpreterNotAllowed"), timeout=30,
                                     message="InterpreterNotAllowed")
    assert f"WorkerGroup '{GROUP}' does not allow" in refused["message"]
    broken = await async_wait_until(lambda: ready_condition("broken", "ScriptSyntaxError"), timeout=30,
                                    message="ScriptSyntaxError")
    assert "spec.resources[0] (broken) test: python3 syntax error" in broken["message"]
    # Fixed, it becomes Ready: the operator follows the runbook it names.
    await stack.runbook("absent", 'test "$HRW_CONFIGURATION_STEP" = test\n')
    await async_wait_until(lambda: ready_condition("missing", "Valid"), timeout=30, message="Valid once it exists")


async def test_a_runbook_resource_runs_both_steps_and_its_secret_is_masked_in_the_report(stack: Stack, scratch: Path):
    await stack.secret("db-secret", {"password": "s3cr3t-Pa55"})
    await stack.asset("db", {"type": "Credential", "username": "admin",
                             "passwordFrom": {"secretKeyRef": {"name": "db-secret", "key": "password"}}})
    await stack.runbook("ensure-file", (
        'target="$HRW_PARAM_DIR/$HRW_WORKER_NAME"\n'
        'if [ "$HRW_CONFIGURATION_STEP" = test ]; then\n'
        '  [ "$(cat "$target" 2>/dev/null)" = "$HRW_PARAM_CONTENT" ] && exit 0\n'
        '  echo "not in place; the password is $HRW_ASSET_DB_PASSWORD" >&2\n'
        '  exit 1\n'
        'fi\n'
        'printf "%s" "$HRW_PARAM_CONTENT" > "$target"\n'),
        assets=["db"], parameters=[{"name": "dir", "required": True}, {"name": "content", "required": True}])
    await configuration(stack, "ApplyAndMonitor", [{"name": "file", "runbookRef": {"name": "ensure-file"},
                                                    "parameters": {"dir": str(scratch), "content": "from a runbook"}}])
    await group_with_configuration(stack)
    digest = await ready_digest(stack)
    stack.start_agent(GROUP, "w1")
    await wait_worker(stack, "w1", "Compliant", digest=digest)
    assert (scratch / "w1").read_text() == "from a runbook"

    (scratch / "w1").write_text("changed")
    entry = await wait_worker(stack, "w1", "Drifted")
    assert entry["resources"] == [{"name": "file", "state": "Drifted",
                                   "message": "test exited with code 1: not in place; the password is ***"}]
    everything = json.dumps(await compliance(stack)) + json.dumps(await lease_report(stack, "w1")) \
        + json.dumps(await stack.events()) + stack.all_logs()
    assert "s3cr3t-Pa55" not in everything


async def test_a_configuration_being_applied_takes_no_job_slot(stack: Stack, scratch: Path):
    hold = ('touch "$HRW_PARAM_DIR/started"\n'
            'while [ ! -e "$HRW_PARAM_DIR/go" ]; do sleep 0.1; done\n'
            'touch "$HRW_PARAM_DIR/done"\n')
    await configuration(stack, "ApplyOnly", [{"name": "slow", "interpreter": "bash",
                                              "test": '[ -e "$HRW_PARAM_DIR/done" ]', "set": hold,
                                              "parameters": {"dir": str(scratch)}}])
    await group_with_configuration(stack, maxJobsPerWorker=1)
    digest = await ready_digest(stack)
    await stack.runbook("hello", "echo hello\n")
    stack.start_agent(GROUP, "w1")

    async def started() -> bool:
        return (scratch / "started").exists()

    await async_wait_until(started, timeout=60, message="the set script started")

    await stack.job("beside", "hello", GROUP)
    await stack.wait_phase("beside", "Succeeded", timeout=60)
    assert not (scratch / "done").exists(), "the job ran while the configuration's set was still running"
    (scratch / "go").touch()
    await wait_worker(stack, "w1", "Compliant", digest=digest)
