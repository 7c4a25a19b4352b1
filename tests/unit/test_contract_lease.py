"""A worker's Lease and the bodies only the proxy speaks (registration, output chunks) have one
typed model each: what one side writes the other parses back unchanged, times are datetimes
formatted in one place, and a worker's words that do not fit are refused naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hrw_api import (
    InvalidObject,
    JobBundle,
    OutputChunk,
    RegisterRequest,
    RegisterResponse,
    ResolvedAsset,
    StreamName,
    WorkerInfo,
    WorkerLease,
    names,
    wire,
)
from hrw_api.asset import AssetType
from hrw_api.lease import WORKER_ANNOTATIONS
from hrw_api.times import format_micro_time, format_time, parse_time

NOW = datetime(2026, 11, 25, 22, 0, 0, 123456, tzinfo=UTC)
INFO = WorkerInfo(hostname="srv-01.dc", agent_version="0.1.0", interpreters=("bash", "python3"), capacity=2,
                  draining=False)
LEASE = WorkerLease(name=names.lease_name("dc", "w1"), namespace="ns", group="dc", worker="w1", duration_seconds=30,
                    renew_time=NOW, acquire_time=NOW - timedelta(minutes=5), info=INFO)


# ------------------------------------------------------------------------------------------ times


def test_micro_time_and_time_are_formatted_once_and_parse_back() -> None:
    assert format_micro_time(NOW) == "2026-11-25T22:00:00.123456Z"
    assert format_time(NOW) == "2026-11-25T22:00:00Z"
    assert parse_time(format_micro_time(NOW)) == NOW
    assert parse_time("") is None and parse_time(NOW) is NOW


# ------------------------------------------------------------------------------------------ Lease


def test_a_worker_lease_round_trips_through_its_body() -> None:
    body = LEASE.to_dict()
    assert body["metadata"]["name"] == "hrw.dc.w1"
    assert body["metadata"]["labels"] == {names.LABEL_WORKER_GROUP: "dc", names.LABEL_WORKER: "w1",
                                          names.LABEL_MANAGED_BY: names.MANAGED_BY}
    assert body["spec"] == {"holderIdentity": "w1", "leaseDurationSeconds": 30,
                            "renewTime": "2026-11-25T22:00:00.123456Z", "acquireTime": "2026-11-25T21:55:00.123456Z"}
    assert WorkerLease.parse(body) == LEASE


def test_the_renewal_patch_is_the_body_without_name_and_namespace() -> None:
    patch = LEASE.renewal_patch()
    body = LEASE.to_dict()
    assert patch == {"metadata": {"labels": body["metadata"]["labels"],
                                  "annotations": body["metadata"]["annotations"]}, "spec": body["spec"]}


def test_a_lease_is_ready_until_renew_time_plus_its_duration() -> None:
    assert LEASE.expires_at == NOW + timedelta(seconds=30)
    assert LEASE.ready(NOW + timedelta(seconds=29)) and not LEASE.ready(NOW + timedelta(seconds=30))
    status = LEASE.worker_status(NOW)
    assert (status.name, status.capacity, status.interpreters, status.ready) == ("w1", 2, ("bash", "python3"), True)


def test_missing_annotations_read_as_defaults_and_the_worker_falls_back_to_the_holder() -> None:
    lease = WorkerLease.parse({"metadata": {"name": "hrw.dc.w1", "labels": {names.LABEL_WORKER_GROUP: "dc"}},
                               "spec": {"holderIdentity": "w1", "leaseDurationSeconds": 30}})
    assert (lease.worker, lease.info, lease.renew_time, lease.ready(NOW)) == ("w1", WorkerInfo(), None, False)


@pytest.mark.parametrize(("change", "field"), [
    ({names.ANNOTATION_CAPACITY: "lots"}, f"metadata.annotations[{names.ANNOTATION_CAPACITY}]"),
    ({names.ANNOTATION_CAPACITY: "257"}, f"metadata.annotations[{names.ANNOTATION_CAPACITY}]"),
    ({names.ANNOTATION_DRAINING: "maybe"}, f"metadata.annotations[{names.ANNOTATION_DRAINING}]"),
    ({names.ANNOTATION_HOSTNAME: "h" * 254}, f"metadata.annotations[{names.ANNOTATION_HOSTNAME}]"),
    ({names.ANNOTATION_INTERPRETERS: "bash,rm -rf"}, f"metadata.annotations[{names.ANNOTATION_INTERPRETERS}]"),
])
def test_a_workers_annotations_are_typed_and_bounded(change: dict[str, str], field: str) -> None:
    body = LEASE.to_dict()
    body["metadata"]["annotations"].update(change)
    with pytest.raises(InvalidObject) as refused:
        WorkerLease.parse(body)
    assert refused.value.field == field


def test_a_lease_that_is_not_a_workers_or_has_a_bad_time_is_refused() -> None:
    with pytest.raises(InvalidObject, match="worker-group"):
        WorkerLease.parse({"metadata": {"name": "kube-scheduler"}, "spec": {}})
    body = LEASE.to_dict()
    body["spec"]["renewTime"] = "yesterday"
    with pytest.raises(InvalidObject, match=r"spec\.renewTime"):
        WorkerLease.parse(body)


# ------------------------------------------------------------------------------------ wire bodies


def test_registration_round_trips_and_refuses_a_bad_worker_name() -> None:
    request = RegisterRequest(worker="w1", hostname="srv-01", agent_version="0.1.0", interpreters=("bash",))
    assert RegisterRequest.parse(request.to_dict()) == request
    response = RegisterResponse(worker="w1", credential="hrwc_secret")
    assert RegisterResponse.parse(response.to_dict()) == response
    for bad, field in (({"worker": "W_1"}, "worker"), ({"worker": "w1", "interpreters": "bash"}, "interpreters"),
                       ({"worker": "w1", "hostname": "h" * 254}, "hostname"),
                       ({"worker": "w1", "hostname": "srv\x1b]0;pwned\x07"}, "hostname"),
                       ({"worker": "w1", "agentVersion": "0.1 final"}, "agentVersion"),
                       ({"worker": "w1", "interpreters": ["bash,sh"]}, "interpreters")):
        with pytest.raises(InvalidObject) as refused:
            RegisterRequest.parse(bad)
        assert refused.value.field == field
    with pytest.raises(InvalidObject, match="no credential"):
        RegisterResponse.parse({"worker": "w1", "credential": ""})


def test_an_output_chunk_round_trips_and_refuses_what_the_proxy_refused() -> None:
    for chunk in (OutputChunk(1, 0, "hello\n"), OutputChunk(2, 5, "oops\n", StreamName.STDERR)):
        assert OutputChunk.parse(chunk.to_dict()) == chunk
    for bad in ({"attempt": 0, "seq": 0, "data": ""}, {"attempt": 1, "seq": -1, "data": ""},
                {"attempt": 1, "seq": 0, "data": 3}, [], {"attempt": True, "seq": 0, "data": ""},
                {"attempt": 1, "seq": 0, "data": "", "stream": "stdin"}):
        with pytest.raises(InvalidObject):
            OutputChunk.parse(bad)


def test_a_job_bundle_reads_back_and_must_carry_the_content() -> None:
    db = ResolvedAsset("db", AssetType.CREDENTIAL, {"username": "u", "password": "p"}, frozenset({"password"}))
    runbook = {"apiVersion": "hrw.dev/v1alpha1", "kind": "Runbook", "metadata": {"name": "rb"},
               "spec": {"interpreter": "bash", "content": "echo hi\n"}}
    bundle = JobBundle.parse(wire.job_bundle_body(runbook, [db]))
    assert bundle.assets == (db,) and bundle.runbook.spec.content == "echo hi\n"
    from_cm = {"contentFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}
    without = {**runbook, "spec": {"interpreter": "bash", **from_cm}}
    with pytest.raises(InvalidObject):
        JobBundle.parse(wire.job_bundle_body(without, [db]))


def test_every_annotation_an_agent_writes_is_one_the_proxy_accepts() -> None:
    """What `WorkerInfo` writes and the allow-list the proxy checks Leases against stay one set."""
    assert set(WorkerInfo(labels={"role": "web"}).to_annotations()) == WORKER_ANNOTATIONS
