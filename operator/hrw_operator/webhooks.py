"""RunbookWebhook: the operator's half is the webhook's status; the proxy serves its calls.

A call is checked and its job created by the proxy (proxy/hrw_proxy/webhooks.py), so the operator
creates nothing here. It tells the webhook's owner, on the `Ready` condition, whether a call can
create a job that runs: `Expired` from `spec.expiresAt` on, `RunbookNotFound`,
`WorkerGroupNotFound`, `InvalidParameters` (a fixed parameter or an allowed name that does not fit
the runbook's declarations, or a required parameter nobody can set), `InvalidSpec`. The shape every
kind has: a pure `decide(webhook, facts, now)` and `WebhookController`, which gathers the facts,
writes the status and wakes the webhook at its expiry (a timer, no polling). It follows the runbook
and group views, so a runbook created after its webhook is seen at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hrw_api import Runbook, RunbookWebhook, RunbookWebhookStatus, WorkerGroup, conditions, params
from hrw_api.kubeclient import RUNBOOK_WEBHOOKS, RUNBOOKS, WORKER_GROUPS
from hrw_api.times import format_time
from hrw_api.times import now as utcnow

from .frame import Controller, Observed, Pass, Store, Tools, View

logger = logging.getLogger("hrw.operator.webhooks")


@dataclass(frozen=True)
class WebhookFacts:
    runbook: Runbook | None = None
    runbook_problem: str | None = None
    """Why the runbook cannot be used (missing, unparseable); None when `runbook` is set."""
    group_problem: str | None = None


@dataclass(frozen=True)
class Decision:
    status: RunbookWebhookStatus
    wake_at: datetime | None = None


def parameter_problems(webhook: RunbookWebhook, runbook: Runbook) -> list[str]:
    """What in the webhook's parameters can never fit `runbook`. Pure."""
    declared = {spec.name: spec for spec in runbook.spec.parameters}
    fixed = webhook.spec.job_template.parameters
    allowed = webhook.spec.allowed_parameters
    problems: list[str] = []
    for name in sorted(fixed):
        spec = declared.get(name)
        problem = "is not declared by the runbook" if spec is None else params.value_problem(spec, fixed[name])
        if problem is not None:
            problems.append(f"spec.jobTemplate.parameters.{name} {problem}")
    problems += [f"spec.allowedParameters: {name!r} is fixed by spec.jobTemplate.parameters, so a caller "
                 "cannot set it" for name in allowed if name in fixed]
    problems += [f"spec.allowedParameters: {name!r} is not declared by the runbook"
                 for name in allowed if name not in declared]
    problems += [f"the runbook requires parameter {spec.name!r}, which is neither fixed nor allowed"
                 for spec in runbook.spec.parameters
                 if spec.required and spec.default is None and spec.name not in fixed and spec.name not in allowed]
    return problems


def decide(webhook: RunbookWebhook, facts: WebhookFacts, now: datetime) -> Decision:
    """The webhook's status at `now`, and when to look again (its expiry). Pure."""
    meta, spec = webhook.meta, webhook.spec

    def decision(ok: bool, reason: str, message: str, wake_at: datetime | None = None) -> Decision:
        ready = conditions.make(conditions.READY, ok, reason, message, meta.generation)
        status = RunbookWebhookStatus(meta.generation, conditions.merge(webhook.status.conditions, ready))
        return Decision(status, wake_at)

    if webhook.expired(now):
        assert spec.expires_at is not None
        return decision(False, "Expired", f"spec.expiresAt {format_time(spec.expires_at)} has passed: calls are "
                                          "refused (410 Expired); move it to accept calls again")
    wake_at = spec.expires_at
    template = spec.job_template
    if facts.runbook is None:
        return decision(False, "RunbookNotFound", (facts.runbook_problem or f"spec.jobTemplate.runbookRef: Runbook "
                                                   f"{template.runbook!r} not found") + "; calls are refused", wake_at)
    if facts.group_problem is not None:
        return decision(False, "WorkerGroupNotFound", facts.group_problem + "; its jobs would fail", wake_at)
    problems = parameter_problems(webhook, facts.runbook)
    if problems:
        return decision(False, "InvalidParameters", "; ".join(problems), wake_at)
    until = f"until {format_time(spec.expires_at)}" if spec.expires_at else "with no expiry"
    return decision(True, "Ready", f"a call creates a job of Runbook {template.runbook!r} on WorkerGroup "
                                   f"{template.worker_group!r}, {until}", wake_at)


class WebhookController(Controller[RunbookWebhook]):
    """Keeps each webhook's `Ready` condition true to its runbook, group and expiry."""

    kind = "webhook"
    resource = RUNBOOK_WEBHOOKS

    def __init__(self, tools: Tools, store: Store[RunbookWebhook], *, runbooks: View[Runbook],
                 groups: View[WorkerGroup], clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(tools, store)
        self.runbooks = runbooks
        self.groups = groups
        self.clock = clock
        runbooks.follow(self._runbook_changed)
        groups.follow(self._group_changed)

    def _runbook_changed(self, runbook: Observed[Runbook]) -> None:
        for observed in self.store.in_namespace(runbook.meta.namespace):
            if observed.model is not None and observed.model.spec.job_template.runbook == runbook.meta.name:
                self.soon(observed.key)

    def _group_changed(self, group: Observed[WorkerGroup]) -> None:
        for observed in self.store.in_namespace(group.meta.namespace):
            if observed.model is not None and observed.model.spec.job_template.worker_group == group.meta.name:
                self.soon(observed.key)

    async def reconcile_once(self, observed: Observed[RunbookWebhook]) -> Pass:
        webhook = observed.model
        if webhook is None:
            ready = conditions.make(conditions.READY, False, "InvalidSpec", str(observed.problem),
                                    observed.meta.generation)
            await self.write_status(observed, RunbookWebhookStatus(
                observed.meta.generation, conditions.merge(observed.conditions, ready)).to_dict())
            return Pass()
        if webhook.meta.deletion_timestamp is not None:
            return Pass()
        ns, template = webhook.meta.namespace, webhook.spec.job_template
        runbook, runbook_problem = await self.referenced(self.runbooks, RUNBOOKS.path(ns, template.runbook), ns,
                                                     template.runbook, Runbook.parse, "spec.jobTemplate.runbookRef",
                                                     "Runbook")
        _, group_problem = await self.referenced(self.groups, WORKER_GROUPS.path(ns, template.worker_group), ns,
                                             template.worker_group, WorkerGroup.parse, "spec.jobTemplate.workerGroup",
                                             "WorkerGroup")
        decision = decide(webhook, WebhookFacts(runbook, runbook_problem, group_problem), self.clock())
        await self.write_status(observed, decision.status.to_dict())
        return Pass(wake_at=decision.wake_at)
