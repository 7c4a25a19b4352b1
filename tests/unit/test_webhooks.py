"""RunbookWebhook's pure parts, without a cluster: the model, the token and its Secret, the call
body, the proxy's parameter rules and the operator's Ready decision. The real calls, through the
real proxy to a job that runs, are in tests/e2e/test_webhooks.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hrw_api import InvalidObject, Runbook, RunbookWebhook, WebhookCall, names
from hrw_api.runbookwebhook import TOKEN_PREFIX, new_token, stored_token_hash, token_hash, token_matches, token_secret
from hrw_operator.webhooks import WebhookFacts, decide
from hrw_proxy.webhooks import invalid, parameter_problems

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RUNBOOK = Runbook.parse({"metadata": {"name": "deploy", "namespace": "ns"}, "spec": {
    "interpreter": "bash", "content": "echo", "parameters": [
        {"name": "version", "required": True},
        {"name": "replicas", "type": "integer", "default": 1},
        {"name": "env", "enum": ["staging", "prod"]},
        {"name": "password"},
    ]}})


def webhook(*, fixed: dict[str, Any] | None = None, allowed: list[str] | None = None,
            expires: datetime | None = None, status: dict[str, Any] | None = None) -> RunbookWebhook:
    spec: dict[str, Any] = {"jobTemplate": {"runbookRef": {"name": "deploy"}, "workerGroup": "dc",
                                            "parameters": fixed if fixed is not None else {"env": "staging"},
                                            "ttlSecondsAfterFinished": 600},
                            "allowedParameters": allowed if allowed is not None else ["version", "replicas",
                                                                                      "password"]}
    if expires is not None:
        spec["expiresAt"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return RunbookWebhook.parse({"metadata": {"name": "ci", "namespace": "ns", "uid": "u-1", "generation": 3},
                                 "spec": spec, "status": status or {}})


# -- the model


def test_a_parameter_both_fixed_and_allowed_stays_fixed_and_the_webhook_says_so() -> None:
    hook = webhook(fixed={"env": "prod"}, allowed=["env", "version"])
    assert parameter_problems(hook, {"env": "staging", "version": "1"}, RUNBOOK.spec.parameters) == [
        ("parameters.env", "is fixed by the webhook; a caller cannot set it")]
    status, reason, message = ready(hook, WebhookFacts(runbook=RUNBOOK))
    assert (status, reason) == ("False", "InvalidParameters")
    assert "spec.allowedParameters: 'env' is fixed by spec.jobTemplate.parameters" in message


def test_a_calls_job_is_the_template_with_the_callers_parameters_owned_by_and_labelled_with_the_webhook() -> None:
    body = webhook().job_body({"version": "1.2"})
    assert body["metadata"]["generateName"] == "ci-"
    assert body["metadata"]["labels"] == {names.LABEL_WEBHOOK: "ci"}
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": names.API_VERSION, "kind": "RunbookWebhook",
                                                    "name": "ci", "uid": "u-1", "controller": True}]
    assert body["spec"]["parameters"] == {"env": "staging", "version": "1.2"}
    assert body["spec"]["ttlSecondsAfterFinished"] == 600
    assert body["spec"]["runbookRef"] == {"name": "deploy"} and body["spec"]["workerGroup"] == "dc"


def test_expiry_is_at_expires_at_and_never_without_it() -> None:
    assert not webhook().expired(NOW)
    assert not webhook(expires=NOW + timedelta(seconds=1)).expired(NOW)
    assert webhook(expires=NOW).expired(NOW)


# -- the token


def test_the_token_is_kept_only_as_its_hash_in_a_secret_owned_by_the_webhook() -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    hook = webhook()
    secret = token_secret(hook, token_hash(token))
    assert secret["type"] == names.SECRET_TYPE_WEBHOOK_TOKEN
    assert secret["metadata"]["name"] == "hrw-webhook.ci"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert token not in str(secret)
    stored = stored_token_hash(secret, hook)
    assert stored == token_hash(token)
    assert token_matches(token, stored)
    assert not token_matches(new_token(), stored)


def test_a_secret_of_another_type_or_owner_holds_no_token_for_the_webhook() -> None:
    hook = webhook()
    secret = token_secret(hook, token_hash("t"))
    assert stored_token_hash({**secret, "type": "Opaque"}, hook) is None
    other_owner = {**secret, "metadata": {**secret["metadata"], "ownerReferences": [{"uid": "u-old"}]}}
    assert stored_token_hash(other_owner, hook) is None
    garbled = {**secret, "data": {names.WEBHOOK_TOKEN_HASH_KEY: "%%%"}}
    assert stored_token_hash(garbled, hook) is None
    assert base64.b64decode(secret["data"]["sha256"]).decode() == token_hash("t")


# -- the call body


def test_a_call_body_is_parameters_or_nothing() -> None:
    assert WebhookCall.parse(None).parameters == {}
    assert WebhookCall.parse({}).parameters == {}
    assert WebhookCall.parse({"parameters": {"version": "1"}}).parameters == {"version": "1"}
    for body, field in (([], "body"), ({"version": "1"}, "version"), ({"parameters": []}, "parameters"),
                        ({"parameters": {str(i): i for i in range(65)}}, "parameters")):
        with pytest.raises(InvalidObject) as caught:
            WebhookCall.parse(body)
        assert caught.value.field == field, body


# -- the proxy's rules for a caller's parameters


def test_allowed_parameters_that_fit_the_runbook_are_accepted() -> None:
    assert parameter_problems(webhook(), {"version": "1.2", "replicas": 3}, RUNBOOK.spec.parameters) == []


def test_a_fixed_or_unlisted_parameter_is_refused_naming_the_field() -> None:
    problems = parameter_problems(webhook(), {"env": "prod", "colour": "blue", "version": "1"},
                                  RUNBOOK.spec.parameters)
    assert problems == [("parameters.colour", "is not a parameter a caller may set (allowed: password, replicas, "
                                              "version)"),
                        ("parameters.env", "is fixed by the webhook; a caller cannot set it")]


def test_an_ill_typed_value_is_refused_without_repeating_the_value() -> None:
    problems = parameter_problems(webhook(), {"version": "1", "replicas": "three"}, RUNBOOK.spec.parameters)
    assert problems == [("parameters.replicas", "must be of type integer")]
    error = invalid("ns/ci", problems)
    assert error.code == 422 and "three" not in error.message
    assert error.body()["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "field": "parameters.replicas", "message": "must be of type integer"}]


def test_a_required_parameter_nobody_set_is_refused() -> None:
    assert parameter_problems(webhook(), {}, RUNBOOK.spec.parameters) == [
        ("parameters.version", "is required by the runbook")]


# -- the operator's Ready condition


def ready(hook: RunbookWebhook, facts: WebhookFacts, now: datetime = NOW) -> tuple[str, str, str]:
    cond = next(c for c in decide(hook, facts, now).status.conditions if c.type == "Ready")
    return cond.status, cond.reason, cond.message


def test_a_webhook_whose_runbook_and_group_exist_is_ready_and_wakes_at_its_expiry() -> None:
    expires = NOW + timedelta(hours=1)
    hook = webhook(expires=expires)
    assert ready(hook, WebhookFacts(runbook=RUNBOOK))[:2] == ("True", "Ready")
    assert decide(hook, WebhookFacts(runbook=RUNBOOK), NOW).wake_at == expires
    assert ready(hook, WebhookFacts(runbook=RUNBOOK), expires)[:2] == ("False", "Expired")


@pytest.mark.parametrize(("hook", "facts", "reason", "names_"), [
    (webhook(), WebhookFacts(runbook_problem="spec.jobTemplate.runbookRef: Runbook 'deploy' not found"),
     "RunbookNotFound", "'deploy'"),
    (webhook(), WebhookFacts(runbook=RUNBOOK, group_problem="spec.jobTemplate.workerGroup: WorkerGroup 'dc' not "
                                                            "found"), "WorkerGroupNotFound", "'dc'"),
    (webhook(fixed={"env": "qa"}), WebhookFacts(runbook=RUNBOOK), "InvalidParameters",
     "spec.jobTemplate.parameters.env must be one of"),
    (webhook(allowed=["version", "colour"]), WebhookFacts(runbook=RUNBOOK), "InvalidParameters", "'colour'"),
    (webhook(allowed=[]), WebhookFacts(runbook=RUNBOOK), "InvalidParameters", "requires parameter 'version'"),
    (webhook(expires=NOW - timedelta(seconds=1)), WebhookFacts(runbook=RUNBOOK), "Expired", "spec.expiresAt"),
])
def test_a_webhook_that_cannot_create_a_runnable_job_says_why(hook: RunbookWebhook, facts: WebhookFacts,
                                                               reason: str, names_: str) -> None:
    status, got, message = ready(hook, facts)
    assert (status, got) == ("False", reason)
    assert names_ in message
