"""`hrw run`, `hrw logs [-f]` and `hrw get-token` as a user runs them: real `hrw` subprocesses with
`--kubeconfig`, against the real control plane, operator, proxy and agent.

Exit codes are part of the interface: `hrw run --wait` exits 0 only when the job succeeded, so a
script or CI step can rely on it; bad input is one clear line on stderr and a non-zero exit,
and creates nothing.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass
from pathlib import Path

from hrw_api import names
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOK_JOBS, SECRETS
from tests.support.processes import project_executable
from tests.support.stack import Stack

GROUP = "dc"
HELLO = """\
for i in $(seq 1 "$HRW_PARAM_COUNT"); do echo "hello $HRW_PARAM_NAME $i"; done
echo "greeted=$HRW_PARAM_COUNT" >> "$HRW_OUTPUTS"
"""
HELLO_PARAMS = [{"name": "name", "type": "string", "required": True},
                {"name": "count", "type": "integer", "default": 1}]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def _argv(stack: Stack, *args: str) -> list[str]:
    return [project_executable("hrw"), *args, "-n", stack.namespace, "--kubeconfig", str(stack.cluster.kubeconfig_path)]


async def hrw(stack: Stack, *args: str, timeout: float = 60) -> Result:  # noqa: ASYNC109
    proc = await asyncio.create_subprocess_exec(*_argv(stack, *args), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def _created(stdout: str) -> str:
    match = re.search(r"^runbookjob\.hrw\.dev/(\S+) created$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


async def test_hrw_run_wait_exits_zero_on_success_and_logs_print_the_output_in_order(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("hello", HELLO, parameters=HELLO_PARAMS)
    await stack.runbook("fail", "echo broken\nexit 7\n")

    ran = await hrw(stack, "run", "hello", "-g", GROUP, "-p", "name=World", "-p", "count=2", "--wait")
    assert ran.code == 0, ran
    name = _created(ran.stdout)
    assert name.startswith("hello-")
    assert f"{name}: Succeeded" in ran.stdout
    assert "greeted=2" in ran.stdout
    job = await stack.get_job(name)
    assert job["spec"]["parameters"] == {"name": "World", "count": 2}  # count typed by the runbook
    assert job["status"]["phase"] == "Succeeded"

    logs = await hrw(stack, "logs", name)
    assert logs.code == 0, logs
    assert logs.stdout == "hello World 1\nhello World 2\n"
    # A small output that ended within its first flush travels in the final status, no ConfigMap.
    assert job["status"]["output"]["inline"] == {"stdout": "hello World 1\nhello World 2\n", "stderr": ""}
    assert job["status"]["output"]["chunks"] == 0
    assert (await _chunks(stack, name)) == []

    failed = await hrw(stack, "run", "fail", "-g", GROUP, "--name", "broken", "--wait")
    assert failed.code != 0, failed
    assert "broken: Failed (NonZeroExit" in failed.stdout
    assert (await stack.get_job("broken"))["status"]["exitCode"] == 7


async def _chunks(stack: Stack, job: str) -> list[dict]:
    listing = await stack.admin.list(CONFIG_MAPS.path(stack.namespace), labelSelector=f"{names.LABEL_JOB}={job}")
    return list(listing["items"])


async def test_a_large_output_is_stored_as_chunks_and_hrw_logs_prints_all_of_it(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("lots", 'seq 1 3000\necho "done" >&2\n')
    ran = await hrw(stack, "run", "lots", "-g", GROUP, "--name", "big", "--wait")
    assert ran.code == 0, ran
    status = (await stack.get_job("big"))["status"]
    assert "inline" not in status["output"] and status["output"]["chunks"] >= 1
    assert len(await _chunks(stack, "big")) == status["output"]["chunks"]
    logs = await hrw(stack, "logs", "big")
    assert logs.code == 0, logs
    assert logs.stdout == "".join(f"{i}\n" for i in range(1, 3001))
    assert logs.stderr == "done\n"


async def test_hrw_logs_follow_prints_output_as_it_comes_and_exits_when_the_job_ends(stack: Stack, scratch: Path):
    go = scratch / "go"
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("slow", 'echo first\nwhile [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.05; done\necho second\n'
                        'echo third\n', parameters=[{"name": "go", "type": "string"}])
    await stack.job("j1", "slow", GROUP, parameters={"go": str(go)})
    await stack.wait_phase("j1", "Running")

    proc = await asyncio.create_subprocess_exec(*_argv(stack, "logs", "-f", "j1"), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        assert first == b"first\n"  # printed while the job still runs
        assert proc.returncode is None
        go.touch()
        rest, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err
    assert rest.decode() == "second\nthird\n"
    assert "j1: Succeeded" in err.decode()


async def test_hrw_get_token_prints_the_token_the_registration_secret_holds(stack: Stack):
    await stack.group(GROUP)
    secret = await stack.admin.get(SECRETS.path(stack.namespace, names.registration_secret_name(GROUP)))
    expected = base64.b64decode(secret["data"][names.REGISTRATION_TOKEN_KEY]).decode()

    result = await hrw(stack, "get-token", GROUP)
    assert result.code == 0, result
    assert result.stdout == expected + "\n"

    missing = await hrw(stack, "get-token", "nope")
    assert missing.code != 0
    assert "not found" in missing.stderr and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr


async def test_an_agent_registers_with_a_token_hrw_get_token_issued_and_a_second_use_is_refused(stack: Stack):
    await stack.group(GROUP, registration={"groupToken": False})  # the default: issued tokens only
    issued = await hrw(stack, "get-token", GROUP, "--ttl", "10m", "--uses", "1")
    assert issued.code == 0, issued
    token = issued.stdout.strip()
    assert token.startswith("hrwr1.") and "at most 1 registration(s)" in issued.stderr
    stack.tokens[GROUP] = token
    stack.start_agent(GROUP, "w1")
    await stack.runbook("hello", HELLO, parameters=HELLO_PARAMS)
    ran = await hrw(stack, "run", "hello", "-g", GROUP, "-p", "name=World", "--wait", "--wait-timeout", "60")
    assert ran.code == 0, ran

    second = stack.start_agent(GROUP, "w2", ready=False)
    second.wait_for_log(r"used as many times as it allowed", timeout=30)
    assert token not in second.logs()

    no_group_token = await hrw(stack, "get-token", GROUP)
    assert no_group_token.code != 0 and "--ttl 1h" in no_group_token.stderr
    bad = await hrw(stack, "get-token", GROUP, "--ttl", "forever")
    assert bad.code != 0 and "--ttl" in bad.stderr and "Traceback" not in bad.stderr


async def test_hrw_run_refuses_bad_parameters_with_a_clear_error_and_creates_no_job(stack: Stack):
    await stack.group(GROUP)
    await stack.runbook("hello", HELLO, parameters=HELLO_PARAMS)
    cases = {
        ("-p", "name"): "must look like key=value",
        ("-p", "name=World", "-p", "count=two"): "declared integer",
        ("-p", "name=World", "-p", "count=2.5"): "count",
        ("-p", "name=World", "-p", "colour=blue"): "'colour' is not declared",
        ("-p", "count=2",): "'name'",
    }
    for params, expected in cases.items():
        result = await hrw(stack, "run", "hello", "-g", GROUP, *params, "--wait")
        assert result.code != 0, (params, result)
        assert result.stderr.startswith("hrw: error: "), (params, result.stderr)
        assert expected in result.stderr, (params, result.stderr)
        assert "Traceback" not in result.stderr
        assert "created" not in result.stdout, (params, result.stdout)
    unknown = await hrw(stack, "run", "ghost", "-g", GROUP)
    assert unknown.code != 0 and "Runbook" in unknown.stderr and "ghost" in unknown.stderr
    jobs = await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace))
    assert jobs["items"] == []
