"""Asset: check the type-specific fields and every Secret reference, report `Ready`.

A reference is good when its Secret exists in the Asset's namespace and holds the key (a
Certificate's Secret must hold `tls.crt` and `tls.key`). The controller reads Secrets only to
learn which keys they have: no value is kept, compared, logged, put into a status or an Event.
An index from Secret name to the Assets that reference it re-evaluates them when a Secret
changes or goes away. When an Asset's status changes, the controller calls
`on_status_changed(namespace)` (main wires it to the job controller's Pending jobs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hrw_api import Asset, conditions
from hrw_api.errors import ApiError
from hrw_api.kubeclient import ASSETS, SECRETS

from .frame import Controller, Key, Observed, Pass, Store, Tools
from .logs import kv

logger = logging.getLogger("hrw.operator.assets")


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


def desired_status(observed: Observed[Asset], verdict: AssetVerdict) -> dict[str, Any]:
    """The status that reports `verdict`. Pure."""
    generation = observed.meta.generation
    ready = conditions.make(conditions.READY, verdict.ready, verdict.reason, verdict.message, generation)
    return {"observedGeneration": generation,
            "conditions": [c.to_dict() for c in conditions.merge(observed.conditions, ready)]}


class AssetController(Controller[Asset]):
    kind = "asset"
    resource = ASSETS

    def __init__(self, tools: Tools, store: Store[Asset], *, on_status_changed: Callable[[str], None]) -> None:
        super().__init__(tools, store)
        self._on_status_changed = on_status_changed
        self.by_secret: dict[Key, set[str]] = {}

    def _index(self, key: Key, secrets: set[str]) -> None:
        for (ns, _), readers in self.by_secret.items():
            if ns == key[0]:
                readers.discard(key[1])
        for secret in secrets:
            self.by_secret.setdefault((key[0], secret), set()).add(key[1])

    def references(self, namespace: str, secret: str) -> bool:
        return bool(self.by_secret.get((namespace, secret)))

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._index(key, set())

    async def on_secret_event(self, namespace: str, name: str) -> None:
        for asset in sorted(self.by_secret.get((namespace, name), set())):
            await self.reconcile((namespace, asset))

    async def _secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        try:
            secret = await self.client.get(SECRETS.path(namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return frozenset((secret.get("data") or {}).keys())  # key names only; the values are dropped here

    async def reconcile_once(self, observed: Observed[Asset]) -> Pass:
        namespace, name = observed.key
        asset = observed.model
        if asset is None:
            self._index(observed.key, set())
            verdict = AssetVerdict(False, "InvalidSpec", str(observed.problem))
        else:
            referenced = secret_names(asset)
            self._index(observed.key, referenced)
            keys = {secret: await self._secret_keys(namespace, secret) for secret in sorted(referenced)}
            verdict = evaluate(asset, keys)
        if await self.write_status(observed, desired_status(observed, verdict)):
            kv(logger, logging.INFO, "asset.status", namespace=namespace, asset=name, ready=verdict.ready,
               reason=verdict.reason)
            self._on_status_changed(namespace)
        return Pass()
