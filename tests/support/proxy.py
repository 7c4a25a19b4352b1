"""Start a real `hrw-proxy` for tests, running as exactly its own ServiceAccount, and register workers.

Used by the proxy's tests and by anyone who needs a proxy in front of the cluster (the agent's
tests, end-to-end tests). The small API, in the order a test uses it:

    kubeconfig = proxy_kubeconfig(cluster, tmp_dir)          # ServiceAccount applied, token minted
    grant_proxy(cluster, ns)                                 # its Role in the test's namespace
    tls = proxy_tls(tmp_dir)                                 # CA + serving cert for 127.0.0.1
    proxy = start_proxy(processes, kubeconfig, tls)          # hrw-proxy running, /readyz answered
    token = create_registration_secret(cluster, ns, group)   # what the operator does for a group
    credential = register_worker(proxy, ns, group, "w1", token)
    async with proxy.client(credential) as kube: ...         # a KubeClient talking to the proxy
    proxy_kubectl(cluster, proxy, credential, "get", "rbj", "-n", ns)   # kubectl itself, at the proxy

The proxy never runs as admin here: its kubeconfig carries a token of the `hrw-proxy`
ServiceAccount (`deploy/rbac/proxy.yaml`), which holds no cluster-wide grant; each test grants it
the Role the chart ships (`deploy/rbac/per-namespace/proxy.yaml`) in its own namespace and no other.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from hrw_api import names, wire
from hrw_api.kubeclient import KubeClient, ssl_context
from hrw_dev import stack
from hrw_dev.controlplane import Cluster, free_port
from hrw_dev.stack import PROXY_NAMESPACE, PROXY_SERVICE_ACCOUNT, ProxyTLS
from tests.support.processes import ManagedProcess, ProcessFactory
from tests.support.waiting import wait_until

__all__ = [
    "PROXY_NAMESPACE",
    "PROXY_SERVICE_ACCOUNT",
    "RBAC_PATH",
    "ProxyTLS",
    "RunningProxy",
    "create_registration_secret",
    "grant_proxy",
    "proxy_kubeconfig",
    "proxy_kubectl",
    "proxy_tls",
    "register_worker",
    "start_proxy",
]

RBAC_PATH = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "proxy.yaml"
ROLE_PATH = Path(__file__).resolve().parents[2] / "deploy" / "rbac" / "per-namespace" / "proxy.yaml"


@dataclass(frozen=True)
class RunningProxy:
    """A started `hrw-proxy`: its URL, the CA to verify it, its metrics URL and its process."""

    url: str
    ca_path: Path
    metrics_url: str
    process: ManagedProcess

    def ssl_context(self) -> ssl.SSLContext:
        return ssl_context(ca_file=str(self.ca_path))

    def client(self, credential: str | None = None, *, timeout: float = 15.0) -> KubeClient:
        """A KubeClient (the agent's own client) talking to the proxy with `credential`."""
        return KubeClient(self.url, verify=self.ssl_context(), token=credential, timeout=timeout)

    def http(self, credential: str | None = None, *, timeout: float = 15.0) -> httpx.AsyncClient:
        """A raw httpx client for requests KubeClient would not send (malformed bodies, no token)."""
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        return httpx.AsyncClient(base_url=self.url, verify=self.ssl_context(), headers=headers, timeout=timeout)


def proxy_kubeconfig(cluster: Cluster, directory: Path, *, duration: str = "4h") -> Path:
    """Apply deploy/rbac/proxy.yaml and write a kubeconfig authenticating as the hrw-proxy ServiceAccount."""
    return stack.proxy_kubeconfig(cluster, directory, RBAC_PATH, duration=duration)


def grant_proxy(cluster: Cluster, namespace: str) -> None:
    """Give the hrw-proxy ServiceAccount its Role (deploy/rbac/per-namespace/proxy.yaml) in `namespace`."""
    stack.grant_namespace(cluster, namespace, ROLE_PATH, PROXY_SERVICE_ACCOUNT)


def proxy_tls(directory: Path) -> ProxyTLS:
    """A throwaway CA and a serving certificate for the proxy on the loopback interface."""
    return stack.proxy_tls(directory, common_name="hrw-proxy-test-ca")


def start_proxy(processes: ProcessFactory, kubeconfig: Path, tls: ProxyTLS, *args: str,
                name: str = "hrw-proxy", ready_timeout: float = 30.0) -> RunningProxy:
    """Start `hrw-proxy` on free ports with `args` added (e.g. `--rate-limit-rps`), and wait for /readyz."""
    port, metrics_port = free_port(), free_port()
    process = processes.start(
        "hrw-proxy", "--listen", f"127.0.0.1:{port}", "--tls-cert", str(tls.cert_path),
        "--tls-key", str(tls.key_path), "--kubeconfig", str(kubeconfig),
        "--metrics-listen", f"127.0.0.1:{metrics_port}", *args, name=name,
        env={"KUBECONFIG": str(kubeconfig)},
    )
    proxy = RunningProxy(f"https://127.0.0.1:{port}", tls.ca_path, f"http://127.0.0.1:{metrics_port}/metrics",
                         process)
    context = proxy.ssl_context()

    def ready() -> bool:
        if not process.alive:
            raise AssertionError(f"hrw-proxy exited with {process.returncode}:\n{process.log_tail()}")
        return httpx.get(f"{proxy.url}/readyz", verify=context, timeout=2).status_code == 200

    wait_until(ready, timeout=ready_timeout, ignore=(httpx.HTTPError,), message="hrw-proxy /readyz")
    return proxy


def create_registration_secret(cluster: Cluster, namespace: str, group: str, token: str | None = None) -> str:
    """Create the group's registration-token Secret as admin (the operator's job) and return the token."""
    token = token or secrets.token_urlsafe(24)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": names.SECRET_TYPE_REGISTRATION,
        "metadata": {"name": names.registration_secret_name(group), "namespace": namespace,
                     "labels": {names.LABEL_WORKER_GROUP: group}},
        "data": {names.REGISTRATION_TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    return token


def register_worker(proxy: RunningProxy, namespace: str, group: str, worker: str, registration_token: str, *,
                    hostname: str = "test-host", interpreters: Sequence[str] = ("bash", "sh", "python3")) -> str:
    """Register `worker` through the proxy with the group's token; return its worker credential."""
    request = wire.RegisterRequest(worker, hostname, "test", tuple(interpreters))
    response = httpx.post(f"{proxy.url}{wire.register_path(namespace, group)}", json=request.to_dict(),
                          headers={"Authorization": f"Bearer {registration_token}"},
                          verify=proxy.ssl_context(), timeout=15)
    if response.status_code != 200:
        raise AssertionError(f"registering {worker} failed: {response.status_code} {response.text}")
    credential: str = response.json()["credential"]
    return credential


def proxy_kubectl(cluster: Cluster, proxy: RunningProxy, credential: str, *args: str,
                  cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run kubectl itself against the proxy with a worker credential (no kubeconfig involved)."""
    kubectl = getattr(cluster, "kubectl_path", None) or "kubectl"
    argv = [str(kubectl), "--kubeconfig=/dev/null", f"--server={proxy.url}", f"--token={credential}",
            f"--certificate-authority={proxy.ca_path}", "--request-timeout=20s", *args]
    if cache_dir is not None:
        argv.insert(1, f"--cache-dir={cache_dir}")
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
