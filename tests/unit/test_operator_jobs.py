"""The RunbookJob reconcile as a pure function: (job, facts, now) -> one action and a wake-up time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hrw_api import Asset, RunAs, Runbook, RunbookJob, WorkerGroup, WorkerLease, content_digest
from hrw_api.phases import RUN_DEADLINE_GRACE_SECONDS, JobPhase
from hrw_api.times import format_time
from hrw_operator.jobs.decide import Delete, End, JobFacts, MarkFinished, Queue, Reject, Requeue, decide

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
T = format_time


def meta(name: str, generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": generation,
            "resourceVersion": "7", "creationTimestamp": T(NOW - timedelta(seconds=5)), **extra}


def ready_cond(ok: bool = True, generation: int = 1, message: str = "ok") -> dict[str, Any]:
    return {"type": "Ready", "status": "True" if ok else "False", "reason": "R", "message": message,
            "lastTransitionTime": T(NOW), "observedGeneration": generation}


def runbook(*, ok: bool = True, params: list | None = None, assets: list | None = None,
            interpreter: str = "bash", signature: dict | None = None, evaluated: bool = True,
            run_as: dict | None = None) -> Runbook:
    status = {"digest": content_digest("x") if ok else None, "observedGeneration": 1,
              "conditions": [ready_cond(ok, message="ConfigMap 'cm' not found")] if evaluated else []}
    spec: dict[str, Any] = {"interpreter": interpreter, "content": "x", "parameters": params or [],
                            "assets": assets or []}
    if signature:
        spec["signature"] = signature
    if run_as:
        spec["runAs"] = run_as
    return Runbook.parse({"metadata": meta("rb"), "spec": spec, "status": status})


def group(workers: list[dict[str, Any]] | None = None, **spec: Any) -> WorkerGroup:
    return WorkerGroup.parse({"metadata": meta("pool"), "spec": spec, "status": {"workers": workers or []}})


def asset(ok: bool = True) -> Asset:
    return Asset.parse({"metadata": meta("a1"), "spec": {"type": "Variable", "value": "v"},
                        "status": {"conditions": [ready_cond(ok, message="Secret 's' not found")]}})


def job(status: dict | None = None, **spec: Any) -> RunbookJob:
    return RunbookJob.parse({"metadata": meta("job"), "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "pool",
                                                                **spec}, "status": status or {}})


def pending_facts(**kw: Any) -> JobFacts:
    base: dict[str, Any] = {"runbook": runbook(), "group": group()}
    base.update(kw)
    return JobFacts(**base)


def test_valid_pending_job_is_queued_with_the_runbook_digest_and_interpreter() -> None:
    workers = [{"name": "w1", "interpreters": ["bash", "sh"], "ready": True}]
    facts = pending_facts(group=group(workers=workers))
    assert decide(job(), facts, NOW).action == Queue(content_digest("x"), "bash", RunAs("hrw-job"))


def test_a_queued_job_snapshots_the_groups_run_as_or_the_runbooks_allowed_one() -> None:
    admin = group(runAs={"user": "ops", "group": "wheel"}, allowedRunAs=[{"user": "backup"}])
    queued = decide(job(), pending_facts(group=admin), NOW).action
    assert isinstance(queued, Queue) and queued.run_as == RunAs("ops", "wheel")
    asked = decide(job(), pending_facts(group=admin, runbook=runbook(run_as={"user": "backup"})), NOW).action
    assert isinstance(asked, Queue) and asked.run_as == RunAs("backup")
    rooted = decide(job(), pending_facts(group=group(allowRoot=True), runbook=runbook(run_as={"user": "root"})),
                    NOW).action
    assert isinstance(rooted, Queue) and rooted.run_as == RunAs("root")


def test_a_runbook_asking_for_an_identity_its_group_does_not_allow_is_refused_naming_both() -> None:
    cases = [
        (group(allowedRunAs=[{"user": "backup"}]), {"user": "postgres"}, "runs as postgres", "allows hrw-job, backup"),
        (group(allowedRunAs=[{"user": "backup"}]), {"user": "backup", "group": "disk"}, "runs as backup:disk",
         "allows hrw-job, backup"),
        (group(), {"user": "root"}, "runs as root", "spec.allowRoot: true"),
    ]
    for wg, run_as, names_identity, names_rule in cases:
        action = decide(job(), pending_facts(group=wg, runbook=runbook(run_as=run_as)), NOW).action
        assert isinstance(action, Reject) and action.reason == "RunAsNotAllowed"
        assert names_identity in action.message and "worker group 'pool'" in action.message
        assert names_rule in action.message


def test_a_job_no_ready_worker_can_run_is_queued_with_a_warning_naming_what_they_have() -> None:
    workers = [{"name": "w1", "interpreters": ["bash", "sh"], "ready": True},
               {"name": "w2", "interpreters": ["pwsh"], "ready": False}]
    action = decide(job(), pending_facts(runbook=runbook(interpreter="pwsh"), group=group(workers=workers)), NOW).action
    assert isinstance(action, Queue) and action.interpreter == "pwsh"
    assert "no ready worker of group pool has interpreter pwsh (w1: bash, sh)" in action.warning


def test_pending_validation_reasons_in_order() -> None:
    cases = [
        (job(cancel=True), pending_facts(), "Cancelled", JobPhase.CANCELLED),
        (job(), pending_facts(runbook=None), "RunbookNotFound", JobPhase.FAILED),
        (job(), pending_facts(runbook=runbook(ok=False)), "RunbookNotReady", JobPhase.FAILED),
        (job(), pending_facts(group=None), "WorkerGroupNotFound", JobPhase.FAILED),
        (job(parameters={"x": 1}), pending_facts(), "InvalidParameters", JobPhase.FAILED),
        (job(), pending_facts(runbook=runbook(assets=["a1"]), assets={"a1": asset(False)}), "AssetNotReady",
         JobPhase.FAILED),
        (job(), pending_facts(runbook=runbook(assets=["a1"]), assets={"a1": None}), "AssetNotReady", JobPhase.FAILED),
        (job(), pending_facts(runbook=runbook(interpreter="pwsh"), group=group(interpreters=["bash"])),
         "InterpreterNotAllowed", JobPhase.FAILED),
        (job(), pending_facts(group=group(requireSignedRunbooks=True)), "UnsignedRunbook", JobPhase.FAILED),
    ]
    for the_job, facts, reason, phase in cases:
        action = decide(the_job, facts, NOW).action
        assert isinstance(action, Reject), (reason, action)
        assert (action.reason, action.phase) == (reason, phase)


def test_rejection_messages_name_the_problem() -> None:
    action = decide(job(parameters={"colour": "red"}), pending_facts(
        runbook=runbook(params=[{"name": "count", "type": "integer", "required": True}])), NOW).action
    assert isinstance(action, Reject)
    assert "'count'" in action.message and "'colour'" in action.message
    action = decide(job(), pending_facts(runbook=runbook(ok=False)), NOW).action
    assert isinstance(action, Reject) and "ConfigMap 'cm' not found" in action.message


def test_pending_job_waits_for_a_runbook_not_yet_evaluated_then_gives_up() -> None:
    decision = decide(job(), pending_facts(runbook=runbook(evaluated=False)), NOW)
    assert decision.action is None and decision.wake_at is not None and decision.wake_at > NOW
    late = decide(job(), pending_facts(runbook=runbook(evaluated=False)), NOW + timedelta(minutes=5))
    assert isinstance(late.action, Reject) and late.action.reason == "RunbookNotReady"


def test_queued_job_wakes_at_its_queue_deadline_and_then_times_out() -> None:
    queued = {"phase": "Queued", "attempt": 1, "queuedTime": T(NOW)}
    decision = decide(job(queued, queueTimeoutSeconds=60), JobFacts(), NOW)
    assert decision.action is None and decision.wake_at == NOW + timedelta(seconds=60)
    action = decide(job(queued, queueTimeoutSeconds=60), JobFacts(), NOW + timedelta(seconds=60)).action
    assert action == End(JobPhase.QUEUED, 1, JobPhase.TIMED_OUT, "QueueTimeout", action.message)
    cancelled = decide(job(queued, cancel=True), JobFacts(), NOW).action
    assert isinstance(cancelled, End) and cancelled.phase is JobPhase.CANCELLED


def running(attempt: int = 1, start: datetime = NOW) -> dict[str, Any]:
    return {"phase": "Running", "attempt": attempt, "startTime": T(start),
            "claim": {"worker": "w1", "attempt": attempt, "claimedAt": T(start)}}


def lease(renewed: datetime, duration: int = 10) -> WorkerLease:
    return WorkerLease(name="hrw.pool.w1", namespace="ns", group="pool", worker="w1", renew_time=renewed,
                       duration_seconds=duration)


def test_running_job_with_a_live_lease_wakes_at_the_earlier_of_deadline_and_lease_expiry() -> None:
    decision = decide(job(running(), timeoutSeconds=100), JobFacts(lease=lease(NOW)), NOW + timedelta(seconds=1))
    assert decision.action is None
    assert decision.wake_at == NOW + timedelta(seconds=10)


def test_run_deadline_uses_the_job_timeout_or_the_runbooks_plus_grace() -> None:
    later = NOW + timedelta(seconds=30 + RUN_DEADLINE_GRACE_SECONDS)
    facts = JobFacts(lease=lease(later))
    assert decide(job(running(), timeoutSeconds=30), facts, later - timedelta(seconds=1)).action is None
    action = decide(job(running(), timeoutSeconds=30), facts, later).action
    assert isinstance(action, End) and action.reason == "DeadlineExceeded"
    facts = JobFacts(lease=lease(later), runbook_timeout_seconds=30)
    action = decide(job(running()), facts, later).action
    assert isinstance(action, End) and action.phase is JobPhase.TIMED_OUT


def test_expired_lease_requeues_while_the_retry_policy_allows_then_fails_with_worker_lost() -> None:
    expired = JobFacts(lease=lease(NOW - timedelta(seconds=11)))
    action = decide(job(running()), expired, NOW).action
    assert isinstance(action, Requeue) and (action.from_phase, action.attempt) == (JobPhase.RUNNING, 1)
    action = decide(job(running(), retryPolicy={"maxAttempts": 1}), expired, NOW).action
    assert isinstance(action, End) and (action.phase, action.reason) == (JobPhase.FAILED, "WorkerLost")
    action = decide(job(running(3)), expired, NOW).action  # default maxAttempts 3
    assert isinstance(action, End) and action.reason == "WorkerLost"


def test_after_an_apiserver_outage_a_worker_gets_a_whole_lease_to_renew_before_it_is_lost() -> None:
    """Issue 11: a kube-apiserver restart stopped every renewal; judged by renewTime alone, every
    worker was lost when it came back, and finished attempts whose reports waited ran again."""
    back = NOW + timedelta(seconds=30)  # the Lease (10 s) lapsed at NOW + 10, during the outage
    facts = JobFacts(lease=lease(NOW), lease_duration_seconds=10, reachable_since=back)
    waiting = decide(job(running()), facts, back + timedelta(seconds=1))
    assert waiting.action is None and waiting.wake_at == back + timedelta(seconds=10)
    assert isinstance(decide(job(running()), facts, back + timedelta(seconds=10)).action, Requeue)
    long_ago = JobFacts(lease=lease(NOW), lease_duration_seconds=10, reachable_since=NOW - timedelta(seconds=60))
    assert isinstance(decide(job(running()), long_ago, NOW + timedelta(seconds=10)).action, Requeue)


def test_missing_lease_counts_as_lost_only_after_the_groups_lease_duration_since_the_claim() -> None:
    facts = JobFacts(lease=None, lease_duration_seconds=30)
    early = decide(job(running()), facts, NOW + timedelta(seconds=29))
    assert early.action is None and early.wake_at == NOW + timedelta(seconds=30)
    assert isinstance(decide(job(running()), facts, NOW + timedelta(seconds=30)).action, Requeue)


def test_cancel_of_a_held_job_ends_it_as_cancelled() -> None:
    action = decide(job(running(), cancel=True), JobFacts(lease=lease(NOW)), NOW).action
    assert isinstance(action, End) and action.phase is JobPhase.CANCELLED and action.from_phase is JobPhase.RUNNING


def test_a_finished_job_without_a_ttl_takes_its_groups_default_and_its_own_wins() -> None:
    done = {"phase": "Succeeded", "attempt": 1, "reason": "Completed", "message": "ok",
            "completionTime": T(NOW), "conditions": [
                {"type": "Complete", "status": "True", "reason": "Completed", "message": "ok",
                 "lastTransitionTime": T(NOW), "observedGeneration": 1}]}
    defaulted = JobFacts(default_ttl_seconds_after_finished=60)
    assert decide(job(done), defaulted, NOW + timedelta(seconds=59)).wake_at == NOW + timedelta(seconds=60)
    assert isinstance(decide(job(done), defaulted, NOW + timedelta(seconds=60)).action, Delete)
    own = decide(job(done, ttlSecondsAfterFinished=3600), defaulted, NOW + timedelta(seconds=60))
    assert own.action is None and own.wake_at == NOW + timedelta(seconds=3600)
    assert decide(job(done), JobFacts(), NOW + timedelta(days=400)).action is None  # no default: kept


def test_agent_result_gets_its_condition_once_then_the_ttl_deletes_it() -> None:
    done = {"phase": "Succeeded", "attempt": 1, "reason": "Completed", "message": "exit 0",
            "completionTime": T(NOW)}
    assert decide(job(done), JobFacts(), NOW).action == MarkFinished(JobPhase.SUCCEEDED, "Completed", "exit 0")
    marked = dict(done, conditions=[{"type": "Complete", "status": "True", "reason": "Completed", "message": "",
                                     "lastTransitionTime": T(NOW)}])
    decision = decide(job(marked), JobFacts(), NOW)
    assert decision.action is None and decision.wake_at is None
    decision = decide(job(marked, ttlSecondsAfterFinished=60), JobFacts(), NOW)
    assert decision.action is None and decision.wake_at == NOW + timedelta(seconds=60)
    assert decide(job(marked, ttlSecondsAfterFinished=60), JobFacts(), NOW + timedelta(seconds=60)).action == Delete()


def test_a_new_job_waits_a_moment_for_a_group_or_runbook_applied_with_it() -> None:
    # One `kubectl apply -f examples/` sends runbookjob.yaml before workergroup.yaml: a job 1 s old
    # waits for its group (and runbook) instead of failing; 5 s old, it is refused as before.
    long_after = NOW + timedelta(seconds=4)
    for facts in (pending_facts(group=None), pending_facts(runbook=None)):
        decision = decide(job(), facts, NOW - timedelta(seconds=4))
        assert decision.action is None and decision.wake_at is not None
        assert isinstance(decide(job(), facts, long_after).action, Reject)
