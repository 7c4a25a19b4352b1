"""RunbookWebhooks end to end: the real operator, the real proxy (as its own ServiceAccount with
the chart's Role), a real agent, and the token made with the real `hrw webhook token`.

A call with the token and an allowed body creates a job, owned by the webhook, that runs to
Succeeded; every refusal (no or bad token, an expired hook, a disallowed, fixed or ill-typed
parameter, a body that is too large or not JSON, a flood) is a Kubernetes `Status` and creates
nothing. The token and the parameter values are never in the proxy's log; its audit line names
the webhook, the caller, the parameter names and the job.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from hrw_api import names
from hrw_api.kubeclient import RUNBOOK_JOBS, RUNBOOK_WEBHOOKS, RUNBOOKS, SECRETS
from tests.e2e.test_cli_jobs import hrw
from tests.support.proxy import ProxyTLS, start_proxy
from tests.support.stack import PROXY_ARGS, Stack
from tests.support.waiting import async_wait_until

GROUP = "dc"
GREET = 'echo "hello $HRW_PARAM_NAME from $HRW_PARAM_SOURCE, $HRW_PARAM_COUNT times"\n'
GREET_PARAMS = [{"name": "name", "type": "string", "required": True},
                {"name": "source", "type": "string"},
                {"name": "count", "type": "integer", "default": 1},
                {"name": "password", "type": "string"}]


async def webhook(stack: Stack, name: str, *, allowed: list[str], fixed: dict[str, Any] | None = None,
                  expires: datetime | None = None, runbook: str = "greet") -> dict[str, Any]:
    spec: dict[str, Any] = {"jobTemplate": {"runbookRef": {"name": runbook}, "workerGroup": GROUP,
                                            "parameters": fixed if fixed is not None else {"source": "ci"}},
                            "allowedParameters": allowed}
    if expires is not None:
        spec["expiresAt"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return await stack.admin.create(RUNBOOK_WEBHOOKS.path(stack.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_WEBHOOK, "metadata": {"name": name}, "spec": spec})


async def token_for(stack: Stack, name: str) -> str:
    made = await hrw(stack, "webhook", "token", name, "-q")
    assert made.code == 0, made
    token = made.stdout.strip()
    assert token.startswith("hrwh_")
    return token


async def ready(stack: Stack, name: str, status: str, reason: str, *, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    async def check() -> dict[str, Any] | None:
        obj = await stack.admin.get(RUNBOOK_WEBHOOKS.path(stack.namespace, name))
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond["type"] == "Ready" and cond["status"] == status and cond["reason"] == reason:
                return dict(cond)
        return None

    found: dict[str, Any] = await async_wait_until(check, timeout=timeout, message=f"webhook {name} {reason}")
    return found


def post(http: httpx.AsyncClient, stack: Stack, hook: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post(names.webhook_path(stack.namespace, hook), headers=headers, **kwargs)


async def jobs(stack: Stack) -> list[dict[str, Any]]:
    return list((await stack.admin.list(RUNBOOK_JOBS.path(stack.namespace)))["items"])


async def test_a_webhook_call_creates_a_job_owned_by_the_webhook_that_runs_to_succeeded(stack: Stack):
    await stack.group(GROUP)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("greet", GREET, parameters=GREET_PARAMS)
    hook = await webhook(stack, "deploy", allowed=["name", "count", "password"])
    await ready(stack, "deploy", "True", "Ready")
    made = await hrw(stack, "webhook", "token", "deploy", "--proxy-url", stack.proxy.url)
    assert made.code == 0, made
    token = re.search(r"Authorization: Bearer (hrwh_\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    assert f"POST {stack.proxy.url}/hooks/v1/{stack.namespace}/deploy" in made.stdout
    assert "curl -fsS -X POST" in made.stdout

    # The cluster keeps the token's sha256 only, in a Secret owned by the webhook.
    secret = await stack.admin.get(SECRETS.path(stack.namespace, names.webhook_token_secret_name("deploy")))
    assert secret["type"] == names.SECRET_TYPE_WEBHOOK_TOKEN
    assert base64.b64decode(secret["data"]["sha256"]).decode() == hashlib.sha256(token.encode()).hexdigest()
    assert secret["metadata"]["ownerReferences"][0]["uid"] == hook["metadata"]["uid"]

    async with stack.proxy.http() as http:
        answer = await post(http, stack, "deploy", token,
                            json={"parameters": {"name": "World", "count": 2, "password": "s3cr3t-value"}})
    assert answer.status_code == 201, answer.text
    status = answer.json()
    assert status["kind"] == "Status" and status["status"] == "Success"
    name = status["details"]["name"]
    assert status["message"] == f"runbookjob.hrw.dev/{name} created" and name.startswith("deploy-")

    job = await stack.wait_phase(name, "Succeeded")
    assert job["metadata"]["labels"][names.LABEL_WEBHOOK] == "deploy"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("RunbookWebhook", "deploy", hook["metadata"]["uid"], True)
    assert job["spec"]["parameters"] == {"source": "ci", "name": "World", "count": 2, "password": "s3cr3t-value"}
    assert await stack.output(name) == "hello World from ci, 2 times\n"

    logs = stack.proxy.process.logs()
    audit = [line for line in logs.splitlines() if "hrw_proxy.audit" in line and "webhook=" in line]
    assert len(audit) == 1, audit
    assert f"webhook={stack.namespace}/deploy" in audit[0] and f"job={name}" in audit[0]
    assert "code=201" in audit[0] and "count,name,password" in audit[0]
    assert token not in logs and token.split("_", 1)[1] not in logs
    assert "s3cr3t-value" not in logs and "World" not in logs

    # Rotation: a new token works at once, the old one no longer.
    rotated = await hrw(stack, "webhook", "token", "deploy")
    assert rotated.code == 0 and "the previous one no longer works" in rotated.stdout, rotated
    new = re.search(r"Authorization: Bearer (hrwh_\S+)", rotated.stdout).group(1)  # type: ignore[union-attr]
    async with stack.proxy.http() as http:
        old_answer = await post(http, stack, "deploy", token, json={"parameters": {"name": "again"}})
        new_answer = await post(http, stack, "deploy", new, json={"parameters": {"name": "again"}})
    assert old_answer.status_code == 401, old_answer.text
    assert new_answer.status_code == 201, new_answer.text
    assert len(await jobs(stack)) == 2


async def test_bad_tokens_expired_hooks_bad_parameters_and_bodies_are_refused_with_a_status_and_create_nothing(
        stack: Stack):
    await stack.group(GROUP)
    await stack.runbook("greet", GREET, parameters=GREET_PARAMS)
    await webhook(stack, "deploy", allowed=["name", "count"])
    await webhook(stack, "old", allowed=["name"], expires=datetime.now(UTC) - timedelta(minutes=1))
    token = await token_for(stack, "deploy")
    old_token = await token_for(stack, "old")
    ok = {"json": {"parameters": {"name": "World"}}}
    cases: list[tuple[str, str | None, dict[str, Any], int, str, tuple[str, ...]]] = [
        ("deploy", None, ok, 401, "Unauthorized", ("no webhook token", "Authorization: Bearer")),
        ("deploy", "hrwh_" + "x" * 43, ok, 401, "Unauthorized", ("the token is not valid for webhook",)),
        ("deploy", old_token, ok, 401, "Unauthorized", ("the token is not valid for webhook",)),
        ("ghost", token, ok, 401, "Unauthorized", ("the token is not valid for webhook",)),
        ("old", old_token, ok, 410, "Expired", ("expired at", "spec.expiresAt")),
        ("deploy", token, {"json": {"parameters": {"name": "World", "colour": "blue"}}}, 422, "Invalid",
         ("parameters.colour is not a parameter a caller may set (allowed: count, name)",)),
        ("deploy", token, {"json": {"parameters": {"name": "World", "source": "me"}}}, 422, "Invalid",
         ("parameters.source is fixed by the webhook",)),
        ("deploy", token, {"json": {"parameters": {"name": "World", "count": "two"}}}, 422, "Invalid",
         ("parameters.count must be of type integer",)),
        ("deploy", token, {"json": {"parameters": {"count": 2}}}, 422, "Invalid",
         ("parameters.name is required by the runbook",)),
        ("deploy", token, {"json": {"name": "World"}}, 422, "Invalid", ("name is not a field of a webhook call",)),
        ("deploy", token, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400,
         "BadRequest", ("not valid JSON",)),
        ("deploy", token, {"json": {"parameters": {"name": "x" * 70_000}}}, 413, "RequestEntityTooLarge",
         ("larger than the webhook limit of 65536 bytes",)),
    ]
    async with stack.proxy.http() as http:
        for hook, presented, kwargs, code, reason, says in cases:
            headers = {"Authorization": f"Bearer {presented}"} if presented else {}
            headers.update(kwargs.pop("headers", {}))
            answer = await http.post(names.webhook_path(stack.namespace, hook), headers=headers, **kwargs)
            assert answer.status_code == code, (hook, kwargs, answer.text)
            status = answer.json()
            assert (status["kind"], status["status"], status["code"], status["reason"]) == \
                ("Status", "Failure", code, reason), status
            for text in says:
                assert text in status["message"], (text, status["message"])
        typed = await post(http, stack, "deploy", token, json={"parameters": {"name": "World", "count": "two"}})
        causes = typed.json()["details"]["causes"]
        assert causes == [{"reason": "FieldValueInvalid", "field": "parameters.count",
                           "message": "must be of type integer"}]
        assert "two" not in typed.text
        wrong_method = await http.get(names.webhook_path(stack.namespace, "deploy"),
                                      headers={"Authorization": f"Bearer {token}"})
        assert wrong_method.status_code == 405 and wrong_method.json()["reason"] == "MethodNotAllowed"
    assert await jobs(stack) == []
    logs = stack.proxy.process.logs()
    assert token not in logs and old_token not in logs


async def test_floods_on_one_webhook_or_on_made_up_names_get_429_with_retry_after_and_others_are_served(
        stack: Stack, processes, proxy_sa_kubeconfig: Path, tls: ProxyTLS):
    await stack.group(GROUP)
    await stack.runbook("greet", GREET, parameters=GREET_PARAMS)
    await webhook(stack, "busy", allowed=["name"])
    await webhook(stack, "calm", allowed=["name"])
    calm = await token_for(stack, "calm")
    proxy = start_proxy(processes, proxy_sa_kubeconfig, tls, *PROXY_ARGS, "--webhook-rate-limit-rps", "0.01",
                        "--webhook-rate-limit-burst", "3", "--new-credential-rps", "0.01",
                        "--new-credential-burst", "4", name="hrw-proxy-webhook-limits")
    async with proxy.http() as http:
        codes = [(await post(http, stack, "busy", "hrwh_wrong", json={})).status_code for _ in range(3)]
        assert codes == [401, 401, 401]  # the burst: each looked up, each refused
        flooded = await post(http, stack, "busy", "hrwh_wrong", json={})
        assert flooded.status_code == 429, flooded.text
        assert int(flooded.headers["Retry-After"]) >= 1
        assert flooded.json()["reason"] == "TooManyRequests" and "webhook" in flooded.json()["message"]
        served = await post(http, stack, "calm", calm, json={"parameters": {"name": "World"}})
        assert served.status_code == 201, served.text
        # Names this proxy has not seen share one bucket (busy and calm took one each): made-up
        # names cannot turn into apiserver lookups, and known webhooks are not slowed by them.
        made_up = [(await post(http, stack, f"ghost-{i}", "hrwh_wrong", json={})) for i in range(3)]
        assert [answer.status_code for answer in made_up] == [401, 401, 429]
        assert "lookups of webhooks this proxy has not seen" in made_up[2].json()["message"]
        again = await post(http, stack, "calm", calm, json={"parameters": {"name": "again"}})
        assert again.status_code == 201, again.text
    assert [job["metadata"]["labels"][names.LABEL_WEBHOOK] for job in await jobs(stack)] == ["calm", "calm"]


async def test_the_webhook_shows_a_missing_runbook_and_its_expiry_on_its_ready_condition(stack: Stack):
    await stack.group(GROUP)
    await webhook(stack, "early", allowed=["name"], runbook="later")
    missing = await ready(stack, "early", "False", "RunbookNotFound")
    assert "Runbook 'later' not found" in missing["message"]
    await stack.admin.create(RUNBOOKS.path(stack.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK, "metadata": {"name": "later"},
        "spec": {"interpreter": "bash", "content": GREET, "parameters": GREET_PARAMS}})
    await ready(stack, "early", "True", "Ready")  # seen through the runbook's watch, not a poll

    soon = datetime.now(UTC) + timedelta(seconds=3)
    await stack.admin.patch(RUNBOOK_WEBHOOKS.path(stack.namespace, "early"),
                            {"spec": {"expiresAt": soon.strftime("%Y-%m-%dT%H:%M:%SZ")}})
    expired = await ready(stack, "early", "False", "Expired")
    assert "spec.expiresAt" in expired["message"]
    shown = stack.cluster.kubectl("get", "-n", stack.namespace, "rbw", "early", "-o", "wide")
    assert "False" in shown and "Expired" in shown
