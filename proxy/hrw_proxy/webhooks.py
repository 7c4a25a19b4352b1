"""RunbookWebhook calls: `POST /hooks/v1/<namespace>/<name>` with the webhook's token creates a RunbookJob.

This door is for callers such as CI systems and alerting rules, not agents, so it stands beside
the worker API: no worker credential, its own limits. In order, each step refusing with a
Kubernetes `Status` and creating nothing:

1. a token bucket per webhook (`--webhook-rate-limit-rps/-burst`): a flood gets 429 with
   `Retry-After` before it costs the apiserver anything; and for a webhook this process has not
   seen exist, one bucket shared by all such names (`--new-credential-rps/-burst`), so a flood of
   made-up names cannot turn into apiserver load either;
2. `Authorization: Bearer <token>`, else 401; a body announced larger than
   `--webhook-max-body-bytes` is 413 before any lookup;
3. the webhook and its token Secret (`hrw_api.runbookwebhook`): a missing webhook, a missing or
   foreign Secret and a wrong token are one and the same 401, so a caller without the token learns
   nothing, not even whether the webhook exists;
4. `spec.expiresAt` passed: 410 Expired;
5. the body (at most the limit, else 413), `{"parameters": {...}}`: not JSON is 400, another shape 422;
6. each parameter the caller sets must be in `spec.allowedParameters` and fit the Runbook's
   declaration, and the whole set must satisfy the Runbook: 422 whose `details.causes` name each
   field (`parameters.<name>`); a Runbook that does not exist is 409;
7. the RunbookJob is created (`generateName: <webhook>-`, owned by the webhook, labelled
   `hrw.dev/webhook`) and its name answered in a 201 `Status`.

The token is never logged and never echoed; messages name parameters, never their values. The
audit line (server.py) records the webhook, the caller's address, the parameter names and the job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hrw_api import InvalidObject, ParameterSpec, Runbook, RunbookWebhook, WebhookCall, names, params
from hrw_api.runbookwebhook import stored_token_hash, token_matches
from hrw_api.times import format_time

from .auth import bearer_token
from .bodies import json_response, parse_json, parse_object
from .limits import RateLimiter, read_body
from .refusals import ProxyError, status_body
from .routes import Route
from .settings import Settings
from .upstream import Upstream

_KNOWN_WEBHOOKS = 10_000
UNSEEN_WEBHOOKS = "webhooks this proxy has not seen"
Problem = tuple[str, str]
"""(field, message): one thing wrong with a call, as a `Status` cause."""


def parameter_problems(webhook: RunbookWebhook, given: Mapping[str, Any],
                       declared: Sequence[ParameterSpec]) -> list[Problem]:
    """Why the caller's `given` parameters cannot make a job of `webhook` whose Runbook declares
    `declared`; empty when they can. Pure; messages never repeat a value."""
    allowed = set(webhook.spec.allowed_parameters)
    fixed = set(webhook.spec.job_template.parameters)
    problems: list[Problem] = []
    for name in sorted(given):
        if name in fixed:
            problems.append((f"parameters.{name}", "is fixed by the webhook; a caller cannot set it"))
        elif name not in allowed:
            problems.append((f"parameters.{name}", "is not a parameter a caller may set (allowed: "
                                                   f"{', '.join(sorted(allowed)) or 'none'})"))
    if problems:
        return problems
    by_name = {spec.name: spec for spec in declared}
    for name in sorted(given):
        spec = by_name.get(name)
        problem = "is not declared by the runbook" if spec is None else params.value_problem(spec, given[name])
        if problem is not None:
            problems.append((f"parameters.{name}", problem))
    if problems:
        return problems
    merged = {**dict(webhook.spec.job_template.parameters), **dict(given)}
    missing = [spec.name for spec in declared if spec.required and spec.default is None and spec.name not in merged]
    return [(f"parameters.{name}", "is required by the runbook") for name in missing]


def invalid(webhook: str, problems: Sequence[Problem]) -> ProxyError:
    """A 422 `Status` as the apiserver writes one, a cause per field."""
    message = f"the call to webhook {webhook} was refused, no job created: " + "; ".join(
        f"{field} {text}" for field, text in problems)
    body = status_body(422, message, reason="Invalid")
    body["details"] = {"name": webhook.rsplit("/", 1)[-1], "group": names.GROUP, "kind": "runbookwebhooks",
                       "causes": [{"reason": "FieldValueInvalid", "field": field, "message": text}
                                  for field, text in problems]}
    return ProxyError(422, message, status=body)


def created(job: Mapping[str, Any]) -> web.Response:
    meta = job.get("metadata") or {}
    name = str(meta.get("name"))
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201,
            "message": f"runbookjob.hrw.dev/{name} created",
            "details": {"name": name, "group": names.GROUP, "kind": "runbookjobs", "uid": meta.get("uid", "")}}
    return json_response(body, 201)


class Webhooks:
    """Serves webhook calls; `call` answers one (or raises the `ProxyError` server.py answers and audits)."""

    def __init__(self, settings: Settings, upstream: Upstream) -> None:
        self.upstream = upstream
        self.max_body_bytes = settings.webhook_max_body_bytes
        self.limiter = RateLimiter(settings.webhook_rate_limit_rps, settings.webhook_rate_limit_burst)
        self.unseen = RateLimiter(settings.new_credential_rps, settings.new_credential_burst)
        self._known: OrderedDict[str, None] = OrderedDict()  # webhooks found to exist, most recent last

    async def call(self, request: web.Request, route: Route, audit: MutableMapping[str, Any]) -> web.Response:
        """Serve `route` (a WEBHOOK_CALL); `audit` collects what the audit line adds (never a secret)."""
        hook = f"{route.namespace}/{route.name}"
        audit["webhook"] = hook
        audit["remote"] = request.remote or "-"
        self.limiter.check(hook, subject="webhook")
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            raise ProxyError(401, f"no webhook token: call webhook {hook} with the header 'Authorization: Bearer "
                                  "<token>' (`hrw webhook token NAME` makes one)")
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        if hook not in self._known:  # its lookup may find nothing: made-up names share one bucket
            self.unseen.check(UNSEEN_WEBHOOKS, subject="lookups of")
        webhook = await self._verify(route, token)
        now = datetime.now(UTC)
        if webhook.expired(now):
            assert webhook.spec.expires_at is not None
            raise ProxyError(410, f"webhook {hook} expired at {format_time(webhook.spec.expires_at)} "
                                  "(spec.expiresAt); no job created", reason="Expired")
        raw = await read_body(request, self.max_body_bytes)
        try:
            call = WebhookCall.parse(parse_json(raw) if raw.strip() else None)
        except InvalidObject as exc:
            raise invalid(hook, [(exc.field, exc.message)]) from None
        audit["parameters"] = ",".join(sorted(call.parameters))
        runbook = await self._runbook(webhook)
        problems = parameter_problems(webhook, call.parameters, runbook.spec.parameters)
        if problems:
            raise invalid(hook, problems)
        job = await self.upstream.create_job(route.namespace, webhook.job_body(call.parameters))
        audit["job"] = str((job.get("metadata") or {}).get("name"))
        return created(job)

    async def _verify(self, route: Route, token: str) -> RunbookWebhook:
        refused = ProxyError(401, f"the token is not valid for webhook {route.namespace}/{route.name} (or there "
                                  "is no such webhook): `hrw webhook token NAME` makes a new one")
        obj = await self.upstream.find_webhook(route.namespace, route.name)
        if obj is None:
            raise refused
        webhook = parse_object(RunbookWebhook, obj, f"RunbookWebhook {route.name}")
        self._remember(f"{route.namespace}/{route.name}")
        secret = await self.upstream.get_secret(route.namespace, names.webhook_token_secret_name(route.name))
        stored = stored_token_hash(secret, webhook) if secret is not None else None
        if stored is None or not token_matches(token, stored):
            raise refused
        return webhook

    def _remember(self, hook: str) -> None:
        self._known[hook] = None
        self._known.move_to_end(hook)
        while len(self._known) > _KNOWN_WEBHOOKS:
            self._known.popitem(last=False)

    async def _runbook(self, webhook: RunbookWebhook) -> Runbook:
        name = webhook.spec.job_template.runbook
        obj = await self.upstream.find_runbook(webhook.meta.namespace, name)
        if obj is None:
            raise ProxyError(409, f"webhook {webhook.meta.namespace}/{webhook.meta.name} runs Runbook {name!r}, "
                                  "which does not exist; no job created")
        return parse_object(Runbook, obj, f"Runbook {name}")


def _too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"request body larger than the webhook limit of {limit} bytes; no job created")


def refuse_method(method: str, path: str) -> ProxyError:
    return ProxyError(405, f"{method} {path}: a webhook is called with POST and a JSON body "
                           '({"parameters": {...}})')

