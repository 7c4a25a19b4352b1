"""Pure parts of the Runbook, Asset and WorkerGroup controllers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hrw_api import Asset, Runbook, WorkerGroup, WorkerLease, content_digest
from hrw_operator import assets, runbooks, workergroups
from hrw_operator.frame import Observed, differs

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def lease(name: str, worker: str, renewed: datetime) -> WorkerLease:
    return WorkerLease(name=name, namespace="ns", group="pool", worker=worker, renew_time=renewed, duration_seconds=10)


def rb(spec: dict) -> Runbook:
    return Runbook.parse({"metadata": {"name": "rb", "generation": 2}, "spec": {"interpreter": "bash", **spec}})


def test_runbook_digest_from_inline_content_and_configmap_key() -> None:
    assert runbooks.evaluate(rb({"content": "a"}), None).digest == content_digest("a")
    ref = {"contentFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}
    assert runbooks.evaluate(rb(ref), None).reason == "ConfigMapNotFound"
    assert runbooks.evaluate(rb(ref), {"data": {"other": "x"}}).reason == "ConfigMapKeyNotFound"
    assert runbooks.evaluate(rb(ref), {"data": {"k": "b"}}).digest == content_digest("b")


def test_runbook_parameter_declarations_are_checked() -> None:
    verdict = runbooks.evaluate(rb({"content": "a", "parameters": [
        {"name": "n", "type": "integer", "default": "x"},
        {"name": "p", "pattern": "("},
        {"name": "n"},
    ]}), None)
    assert not verdict.ready and verdict.reason == "InvalidParameters"
    assert "'n'" in verdict.message and "'p'" in verdict.message and "twice" in verdict.message


def test_asset_verdict_names_the_missing_secret_and_key_never_a_value() -> None:
    cred = Asset.parse({"metadata": {"name": "a"}, "spec": {
        "type": "Credential", "username": "u", "passwordFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}}})
    assert assets.evaluate(cred, {"s": None}).message == "Secret 's' not found"
    assert "no key 'pw'" in assets.evaluate(cred, {"s": frozenset({"other"})}).message
    assert assets.evaluate(cred, {"s": frozenset({"pw"})}).ready
    cert = Asset.parse({"metadata": {"name": "c"}, "spec": {
        "type": "Certificate", "certificateFrom": {"secretRef": {"name": "t"}}}})
    assert "'tls.key'" in assets.evaluate(cert, {"t": frozenset({"tls.crt"})}).message


def test_workers_aggregate_readiness_and_the_next_expiry() -> None:
    leases = [lease("a", "w2", NOW - timedelta(seconds=5)), lease("b", "w1", NOW - timedelta(seconds=20))]
    workers, next_change = workergroups.aggregate(leases, NOW)
    assert [(w.name, w.ready) for w in workers] == [("w1", False), ("w2", True)]
    assert next_change == NOW + timedelta(seconds=5)


def test_group_status_unchanged_by_a_renewal() -> None:
    body = {"metadata": {"name": "pool", "generation": 1}, "spec": {"registration": {"groupToken": True}}}
    before = [lease("a", "w1", NOW)]
    after = [lease("a", "w1", NOW + timedelta(seconds=3))]
    first = workergroups.desired_status(Observed.parse(body, WorkerGroup.parse),
                                        workergroups.aggregate(before, NOW)[0])
    second = workergroups.desired_status(Observed.parse({**body, "status": first}, WorkerGroup.parse),
                                         workergroups.aggregate(after, NOW + timedelta(seconds=3))[0])
    assert not differs(second, first)
    assert first["readyWorkers"] == 1 and first["registrationTokenSecret"] == "pool-registration"


def test_a_group_without_the_opt_in_names_no_long_lived_token_secret() -> None:
    body = {"metadata": {"name": "pool", "generation": 1}, "spec": {}}
    status = workergroups.desired_status(Observed.parse(body, WorkerGroup.parse), [])
    assert status["registrationTokenSecret"] is None  # removed by the merge patch, if an older operator set it
