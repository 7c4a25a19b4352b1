"""The operator's Prometheus metrics (issue 14): what a fleet owner watches, on the operator's own
registry, served by `endpoints` at `/metrics`.

Every replica exports `hrw_operator_leader` (1 for the one that leads, 0 for a standby), so an
alert can tell "no replica leads" from "no replica runs". **Only the leader exports the fleet's
figures**: a standby runs no controllers and holds no stores, so it has none to give, and a
dashboard that sums over the scraped replicas counts each group once, without a label to filter on.

Gauges, read from the controllers' stores at scrape time (no bookkeeping between scrapes):

    hrw_operator_group_ready_workers{namespace,group}            ready, not draining workers
    hrw_operator_worker_state{namespace,group,worker,state}      1 for the worker's state: ready, draining, missing
    hrw_operator_queued_jobs{namespace,group}                    jobs in phase Queued
    hrw_operator_oldest_queued_job_age_seconds{namespace,group}  age of the oldest Queued job (0: none)

Histograms and a counter, observed when this process sees a job move (`JobObserver`):

    hrw_operator_job_pickup_seconds{namespace,group}             creation -> Running, first attempt
    hrw_operator_job_run_seconds{namespace,group,phase}          startTime -> completionTime
    hrw_operator_jobs_finished_total{namespace,group,phase,reason}

A move is counted by the process that saw the job before and after it, so a job is counted
once, by the leader of the moment; a job that moves while no replica leads (the seconds of a
failover) is not counted at all, rather than twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hrw_api import RunbookJob, WorkerGroup
from hrw_api.phases import JobPhase
from hrw_api.times import now as utcnow

from .frame import Key, Observed, View

__all__ = ["Fleet", "JobObserver", "OperatorMetrics"]

PICKUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
RUN_BUCKETS = (0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0, 21600.0)
WORKER_STATES = ("ready", "draining", "missing")


@dataclass(frozen=True)
class Fleet:
    """What the leader's stores hold, read at scrape time."""

    jobs: View[RunbookJob]
    groups: View[WorkerGroup]


class FleetCollector(Collector):
    """The gauges, from the stores of the leading process; nothing in a standby (`fleet()` is None)."""

    def __init__(self, fleet: Callable[[], Fleet | None], clock: Callable[[], datetime] = utcnow) -> None:
        self._fleet = fleet
        self._clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # built at scrape time: the registry must not collect at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fleet = self._fleet()
        if fleet is None:
            return
        ready = GaugeMetricFamily("hrw_operator_group_ready_workers",
                                  "Workers of the group that are ready and not draining.",
                                  labels=["namespace", "group"])
        states = GaugeMetricFamily("hrw_operator_worker_state",
                                   "1 for the worker's state: ready, draining (stopping, claims nothing), or "
                                   "missing (its Lease lapsed).", labels=["namespace", "group", "worker", "state"])
        queued = GaugeMetricFamily("hrw_operator_queued_jobs", "Jobs of the group in phase Queued.",
                                   labels=["namespace", "group"])
        oldest = GaugeMetricFamily("hrw_operator_oldest_queued_job_age_seconds",
                                   "Seconds since the group's oldest Queued job was queued (0: none queued).",
                                   labels=["namespace", "group"])
        now = self._clock()
        depth: dict[Key, int] = {}
        first: dict[Key, datetime] = {}
        for observed in fleet.jobs.every():
            job = observed.model
            if job is None or job.status.phase is not JobPhase.QUEUED:
                continue
            of = (job.meta.namespace, job.spec.worker_group)
            depth[of] = depth.get(of, 0) + 1
            since = job.status.queued_time or job.meta.creation_timestamp
            if since is not None and (of not in first or since < first[of]):
                first[of] = since
        known: set[Key] = set(depth)
        for observed_group in fleet.groups.every():
            group = observed_group.model
            if group is None:
                continue
            key = observed_group.key
            known.add(key)
            count = 0
            for worker in group.workers:
                state = "draining" if worker.draining else "ready" if worker.ready else "missing"
                count += state == "ready"
                for each in WORKER_STATES:
                    states.add_metric([*key, worker.name, each], 1.0 if each == state else 0.0)
            ready.add_metric(list(key), float(count))
        for key in sorted(known):
            queued.add_metric(list(key), float(depth.get(key, 0)))
            age = (now - first[key]).total_seconds() if key in first else 0.0
            oldest.add_metric(list(key), max(0.0, age))
        yield from (ready, states, queued, oldest)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.leader = Gauge(
            "hrw_operator_leader", "1 while this replica leads (runs the controllers), 0 while it stands by.",
            registry=self.registry)
        self.pickup = Histogram(
            "hrw_operator_job_pickup_seconds", "Seconds from a job's creation to its start (the claim), first attempt.",
            ["namespace", "group"], buckets=PICKUP_BUCKETS, registry=self.registry)
        self.run = Histogram(
            "hrw_operator_job_run_seconds", "Seconds from a job's start to its end, by the phase it ended in.",
            ["namespace", "group", "phase"], buckets=RUN_BUCKETS, registry=self.registry)
        self.finished = Counter(
            "hrw_operator_jobs_finished", "Jobs that reached a terminal phase, by phase and reason.",
            ["namespace", "group", "phase", "reason"], registry=self.registry)
        self._fleet: Fleet | None = None
        self.registry.register(FleetCollector(lambda: self._fleet))

    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def watch(self, fleet: Fleet | None) -> None:
        """Export the figures of `fleet` (the leader's stores, once built); None stops."""
        self._fleet = fleet
        if fleet is not None:
            fleet.jobs.follow(JobObserver(self, fleet.jobs))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class JobObserver:
    """Follows the job store and observes each move this process saw both ends of."""

    def __init__(self, metrics: OperatorMetrics, jobs: View[RunbookJob]) -> None:
        self._metrics = metrics
        self._jobs = jobs
        self._waiting: dict[Key, str] = {}  # seen Pending or Queued in attempt 1 (by uid)
        self._open: dict[Key, str] = {}  # seen not terminal (by uid)

    def __call__(self, observed: Observed[RunbookJob]) -> None:
        key, job = observed.key, observed.model
        if job is None or key not in self._jobs:  # unparseable, or removed
            self._waiting.pop(key, None)
            self._open.pop(key, None)
            return
        uid, phase, status = job.meta.uid, job.status.phase, job.status
        labels = (job.meta.namespace, job.spec.worker_group)
        if phase in (JobPhase.PENDING, JobPhase.QUEUED):
            if status.attempt <= 1:
                self._waiting[key] = uid
            self._open[key] = uid
            return
        if self._waiting.get(key) == uid and status.start_time and job.meta.creation_timestamp:
            pickup = (status.start_time - job.meta.creation_timestamp).total_seconds()
            self._metrics.pickup.labels(*labels).observe(max(0.0, pickup))
            self._waiting.pop(key, None)
        elif phase.terminal:
            self._waiting.pop(key, None)
        if not phase.terminal:
            self._open[key] = uid
            return
        if self._open.pop(key, None) != uid:
            return
        self._metrics.finished.labels(*labels, phase.value, status.reason or "").inc()
        if status.start_time and status.completion_time:
            run = (status.completion_time - status.start_time).total_seconds()
            self._metrics.run.labels(*labels, phase.value).observe(max(0.0, run))
