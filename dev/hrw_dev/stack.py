"""What the hrw processes need around a local control plane: the proxy's identity and TLS.

The demo, the benchmarks and the tests all run the real `hrw-proxy` as its own least-privilege
ServiceAccount (never as admin) behind a throwaway CA; this module is the one way they set that
up. Starting and supervising the processes stays with each caller (the demo uses plain
subprocesses, the tests the harness's process fixture).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from hrw_dev import certs
from hrw_dev.controlplane import Cluster, write_kubeconfig
from hrw_dev.waiting import wait_until

__all__ = [
    "PROCESS_MODULES", "PROXY_NAMESPACE", "PROXY_SERVICE_ACCOUNT", "ProxyTLS", "grant_namespace", "process_command",
    "proxy_kubeconfig", "proxy_tls",
]

PROXY_NAMESPACE = "hrw-system"
PROXY_SERVICE_ACCOUNT = "hrw-proxy"

PROCESS_MODULES = {"hrw-operator": "hrw_operator", "hrw-proxy": "hrw_proxy"}
"""The cloud-side processes run as ``python -m MODULE`` (as in the image and the chart): hrw's
base install is the agent's, so it registers no console script whose dependencies it lacks."""


def process_command(name: str) -> list[str]:
    """The argv prefix that runs hrw process ``name`` (``hrw-operator``, ``hrw-proxy``, ``hrw-agent``,
    ``hrw``) from this Python's environment, never some other install on ``PATH``."""
    if name in PROCESS_MODULES:
        return [sys.executable, "-m", PROCESS_MODULES[name]]
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return [str(beside_python)]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} is neither next to {sys.executable} nor on PATH")
    return [found]


@dataclass(frozen=True)
class ProxyTLS:
    """The CA agents trust and the proxy's serving certificate (SANs localhost, 127.0.0.1)."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def proxy_tls(directory: Path, *, common_name: str = "hrw-proxy-ca") -> ProxyTLS:
    """A throwaway CA and a serving certificate for the proxy on the loopback interface."""
    ca = certs.create_ca(directory, name="proxy-ca", common_name=common_name)
    cert, key = certs.issue_serving_cert(ca, directory, "proxy")
    return ProxyTLS(ca.cert_path, cert, key)


def proxy_kubeconfig(cluster: Cluster, directory: Path, rbac_path: Path, *, duration: str = "4h") -> Path:
    """Apply the proxy's ServiceAccount (`deploy/rbac/proxy.yaml`) and write a kubeconfig (mode 0600)
    that authenticates as it with a token from the TokenRequest API. It may do nothing until
    `grant_namespace` gives it its Role in a namespace."""
    if cluster.kubectl_run("get", "namespace", PROXY_NAMESPACE).returncode != 0:
        cluster.kubectl("create", "namespace", PROXY_NAMESPACE)
    cluster.kubectl("apply", "-f", str(rbac_path))
    # The ServiceAccount exists a moment after `apply` returns; ask until the token comes.
    token = wait_until(
        lambda: cluster.kubectl_run("create", "token", PROXY_SERVICE_ACCOUNT, "-n", PROXY_NAMESPACE,
                                    f"--duration={duration}").stdout.strip(),
        timeout=30, message=f"a token for ServiceAccount {PROXY_NAMESPACE}/{PROXY_SERVICE_ACCOUNT}",
    )
    path = directory / "hrw-proxy.kubeconfig"
    write_kubeconfig(path, "hrw", cluster.server, cluster.ca_path, PROXY_SERVICE_ACCOUNT, token=token)
    return path


def grant_namespace(cluster: Cluster, namespace: str, role_path: Path, service_account: str) -> None:
    """Apply a per-namespace Role and RoleBinding (`deploy/rbac/per-namespace/*.yaml`) in `namespace`
    and wait until the apiserver's authorizer lets `service_account` (of PROXY_NAMESPACE) use it."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(role_path))
    subject = f"--as=system:serviceaccount:{PROXY_NAMESPACE}:{service_account}"
    wait_until(
        lambda: cluster.kubectl_run("auth", "can-i", "get", "runbookjobs.hrw.dev", "-n", namespace,
                                    subject).stdout.strip() == "yes",
        timeout=30, message=f"the Role of {service_account} to take effect in namespace {namespace}",
    )
