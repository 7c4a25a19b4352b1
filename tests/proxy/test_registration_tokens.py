"""Registration that expires: issued tokens (`hrw get-token --ttl [--uses]`) register workers until
they expire or are used up, then get a 401 that says why; two proxies never both spend the last
use; the group's long-lived token works only where the group opted in."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import httpx

from hrw_api import names, regtokens, wire
from hrw_api.kubeclient import SECRETS, WORKER_GROUPS
from tests.support.proxy import RunningProxy, start_proxy

from .conftest import SHARED_PROXY_ARGS


async def issue(world, group: str, *, ttl_seconds: int = 3600, uses: int | None = None,
                now: datetime | None = None) -> str:
    """What `hrw get-token GROUP --ttl ... --uses ...` does, as admin."""
    uid = (await world.admin.get(WORKER_GROUPS.path(world.namespace, group)))["metadata"]["uid"]
    token, _ = regtokens.new_token()
    await world.admin.create(SECRETS.path(world.namespace), regtokens.token_secret(
        world.namespace, group, uid, token, ttl_seconds=ttl_seconds, uses=uses, now=now or datetime.now(UTC)))
    return token


async def register(proxy: RunningProxy, namespace: str, group: str, worker: str, token: str) -> httpx.Response:
    async with proxy.http(token) as http:
        return await http.post(wire.register_path(namespace, group),
                               json=wire.RegisterRequest(worker, "h", "v", ("bash",)).to_dict())


async def token_record(world, group: str, token: str) -> regtokens.IssuedToken:
    token_id = regtokens.issued_token_id(token)
    assert token_id is not None
    return regtokens.IssuedToken.parse(
        await world.admin.get(SECRETS.path(world.namespace, names.issued_token_secret_name(group, token_id))))


async def test_an_issued_token_registers_a_worker_and_the_cluster_keeps_only_its_hash(world):
    token = await issue(world, "g1", uses=3)
    response = await register(world.proxy, world.namespace, "g1", "n1", token)
    assert response.status_code == 200, response.text
    credential = response.json()["credential"]
    async with world.proxy.client(credential) as kube:
        await kube.get(WORKER_GROUPS.path(world.namespace, "g1"))
    record = await token_record(world, "g1", token)
    assert record.uses_left == 2
    assert record.digest == regtokens.token_hash(token)
    secret = await world.admin.get(SECRETS.path(world.namespace, names.issued_token_secret_name("g1",
                                                                                                record.token_id)))
    assert token not in str(secret) and token.split(".")[-1] not in base64.b64decode(
        secret["data"][regtokens.HASH_KEY]).decode()
    assert secret["metadata"]["ownerReferences"][0]["name"] == "g1"
    assert token not in world.proxy.process.logs()


async def test_an_expired_token_is_refused_with_401_saying_it_expired(world):
    token = await issue(world, "g1", ttl_seconds=3600, now=datetime.now(UTC) - timedelta(hours=2))
    response = await register(world.proxy, world.namespace, "g1", "late", token)
    assert response.status_code == 401, response.text
    status = response.json()
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"
    assert "expired at" in status["message"] and "hrw get-token g1" in status["message"]
    assert token not in response.text


async def test_a_used_up_token_is_refused_with_401_saying_so(world):
    token = await issue(world, "g1", uses=1)
    first = await register(world.proxy, world.namespace, "g1", "once", token)
    assert first.status_code == 200, first.text
    second = await register(world.proxy, world.namespace, "g1", "twice", token)
    assert second.status_code == 401, second.text
    assert "used as many times as it allowed" in second.json()["message"]
    assert "--ttl" in second.json()["message"]
    assert (await token_record(world, "g1", token)).uses_left == 0


async def test_a_token_issued_for_one_group_does_not_register_in_another(world):
    token = await issue(world, "g1")
    response = await register(world.proxy, world.namespace, "g2", "x9", token)
    assert response.status_code == 401, response.text
    assert "unknown registration token" in response.json()["message"]


async def test_a_deleted_token_secret_revokes_the_token(world):
    token = await issue(world, "g1")
    token_id = regtokens.issued_token_id(token)
    assert token_id is not None
    await world.admin.delete(SECRETS.path(world.namespace, names.issued_token_secret_name("g1", token_id)))
    response = await register(world.proxy, world.namespace, "g1", "gone", token)
    assert response.status_code == 401, response.text


async def test_two_proxies_never_spend_more_uses_than_a_token_has(world, processes, proxy_sa_kubeconfig, tls):
    other = start_proxy(processes, proxy_sa_kubeconfig, tls, *SHARED_PROXY_ARGS, name="hrw-proxy-second")
    for trial in range(3):
        token = await issue(world, "g1", uses=2)
        racers = [(proxy, f"race-{trial}-{i}") for i, proxy in enumerate((world.proxy, other) * 3)]
        answers = await asyncio.gather(*(register(proxy, world.namespace, "g1", worker, token)
                                         for proxy, worker in racers))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 200, 401, 401, 401, 401], [a.text for a in answers]
        assert (await token_record(world, "g1", token)).uses_left == 0


async def test_the_long_lived_group_token_works_only_where_the_group_opted_in(world):
    await world.admin.create(WORKER_GROUPS.path(world.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "metadata": {"name": "g3"}, "spec": {}})
    token = await _group_token(world, "g3")
    refused = await register(world.proxy, world.namespace, "g3", "y1", token)
    assert refused.status_code == 401, refused.text
    assert "spec.registration.groupToken" in refused.json()["message"]
    await world.admin.patch(WORKER_GROUPS.path(world.namespace, "g3"), {"spec": {"registration": {"groupToken": True}}})
    accepted = await register(world.proxy, world.namespace, "g3", "y1", token)
    assert accepted.status_code == 200, accepted.text


async def _group_token(world, group: str) -> str:
    """The group's long-lived token Secret, as the operator writes it for a group that opted in."""
    token = "long-lived-" + regtokens.new_token()[1] + "-token-value"
    await world.admin.create(SECRETS.path(world.namespace), {
        "apiVersion": "v1", "kind": "Secret", "type": names.SECRET_TYPE_REGISTRATION,
        "metadata": {"name": names.registration_secret_name(group), "labels": {names.LABEL_WORKER_GROUP: group}},
        "data": {names.REGISTRATION_TOKEN_KEY: base64.b64encode(token.encode()).decode()}})
    return token
