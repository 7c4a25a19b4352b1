"""Nothing is lost: a job that ends while the proxy is down is spooled and delivered when the
proxy is back, and an agent restarted with its state dir delivers what it had spooled."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack, spool_files
from tests.support.waiting import wait_until

GROUP = "dc"
WAITING = """\
echo "started"
while [ ! -e "$HRW_PARAM_GO" ]; do sleep 0.1; done
for i in 1 2 3; do echo "line $i after the cut"; done
echo "answer=42" >> "$HRW_OUTPUTS"
"""


async def _running_job(stack: Stack, go: Path) -> None:
    await stack.runbook("wait", WAITING, parameters=[{"name": "go", "type": "string"}])
    await stack.job("j1", "wait", GROUP, parameters={"go": str(go)})
    await stack.wait_phase("j1", "Running")
    wait_until(lambda: stack.cluster.kubectl("get", "configmaps", "-n", stack.namespace, "-l", "hrw.dev/job=j1",
                                             "-o", "name").strip(), message="the first output chunk stored")


async def test_proxy_down_mid_job_result_is_spooled_and_delivered_when_it_is_back(stack: Stack, scratch: Path):
    go = scratch / "go"
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    await _running_job(stack, go)
    stack.proxy.process.stop()
    go.touch()
    agent.wait_for_log(r"event=job\.finished job=j1", timeout=20)
    state = stack.agent_dir("w1") / "state"
    assert any(p.name == "result.json" for p in spool_files(state)), spool_files(state)
    stack.restart_proxy()
    job = await stack.wait_phase("j1", "Succeeded", timeout=40)
    assert job["status"]["outputs"] == {"answer": "42"}
    assert await stack.output("j1") == "started\nline 1 after the cut\nline 2 after the cut\nline 3 after the cut\n"
    wait_until(lambda: not spool_files(state), timeout=10, message="the spool emptied")


async def test_agent_restarted_with_its_state_dir_delivers_what_it_spooled(stack: Stack, scratch: Path):
    go = scratch / "go"
    await stack.group(GROUP)
    agent = stack.start_agent(GROUP, "w1")
    await _running_job(stack, go)
    stack.proxy.process.stop()
    go.touch()
    agent.wait_for_log(r"event=job\.finished job=j1", timeout=20)
    agent.kill()  # a crash: the result exists only in the spool now
    state = stack.agent_dir("w1") / "state"
    assert any(p.name == "result.json" for p in spool_files(state))
    stack.restart_proxy()
    agent.start()
    job = await stack.wait_phase("j1", "Succeeded", timeout=40)
    assert job["status"]["outputs"] == {"answer": "42"}
    assert "line 3 after the cut" in await stack.output("j1")
    assert "registered" not in agent.logs(since_start=True)  # the stored credential was used
