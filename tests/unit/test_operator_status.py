"""Pure parts of the Runbook and Asset controllers (the WorkerGroup's: test_operator_workers.py)."""

from __future__ import annotations

from hrw_api import Asset, Runbook, content_digest
from hrw_operator import assets, runbooks


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

