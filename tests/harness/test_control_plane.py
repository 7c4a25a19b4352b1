"""The harness is a real Kubernetes control plane: version, CRDs, RBAC, GC, namespace deletion."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hrw_dev.build import KUBERNETES_VERSION, asset_overrides
from hrw_dev.controlplane import ControlPlane, ExistingCluster, KubectlError
from hrw_dev.crds import apply_crds
from tests.support import unique_name, wait_until

HERE = Path(__file__).parent

Cluster = ControlPlane | ExistingCluster


def _status_with_token(cluster: Cluster, path: str, token: str) -> int:
    """The HTTP status the apiserver answers to GET ``path`` with a bearer token (and no client cert)."""
    if cluster.ca_path is not None:
        context = ssl.create_default_context(cafile=str(cluster.ca_path))
    else:
        context = ssl._create_unverified_context()
    request = urllib.request.Request(cluster.server + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code


def test_apiserver_reports_the_pinned_kubernetes_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("get", "--raw", "/version"))
    if isinstance(cluster, ControlPlane) and "kube-apiserver" not in asset_overrides():
        assert version["gitVersion"] == KUBERNETES_VERSION
    else:  # someone else's binaries or cluster: it must still answer with a real version
        assert version["gitVersion"].startswith("v1.")


def test_crd_applied_with_kubectl_becomes_established_and_serves_objects(
    cluster: Cluster, namespace: str
) -> None:
    crds = apply_crds(cluster, HERE / "widget-crd.yaml")
    assert [crd.resource for crd in crds] == ["widgets.harness.hrw.dev"]
    established = cluster.kubectl(
        "get", "crd", "widgets.harness.hrw.dev",
        "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}",
    )
    assert established == "True"

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=(
        "apiVersion: harness.hrw.dev/v1\nkind: Widget\nmetadata:\n  name: first\nspec:\n  size: 3\n"
    ))
    widget = json.loads(cluster.kubectl("get", "widgets.harness.hrw.dev", "first", "-n", namespace, "-o", "json"))
    assert widget["spec"] == {"size": 3}
    listed = json.loads(cluster.kubectl("get", "--raw", f"/apis/harness.hrw.dev/v1/namespaces/{namespace}/widgets"))
    assert [item["metadata"]["name"] for item in listed["items"]] == ["first"]

    # The schema is enforced by the apiserver: a bad object is refused at once.
    bad = cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=(
        "apiVersion: harness.hrw.dev/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  size: -1\n"
    ))
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr


def test_service_account_token_is_forbidden_without_binding_and_allowed_with_edit_role(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    token = cluster.kubectl("create", "token", "robot", "-n", namespace, "--duration=10m").strip()
    path = f"/api/v1/namespaces/{namespace}/configmaps"

    assert _status_with_token(cluster, path, token) == 403

    cluster.kubectl(
        "create", "rolebinding", "robot-edit", "-n", namespace,
        "--clusterrole=edit", f"--serviceaccount={namespace}:robot",
    )
    # RBAC caches are refreshed asynchronously; the binding takes effect within moments.
    wait_until(lambda: _status_with_token(cluster, path, token) == 200, timeout=15,
               message="the edit RoleBinding to grant listing configmaps")
    # ...and only in that namespace.
    assert _status_with_token(cluster, "/api/v1/namespaces/default/configmaps", token) == 403


def test_object_with_owner_reference_is_garbage_collected_after_its_owner(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    uid = cluster.kubectl("get", "configmap", "owner", "-n", namespace, "-o", "jsonpath={.metadata.uid}")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}],
        },
    }))

    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)

    wait_until(
        lambda: cluster.kubectl_run("get", "configmap", "child", "-n", namespace).returncode != 0,
        timeout=30, message="the child ConfigMap to be garbage-collected",
    )
    gone = cluster.kubectl_run("get", "configmap", "child", "-n", namespace)
    assert "NotFound" in gone.stderr


def test_deleted_namespace_with_content_goes_away(cluster: Cluster) -> None:
    name = unique_name("harness-doomed")
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("create", "configmap", "content", "-n", name)
    cluster.kubectl("create", "serviceaccount", "someone", "-n", name)

    cluster.kubectl("delete", "namespace", name, "--wait=false")

    wait_until(
        lambda: cluster.kubectl_run("get", "namespace", name).returncode != 0,
        timeout=60, message=f"namespace {name} to be deleted (not stuck Terminating)",
    )


def test_kubectl_error_shows_kubectls_stderr(cluster: Cluster) -> None:
    with pytest.raises(KubectlError, match="NotFound"):
        cluster.kubectl("get", "namespace", "no-such-namespace-here")


def test_an_existing_cluster_is_read_from_a_merged_kubeconfig_list(cluster: Cluster, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.yaml"  # first in the list, without a current context of its own
    other.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "elsewhere", "user": {"token": "t"}}],
        "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "elsewhere"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", f"{other}{os.pathsep}{cluster.kubeconfig_path}")
    with ExistingCluster() as existing:
        assert existing.server == cluster.server
        assert existing.kubectl("get", "namespace", "default", "-o", "name").strip() == "namespace/default"
        flattened = existing.kubeconfig_path
        assert flattened.stat().st_mode & 0o777 == 0o600
    assert not flattened.exists()
