"""Runbook, Asset and WorkerGroup status: Ready and the digest, Secret references checked without
a secret value anywhere, the registration Secret, and workers from Leases without a write per renewal."""

from __future__ import annotations

import asyncio
import json

from hrw_api import content_digest, names
from hrw_api.kubeclient import ASSETS, CONFIG_MAPS, RUNBOOKS, SECRETS, WORKER_GROUPS
from tests.support import async_wait_until

from .conftest import Kit, ready


async def test_runbook_digest_from_inline_content_and_from_a_configmap_that_changes(kit: Kit, operator) -> None:
    await kit.runbook("inline", content="echo inline\n")
    await kit.runbook("gitops", configmap=("scripts", "run.sh"))
    rb = await kit.wait_status(RUNBOOKS.path(kit.namespace, "inline"), lambda s: s.get("digest"))
    assert rb["status"]["digest"] == content_digest("echo inline\n")
    assert ready(rb["status"])["status"] == "True"
    assert rb["status"]["observedGeneration"] == rb["metadata"]["generation"]

    missing = await kit.wait_status(RUNBOOKS.path(kit.namespace, "gitops"), lambda s: ready(s) is not None)
    assert ready(missing["status"])["reason"] == "ConfigMapNotFound"
    assert "'scripts'" in ready(missing["status"])["message"]

    await kit.configmap("scripts", {"run.sh": "echo v1\n"})
    await kit.wait_status(RUNBOOKS.path(kit.namespace, "gitops"),
                          lambda s: s.get("digest") == content_digest("echo v1\n"), message="digest of v1")
    await kit.admin.patch(CONFIG_MAPS.path(kit.namespace, "scripts"), {"data": {"run.sh": "echo v2\n"}})
    await kit.wait_status(RUNBOOKS.path(kit.namespace, "gitops"),
                          lambda s: s.get("digest") == content_digest("echo v2\n"), message="digest of v2")
    await kit.admin.patch(CONFIG_MAPS.path(kit.namespace, "scripts"), {"data": {"run.sh": None, "other": "x"}})
    gone = await kit.wait_status(RUNBOOKS.path(kit.namespace, "gitops"),
                                 lambda s: (ready(s) or {}).get("reason") == "ConfigMapKeyNotFound")
    assert "digest" not in gone["status"]


async def test_asset_ready_only_when_its_secrets_and_keys_exist_and_no_value_leaks(kit: Kit, operator) -> None:
    password, key_pem = "hunter2-very-secret", "-----BEGIN KEY-----secret-key-material"
    await kit.asset("db", {"type": "Credential", "username": "app",
                           "passwordFrom": {"secretKeyRef": {"name": "db-secret", "key": "password"}}})
    await kit.asset("tls", {"type": "Certificate", "certificateFrom": {"secretRef": {"name": "tls-secret"}}})
    await kit.asset("plain", {"type": "Variable", "value": "just-a-value"})

    plain = await kit.wait_status(ASSETS.path(kit.namespace, "plain"), lambda s: ready(s) is not None)
    assert ready(plain["status"])["status"] == "True"
    db = await kit.wait_status(ASSETS.path(kit.namespace, "db"), lambda s: ready(s) is not None)
    assert ready(db["status"])["status"] == "False"
    assert "'db-secret'" in ready(db["status"])["message"]

    await kit.secret("tls-secret", {"tls.crt": "cert", "other": key_pem})
    tls = await kit.wait_status(ASSETS.path(kit.namespace, "tls"),
                                lambda s: (ready(s) or {}).get("reason") == "SecretKeyNotFound")
    assert "'tls.key'" in ready(tls["status"])["message"]

    await kit.secret("db-secret", {"password": password})
    await kit.wait_status(ASSETS.path(kit.namespace, "db"), lambda s: (ready(s) or {}).get("status") == "True")
    await kit.admin.patch(SECRETS.path(kit.namespace, "tls-secret"), {"stringData": {"tls.key": key_pem}})
    await kit.wait_status(ASSETS.path(kit.namespace, "tls"), lambda s: (ready(s) or {}).get("status") == "True")

    everything = json.dumps([await kit.admin.get(ASSETS.path(kit.namespace, n)) for n in ("db", "tls", "plain")])
    everything += json.dumps(await kit.admin.list(f"/apis/events.k8s.io/v1/namespaces/{kit.namespace}/events"))
    everything += operator.logs()
    for secret in (password, key_pem, "secret-key-material"):
        assert secret not in everything


async def test_registration_secret_is_created_and_recreated_after_deletion(kit: Kit, operator) -> None:
    await kit.group("pool", registration={"groupToken": True})
    secret_name = names.registration_secret_name("pool")
    group = await kit.wait_status(WORKER_GROUPS.path(kit.namespace, "pool"),
                                  lambda s: s.get("registrationTokenSecret") == secret_name)
    first = await kit.admin.get(SECRETS.path(kit.namespace, secret_name))
    assert first["type"] == names.SECRET_TYPE_REGISTRATION
    assert names.REGISTRATION_TOKEN_KEY in first["data"]
    assert first["metadata"]["ownerReferences"][0]["uid"] == group["metadata"]["uid"]

    await kit.admin.delete(SECRETS.path(kit.namespace, secret_name))

    async def recreated() -> dict | None:
        try:
            secret = await kit.admin.get(SECRETS.path(kit.namespace, secret_name))
        except Exception:
            return None
        return secret if secret["metadata"]["uid"] != first["metadata"]["uid"] else None

    second = await async_wait_until(recreated, timeout=20, message="a new registration Secret")
    assert second["data"][names.REGISTRATION_TOKEN_KEY] != first["data"][names.REGISTRATION_TOKEN_KEY]
    assert first["data"][names.REGISTRATION_TOKEN_KEY] not in operator.logs()


async def test_a_group_that_does_not_opt_in_gets_no_long_lived_registration_token(kit: Kit, operator) -> None:
    await kit.group("pool")
    group = await kit.wait_status(WORKER_GROUPS.path(kit.namespace, "pool"), lambda s: s.get("conditions"))
    assert "registrationTokenSecret" not in group["status"]
    secrets = await kit.admin.list(SECRETS.path(kit.namespace))
    assert [s["metadata"]["name"] for s in secrets["items"]] == []


async def test_group_workers_follow_leases_and_renewals_cause_no_status_write(kit: Kit, operator) -> None:
    await kit.group("pool")
    path = WORKER_GROUPS.path(kit.namespace, "pool")
    await kit.wait_status(path, lambda s: s.get("conditions"))
    await kit.lease("pool", "w1", duration=3, hostname="alpha")
    await kit.lease("pool", "w2", duration=60, hostname="beta")
    group = await kit.wait_status(path, lambda s: s.get("readyWorkers") == 2, message="two ready workers")
    workers = {w["name"]: w for w in group["status"]["workers"]}
    assert workers["w1"]["hostname"] == "alpha" and workers["w1"]["interpreters"] == ["bash", "sh", "python3"]
    available = next(c for c in group["status"]["conditions"] if c["type"] == "Available")
    assert available["status"] == "True"

    # w2 renews several times: the group's status must not be written.
    version = group["metadata"]["resourceVersion"]
    for _ in range(4):
        await kit.lease("pool", "w2", duration=60)
        await kit.lease("pool", "w1", duration=3)
        await asyncio.sleep(0.3)  # the renewal period of a (fast) agent
    assert (await kit.admin.get(path))["metadata"]["resourceVersion"] == version

    # w1 stops renewing: it turns not ready once its Lease lapses; the group stays Available with w2.
    group = await kit.wait_status(path, lambda s: s.get("readyWorkers") == 1, timeout=15, message="w1 lapsed")
    assert {w["name"]: w["ready"] for w in group["status"]["workers"]} == {"w1": False, "w2": True}

    await kit.admin.delete(f"/apis/coordination.k8s.io/v1/namespaces/{kit.namespace}/leases/"
                           f"{names.lease_name('pool', 'w2')}")
    group = await kit.wait_status(path, lambda s: s.get("readyWorkers") == 0, message="w2 left")
    assert [w["name"] for w in group["status"]["workers"]] == ["w1"]
    available = next(c for c in group["status"]["conditions"] if c["type"] == "Available")
    assert available["status"] == "False"
