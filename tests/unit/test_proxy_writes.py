"""What the proxy itself may write (proxy/hrw_proxy/writes.py): workers' credential Secrets, issued
tokens' use counts and workers' Leases, by name and labels; nothing else, whatever RBAC allows."""

from __future__ import annotations

import pytest

from hrw_api import names, regtokens
from hrw_proxy.writes import WriteRefused, check_lease_write, check_secret_write

WORKER_LABELS = {names.LABEL_WORKER_GROUP: "g1", names.LABEL_WORKER: "w1"}


def worker_secret(**overrides) -> dict:
    secret = {"type": names.SECRET_TYPE_WORKER_CREDENTIAL, "metadata": {"labels": dict(WORKER_LABELS)},
              "data": {names.WORKER_CREDENTIAL_HASH_KEY: "YQ=="}}
    secret.update(overrides)
    return secret


def test_a_workers_credential_secret_may_be_created_and_patched() -> None:
    check_secret_write("create", "ns", names.worker_secret_name("g1", "w1"), worker_secret())
    check_secret_write("patch", "ns", names.worker_secret_name("g1", "w1"),
                       {"metadata": {"labels": WORKER_LABELS}, "data": {names.WORKER_CREDENTIAL_HASH_KEY: "Yg=="}})


@pytest.mark.parametrize(("name", "body"), [
    ("db", worker_secret()),  # an Asset's Secret
    (names.registration_secret_name("g1"), worker_secret()),  # the group's long-lived token
    ("bootstrap-token-abcdef", worker_secret()),
    (names.worker_secret_name("g1", "w2"), worker_secret()),  # labels of another worker
    (names.worker_secret_name("g1", "w1"), worker_secret(type="Opaque")),
    (names.worker_secret_name("g1", "w1"), worker_secret(data={"token": "eA=="})),
])
def test_any_other_secret_write_is_refused(name: str, body: dict) -> None:
    with pytest.raises(WriteRefused) as refused:
        check_secret_write("create", "kube-system", name, body)
    assert refused.value.code == 403


def test_an_issued_token_only_has_its_use_count_patched_with_a_precondition() -> None:
    name = names.issued_token_secret_name("g1", "abcdefghij")
    check_secret_write("patch", "ns", name, {"metadata": {"resourceVersion": "7"},
                                             "data": {regtokens.USES_KEY: "MA=="}})
    for body in ({"data": {regtokens.USES_KEY: "OQ=="}},  # no precondition
                 {"metadata": {"resourceVersion": "7"}, "data": {regtokens.HASH_KEY: "eA=="}},
                 {"metadata": {"resourceVersion": "7"}, "data": {regtokens.EXPIRES_KEY: "eA=="}}):
        with pytest.raises(WriteRefused):
            check_secret_write("patch", "ns", name, body)
    with pytest.raises(WriteRefused):
        check_secret_write("create", "ns", name, {"metadata": {}, "data": {}})


def test_a_workers_lease_may_be_written_and_no_other() -> None:
    lease = {"metadata": {"name": names.lease_name("g1", "w1"), "labels": WORKER_LABELS}}
    check_lease_write("create", "ns", None, lease)
    check_lease_write("update", "ns", names.lease_name("g1", "w1"), lease)
    check_lease_write("patch", "ns", names.lease_name("g1", "w1"), {"spec": {"renewTime": "x"}})
    for verb, name, body in (
            ("create", None, {"metadata": {"name": "kube-controller-manager", "labels": WORKER_LABELS}}),
            ("update", "kube-scheduler", lease),
            ("patch", "hrw-operator-leader", {"spec": {"holderIdentity": "me"}}),
            ("create", None, {"metadata": {"name": names.lease_name("g1", "w1")}}),  # unlabelled
            ("patch", names.lease_name("g1", "w1"), {"metadata": {"labels": {names.LABEL_WORKER: "w2"}}})):
        with pytest.raises(WriteRefused):
            check_lease_write(verb, "kube-system", name, body)
