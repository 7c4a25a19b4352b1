"""Registration: a server that lost its state dir registers again under its old name, but only once
its old self's Lease has lapsed — the group's token alone cannot take over a live worker."""

from __future__ import annotations

from hrw_api import names
from hrw_api.errors import NotFound
from hrw_api.kubeclient import LEASES
from tests.support.stack import Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"


async def test_an_agent_that_lost_its_state_registers_again_once_its_old_lease_lapsed(stack: Stack):
    await stack.group(GROUP, leaseDurationSeconds=10)
    first = stack.start_agent(GROUP, "w1")
    lease_path = LEASES.path(stack.namespace, names.lease_name(GROUP, "w1"))
    await async_wait_until(lambda: stack.admin.get(lease_path), timeout=15, ignore=(NotFound,),
                           message="w1's Lease")
    first.kill()
    (stack.agent_dir("w1") / "state" / "credential").unlink()  # the server lost its state dir

    again = stack.start_agent(GROUP, "w1", ready=False)
    again.wait_for_log(r"event=agent\.register\.retry error=Conflict .*is live", timeout=15)
    again.wait_for_log(r"event=agent\.ready", timeout=30)  # after the old Lease lapsed
    await stack.runbook("hello", "echo hi\n")
    await stack.job("j1", "hello", GROUP)
    done = await stack.wait_phase("j1", "Succeeded")
    assert done["status"]["claim"]["worker"] == "w1"
