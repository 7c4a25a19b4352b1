"""A small async Kubernetes REST client on httpx: the only module of hrw_api that talks HTTP.

The operator and the CLI use it against the API server and the proxy upstream with its own
ServiceAccount; the agent uses it against the proxy with its worker credential, because the
proxy speaks the same REST dialect. Failed responses become the `errors` tree once, here.

Where the cloud side's connection comes from (kubeconfig, exec plugins, in-cluster) is
`hrw_api.kubeconfig`'s business, through the `kubernetes` library; `from_environment` and
`from_kubeconfig` hand over to it when called, so the agent, which builds its client from its
own config, never loads that library.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .errors import ApiError, api_error
from .names import GROUP, VERSION
from .patches import JSON_PATCH, MERGE_PATCH

JSON = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """A REST resource: `group` '' is the core API."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


RUNBOOKS = Resource(GROUP, VERSION, "runbooks")
ASSETS = Resource(GROUP, VERSION, "assets")
WORKER_GROUPS = Resource(GROUP, VERSION, "workergroups")
RUNBOOK_JOBS = Resource(GROUP, VERSION, "runbookjobs")
RUNBOOK_SCHEDULES = Resource(GROUP, VERSION, "runbookschedules")
RUNBOOK_WEBHOOKS = Resource(GROUP, VERSION, "runbookwebhooks")
WORKER_CONFIGURATIONS = Resource(GROUP, VERSION, "workerconfigurations")
SECRETS = Resource("", "v1", "secrets")
CONFIG_MAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("events.k8s.io", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


class Credentials(Protocol):
    """Where the `Authorization` header comes from, asked before every request (tokens rotate)."""

    async def authorization(self) -> str | None: ...


class _StaticToken:
    """A bearer token that does not change: the agent's worker credential, a test's token."""

    def __init__(self, token: str | None) -> None:
        self._header = f"Bearer {token}" if token else None

    async def authorization(self) -> str | None:
        return self._header


def ssl_context(*, ca_file: str | None = None, ca_data: bytes | None = None, cert_file: str | None = None,
                key_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """An SSLContext with the CA and optional client certificate (httpx takes it as `verify=`)."""
    ctx = ssl.create_default_context()
    if ca_file or ca_data:
        ctx = ssl.create_default_context(cafile=ca_file, cadata=ca_data.decode() if ca_data else None)
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class KubeClient:
    """Async Kubernetes REST calls. Create one per process; close it with `aclose()` or `async with`."""

    def __init__(self, server: str, *, verify: ssl.SSLContext | bool = True, token: str | None = None,
                 credentials: Credentials | None = None,
                 tls_server_name: str | None = None, proxy: str | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None, user_agent: str = "hrw",
                 limits: httpx.Limits | None = None) -> None:
        self.server = server.rstrip("/")
        # A static `token`, or `credentials` that may fetch a new one (hrw_api.kubeconfig).
        self._credentials: Credentials = credentials or _StaticToken(token)
        # kubeconfig's tls-server-name: the name sent (SNI) and checked in the server's certificate.
        self._extensions: dict[str, Any] = {"sni_hostname": tls_server_name} if tls_server_name else {}
        self._http = httpx.AsyncClient(
            base_url=self.server, verify=verify, timeout=httpx.Timeout(timeout), transport=transport, proxy=proxy,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None,
                        **kwargs: Any) -> KubeClient:
        """A client for a kubeconfig context (default: `$KUBECONFIG`'s, or ~/.kube/config's, current one).

        Needs the `cloud` extra (`hrw_api.kubeconfig`); blocking, as it may run an exec plugin.
        """
        from .kubeconfig import load

        return load(str(path) if path is not None else None, context, in_cluster=False).client(**kwargs)

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, *, context: str | None = None,
                         **kwargs: Any) -> KubeClient:
        """In a Pod its ServiceAccount, unless a kubeconfig or context is named; else the kubeconfig.

        Needs the `cloud` extra (`hrw_api.kubeconfig`); blocking, as it may run an exec plugin.
        """
        from .kubeconfig import load

        return load(kubeconfig, context).client(**kwargs)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------------------------- calls

    async def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        authorization = await self._credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:500] or response.reason_phrase}
        retry_after = response.headers.get("Retry-After", "")
        seconds = float(retry_after) if retry_after.isdigit() else None  # the HTTP-date form is not used by Kubernetes
        raise api_error(response.status_code, body, seconds)

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> JSON:
        content = None if body is None else json.dumps(body).encode()
        response = await self._http.request(
            method, path, params=params, content=content,
            headers=await self._headers(content_type if content is not None else None), extensions=self._extensions,
        )
        self._raise_for(response)
        if not response.content:
            return {}
        result: JSON = response.json()
        return result

    async def get(self, path: str, **params: Any) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def list(self, path: str, **params: Any) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, *, json_patch: bool = False) -> JSON:
        """A merge patch (dict) or, with `json_patch=True`, a JSON Patch (list of operations)."""
        return await self.request("PATCH", path, body=body, content_type=JSON_PATCH if json_patch else MERGE_PATCH)

    async def delete(self, path: str, *, missing_ok: bool = True, **params: Any) -> JSON:
        try:
            return await self.request("DELETE", path, params=params or None)
        except ApiError as exc:
            if missing_ok and exc.code == 404:
                return {}
            raise

    async def watch(self, path: str, *, resource_version: str | None = None, timeout_seconds: int = 300,
                    bookmarks: bool = True, **params: Any) -> AsyncIterator[JSON]:
        """Stream watch events (`{"type": ..., "object": ...}`) until the server ends the watch.

        An `ERROR` event carrying a Status is raised as its ApiError (410 Gone: relist).
        """
        query: dict[str, Any] = {"watch": "true", "timeoutSeconds": timeout_seconds, **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        if bookmarks:
            query["allowWatchBookmarks"] = "true"
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30.0)
        async with self._http.stream("GET", path, params=query, headers=await self._headers(), timeout=timeout,
                                     extensions=self._extensions) as resp:
            if not resp.is_success:
                await resp.aread()
                self._raise_for(resp)
            async for line in resp.aiter_lines():
                if not line.strip():
                    continue
                event: JSON = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise api_error(int(status.get("code") or 500), status)
                yield event
