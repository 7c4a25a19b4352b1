"""Asset: check the type-specific fields and every Secret reference, report `Ready`.

A reference is good when its Secret exists in the Asset's namespace and holds the key (a
Certificate's Secret must hold `tls.crt` and `tls.key`). The controller reads Secrets only to
learn which keys they have: no value is kept, compared, logged, put into a status or an Event.
An index from Secret name to the Assets that reference it re-evaluates them when a Secret
changes or goes away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kopf

from hrw_api import Asset, Condition, conditions, names
from hrw_api.errors import ApiError, InvalidObject
from hrw_api.kubeclient import ASSETS, SECRETS

from . import status as status_util
from .logs import kv

if TYPE_CHECKING:
    from .context import Operator

logger = logging.getLogger("hrw.operator.assets")

Key = tuple[str, str]


@dataclass(frozen=True)
class AssetVerdict:
    ready: bool
    reason: str
    message: str


def secret_names(asset: Asset) -> set[str]:
    return {f.secret_key_ref.name for f in asset.fields if f.secret_key_ref is not None}


def evaluate(asset: Asset, secret_keys: Mapping[str, frozenset[str] | None]) -> AssetVerdict:
    """The verdict from the key names of each referenced Secret (None: the Secret is missing). Pure."""
    missing_secrets: list[str] = []
    missing_keys: list[str] = []
    for item in asset.fields:
        ref = item.secret_key_ref
        if ref is None:
            continue
        keys = secret_keys.get(ref.name)
        if keys is None:
            if ref.name not in missing_secrets:
                missing_secrets.append(ref.name)
        elif ref.key not in keys:
            missing_keys.append(f"Secret {ref.name!r} has no key {ref.key!r} (field {item.name})")
    if missing_secrets:
        listed = ", ".join(repr(s) for s in missing_secrets)
        extra = ("; " + "; ".join(missing_keys)) if missing_keys else ""
        return AssetVerdict(False, "SecretNotFound", f"Secret {listed} not found{extra}")
    if missing_keys:
        return AssetVerdict(False, "SecretKeyNotFound", "; ".join(missing_keys))
    referenced = sorted(secret_names(asset))
    message = f"{asset.type.value} with {len(asset.fields)} field(s)"
    if referenced:
        message += "; Secret " + ", ".join(repr(s) for s in referenced) + " resolved"
    return AssetVerdict(True, "Resolved", message)


def desired_status(body: Mapping[str, Any], verdict: AssetVerdict) -> dict[str, Any]:
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    existing = [Condition.parse(c) for c in (body.get("status") or {}).get("conditions") or []]
    ready = conditions.make(conditions.READY, verdict.ready, verdict.reason, verdict.message, generation)
    return {"observedGeneration": generation,
            "conditions": [c.to_dict() for c in conditions.merge(existing, ready)]}


class AssetController:
    def __init__(self, operator: Operator) -> None:
        self.op = operator
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.by_secret: dict[Key, set[str]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def _index(self, key: Key, secrets: set[str]) -> None:
        for (ns, _), readers in self.by_secret.items():
            if ns == key[0]:
                readers.discard(key[1])
        for secret in secrets:
            self.by_secret.setdefault((key[0], secret), set()).add(key[1])

    def references(self, namespace: str, secret: str) -> bool:
        return bool(self.by_secret.get((namespace, secret)))

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self._index(key, set())
            return
        self.bodies[key] = dict(body)
        await self.reconcile(key)

    async def on_secret_event(self, namespace: str, name: str) -> None:
        for asset in sorted(self.by_secret.get((namespace, name), set())):
            await self.reconcile((namespace, asset))

    async def reconcile(self, key: Key) -> None:
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                await self._reconcile(key)
            except Exception as exc:
                kv(logger, logging.ERROR, "asset.reconcile_failed", namespace=key[0], asset=key[1],
                   error=type(exc).__name__)

    async def _secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        try:
            secret = await self.op.client.get(SECRETS.path(namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return frozenset((secret.get("data") or {}).keys())  # key names only; the values are dropped here

    async def _reconcile(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None:
            return
        try:
            asset = Asset.parse(body)
        except InvalidObject as exc:
            self._index(key, set())
            verdict = AssetVerdict(False, "InvalidSpec", str(exc))
        else:
            referenced = secret_names(asset)
            self._index(key, referenced)
            keys = {name: await self._secret_keys(key[0], name) for name in sorted(referenced)}
            verdict = evaluate(asset, keys)
        desired = desired_status(body, verdict)
        if not status_util.differs(desired, body.get("status") or {}):
            return
        answer = await self.op.client.patch(ASSETS.path(key[0], key[1], "status"), {"status": desired})
        self.bodies[key] = answer
        kv(logger, logging.INFO, "asset.status", namespace=key[0], asset=key[1], ready=verdict.ready,
           reason=verdict.reason)
        self.op.jobs.kick_pending(key[0])


@kopf.on.event(names.GROUP, names.VERSION, "assets")
async def asset_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    await memo.assets.on_event(event.get("type"), event["object"])


def _referenced(name: str, namespace: str | None, memo: Operator, **_: Any) -> bool:
    return memo.assets.references(namespace or "", name)


@kopf.on.event("v1", "secrets", when=_referenced)
async def secret_event(name: str, namespace: str | None, memo: Operator, **_: Any) -> None:
    await memo.assets.on_secret_event(namespace or "", name)
