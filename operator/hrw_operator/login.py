"""How kopf logs in: the same kubeconfig (or in-cluster ServiceAccount) as our own KubeClient.

kopf's `login_with_kubeconfig` reads only `$KUBECONFIG` and takes relative file paths as
relative to the working directory; kubectl resolves them against the kubeconfig's folder. This
module reads the file named by `--kubeconfig` (or `$KUBECONFIG`, or `~/.kube/config`) the way
kubectl does and hands kopf a `ConnectionInfo`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf
import yaml

from hrw_api.kubeclient import IN_CLUSTER_DIR

__all__ = ["IN_CLUSTER_DIR", "connection_info", "in_cluster", "kubeconfig_path"]


def in_cluster(kubeconfig: str | None) -> bool:
    return kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ and (IN_CLUSTER_DIR / "token").exists()


def kubeconfig_path(kubeconfig: str | None) -> Path:
    return Path(kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or Path.home() / ".kube/config")


def connection_info(path: Path) -> kopf.ConnectionInfo:
    config = yaml.safe_load(path.read_text()) or {}
    ctx_name = config.get("current-context")
    ctx = next(c.get("context") or {} for c in config.get("contexts", []) if c.get("name") == ctx_name)
    cluster = next(c.get("cluster") or {} for c in config.get("clusters", []) if c.get("name") == ctx.get("cluster"))
    user: dict[str, Any] = next(
        (u.get("user") or {} for u in config.get("users", []) if u.get("name") == ctx.get("user")), {})
    base = path.parent

    def file(key: str) -> str | None:
        value = cluster.get(key) if key == "certificate-authority" else user.get(key)
        return str(base / value) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=file("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=file("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=file("client-key"),
        private_key_data=user.get("client-key-data"),
        token=token,
        default_namespace=ctx.get("namespace"),
    )
