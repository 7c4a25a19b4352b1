"""The proxy's only door to the apiserver: a thin layer over `hrw_api.kubeclient.KubeClient`.

It runs with the proxy's own ServiceAccount (deploy/rbac/proxy.yaml), never with anything the
agent sent, and every Secret or Lease it writes passes writes.py first (what RBAC cannot say).
Failures are mapped once, here, by `upstream_errors`: an answer about the agent's
request passes back as is (e.g. the 422 of a lost claim race, the 404 of a deleted job), and
upstream trouble (an apiserver restarting, failing, unreachable or too slow, its RBAC not yet
ready for the proxy's own account) is a 503 `UpstreamUnavailable` with `Retry-After`, whose
message never carries the apiserver's text; that text goes to the proxy's log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx

from hrw_api import names
from hrw_api.errors import ApiError
from hrw_api.kubeclient import (
    ASSETS,
    CONFIG_MAPS,
    LEASES,
    RUNBOOK_JOBS,
    RUNBOOK_WEBHOOKS,
    RUNBOOKS,
    SECRETS,
    WORKER_CONFIGURATIONS,
    WORKER_GROUPS,
    KubeClient,
)

from . import writes
from .audit import log
from .auth import WorkerIdentity, decode_secret_value
from .credentials import CredentialRecord
from .metrics import Metrics
from .refusals import ProxyError
from .upstream_errors import classify, is_upstream_trouble, unavailable

JSON = dict[str, Any]
T = TypeVar("T")


class Upstream:
    def __init__(self, client: KubeClient, *, timeout: float, metrics: Metrics) -> None:
        self.client = client
        self._timeout = timeout
        self._metrics = metrics
        self._served: set[str] = set()  # namespaces whose Secrets this process has read

    def _failed(self, exc: ApiError) -> ProxyError:
        """The answer for an apiserver `Status` failure; upstream trouble is counted and logged here."""
        if is_upstream_trouble(exc):
            self._metrics.upstream_errors.labels(f"status-{exc.code}").inc()
            log.warning("upstream.unavailable", code=exc.code, reason=exc.reason, detail=exc.message[:300])
        return classify(exc)

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await self._send(call)
        except ApiError as exc:
            raise self._failed(exc) from None

    async def _send(self, call: Awaitable[T]) -> T:
        """The call, its transport failures mapped; an apiserver `Status` failure raised as its ApiError."""
        try:
            return await asyncio.wait_for(call, self._timeout)
        except (TimeoutError, httpx.TimeoutException):
            self._metrics.upstream_errors.labels("timeout").inc()
            raise unavailable(f"it did not answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            self._metrics.upstream_errors.labels("unreachable").inc()
            raise unavailable(f"it is unreachable: {type(exc).__name__}") from None

    async def _get_or_none(self, path: str) -> JSON | None:
        try:
            return await self._call(self.client.get(path))
        except ProxyError as exc:
            if exc.code == 404:
                return None
            raise

    # ------------------------------------------------------------------------------- readiness

    async def ready(self) -> bool:
        try:
            await self._call(self.client.get("/version"))
        except ProxyError:
            return False
        return True

    # --------------------------------------------------------------------------- credentials

    async def _credential_secret(self, namespace: str, name: str) -> JSON | None:
        """A Secret that proves who a caller is, or None when there is none we may read.

        A 403 in a namespace whose Secrets this process has never read means the proxy does not
        serve that namespace (its Roles are granted only in the namespaces that hold hrw objects):
        to the caller that is an unknown credential, answered 401 like any other, never the
        apiserver's message naming the proxy's ServiceAccount. In a namespace it has served, the
        same 403 is an apiserver whose RBAC is not ready yet (a restart): upstream trouble, 503.
        """
        try:
            secret = await self._send(self.client.get(SECRETS.path(namespace, name)))
        except ApiError as exc:
            if exc.code == 403 and namespace not in self._served:
                return None
            if exc.code == 404 and not is_upstream_trouble(exc):
                self._served.add(namespace)
                return None
            raise self._failed(exc) from None
        self._served.add(namespace)
        return secret

    async def registration_token(self, namespace: str, group: str) -> str | None:
        secret = await self._credential_secret(namespace, names.registration_secret_name(group))
        return None if secret is None else decode_secret_value(secret, names.REGISTRATION_TOKEN_KEY)

    async def issued_token(self, namespace: str, group: str, token_id: str) -> JSON | None:
        """The Secret of a token `hrw get-token --ttl` issued, or None."""
        return await self._credential_secret(namespace, names.issued_token_secret_name(group, token_id))

    async def spend_issued_token(self, namespace: str, group: str, token_id: str, patch: JSON) -> None:
        """Merge-patch an issued token's Secret (its use count; a 409 when it changed since read)."""
        name = names.issued_token_secret_name(group, token_id)
        writes.check_secret_write("patch", namespace, name, patch)
        await self._call(self.client.patch(SECRETS.path(namespace, name), patch))

    async def worker_record(self, identity: WorkerIdentity) -> CredentialRecord | None:
        secret = await self._credential_secret(identity.namespace,
                                               names.worker_secret_name(identity.group, identity.worker))
        return None if secret is None else CredentialRecord.from_secret(secret)

    async def rotate_worker_secret(self, identity: WorkerIdentity, record: CredentialRecord) -> None:
        """Store a rotated record, only over the one it was computed from (409 when it changed)."""
        name = names.worker_secret_name(identity.group, identity.worker)
        patch = {"metadata": {"resourceVersion": record.resource_version}, "data": record.secret_data()}
        writes.check_secret_write("patch", identity.namespace, name, patch)
        await self._call(self.client.patch(SECRETS.path(identity.namespace, name), patch))

    async def store_worker_secret(self, secret: JSON) -> None:
        """Create the worker's record, or replace it (re-registration: no previous credential) if it exists.

        `data` values of None are keys the record does not have (dropped on create, deleted by the patch)."""
        meta = secret["metadata"]
        created = {**secret, "data": {key: value for key, value in secret["data"].items() if value is not None}}
        writes.check_secret_write("create", meta["namespace"], meta["name"], created)
        try:
            await self._call(self.client.create(SECRETS.path(meta["namespace"]), created))
        except ProxyError as exc:
            if exc.code != 409:
                raise
            patch = {"metadata": {"labels": meta["labels"], "annotations": meta.get("annotations", {}),
                                  "ownerReferences": meta["ownerReferences"]},
                     "data": secret["data"]}
            writes.check_secret_write("patch", meta["namespace"], meta["name"], patch)
            await self._call(self.client.patch(SECRETS.path(meta["namespace"], meta["name"]), patch))

    # ------------------------------------------------------------------------------ hrw kinds

    async def get_group(self, namespace: str, group: str) -> JSON:
        return await self._call(self.client.get(WORKER_GROUPS.path(namespace, group)))

    async def get_job(self, namespace: str, job: str) -> JSON:
        return await self._call(self.client.get(RUNBOOK_JOBS.path(namespace, job)))

    async def list_jobs(self, namespace: str, params: dict[str, str]) -> JSON:
        return await self._call(self.client.list(RUNBOOK_JOBS.path(namespace), **params))

    async def watch_jobs(self, namespace: str, params: dict[str, str]) -> AsyncIterator[JSON]:
        """Watch events as they arrive. Errors (also an upstream ERROR event) raise ProxyError."""
        query = dict(params)
        query.pop("watch", None)
        resource_version = query.pop("resourceVersion", None)
        timeout_seconds = int(query.pop("timeoutSeconds"))
        bookmarks = query.pop("allowWatchBookmarks", "false").lower() in {"true", "1"}
        stream: AsyncGenerator[JSON, None] = self.client.watch(  # type: ignore[assignment]
            RUNBOOK_JOBS.path(namespace), resource_version=resource_version, timeout_seconds=timeout_seconds,
            bookmarks=bookmarks, **query)
        try:
            while True:
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    return
                except ApiError as exc:
                    raise self._failed(exc) from None
                except httpx.HTTPError as exc:
                    self._metrics.upstream_errors.labels("watch").inc()
                    raise unavailable(f"the watch broke: {type(exc).__name__}") from None
                yield event
        finally:
            await stream.aclose()

    async def patch_job_status(self, namespace: str, job: str, patch: list[Any]) -> JSON:
        return await self._call(self.client.patch(RUNBOOK_JOBS.path(namespace, job, "status"), patch,
                                                  json_patch=True))

    async def get_runbook(self, namespace: str, name: str) -> JSON:
        return await self._call(self.client.get(RUNBOOKS.path(namespace, name)))

    async def find_runbook(self, namespace: str, name: str) -> JSON | None:
        return await self._get_or_none(RUNBOOKS.path(namespace, name))

    async def find_webhook(self, namespace: str, name: str) -> JSON | None:
        """A RunbookWebhook, or None when there is none the proxy may read, so that a caller cannot
        tell a foreign namespace (a 403 where this process has never served) from a missing webhook;
        in a namespace it serves, a 403 is upstream trouble (503), as for credentials."""
        try:
            return await self._send(self.client.get(RUNBOOK_WEBHOOKS.path(namespace, name)))
        except ApiError as exc:
            if exc.code == 403 and namespace not in self._served:
                return None
            if exc.code == 404 and not is_upstream_trouble(exc):
                return None
            raise self._failed(exc) from None

    async def create_job(self, namespace: str, job: JSON) -> JSON:
        """Create a RunbookJob (a webhook's call); the only spec the proxy ever writes."""
        return await self._call(self.client.create(RUNBOOK_JOBS.path(namespace), job))

    async def get_configuration(self, namespace: str, name: str) -> JSON:
        return await self._call(self.client.get(WORKER_CONFIGURATIONS.path(namespace, name)))

    async def get_asset(self, namespace: str, name: str) -> JSON | None:
        return await self._get_or_none(ASSETS.path(namespace, name))

    async def get_secret(self, namespace: str, name: str) -> JSON | None:
        return await self._get_or_none(SECRETS.path(namespace, name))

    async def get_lease(self, namespace: str, name: str) -> JSON | None:
        return await self._get_or_none(LEASES.path(namespace, name))

    async def get_configmap(self, namespace: str, name: str) -> JSON | None:
        return await self._get_or_none(CONFIG_MAPS.path(namespace, name))

    async def create_configmap(self, configmap: JSON) -> bool:
        """Create it; False if one of that name exists already (an idempotent re-send)."""
        try:
            await self._call(self.client.create(CONFIG_MAPS.path(configmap["metadata"]["namespace"]), configmap))
        except ProxyError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    # ---------------------------------------------------------------------------------- leases

    async def lease(self, method: str, namespace: str, name: str | None, body: JSON | None = None) -> JSON:
        """A worker's Lease: GET, or a write (POST, PUT, merge PATCH) that writes.py allows."""
        if method == "GET":
            return await self._call(self.client.get(LEASES.path(namespace, name)))
        writes.check_lease_write({"POST": "create", "PUT": "update"}.get(method, "patch"), namespace, name,
                                 body or {})
        if method == "POST":
            assert body is not None
            return await self._call(self.client.create(LEASES.path(namespace), body))
        if method == "PUT":
            assert body is not None
            return await self._call(self.client.replace(LEASES.path(namespace, name), body))
        return await self._call(self.client.patch(LEASES.path(namespace, name), body))

