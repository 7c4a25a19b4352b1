"""Runbook: resolve the content (inline or a ConfigMap key), digest it, check the parameter
declarations, and report `Ready` + `status.digest` — written only when something changed.

GitOps users keep scripts in ConfigMaps (kustomize's configMapGenerator), so the controller
keeps an index from ConfigMap name to the runbooks that read it and re-evaluates them when
that ConfigMap changes or goes away. When a runbook's status changes, Pending jobs of its
namespace are looked at again (they wait for the runbook's first evaluation).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kopf

from hrw_api import Condition, ParameterSpec, Runbook, conditions, content_digest, names, params
from hrw_api.errors import ApiError, InvalidObject
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOKS

from . import status as status_util
from .logs import kv

if TYPE_CHECKING:
    from .context import Operator

logger = logging.getLogger("hrw.operator.runbooks")

Key = tuple[str, str]


@dataclass(frozen=True)
class RunbookVerdict:
    ready: bool
    reason: str
    message: str
    digest: str | None = None


def check_declarations(declared: Sequence[ParameterSpec]) -> list[str]:
    """Problems with a runbook's parameter declarations, each naming the parameter."""
    problems: list[str] = []
    seen: set[str] = set()
    for spec in declared:
        if spec.name in seen:
            problems.append(f"parameter {spec.name!r} is declared twice")
        seen.add(spec.name)
        if spec.pattern is not None:
            try:
                re.compile(spec.pattern)
            except re.error as exc:
                problems.append(f"parameter {spec.name!r} has an invalid pattern: {exc}")
                continue
        if spec.default is not None:
            _, found = params.check([spec], {spec.name: spec.default})
            problems.extend(f"default of {p.removeprefix('parameter ')}" for p in found)
        if spec.enum is not None:
            for value in spec.enum:
                _, found = params.check([ParameterSpec(spec.name, spec.type)], {spec.name: value})
                if found:
                    problems.append(f"parameter {spec.name!r} has an enum value {value!r} that is not a "
                                    f"{spec.type.value}")
    return problems


def evaluate(runbook: Runbook, configmap: Mapping[str, Any] | None) -> RunbookVerdict:
    """The verdict for `runbook`; `configmap` is the referenced ConfigMap (None if it is missing). Pure."""
    problems = check_declarations(runbook.spec.parameters)
    if problems:
        return RunbookVerdict(False, "InvalidParameters", "; ".join(problems))
    if runbook.spec.content is not None:
        return RunbookVerdict(True, "ContentResolved", "inline content", content_digest(runbook.spec.content))
    ref = runbook.spec.content_from
    assert ref is not None
    if configmap is None:
        return RunbookVerdict(False, "ConfigMapNotFound", f"ConfigMap {ref.name!r} not found")
    data = configmap.get("data") or {}
    if ref.key not in data:
        return RunbookVerdict(False, "ConfigMapKeyNotFound", f"ConfigMap {ref.name!r} has no key {ref.key!r}")
    return RunbookVerdict(True, "ContentResolved", f"content from ConfigMap {ref.name!r} key {ref.key!r}",
                          content_digest(str(data[ref.key])))


def desired_status(body: Mapping[str, Any], verdict: RunbookVerdict) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    existing = [Condition.parse(c) for c in (body.get("status") or {}).get("conditions") or []]
    ready = conditions.make(conditions.READY, verdict.ready, verdict.reason, verdict.message, generation)
    return {
        "digest": verdict.digest,
        "observedGeneration": generation,
        "conditions": [c.to_dict() for c in conditions.merge(existing, ready)],
    }


class RunbookController:
    def __init__(self, operator: Operator) -> None:
        self.op = operator
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.by_configmap: dict[Key, set[str]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}

    def _index(self, key: Key, configmap: str | None) -> None:
        for readers in self.by_configmap.values():
            readers.discard(key[1])
        if configmap:
            self.by_configmap.setdefault((key[0], configmap), set()).add(key[1])

    def references(self, namespace: str, configmap: str) -> bool:
        return bool(self.by_configmap.get((namespace, configmap)))

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self._index(key, None)
            return
        self.bodies[key] = dict(body)
        ref = ((body.get("spec") or {}).get("contentFrom") or {}).get("configMapKeyRef") or {}
        self._index(key, ref.get("name"))
        await self.reconcile(key)

    async def on_configmap_event(self, namespace: str, name: str) -> None:
        for runbook in sorted(self.by_configmap.get((namespace, name), set())):
            await self.reconcile((namespace, runbook))

    async def reconcile(self, key: Key) -> None:
        async with self._locks.setdefault(key, asyncio.Lock()):
            try:
                await self._reconcile(key)
            except Exception as exc:
                kv(logger, logging.ERROR, "runbook.reconcile_failed", namespace=key[0], runbook=key[1],
                   error=type(exc).__name__, detail=str(exc)[:300])

    async def _reconcile(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None:
            return
        try:
            runbook = Runbook.parse(body)
        except InvalidObject as exc:
            verdict = RunbookVerdict(False, "InvalidSpec", str(exc))
        else:
            configmap = None
            if runbook.spec.content_from is not None:
                try:
                    configmap = await self.op.client.get(CONFIG_MAPS.path(key[0], runbook.spec.content_from.name))
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            verdict = evaluate(runbook, configmap)
        desired = desired_status(body, verdict)
        if not status_util.differs(desired, body.get("status") or {}):
            return
        answer = await self.op.client.patch(RUNBOOKS.path(key[0], key[1], "status"), {"status": desired})
        self.bodies[key] = answer
        kv(logger, logging.INFO, "runbook.status", namespace=key[0], runbook=key[1], ready=verdict.ready,
           reason=verdict.reason, digest=verdict.digest)
        self.op.jobs.kick_pending(key[0])


@kopf.on.event(names.GROUP, names.VERSION, "runbooks")
async def runbook_event(event: Mapping[str, Any], memo: Operator, **_: Any) -> None:
    await memo.runbooks.on_event(event.get("type"), event["object"])


def _referenced(name: str, namespace: str | None, memo: Operator, **_: Any) -> bool:
    return memo.runbooks.references(namespace or "", name)


@kopf.on.event("v1", "configmaps", labels={names.LABEL_JOB: kopf.ABSENT}, when=_referenced)
async def configmap_event(name: str, namespace: str | None, memo: Operator, **_: Any) -> None:
    await memo.runbooks.on_configmap_event(namespace or "", name)
