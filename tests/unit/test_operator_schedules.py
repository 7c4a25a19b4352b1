"""The RunbookSchedule decision, pure: every timing case of `decide` without a cluster.

Times are chosen, not read: each test names `now`. The controller that writes these decisions
is proven against the real control plane in tests/operator/test_schedules.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hrw_api import Runbook, RunbookSchedule, names
from hrw_api.phases import JobPhase
from hrw_api.runbookschedule import job_name
from hrw_operator.schedules import Cron, OwnedJob, Problem, ScheduleFacts, decide, parse_cron

CREATED = datetime(2026, 12, 1, 9, 0, 30, tzinfo=UTC)
RUNBOOK = Runbook.parse({"metadata": {"name": "report", "namespace": "ns"}, "spec": {
    "interpreter": "bash", "content": "echo", "parameters": [{"name": "region", "required": True}]}})


def schedule(*, cron: str = "*/5 * * * *", status: dict[str, Any] | None = None, **spec: Any) -> RunbookSchedule:
    return RunbookSchedule.parse({
        "metadata": {"name": "nightly", "namespace": "ns", "uid": "u-1", "generation": 2,
                     "creationTimestamp": CREATED.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"schedule": cron, "jobTemplate": {"runbookRef": {"name": "report"}, "workerGroup": "dc",
                                                   "parameters": {"region": "eu"}}, **spec},
        "status": status or {},
    })


def job(at: datetime, phase: JobPhase = JobPhase.RUNNING, finished: datetime | None = None) -> OwnedJob:
    return OwnedJob(job_name("nightly", at), phase, at, finished, at)


def facts(*jobs: OwnedJob) -> ScheduleFacts:
    return ScheduleFacts(jobs=jobs, runbook=RUNBOOK)


def at(hour: int, minute: int, second: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


def ready(decision: Any) -> tuple[str, str, str]:
    cond = next(c for c in decision.status.conditions if c.type == "Ready")
    return cond.status, cond.reason, cond.message


# -- the clock


@pytest.mark.parametrize(("expression", "now", "latest", "following"), [
    ("*/5 * * * *", at(9, 7, 12), at(9, 5), at(9, 10)),
    ("*/5 * * * *", at(9, 10), at(9, 10), at(9, 15)),  # exactly on time: due now
    ("@hourly", at(9, 59, 59), at(9, 0), at(10, 0)),
    ("@daily", at(9, 0), at(0, 0), at(0, 0, day=2)),
    ("30 2 * * MON-FRI", at(9, 0), datetime(2026, 12, 1, 2, 30, tzinfo=UTC), at(2, 30, day=2)),
])
def test_the_clock_finds_the_latest_due_time_and_the_next_one(expression: str, now: datetime, latest: datetime,
                                                               following: datetime) -> None:
    cron = parse_cron(expression, None)
    assert isinstance(cron, Cron)
    assert cron.latest(now) == latest and cron.next_after(now) == following


def test_the_clock_reads_the_schedule_in_its_time_zone_across_daylight_saving() -> None:
    cron = parse_cron("0 2 * * *", "Europe/Berlin")
    assert isinstance(cron, Cron)
    assert cron.next_after(datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 2, 0, tzinfo=UTC)  # CEST
    assert cron.next_after(datetime(2026, 12, 1, 12, tzinfo=UTC)) == datetime(2026, 12, 2, 1, tzinfo=UTC)  # CET


@pytest.mark.parametrize(("expression", "zone", "reason", "says"), [
    ("61 * * * *", None, "InvalidSchedule", "spec.schedule '61 * * * *'"),
    ("* * * *", None, "InvalidSchedule", "5 fields"),
    ("0 * * * * *", None, "InvalidSchedule", "5 fields"),  # seconds: not a standard cron expression
    ("0 0 30 2 *", None, "InvalidSchedule", "never happens"),
    ("@daily", "Mars/Olympus_Mons", "UnknownTimeZone", "spec.timeZone 'Mars/Olympus_Mons'"),
])
def test_a_bad_expression_or_zone_is_a_problem_naming_the_field(expression: str, zone: str | None, reason: str,
                                                                says: str) -> None:
    problem = parse_cron(expression, zone)
    assert isinstance(problem, Problem) and problem.reason == reason and says in problem.message


# -- when to run


def test_nothing_runs_before_the_first_time_after_creation_and_it_wakes_then() -> None:
    decision = decide(schedule(), facts(), at(9, 4))
    assert decision.create is None and decision.wake_at == at(9, 5)
    assert ready(decision)[:2] == ("True", "Scheduled")


def test_a_due_run_creates_its_job_and_records_the_schedule_time() -> None:
    decision = decide(schedule(), facts(), at(9, 5, 1))
    assert decision.create == at(9, 5) and decision.wake_at == at(9, 10)
    assert decision.status.last_schedule_time == at(9, 5)
    assert decision.status.active == (job_name("nightly", at(9, 5)),)


def test_a_run_already_created_is_not_created_again() -> None:
    decision = decide(schedule(status={"lastScheduleTime": "2026-12-01T09:05:00Z"}), facts(job(at(9, 5))), at(9, 6))
    assert decision.create is None and decision.status.active == (job_name("nightly", at(9, 5)),)


def test_a_job_created_before_its_status_was_written_only_records_the_time() -> None:
    decision = decide(schedule(), facts(job(at(9, 5))), at(9, 5, 3))
    assert decision.create is None and decision.status.last_schedule_time == at(9, 5)
    assert decision.status.active == (job_name("nightly", at(9, 5)),)


def test_after_a_long_outage_only_the_most_recent_missed_run_is_created() -> None:
    long_ago = {"lastScheduleTime": "2026-11-20T09:05:00Z"}
    decision = decide(schedule(status=long_ago), facts(), at(9, 7))
    assert decision.create == at(9, 5)  # one job, not the thousands missed since Nov 20


def test_a_missed_run_beyond_the_starting_deadline_is_skipped_and_reported() -> None:
    decision = decide(schedule(startingDeadlineSeconds=60, status={"lastScheduleTime": "2026-12-01T08:00:00Z"}),
                      facts(), at(9, 7))
    assert decision.create is None and decision.wake_at == at(9, 10)
    assert decision.skipped is not None and decision.skipped[0] == "MissedSchedule"
    assert decision.status.last_schedule_time == at(8, 0)


def test_a_missed_run_within_the_starting_deadline_still_runs() -> None:
    decision = decide(schedule(startingDeadlineSeconds=180, status={"lastScheduleTime": "2026-12-01T08:00:00Z"}),
                      facts(), at(9, 7))
    assert decision.create == at(9, 5)


def test_a_suspended_schedule_creates_nothing_and_sets_no_timer() -> None:
    decision = decide(schedule(suspend=True, status={"lastScheduleTime": "2026-12-01T08:00:00Z"}), facts(), at(9, 7))
    assert decision.create is None and decision.wake_at is None
    assert ready(decision)[:2] == ("True", "Suspended")


# -- concurrency


def test_forbid_skips_a_due_run_while_a_job_is_active() -> None:
    running = job(at(9, 0))
    decision = decide(schedule(concurrencyPolicy="Forbid", status={"lastScheduleTime": "2026-12-01T09:00:00Z"}),
                      facts(running), at(9, 5, 2))
    assert decision.create is None and decision.cancel == ()
    assert decision.skipped is not None and decision.skipped[0] == "Skipped" and running.name in decision.skipped[1]
    assert decision.status.last_schedule_time == at(9, 0) and decision.status.active == (running.name,)


def test_forbid_runs_the_skipped_run_late_when_the_active_job_ends_within_the_deadline() -> None:
    done = job(at(9, 0), JobPhase.SUCCEEDED, finished=at(9, 6))
    state = {"lastScheduleTime": "2026-12-01T09:00:00Z"}
    late = decide(schedule(concurrencyPolicy="Forbid", status=state), facts(done), at(9, 6))
    assert late.create == at(9, 5)
    too_late = decide(schedule(concurrencyPolicy="Forbid", startingDeadlineSeconds=30, status=state), facts(done),
                      at(9, 6))
    assert too_late.create is None


def test_allow_runs_beside_an_active_job() -> None:
    decision = decide(schedule(status={"lastScheduleTime": "2026-12-01T09:00:00Z"}), facts(job(at(9, 0))), at(9, 5))
    assert decision.create == at(9, 5) and len(decision.status.active) == 2


def test_replace_cancels_the_active_job_and_creates_the_new_one() -> None:
    running = job(at(9, 0))
    decision = decide(schedule(concurrencyPolicy="Replace", status={"lastScheduleTime": "2026-12-01T09:00:00Z"}),
                      facts(running), at(9, 5))
    assert decision.cancel == (running.name,) and decision.create == at(9, 5)


def test_replace_does_not_cancel_a_job_already_cancelling() -> None:
    cancelling = OwnedJob(job_name("nightly", at(9, 0)), JobPhase.RUNNING, at(9, 0), None, at(9, 0), cancel=True)
    decision = decide(schedule(concurrencyPolicy="Replace", status={"lastScheduleTime": "2026-12-01T09:00:00Z"}),
                      facts(cancelling), at(9, 5))
    assert decision.cancel == () and decision.create == at(9, 5)


# -- history


def test_history_limits_delete_the_oldest_finished_jobs_beyond_each_limit() -> None:
    ok = [job(at(8, m), JobPhase.SUCCEEDED, finished=at(8, m + 1)) for m in (0, 10, 20, 30)]
    bad = [job(at(8, 40), JobPhase.FAILED, finished=at(8, 41)), job(at(8, 50), JobPhase.TIMED_OUT, finished=at(8, 51))]
    running = job(at(9, 0))
    decision = decide(schedule(status={"lastScheduleTime": "2026-12-01T09:00:00Z"}), facts(*ok, *bad, running),
                      at(9, 1))
    assert set(decision.delete) == {ok[0].name, bad[0].name}  # keeps 3 succeeded, 1 failed; never the running one
    assert decision.status.last_successful_time == at(8, 31)


def test_history_limits_of_zero_keep_no_finished_job() -> None:
    done = job(at(8, 0), JobPhase.SUCCEEDED, finished=at(8, 1))
    failed = job(at(8, 5), JobPhase.CANCELLED, finished=at(8, 6))
    decision = decide(schedule(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0,
                               status={"lastScheduleTime": "2026-12-01T08:05:00Z"}), facts(done, failed), at(8, 7))
    assert set(decision.delete) == {done.name, failed.name}


# -- a template that can never run


def test_an_unknown_runbook_is_reported_and_nothing_runs_until_it_exists() -> None:
    missing = ScheduleFacts(runbook=None, runbook_problem="spec.jobTemplate.runbookRef: Runbook 'report' not found")
    decision = decide(schedule(), missing, at(9, 5))
    status, reason, message = ready(decision)
    assert (status, reason) == ("False", "RunbookNotFound") and "'report' not found" in message
    assert decision.create is None and decision.wake_at == at(9, 10)


def test_parameters_that_do_not_fit_the_runbook_are_reported() -> None:
    sched = RunbookSchedule.parse({
        "metadata": {"name": "nightly", "namespace": "ns", "generation": 1},
        "spec": {"schedule": "@daily", "jobTemplate": {"runbookRef": {"name": "report"}, "workerGroup": "dc",
                                                       "parameters": {"regoin": "eu"}}}})
    status, reason, message = ready(decide(sched, facts(), at(9, 5)))
    assert (status, reason) == ("False", "InvalidParameters")
    assert "spec.jobTemplate.parameters" in message and "'regoin'" in message and "'region'" in message


def test_a_missing_worker_group_is_reported() -> None:
    decision = decide(schedule(), ScheduleFacts(runbook=RUNBOOK, group_problem="spec.jobTemplate.workerGroup: "
                                                                               "WorkerGroup 'dc' not found"), at(9, 5))
    assert ready(decision)[:2] == ("False", "WorkerGroupNotFound") and decision.create is None


def test_an_unknown_time_zone_is_reported_at_once_and_sets_no_timer() -> None:
    decision = decide(schedule(timeZone="Europe/Atlantis"), facts(), at(9, 5))
    status, reason, message = ready(decision)
    assert (status, reason) == ("False", "UnknownTimeZone") and "Europe/Atlantis" in message
    assert decision.create is None and decision.wake_at is None


def test_the_condition_carries_the_generation_it_was_computed_for() -> None:
    decision = decide(schedule(), facts(), at(9, 4))
    assert decision.status.observed_generation == 2
    assert all(c.observed_generation == 2 for c in decision.status.conditions)


# -- the jobs it creates


def test_a_scheduled_job_is_owned_by_its_schedule_and_named_from_the_minute() -> None:
    body = schedule().job_body(at(9, 5))
    meta = body["metadata"]
    assert meta["name"] == f"nightly-{int(at(9, 5).timestamp()) // 60}"
    assert meta["ownerReferences"] == [{"apiVersion": names.API_VERSION, "kind": "RunbookSchedule",
                                        "name": "nightly", "uid": "u-1", "controller": True}]
    assert meta["labels"] == {names.LABEL_SCHEDULE: "nightly"}
    assert meta["annotations"] == {names.ANNOTATION_SCHEDULED_TIME: "2026-12-01T09:05:00Z"}
    assert body["spec"] == {"runbookRef": {"name": "report"}, "workerGroup": "dc", "parameters": {"region": "eu"}}
    assert job_name("nightly", at(9, 5) + timedelta(seconds=59)) == meta["name"]
    assert len(job_name("s" * 52, datetime(2999, 12, 31, tzinfo=UTC))) <= 63  # a RunbookJob name's limit



def test_a_job_is_the_schedules_only_if_the_schedule_is_its_controlling_owner() -> None:
    from hrw_api import RunbookJob
    from hrw_operator.schedules import _owned

    body = schedule().job_body(at(9, 5))
    foreign = {**body, "metadata": {**body["metadata"], "name": "other", "ownerReferences": [
        {**body["metadata"]["ownerReferences"][0], "uid": "u-2"}]}}
    not_controller = {**body, "metadata": {**body["metadata"], "name": "plain", "ownerReferences": [
        {**body["metadata"]["ownerReferences"][0], "controller": False}]}}
    assert RunbookJob.parse(body).meta.controller_uid == "u-1"
    assert [j.meta.name for j in _owned([body, foreign, not_controller], "u-1")] == [body["metadata"]["name"]]
