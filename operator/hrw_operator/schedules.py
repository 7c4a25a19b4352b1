"""RunbookSchedule: create RunbookJobs at the times a cron schedule names, like batch/v1 CronJob.

The shape every kind has (issue 9): a pure `decide(schedule, facts, now) -> Decision` over a
closed set of actions (create one job, cancel running ones, delete old finished ones) and the
status to write, tested without a cluster; and `ScheduleController`, which gathers the facts,
writes the decision and asks the frame's timers to wake it at the next scheduled time (no
polling). It follows the job store (`View.follow`) so a job of its own that changes phase
updates the schedule at once, and the runbook store, so a template that becomes runnable is
seen without waiting for the next run.

Semantics follow the Kubernetes CronJob controller, documented there:
- A run is due at the most recent scheduled time after the last one it created (or after the
  schedule's creation). Of many missed times only the most recent runs, never a burst; with
  `startingDeadlineSeconds`, a time more than that far in the past is skipped.
- Each run's job is named `<schedule>-<unix minutes>` (`hrw_api.runbookschedule.job_name`), so a
  restarted operator, or a second replica, creating the same run gets a 409 and moves on.
- `Forbid` skips a due run while a job of the schedule is active (it starts late when the active
  job ends, if still within `startingDeadlineSeconds`); `Replace` cancels the active jobs
  (`spec.cancel: true`, so they end Cancelled through the agents) and creates the new one.
- Finished jobs beyond the history limits are deleted, oldest first; their output goes with them.
- A schedule that cannot run (a bad cron expression or time zone, an unknown runbook or group,
  parameters that do not fit the runbook) says so in its `Ready` condition and creates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from hrw_api import (
    ConcurrencyPolicy,
    Runbook,
    RunbookJob,
    RunbookSchedule,
    RunbookScheduleStatus,
    WorkerGroup,
    conditions,
    names,
    params,
)
from hrw_api.errors import ApiError, InvalidObject
from hrw_api.kubeclient import RUNBOOK_JOBS, RUNBOOK_SCHEDULES, RUNBOOKS, WORKER_GROUPS
from hrw_api.phases import JobPhase
from hrw_api.runbookschedule import job_name
from hrw_api.times import now as utcnow
from hrw_api.times import parse_time

from . import events
from .frame import Controller, Key, Observed, Pass, Store, Tools, View
from .logs import kv

logger = logging.getLogger("hrw.operator.schedules")

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}


# ------------------------------------------------------------------------------------ the clock


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression read in a time zone."""

    expression: str
    zone: ZoneInfo

    def latest(self, at: datetime) -> datetime:
        """The most recent scheduled time at or before `at`."""
        local = at.astimezone(self.zone)
        previous: datetime = croniter(self.expression, local).get_prev(datetime)
        following: datetime = croniter(self.expression, previous).get_next(datetime)
        return following if following <= at else previous

    def next_after(self, at: datetime) -> datetime:
        """The first scheduled time strictly after `at`."""
        result: datetime = croniter(self.expression, at.astimezone(self.zone)).get_next(datetime)
        return result


@dataclass(frozen=True)
class Problem:
    """Why a schedule cannot run: the `Ready=False` reason and a message naming the field."""

    reason: str
    message: str


def parse_cron(expression: str, time_zone: str | None) -> Cron | Problem:
    """The schedule's clock, or the problem with its `schedule` or `timeZone`. Pure."""
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return Problem("UnknownTimeZone", f"spec.timeZone {time_zone!r} is not a known IANA time zone "
                                          "(e.g. Europe/Berlin, America/New_York, UTC)")
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text)
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        return Problem("InvalidSchedule", f"spec.schedule {expression!r} is not a cron expression of 5 fields "
                                          "(minute hour day-of-month month day-of-week) or a macro such as @daily")
    cron = Cron(text, zone)
    try:
        cron.next_after(datetime(2000, 1, 1, tzinfo=zone))
    except CroniterBadDateError:
        return Problem("InvalidSchedule", f"spec.schedule {expression!r} never happens")
    except CroniterBadCronError as exc:
        return Problem("InvalidSchedule", f"spec.schedule {expression!r}: {exc}")
    return cron


# -------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class OwnedJob:
    """One job the schedule created, as much of it as the decision needs."""

    name: str
    phase: JobPhase
    scheduled: datetime | None
    finished: datetime | None
    created: datetime | None
    cancel: bool = False

    @classmethod
    def of(cls, job: RunbookJob) -> OwnedJob:
        try:
            scheduled = parse_time(job.meta.annotations.get(names.ANNOTATION_SCHEDULED_TIME))
        except ValueError:
            scheduled = None
        return cls(job.meta.name, job.status.phase, scheduled, job.status.completion_time,
                   job.meta.creation_timestamp, job.spec.cancel)


@dataclass(frozen=True)
class ScheduleFacts:
    jobs: Sequence[OwnedJob] = ()
    runbook: Runbook | None = None
    runbook_problem: str | None = None
    """Why the runbook cannot be used (missing, unparseable); None when `runbook` is set."""
    group_problem: str | None = None


# ------------------------------------------------------------------------------------ decision


@dataclass(frozen=True)
class Decision:
    status: RunbookScheduleStatus
    create: datetime | None = None
    """Create the job for the run scheduled at this time (a 409 means it exists: fine)."""
    cancel: tuple[str, ...] = ()
    """Set `spec.cancel` on these active jobs (Replace)."""
    delete: tuple[str, ...] = ()
    """Delete these finished jobs (history limits)."""
    skipped: tuple[str, str] | None = None
    """(reason, message) of a due run that was not created (Forbid, deadline passed)."""
    wake_at: datetime | None = None


def template_problem(schedule: RunbookSchedule, facts: ScheduleFacts) -> Problem | None:
    """Why every job of the template would fail, or None. Pure."""
    template = schedule.spec.job_template
    if facts.runbook is None:
        return Problem("RunbookNotFound", facts.runbook_problem
                       or f"spec.jobTemplate.runbookRef: Runbook {template.runbook!r} not found")
    if facts.group_problem is not None:
        return Problem("WorkerGroupNotFound", facts.group_problem)
    _, problems = params.check(facts.runbook.spec.parameters, template.parameters)
    if problems:
        return Problem("InvalidParameters", "spec.jobTemplate.parameters: " + "; ".join(problems))
    return None


def _history(jobs: Sequence[OwnedJob], limit: int) -> list[str]:
    """The finished `jobs` beyond `limit`, oldest first out: by the run they are for (their
    scheduled time, else their creation), then by when they finished, then by name (API times
    have whole seconds, so ties are common)."""
    never = datetime.min.replace(tzinfo=UTC)

    def age(job: OwnedJob) -> tuple[datetime, datetime, str]:
        return (job.scheduled or job.created or never, job.finished or never, job.name)

    newest_first = sorted(jobs, key=age, reverse=True)
    return [job.name for job in newest_first[limit:]]


def decide(schedule: RunbookSchedule, facts: ScheduleFacts, now: datetime) -> Decision:
    """What to do about `schedule` at `now`. Pure: no I/O, no clock of its own."""
    spec, meta = schedule.spec, schedule.meta
    active = [j for j in facts.jobs if not j.phase.terminal]
    succeeded = [j for j in facts.jobs if j.phase is JobPhase.SUCCEEDED]
    failed = [j for j in facts.jobs if j.phase.terminal and j.phase is not JobPhase.SUCCEEDED]
    delete = tuple(_history(succeeded, spec.successful_jobs_history_limit)
                   + _history(failed, spec.failed_jobs_history_limit))
    last_success = schedule.status.last_successful_time
    for job in succeeded:
        if job.finished is not None and (last_success is None or job.finished > last_success):
            last_success = job.finished
    last_schedule = schedule.status.last_schedule_time

    def decision(ok: bool, reason: str, message: str, *, create: datetime | None = None,
                 recorded: datetime | None = None, cancel: tuple[str, ...] = (),
                 skipped: tuple[str, str] | None = None, wake_at: datetime | None = None) -> Decision:
        """`recorded`: a run whose job exists already; `create`: a run whose job is created now."""
        ready = conditions.make(conditions.READY, ok, reason, message, meta.generation)
        names_active = sorted(j.name for j in active)
        if create is not None:
            names_active = sorted({*names_active, job_name(meta.name, create)})
        status = RunbookScheduleStatus(
            last_schedule_time=create or recorded or last_schedule,
            last_successful_time=last_success,
            active=tuple(names_active),
            observed_generation=meta.generation,
            conditions=conditions.merge(schedule.status.conditions, ready),
        )
        return Decision(status, create=create, cancel=cancel, delete=delete, skipped=skipped, wake_at=wake_at)

    cron = parse_cron(spec.schedule, spec.time_zone)
    if isinstance(cron, Problem):
        return decision(False, cron.reason, cron.message + "; no job is created")
    upcoming = cron.next_after(now)
    problem = template_problem(schedule, facts)
    if problem is not None:
        # Look again at the next run: the runbook may have been fixed meanwhile.
        return decision(False, problem.reason, problem.message + "; no job is created until this is fixed",
                        wake_at=upcoming)
    if spec.suspend:
        return decision(True, "Suspended", "spec.suspend is true: no new job is created")
    scheduled_message = f"next run at {upcoming.isoformat()}"

    due = cron.latest(now)
    earliest = last_schedule or meta.creation_timestamp
    if earliest is not None and due <= earliest:
        return decision(True, "Scheduled", scheduled_message, wake_at=upcoming)
    name = job_name(meta.name, due)
    if any(j.name == name for j in facts.jobs):  # created before the status said so (a write lost, a restart)
        return decision(True, "Scheduled", scheduled_message, recorded=due, wake_at=upcoming)
    late = (now - due).total_seconds()
    if spec.starting_deadline_seconds is not None and late > spec.starting_deadline_seconds:
        return decision(True, "Scheduled", scheduled_message, wake_at=upcoming, skipped=(
            "MissedSchedule", f"the run at {due.isoformat()} was not started within startingDeadlineSeconds "
                              f"({spec.starting_deadline_seconds}); {scheduled_message}"))
    others = [j for j in active if j.name != name]
    if others and spec.concurrency_policy is ConcurrencyPolicy.FORBID:
        return decision(True, "Scheduled", scheduled_message, wake_at=upcoming, skipped=(
            "Skipped", f"the run at {due.isoformat()} was skipped: concurrencyPolicy is Forbid and "
                       f"{', '.join(sorted(j.name for j in others))} has not finished"))
    cancel: tuple[str, ...] = ()
    if others and spec.concurrency_policy is ConcurrencyPolicy.REPLACE:
        cancel = tuple(sorted(j.name for j in others if not j.cancel))
    return decision(True, "Scheduled", scheduled_message, create=due, cancel=cancel, wake_at=upcoming)


# ---------------------------------------------------------------------------------- controller


class ScheduleController(Controller[RunbookSchedule]):
    """Reconciles each schedule from its own jobs (listed fresh) and its runbook and group."""

    kind = "schedule"
    resource = RUNBOOK_SCHEDULES

    def __init__(self, tools: Tools, store: Store[RunbookSchedule], *, jobs: View[RunbookJob],
                 runbooks: View[Runbook], groups: View[WorkerGroup],
                 clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(tools, store)
        self.runbooks = runbooks
        self.groups = groups
        self.clock = clock
        self._reported: dict[Key, tuple[str, str]] = {}  # the last skip reported per schedule: no Event storm
        jobs.follow(self._job_changed)
        runbooks.follow(self._runbook_changed)

    def forget(self, key: Key) -> None:
        super().forget(key)
        self._reported.pop(key, None)

    def _job_changed(self, job: Observed[RunbookJob]) -> None:
        owner = job.meta.labels.get(names.LABEL_SCHEDULE)
        if owner and (job.meta.namespace, owner) in self.store:
            self.soon((job.meta.namespace, owner))

    def _runbook_changed(self, runbook: Observed[Runbook]) -> None:
        for observed in self.store.in_namespace(runbook.meta.namespace):
            if observed.model is not None and observed.model.spec.job_template.runbook == runbook.meta.name:
                self.soon(observed.key)

    async def reconcile_once(self, observed: Observed[RunbookSchedule]) -> Pass:
        schedule = observed.model
        if schedule is None:
            problem = observed.problem
            ready = conditions.make(conditions.READY, False, "InvalidSpec", str(problem), observed.meta.generation)
            await self.write_status(observed, {
                "observedGeneration": observed.meta.generation,
                "conditions": [c.to_dict() for c in conditions.merge(observed.conditions, ready)]})
            return Pass()
        if schedule.meta.deletion_timestamp is not None:
            return Pass()
        facts = await self._facts(schedule)
        decision = decide(schedule, facts, self.clock())
        ns = schedule.meta.namespace
        for name in decision.cancel:
            await self._cancel(ns, name)
        if decision.create is not None:
            await self._create(schedule, decision.create)
        for name in decision.delete:
            await self.client.delete(RUNBOOK_JOBS.path(ns, name), propagationPolicy="Background")
            kv(logger, logging.INFO, "schedule.job_deleted", namespace=ns, schedule=schedule.meta.name, job=name)
        await self.write_status(observed, decision.status.to_dict())
        if decision.skipped is not None and self._reported.get(observed.key) != decision.skipped:
            self._reported[observed.key] = decision.skipped
            reason, note = decision.skipped
            kv(logger, logging.INFO, "schedule.skipped", namespace=ns, schedule=schedule.meta.name, reason=reason)
            await self.tools.recorder.post(schedule.meta, names.RUNBOOK_SCHEDULE, type_=events.NORMAL,
                                           reason=reason, action="Skip", note=note)
        return Pass(wake_at=decision.wake_at)

    async def _create(self, schedule: RunbookSchedule, scheduled: datetime) -> None:
        body = schedule.job_body(scheduled)
        ns, name = schedule.meta.namespace, body["metadata"]["name"]
        try:
            await self.client.create(RUNBOOK_JOBS.path(ns), body)
        except ApiError as exc:
            if exc.code != 409:
                raise
            kv(logger, logging.INFO, "schedule.job_exists", namespace=ns, schedule=schedule.meta.name, job=name)
            return
        kv(logger, logging.INFO, "schedule.job_created", namespace=ns, schedule=schedule.meta.name, job=name,
           scheduled=scheduled.isoformat())
        await self.tools.recorder.post(schedule.meta, names.RUNBOOK_SCHEDULE, type_=events.NORMAL, reason="Created",
                                       action="Create", note=f"created job {name} for the run at "
                                                             f"{scheduled.isoformat()}")

    async def _cancel(self, namespace: str, name: str) -> None:
        try:
            await self.client.patch(RUNBOOK_JOBS.path(namespace, name), {"spec": {"cancel": True}})
        except ApiError as exc:
            if exc.code != 404:
                raise
        kv(logger, logging.INFO, "schedule.job_replaced", namespace=namespace, job=name)

    # -- facts

    async def _facts(self, schedule: RunbookSchedule) -> ScheduleFacts:
        ns = schedule.meta.namespace
        # Listed fresh, not read from the job view: right after a start the view may not hold
        # the jobs yet, and Forbid must never miss an active one.
        listed = await self.client.list(RUNBOOK_JOBS.path(ns),
                                        labelSelector=f"{names.LABEL_SCHEDULE}={schedule.meta.name}")
        jobs = [OwnedJob.of(job) for job in _owned(listed.get("items") or [], schedule.meta.uid)]
        template = schedule.spec.job_template
        runbook, runbook_problem = await self.referenced(self.runbooks, RUNBOOKS.path(ns, template.runbook),
                                                     ns, template.runbook, Runbook.parse, "spec.jobTemplate.runbookRef",
                                                     "Runbook")
        _, group_problem = await self.referenced(self.groups, WORKER_GROUPS.path(ns, template.worker_group),
                                                 ns, template.worker_group, WorkerGroup.parse,
                                                 "spec.jobTemplate.workerGroup", "WorkerGroup")
        return ScheduleFacts(jobs=jobs, runbook=runbook, runbook_problem=runbook_problem, group_problem=group_problem)

def _owned(items: Sequence[Any], uid: str) -> list[RunbookJob]:
    """The listed jobs this schedule controls, parsed; others (same label, another owner) are not ours."""
    owned: list[RunbookJob] = []
    for item in items:
        try:
            job = RunbookJob.parse(item)
        except InvalidObject:
            continue
        if job.meta.controller_uid == uid:
            owned.append(job)
    return owned
