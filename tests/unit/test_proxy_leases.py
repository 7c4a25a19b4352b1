"""A worker's Lease must fit the contract's WorkerLease: the operator reads every Lease of a group,
and a Lease it cannot read would make a live worker look lost."""

from __future__ import annotations

import pytest

from hrw_api import names
from hrw_proxy import leases
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
