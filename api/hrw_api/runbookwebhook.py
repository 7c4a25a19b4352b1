"""The RunbookWebhook kind: a URL the proxy serves that creates a RunbookJob when called.

A webhook names the job it creates the way a RunbookSchedule does (`spec.jobTemplate`, a
RunbookJob spec without `cancel`, parsed with the RunbookJob model), plus the parameters a caller
may set (`spec.allowedParameters`; the template's own parameters are fixed, and a caller can never
set one of those, even when it is also listed: CEL cannot read the template's free-form parameters,
so the operator reports such a name on the webhook's status) and an optional expiry
(`spec.expiresAt`).

Its token is shown once, by whoever makes it (`hrw webhook token NAME`), and the cluster keeps
only its sha256, in a Secret owned by the webhook (`token_secret`). The proxy reads that Secret
on each call and compares digests in constant time. Both sides use this module, so the token's
shape, the Secret and the body a caller sends (`WebhookCall`) are written down once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import _fields as f
from . import names
from ._fields import JSON
from .errors import InvalidObject
from .meta import Condition, Meta, conditions_of
from .runbookjob import RunbookJobSpec
from .runbookschedule import parse_job_template

TOKEN_PREFIX = "hrwh_"
"""Every webhook token starts so: a secret scanner (or a person) can tell what leaked."""
MAX_PARAMETERS = 64


@dataclass(frozen=True)
class RunbookWebhookSpec:
    job_template: RunbookJobSpec
    template: Mapping[str, Any]
    """The template as written, copied into each job's spec."""
    allowed_parameters: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class RunbookWebhookStatus:
    observed_generation: int
    conditions: tuple[Condition, ...]

    def to_dict(self) -> JSON:
        return {"observedGeneration": self.observed_generation,
                "conditions": [c.to_dict() for c in self.conditions]}


@dataclass(frozen=True)
class RunbookWebhook:
    meta: Meta
    spec: RunbookWebhookSpec
    status: RunbookWebhookStatus

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> RunbookWebhook:
        spec = f.obj(obj.get("spec"), "spec")
        status = f.obj(obj.get("status"), "status")
        template, job_spec = parse_job_template(spec, f.obj(obj.get("metadata"), "metadata"))
        allowed = f.strings(spec, "allowedParameters", "spec")
        return cls(
            meta=Meta.parse(obj),
            spec=RunbookWebhookSpec(job_template=job_spec, template=template, allowed_parameters=allowed,
                                    expires_at=f.time(spec, "expiresAt", "spec")),
            status=RunbookWebhookStatus(
                observed_generation=f.opt_int(status, "observedGeneration", "status", 0) or 0,
                conditions=conditions_of(status),
            ),
        )

    def expired(self, now: datetime) -> bool:
        return self.spec.expires_at is not None and now >= self.spec.expires_at

    def job_body(self, parameters: Mapping[str, Any]) -> JSON:
        """The RunbookJob a call creates: the template, the caller's `parameters` added to the fixed
        ones, a generated name, owned by the webhook and labelled with it."""
        spec = dict(self.spec.template)
        spec["parameters"] = {**dict(self.spec.job_template.parameters), **dict(parameters)}
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.RUNBOOK_JOB,
            "metadata": {
                "generateName": f"{self.meta.name}-",
                "namespace": self.meta.namespace,
                "labels": {names.LABEL_WEBHOOK: self.meta.name},
                "ownerReferences": [_owner(self.meta)],
            },
            "spec": spec,
        }


def _owner(meta: Meta) -> JSON:
    return {"apiVersion": names.API_VERSION, "kind": names.RUNBOOK_WEBHOOK, "name": meta.name, "uid": meta.uid,
            "controller": True}


# ------------------------------------------------------------------------------------- the token


def new_token() -> str:
    """A fresh webhook token (256 bits of randomness)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the cluster keeps: the hex sha256 of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Does `token` hash to `stored_hash`? In constant time."""
    return hmac.compare_digest(token_hash(token).encode(), stored_hash.encode())


def token_secret(webhook: RunbookWebhook, digest: str) -> JSON:
    """The Secret that keeps a webhook's token hash, owned by the webhook (deleted with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": names.SECRET_TYPE_WEBHOOK_TOKEN,
        "metadata": {
            "name": names.webhook_token_secret_name(webhook.meta.name),
            "namespace": webhook.meta.namespace,
            "labels": {names.LABEL_WEBHOOK: webhook.meta.name, names.LABEL_MANAGED_BY: names.MANAGED_BY},
            "ownerReferences": [_owner(webhook.meta)],
        },
        "data": {names.WEBHOOK_TOKEN_HASH_KEY: base64.b64encode(digest.encode()).decode()},
    }


def stored_token_hash(secret: Mapping[str, Any], webhook: RunbookWebhook) -> str | None:
    """The hash a token Secret keeps for `webhook`, or None when it is not that webhook's token Secret
    (another type, another owner, e.g. left from a deleted webhook of the same name) or is unreadable."""
    meta = f.obj(secret.get("metadata"), "metadata")
    if secret.get("type") != names.SECRET_TYPE_WEBHOOK_TOKEN or meta.get("deletionTimestamp"):
        return None
    owners = [ref for ref in f.array(meta, "ownerReferences", "metadata") if isinstance(ref, Mapping)]
    if not any(ref.get("uid") == webhook.meta.uid for ref in owners):
        return None
    encoded = f.obj(secret.get("data"), "data").get(names.WEBHOOK_TOKEN_HASH_KEY)
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None


# ------------------------------------------------------------------------------------- the call


@dataclass(frozen=True)
class WebhookCall:
    """The body a caller POSTs: `{"parameters": {NAME: VALUE, ...}}`; an empty body means no parameters."""

    parameters: Mapping[str, Any]

    @classmethod
    def parse(cls, body: Any) -> WebhookCall:
        if body is None:
            return cls({})
        if not isinstance(body, Mapping):
            raise InvalidObject("body", 'must be a JSON object such as {"parameters": {"name": "value"}}')
        unknown = sorted(set(body) - {"parameters"})
        if unknown:
            raise InvalidObject(unknown[0], 'is not a field of a webhook call; send {"parameters": {...}}')
        parameters = f.obj(body.get("parameters"), "parameters")
        if len(parameters) > MAX_PARAMETERS:
            raise InvalidObject("parameters", f"must have at most {MAX_PARAMETERS} entries")
        return cls(dict(parameters))
