"""Fixtures of the chart's tests: helm (built once per machine), rendering, installing, and a
kubeconfig that authenticates as one of the chart's ServiceAccounts.

Rendering needs no cluster; installing uses the session's real control plane. Pods never run
there (no kubelet), so the tests look at the objects the chart creates and run the real
operator and proxy processes locally as the chart's ServiceAccounts.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hrw_api.kubeclient import KubeClient
from hrw_dev.helm import ensure_helm
from tests.support import unique_name, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "hrw"
RBAC_DIR = REPO_ROOT / "deploy" / "rbac"

JSON = dict[str, Any]


@dataclass(frozen=True)
class Helm:
    """The helm binary, run with an isolated home (no repositories, no cache of the user's)."""

    path: Path
    home: Path

    def run(self, *args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(self.path), *args], capture_output=True, text=True, env=env, timeout=120,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def template(self, *sets: str, namespace: str = "hrw-system", release: str = "hrw",
                 include_crds: bool = False, values: JSON | None = None) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if include_crds:
            args.append("--include-crds")
        if values is not None:
            values_file = self.home / f"values-{uuid.uuid4().hex[:8]}.yaml"
            values_file.write_text(yaml.safe_dump(values))
            args += ["--values", str(values_file)]
        for assignment in sets:
            args += ["--set", assignment]
        return self.run(*args).stdout

    def render(self, *sets: str, namespace: str = "hrw-system", release: str = "hrw",
               values: JSON | None = None) -> list[JSON]:
        """The rendered objects, parsed."""
        text = self.template(*sets, namespace=namespace, release=release, values=values)
        return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm from TEST_ASSET_HELM, PATH or ~/.cache/hrw/tools (built there once, ~2 minutes)."""
    return Helm(ensure_helm(), tmp_path_factory.mktemp("helm-home"))


def find(objects: list[JSON], kind: str, name: str | None = None) -> JSON:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in matches]}"
    return matches[0]


def rbac_source(component: str) -> list[JSON]:
    """The objects of deploy/rbac/<component>.yaml: the ServiceAccount, and the operator's
    discovery ClusterRole and its binding."""
    return [doc for doc in yaml.safe_load_all((RBAC_DIR / f"{component}.yaml").read_text()) if doc]


def role_source(component: str) -> list[JSON]:
    """The objects of deploy/rbac/per-namespace/<component>.yaml: the Role and RoleBinding the
    chart renders in each watched namespace, the one source of their rules."""
    path = RBAC_DIR / "per-namespace" / f"{component}.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str

    @property
    def operator(self) -> str:
        return f"{self.name}-operator"

    @property
    def proxy(self) -> str:
        return f"{self.name}-proxy"


@pytest.fixture
def release(helm: Helm, cluster, crds, namespace: str, request: pytest.FixtureRequest) -> Iterator[Release]:
    """The chart installed into the test's namespace under a unique release name.

    The name contains "hrw", so objects are <release>-operator/-proxy and never collide with the
    hrw-operator/hrw-proxy objects other tests apply from deploy/rbac. With the default values
    the Roles are in the release's namespace only. Uninstalled afterwards: the namespace's
    deletion would not remove the cluster-scoped RBAC (the operator's discovery ClusterRole).
    """
    name = unique_name(f"hrw-{request.node.name}", max_length=40)
    helm.run("install", name, str(CHART), "--namespace", namespace, "--wait=false",
             kubeconfig=cluster.kubeconfig_path)
    yield Release(name, namespace)
    helm.run("uninstall", name, "--namespace", namespace, kubeconfig=cluster.kubeconfig_path, check=False)


def service_account_kubeconfig(cluster, namespace: str, service_account: str, directory: Path) -> Path:
    """A kubeconfig whose only identity is a fresh token of `namespace/service_account`."""
    token = wait_until(
        lambda: cluster.kubectl_run("create", "token", service_account, "-n", namespace,
                                    "--duration=1h").stdout.strip(),
        timeout=30, message=f"a token for ServiceAccount {namespace}/{service_account}")
    entry: JSON = {"server": cluster.server}
    if cluster.ca_path is not None:
        entry["certificate-authority"] = str(cluster.ca_path)
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "hrw", "cluster": entry}],
              "users": [{"name": service_account, "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": "hrw", "user": service_account,
                                                      "namespace": namespace}}],
              "current-context": "sa"}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{service_account}.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle)
    return path


@pytest.fixture
async def admin(cluster, crds) -> AsyncIterator[KubeClient]:
    async with KubeClient.from_kubeconfig(cluster.kubeconfig_path, user_agent="hrw-chart-test") as client:
        yield client


@pytest.fixture
def outside_namespace(cluster, namespace: str) -> Iterator[str]:
    """A second namespace, outside the release's list: the chart grants nothing there."""
    name = unique_name(f"outside-{namespace}", max_length=60)
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
