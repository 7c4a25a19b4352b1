"""The RunbookSchedule kind: RunbookJobs created on a cron schedule, like batch/v1 CronJob.

The job template is a RunbookJob spec without `cancel`; it is parsed with the RunbookJob
model, so a template can never mean something a job would not. The cron expression and the
time zone are kept as text here: evaluating them needs a cron library and the time zone
database, which only the operator has (the agent's install stays small). The operator reports
an expression or a zone it cannot read as a condition on the schedule.

The names a schedule gives its jobs are also here (`job_name`), since the CLI and tests
must agree with the operator on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from . import _fields as f
from . import names
from ._fields import JSON
from .errors import InvalidObject
from .meta import Condition, Meta, conditions_of
from .runbookjob import RunbookJob, RunbookJobSpec
from .times import format_time

DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT = 3
DEFAULT_FAILED_JOBS_HISTORY_LIMIT = 1
MAX_NAME_LENGTH = 52
"""A schedule's name is at most this long, so `<name>-<unix minutes>` fits a job's 63 characters."""


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


def job_name(schedule: str, scheduled: datetime) -> str:
    """The name of the job for the run scheduled at `scheduled`: one name per run, so two
    operators (or one restarted) can never create the same run twice (the second create is a 409)."""
    return f"{schedule}-{int(scheduled.timestamp()) // 60}"


@dataclass(frozen=True)
class RunbookScheduleSpec:
    schedule: str
    time_zone: str | None
    job_template: RunbookJobSpec
    template: Mapping[str, Any]
    """The template as written, copied into each job's spec."""
    concurrency_policy: ConcurrencyPolicy
    starting_deadline_seconds: int | None
    suspend: bool
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int


@dataclass(frozen=True)
class RunbookScheduleStatus:
    last_schedule_time: datetime | None
    last_successful_time: datetime | None
    active: tuple[str, ...]
    observed_generation: int
    conditions: tuple[Condition, ...]

    def to_dict(self) -> JSON:
        """The status the operator writes (times as `metav1.Time`; a missing time is null, which
        a merge patch reads as "remove")."""
        return {
            "lastScheduleTime": format_time(self.last_schedule_time) if self.last_schedule_time else None,
            "lastSuccessfulTime": format_time(self.last_successful_time) if self.last_successful_time else None,
            "active": list(self.active),
            "activeCount": len(self.active),
            "observedGeneration": self.observed_generation,
            "conditions": [c.to_dict() for c in self.conditions],
        }


def parse_job_template(spec: Mapping[str, Any], meta: Mapping[str, Any]) -> tuple[Mapping[str, Any], RunbookJobSpec]:
    """`spec.jobTemplate` as written and as a RunbookJob spec (also a RunbookWebhook's template)."""
    template = f.obj(spec.get("jobTemplate"), "spec.jobTemplate")
    if "cancel" in template:
        raise InvalidObject("spec.jobTemplate.cancel", "is not part of a template (cancel a job itself)")
    try:
        job = RunbookJob.parse({"metadata": meta, "spec": template})
    except InvalidObject as exc:
        raise InvalidObject(exc.field.replace("spec", "spec.jobTemplate", 1), exc.message) from None
    return dict(template), job.spec


def _policy(spec: Mapping[str, Any]) -> ConcurrencyPolicy:
    value = spec.get("concurrencyPolicy") or ConcurrencyPolicy.ALLOW
    try:
        return ConcurrencyPolicy(value)
    except ValueError:
        raise InvalidObject("spec.concurrencyPolicy", "must be one of Allow, Forbid, Replace") from None


@dataclass(frozen=True)
class RunbookSchedule:
    meta: Meta
    spec: RunbookScheduleSpec
    status: RunbookScheduleStatus

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> RunbookSchedule:
        meta = Meta.parse(obj)
        spec = f.obj(obj.get("spec"), "spec")
        status = f.obj(obj.get("status"), "status")
        template, job_spec = parse_job_template(spec, f.obj(obj.get("metadata"), "metadata"))
        return cls(
            meta=meta,
            spec=RunbookScheduleSpec(
                schedule=f.req_str(spec, "schedule", "spec", max_length=128).strip(),
                time_zone=f.opt_str(spec, "timeZone", "spec", max_length=64),
                job_template=job_spec,
                template=template,
                concurrency_policy=_policy(spec),
                starting_deadline_seconds=f.opt_int(spec, "startingDeadlineSeconds", "spec", minimum=0),
                suspend=f.boolean(spec, "suspend", "spec"),
                successful_jobs_history_limit=f.opt_int(
                    spec, "successfulJobsHistoryLimit", "spec", DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT, minimum=0)
                or 0,
                failed_jobs_history_limit=f.opt_int(
                    spec, "failedJobsHistoryLimit", "spec", DEFAULT_FAILED_JOBS_HISTORY_LIMIT, minimum=0) or 0,
            ),
            status=RunbookScheduleStatus(
                last_schedule_time=f.time(status, "lastScheduleTime", "status"),
                last_successful_time=f.time(status, "lastSuccessfulTime", "status"),
                active=tuple(str(name) for name in f.array(status, "active", "status")),
                observed_generation=f.opt_int(status, "observedGeneration", "status", 0) or 0,
                conditions=conditions_of(status),
            ),
        )

    def job_body(self, scheduled: datetime) -> JSON:
        """The RunbookJob this schedule creates for the run scheduled at `scheduled`, owned by it."""
        return {
            "apiVersion": names.API_VERSION,
            "kind": names.RUNBOOK_JOB,
            "metadata": {
                "name": job_name(self.meta.name, scheduled),
                "namespace": self.meta.namespace,
                "labels": {names.LABEL_SCHEDULE: self.meta.name},
                "annotations": {names.ANNOTATION_SCHEDULED_TIME: format_time(scheduled)},
                "ownerReferences": [{
                    "apiVersion": names.API_VERSION,
                    "kind": names.RUNBOOK_SCHEDULE,
                    "name": self.meta.name,
                    "uid": self.meta.uid,
                    "controller": True,
                }],
            },
            "spec": dict(self.spec.template),
        }
