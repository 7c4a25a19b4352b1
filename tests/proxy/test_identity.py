"""Registration and worker credentials: only a hash in the cluster, 401 for anything not a live credential."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import UTC, datetime

import pytest

from hrw_api import names, wire
from hrw_api.errors import ApiError
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, SECRETS
from tests.support.proxy import register_worker
from tests.support.waiting import async_wait_until


async def _status_of(world, credential: str) -> int:
    async with world.proxy.http(credential) as http:
        response = await http.get(RUNBOOK_JOBS.path(world.namespace))
    return response.status_code


async def test_registration_stores_only_the_credential_hash_owned_by_the_group(world):
    credential = world.credentials["w1"]
    assert credential.startswith(f"hrw1.{world.namespace}.g1.w1.")
    secret = await world.admin.get(SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1")))
    assert secret["type"] == names.SECRET_TYPE_WORKER_CREDENTIAL
    stored = base64.b64decode(secret["data"][names.WORKER_CREDENTIAL_HASH_KEY]).decode()
    assert stored == hashlib.sha256(credential.encode()).hexdigest()
    assert credential.split(".")[-1] not in str(secret)
    assert secret["metadata"]["labels"][names.LABEL_WORKER_GROUP] == "g1"
    assert secret["metadata"]["labels"][names.LABEL_WORKER] == "w1"
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == (names.WORKER_GROUP, "g1")


async def test_registration_with_a_wrong_token_is_unauthorized(world):
    request = wire.RegisterRequest("w9", "h", "v", ("bash",))
    async with world.proxy.http(world.tokens["g2"]) as http:  # g2's token is wrong for g1
        response = await http.post(wire.register_path(world.namespace, "g1"), json=request.to_dict())
    assert response.status_code == 401
    assert response.json()["kind"] == "Status"
    assert response.json()["reason"] == "Unauthorized"


async def test_registration_refuses_a_worker_name_that_is_not_a_dns_label(world):
    request = wire.RegisterRequest("Bad.Name", "h", "v", ("bash",))
    async with world.proxy.http(world.tokens["g1"]) as http:
        response = await http.post(wire.register_path(world.namespace, "g1"), json=request.to_dict())
    assert response.status_code == 400
    assert "DNS-1123" in response.json()["message"]


async def test_reregistration_replaces_the_credential(world):
    old = world.credentials["w1"]
    new = register_worker(world.proxy, world.namespace, "g1", "w1", world.tokens["g1"])
    assert await _status_of(world, new) == 200
    await async_wait_until(lambda: _is_401(world, old), timeout=10, message="the replaced credential refused")


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _is_401(world, credential: str) -> bool:
    return await _status_of(world, credential) == 401


async def test_no_token_is_unauthorized(world):
    async with world.proxy.http() as http:
        response = await http.get(RUNBOOK_JOBS.path(world.namespace))
    assert response.status_code == 401
    assert response.json()["reason"] == "Unauthorized"


@pytest.mark.parametrize("mangle", ["garbage", "wrong-secret", "other-worker"])
async def test_a_wrong_token_is_unauthorized(world, mangle):
    credential = world.credentials["w1"]
    if mangle == "garbage":
        credential = "not-a-credential"
    elif mangle == "wrong-secret":
        credential = credential[:-4] + ("AAAA" if not credential.endswith("AAAA") else "BBBB")
    else:  # w1's secret part presented as w2
        credential = credential.replace(".w1.", ".w2.")
    assert await _status_of(world, credential) == 401


async def test_a_revoked_worker_is_unauthorized_within_the_cache_ttl(world):
    assert await _status_of(world, world.credentials["w1"]) == 200
    await world.admin.delete(SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1")))
    await async_wait_until(lambda: _is_401(world, world.credentials["w1"]), timeout=10,
                           message="the revoked credential refused")
    assert await _status_of(world, world.credentials["w2"]) == 200


async def test_the_agent_client_sees_unauthorized_as_an_api_error(world):
    made_up = f"hrw1.{world.namespace}.b.c.ddddddddddddddddddddddddddddddddddddddddddd"
    async with world.proxy.client(made_up) as kube:
        with pytest.raises(ApiError) as caught:
            await kube.list(RUNBOOK_JOBS.path(world.namespace))
    assert caught.value.code == 401


async def test_a_made_up_credential_naming_a_namespace_outside_the_proxys_list_is_unauthorized(world):
    async with world.proxy.http("hrw1.not-served.b.c.ddddddddddddddddddddddddddddddddddddddddddd") as http:
        response = await http.get(RUNBOOK_JOBS.path("not-served"))
    assert response.status_code == 401, response.text
    assert "serviceaccount" not in response.text.lower()


def test_the_proxy_never_logs_a_credential_or_token(world):
    text = world.proxy.process.logs()
    for secret in [*world.credentials.values(), *world.tokens.values()]:
        assert secret not in text
    assert f"worker={world.namespace}/g1/w1" in text


async def test_a_worker_revoked_during_a_watch_hears_no_further_jobs(world):
    seen: list[str] = []

    async def watch() -> None:
        async with world.proxy.client(world.credentials["w1"]) as kube:
            async for event in kube.watch(RUNBOOK_JOBS.path(world.namespace), timeout_seconds=60):
                seen.append(event["object"]["metadata"].get("name", ""))

    await world.create_job("before", "g1")
    watching = asyncio.create_task(watch())
    await async_wait_until(lambda: _seen(seen, "before"), timeout=10, message="the watch delivering jobs")
    await world.admin.delete(SECRETS.path(world.namespace, names.worker_secret_name("g1", "w1")))
    await async_wait_until(lambda: _is_401(world, world.credentials["w1"]), timeout=10,
                           message="the proxy knowing the credential is revoked")
    await world.create_job("after", "g1")
    with pytest.raises(ApiError) as caught:
        await asyncio.wait_for(watching, 30)
    assert caught.value.code == 401
    assert "after" not in seen


async def _seen(seen: list[str], name: str) -> bool:
    return name in seen


async def test_the_group_token_cannot_take_over_the_name_of_a_live_worker(world):
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": names.lease_name("g1", "w1")},
             "spec": {"holderIdentity": "w1", "leaseDurationSeconds": 30, "renewTime": micro_time()}}
    async with world.proxy.client(world.credentials["w1"]) as kube:
        await kube.create(LEASES.path(world.namespace), lease)  # w1 is live (the proxy stamps its own clock)
    with pytest.raises(AssertionError, match="409"):
        register_worker(world.proxy, world.namespace, "g1", "w1", world.tokens["g1"])
    assert await _status_of(world, world.credentials["w1"]) == 200  # the live worker keeps its credential
