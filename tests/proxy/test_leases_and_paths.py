"""The worker's own Lease and WorkerGroup; everything else (Secrets, other paths, bad bodies) refused."""

from __future__ import annotations

import pytest

from hrw_api import names
from hrw_api.errors import Forbidden
from hrw_api.kubeclient import LEASES, RUNBOOKS, SECRETS, WORKER_GROUPS


def _lease(name: str, holder: str) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 30}}


async def test_a_worker_creates_renews_and_patches_its_own_lease_with_forced_labels(world):
    name = names.lease_name("g1", "w1")
    async with world.client("w1") as kube:
        created = await kube.create(LEASES.path(world.namespace), _lease(name, "w1"))
        created["spec"]["leaseTransitions"] = 1
        renewed = await kube.replace(LEASES.path(world.namespace, name), created)
        patched = await kube.patch(LEASES.path(world.namespace, name),
                                   {"metadata": {"annotations": {names.ANNOTATION_CAPACITY: "2"},
                                                 "labels": {names.LABEL_WORKER: "w2"}}})
        fetched = await kube.get(LEASES.path(world.namespace, name))
    assert renewed["spec"]["leaseTransitions"] == 1
    assert patched["metadata"]["annotations"][names.ANNOTATION_CAPACITY] == "2"
    labels = fetched["metadata"]["labels"]
    assert (labels[names.LABEL_WORKER_GROUP], labels[names.LABEL_WORKER]) == ("g1", "w1")


async def test_another_workers_lease_is_forbidden(world):
    mine, theirs = names.lease_name("g1", "w1"), names.lease_name("g1", "w2")
    async with world.client("w2") as kube:
        await kube.create(LEASES.path(world.namespace), _lease(theirs, "w2"))
    async with world.client("w1") as kube:
        for call in (kube.get(LEASES.path(world.namespace, theirs)),
                     kube.create(LEASES.path(world.namespace), _lease(theirs, "w1")),
                     kube.patch(LEASES.path(world.namespace, theirs), {"spec": {"leaseDurationSeconds": 1}}),
                     kube.create(LEASES.path(world.namespace), _lease(mine, "w2")),
                     kube.list(LEASES.path(world.namespace))):
            with pytest.raises(Forbidden):
                await call


async def test_own_worker_group_is_readable_and_another_is_not(world):
    async with world.client("w1") as kube:
        group = await kube.get(WORKER_GROUPS.path(world.namespace, "g1"))
        assert group["spec"]["outputLimitBytes"] == 4 * 65536
        with pytest.raises(Forbidden):
            await kube.get(WORKER_GROUPS.path(world.namespace, "g2"))


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces",
    "/api/v1/namespaces/{ns}/secrets",
    "/api/v1/namespaces/{ns}/secrets/db",
    "/api/v1/namespaces/{ns}/secrets/" + names.registration_secret_name("g1"),
    "/api/v1/namespaces/{ns}/configmaps/script",
    "/apis/hrw.dev/v1alpha1/runbooks",
    "/apis/hrw.dev/v1alpha1/namespaces/{ns}/runbooks",
    "/apis/hrw.dev/v1alpha1/namespaces/{ns}/assets/db",
    "/apis/hrw.dev/v1alpha1/namespaces/{ns}/workergroups",
    "/version",
    "/metrics",
])
async def test_arbitrary_apiserver_paths_are_forbidden(world, path):
    async with world.proxy.http(world.credentials["w1"]) as http:
        response = await http.get(path.format(ns=world.namespace))
    assert response.status_code == 403
    body = response.json()
    assert (body["kind"], body["apiVersion"], body["status"], body["reason"], body["code"]) == (
        "Status", "v1", "Failure", "Forbidden", 403)


async def test_writes_to_secrets_and_hrw_objects_are_forbidden(world):
    async with world.client("w1") as kube:
        with pytest.raises(Forbidden):
            await kube.create(SECRETS.path(world.namespace), {"metadata": {"name": "x"}, "data": {}})
        with pytest.raises(Forbidden):
            await kube.delete(RUNBOOKS.path(world.namespace, "rb-inline"))
        with pytest.raises(Forbidden):
            await kube.patch(RUNBOOKS.path(world.namespace, "rb-inline"), {"spec": {"content": "rm -rf /"}})


async def test_malformed_json_is_a_bad_request(world):
    await world.create_job("a1", "g1")
    async with world.proxy.http(world.credentials["w1"]) as http:
        response = await http.patch(f"/apis/hrw.dev/v1alpha1/namespaces/{world.namespace}/runbookjobs/a1/status",
                                    content=b"[{not json", headers={"Content-Type": "application/json-patch+json"})
    assert response.status_code == 400
    assert response.json()["reason"] == "BadRequest"


async def test_an_oversized_body_is_refused(world):
    async with world.proxy.http(world.credentials["w1"]) as http:
        response = await http.post(f"/apis/hrw.dev/v1alpha1/namespaces/{world.namespace}/runbookjobs/a1/output",
                                   content=b"x" * (300 * 1024), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["reason"] == "RequestEntityTooLarge"
