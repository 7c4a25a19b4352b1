"""The agent's orchestration: heartbeat, watch, claim, run, deliver, drain.

On start, before anything else, the agent kills what its previous life's jobs left running
(`orphans`). Then these loops share one `Agent`:
- heartbeat: re-read the group's settings and renew the Lease every third of its duration (it
  carries the agent's version, platform, running jobs and last error: `health`);
- fence: when no renewal has succeeded for the Lease's duration minus the group's self-fencing
  margin, stop every job (and claim nothing) so that no requeued attempt overlaps them (`fencing`);
- watch: keep an up-to-date view of the group's Queued jobs and of the jobs this worker holds
  (stopping a held job the operator cancelled, timed out, requeued or deleted);
- claim: while there is free capacity and the agent is not draining (nor below its group's
  `minAgentVersion`: then it runs no new job, and says so in its Lease), claim Queued jobs with
  the contract's test-and-set patch (422: another worker won; move on);
- delivery: send the spool (output chunks, results) to the proxy;
- configuration: apply the group's WorkerConfiguration beside the jobs and report compliance in
  the Lease (`configuration`); where the group requires compliance, claim only while compliant;
- credential: rotate the worker's credential at start and on the group's schedule (`rotation`).

Jobs keep running while the proxy is unreachable; their reports wait in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

from hrw_api import (
    ClaimIntent,
    FinishIntent,
    GiveBackIntent,
    Interpreter,
    JobResult,
    RetryOn,
    RunbookJob,
    WorkerGroupSpec,
)
from hrw_api.errors import Invalid, InvalidObject
from hrw_api.phases import JobPhase, Reason
from hrw_api.versions import outdated_reason

from . import __version__, lease, orphans, rotation, runner
from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient, retry_after
from .config import AgentConfig
from .configuration import ConfigurationApplier
from .delivery import Delivery
from .fencing import Renewal
from .health import Health
from .jobs import JobTask
from .logs import log
from .spool import AttemptKey, Spool
from .watcher import JobWatcher

_EARLIEST = datetime.min.replace(tzinfo=UTC)


QUEUE_WINDOW_SECONDS = 10
"""Jobs queued within one such window count as queued together (see `_queue_order`)."""


def _queue_order(worker: str, job: RunbookJob) -> tuple[float, bytes]:
    """Oldest window of the queue first (a job without a time counts as the oldest); within one
    window, an order of this worker's own: a rendezvous hash of worker and job. Agents whose
    slots free up at the same moment then reach for different jobs of a burst instead of all
    racing for the same oldest one (issue 10: 16 losing claims per job with 20 agents).

    The window is ten seconds, not one: on a loaded machine the operator queues a burst over
    many seconds (100 jobs over 19 s in the fleet bench), so one second held a handful of jobs,
    and agents whose view lagged a few seconds all tried the same oldest jobs, taken already
    (8 lost claims per job with 20 agents). A job waits at most one window longer than in a
    strict first-in-first-out order."""
    queued = (job.status.queued_time or _EARLIEST).timestamp() // QUEUE_WINDOW_SECONDS
    return queued, hashlib.sha256(f"{worker}/{job.meta.name}".encode()).digest()


class Agent:
    def __init__(self, config: AgentConfig, client: ProxyClient, interpreters: Mapping[Interpreter, str]) -> None:
        self.config = config
        self.client = client
        self.interpreters = dict(interpreters)
        self.settings = WorkerGroupSpec()
        self.settings_loaded = asyncio.Event()
        self.spool = Spool(config.spool_dir)
        self.delivery = Delivery(self.spool, client, self._attempt_active)
        self.watcher = JobWatcher(client, self._on_sync, self._on_event)
        self.tasks: dict[str, JobTask] = {}
        self._task_handles: set[asyncio.Task[None]] = set()
        self._helpers: set[asyncio.Task[None]] = set()
        self.claiming: set[str] = set()
        self.settling: set[str] = set()  # claims whose answer was lost, being checked
        self.queued: dict[str, RunbookJob] = {}
        self.draining = False
        self.outdated: str | None = None  # why this agent may not claim for its group (below its minimum)
        self.health = Health()
        self._wake_claim = asyncio.Event()
        self._stop = asyncio.Event()
        self._lease_now = asyncio.Event()
        self.renewal: Renewal | None = None  # the last renewal that succeeded
        self._renewed = asyncio.Event()
        self.records = orphans.ProcessRecords(config.processes_dir)
        self.leftovers: dict[AttemptKey, orphans.Leftover] = {}  # what the start found of a previous life
        self.configuration = ConfigurationApplier(client, interpreters=self.interpreters, work_dir=config.work_dir,
                                                  on_report=self._lease_now.set,
                                                  run_all_as_agent_user=config.run_all_jobs_as_agent_user)

    # ------------------------------------------------------------------------------ capacity

    @property
    def capacity(self) -> int:
        cap = self.settings.max_jobs_per_worker
        if self.config.max_concurrent_jobs is not None:
            cap = min(cap, self.config.max_concurrent_jobs)
        return max(cap, 0)

    @property
    def free(self) -> int:
        return self.capacity - len(self.tasks) - len(self.claiming) - len(self.settling)

    def _attempt_active(self, key: AttemptKey) -> bool:
        task = self.tasks.get(key.job)
        return task is not None and task.attempt == key.attempt

    def _interpreter_names(self) -> list[str]:
        return [i.value for i in self.interpreters]

    # ------------------------------------------------------------------------------ heartbeat

    async def _refresh_settings(self) -> None:
        group = await self.client.get_group()
        old = self.settings
        self.settings = group.spec
        if not self.settings_loaded.is_set() or old != group.spec:
            log.info("group.settings", group=self.config.group, max_jobs_per_worker=group.spec.max_jobs_per_worker,
                     capacity=self.capacity, lease_duration=group.spec.lease_duration_seconds,
                     require_signed=group.spec.require_signed_runbooks,
                     grace=group.spec.job_grace_period_seconds)
        self.settings_loaded.set()
        if self.configuration.observe(group) or old.max_jobs_per_worker != group.spec.max_jobs_per_worker:
            self._wake_claim.set()
        outdated = outdated_reason(__version__, group.spec.min_agent_version)
        if outdated != self.outdated:
            self.outdated = outdated
            if outdated is not None:
                log.warning("agent.outdated", version=__version__, minimum=group.spec.min_agent_version,
                            note="claims nothing until upgraded")
                self.health.note(outdated)
            else:
                log.info("agent.outdated.no_more", version=__version__)
                self._wake_claim.set()

    async def heartbeat_once(self) -> None:
        await self._refresh_settings()
        settings = self.settings
        sent = time.monotonic()  # the proxy stamps renewTime after this: fencing counts from here
        await lease.renew(self.client, duration_seconds=settings.lease_duration_seconds,
                          interpreters=self._interpreter_names(), capacity=self.capacity, draining=self.draining,
                          running_jobs=len(self.tasks), health=self.health,
                          compliance=self.configuration.report, labels=self.config.labels)
        if self.renewal is None or sent > self.renewal.sent_at:
            self.renewal = Renewal.of(sent, settings)
            self._renewed.set()
            self._wake_claim.set()

    async def _heartbeat_loop(self) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        while True:
            began = time.monotonic()
            try:
                await self.heartbeat_once()
                # After the renewal, from the settings it just read: computed before it, the first
                # interval came from the defaults (30 s), so a group with a 10 s lease saw its
                # worker's Lease lapse before the second renewal. Counted from the send, so that a
                # slow answer does not eat into the time before the fence.
                interval = Renewal.of(began, self.settings).renew_interval - (time.monotonic() - began)
                if backoff.failures:
                    log.info("lease.renewed.again", after_failures=backoff.failures)
                backoff.reset()
            except (*CallError, InvalidObject) as exc:
                interval = min(Renewal.of(began, self.settings).renew_interval, backoff.next_delay())
                log.warning("lease.renew.failed", error=type(exc).__name__, detail=str(exc)[:200],
                            retry_in=f"{interval:.2f}")
                self.health.note(f"renewing the Lease failed: {type(exc).__name__}: {str(exc)[:160]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lease_now.wait(), timeout=max(0.0, interval))
            self._lease_now.clear()

    # ---------------------------------------------------------------------------------- fence

    def fenced(self) -> bool:
        """No renewal succeeded recently enough to run jobs (or none yet): claim nothing, run nothing."""
        return self.renewal is None or self.renewal.stopped(time.monotonic())

    def _fence_task(self, task: JobTask, renewal: Renewal) -> None:
        grace = renewal.kill_grace(float(self.settings.job_grace_period_seconds))
        task.fence(renewal.why(time.monotonic()), grace_seconds=grace)

    async def _fence_loop(self) -> None:
        """Stop every job when the last successful renewal is `leaseDuration - margin` old."""
        while True:
            self._renewed.clear()
            renewal = self.renewal
            timeout: float | None = None
            if renewal is not None:
                timeout = renewal.stop_at - time.monotonic()
                if timeout <= 0:
                    timeout = None  # fenced until the next renewal
                    if any(task.fenced is None for task in self.tasks.values()):
                        log.warning("lease.fenced", since_renewal=f"{time.monotonic() - renewal.sent_at:.1f}",
                                    lease_duration=renewal.duration_seconds, margin=f"{renewal.margin_seconds:g}",
                                    stopping=len(self.tasks))
                    if self.tasks:
                        self.health.note(f"could not renew the Lease for {time.monotonic() - renewal.sent_at:.0f}s: "
                                         f"stopped {len(self.tasks)} job(s) (self-fencing)")
                    for task in list(self.tasks.values()):
                        self._fence_task(task, renewal)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renewed.wait(), timeout=timeout)

    # ---------------------------------------------------------------------------------- watch

    def _check_held(self, job: RunbookJob) -> None:
        task = self.tasks.get(job.meta.name)
        if task is None:
            return
        status = job.status
        if status.attempt != task.attempt:
            task.supersede(f"the job is at attempt {status.attempt}")
        elif status.phase.terminal:
            task.supersede(f"the job is {status.phase.value} ({status.reason})")
        elif status.phase is JobPhase.QUEUED or (status.phase.held and job.holder != self.config.worker):
            task.supersede(f"the job is {status.phase.value}, held by {job.holder}")

    async def _on_sync(self, jobs: list[RunbookJob]) -> None:
        names = {job.meta.name for job in jobs}
        for name, task in list(self.tasks.items()):
            if name not in names:
                task.supersede("the job was deleted")
        self.queued = {job.meta.name: job for job in jobs if job.status.phase is JobPhase.QUEUED}
        for job in jobs:
            self._check_held(job)
            if job.holder == self.config.worker and job.meta.name not in self.tasks \
                    and job.meta.name not in self.claiming and job.meta.name not in self.settling:
                await self._orphan(job)
        self._wake_claim.set()

    async def _on_event(self, kind: str, job: RunbookJob) -> None:
        name = job.meta.name
        if kind == "DELETED":
            self.queued.pop(name, None)
            task = self.tasks.get(name)
            if task is not None:
                task.supersede("the job was deleted")
            return
        if job.status.phase is JobPhase.QUEUED and not job.meta.deletion_timestamp:
            self.queued[name] = job
            self._wake_claim.set()
        else:
            self.queued.pop(name, None)
        self._check_held(job)

    async def _orphan(self, job: RunbookJob) -> None:
        """A job this worker holds but does not run (the agent restarted mid-job): end that attempt,
        saying what the start found of its processes (and killed) rather than assuming."""
        key = AttemptKey(job.meta.namespace or self.config.namespace, job.meta.name, job.status.attempt)
        if await asyncio.to_thread(self.spool.has_result, key):
            return  # its result waits in the spool
        phase = job.status.phase
        leftover = self.leftovers.get(key)
        if leftover is not None:
            message = f"the agent restarted while the job ran; on its start it {leftover.describe()}"
        elif phase is JobPhase.RUNNING:
            message = "the agent restarted while the job ran; no process of this attempt was recorded on this server"
        else:
            message = "the agent restarted before the job's process started"
        intent: GiveBackIntent | FinishIntent
        if job.spec.retry_policy.allows(job.status.attempt, RetryOn.WORKER_LOST):
            intent = GiveBackIntent.for_attempt(job.status.attempt, self.config.worker, Reason.WORKER_LOST.value,
                                                message, cause=RetryOn.WORKER_LOST, from_phase=phase)
        else:
            result = JobResult(JobPhase.FAILED, Reason.WORKER_LOST.value, message)
            intent = FinishIntent(job.status.attempt, self.config.worker, result, from_phase=phase)
        target = intent.transition.target
        log.warning("job.orphaned", job=job.meta.name, attempt=job.status.attempt, phase=phase.value,
                    to=target.value)
        await self.delivery.put_result(key, {"patch": intent.to_patch(), "phase": target.value})

    # ---------------------------------------------------------------------------------- claim

    def _can_run(self, job: RunbookJob) -> bool:
        """Pass over a job whose interpreter this server lacks: another worker of the group may have it.
        Pass over a fan-out child pinned to another worker: only that one may claim it (the proxy
        refuses the others), so trying would be a claim storm of refusals.

        (A job queued without the snapshot is claimed, and ends `InterpreterMissing` if need be.)"""
        if job.spec.pinned_worker is not None and job.spec.pinned_worker != self.config.worker:
            return False
        return job.status.interpreter is None or job.status.interpreter in self.interpreters

    async def _claim_loop(self) -> None:
        await self.settings_loaded.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_claim.wait(), timeout=5.0)
            self._wake_claim.clear()
            if self.draining or self.fenced() or self.free <= 0 or self.outdated or not self.configuration.may_claim():
                # A busy agent does not order the queue: in a burst every Queued event wakes this
                # loop, and ordering a thousand jobs (a hash each) at each one cost each of 20
                # agents more CPU than its jobs did (issue 10). A freed slot wakes it again.
                continue
            candidates = sorted(self.queued.values(), key=lambda job: _queue_order(self.client.worker, job))
            for job in candidates:
                if self.free <= 0 or self.draining:
                    break
                name = job.meta.name
                if name in self.tasks or name in self.claiming or name in self.settling \
                        or self.queued.get(name) is not job:
                    continue
                if not self._can_run(job):
                    continue
                if not await self._claim(job):
                    break

    async def _claim(self, job: RunbookJob) -> bool:
        """Try to claim; False if the proxy is unreachable (stop this round)."""
        name = job.meta.name
        self.claiming.add(name)
        try:
            claimed = await self.client.patch_job_status(name, ClaimIntent(job.status.attempt,
                                                                           self.config.worker).to_patch())
        except Invalid:
            log.debug("job.claim.lost", job=name, attempt=job.status.attempt)
            self.queued.pop(name, None)
            return True
        except CallError as exc:
            if is_transient(exc):
                # The patch may have been applied and only its answer lost: then the job is Running
                # in our name, its watch event came while we were claiming (and was passed over),
                # and nothing else would ever run it or end it while our Lease lives.
                log.info("job.claim.deferred", job=name, error=type(exc).__name__)
                self.settling.add(name)  # counted against capacity, not claimed again until settled
                self._spawn(self._settle_claim(name, job.status.attempt), f"settle-claim-{name}")
                return False
            log.warning("job.claim.refused", job=name, code=getattr(exc, "code", None), detail=str(exc)[:200])
            self.health.note(f"the claim of job {name} was refused: {str(exc)[:180]}")
            self.queued.pop(name, None)
            return True
        finally:
            self.claiming.discard(name)
        self.queued.pop(name, None)
        self._start(claimed)
        return True

    def _start(self, claimed: RunbookJob) -> None:
        name = claimed.meta.name
        task = JobTask(claimed, client=self.client, spool=self.spool, settings=lambda: self.settings,
                       interpreters=self.interpreters, work_dir=self.config.work_dir, notify=self.delivery.wake,
                       run_all_as_agent_user=self.config.run_all_jobs_as_agent_user, records=self.records)
        self.tasks[name] = task
        if self.renewal is not None and self.fenced():  # a claim answered after the fence: never run it
            self._fence_task(task, self.renewal)
        handle = asyncio.create_task(self._run_task(task), name=f"job-{name}")
        self._task_handles.add(handle)
        handle.add_done_callback(self._task_handles.discard)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        handle = asyncio.create_task(coro, name=name)
        self._helpers.add(handle)
        handle.add_done_callback(self._helpers.discard)

    async def _settle_claim(self, name: str, attempt: int) -> None:
        """After a claim whose answer was lost: read the job until the proxy answers, and run it if
        the claim did apply (the claim is the start: only this agent holds that attempt, and
        `self.tasks` runs it once)."""
        try:
            await self._settle(name, attempt)
        finally:
            self.settling.discard(name)
            self._wake_claim.set()

    async def _settle(self, name: str, attempt: int) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        while True:
            try:
                job = await self.client.get_job(name)
                break
            except InvalidObject:
                return
            except CallError as exc:
                if not is_transient(exc):
                    return  # 404: deleted; 403: not ours to read any more
                await asyncio.sleep(backoff.next_delay(retry_after(exc)))
        mine = job.holder == self.config.worker and job.status.attempt == attempt
        if not mine or job.status.phase is not JobPhase.RUNNING or name in self.tasks:
            return  # the claim did not apply (or the job moved on): the watch has the rest
        if self.draining:
            # Not started: our Lease lapses when we are gone and the operator requeues the attempt.
            log.info("job.claim.recovered.draining", job=name, attempt=attempt)
            return
        log.info("job.claim.recovered", job=name, attempt=attempt)
        self._start(job)

    async def _run_task(self, task: JobTask) -> None:
        try:
            await task.run()
        finally:
            if self.tasks.get(task.name) is task:
                del self.tasks[task.name]
            self.delivery.wake()
            self._wake_claim.set()

    # -------------------------------------------------------------------------------- lifecycle

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        shutil.rmtree(self.config.work_dir, ignore_errors=True)  # a crash may have left asset files behind
        runner.ensure_work_root(self.config.work_dir)
        # Before the Lease is renewed or a job watched: what a previous life left running is killed
        # first, and `_orphan` then reports each of those attempts with what was found.
        self.leftovers = await asyncio.to_thread(orphans.reap_leftovers, self.records, orphans.ProcessTable())
        log.info("agent.starting", group=self.config.group, worker=self.config.worker,
                 namespace=self.config.namespace, proxy=self.config.proxy_url, spooled=self.spool.pending())
        loops = [asyncio.create_task(coro, name=name) for name, coro in (
            ("heartbeat", self._heartbeat_loop()), ("fence", self._fence_loop()), ("delivery", self.delivery.run()),
            ("watch", self._watch_after_settings()), ("claim", self._claim_loop()),
            ("configuration", self.configuration.run()),
            ("credential", rotation.rotation_loop(self.config, self.client, lambda: self.settings,
                                                  self.settings_loaded)),
        )]
        try:
            await self._stop.wait()
            await self._drain()
        finally:
            for loop in [*loops, *self._helpers]:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loop
        log.info("agent.stopped", undelivered=self.spool.pending())
        return 0

    async def _watch_after_settings(self) -> None:
        await self.settings_loaded.wait()
        log.info("agent.ready", group=self.config.group, worker=self.config.worker, capacity=self.capacity,
                 interpreters=",".join(self._interpreter_names()))
        await self.watcher.run()

    async def _drain(self) -> None:
        self.draining = True
        grace = self.config.shutdown_grace_seconds
        log.info("agent.draining", running=len(self.tasks), grace=grace)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lease.renew(self.client, duration_seconds=self.settings.lease_duration_seconds,
                                               interpreters=self._interpreter_names(), capacity=self.capacity,
                                               draining=True, running_jobs=len(self.tasks), health=self.health,
                                               compliance=self.configuration.report, labels=self.config.labels),
                                   timeout=5.0)
        handles = set(self._task_handles)
        if handles:
            _, pending = await asyncio.wait(handles, timeout=grace)
            if pending:
                log.warning("agent.grace.expired", stopping=len(pending))
                for task in list(self.tasks.values()):
                    task.shutdown()
                await asyncio.wait(pending, timeout=self.settings.job_grace_period_seconds + 10)
        delivered = await self.delivery.drain(within=15.0)
        if not delivered:
            log.warning("agent.spool.left", undelivered=self.spool.pending(),
                        note="delivered on the next start")
