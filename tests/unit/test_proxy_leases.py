"""A worker's Lease must fit the contract's WorkerLease: the operator reads every Lease of a group,
and a Lease it cannot read would make a live worker look lost."""

from __future__ import annotations

import pytest

from hrw_api import WorkerGroup, names
from hrw_proxy import leases, policy
from hrw_proxy.auth import WorkerIdentity
from hrw_proxy.refusals import ProxyError

ME = WorkerIdentity("ns", "g1", "w1")


@pytest.mark.parametrize("annotations", [
    {names.ANNOTATION_CAPACITY: "lots"},
    {names.ANNOTATION_DRAINING: "maybe"},
    {names.ANNOTATION_HOSTNAME: "h" * 254},
    {names.ANNOTATION_INTERPRETERS: "bash;rm -rf /"},
])
def test_a_lease_whose_worker_info_does_not_fit_is_a_bad_request(annotations):
    body = {"metadata": {"name": "hrw.g1.w1", "annotations": annotations}, "spec": {"leaseDurationSeconds": 30}}
    with pytest.raises(ProxyError) as created:
        leases.sanitize_lease(ME, body, path_name=None)
    with pytest.raises(ProxyError) as patched:
        leases.sanitize_lease_patch(ME, {"metadata": {"annotations": annotations}})
    assert created.value.code == patched.value.code == 400
    assert "annotations" in created.value.message and "annotations" in patched.value.message


def test_a_lease_duration_that_is_not_a_whole_number_of_seconds_is_a_bad_request():
    with pytest.raises(ProxyError) as caught:
        leases.sanitize_lease_patch(ME, {"spec": {"leaseDurationSeconds": "30"}})
    assert caught.value.code == 400 and "leaseDurationSeconds" in caught.value.message


def test_a_merge_patch_may_still_delete_an_annotation():
    patch = leases.sanitize_lease_patch(ME, {"metadata": {"annotations": {names.ANNOTATION_DRAINING: None}}})
    assert patch["metadata"]["annotations"] == {names.ANNOTATION_DRAINING: None}


@pytest.mark.parametrize(("body", "field"), [
    ({"metadata": {"labels": {"team": "x"}}}, "metadata.labels[team]"),
    ({"metadata": {"labels": {names.LABEL_MANAGED_BY: "helm"}}}, f"metadata.labels[{names.LABEL_MANAGED_BY}]"),
    ({"metadata": {"annotations": {"hrw.dev/capacty": "2"}}}, "metadata.annotations[hrw.dev/capacty]"),
    ({"metadata": {"annotations": {names.ANNOTATION_RUNNING_JOBS: "-1"}}}, names.ANNOTATION_RUNNING_JOBS),
    ({"metadata": {"annotations": {names.ANNOTATION_LAST_ERROR: "oops\x1b[2J"}}}, names.ANNOTATION_LAST_ERROR),
    ({"metadata": {"annotations": {names.ANNOTATION_AGENT_VERSION: "1.0 final"}}}, names.ANNOTATION_AGENT_VERSION),
    ({"spec": {"leaseDurationSeconds": 10**9}}, "spec.leaseDurationSeconds"),
    ({"spec": {"preferredHolder": "w2"}}, "spec.preferredHolder"),
    ({"spec": {"leaseTransitions": -1}}, "spec.leaseTransitions"),
])
def test_anything_outside_the_contracts_lease_is_a_bad_request_naming_the_field(body, field):
    whole = {"metadata": {"name": "hrw.g1.w1", **body.get("metadata", {})},
             "spec": {"leaseDurationSeconds": 30, **body.get("spec", {})}}
    with pytest.raises(ProxyError) as created:
        leases.sanitize_lease(ME, whole, path_name=None)
    with pytest.raises(ProxyError) as patched:
        leases.sanitize_lease_patch(ME, body)
    assert created.value.code == patched.value.code == 400
    assert field in created.value.message and field in patched.value.message


def test_a_created_lease_is_owned_by_the_workers_group():
    group = WorkerGroup.parse({"metadata": {"name": "g1", "namespace": "ns", "uid": "u-1"}, "spec": {}})
    body = {"metadata": {"name": "hrw.g1.w1", "ownerReferences": [{"kind": "Secret", "name": "x", "uid": "y"}]},
            "spec": {"leaseDurationSeconds": 30}}
    lease = leases.owned_by_group(leases.sanitize_lease(ME, body, path_name=None), group)
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": names.API_VERSION, "kind": names.WORKER_GROUP, "name": "g1", "uid": "u-1"}]


def test_a_claim_below_the_groups_minimum_agent_version_is_forbidden():
    group = WorkerGroup.parse({"metadata": {"name": "g1", "uid": "u"}, "spec": {"minAgentVersion": "0.2.0"}})
    policy.check_may_claim(ME, group, "hrw-agent/0.2.1")
    for user_agent in ("hrw-agent/0.1.9", "kubectl/v1.36.3", None):
        with pytest.raises(ProxyError) as refused:
            policy.check_may_claim(ME, group, user_agent)
        assert refused.value.code == 403 and "minimum agent version 0.2.0" in refused.value.message
    policy.check_may_claim(ME, WorkerGroup.parse({"metadata": {"name": "g1"}, "spec": {}}), None)
