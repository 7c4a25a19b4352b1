"""Worker credential rotation: a rotated credential works at once, the old one beside it until the
group's overlap ends and then no more; only the current credential may rotate, only its own
worker's; a credential past its expiry is refused; deleting the record revokes both at once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from hrw_api import names, wire
from hrw_api.kubeclient import RUNBOOK_JOBS, SECRETS, WORKER_GROUPS
from hrw_api.times import format_time, parse_time
from tests.support.waiting import async_wait_until

ROTATION = {"credentialRotation": {"periodSeconds": 40, "overlapSeconds": 4}}


async def status_of(world, credential: str) -> int:
    async with world.proxy.http(credential) as http:
        return (await http.get(RUNBOOK_JOBS.path(world.namespace))).status_code


async def rotate(world, credential: str, group: str = "g1", worker: str = "w1"):
    async with world.proxy.http(credential) as http:
        return await http.post(wire.rotate_path(world.namespace, group, worker), json={})


async def test_a_rotated_credential_works_and_the_old_one_stops_after_the_overlap(world):
    await world.admin.patch(WORKER_GROUPS.path(world.namespace, "g1"), {"spec": ROTATION})
    old = world.credentials["w1"]
    answer = await rotate(world, old)
    assert answer.status_code == 200, answer.text
    body = wire.RegisterResponse.parse(answer.json())
    new = body.credential
    assert new != old and new.startswith(f"hrw1.{world.namespace}.g1.w1.")
    expires = parse_time(body.expires_at)
    assert expires is not None and timedelta(seconds=30) < expires - datetime.now(UTC) <= timedelta(seconds=40)
    assert await status_of(world, new) == 200
    assert await status_of(world, old) == 200  # the overlap: both work
    await async_wait_until(lambda: _refused(world, old), timeout=30, message="the old credential refused")
    assert await status_of(world, new) == 200
    assert old not in world.proxy.process.logs() and new not in world.proxy.process.logs()
    secret = await world.admin.get(SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1")))
    assert new.split(".")[-1] not in str(secret) and old.split(".")[-1] not in str(secret)


async def _refused(world, credential: str) -> bool:
    return await status_of(world, credential) == 401


async def test_only_the_current_credential_rotates_and_only_its_own_worker(world):
    old = world.credentials["w1"]
    new = wire.RegisterResponse.parse((await rotate(world, old)).json()).credential
    again = await rotate(world, old)  # rotated out, still valid for the (default 60 s) overlap
    assert again.status_code == 409, again.text
    assert "rotate with the newest one" in again.json()["message"]
    other = await rotate(world, new, worker="w2")
    assert other.status_code == 403, other.text
    assert await status_of(world, world.credentials["w2"]) == 200


async def test_a_credential_past_its_expiry_is_refused(world):
    path = SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1"))
    past = format_time(datetime.now(UTC) - timedelta(seconds=5))
    await world.admin.patch(path, {"data": {names.WORKER_CREDENTIAL_EXPIRES_KEY: base64.b64encode(
        past.encode()).decode()}})
    await async_wait_until(lambda: _refused(world, world.credentials["w1"]), timeout=10,
                           message="the expired credential refused")
    assert await status_of(world, world.credentials["w2"]) == 200


async def test_deleting_the_record_revokes_old_and_new_at_once(world):
    old = world.credentials["w1"]
    new = wire.RegisterResponse.parse((await rotate(world, old)).json()).credential
    await world.admin.delete(SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1")))
    await async_wait_until(lambda: _refused(world, new), timeout=10, message="the new credential revoked")
    assert await status_of(world, old) == 401
