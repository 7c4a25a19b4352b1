"""RunbookJob: the hot kind's I/O — gather the facts, apply `decide`'s action, report it.

The `JobController` stands in the common frame (`frame.Controller`): the job store, a lock per
job, the retry policy and the timers. Per reconcile it gathers the facts the job's phase needs,
calls the pure `decide`, writes the action with the contract's fenced patch (`jobs.writes`),
posts its Events, and wakes itself at the next deadline. kopf only feeds it watch events: no
change handler, so kopf writes no progress or diff-base annotation on any job, and the
operator's writes for one job from creation to success are exactly two (the queue patch and
the batch-style condition).

A 422 from a fenced patch means another party moved the job first: re-read, decide again,
never overwrite. A 404 means the job is gone. All state lives in the API: a restarted
operator lists the jobs and rebuilds every timer from their status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, TypeVar

from hrw_api import Asset, Runbook, RunbookJob, WorkerGroup, names
from hrw_api.errors import ApiError, InvalidObject, is_object_not_found
from hrw_api.kubeclient import ASSETS, LEASES, RUNBOOK_JOBS, RUNBOOKS, WORKER_GROUPS, Resource
from hrw_api.phases import JobPhase, Reason
from hrw_api.times import now as utcnow

from ..frame import Controller, Key, Model, Observed, Outcome, Pass, Store, Tools, View
from ..leases import LeaseView, worker_lease
from ..logs import kv
from ..reachability import Reachability
from .decide import DEFAULT_LEASE_DURATION_SECONDS, Action, Delete, End, JobFacts, Requeue, Tunables, decide
from .writes import build_patch, events_for

logger = logging.getLogger("hrw.operator.jobs")
K = TypeVar("K", bound=Model)


class Write(Enum):
    """How applying one action ended."""

    APPLIED = "applied"
    """Written; the store holds the API server's answer."""

    CONFLICT = "conflict"
    """Another party moved the job first; the store holds a fresh read."""

    GONE = "gone"
    """The job no longer exists."""

    FAILED = "failed"
    """An API or network error: retry later."""


class JobController(Controller[RunbookJob]):
    """Reconciles one job at a time per key, from the job store and read-only views of the rest."""

    kind = "job"
    resource = RUNBOOK_JOBS
    MAX_ROUNDS = 6  # decide/apply rounds per reconcile (a conflict or a follow-up action each)

    def __init__(self, tools: Tools, store: Store[RunbookJob], *, runbooks: View[Runbook],
                 groups: View[WorkerGroup], leases: LeaseView) -> None:
        super().__init__(tools, store)
        self.runbooks = runbooks
        self.groups = groups
        self.leases = leases
        self._runbook_timeouts: dict[tuple[str, str, str], int | None] = {}  # (ns, job, uid)
        self.tunables = Tunables(tools.settings.pending_retry_seconds, tools.settings.pending_give_up_seconds)
        self.writes = 0
        self.reachability = Reachability(tools.client)  # an apiserver outage does not lose workers

    async def on_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self.reachability.start()  # inside the event loop, from the first event on
        await super().on_event(event_type, body)

    async def close(self) -> None:
        await self.reachability.stop()
        await super().close()

    def forget(self, key: Key) -> None:
        super().forget(key)
        for k in [k for k in self._runbook_timeouts if k[0] == key[0] and k[1] == key[1]]:
            self._runbook_timeouts.pop(k, None)

    def kick_pending(self, namespace: str) -> None:
        """Look again at the namespace's Pending jobs now (a runbook or an asset was just evaluated)."""
        for observed in self.store.in_namespace(namespace):
            if observed.model is not None and observed.model.status.phase is JobPhase.PENDING:
                self.soon(observed.key)

    # -- reconciling

    async def reconcile_once(self, observed: Observed[RunbookJob]) -> Pass:
        key = observed.key
        for _ in range(self.MAX_ROUNDS):
            current = self.store.get(key)
            if current is None:
                return Pass()
            job = current.model
            if job is None:
                problem = current.problem
                kv(logger, logging.WARNING, "job.unparseable", namespace=key[0], job=key[1],
                   field=problem.field if problem else None, problem=problem.message if problem else None)
                return Pass()
            facts = await self._facts(job)
            decision = decide(job, facts, utcnow(), self.tunables)
            if isinstance(decision.action, Requeue) or (
                    isinstance(decision.action, End) and decision.action.reason == Reason.WORKER_LOST):
                # The view of Leases may lag (a fresh start, a slow watch): confirm with the API.
                facts = await self._confirm_lease(job, facts)
                decision = decide(job, facts, utcnow(), self.tunables)
            if decision.action is None:
                return Pass(wake_at=decision.wake_at)
            written = await self._apply(job, decision.action)
            if written is Write.GONE:
                return Pass(Outcome.GONE)
            if written is Write.FAILED:
                return Pass(Outcome.RETRY)
            # APPLIED or CONFLICT: the stored job is fresh again; decide once more.
        kv(logger, logging.WARNING, "job.too_many_rounds", namespace=key[0], job=key[1])
        return Pass(Outcome.RETRY)

    async def _apply(self, job: RunbookJob, action: Action) -> Write:
        ns, name = job.meta.namespace, job.meta.name
        kind = type(action).__name__
        try:
            if isinstance(action, Delete):
                await self.client.request("DELETE", RUNBOOK_JOBS.path(ns, name),
                                          body={"preconditions": {"uid": job.meta.uid}})
                self.writes += 1
                kv(logger, logging.INFO, "job.write", namespace=ns, job=name, action=kind,
                   phase=job.status.phase.value)
                return Write.GONE
            patch = build_patch(job, action)
            if patch is None:
                return Write.APPLIED
            answer = await self.client.patch(RUNBOOK_JOBS.path(ns, name, "status"), patch, json_patch=True)
        except ApiError as exc:
            if exc.code == 404:
                kv(logger, logging.INFO, "job.gone", namespace=ns, job=name, action=kind)
                return Write.GONE
            if exc.code in (409, 422):
                kv(logger, logging.INFO, "job.conflict", namespace=ns, job=name, action=kind,
                   phase=job.status.phase.value, attempt=job.status.attempt)
                return await self._reread((ns, name))
            kv(logger, logging.WARNING, "job.write_failed", namespace=ns, job=name, action=kind, code=exc.code,
               reason=exc.reason)
            return Write.FAILED
        except Exception as exc:  # network trouble: try again later
            kv(logger, logging.WARNING, "job.write_failed", namespace=ns, job=name, action=kind,
               error=type(exc).__name__)
            return Write.FAILED
        self.writes += 1
        written = self.store.parse(answer)
        self.store.put(written)
        after = written.model
        kv(logger, logging.INFO, "job.write", namespace=ns, job=name, action=kind,
           phase=after.status.phase.value if after else None, attempt=after.status.attempt if after else None,
           reason=after.status.reason if after else None)
        for type_, reason, note in events_for(action, job):
            await self.tools.recorder.post(written.meta, names.RUNBOOK_JOB, type_=type_, reason=reason, action=kind,
                                           note=note)
        return Write.APPLIED

    async def _reread(self, key: Key) -> Write:
        try:
            self.store.observe(await self.client.get(RUNBOOK_JOBS.path(*key)))
        except ApiError as exc:
            return Write.GONE if exc.code == 404 else Write.FAILED
        return Write.CONFLICT

    # -- facts

    async def _get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (a 404 for the whole resource, from an apiserver
        still starting, is an error to retry: it must not fail a job `RunbookNotFound`)."""
        try:
            return await self.client.get(path)
        except ApiError as exc:
            if is_object_not_found(exc):
                return None
            raise

    async def _facts(self, job: RunbookJob) -> JobFacts:
        phase = job.status.phase
        if phase is JobPhase.PENDING and not job.spec.cancel:
            return await self._pending_facts(job)
        if phase.terminal and job.spec.ttl_seconds_after_finished is None:
            group = await self._known(self.groups, WORKER_GROUPS, job.meta.namespace, job.spec.worker_group,
                                      WorkerGroup.parse)
            return JobFacts(default_ttl_seconds_after_finished=group.spec.job_ttl_seconds_after_finished
                            if group is not None else None)
        if not phase.held:
            return JobFacts()
        ns = job.meta.namespace
        duration = DEFAULT_LEASE_DURATION_SECONDS
        group = await self._known(self.groups, WORKER_GROUPS, ns, job.spec.worker_group, WorkerGroup.parse)
        if group is not None:
            duration = group.spec.lease_duration_seconds
        lease = None
        if job.status.claim is not None:
            lease = self.leases.get(ns, names.lease_name(job.spec.worker_group, job.status.claim.worker))
        return JobFacts(lease=lease, lease_duration_seconds=duration,
                        runbook_timeout_seconds=await self._runbook_timeout(job),
                        reachable_since=self.reachability.since())

    async def _known(self, view: View[K], resource: Resource, namespace: str, name: str,
                     parse: Callable[[Mapping[str, Any]], K]) -> K | None:
        """The model `view` holds, or the API server's when the view does not hold the object
        (None if it is missing or does not parse)."""
        held = view.get((namespace, name))
        if held is not None:
            return held.model
        body = await self._get(resource.path(namespace, name))
        if body is None:
            return None
        try:
            return parse(body)
        except InvalidObject:
            return None

    async def _runbook_timeout(self, job: RunbookJob) -> int | None:
        if job.spec.timeout_seconds:
            return None  # the job's own timeout wins
        cache_key = (job.meta.namespace, job.meta.name, job.meta.uid)
        if cache_key not in self._runbook_timeouts:
            runbook = await self._known(self.runbooks, RUNBOOKS, job.meta.namespace, job.spec.runbook, Runbook.parse)
            self._runbook_timeouts[cache_key] = runbook.spec.timeout_seconds if runbook is not None else None
        return self._runbook_timeouts[cache_key]

    async def _pending_facts(self, job: RunbookJob) -> JobFacts:
        """Read fresh from the API: a job is validated against what the user applied just now.

        The runbook and the group are read at once, then the runbook's assets at once: the queue
        write waits for two round trips, not one per object (issue 10, create -> Queued)."""
        ns = job.meta.namespace
        runbook = group = None
        runbook_problem = group_problem = None
        assets: dict[str, Asset | None] = {}
        rb_body, group_body = await asyncio.gather(self._get(RUNBOOKS.path(ns, job.spec.runbook)),
                                                   self._get(WORKER_GROUPS.path(ns, job.spec.worker_group)))
        if rb_body is not None:
            try:
                runbook = Runbook.parse(rb_body)
            except InvalidObject as exc:
                runbook_problem = str(exc)
        if group_body is not None:
            try:
                group = WorkerGroup.parse(group_body)
            except InvalidObject as exc:
                group_problem = str(exc)
        if runbook is not None:
            asset_names = list(runbook.spec.assets)
            bodies = await asyncio.gather(*(self._get(ASSETS.path(ns, name)) for name in asset_names))
            for asset_name, asset_body in zip(asset_names, bodies, strict=True):
                try:
                    assets[asset_name] = Asset.parse(asset_body) if asset_body is not None else None
                except InvalidObject:
                    assets[asset_name] = None
        return JobFacts(runbook=runbook, runbook_problem=runbook_problem, group=group, group_problem=group_problem,
                        assets=assets)

    async def _confirm_lease(self, job: RunbookJob, facts: JobFacts) -> JobFacts:
        """The claimer's Lease as the API server holds it now (the Lease view may lag)."""
        claim = job.status.claim
        if claim is None:
            return facts
        body = await self._get(LEASES.path(job.meta.namespace, names.lease_name(job.spec.worker_group, claim.worker)))
        lease = worker_lease(body) if body is not None else None
        return JobFacts(lease=lease, lease_duration_seconds=facts.lease_duration_seconds,
                        runbook_timeout_seconds=facts.runbook_timeout_seconds,
                        reachable_since=self.reachability.since())
