"""The proxy's blast radius, tried as the proxy's own ServiceAccount (deploy/rbac): it cannot get a
Secret in a namespace outside its list, nor create, replace or patch a Lease in kube-system —
neither with kubectl as that ServiceAccount nor through the proxy, whatever a caller sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hrw_api import names, wire
from hrw_api.kubeclient import LEASES, SECRETS
from tests.support import unique_name
from tests.support.proxy import proxy_kubectl

CONTROLLER_LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
                    "spec": {"holderIdentity": "hrw-proxy", "leaseDurationSeconds": 15}}


@pytest.fixture
def outside(cluster, namespace: str) -> Iterator[str]:
    """A namespace the proxy does not serve (no Role there), holding a Secret."""
    name = unique_name(f"outside-{namespace}", max_length=60)
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("create", "secret", "generic", "not-for-hrw", "-n", name, "--from-literal=password=outside-value")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def kube_system_leases(cluster) -> dict[str, str]:
    """kube-system's Leases by name, with their resourceVersions (as admin)."""
    listed = json.loads(cluster.kubectl("get", "leases", "-n", "kube-system", "-o", "json"))
    return {item["metadata"]["name"]: item["metadata"]["resourceVersion"] for item in listed["items"]}


def test_kubectl_as_the_proxys_account_gets_no_secret_outside_and_writes_no_kube_system_lease(
        cluster, world, outside: str, proxy_sa_kubeconfig: Path) -> None:
    def as_proxy(*args: str, input: str | None = None):
        return cluster.kubectl_run("--kubeconfig", str(proxy_sa_kubeconfig), *args, input=input)

    refused = as_proxy("get", "secret", "not-for-hrw", "-n", outside, "-o", "json")
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
    assert "outside-value" not in refused.stdout + refused.stderr
    before = kube_system_leases(cluster)
    for args in (("create", "--dry-run=server", "-f", "-"), ("replace", "--dry-run=server", "-f", "-")):
        attempt = as_proxy(*args, input=json.dumps(CONTROLLER_LEASE))
        assert attempt.returncode != 0 and "Forbidden" in attempt.stderr, (args, attempt.stderr)
    patched = as_proxy("patch", "lease", "kube-controller-manager", "-n", "kube-system", "--type=merge",
                       "-p", '{"spec":{"holderIdentity":"hrw-proxy"}}')
    assert patched.returncode != 0 and "Forbidden" in patched.stderr, patched.stderr
    assert kube_system_leases(cluster) == before
    # A control: the same account reads a Secret by name in a namespace it serves.
    inside = as_proxy("get", "secret", "db", "-n", world.namespace, "-o", "name")
    assert (inside.returncode, inside.stdout.strip()) == (0, "secret/db"), inside.stderr


async def test_through_the_proxy_no_caller_reaches_a_secret_outside_or_a_kube_system_lease(
        cluster, world, outside: str, tmp_path: Path) -> None:
    before = kube_system_leases(cluster)
    lease_paths = (LEASES.path("kube-system"), LEASES.path("kube-system", "kube-controller-manager"))
    async with world.proxy.http(world.credentials["w1"]) as http:
        secret = await http.get(SECRETS.path(outside, "not-for-hrw"))
        assert secret.status_code == 403 and "outside-value" not in secret.text
        created = await http.post(lease_paths[0], json=CONTROLLER_LEASE)
        replaced = await http.put(lease_paths[1], json=CONTROLLER_LEASE)
        patched = await http.patch(lease_paths[1], json={"spec": {"holderIdentity": "w1"}},
                                   headers={"Content-Type": "application/merge-patch+json"})
        assert [r.status_code for r in (created, replaced, patched)] == [403, 403, 403]
    # A credential made up for kube-system: the proxy cannot even look its record up there.
    made_up = "hrw1.kube-system.g.kube-controller-manager." + "d" * 43
    async with world.proxy.http(made_up) as http:
        created = await http.post(lease_paths[0], json={**CONTROLLER_LEASE, "metadata": {
            "name": names.lease_name("g", "kube-controller-manager"), "namespace": "kube-system"}})
        assert created.status_code == 401, created.text
        assert "serviceaccount" not in created.text.lower()
    # Registering in kube-system or the outside namespace writes nothing there.
    for ns in ("kube-system", outside):
        async with world.proxy.http("hrwr1.abcdefghij." + "t" * 43) as http:
            registered = await http.post(wire.register_path(ns, "g"),
                                         json=wire.RegisterRequest("w1", "h", "v", ("bash",)).to_dict())
        assert registered.status_code == 401, registered.text
    assert kube_system_leases(cluster) == before
    outside_secrets = json.loads(cluster.kubectl("get", "secrets", "-n", outside, "-o", "json"))["items"]
    assert [s["metadata"]["name"] for s in outside_secrets] == ["not-for-hrw"]
    # kubectl itself at the proxy, as the worker (--raw: the proxy's discovery lists no Secrets).
    result = proxy_kubectl(cluster, world.proxy, world.credentials["w1"], "get", "--raw",
                           SECRETS.path(outside, "not-for-hrw"), cache_dir=tmp_path / "kubectl-cache")
    assert result.returncode != 0 and "Forbidden" in result.stderr, result.stderr
