"""The pure parts of the operator's leader election and metrics: the fence that ends a leader past
its renew deadline, the timings refused like client-go refuses them, and the fleet figures read
from the stores (each job move counted once). The election itself runs against the real control
plane (tests/e2e/test_operator_failover.py, tests/operator/test_operator_rbac.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hrw_api import RunbookJob, WorkerGroup
from hrw_api.times import format_time
from hrw_operator.frame import Store
from hrw_operator.leadership import EXIT_LEADERSHIP_LOST, Fence, LeaseRecord
from hrw_operator.metrics import Fleet, FleetCollector, OperatorMetrics
from hrw_operator.settings import LeaderElection

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_fence_ends_the_process_once_the_renew_deadline_passes_and_not_before() -> None:
    clock, exits = Clock(), []
    fence = Fence(clock=clock, exit_process=exits.append)
    fence.arm(110.0)
    try:
        time.sleep(0.2)
        assert exits == [] and not fence.expired()
        fence.arm(115.0)  # a renewal moved it
        clock.now = 112.0
        time.sleep(0.2)
        assert exits == []
        clock.now = 115.0
        deadline = time.monotonic() + 5
        while not exits and time.monotonic() < deadline:
            time.sleep(0.02)
        assert exits == [EXIT_LEADERSHIP_LOST]
    finally:
        fence.close()


def test_a_disarmed_fence_never_fires() -> None:
    clock, exits = Clock(), []
    fence = Fence(clock=clock, exit_process=exits.append)
    fence.arm(101.0)
    fence.disarm()
    clock.now = 500.0
    time.sleep(0.2)
    fence.close()
    assert exits == [] and not fence.expired()


def test_timings_are_refused_as_client_go_refuses_them() -> None:
    assert LeaderElection("ns", identity="me").problems() == []
    assert any("renew deadline must be below the lease duration" in p
               for p in LeaderElection("ns", identity="me", lease_duration=10, renew_deadline=10).problems())
    assert any("retry period" in p
               for p in LeaderElection("ns", identity="me", renew_deadline=2, retry_period=2).problems())
    assert LeaderElection("ns").problems() == ["the holder identity must not be empty"]


def test_a_lease_record_reads_a_released_lease_as_free() -> None:
    record = LeaseRecord.parse({"metadata": {"resourceVersion": "7"},
                                "spec": {"leaseDurationSeconds": 1, "leaseTransitions": 3}})
    assert record.holder == "" and record.duration_seconds == 1 and record.transitions == 3
    assert record.resource_version == "7"


def job_body(name: str, phase: str, *, attempt: int = 1, rv: str = "1", group: str = "pool",
             created: datetime = T0, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                         "resourceVersion": rv, "creationTimestamp": format_time(created)},
            "spec": {"runbookRef": {"name": "rb"}, "workerGroup": group},
            "status": {"phase": phase, "attempt": attempt, **status}}


def group_body(name: str, workers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1,
                         "resourceVersion": "1"},
            "spec": {}, "status": {"workers": workers}}


def worker(name: str, *, ready: bool, draining: bool = False) -> dict[str, Any]:
    return {"name": name, "hostname": name, "agentVersion": "0.1.0", "interpreters": ["bash"], "capacity": 2,
            "ready": ready, "draining": draining}


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_fleet_gauges_come_from_the_stores_and_a_standby_exports_none() -> None:
    jobs, groups = Store(RunbookJob.parse), Store(WorkerGroup.parse)
    groups.observe(group_body("pool", [worker("w1", ready=True), worker("w2", ready=False),
                                       worker("w3", ready=True, draining=True)]))
    jobs.observe(job_body("a", "Queued", queuedTime=format_time(T0)))
    jobs.observe(job_body("b", "Queued", queuedTime=format_time(T0 + timedelta(seconds=30))))
    jobs.observe(job_body("c", "Running", startTime=format_time(T0)))
    jobs.observe(job_body("d", "Queued", group="elsewhere", queuedTime=format_time(T0)))
    collector = FleetCollector(lambda: Fleet(jobs, groups), clock=lambda: T0 + timedelta(seconds=90))
    families = {f.name: f for f in collector.collect()}
    values = {(f.name, tuple(s.labels.values())): s.value for f in families.values() for s in f.samples}
    assert values[("hrw_operator_group_ready_workers", ("ns", "pool"))] == 1
    assert values[("hrw_operator_worker_state", ("ns", "pool", "w2", "missing"))] == 1
    assert values[("hrw_operator_worker_state", ("ns", "pool", "w3", "draining"))] == 1
    assert values[("hrw_operator_worker_state", ("ns", "pool", "w3", "ready"))] == 0
    assert values[("hrw_operator_queued_jobs", ("ns", "pool"))] == 2
    assert values[("hrw_operator_oldest_queued_job_age_seconds", ("ns", "pool"))] == 90
    assert values[("hrw_operator_queued_jobs", ("ns", "elsewhere"))] == 1  # a group the store does not hold
    assert list(FleetCollector(lambda: None).collect()) == []


def test_each_job_move_is_observed_once_and_only_when_this_process_saw_both_ends() -> None:
    metrics = OperatorMetrics()
    jobs, groups = Store(RunbookJob.parse), Store(WorkerGroup.parse)
    jobs.observe(job_body("seen-before", "Succeeded", reason="Completed"))  # listed finished: not counted
    metrics.watch(Fleet(jobs, groups))
    jobs.observe(job_body("j", "Pending", attempt=0, rv="2"))
    jobs.observe(job_body("j", "Queued", rv="3", queuedTime=format_time(T0)))
    jobs.observe(job_body("j", "Running", rv="4", startTime=format_time(T0 + timedelta(seconds=2))))
    jobs.observe(job_body("j", "Running", rv="5", startTime=format_time(T0 + timedelta(seconds=2))))
    done = {"startTime": format_time(T0 + timedelta(seconds=2)),
            "completionTime": format_time(T0 + timedelta(seconds=12)), "reason": "Completed"}
    jobs.observe(job_body("j", "Succeeded", rv="6", **done))
    jobs.observe(job_body("j", "Succeeded", rv="7", **done))  # the Complete condition: no second count
    jobs.observe(job_body("seen-before", "Succeeded", rv="8", reason="Completed"))
    found = samples(metrics)
    labels = (("group", "pool"), ("namespace", "ns"))
    assert found[("hrw_operator_jobs_finished_total",
                  tuple(sorted((*labels, ("phase", "Succeeded"), ("reason", "Completed")))))] == 1
    assert found[("hrw_operator_job_pickup_seconds_count", labels)] == 1
    assert found[("hrw_operator_job_pickup_seconds_sum", labels)] == 2
    assert found[("hrw_operator_job_run_seconds_sum", tuple(sorted((*labels, ("phase", "Succeeded")))))] == 10
    metrics.watch(None)
    assert not [key for key in samples(metrics) if key[0] == "hrw_operator_queued_jobs"]
