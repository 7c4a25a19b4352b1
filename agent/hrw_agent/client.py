"""The agent's only door: the hrw API proxy, spoken to as a Kubernetes API with the worker
credential, over TLS verified against the configured CA bundle.

All HTTP goes through `hrw_api.kubeclient.KubeClient`, so failures arrive as the contract's
error tree (`Invalid` for a failed patch `test`, `Gone` for a stale watch, ...). Transport
failures (proxy down, connection reset) surface as `httpx.TransportError`; callers treat both
those and 5xx/429 answers as "try again later" (`is_transient`), waiting at least what the
answer's `Retry-After` asks (`retry_after`). The proxy answers upstream trouble (an apiserver
restarting, its RBAC not ready) with 503 `UpstreamUnavailable`: never a reason to fail a job or
drop a report. Everything else is the proxy's verdict on the request itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from hrw_api import (
    ConfigurationBundle,
    JobBundle,
    OutputChunk,
    RegisterRequest,
    RegisterResponse,
    RunbookJob,
    WorkerGroup,
    WorkerLease,
    versions,
    wire,
)
from hrw_api.errors import ApiError, InvalidObject, TooManyRequests
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, KubeClient, ssl_context
from hrw_api.patches import JsonPatch
from hrw_api.workerconfiguration import configuration_path

from . import __version__
from .config import AgentConfig

CallError = (httpx.HTTPError, ApiError)
"""What a proxy call may raise: catch this tuple, then ask `is_transient`. Keeps httpx in this module."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying later: the proxy is unreachable, overloaded or failing."""
    if isinstance(exc, httpx.TransportError | TooManyRequests):
        return True
    return isinstance(exc, ApiError) and exc.code >= 500


class CredentialHolder:
    """The worker credential every call sends, swapped in place when the agent rotates it
    (`hrw_api.kubeclient.Credentials`: asked before each request)."""

    def __init__(self, credential: str) -> None:
        self.value = credential

    async def authorization(self) -> str | None:
        return f"Bearer {self.value}"


def retry_after(exc: BaseException) -> float | None:
    """The seconds the answer asked the agent to wait before retrying (its `Retry-After`), if any."""
    return exc.retry_after if isinstance(exc, ApiError) else None


def _kube(config: AgentConfig, token: str | None = None, *, credentials: CredentialHolder | None = None,
          timeout: float = 30.0) -> KubeClient:
    verify = ssl_context(ca_file=str(config.ca_file) if config.ca_file else None)
    return KubeClient(config.proxy_url, verify=verify, token=token, credentials=credentials, timeout=timeout,
                      user_agent=versions.user_agent(__version__))


async def register(config: AgentConfig, registration_token: str, request: RegisterRequest) -> RegisterResponse:
    """POST the registration with the group's token; the answer carries the worker credential."""
    async with _kube(config, registration_token) as kube:
        body = await kube.create(wire.register_path(config.namespace, config.group), request.to_dict())
    try:
        return RegisterResponse.parse(body)
    except InvalidObject as exc:
        raise ApiError(502, "BadGateway", f"the proxy's registration answer does not fit: {exc}") from None


@dataclass(frozen=True)
class JobEvent:
    """One event of the job watch, parsed at this edge.

    `job` is None for a bookmark, or for an object that does not fit the contract (then `problem`
    says why and `name` names it, for the log); `resource_version` is where the watch resumes.
    """

    type: str
    resource_version: str
    job: RunbookJob | None = None
    name: str | None = None
    problem: InvalidObject | None = None


def _event(kind: str, obj: Any) -> JobEvent:
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    version = str(metadata.get("resourceVersion") or "")
    if kind == "BOOKMARK":
        return JobEvent(kind, version)
    try:
        return JobEvent(kind, version, RunbookJob.parse(obj if isinstance(obj, dict) else {}))
    except InvalidObject as exc:
        name = metadata.get("name")
        return JobEvent(kind, version, name=name if isinstance(name, str) else None, problem=exc)


class ProxyClient:
    """Typed calls for everything a worker may do."""

    def __init__(self, config: AgentConfig, credential: str, *, kube: KubeClient | None = None) -> None:
        self.namespace = config.namespace
        self.group = config.group
        self.worker = config.worker
        self.credential = CredentialHolder(credential)
        self._kube = kube or _kube(config, credentials=self.credential)

    async def aclose(self) -> None:
        await self._kube.aclose()

    # ----------------------------------------------------------------------------- credential

    async def rotate_credential(self) -> RegisterResponse:
        """A new credential for this worker (the current one keeps working for the group's overlap).

        Does not switch to it: the caller stores it first (rotation.py)."""
        body = await self._kube.create(wire.rotate_path(self.namespace, self.group, self.worker), {})
        try:
            return RegisterResponse.parse(body)
        except InvalidObject as exc:
            raise ApiError(502, "BadGateway", f"the proxy's rotation answer does not fit: {exc}") from None

    # ---------------------------------------------------------------------------------- group

    async def get_group(self) -> WorkerGroup:
        return WorkerGroup.parse(await self._kube.get(wire.group_path(self.namespace, self.group)))

    async def get_configuration(self) -> ConfigurationBundle:
        """The group's WorkerConfiguration with what it runs (runbooks, resolved assets), in one call."""
        body = await self._kube.get(configuration_path(self.namespace, self.group))
        try:
            return ConfigurationBundle.parse(body)
        except InvalidObject as exc:
            raise ApiError(502, "BadGateway", f"the proxy's configuration bundle does not fit: {exc}") from None

    # ----------------------------------------------------------------------------------- jobs

    @property
    def _field_selector(self) -> str:
        return f"spec.workerGroup={self.group}"

    async def list_jobs(self) -> tuple[list[JobEvent], str]:
        """The group's jobs (as `ADDED` events, each parsed or with its problem) and the list's resourceVersion."""
        body = await self._kube.list(RUNBOOK_JOBS.path(self.namespace), fieldSelector=self._field_selector)
        metadata = body.get("metadata")
        version = str(metadata.get("resourceVersion") or "") if isinstance(metadata, dict) else ""
        return [_event("ADDED", item) for item in body.get("items") or []], version

    async def watch_jobs(self, resource_version: str, timeout_seconds: int = 240) -> AsyncIterator[JobEvent]:
        async for event in self._kube.watch(RUNBOOK_JOBS.path(self.namespace), resource_version=resource_version,
                                            timeout_seconds=timeout_seconds, fieldSelector=self._field_selector):
            yield _event(str(event.get("type")), event.get("object"))

    async def get_job(self, name: str) -> RunbookJob:
        return RunbookJob.parse(await self._kube.get(RUNBOOK_JOBS.path(self.namespace, name)))

    async def patch_job_status(self, name: str, patch: JsonPatch) -> RunbookJob:
        body = await self._kube.patch(RUNBOOK_JOBS.path(self.namespace, name, "status"), patch, json_patch=True)
        return RunbookJob.parse(body)

    async def get_bundle(self, job: str, attempt: int) -> JobBundle:
        """What attempt `attempt` of `job` needs to start (runbook content, assets), in one call.

        An answer that does not fit the contract is the proxy's fault: a 502, not a crash."""
        body = await self._kube.get(wire.bundle_path(self.namespace, job),
                                    **{wire.BUNDLE_ATTEMPT_PARAM: str(attempt)})
        try:
            return JobBundle.parse(body)
        except InvalidObject as exc:
            raise ApiError(502, "BadGateway", f"the proxy's bundle of job {job} does not fit: {exc}") from None

    async def post_output(self, job: str, chunk: OutputChunk) -> None:
        await self._kube.create(wire.output_path(self.namespace, job), chunk.to_dict())

    # ---------------------------------------------------------------------------------- lease

    async def renew_lease(self, lease: WorkerLease) -> None:
        """Merge-patch the worker's existing Lease (NotFound: create it)."""
        await self._kube.patch(LEASES.path(self.namespace, lease.name), lease.renewal_patch())

    async def create_lease(self, lease: WorkerLease) -> None:
        await self._kube.create(LEASES.path(self.namespace), lease.to_dict())
