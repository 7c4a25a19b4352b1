"""RunbookSchedule against the real control plane and the real operator: jobs on the clock,
Forbid, history limits, missed runs, a suspended schedule, a template that cannot run.

The test plays the agents (claim, start, finish through the contract's patches), as the other
operator tests do. Every timing case is proven by the pure `decide` (tests/unit/
test_operator_schedules.py); these tests need at most two real minute boundaries. Where a test
needs "the operator was down since yesterday", it writes the status an earlier operator would
have left (`lastScheduleTime`) instead of faking a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hrw_api import names
from hrw_api.kubeclient import RUNBOOK_JOBS, RUNBOOK_SCHEDULES
from hrw_api.runbookschedule import job_name
from hrw_api.times import format_time
from tests.support import async_wait_until

from .conftest import Kit, ready

JSON = dict[str, Any]


async def create_schedule(kit: Kit, name: str, schedule: str, *, runbook: str = "rb", group: str = "pool",
                          parameters: JSON | None = None, **spec: Any) -> JSON:
    template: JSON = {"runbookRef": {"name": runbook}, "workerGroup": group}
    if parameters is not None:
        template["parameters"] = parameters
    return await kit.admin.create(RUNBOOK_SCHEDULES.path(kit.namespace), {
        "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_SCHEDULE, "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": template, **spec}})


async def jobs_of(kit: Kit, schedule: str) -> list[JSON]:
    listed = await kit.admin.list(RUNBOOK_JOBS.path(kit.namespace), labelSelector=f"{names.LABEL_SCHEDULE}={schedule}")
    return sorted(listed.get("items") or [], key=lambda j: j["metadata"]["name"])


async def wait_jobs(kit: Kit, schedule: str, count: int, *, timeout: float = 30) -> list[JSON]:  # noqa: ASYNC109
    async def check() -> list[JSON] | None:
        found = await jobs_of(kit, schedule)
        return found if len(found) == count else None

    return await async_wait_until(check, timeout=timeout, interval=0.2,
                                  message=f"{count} job(s) of schedule {schedule}")


async def wait_schedule(kit: Kit, name: str, predicate, *, timeout: float = 30,  # noqa: ASYNC109
                        message: str = "") -> JSON:
    found = await kit.wait_status(RUNBOOK_SCHEDULES.path(kit.namespace, name), predicate, timeout=timeout,
                                  message=message or f"the status of schedule {name}")
    return found["status"]


async def set_status(kit: Kit, name: str, status: JSON) -> JSON:
    return await kit.admin.patch(RUNBOOK_SCHEDULES.path(kit.namespace, name, "status"), {"status": status})


async def set_spec(kit: Kit, name: str, spec: JSON) -> JSON:
    return await kit.admin.patch(RUNBOOK_SCHEDULES.path(kit.namespace, name), {"spec": spec})


def reason_of(status: JSON) -> str | None:
    cond = ready(status)
    return cond.get("reason") if cond else None


async def test_forbid_skips_the_next_run_while_a_job_runs_and_runs_it_late_when_it_ends(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1", duration=300)
    await create_schedule(kit, "every-minute", "* * * * *", concurrencyPolicy="Forbid", startingDeadlineSeconds=45,
                          successfulJobsHistoryLimit=0)
    # The first minute boundary after creation creates the first run's job.
    [first] = await wait_jobs(kit, "every-minute", 1, timeout=75)
    name = first["metadata"]["name"]
    owner = first["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "RunbookSchedule" and owner["name"] == "every-minute" and owner["controller"] is True
    await kit.wait_phase(name, "Queued")
    await kit.claim_and_start(name, "w1")
    status = await wait_schedule(kit, "every-minute", lambda s: s.get("active") == [name])
    assert status["activeCount"] == 1 and status["lastScheduleTime"]
    # The next boundary: the run is due, but the first job still runs.
    skipped = await kit.wait_event("every-minute", "Skipped", timeout=75)
    assert name in skipped["note"] and "Forbid" in skipped["note"]
    assert [j["metadata"]["name"] for j in await jobs_of(kit, "every-minute")] == [name]
    # The first job ends within the starting deadline: the skipped run starts late, exactly once,
    # and the finished job goes (successfulJobsHistoryLimit: 0).
    await kit.succeed(name, "w1")

    async def only_the_late_run() -> list[JSON] | None:
        found = await jobs_of(kit, "every-minute")
        return found if len(found) == 1 and found[0]["metadata"]["name"] != name else None

    [late] = await async_wait_until(only_the_late_run, timeout=20, message="the late run replacing the finished one")
    scheduled = late["metadata"]["annotations"][names.ANNOTATION_SCHEDULED_TIME]
    assert scheduled == skipped["note"].split("the run at ")[1].split(" ")[0].replace("+00:00", "Z")
    status = await wait_schedule(kit, "every-minute", lambda s: s.get("active") == [late["metadata"]["name"]]
                                 and bool(s.get("lastSuccessfulTime")))


async def test_history_limits_delete_the_oldest_finished_jobs(kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.lease("pool", "w1", duration=300)
    created = await create_schedule(kit, "kept", "0 0 1 1 *", successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    await wait_schedule(kit, "kept", lambda s: reason_of(s) == "Scheduled")
    owner = {"apiVersion": names.API_VERSION, "kind": names.RUNBOOK_SCHEDULE, "name": "kept",
             "uid": created["metadata"]["uid"], "controller": True}

    async def run(name: str, *, cancel: bool = False) -> None:
        await kit.admin.create(RUNBOOK_JOBS.path(kit.namespace), {
            "apiVersion": names.API_VERSION, "kind": names.RUNBOOK_JOB,
            "metadata": {"name": name, "labels": {names.LABEL_SCHEDULE: "kept"}, "ownerReferences": [owner]},
            "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "pool", "cancel": cancel}})
        if cancel:
            await kit.wait_phase(name, "Cancelled")
            return
        await kit.wait_phase(name, "Queued")
        await kit.claim_and_start(name, "w1")
        await kit.succeed(name, "w1")
        await kit.wait_job(name, lambda s: any(c["type"] == "Complete" for c in s.get("conditions") or []))

    for name in ("ok-1", "ok-2", "ok-3", "ok-4"):
        await run(name)
    for name in ("no-1", "no-2"):
        await run(name, cancel=True)

    async def kept() -> list[str] | None:
        names_ = [j["metadata"]["name"] for j in await jobs_of(kit, "kept")]
        return names_ if names_ == ["no-2", "ok-3", "ok-4"] else None

    await async_wait_until(kept, timeout=30, message="the oldest finished jobs to be deleted")
    status = await wait_schedule(kit, "kept", lambda s: bool(s.get("lastSuccessfulTime")))
    assert status.get("active") == [] and status.get("activeCount") == 0


async def test_missed_runs_never_burst_respect_the_deadline_and_a_suspended_schedule_runs_nothing(
        kit: Kit, operator) -> None:
    await kit.runbook("rb")
    await kit.group("pool")
    now = datetime.now(UTC)
    five_minutes_ago = now - timedelta(minutes=5)
    daily_five_minutes_ago = f"{five_minutes_ago.minute} {five_minutes_ago.hour} * * *"
    await create_schedule(kit, "catch-up", "* * * * *", suspend=True)
    await create_schedule(kit, "too-late", daily_five_minutes_ago, startingDeadlineSeconds=60, suspend=True)
    await create_schedule(kit, "in-time", daily_five_minutes_ago, startingDeadlineSeconds=3600, suspend=True)
    await create_schedule(kit, "paused", "* * * * *", suspend=True)
    yesterday = format_time(now - timedelta(days=1))
    for name in ("catch-up", "too-late", "in-time", "paused"):
        await wait_schedule(kit, name, lambda s: reason_of(s) == "Suspended")
        # As an operator that last ran a day ago would have left it.
        await set_status(kit, name, {"lastScheduleTime": yesterday})
    for name in ("catch-up", "too-late", "in-time"):
        await set_spec(kit, name, {"suspend": False})

    # A day of missed minutes: one job, for the most recent minute.
    [catch_up] = await wait_jobs(kit, "catch-up", 1)
    scheduled = datetime.fromisoformat(catch_up["metadata"]["annotations"][names.ANNOTATION_SCHEDULED_TIME])
    assert timedelta(0) <= datetime.now(UTC) - scheduled < timedelta(minutes=2)
    assert catch_up["metadata"]["name"] == job_name("catch-up", scheduled)
    # Missed by five minutes: within a deadline of an hour it runs, beyond one of a minute it does not.
    [in_time] = await wait_jobs(kit, "in-time", 1)
    assert in_time["metadata"]["name"] == job_name("in-time", five_minutes_ago.replace(second=0, microsecond=0))
    missed = await kit.wait_event("too-late", "MissedSchedule")
    assert "startingDeadlineSeconds (60)" in missed["note"]
    too_late = await kit.admin.get(RUNBOOK_SCHEDULES.path(kit.namespace, "too-late"))
    assert too_late["status"]["lastScheduleTime"] == yesterday and too_late["status"]["observedGeneration"] == 2
    assert await jobs_of(kit, "too-late") == []
    assert await jobs_of(kit, "paused") == []
    assert len(await jobs_of(kit, "catch-up")) in (1, 2)  # 2 only if a minute boundary passed meanwhile


async def test_a_template_that_cannot_run_is_reported_on_the_schedule(kit: Kit, operator) -> None:
    await kit.group("pool")
    await create_schedule(kit, "no-runbook", "@hourly", runbook="report")
    status = await wait_schedule(kit, "no-runbook", lambda s: reason_of(s) == "RunbookNotFound")
    assert "'report' not found" in ready(status)["message"] and ready(status)["status"] == "False"
    # The runbook appears: the schedule sees it at once (it follows the runbooks), not at the next run.
    await kit.runbook("report", parameters=[{"name": "region", "required": True}])
    status = await wait_schedule(kit, "no-runbook", lambda s: reason_of(s) == "InvalidParameters")
    assert "'region'" in ready(status)["message"]
    await set_spec(kit, "no-runbook", {"jobTemplate": {"parameters": {"region": "eu"}}})
    status = await wait_schedule(kit, "no-runbook", lambda s: reason_of(s) == "Scheduled")
    assert ready(status)["status"] == "True" and ready(status)["observedGeneration"] == 2

    await create_schedule(kit, "atlantis", "@daily", runbook="report", parameters={"region": "eu"},
                          timeZone="Europe/Atlantis")
    status = await wait_schedule(kit, "atlantis", lambda s: reason_of(s) == "UnknownTimeZone")
    assert "spec.timeZone 'Europe/Atlantis'" in ready(status)["message"]
    await create_schedule(kit, "feb-30", "0 0 30 2 *", runbook="report", parameters={"region": "eu"})
    status = await wait_schedule(kit, "feb-30", lambda s: reason_of(s) == "InvalidSchedule")
    assert "never happens" in ready(status)["message"]
