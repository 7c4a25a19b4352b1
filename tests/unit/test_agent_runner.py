"""The runner: a fresh private work dir, parameters and assets passed safely, no shell parsing of
anything we built, the agent's environment not inherited, and the whole process tree stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from hrw_agent import runner
from hrw_agent.runner import Execution, StopReason
from hrw_api import AssetType, ResolvedAsset, StreamName
from hrw_dev.controlplane import pid_runs
from tests.support.waiting import wait_until

BASH = "/bin/bash"
PY = "/usr/bin/python3"

ASSETS = [
    ResolvedAsset("db-password", AssetType.VARIABLE, {"value": "s3cret"}, frozenset({"value"})),
    ResolvedAsset("api", AssetType.CREDENTIAL, {"username": "bob", "password": "hunter2"}, frozenset({"password"})),
    ResolvedAsset("web-cert", AssetType.CERTIFICATE, {"tls.crt": "CERT", "tls.key": "KEY"},
                  frozenset({"tls.key"})),
]


def _prepare(tmp_path: Path, script: str, parameters: dict | None = None, assets=()) -> runner.JobFiles:
    return runner.prepare(tmp_path / "work", namespace="ns", job="job-a", attempt=1, worker="w1", script=script,
                          parameters=parameters or {}, assets=list(assets))


async def _run(files: runner.JobFiles, interpreter: str = BASH, *, time_limit: float | None = 20,
               execution: Execution | None = None) -> tuple[runner.RunResult, str]:
    out = bytearray()

    async def collect(data: bytes, stream: StreamName) -> None:
        out.extend(data)

    result = await runner.run(files, interpreter, collect, time_limit=time_limit,
                              execution=execution or Execution(grace_seconds=2))
    return result, out.decode()


async def test_work_dir_and_files_are_private(tmp_path):
    files = _prepare(tmp_path, "true", assets=ASSETS)
    assert stat.S_IMODE(os.stat(files.root).st_mode) == 0o700
    for path in (files.script, files.parameters, files.outputs, files.assets / "api" / "password",
                 files.assets / "web-cert" / "tls.key"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert (files.assets / "db-password" / "value").read_text() == "s3cret"


async def test_parameters_arrive_as_env_and_json_file(tmp_path):
    params = {"target-host": "db1", "count": 3, "dry_run": True, "tags": ["a", "b"]}
    files = _prepare(tmp_path, 'echo "$HRW_PARAM_TARGET_HOST|$HRW_PARAM_COUNT|$HRW_PARAM_DRY_RUN|$HRW_PARAM_TAGS"\n'
                               'cat "$HRW_PARAMETERS_FILE"\n', params)
    result, out = await _run(files)
    assert result.exit_code == 0
    first, rest = out.split("\n", 1)
    assert first == 'db1|3|true|["a","b"]'
    assert json.loads(rest) == params


async def test_assets_arrive_as_env_and_files(tmp_path):
    files = _prepare(tmp_path, 'echo "$HRW_ASSET_DB_PASSWORD $HRW_ASSET_API_USERNAME $HRW_ASSET_API_PASSWORD '
                               '$HRW_ASSET_WEB_CERT_TLS_KEY"\ncat "$HRW_ASSETS_DIR/api/password"\n', assets=ASSETS)
    _, out = await _run(files)
    assert out == "s3cret bob hunter2 KEY\nhunter2"


async def test_shell_metacharacters_in_a_parameter_arrive_verbatim_and_run_nothing(tmp_path):
    canary = tmp_path / "pwned"
    evil = f"$(touch {canary}); `touch {canary}` \"'; touch {canary}; echo hacked | && || > <"
    files = _prepare(tmp_path, 'printf "%s" "$HRW_PARAM_EVIL"\n', {"evil": evil})
    result, out = await _run(files)
    assert result.exit_code == 0
    assert out == evil
    assert not canary.exists()


async def test_agent_environment_is_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("HRW_AGENT_SECRET_FOR_TEST", "do-not-leak")
    files = _prepare(tmp_path, "import os, json; print(json.dumps(dict(os.environ)))\n")
    _, out = await _run(files, PY)
    env = json.loads(out)
    assert "HRW_AGENT_SECRET_FOR_TEST" not in env
    assert set(env) - {"PWD", "SHLVL", "_", "LC_CTYPE"} <= {
        "PATH", "HOME", "LANG", "TMPDIR", "HRW_JOB_NAME", "HRW_JOB_NAMESPACE", "HRW_JOB_ATTEMPT",
        "HRW_WORKER_NAME", "HRW_PARAMETERS_FILE", "HRW_OUTPUTS", "HRW_ASSETS_DIR"}
    assert env["HRW_JOB_NAME"] == "job-a"


async def test_non_zero_exit_code_and_stderr_are_captured(tmp_path):
    files = _prepare(tmp_path, "echo out; echo err >&2; exit 7\n")
    result, out = await _run(files)
    assert result.exit_code == 7
    assert result.stopped is None
    assert "out\n" in out and "err\n" in out


async def test_outputs_file_becomes_key_values(tmp_path):
    files = _prepare(tmp_path, 'echo "greeting=hello world" >> "$HRW_OUTPUTS"\necho "# note" >> "$HRW_OUTPUTS"\n'
                               'echo "count=2=two" >> "$HRW_OUTPUTS"\n')
    await _run(files)
    assert runner.read_outputs(files.outputs) == {"greeting": "hello world", "count": "2=two"}


async def test_timeout_kills_the_whole_process_group_including_a_grandchild(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"""
trap '' TERM            # ignore SIGTERM: only SIGKILL after the grace period ends it
bash -c 'trap "" TERM; echo $$ > {pidfile}; while true; do sleep 0.1; done' &
while true; do sleep 0.1; done
"""
    files = _prepare(tmp_path, script)
    started = time.monotonic()
    result, _ = await _run(files, time_limit=1.0, execution=Execution(grace_seconds=0.5))
    assert result.stopped is StopReason.TIMEOUT
    assert time.monotonic() - started < 10
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not pid_runs(grandchild):
            break
        await asyncio.sleep(0.05)
    assert not pid_runs(grandchild)


async def test_stop_ends_the_process_with_sigterm_first(tmp_path):
    files = _prepare(tmp_path, "trap 'echo got-term; exit 143' TERM\ntouch trap-ready\n"
                               "while true; do sleep 0.1; done\n")
    execution = Execution(grace_seconds=5)
    task = asyncio.create_task(_run(files, execution=execution))
    for _ in range(200):  # wait (bounded) until the trap is installed: the script prints nothing before
        if execution.pid is not None and _trap_ready(execution.pid):
            break
        await asyncio.sleep(0.02)
    execution.stop(StopReason.CANCELLED)
    result, out = await task
    assert result.stopped is StopReason.CANCELLED
    assert result.exit_code == 143
    assert "got-term" in out


def _trap_ready(pid: int) -> bool:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"), "trap-ready").exists()
    except OSError:
        return False


async def test_background_leftovers_are_killed_when_the_script_exits(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    files = _prepare(tmp_path, f"sleep 300 &\necho $! > {pidfile}\necho done\n")
    result, out = await _run(files)
    assert result.exit_code == 0 and out == "done\n"
    pid = int(pidfile.read_text())
    for _ in range(50):
        if not pid_runs(pid):
            break
        await asyncio.sleep(0.05)
    assert not pid_runs(pid)


async def test_cleanup_removes_the_work_dir_with_the_assets(tmp_path):
    files = _prepare(tmp_path, "true", assets=ASSETS)
    runner.cleanup(files)
    assert not files.root.exists()


async def test_a_stop_asked_before_the_start_starts_nothing(tmp_path):
    canary = tmp_path / "ran"
    files = _prepare(tmp_path, f"touch {canary}\n")
    execution = Execution(grace_seconds=1)
    execution.stop(StopReason.FENCED)
    result, _ = await _run(files, execution=execution)
    assert result == runner.RunResult(exit_code=None, stopped=StopReason.FENCED, duration=0.0)
    assert execution.pid is None and not canary.exists()


async def test_on_spawn_gets_the_leader_of_the_jobs_own_process_group(tmp_path):
    files = _prepare(tmp_path, "while [ ! -e go ]; do sleep 0.05; done\n")  # runs until on_spawn has looked
    seen: list[tuple[int, int, int]] = []

    async def on_spawn(pid: int) -> None:
        seen.append((pid, os.getpgid(pid), os.getsid(pid)))
        (files.root / "go").touch()

    result = await runner.run(files, BASH, _ignore, time_limit=20, execution=Execution(), on_spawn=on_spawn)
    assert result.exit_code == 0
    [(pid, pgid, sid)] = seen
    assert pid == pgid == sid != os.getpgrp()


async def test_a_process_that_escaped_the_group_holding_stdout_delays_the_end_a_bounded_time_and_leaks_nothing(
        tmp_path):
    # The grandchild escapes the group (setsid), so the runner cannot kill it, and it keeps the
    # output pipe open: the run ends once the leader exited and the reader gave up (5 s), and the
    # pipe is closed anyway (no transport left behind for the garbage collector to complain about).
    pidfile = tmp_path / "escaped.pid"
    files = _prepare(tmp_path, f"setsid bash -c 'echo $$ > {pidfile}; exec sleep 30' &\n"
                               f"while [ ! -s {pidfile} ]; do sleep 0.01; done\n")
    fds = set(os.listdir("/proc/self/fd"))
    began = time.monotonic()
    try:
        result = await runner.run(files, BASH, _ignore, time_limit=20, execution=Execution())
        took = time.monotonic() - began
        await asyncio.sleep(0)  # the transport's close completes on the loop's next turn
        assert set(os.listdir("/proc/self/fd")) <= fds, "the output pipe was left open"
        escaped = int(pidfile.read_text())
        assert pid_runs(escaped) and os.getsid(escaped) == escaped, "the grandchild escaped and still runs"
        assert result.exit_code == 0 and result.stopped is None
        assert took < 8, f"the run took {took:.1f}s"
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


async def _ignore(data: bytes, stream: StreamName) -> None:
    return None


AGENT_STAND_IN = """
import asyncio, sys
from pathlib import Path
from hrw_agent import runner

async def main():
    files = runner.prepare(Path(sys.argv[1]), namespace="ns", job="j", attempt=1, worker="w",
                           script=sys.argv[2], parameters={}, assets=[])
    async def ignore(data, stream):
        pass
    await runner.run(files, "/bin/bash", ignore, time_limit=None, execution=runner.Execution())

asyncio.run(main())
"""


def test_the_jobs_leader_dies_with_the_agent_even_on_kill_9(tmp_path):
    """PR_SET_PDEATHSIG: a process running the runner (the agent's stand-in) is SIGKILLed; the job's
    leader, in its own session and so out of reach of the signal, goes at once too."""
    pidfile = tmp_path / "leader.pid"
    script = f"echo $$ > {pidfile}\nwhile true; do sleep 0.1; done\n"
    with open(tmp_path / "agent.log", "wb") as log:
        agent = subprocess.Popen([sys.executable, "-c", AGENT_STAND_IN, str(tmp_path / "work"), script],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20,
                   message=f"the job's leader started ({tmp_path / 'agent.log'})")
        leader = int(pidfile.read_text())
        assert os.getsid(leader) == leader != os.getsid(agent.pid)
        agent.kill()
        agent.wait(timeout=5)
        wait_until(lambda: not pid_runs(leader), timeout=5, message=f"the job's leader {leader} died with the agent")
    finally:
        agent.kill()
        agent.wait()
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pidfile.read_text()), signal.SIGKILL)


async def test_stdout_and_stderr_arrive_apart_each_with_its_stream(tmp_path):
    files = _prepare(tmp_path, "echo out one\necho err one >&2\necho out two\necho err two >&2\n")
    got: dict[StreamName, bytearray] = {StreamName.STDOUT: bytearray(), StreamName.STDERR: bytearray()}

    async def collect(data: bytes, stream: StreamName) -> None:
        got[stream].extend(data)

    result = await runner.run(files, BASH, collect, time_limit=20, execution=Execution(grace_seconds=2))
    assert result.exit_code == 0
    assert got[StreamName.STDOUT].decode() == "out one\nout two\n"
    assert got[StreamName.STDERR].decode() == "err one\nerr two\n"
