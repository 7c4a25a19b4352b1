"""How the cloud side finds its cluster: a kubeconfig or the Pod's ServiceAccount, read by the `kubernetes` library.

The CLI, the operator (its own client and kopf's login) and the proxy all come through here, so
they reach every cluster `kubectl` reaches: a `KUBECONFIG` list merged the way kubectl merges it,
`--context`, paths relative to the file that names them, `exec` credential plugins (AKS kubelogin,
`aws eks get-token`, GKE's auth plugin; their tokens are fetched again when they expire),
`proxy-url` and `tls-server-name`. The `kubernetes` library does the reading; this module turns
its `Configuration` into what hrw's own small httpx `KubeClient` and kopf take, and says what went
wrong in one line (`KubeconfigError`).

It needs the `cloud` extra. The agent reaches only the proxy, with its own config, and never
imports this module (`tests/unit/test_layers.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes.client import Configuration
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger

from .kubeclient import KubeClient, ssl_context

__all__ = [
    "IN_CLUSTER_DIR", "ClusterConfig", "KubeconfigError", "LibraryCredentials", "context_namespace", "load",
    "running_in_cluster",
]

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where a Pod finds its ServiceAccount's token, the cluster's CA and its namespace."""

REFRESH_CHECK_SECONDS = 10.0
"""How often a request may ask the library whether the token needs fetching again. The library
fetches it again only when it expires within five minutes (an exec plugin's
`expirationTimestamp`) or, in a Pod, every minute from the projected token file."""


class KubeconfigError(Exception):
    """No usable cluster configuration: the message says which file, context or plugin, in one line."""


class LibraryCredentials:
    """The `Authorization` header of a loaded `Configuration`, fetched again by the library when due.

    The library's refresh hook may run an exec plugin (a subprocess), so `authorization()` runs it
    in a thread, at most every `REFRESH_CHECK_SECONDS`, and one caller at a time.
    """

    def __init__(self, configuration: Configuration, loader: KubeConfigLoader | None = None) -> None:
        self._configuration = configuration
        self._loader = loader
        self._header: str | None = self.authorization_now()
        self._checked_at = time.monotonic()
        self._lock = asyncio.Lock()

    def authorization_now(self) -> str | None:
        """The header value now (blocking: may run an exec plugin; for threads and start-up)."""
        value = self._configuration.get_api_key_with_prefix("BearerToken")
        self._header = value.strip() if value else None
        return self._header

    @property
    def header(self) -> str | None:
        """The header value last fetched (no refresh)."""
        return self._header

    @property
    def expiry(self) -> datetime | None:
        """When an exec plugin said its token expires, if it did."""
        expiry = getattr(self._loader, "expiry", None)
        return expiry if isinstance(expiry, datetime) else None

    async def authorization(self) -> str | None:
        if self._configuration.refresh_api_key_hook is None:
            return self._header
        if time.monotonic() - self._checked_at < REFRESH_CHECK_SECONDS:
            return self._header
        async with self._lock:
            if time.monotonic() - self._checked_at >= REFRESH_CHECK_SECONDS:
                await asyncio.to_thread(self.authorization_now)
                self._checked_at = time.monotonic()
        return self._header


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster connection, loaded once: where, how to trust it, who we are."""

    server: str
    verify: ssl.SSLContext
    """The CA (or none, with `insecure-skip-tls-verify`) and the client certificate, if any."""
    credentials: LibraryCredentials
    namespace: str
    """The context's namespace (in a Pod: the Pod's), else `default`."""
    context: str | None = None
    """The kubeconfig context used; None in a Pod."""
    tls_server_name: str | None = None
    proxy: str | None = None
    insecure: bool = False
    ca_pem: bytes | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    """PEM copies for kopf, which builds its own SSL context (the library's temporary files are gone)."""

    def client(self, **kwargs: Any) -> KubeClient:
        """hrw's httpx `KubeClient` for this cluster (`timeout`, `user_agent`, `transport` pass through)."""
        return KubeClient(self.server, verify=self.verify, credentials=self.credentials,
                          tls_server_name=self.tls_server_name, proxy=self.proxy, **kwargs)


def running_in_cluster(kubeconfig: str | None = None, context: str | None = None, *,
                       environ: Mapping[str, str] = os.environ, in_cluster_dir: Path = IN_CLUSTER_DIR) -> bool:
    """In a Pod with a ServiceAccount token, and no kubeconfig or context asked for explicitly."""
    return (kubeconfig is None and context is None and bool(environ.get("KUBERNETES_SERVICE_HOST"))
            and (in_cluster_dir / "token").exists())


def _kubeconfig_paths(kubeconfig: str | None, environ: Mapping[str, str]) -> str:
    """What kubectl reads: `--kubeconfig`, else every file of `$KUBECONFIG` merged, else ~/.kube/config."""
    return kubeconfig or environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def _plain(node: Any) -> Any:
    """The value under the library's `ConfigNode` wrapper (which remembers the file it came from)."""
    return node.value if isinstance(node, ConfigNode) else node


def _loader(kubeconfig: str | None, context: str | None, environ: Mapping[str, str],
            temp_dir: str | None = None) -> KubeConfigLoader:
    paths = _kubeconfig_paths(kubeconfig, environ)
    if kubeconfig is not None and not Path(kubeconfig).expanduser().is_file():
        raise KubeconfigError(f"kubeconfig {kubeconfig} does not exist")
    try:
        merged = KubeConfigMerger(paths)
    except (OSError, ValueError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {paths}: {exc}") from None
    if merged.config is None:
        raise KubeconfigError(f"no kubeconfig found in {paths} (set --kubeconfig or KUBECONFIG)")
    config = _plain(merged.config)
    names = [str(_plain(each).get("name")) for each in config.get("contexts") or []]
    # kubectl: the first file that sets a current-context wins (the library would take the last).
    current = next((each["current-context"] for each in merged.config_files.values()
                    if isinstance(each, dict) and each.get("current-context")), None)
    if context is None and not current:
        raise KubeconfigError(f"kubeconfig {paths} sets no current-context; choose one with --context "
                              f"({', '.join(names) or 'it has none'})")
    wanted = context or current
    if wanted not in names:
        raise KubeconfigError(f"context {wanted!r} not found in kubeconfig {paths} "
                              f"(contexts: {', '.join(names) or 'none'})")
    try:
        return KubeConfigLoader(config_dict=merged.config, active_context=wanted, config_base_path=None,
                                temp_file_path=temp_dir)
    except ConfigException as exc:
        raise KubeconfigError(f"kubeconfig {paths}, context {wanted!r}: {exc}") from None


def context_namespace(kubeconfig: str | None = None, context: str | None = None, *,
                      environ: Mapping[str, str] = os.environ, in_cluster_dir: Path = IN_CLUSTER_DIR) -> str:
    """The namespace commands default to, without logging in (no exec plugin runs): the context's,
    in a Pod the Pod's, else `default`. An unknown context or a missing file is a KubeconfigError."""
    if running_in_cluster(kubeconfig, context, environ=environ, in_cluster_dir=in_cluster_dir):
        namespace_file = in_cluster_dir / "namespace"
        return namespace_file.read_text().strip() if namespace_file.exists() else "default"
    loader = _loader(kubeconfig, context, environ)
    return str((loader.current_context.get("context") or {}).get("namespace") or "default")


@contextmanager
def _library_errors() -> Iterator[list[str]]:
    """The library logs (rather than raises) a failing exec plugin; collect what it says."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def load(kubeconfig: str | None = None, context: str | None = None, *, in_cluster: bool = True,
         environ: Mapping[str, str] = os.environ, in_cluster_dir: Path = IN_CLUSTER_DIR) -> ClusterConfig:
    """The cluster to talk to: in a Pod its ServiceAccount (unless a kubeconfig or context is
    named, or `in_cluster` is False), else the kubeconfig context kubectl would use. Blocking (it
    may run an exec plugin): call it at start-up or in a thread."""
    configuration = Configuration()
    if in_cluster and running_in_cluster(kubeconfig, context, environ=environ, in_cluster_dir=in_cluster_dir):
        try:
            InClusterConfigLoader(token_filename=str(in_cluster_dir / "token"),
                                  cert_filename=str(in_cluster_dir / "ca.crt"),
                                  environ=dict(environ)).load_and_set(configuration)
        except (ConfigException, OSError) as exc:
            raise KubeconfigError(f"cannot use the Pod's ServiceAccount: {exc}") from None
        ca_pem = _read(configuration.ssl_ca_cert)
        return ClusterConfig(
            server=configuration.host, verify=ssl_context(ca_data=ca_pem), ca_pem=ca_pem,
            credentials=LibraryCredentials(configuration),
            namespace=context_namespace(environ=environ, in_cluster_dir=in_cluster_dir),
        )
    # The library writes `*-data` fields to temporary files; keep no key on disk once loaded.
    temp_dir = tempfile.mkdtemp(prefix="hrw-kubeconfig-")
    try:
        loader = _loader(kubeconfig, context, environ, temp_dir)
        user = str((loader.current_context.get("context") or {}).get("user") or "")
        with _library_errors() as errors:
            try:
                loader.load_and_set(configuration)
            except (ConfigException, OSError, ValueError) as exc:
                raise KubeconfigError(f"context {loader.current_context['name']!r}: {exc}") from None
        credentials = LibraryCredentials(configuration, loader)
        if errors and credentials.header is None and not configuration.cert_file:
            raise KubeconfigError(f"context {loader.current_context['name']!r}, user {user!r}: "
                                  f"the credential plugin failed: {errors[-1]}")
        ca_pem = _read(configuration.ssl_ca_cert)
        cert_pem, key_pem = _read(configuration.cert_file), _read(configuration.key_file)
        insecure = not configuration.verify_ssl
        try:
            verify = ssl_context(ca_data=ca_pem, cert_file=configuration.cert_file, key_file=configuration.key_file,
                                 insecure=insecure)
        except (ssl.SSLError, ValueError) as exc:
            raise KubeconfigError(f"context {loader.current_context['name']!r}: bad certificate data: {exc}") \
                from None
        return ClusterConfig(
            server=configuration.host, verify=verify, credentials=credentials,
            namespace=str((loader.current_context.get("context") or {}).get("namespace") or "default"),
            context=str(loader.current_context["name"]),
            tls_server_name=configuration.tls_server_name or None, proxy=configuration.proxy or None,
            insecure=insecure, ca_pem=ca_pem, client_cert_pem=cert_pem, client_key_pem=key_pem,
        )
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
