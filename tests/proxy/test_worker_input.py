"""Worker input is untrusted input (issue 13): each field a worker can write is checked against the
contract's types and bounds, and refused with a Status 400 naming the field; a claim from an agent
below its group's minimum version is refused; a worker's Lease is owned by its group."""

from __future__ import annotations

import httpx
import pytest

from hrw_api import JobPhase, JobResult, names, patches, wire
from hrw_api.errors import Forbidden
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, WORKER_GROUPS, KubeClient
from hrw_api.versions import user_agent


def _lease(annotations: dict | None = None, labels: dict | None = None, **spec) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": names.lease_name("g1", "w1"), "annotations": annotations or {},
                         "labels": labels or {}},
            "spec": {"holderIdentity": "w1", "leaseDurationSeconds": 30, **spec}}


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["reason"] == "BadRequest"
    assert field in body["message"], body["message"]


@pytest.mark.parametrize(("lease", "field"), [
    (_lease({names.ANNOTATION_CAPACITY: "99999999999"}), names.ANNOTATION_CAPACITY),
    (_lease({names.ANNOTATION_CAPACITY: "two"}), names.ANNOTATION_CAPACITY),
    (_lease({names.ANNOTATION_RUNNING_JOBS: "-3"}), names.ANNOTATION_RUNNING_JOBS),
    (_lease({names.ANNOTATION_HOSTNAME: "srv\x1b[2J"}), names.ANNOTATION_HOSTNAME),
    (_lease({names.ANNOTATION_LAST_ERROR: "e" * 1000}), names.ANNOTATION_LAST_ERROR),
    (_lease({"hrw.dev/capacty": "2"}), "hrw.dev/capacty"),
    (_lease(labels={"owner": "me"}), "metadata.labels[owner]"),
    (_lease(leaseDurationSeconds=10**9), "spec.leaseDurationSeconds"),
    (_lease(leaseDurationSeconds="30"), "leaseDurationSeconds"),
    (_lease(preferredHolder="w2"), "spec.preferredHolder"),
])
async def test_a_lease_value_out_of_the_contract_is_a_bad_request_naming_the_field(world, lease, field):
    path = LEASES.path(world.namespace)
    async with world.proxy.http(world.credentials["w1"]) as http:
        _refused(await http.post(path, json=lease), field)
        created = await http.post(path, json=_lease())
        assert created.status_code == 201, created.text
        patch = {"metadata": {k: v for k, v in lease["metadata"].items() if k in ("annotations", "labels") and v},
                 "spec": {k: v for k, v in lease["spec"].items() if k not in ("holderIdentity",)}}
        _refused(await http.patch(f"{path}/{names.lease_name('g1', 'w1')}", json=patch,
                                  headers={"Content-Type": "application/merge-patch+json"}), field)


async def test_a_workers_lease_is_owned_by_its_group(world):
    group = await world.admin.get(WORKER_GROUPS.path(world.namespace, "g1"))
    async with world.client("w1") as kube:
        lease = await kube.create(LEASES.path(world.namespace), _lease({names.ANNOTATION_CAPACITY: "1"}))
    assert lease["metadata"]["ownerReferences"] == [{"apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP,
                                                     "name": "g1", "uid": group["metadata"]["uid"]}]


def _finish(reason: str = "Completed", **changes) -> list:
    result = JobResult(JobPhase.SUCCEEDED, reason, "done", exit_code=0, outputs={"k": "v"})
    return [op if op["path"].removeprefix("/status/") not in changes or op["op"] == "test"
            else {**op, "value": changes[op["path"].removeprefix("/status/")]}
            for op in patches.finish(1, "w1", result)]


@pytest.mark.parametrize(("patch", "field"), [
    (_finish("not CamelCase!"), "/status/reason"),
    (_finish(exitCode=2**40), "/status/exitCode"),
    (_finish(message="m" * 40000), "/status/message"),
    (_finish(outputs={"k": ["not", "a", "string"]}), "/status/outputs"),
])
async def test_a_status_value_out_of_the_contract_is_a_bad_request_naming_the_field(world, patch, field):
    await world.create_job("j1", "g1")
    await world.claim("j1", "w1")
    async with world.proxy.http(world.credentials["w1"]) as http:
        _refused(await http.patch(RUNBOOK_JOBS.path(world.namespace, "j1", "status"), json=patch,
                                  headers={"Content-Type": "application/json-patch+json"}), field)
        fine = await http.patch(RUNBOOK_JOBS.path(world.namespace, "j1", "status"), json=_finish(),
                                headers={"Content-Type": "application/json-patch+json"})
    assert fine.status_code == 200, fine.text


async def test_an_output_chunk_or_registration_out_of_the_contract_is_a_bad_request_naming_the_field(world):
    await world.create_job("j1", "g1")
    await world.claim("j1", "w1")
    async with world.proxy.http(world.credentials["w1"]) as http:
        _refused(await http.post(wire.output_path(world.namespace, "j1"),
                                 json={"attempt": 1, "seq": 0, "data": "x", "stream": "stdin"}), "OutputChunk.stream")
        _refused(await http.post(wire.output_path(world.namespace, "j1"),
                                 json={"attempt": "1", "seq": 0, "data": "x"}), "OutputChunk.attempt")
    async with world.proxy.http(world.tokens["g1"]) as http:
        for body, field in (({"worker": "w9", "hostname": "srv\x07"}, "hostname"),
                            ({"worker": "w9", "agentVersion": "1.0 final"}, "agentVersion"),
                            ({"worker": "w9", "interpreters": ["bash,sh"]}, "interpreters")):
            _refused(await http.post(wire.register_path(world.namespace, "g1"), json=body), field)


async def test_a_claim_from_an_agent_below_the_groups_minimum_version_is_forbidden(world):
    await world.admin.patch(WORKER_GROUPS.path(world.namespace, "g1"), {"spec": {"minAgentVersion": "0.2.0"}})
    await world.create_job("j1", "g1")
    claim = patches.claim(1, "w1")

    def agent(version: str) -> KubeClient:
        return KubeClient(world.proxy.url, verify=world.proxy.ssl_context(), token=world.credentials["w1"],
                          user_agent=user_agent(version))

    async with agent("0.1.0") as old:
        with pytest.raises(Forbidden, match=r"below the group.s minimum agent version 0\.2\.0"):
            await old.patch(RUNBOOK_JOBS.path(world.namespace, "j1", "status"), claim, json_patch=True)
    async with agent("0.2.0") as current:
        claimed = await current.patch(RUNBOOK_JOBS.path(world.namespace, "j1", "status"), claim, json_patch=True)
    assert claimed["status"]["phase"] == "Running"
