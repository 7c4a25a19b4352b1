"""WorkerConfiguration: validate a configuration before any agent runs it, and summarise how the
servers of each group comply with it (issue 16).

Two controllers, each the usual shape (a pure function over facts, a thin layer that writes):

- `ConfigurationController` (the kind's own): `evaluate(configuration, facts)` says whether it is
  usable, why not (`RunbookNotFound`, `RunbookNotReady`, `InvalidParameters`, `AssetNotFound`,
  `AssetNotReady`, `InterpreterNotAllowed`, `ScriptSyntaxError`), its digest and the content digest
  of each Runbook it names (agents run exactly that content). It follows the Runbook, Asset and
  WorkerGroup views, so a fixed dependency is seen at once. Scripts are checked for syntax where
  the operator can do so without running them (`scripts`).
- `ComplianceController`: per WorkerGroup naming a configuration, `summarise(...)` turns the
  reports in its workers' Leases into `status.compliance` (the only field of the group's status
  it writes; the group's own controller writes the rest) and the Events worth posting: a worker
  that drifted, failed or was corrected. It follows the Lease view and writes only when a
  worker's standing changes, never on a renewal; the proxy reads this field at a claim when the
  group requires compliance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hrw_api import Asset, Runbook, WorkerGroup, WorkerLease, conditions, names, params
from hrw_api.kubeclient import WORKER_CONFIGURATIONS, WORKER_GROUPS
from hrw_api.times import now as utcnow
from hrw_api.workerconfiguration import (
    ComplianceReport,
    GroupCompliance,
    ResourceState,
    WorkerCompliance,
    WorkerComplianceEntry,
    WorkerConfiguration,
    configuration_digest,
)

from . import events
from .frame import Controller, Key, Observed, Pass, Store, Tools, View
from .leases import LeaseView
from .logs import kv
from .scripts import SyntaxChecker

logger = logging.getLogger("hrw.operator.configurations")


# ------------------------------------------------------------------------------ the configuration


@dataclass(frozen=True)
class ConfigurationFacts:
    runbooks: Mapping[str, Observed[Runbook] | None] = field(default_factory=dict)
    """Each Runbook the resources name (None: not found)."""
    assets: Mapping[str, Observed[Asset] | None] = field(default_factory=dict)
    """Each Asset the resources read, directly or through their Runbook (None: not found)."""
    groups: Sequence[WorkerGroup] = ()
    """The WorkerGroups whose spec.configuration names it."""
    syntax_problems: Sequence[str] = ()


@dataclass(frozen=True)
class ConfigurationVerdict:
    ready: bool
    reason: str
    message: str
    digest: str | None = None
    runbook_digests: Mapping[str, str] = field(default_factory=dict)


def assets_read(configuration: WorkerConfiguration, runbooks: Mapping[str, Observed[Runbook] | None]) -> list[str]:
    """The Assets a configuration reads: its inline resources' and those of the Runbooks it names."""
    names_: dict[str, None] = dict.fromkeys(configuration.spec.inline_assets)
    for name in configuration.spec.runbooks:
        observed = runbooks.get(name)
        if observed is not None and observed.model is not None:
            names_.update(dict.fromkeys(observed.model.spec.assets))
    return list(names_)


def evaluate(configuration: WorkerConfiguration, facts: ConfigurationFacts) -> ConfigurationVerdict:
    """Whether agents may apply `configuration`, and its digest. Pure."""
    problems: dict[str, list[str]] = {}

    def problem(reason: str, message: str) -> None:
        problems.setdefault(reason, []).append(message)

    runbook_digests: dict[str, str] = {}
    for i, resource in enumerate(configuration.spec.resources):
        where = f"spec.resources[{i}] ({resource.name})"
        if resource.runbook is None:
            continue
        observed = facts.runbooks.get(resource.runbook)
        if observed is None:
            problem("RunbookNotFound", f"{where}: Runbook {resource.runbook!r} not found")
            continue
        digest = observed.status.get("digest")
        if observed.model is None or not conditions.is_true(observed.conditions, conditions.READY) or not digest:
            ready = conditions.find(observed.conditions, conditions.READY)
            why = f" ({ready.reason}: {ready.message})" if ready is not None else " (not evaluated yet)"
            problem("RunbookNotReady", f"{where}: Runbook {resource.runbook!r} is not Ready{why}")
            continue
        runbook_digests[resource.runbook] = str(digest)
        _, found = params.check(observed.model.spec.parameters, resource.parameters)
        for text in found:
            problem("InvalidParameters", f"{where}.parameters: {text}")
    asset_versions: dict[str, int] = {}
    for name in assets_read(configuration, facts.runbooks):
        asset = facts.assets.get(name)
        if asset is None:
            problem("AssetNotFound", f"Asset {name!r} not found")
        elif not conditions.is_true(asset.conditions, conditions.READY):
            problem("AssetNotReady", f"Asset {name!r} is not Ready")
        else:
            asset_versions[name] = asset.meta.generation
    for group in facts.groups:
        for i, resource in enumerate(configuration.spec.resources):
            interpreter = resource.interpreter
            if interpreter is None and resource.runbook is not None:
                observed = facts.runbooks.get(resource.runbook)
                interpreter = observed.model.spec.interpreter if observed is not None and observed.model else None
            if interpreter is not None and interpreter not in group.spec.interpreters:
                problem("InterpreterNotAllowed",
                        f"spec.resources[{i}] ({resource.name}) runs {interpreter.value}, which WorkerGroup "
                        f"{group.meta.name!r} does not allow (its spec.interpreters: "
                        f"{', '.join(i.value for i in group.spec.interpreters)})")
    for text in facts.syntax_problems:
        problem("ScriptSyntaxError", text)
    if problems:
        reason = next(iter(problems))
        message = "; ".join(m for found in problems.values() for m in found)
        return ConfigurationVerdict(False, reason, message + "; agents do not apply it until this is fixed")
    digest = configuration_digest(configuration.spec, runbook_digests, asset_versions)
    used_by = ", ".join(sorted(g.meta.name for g in facts.groups)) or "no WorkerGroup yet"
    return ConfigurationVerdict(True, "Valid", f"{len(configuration.spec.resources)} resource(s); used by {used_by}",
                                digest, runbook_digests)


def desired_configuration_status(observed: Observed[WorkerConfiguration],
                                 verdict: ConfigurationVerdict) -> dict[str, Any]:
    """The status that reports `verdict`. Pure."""
    generation = observed.meta.generation
    ready = conditions.make(conditions.READY, verdict.ready, verdict.reason, verdict.message, generation)
    model = observed.model
    return {
        "digest": verdict.digest,
        "runbookDigests": dict(verdict.runbook_digests) if verdict.ready else None,
        "resourceCount": len(model.spec.resources) if model is not None else None,
        "observedGeneration": generation,
        "conditions": [c.to_dict() for c in conditions.merge(observed.conditions, ready)],
    }


class ConfigurationController(Controller[WorkerConfiguration]):
    kind = "workerconfiguration"
    resource = WORKER_CONFIGURATIONS

    def __init__(self, tools: Tools, store: Store[WorkerConfiguration], *, runbooks: View[Runbook],
                 assets: View[Asset], groups: View[WorkerGroup], syntax: SyntaxChecker | None = None) -> None:
        super().__init__(tools, store)
        self.runbooks = runbooks
        self.assets = assets
        self.groups = groups
        self.syntax = syntax or SyntaxChecker()
        runbooks.follow(self._dependency_changed)
        assets.follow(self._dependency_changed)
        groups.follow(self._group_changed)

    def _dependency_changed(self, dependency: Observed[Any]) -> None:
        for observed in self.store.in_namespace(dependency.meta.namespace):
            self.soon(observed.key)

    def _group_changed(self, group: Observed[WorkerGroup]) -> None:
        # Which configuration a group names, and which interpreters it allows: look again at all of
        # the namespace's (a handful); their status is written only when it changes.
        self._dependency_changed(group)

    def _groups_naming(self, namespace: str, name: str) -> list[WorkerGroup]:
        return sorted((o.model for o in self.groups.in_namespace(namespace)
                       if o.model is not None and o.model.spec.configuration is not None
                       and o.model.spec.configuration.name == name), key=lambda g: g.meta.name)

    async def reconcile_once(self, observed: Observed[WorkerConfiguration]) -> Pass:
        namespace, name = observed.key
        configuration = observed.model
        if configuration is None:
            verdict = ConfigurationVerdict(False, "InvalidSpec", str(observed.problem))
        else:
            runbooks = {n: self.runbooks.get((namespace, n)) for n in configuration.spec.runbooks}
            assets = {n: self.assets.get((namespace, n)) for n in assets_read(configuration, runbooks)}
            scripts = [(f"spec.resources[{i}] ({r.name}) {step}", r.interpreter, text)
                       for i, r in enumerate(configuration.spec.resources) if r.interpreter is not None
                       for step, text in (("test", r.test), ("set", r.set)) if text is not None]
            for runbook_name, held in runbooks.items():
                if held is not None and held.model is not None and held.model.spec.content is not None:
                    scripts.append((f"Runbook {runbook_name!r}", held.model.spec.interpreter, held.model.spec.content))
            syntax = [problem for where, interpreter, text in scripts
                      for problem in [await self.syntax.problem(interpreter, text)] if problem is not None
                      for problem in [f"{where}: {problem}"]]
            facts = ConfigurationFacts(runbooks=runbooks, assets=assets,
                                       groups=self._groups_naming(namespace, name), syntax_problems=syntax)
            verdict = evaluate(configuration, facts)
        if await self.write_status(observed, desired_configuration_status(observed, verdict)):
            kv(logger, logging.INFO, "workerconfiguration.status", namespace=namespace, configuration=name,
               ready=verdict.ready, reason=verdict.reason, digest=verdict.digest)
        return Pass()


# ------------------------------------------------------------------------------- the compliance


@dataclass(frozen=True)
class ComplianceNews:
    """An Event worth posting about one worker: (type, reason, note)."""

    type: str
    reason: str
    note: str


def judge(worker: str, report: ComplianceReport | None, configuration: str,
          digest: str | None) -> WorkerComplianceEntry:
    """One worker's standing from its report. Pure."""
    if report is None or report.configuration != configuration:
        return WorkerComplianceEntry(worker, WorkerCompliance.PENDING)
    unusual = tuple(r for r in report.resources if r.state is not ResourceState.COMPLIANT)
    if digest is None or report.digest != digest:
        state = WorkerCompliance.PENDING
    elif any(r.state is ResourceState.FAILED for r in report.resources):
        state = WorkerCompliance.FAILED
    elif any(r.state is ResourceState.DRIFTED for r in report.resources):
        state = WorkerCompliance.DRIFTED
    else:
        state = WorkerCompliance.COMPLIANT
    return WorkerComplianceEntry(worker, state, report.digest, report.applied_time, unusual)


def summarise(group: WorkerGroup, leases: Iterable[WorkerLease], digest: str | None,
              now: datetime) -> tuple[GroupCompliance | None, list[ComplianceNews]]:
    """The group's `status.compliance`, and the Events its changes are worth: a resource that drifted
    or failed where it had not at the last summary. Pure."""
    ref = group.spec.configuration
    if ref is None:
        return None, []
    entries: list[WorkerComplianceEntry] = []
    ready = compliant = 0
    for lease in sorted(leases, key=lambda lease: lease.worker):
        entry = judge(lease.worker, lease.info.compliance, ref.name, digest)
        entries.append(entry)
        if lease.ready(now) and not lease.info.draining:
            ready += 1
            compliant += entry.state is WorkerCompliance.COMPLIANT
    summary = GroupCompliance(ref.name, digest, ready, compliant, tuple(entries))
    before = {w.name: w for w in group.compliance.workers} if group.compliance is not None else {}
    news: list[ComplianceNews] = []
    for entry in entries:
        old = before.get(entry.name)
        for resource in entry.resources:
            if old is not None and resource in old.resources:
                continue
            detail = f": {resource.message}" if resource.message else ""
            if resource.state is ResourceState.DRIFTED:
                news.append(ComplianceNews(events.WARNING, "ConfigurationDrifted",
                                           f"worker {entry.name}: resource {resource.name} drifted{detail}"))
            elif resource.state is ResourceState.FAILED:
                news.append(ComplianceNews(events.WARNING, "ConfigurationFailed",
                                           f"worker {entry.name}: resource {resource.name} failed{detail}"))
    return summary, news


def corrections(leases: Iterable[WorkerLease], announced: Mapping[str, datetime]) -> list[tuple[str, datetime,
                                                                                                ComplianceNews]]:
    """Each correction reported by a check not announced yet: (worker, checkedTime, Event). Every
    run of `set` that fixed a drift is news, also one that looks like the last (the group's status
    would not change). Pure."""
    found = []
    for lease in leases:
        report = lease.info.compliance
        if report is None or announced.get(lease.worker) == report.checked_time:
            continue
        for resource in report.resources:
            if resource.state is ResourceState.CORRECTED:
                detail = f": {resource.message}" if resource.message else ""
                found.append((lease.worker, report.checked_time, ComplianceNews(
                    events.NORMAL, "ConfigurationCorrected",
                    f"worker {lease.worker}: resource {resource.name} was corrected{detail}")))
    return found


class ComplianceController(Controller[WorkerGroup]):
    """Writes `status.compliance` of the WorkerGroups that name a configuration.

    It keeps its own store of the groups, mirrored from the group view (the WorkerGroup
    controller owns the watch and the rest of the status)."""

    kind = "compliance"
    resource = WORKER_GROUPS

    def __init__(self, tools: Tools, *, groups: View[WorkerGroup], configurations: View[WorkerConfiguration],
                 leases: LeaseView, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(tools, Store(WorkerGroup.parse))
        self.groups = groups
        self.configurations = configurations
        self.leases = leases
        self.clock = clock
        self._announced: dict[tuple[str, str], dict[str, datetime]] = {}  # (ns, group) -> worker -> checkedTime
        groups.follow(self._group_changed)
        configurations.follow(self._configuration_changed)
        leases.follow(self._lease_changed)

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._announced.pop(key, None)

    def _group_changed(self, group: Observed[WorkerGroup]) -> None:
        if group.key not in self.groups:
            self.forget(group.key)
            return
        if self.store.put(group):
            self.soon(group.key)

    def _configuration_changed(self, configuration: Observed[WorkerConfiguration]) -> None:
        for observed in self.store.in_namespace(configuration.meta.namespace):
            ref = observed.model.spec.configuration if observed.model is not None else None
            if ref is not None and ref.name == configuration.meta.name:
                self.soon(observed.key)

    def _lease_changed(self, old: WorkerLease | None, new: WorkerLease | None) -> None:
        lease = new or old
        if lease is None:
            return
        key = (lease.namespace, lease.group)
        observed = self.store.get(key)
        if observed is None or observed.model is None or observed.model.spec.configuration is None:
            return
        before = old.info.compliance if old is not None else None
        after = new.info.compliance if new is not None else None
        corrected = after is not None and (before is None or after.checked_time != before.checked_time) \
            and any(r.state is ResourceState.CORRECTED for r in after.resources)
        if old is None or new is None or _standing(before) != _standing(after) or corrected \
                or old.info.draining != new.info.draining:
            self.soon(key)

    def _digest(self, namespace: str, name: str) -> str | None:
        held = self.configurations.get((namespace, name))
        if held is None or not conditions.is_true(held.conditions, conditions.READY):
            return None
        digest = held.status.get("digest")
        return str(digest) if digest else None

    async def reconcile_once(self, observed: Observed[WorkerGroup]) -> Pass:
        group = observed.model
        if group is None:
            return Pass()
        ref = group.spec.configuration
        if ref is None:
            if observed.status.get("compliance") is not None:
                await self.write_status(observed, {"compliance": None})
            return Pass()
        namespace, name = observed.key
        leases = self.leases.of_group(namespace, name)
        summary, news = summarise(group, leases, self._digest(namespace, ref.name), self.clock())
        assert summary is not None
        if not await self.write_status(observed, {"compliance": summary.to_dict()}):
            news = []
        else:
            kv(logger, logging.INFO, "workergroup.compliance", namespace=namespace, group=name,
               configuration=ref.name, compliant=summary.compliant_workers, ready=summary.ready_workers)
        announced = self._announced.setdefault(observed.key, {})
        for worker, checked, item in corrections(leases, announced):
            announced[worker] = checked
            news.append(item)
        for item in news:
            await self.tools.recorder.post(group.meta, names.WORKER_GROUP, type_=item.type, reason=item.reason,
                                           action="Configure", note=item.note)
        return Pass()


def _standing(report: ComplianceReport | None) -> tuple[Any, ...] | None:
    """What of a report the group's status shows (not when the tests last ran)."""
    if report is None:
        return None
    return (report.configuration, report.digest, report.applied_time, report.resources)

