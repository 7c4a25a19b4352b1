"""Runbook: resolve the content (inline or a ConfigMap key), digest it, check the parameter
declarations, and report `Ready` + `status.digest` — written only when something changed.

GitOps users keep scripts in ConfigMaps (kustomize's configMapGenerator), so the controller
keeps an index from ConfigMap name to the runbooks that read it and re-evaluates them when
that ConfigMap changes or goes away. When a runbook's status changes, the controller calls
`on_status_changed(namespace)` (main wires it to the job controller: Pending jobs wait for the
runbook's first evaluation).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hrw_api import ParameterSpec, Runbook, conditions, content_digest, params
from hrw_api.errors import ApiError
from hrw_api.kubeclient import CONFIG_MAPS, RUNBOOKS

from .frame import Controller, Key, Observed, Pass, Store, Tools
from .logs import kv

logger = logging.getLogger("hrw.operator.runbooks")


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


def desired_status(observed: Observed[Runbook], verdict: RunbookVerdict) -> dict[str, Any]:
    """The status that reports `verdict`. Pure."""
    generation = observed.meta.generation
    ready = conditions.make(conditions.READY, verdict.ready, verdict.reason, verdict.message, generation)
    return {
        "digest": verdict.digest,
        "observedGeneration": generation,
        "conditions": [c.to_dict() for c in conditions.merge(observed.conditions, ready)],
    }


class RunbookController(Controller[Runbook]):
    kind = "runbook"
    resource = RUNBOOKS

    def __init__(self, tools: Tools, store: Store[Runbook], *, on_status_changed: Callable[[str], None]) -> None:
        super().__init__(tools, store)
        self._on_status_changed = on_status_changed
        self.by_configmap: dict[Key, set[str]] = {}

    def _index(self, key: Key, configmap: str | None) -> None:
        for readers in self.by_configmap.values():
            readers.discard(key[1])
        if configmap:
            self.by_configmap.setdefault((key[0], configmap), set()).add(key[1])

    def references(self, namespace: str, configmap: str) -> bool:
        return bool(self.by_configmap.get((namespace, configmap)))

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._index(key, None)

    async def on_configmap_event(self, namespace: str, name: str) -> None:
        for runbook in sorted(self.by_configmap.get((namespace, name), set())):
            await self.reconcile((namespace, runbook))

    async def reconcile_once(self, observed: Observed[Runbook]) -> Pass:
        namespace, name = observed.key
        runbook = observed.model
        if runbook is None:
            self._index(observed.key, None)
            verdict = RunbookVerdict(False, "InvalidSpec", str(observed.problem))
        else:
            ref = runbook.spec.content_from
            self._index(observed.key, ref.name if ref else None)
            configmap = None
            if ref is not None:
                try:
                    configmap = await self.client.get(CONFIG_MAPS.path(namespace, ref.name))
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            verdict = evaluate(runbook, configmap)
        if await self.write_status(observed, desired_status(observed, verdict)):
            kv(logger, logging.INFO, "runbook.status", namespace=namespace, runbook=name, ready=verdict.ready,
               reason=verdict.reason, digest=verdict.digest)
            self._on_status_changed(namespace)
        return Pass()
