"""A small async Kubernetes REST client on httpx: the only module of hrw_api that talks HTTP.

The operator and the CLI use it against the API server (kubeconfig or in-cluster
ServiceAccount); the proxy uses it upstream with its own ServiceAccount; the agent uses it
against the proxy with its worker credential, because the proxy speaks the same REST dialect.
Failed responses become the `errors` tree once, here.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from .errors import ApiError, api_error
from .names import GROUP, VERSION
from .patches import JSON_PATCH, MERGE_PATCH

JSON = dict[str, Any]

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


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
SECRETS = Resource("", "v1", "secrets")
CONFIG_MAPS = Resource("", "v1", "configmaps")
EVENTS = Resource("events.k8s.io", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)


class _TokenSource:
    """A bearer token, re-read from its file now and then (projected tokens rotate)."""

    def __init__(self, token: str | None = None, token_file: Path | None = None) -> None:
        self._token = token
        self._file = token_file
        self._read_at = 0.0

    def get(self) -> str | None:
        if self._file is not None and time.monotonic() - self._read_at > 60:
            self._token = self._file.read_text().strip()
            self._read_at = time.monotonic()
        return self._token


def _data_file(data_b64: str, directory: Path) -> str:
    fd, name = tempfile.mkstemp(dir=directory)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64decode(data_b64))
    return name


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
                 token_file: Path | None = None, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None, user_agent: str = "hrw") -> None:
        self.server = server.rstrip("/")
        self._token = _TokenSource(token, token_file)
        self._http = httpx.AsyncClient(
            base_url=self.server, verify=verify, timeout=httpx.Timeout(timeout), transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None,
                        **kwargs: Any) -> KubeClient:
        path = Path(path or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube/config")
        config = yaml.safe_load(path.read_text())
        ctx_name = context or config.get("current-context")
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        users = config.get("users") or []
        user: dict[str, Any] = next((u["user"] for u in users if u["name"] == ctx.get("user")), {}) or {}
        base = path.parent
        tmp = Path(tempfile.mkdtemp(prefix="hrw-kubeconfig-"))

        def file_of(key: str, data_key: str, source: Mapping[str, Any]) -> str | None:
            if source.get(data_key):
                return _data_file(source[data_key], tmp)
            if source.get(key):
                return str(base / source[key])
            return None

        verify = ssl_context(
            ca_file=file_of("certificate-authority", "certificate-authority-data", cluster),
            cert_file=file_of("client-certificate", "client-certificate-data", user),
            key_file=file_of("client-key", "client-key-data", user),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )
        for leftover in tmp.iterdir():  # the SSLContext has loaded them; keep no key on disk
            leftover.unlink()
        tmp.rmdir()
        token_file = Path(base / user["tokenFile"]) if user.get("tokenFile") else None
        return cls(cluster["server"], verify=verify, token=user.get("token"), token_file=token_file, **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> KubeClient:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        verify = ssl_context(ca_file=str(IN_CLUSTER_DIR / "ca.crt"))
        return cls(f"https://{host}:{port}", verify=verify, token_file=IN_CLUSTER_DIR / "token", **kwargs)

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None, **kwargs: Any) -> KubeClient:
        """An explicit kubeconfig, else in-cluster when running in a Pod, else `$KUBECONFIG` / ~/.kube/config."""
        if kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and (IN_CLUSTER_DIR / "token").exists():
            return cls.in_cluster(**kwargs)
        return cls.from_kubeconfig(kubeconfig, **kwargs)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------------------------- calls

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = self._token.get()
        if token:
            headers["Authorization"] = f"Bearer {token}"
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
        retry_after = response.headers.get("Retry-After")
        raise api_error(response.status_code, body, float(retry_after) if retry_after else None)

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> JSON:
        content = None if body is None else json.dumps(body).encode()
        response = await self._http.request(
            method, path, params=params, content=content,
            headers=self._headers(content_type if content is not None else None),
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
        async with self._http.stream("GET", path, params=query, headers=self._headers(), timeout=timeout) as resp:
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
