"""A job's life through the real operator, proxy and agent processes: output, outputs, exit codes,
timeouts, cancel, parameters that try to inject, and secrets that must never show."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.support.stack import Stack, listening_inodes, socket_inodes
from tests.support.waiting import async_wait_until, wait_until

GROUP = "dc"

HELLO = """\
echo "hello $HRW_PARAM_NAME"
echo "greeting=hello $HRW_PARAM_NAME" >> "$HRW_OUTPUTS"
echo "worker=$HRW_WORKER_NAME" >> "$HRW_OUTPUTS"
echo "to stderr" >&2
"""


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


async def test_job_succeeds_with_streamed_output_and_outputs(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("hello", HELLO, parameters=[{"name": "name", "type": "string", "required": True}])
    await stack.job("j1", "hello", GROUP, parameters={"name": "world"})
    job = await stack.wait_phase("j1", "Succeeded")
    status = job["status"]
    assert status["reason"] == "Completed"
    assert status["exitCode"] == 0
    assert status["outputs"] == {"greeting": "hello world", "worker": "w1"}
    assert status["claim"]["worker"] == "w1"
    output = await stack.output("j1")
    assert output == "hello world\nto stderr\n"
    assert status["output"]["bytes"] == len(output)
    assert status["output"]["lines"] == 2
    assert status["output"]["tail"] == output
    assert not list(stack.work_root("w1").iterdir())  # work dir removed


async def test_failing_script_ends_failed_with_its_exit_code(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("fail", "echo about to fail\nexit 3\n")
    await stack.job("j1", "fail", GROUP)
    job = await stack.wait_phase("j1", "Failed")
    assert job["status"]["exitCode"] == 3
    assert job["status"]["reason"] == "NonZeroExit"
    assert await stack.output("j1") == "about to fail\n"


async def test_timeout_ends_timed_out_and_stops_the_process(stack: Stack, scratch: Path):
    pidfile = scratch / "timeout.pid"
    await stack.group(GROUP, jobGracePeriodSeconds=1)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("forever", 'echo $$ > "$HRW_PARAM_PIDFILE"\nwhile true; do sleep 0.2; done\n',
                        parameters=[{"name": "pidfile", "type": "string"}])
    await stack.job("j1", "forever", GROUP, timeoutSeconds=2, parameters={"pidfile": str(pidfile)})
    job = await stack.wait_phase("j1", "TimedOut", timeout=40)
    assert job["status"]["reason"] == "Timeout"
    assert _pid_gone(int(pidfile.read_text()))


async def test_cancel_ends_cancelled_and_the_process_is_gone(stack: Stack, scratch: Path):
    pidfile = scratch / "cancel.pid"
    await stack.group(GROUP, jobGracePeriodSeconds=1)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("forever", 'echo $$ > "$HRW_PARAM_PIDFILE"\nwhile true; do sleep 0.2; done\n',
                        parameters=[{"name": "pidfile", "type": "string"}])
    await stack.job("j1", "forever", GROUP, parameters={"pidfile": str(pidfile)})
    await stack.wait_phase("j1", "Running")
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), message="the job's pid"))
    await stack.admin.patch(RUNBOOK_JOBS.path(stack.namespace, "j1"), {"spec": {"cancel": True}})
    job = await stack.wait_phase("j1", "Cancelled")
    assert job["status"]["phase"] == "Cancelled"
    wait_until(lambda: _pid_gone(pid), timeout=15, message=f"the cancelled job's process {pid} gone")
    stack.agents["w1"].wait_for_log(r"event=job\.(superseded|abandoned) job=j1", timeout=15)


async def test_shell_metacharacters_in_a_parameter_arrive_verbatim_and_run_nothing(stack: Stack, scratch: Path):
    canary = Path(f"/tmp/pwned-{stack.namespace}")
    evil = f"$(touch {canary}); `touch {canary}` \"'; touch {canary}; echo hacked && rm -rf \"$HOME\" | cat"
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("echo", 'printf "%s" "$HRW_PARAM_TEXT"\n'
                        'printf "text=%s\\n" "$HRW_PARAM_TEXT" >> "$HRW_OUTPUTS"\n'
                        'python3 -c \'import json,os; print(json.load(open(os.environ["HRW_PARAMETERS_FILE"]))["text"] '
                        '== os.environ["HRW_PARAM_TEXT"])\'\n',
                        parameters=[{"name": "text", "type": "string"}])
    await stack.job("j1", "echo", GROUP, parameters={"text": evil})
    job = await stack.wait_phase("j1", "Succeeded")
    assert await stack.output("j1") == evil + "True\n"
    assert job["status"]["outputs"]["text"] == evil
    assert not canary.exists()  # noqa: ASYNC240
    assert "hacked\n" not in await stack.output("j1")


async def test_secret_never_appears_in_output_status_events_or_logs(stack: Stack):
    secret = "Tr0ub4dor&3-e2e-secret"
    await stack.group(GROUP)
    await stack.secret("db", {"password": secret})
    await stack.asset("db", {"type": "Credential", "username": "app", "passwordFrom": {
        "secretKeyRef": {"name": "db", "key": "password"}}})
    script = """\
echo "raw: $HRW_ASSET_DB_PASSWORD"
printf 'json: {"p": "%s"}\\n' "$HRW_ASSET_DB_PASSWORD"
printf '%s' "$HRW_ASSET_DB_PASSWORD" | base64
printf 'split: %s' "${HRW_ASSET_DB_PASSWORD:0:5}"; printf '%s\n' "${HRW_ASSET_DB_PASSWORD:5}"
cat "$HRW_ASSETS_DIR/db/password"; echo
echo "user: $HRW_ASSET_DB_USERNAME"
echo "leak=$HRW_ASSET_DB_PASSWORD" >> "$HRW_OUTPUTS"
echo "$HRW_ASSET_DB_PASSWORD=as-a-key" >> "$HRW_OUTPUTS"
"""
    await stack.runbook("leaky", script, assets=["db"])
    agent = stack.start_agent(GROUP, "w1")
    await stack.job("j1", "leaky", GROUP)
    job = await stack.wait_phase("j1", "Succeeded", timeout=40)
    output = await stack.output("j1")
    b64 = base64.b64encode(secret.encode()).decode()
    assert "user: app" in output and "raw: ***" in output
    for text, where in ((output, "output"), (json.dumps(job), "status"), (json.dumps(await stack.events()), "events"),
                        (stack.all_logs(), "process logs")):
        assert secret not in text, where
        assert b64 not in text, where
        assert secret[:5] + secret[5:] not in text.replace("\n", ""), where
    assert job["status"]["outputs"] == {"leak": "***", "***": "as-a-key"}
    assert "event=job.finished" in agent.logs()


async def test_agent_opens_no_listening_socket(stack: Stack):
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    await stack.runbook("hello", "echo hi\n")
    await stack.job("j1", "hello", GROUP)
    await stack.wait_phase("j1", "Succeeded")
    sockets = socket_inodes(agent.pid)
    assert sockets, "the agent should hold its outbound connection to the proxy"
    assert not sockets & listening_inodes()
    assert agent.alive


async def test_sigterm_lets_a_running_job_finish_and_exits_zero(stack: Stack, scratch: Path):
    go = scratch / "go"
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    await stack.runbook("wait", 'echo waiting\nwhile [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.1; done\necho done\n',
                        parameters=[{"name": "go", "type": "string"}])
    await stack.job("j1", "wait", GROUP, parameters={"go": str(go)})
    await stack.wait_phase("j1", "Running")
    agent.send_signal(15)
    agent.wait_for_log(r"event=agent\.draining", timeout=10)
    await stack.job("j2", "wait", GROUP, parameters={"go": str(go)})  # not claimed while draining
    go.touch()
    assert agent.wait(timeout=30) == 0
    job = await stack.get_job("j1")
    assert job["status"]["phase"] == "Succeeded"
    assert await stack.output("j1") == "waiting\ndone\n"
    assert ((await stack.get_job("j2")).get("status") or {}).get("phase") in (None, "Pending", "Queued")


async def test_two_agents_run_each_job_of_a_burst_exactly_once(stack: Stack, scratch: Path):
    ledger = scratch / "ledger"
    await stack.group(GROUP, maxJobsPerWorker=2)
    stack.start_agent(GROUP, "w1")
    stack.start_agent(GROUP, "w2")
    await stack.runbook("mark", 'echo "$HRW_JOB_NAME $HRW_WORKER_NAME" >> "$HRW_PARAM_LEDGER"\n',
                        parameters=[{"name": "ledger", "type": "string"}])
    jobs = [f"burst-{i}" for i in range(10)]
    for name in jobs:
        await stack.job(name, "mark", GROUP, parameters={"ledger": str(ledger)})

    async def all_done() -> bool:
        phases = [((await stack.get_job(name)).get("status") or {}).get("phase") for name in jobs]
        assert "Failed" not in phases, phases
        return all(p == "Succeeded" for p in phases)

    await async_wait_until(all_done, timeout=60, message="all burst jobs Succeeded")
    lines = ledger.read_text().splitlines()
    ran = sorted(line.split()[0] for line in lines)
    assert ran == sorted(jobs)  # each exactly once
    assert {line.split()[1] for line in lines} <= {"w1", "w2"}
