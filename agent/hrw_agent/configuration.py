"""Desired State Configuration of this server: apply the group's WorkerConfiguration, report compliance.

The group names a configuration (`spec.configuration`); the agent applies it when it joins,
whenever its digest changes (the operator publishes the current one in the group's
`status.compliance.digest`, which the heartbeat reads anyway), and tests it again every
`refreshSeconds`. Per resource, in order: run `test`; where it fails and the mode allows (an
apply, or `ApplyAndAutoCorrect`), run `set`, then `test` again. `ApplyOnly` tests nothing after
an apply; `ApplyAndMonitor` reports drift and changes nothing.

Each script runs like a job's (`runner`): its own work dir, parameters as environment and file,
assets as 0600 files, as the group's Run As identity (or the Runbook's, where the group allows
it), with a time limit; its output is captured (bounded), masked with the assets' secret values,
and only its last lines go into the report's message. A Runbook's content must hash to the
digest the operator snapshotted when it validated the configuration, and carry a valid signature
where the group demands signed runbooks (inline scripts cannot be signed: such a group refuses
them). The configuration runs beside jobs, never in one of their slots, so it delays no job.

The result is a `ComplianceReport`, which the heartbeat writes into the Lease; `may_claim` says
whether this worker may claim jobs where the group requires compliance (the proxy enforces it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from hrw_api import (
    ComplianceReport,
    ConfigurationBundle,
    Interpreter,
    Mode,
    ResolvedAsset,
    ResourceState,
    StreamName,
    WorkerGroup,
    WorkerGroupSpec,
    content_digest,
    params,
)
from hrw_api.times import now
from hrw_api.workerconfiguration import (
    DEFAULT_RESOURCE_TIMEOUT_SECONDS,
    ENV_CONFIGURATION_NAME,
    ENV_CONFIGURATION_RESOURCE,
    ENV_CONFIGURATION_STEP,
    ConfigurationRef,
    ConfigurationResource,
    ResourceResult,
    WorkerCompliance,
    bounded_message,
)

from . import identity, runner, signing
from .backoff import Backoff
from .client import CallError, ProxyClient
from .identity import JobIdentity
from .logs import log
from .masking import Masker
from .runner import Execution

CAPTURE_BYTES = 8192  # of each step's output, the end is kept: the last lines say why it failed


class ResourceRefused(Exception):
    """The resource cannot run here; the message goes into the report (state Failed)."""


@dataclasses.dataclass(frozen=True)
class PreparedResource:
    """One resource, checked and resolved, ready to run its steps."""

    name: str
    interpreter_path: str
    test: str
    set: str
    parameters: Mapping[str, object]
    assets: list[ResolvedAsset]
    identity: JobIdentity
    timeout_seconds: int


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    exit_code: int
    text: str
    timed_out: bool = False

    def describe(self, step: str) -> str:
        if self.timed_out:
            return f"{step} timed out"
        last = self.text.strip().splitlines()[-3:]
        return f"{step} exited with code {self.exit_code}" + (": " + " | ".join(last) if last else "")


class ConfigurationApplier:
    def __init__(self, client: ProxyClient, *, interpreters: Mapping[Interpreter, str], work_dir: Path,
                 on_report: Callable[[], None], run_all_as_agent_user: bool = False) -> None:
        self._client = client
        self._interpreters = dict(interpreters)
        self._work_dir = work_dir
        self._on_report = on_report
        self._run_all_as_agent_user = run_all_as_agent_user
        self._group: WorkerGroup | None = None
        self._wake = asyncio.Event()
        self.report: ComplianceReport | None = None
        self._applied: tuple[str, str] | None = None  # (configuration, digest) last applied
        self._applied_at: datetime | None = None
        self._checked_at: float | None = None  # monotonic time of the last run
        self._published_seen: str | None = None  # the group's published digest last acted upon

    # ------------------------------------------------------------------------------ the group

    @property
    def ref(self) -> ConfigurationRef | None:
        return self._group.spec.configuration if self._group is not None else None

    def observe(self, group: WorkerGroup) -> bool:
        """The group as the heartbeat just read it; True when `may_claim` changed."""
        before = self.may_claim()
        old = self.ref
        self._group = group
        new = self.ref
        published = group.compliance.digest if group.compliance is not None else None
        if old != new or (published is not None and published != self._published_seen):
            self._wake.set()
        return before != self.may_claim()

    def may_claim(self) -> bool:
        """False where the group requires compliance and either this agent's own last report is not
        compliant or the group's status does not show it compliant with the current digest (the
        proxy would refuse the claim)."""
        group = self._group
        ref = self.ref
        if group is None or ref is None or not ref.require_compliance:
            return True
        own = self.report  # what this agent found last: fresher than the group's status it reads
        if own is not None and (own.configuration != ref.name or not own.compliant):
            return False
        summary = group.compliance
        entry = summary.worker(self._client.worker) if summary is not None else None
        return summary is not None and entry is not None and summary.digest is not None \
            and summary.configuration == ref.name and entry.state is WorkerCompliance.COMPLIANT \
            and entry.digest == summary.digest

    # ------------------------------------------------------------------------------- the loop

    async def run(self) -> None:
        backoff = Backoff(initial=2.0, maximum=30.0)
        while True:
            delay = self._next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            try:
                await self.run_once()
                backoff.reset()
            except Exception as exc:  # the proxy, or a bug: never the end of the loop (nor of the agent)
                self._published_seen = None  # a change it could not fetch is still a change
                retry = backoff.next_delay()
                level = log.warning if isinstance(exc, CallError) else log.error
                level("configuration.unavailable", error=type(exc).__name__, detail=str(exc)[:300],
                      retry_in=f"{retry:.1f}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=retry)
                self._wake.set()

    def _next_delay(self) -> float | None:
        ref = self.ref
        if ref is None or self._checked_at is None:
            return None if ref is None else 0.0
        return max(0.0, self._checked_at + ref.refresh_seconds - time.monotonic())

    def _published(self) -> str | None:
        group = self._group
        return group.compliance.digest if group is not None and group.compliance is not None else None

    async def run_once(self) -> None:
        """Apply or test, whichever is due (nothing when neither is)."""
        ref, group = self.ref, self._group
        if group is None:
            return
        if ref is None:
            if self.report is not None:
                self.report, self._applied, self._checked_at = None, None, None
                self._on_report()
            return
        published = self._published()
        changed = self._applied is None or self._applied[0] != ref.name \
            or (published is not None and published != self._published_seen and published != self._applied[1])
        due = self._checked_at is None or time.monotonic() >= self._checked_at + ref.refresh_seconds
        self._published_seen = published
        if not changed and not due:
            return
        bundle = await self._client.get_configuration()
        configuration = bundle.configuration
        digest = configuration.status.digest or ""
        apply = self._applied != (configuration.meta.name, digest)
        if not apply and configuration.spec.mode is Mode.APPLY_ONLY:
            self._checked_at = time.monotonic()
            return
        may_set = apply or configuration.spec.mode is Mode.APPLY_AND_AUTO_CORRECT
        settings = group.spec
        log.info("configuration.run", configuration=configuration.meta.name, digest=digest, apply=apply,
                 mode=configuration.spec.mode.value)
        results = []
        for resource in configuration.spec.resources:
            results.append(await self._resource(resource, bundle, settings, may_set=may_set))
        if apply:
            self._applied, self._applied_at = (configuration.meta.name, digest), now()
        self._checked_at = time.monotonic()
        report = ComplianceReport(configuration.meta.name, digest, self._applied_at or now(), now(), tuple(results))
        log.info("configuration.report", configuration=configuration.meta.name, digest=digest,
                 compliant=report.compliant,
                 states=",".join(f"{r.name}={r.state.value}" for r in results))
        self.report = report
        self._on_report()

    # --------------------------------------------------------------------------- a resource

    async def _resource(self, resource: ConfigurationResource, bundle: ConfigurationBundle,
                        settings: WorkerGroupSpec, *, may_set: bool) -> ResourceResult:
        try:
            prepared = await self._prepare(resource, bundle, settings)
        except ResourceRefused as refused:
            return ResourceResult(resource.name, ResourceState.FAILED, bounded_message(str(refused)))
        name = bundle.configuration.meta.name
        masker = Masker.for_assets(prepared.assets)
        grace = float(settings.job_grace_period_seconds)
        first = await self._step(prepared, "test", name, masker, grace)
        if first.exit_code == 0 and not first.timed_out:
            return ResourceResult(resource.name, ResourceState.COMPLIANT)
        if not may_set:
            return ResourceResult(resource.name, ResourceState.DRIFTED, bounded_message(first.describe("test")))
        applied = await self._step(prepared, "set", name, masker, grace)
        if applied.exit_code != 0 or applied.timed_out:
            return ResourceResult(resource.name, ResourceState.FAILED, bounded_message(applied.describe("set")))
        again = await self._step(prepared, "test", name, masker, grace)
        if again.exit_code != 0 or again.timed_out:
            return ResourceResult(resource.name, ResourceState.FAILED,
                                  bounded_message("set exited with code 0 but " + again.describe("the test after it")))
        return ResourceResult(resource.name, ResourceState.CORRECTED,
                              bounded_message(first.describe("test") + "; set corrected it"))

    async def _prepare(self, resource: ConfigurationResource, bundle: ConfigurationBundle,
                       settings: WorkerGroupSpec) -> PreparedResource:
        configuration = bundle.configuration
        run_as = settings.run_as.default
        timeout = resource.timeout_seconds
        if resource.runbook is not None:
            runbook = bundle.runbooks.get(resource.runbook)
            if runbook is None or runbook.spec.content is None:
                raise ResourceRefused(f"the proxy's bundle lacks Runbook {resource.runbook!r}")
            content = runbook.spec.content
            digest = content_digest(content)
            expected = configuration.status.runbook_digests.get(resource.runbook)
            if digest != expected:
                raise ResourceRefused(f"Runbook {resource.runbook!r} content hashes to {digest}, the configuration "
                                      f"was validated for {expected}; not running changed content")
            if settings.require_signed_runbooks:
                problem = signing.verify(digest, runbook.spec.signature, settings.trusted_keys)
                if problem is not None:
                    raise ResourceRefused(problem)
            interpreter = runbook.spec.interpreter
            test_script = set_script = content
            run_as = settings.run_as.identity_for(runbook.spec.run_as)
            refusal = settings.run_as.refusal(run_as)
            if refusal is not None:
                raise ResourceRefused(f"Runbook {resource.runbook!r} asks to run as {run_as}: {refusal}")
            effective, problems = params.check(runbook.spec.parameters, resource.parameters)
            if problems:
                raise ResourceRefused("; ".join(problems))
            parameters: Mapping[str, object] = effective
            asset_names = runbook.spec.assets
            timeout = timeout or runbook.spec.timeout_seconds
        else:
            if settings.require_signed_runbooks:
                raise ResourceRefused("the worker group requires signed runbooks and inline scripts carry no "
                                      "signature: use runbookRef to a signed Runbook")
            assert resource.interpreter is not None and resource.test is not None and resource.set is not None
            interpreter, test_script, set_script = resource.interpreter, resource.test, resource.set
            parameters, asset_names = dict(resource.parameters), resource.assets
        if interpreter not in settings.interpreters:
            raise ResourceRefused(f"interpreter {interpreter.value} is not allowed by the worker group")
        path = self._interpreters.get(interpreter)
        if path is None:
            have = ", ".join(i.value for i in self._interpreters) or "none"
            raise ResourceRefused(f"interpreter {interpreter.value} is not installed on worker "
                                  f"{self._client.worker} (has: {have})")
        missing = [a for a in asset_names if a not in bundle.assets]
        if missing:
            raise ResourceRefused(f"the proxy's bundle lacks Asset {', '.join(missing)}")
        try:
            job_identity = await asyncio.to_thread(identity.resolve, run_as, allow_root=settings.run_as.allow_root,
                                                   worker=self._client.worker,
                                                   run_all_as_agent_user=self._run_all_as_agent_user)
        except identity.IdentityRefused as refused:
            raise ResourceRefused(refused.message) from None
        return PreparedResource(resource.name, path, test_script, set_script, parameters,
                                [bundle.assets[a] for a in asset_names], job_identity,
                                timeout or DEFAULT_RESOURCE_TIMEOUT_SECONDS)

    async def _step(self, prepared: PreparedResource, step: str, configuration: str, masker: Masker,
                    grace: float) -> StepOutcome:
        script = prepared.test if step == "test" else prepared.set
        files = await asyncio.to_thread(
            runner.prepare, self._work_dir, namespace=self._client.namespace,
            job=f"configuration.{prepared.name}.{step}", attempt=1, worker=self._client.worker, script=script,
            parameters=prepared.parameters, assets=prepared.assets, identity=prepared.identity)
        files = dataclasses.replace(files, env={**files.env, ENV_CONFIGURATION_STEP: step,
                                                ENV_CONFIGURATION_NAME: configuration,
                                                ENV_CONFIGURATION_RESOURCE: prepared.name})
        captured = bytearray()

        async def keep(data: bytes, _stream: StreamName) -> None:
            captured.extend(data)
            if len(captured) > CAPTURE_BYTES:
                del captured[:len(captured) - CAPTURE_BYTES]

        try:
            outcome = await runner.run(files, prepared.interpreter_path, keep,
                                       time_limit=float(prepared.timeout_seconds),
                                       execution=Execution(grace_seconds=grace))
        finally:
            await asyncio.to_thread(runner.cleanup, files)
        text = masker.mask(captured.decode("utf-8", errors="replace"))
        code = outcome.exit_code if outcome.exit_code is not None else 255
        code = 128 - code if code < 0 else code
        log.info("configuration.step", resource=prepared.name, step=step, exit_code=code,
                 timed_out=outcome.stopped is not None)
        return StepOutcome(code, text, timed_out=outcome.stopped is not None)
