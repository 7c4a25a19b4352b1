"""One claimed attempt of one job, from the claim to the spooled result.

Checks before anything runs: the runbook content hashes to the job's `runbookDigest` (the job
runs exactly what was queued), its signature verifies when the group demands signed runbooks,
and its interpreter is present here and allowed by the group. The claim already made the job
`Running` (the claim is the start); the runbook and the assets come in one call after it (the
proxy's job bundle). Then the process, the output, and the result: written to the spool first,
delivered by `Delivery`. A job that cannot start ends `Failed` with the reason.

A job whose attempt was superseded (the operator requeued it, cancelled it, timed it out, or
deleted it) is stopped and its reports are dropped: they would be stale, and the proxy would
refuse them anyway.

A job the agent fences (it could not renew its Lease in time, see `fencing`) is stopped and
given back as `WorkerLost` where its retry policy allows it, failed otherwise, with a message
saying why; the report waits in the spool until the proxy can be reached. While the process
runs, its process group is recorded under the state dir (see `orphans`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from hrw_api import (
    FinishIntent,
    GiveBackIntent,
    Interpreter,
    JobResult,
    OutputSummary,
    ResolvedAsset,
    RetryOn,
    Runbook,
    RunbookJob,
    WorkerGroupSpec,
    content_digest,
)
from hrw_api.errors import ApiError
from hrw_api.params import check
from hrw_api.phases import JobPhase, Reason

from . import identity, orphans, runner, signing
from .backoff import Backoff
from .client import CallError, ProxyClient, is_transient, retry_after
from .identity import JobIdentity
from .logs import log
from .masking import Masker
from .output import OutputStream
from .runner import Execution, StopReason
from .spool import AttemptKey, Spool

T = TypeVar("T")


class Abandoned(Exception):
    """The attempt is no longer ours (superseded, cancelled, deleted): report nothing."""


class Fenced(Exception):
    """The agent fenced the attempt before its process started: give it back, call nothing more."""


class SetupFailed(Exception):
    """The job cannot start; `reason` and the message go into its status."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def exit_code_of(returncode: int | None) -> int:
    """A shell-style exit code: a process killed by signal N reports 128 + N."""
    if returncode is None:
        return 255
    return 128 - returncode if returncode < 0 else returncode


class JobTask:
    def __init__(self, job: RunbookJob, *, client: ProxyClient, spool: Spool, settings: Callable[[], WorkerGroupSpec],
                 interpreters: Mapping[Interpreter, str], work_dir: Any, notify: Callable[[], None],
                 run_all_as_agent_user: bool = False, records: orphans.ProcessRecords | None = None) -> None:
        self.job = job
        self.name = job.meta.name
        self.attempt = job.status.attempt
        self.key = AttemptKey(job.meta.namespace or client.namespace, self.name, self.attempt)
        self._client = client
        self._spool = spool
        self._settings = settings
        self._interpreters = interpreters
        self._work_dir = work_dir
        self._run_all_as_agent_user = run_all_as_agent_user
        self._notify = notify
        self._records = records
        self.fenced: str | None = None  # why, once the agent fenced the attempt
        self.execution = Execution(grace_seconds=float(settings().job_grace_period_seconds))
        self.superseded = False
        self.reported = False
        self.phase = job.status.phase  # Running: the claim is the start

    @property
    def worker(self) -> str:
        return self._client.worker

    def supersede(self, why: str) -> None:
        """The attempt moved on without us: stop the process, drop its reports."""
        if self.reported or self.superseded:
            return
        self.superseded = True
        log.info("job.superseded", job=self.name, attempt=self.attempt, why=why)
        self.execution.stop(StopReason.CANCELLED)

    def fence(self, why: str, *, grace_seconds: float) -> None:
        """The agent could not renew its Lease in time: stop the process now (SIGTERM, SIGKILL after
        `grace_seconds`), then give the attempt back saying `why`."""
        if self.reported or self.superseded or self.fenced is not None:
            return
        self.fenced = why
        log.warning("job.fenced", job=self.name, attempt=self.attempt, grace=f"{grace_seconds:g}")
        self.execution.stop(StopReason.FENCED, grace_seconds=grace_seconds)

    def shutdown(self) -> None:
        """The agent is stopping and the grace period is over."""
        self.execution.stop(StopReason.SHUTDOWN)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry `call` through proxy outages until it answers, or the attempt is abandoned or fenced.

        A 401 is retried too: the proxy does not know the credential right now (it restarted beside an
        apiserver that is not ready); a worker really revoked cannot renew its Lease either, and the
        fence ends the attempt."""
        backoff = Backoff(initial=0.5, maximum=10.0)
        while True:
            if self.superseded:
                raise Abandoned()
            if self.fenced is not None:
                raise Fenced()
            try:
                return await call()
            except CallError as exc:
                if not is_transient(exc) and not (isinstance(exc, ApiError) and exc.code == 401):
                    raise
                delay = backoff.next_delay(retry_after(exc))
                log.info("job.call.retry", job=self.name, attempt=self.attempt, call=what, error=type(exc).__name__,
                         retry_in=f"{delay:.2f}")
                await asyncio.sleep(delay)

    async def _still_held(self) -> bool:
        """Does the job, read now, still show this attempt held by this worker? (A refusal is checked
        against the job before the attempt is failed for it: the attempt may simply have moved on.)"""
        try:
            job = await self._call("get-job", lambda: self._client.get_job(self.name))
        except ApiError:
            return False  # 404: deleted; 403: not this worker's to read any more
        status = job.status
        return status.attempt == self.attempt and not status.phase.terminal and job.holder == self.worker

    async def run(self) -> None:
        try:
            await self._run()
        except Abandoned:
            await asyncio.to_thread(self._spool.drop, self.key)
            log.info("job.abandoned", job=self.name, attempt=self.attempt)
        except Fenced:
            with contextlib.suppress(Abandoned):
                await self._give_up(self.fenced or "the agent fenced the job")
        except Exception as exc:  # a bug must not take the agent down, and the job must still end
            log.error("job.crashed", job=self.name, attempt=self.attempt, error=repr(exc)[:300])
            if not self.reported and not self.superseded:
                # The status says what failed, not the agent's internals; its log has the details.
                await self._report_setup_failure(SetupFailed(
                    Reason.SETUP_FAILED, f"the agent on worker {self.worker} failed to run the job "
                                         f"({type(exc).__name__}); its log says more"))
        finally:
            self._notify()

    async def _identity(self) -> JobIdentity:
        """The job's snapshotted Run As identity, resolved on this server (before anything runs)."""
        settings = self._settings()
        run_as = self.job.status.run_as or settings.run_as.default  # an older operator snapshotted none
        try:
            return await asyncio.to_thread(identity.resolve, run_as, allow_root=settings.run_as.allow_root,
                                           worker=self.worker, run_all_as_agent_user=self._run_all_as_agent_user)
        except identity.IdentityRefused as refused:
            raise SetupFailed(refused.reason, refused.message) from None

    async def _prepare(self) -> tuple[Runbook, str, str, list[ResolvedAsset]]:
        settings = self._settings()
        try:
            bundle = await self._call("get-bundle", lambda: self._client.get_bundle(self.name, self.attempt))
        except ApiError as exc:
            if exc.code in (403, 404) and not await self._still_held():
                raise Abandoned() from None
            # The proxy's own verdict (never the apiserver's text: upstream trouble is a 503, retried above).
            raise SetupFailed(Reason.SETUP_FAILED, f"cannot read the job's runbook {self.job.spec.runbook!r} and "
                                                   f"assets: {exc.message}") from None
        runbook = bundle.runbook
        content = runbook.spec.content
        if content is None:
            raise SetupFailed(Reason.SETUP_FAILED, "the proxy returned the runbook without its content")
        digest = content_digest(content)
        if digest != self.job.status.runbook_digest:
            raise SetupFailed(Reason.DIGEST_MISMATCH,
                              f"runbook content hashes to {digest}, the job was queued for "
                              f"{self.job.status.runbook_digest}; not running changed content")
        if settings.require_signed_runbooks:
            problem = signing.verify(digest, runbook.spec.signature, settings.trusted_keys)
            if problem is not None:
                raise SetupFailed(Reason.SIGNATURE_INVALID, problem)
        interpreter = runbook.spec.interpreter
        if interpreter not in settings.interpreters:
            raise SetupFailed(Reason.INTERPRETER_MISSING,
                              f"interpreter {interpreter.value} is not allowed by worker group "
                              f"{self.job.spec.worker_group}")
        path = self._interpreters.get(interpreter)
        if path is None:
            have = ", ".join(i.value for i in self._interpreters) or "none"
            raise SetupFailed(Reason.INTERPRETER_MISSING,
                              f"interpreter {interpreter.value} is not installed on worker {self.worker} (has: {have})")
        return runbook, content, path, list(bundle.assets)

    def _gives_back(self, stopped: StopReason | None, code: int) -> bool:
        """Does this attempt end by going back to the queue (no finish patch to carry its output)?"""
        policy = self.job.spec.retry_policy
        if stopped in (StopReason.SHUTDOWN, StopReason.FENCED):  # both end in `_give_up`
            return policy.allows(self.attempt, RetryOn.WORKER_LOST)
        return stopped is not StopReason.TIMEOUT and code != 0 and policy.allows(self.attempt, RetryOn.FAILED)

    async def _report_setup_failure(self, failure: SetupFailed) -> None:
        log.warning("job.setup.failed", job=self.name, attempt=self.attempt, reason=failure.reason)
        result = JobResult(phase=JobPhase.FAILED, reason=failure.reason.value, message=failure.message)
        await self._spool_result(FinishIntent(self.attempt, self.worker, result, from_phase=self.phase))

    async def _spool_result(self, intent: FinishIntent | GiveBackIntent) -> None:
        """The attempt's last word, written to the spool as its patch (delivered by `Delivery`)."""
        if self.superseded:
            raise Abandoned()
        body = {"patch": intent.to_patch(), "phase": intent.transition.target.value}
        await asyncio.to_thread(self._spool.put_result, self.key, body)
        self.reported = True
        self._notify()

    async def _give_up(self, message: str, *, exit_code: int | None = None, outputs: Mapping[str, str] | None = None,
                       summary: OutputSummary | None = None) -> None:
        """The attempt ends for the worker's sake, not the script's: back to the queue as `WorkerLost`
        where the retry policy allows it, failed `WorkerLost` otherwise."""
        if self.job.spec.retry_policy.allows(self.attempt, RetryOn.WORKER_LOST):
            await self._spool_result(GiveBackIntent.for_attempt(
                self.attempt, self.worker, Reason.WORKER_LOST.value, message, exit_code=exit_code,
                cause=RetryOn.WORKER_LOST, from_phase=self.phase))
            log.info("job.finished", job=self.name, attempt=self.attempt, phase="Queued", reason="Requeued")
            return
        result = JobResult(JobPhase.FAILED, Reason.WORKER_LOST.value, message, exit_code=exit_code,
                           outputs=outputs, output=summary)
        await self._spool_result(FinishIntent(self.attempt, self.worker, result, from_phase=self.phase))
        log.info("job.finished", job=self.name, attempt=self.attempt, phase=result.phase.value, reason=result.reason)

    async def _record_process(self, pid: int) -> None:
        """Write down the job's process group, for the agent's next start should this one die."""
        if self._records is None:
            return
        records = self._records

        def write() -> None:
            record = orphans.record_for(self.key, pid, self.execution.grace_seconds, orphans.ProcessTable())
            if record is not None:
                records.put(record)

        await asyncio.to_thread(write)

    async def _forget_process(self) -> None:
        if self._records is not None:
            await asyncio.to_thread(self._records.remove, self.key)

    async def _run(self) -> None:
        log.info("job.claimed", job=self.name, attempt=self.attempt, runbook=self.job.spec.runbook)
        try:
            runbook, content, interpreter_path, assets = await self._prepare()
            job_identity = await self._identity()
        except SetupFailed as failure:
            await self._report_setup_failure(failure)
            return
        effective, problems = check(runbook.spec.parameters, self.job.spec.parameters)
        parameters = effective if not problems else dict(self.job.spec.parameters)
        masker = Masker.for_assets(assets)
        settings = self._settings()
        self.execution.grace_seconds = float(settings.job_grace_period_seconds)
        output = OutputStream(self._spool, self.key, masker, self._notify, limit_bytes=settings.output_limit_bytes)
        timeout = self.job.spec.timeout_seconds or runbook.spec.timeout_seconds
        files = await asyncio.to_thread(
            runner.prepare, self._work_dir, namespace=self.key.namespace, job=self.name, attempt=self.attempt,
            worker=self.worker, script=content, parameters=parameters, assets=assets, identity=job_identity)
        ticker = asyncio.create_task(output.ticker())
        try:
            log.info("job.started", job=self.name, attempt=self.attempt, interpreter=runbook.spec.interpreter.value,
                     timeout=timeout, run_as=job_identity.user)
            try:
                outcome = await runner.run(files, interpreter_path, output.feed,
                                           time_limit=float(timeout) if timeout else None, execution=self.execution,
                                           on_spawn=self._record_process)
            finally:
                await self._forget_process()  # the run ends only when the group is killed
            code = exit_code_of(outcome.exit_code)
            summary = await output.close(inline=not self._gives_back(outcome.stopped, code))
            outputs = {masker.mask(k): masker.mask(v) for k, v in runner.read_outputs(
                files.outputs, owner_uid=job_identity.uid).items()}
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await asyncio.to_thread(runner.cleanup, files)
        if self.superseded:
            raise Abandoned()
        policy = self.job.spec.retry_policy
        if outcome.stopped is StopReason.TIMEOUT:
            result = JobResult(JobPhase.TIMED_OUT, Reason.TIMEOUT.value,
                               f"the script ran longer than {timeout}s and was stopped",
                               exit_code=code, outputs=outputs, output=summary)
        elif outcome.stopped is StopReason.SHUTDOWN:
            await self._give_up("the agent shut down before the script finished", exit_code=code, outputs=outputs,
                                summary=summary)
            return
        elif outcome.stopped is StopReason.FENCED:
            await self._give_up(self.fenced or "the agent fenced the job",
                                exit_code=code if outcome.exit_code is not None else None,
                                outputs=outputs, summary=summary)
            return
        elif code == 0:
            result = JobResult(JobPhase.SUCCEEDED, Reason.COMPLETED.value, "the script exited with code 0",
                               exit_code=0, outputs=outputs, output=summary)
        else:
            message = f"the script exited with code {code}"
            if policy.allows(self.attempt, RetryOn.FAILED):
                await self._spool_result(GiveBackIntent.for_attempt(
                    self.attempt, self.worker, Reason.NON_ZERO_EXIT.value, message, exit_code=code))
                log.info("job.finished", job=self.name, attempt=self.attempt, phase="Queued", reason="Retrying",
                         exit_code=code)
                return
            result = JobResult(JobPhase.FAILED, Reason.NON_ZERO_EXIT.value, message, exit_code=code,
                               outputs=outputs, output=summary)
        await self._spool_result(FinishIntent(self.attempt, self.worker, result))
        log.info("job.finished", job=self.name, attempt=self.attempt, phase=result.phase.value, reason=result.reason,
                 exit_code=code, bytes=summary.bytes, chunks=summary.chunks, seconds=f"{outcome.duration:.2f}")
