"""charts/hrw on the real control plane: the rendered objects pass the apiserver's own validation,
`helm install` creates the cloud side, the ServiceAccounts it creates reach nothing outside the
release's namespaces, and they are enough for the real `hrw-operator` and `hrw-proxy` processes
(run locally with those accounts' tokens: there is no kubelet, so the chart's pods themselves
never start)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hrw_api import names, wire
from hrw_api.kubeclient import LEASES, RUNBOOK_JOBS, SECRETS, KubeClient
from tests.operator.conftest import Kit
from tests.support.proxy import create_registration_secret, proxy_tls, register_worker, start_proxy
from tests.support.waiting import wait_until

from .conftest import Helm, Release, find, rbac_source, role_source, service_account_kubeconfig

CRD_NAMES = {"runbooks.hrw.dev", "assets.hrw.dev", "workergroups.hrw.dev", "runbookjobs.hrw.dev",
             "runbookschedules.hrw.dev", "runbookwebhooks.hrw.dev",
             "workerconfigurations.hrw.dev"}


def dry_run(cluster, manifest: str) -> set[str]:
    result = cluster.kubectl_run("apply", "--dry-run=server", "-f", "-", input=manifest)
    assert result.returncode == 0, result.stderr
    return {line.split(" ")[0] for line in result.stdout.split("\n") if line}


def test_rendered_chart_passes_server_side_validation(helm: Helm, cluster, crds, namespace: str,
                                                      outside_namespace: str) -> None:
    manifest = helm.template("proxy.service.type=LoadBalancer", f"watchNamespaces={{{namespace},{outside_namespace}}}",
                             "proxy.metrics.serviceMonitor.enabled=false",
                             namespace=namespace, release="hrw-dry-run", include_crds=True,
                             values={"networkPolicy": {
                                 "metricsFrom": [{"namespaceSelector": {"matchLabels": {
                                     "kubernetes.io/metadata.name": "monitoring"}}}],
                                 "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
                                             "ports": [{"port": 443}, {"port": 6443}]}]}})
    created = dry_run(cluster, manifest)
    assert created >= {
        "deployment.apps/hrw-dry-run-operator", "deployment.apps/hrw-dry-run-proxy",
        "service/hrw-dry-run-proxy", "service/hrw-dry-run-proxy-metrics",
        "poddisruptionbudget.policy/hrw-dry-run-proxy",
        "networkpolicy.networking.k8s.io/hrw-dry-run-proxy", "networkpolicy.networking.k8s.io/hrw-dry-run-operator",
        "role.rbac.authorization.k8s.io/hrw-dry-run-proxy", "rolebinding.rbac.authorization.k8s.io/hrw-dry-run-proxy",
        "role.rbac.authorization.k8s.io/hrw-dry-run-operator",
        "clusterrole.rbac.authorization.k8s.io/hrw-dry-run-operator-discovery",
        "role.rbac.authorization.k8s.io/hrw-dry-run-operator-leader-election",
        "rolebinding.rbac.authorization.k8s.io/hrw-dry-run-operator-leader-election",
        "poddisruptionbudget.policy/hrw-dry-run-operator", "service/hrw-dry-run-operator-metrics",
        "customresourcedefinition.apiextensions.k8s.io/runbookjobs.hrw.dev"}, created


def test_all_namespaces_mode_passes_server_side_validation(helm: Helm, cluster, crds, namespace: str) -> None:
    manifest = helm.template("allNamespaces=true", namespace=namespace, release="hrw-dry-run-all")
    created = dry_run(cluster, manifest)
    assert created >= {"clusterrole.rbac.authorization.k8s.io/hrw-dry-run-all-proxy",
                       "clusterrolebinding.rbac.authorization.k8s.io/hrw-dry-run-all-proxy",
                       "networkpolicy.networking.k8s.io/hrw-dry-run-all-proxy"}, created


def get(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def can(cluster, account: str, verb: str, resource: str, *extra: str) -> bool:
    """What the apiserver's authorizer says `account` (a ServiceAccount of the release's namespace
    given as namespace:name) may do."""
    return cluster.kubectl_run("auth", "can-i", verb, resource, *extra,
                               f"--as=system:serviceaccount:{account}").stdout.strip() == "yes"


def test_helm_install_creates_crds_deployments_service_accounts_and_rbac(cluster, release: Release) -> None:
    ns = release.namespace
    crds = get(cluster, "customresourcedefinitions")
    established = {c["metadata"]["name"] for c in crds["items"]
                   if any(k["type"] == "Established" and k["status"] == "True" for k in c["status"]["conditions"])}
    assert established >= CRD_NAMES
    operator = get(cluster, "deployment", release.operator, "-n", ns)
    proxy = get(cluster, "deployment", release.proxy, "-n", ns)
    assert operator["spec"]["replicas"] == 2 and proxy["spec"]["replicas"] == 2
    assert operator["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["--namespace", ns]
    service = get(cluster, "service", release.proxy, "-n", ns)
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https")]
    metrics = get(cluster, "service", f"{release.proxy}-metrics", "-n", ns)
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in metrics["spec"]["ports"]] == [(9090, "metrics")]
    get(cluster, "poddisruptionbudget", release.proxy, "-n", ns)
    get(cluster, "networkpolicy", release.proxy, "-n", ns)
    get(cluster, "networkpolicy", release.operator, "-n", ns)
    for component, name in (("operator", release.operator), ("proxy", release.proxy)):
        get(cluster, "serviceaccount", name, "-n", ns)
        role = get(cluster, "role", name, "-n", ns)
        assert role["rules"] == find(role_source(component), "Role")["rules"]
        binding = get(cluster, "rolebinding", name, "-n", ns)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
        assert role["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    discovery = get(cluster, "clusterrole", f"{release.operator}-discovery")
    assert discovery["rules"] == find(rbac_source("operator"), "ClusterRole")["rules"]
    # The API server itself agrees on what each account may do.
    operator_sa, proxy_sa = f"{ns}:{release.operator}", f"{ns}:{release.proxy}"
    assert can(cluster, operator_sa, "patch", "runbookjobs.hrw.dev", "--subresource=status", "-n", ns)
    assert can(cluster, operator_sa, "create", "secrets", "-n", ns)
    assert can(cluster, operator_sa, "watch", "customresourcedefinitions")
    # A schedule creates its jobs and patches spec.cancel under concurrencyPolicy Replace; it never replaces one.
    assert can(cluster, operator_sa, "create", "runbookjobs.hrw.dev", "-n", ns)
    assert not can(cluster, operator_sa, "update", "runbookjobs.hrw.dev", "-n", ns)
    assert not can(cluster, operator_sa, "get", "secrets", "-n", "kube-system")
    assert can(cluster, proxy_sa, "create", "leases.coordination.k8s.io", "-n", ns)
    assert not can(cluster, proxy_sa, "list", "secrets", "-n", ns)
    assert not can(cluster, proxy_sa, "delete", "runbookjobs.hrw.dev", "-n", ns)
    # A RunbookWebhook's call: the proxy reads the webhook and creates a job; it never changes one.
    assert can(cluster, proxy_sa, "get", "runbookwebhooks.hrw.dev", "-n", ns)
    assert can(cluster, proxy_sa, "create", "runbookjobs.hrw.dev", "-n", ns)
    assert not can(cluster, proxy_sa, "update", "runbookjobs.hrw.dev", "-n", ns)
    assert not can(cluster, proxy_sa, "patch", "runbookjobs.hrw.dev", "-n", ns)
    assert can(cluster, operator_sa, "patch", "runbookwebhooks.hrw.dev", "--subresource=status", "-n", ns)
    assert not can(cluster, f"{ns}:default", "get", "runbookjobs.hrw.dev", "-n", ns)  # a control


def test_the_charts_proxy_account_reaches_no_secret_or_lease_outside_its_namespaces(
        helm: Helm, cluster, release: Release, outside_namespace: str, tmp_path: Path) -> None:
    """Asked of the authorizer, and tried with kubectl as that ServiceAccount (writes as server-side
    dry runs: the apiserver authorizes them like real ones and keeps nothing)."""
    ns, proxy_sa = release.namespace, f"{release.namespace}:{release.proxy}"
    for verb in ("get", "create", "patch"):
        assert can(cluster, proxy_sa, verb, "secrets", "-n", ns)
        assert not can(cluster, proxy_sa, verb, "secrets", "-n", outside_namespace)
        assert not can(cluster, proxy_sa, verb, "secrets", "-n", "kube-system")
    for verb in ("create", "update", "patch"):
        assert can(cluster, proxy_sa, verb, "leases.coordination.k8s.io", "-n", ns)
        assert not can(cluster, proxy_sa, verb, "leases.coordination.k8s.io", "-n", "kube-system")
        assert not can(cluster, proxy_sa, verb, "leases.coordination.k8s.io", "-n", outside_namespace)
    assert not can(cluster, proxy_sa, "get", "secrets", "--all-namespaces")

    kubeconfig = service_account_kubeconfig(cluster, ns, release.proxy, tmp_path)
    cluster.kubectl("create", "secret", "generic", "not-for-hrw", "-n", outside_namespace,
                    "--from-literal=password=outside-value")

    def as_proxy(*args: str, input: str | None = None):
        return cluster.kubectl_run("--kubeconfig", str(kubeconfig), *args, input=input)

    outside = as_proxy("get", "secret", "not-for-hrw", "-n", outside_namespace, "-o", "json")
    assert outside.returncode != 0 and "Forbidden" in outside.stderr, outside.stderr
    assert "outside-value" not in outside.stdout + outside.stderr
    # The controller-manager's leader-election Lease: neither created, replaced nor patched.
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "kube-controller-manager", "namespace": "kube-system"},
             "spec": {"holderIdentity": "hrw-proxy", "leaseDurationSeconds": 15}}
    for args in (("create", "--dry-run=server", "-f", "-"), ("replace", "--dry-run=server", "-f", "-")):
        attempt = as_proxy(*args, input=json.dumps(lease))
        assert attempt.returncode != 0 and "Forbidden" in attempt.stderr, (args, attempt.stderr)
    patched = as_proxy("patch", "lease", "kube-controller-manager", "-n", "kube-system", "--type=merge",
                       "-p", '{"spec":{"holderIdentity":"hrw-proxy"}}', "--dry-run=server")
    assert patched.returncode != 0 and "Forbidden" in patched.stderr, patched.stderr
    # A control: the same token creates a Lease and reads Secrets (none of that name) in its namespace.
    inside = {**lease, "metadata": {"name": "hrw-probe", "namespace": ns}}
    created = as_proxy("create", "--dry-run=server", "-f", "-", input=json.dumps(inside))
    assert created.returncode == 0, created.stderr
    missing = as_proxy("get", "secret", "not-for-hrw", "-n", ns)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr


async def test_the_real_operator_queues_a_job_as_the_charts_service_account(
        cluster, release: Release, admin: KubeClient, processes, tmp_path: Path) -> None:
    """Two replicas, elected on the chart's Lease with the chart's leader-election Role, as the pods run."""
    kubeconfig = service_account_kubeconfig(cluster, release.namespace, release.operator, tmp_path)
    replicas = [processes.start("hrw-operator", "--namespace", release.namespace, "--kubeconfig", str(kubeconfig),
                                "--log-format", "json", "--leader-elect", "--leader-elect-resource-name",
                                release.operator, "--leader-elect-resource-namespace", release.namespace,
                                name="hrw-operator-chart-sa") for _ in range(2)]
    wait_until(lambda: [p for p in replicas if "operator.started" in p.logs()], timeout=60,
               message="one replica leads")
    proc = next(p for p in replicas if "operator.started" in p.logs())
    standby = next(p for p in replicas if p is not proc)
    standby.wait_for_log(r"leader\.waiting", timeout=30)
    lease = await admin.get(LEASES.path(release.namespace, release.operator))
    assert lease["spec"]["holderIdentity"].endswith(f"-{proc.pid}")
    kit = Kit(release.namespace, admin)
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.job("j", "rb", "pool")
    job = await kit.wait_phase("j", "Queued")
    assert job["status"]["attempt"] == 1
    # It may post Events: the group has no worker yet, so the queued job gets its warning.
    await kit.wait_event("j", "NoCapableWorker")
    logs = proc.logs() + standby.logs()
    assert "Forbidden" not in logs and not re.search(r"\b403\b", logs), logs[-2000:]  # not a timestamp's digits


async def test_the_real_proxy_registers_a_worker_as_the_charts_service_account(
        cluster, release: Release, admin: KubeClient, processes, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(cluster, release.namespace, release.proxy, tmp_path)
    proxy = start_proxy(processes, kubeconfig, proxy_tls(tmp_path / "tls"), name="hrw-proxy-chart-sa")
    kit = Kit(release.namespace, admin)
    await kit.group("pool", registration={"groupToken": True})
    token = create_registration_secret(cluster, release.namespace, "pool")
    credential = register_worker(proxy, release.namespace, "pool", "w1", token)
    async with proxy.client(credential) as kube:
        jobs = await kube.list(RUNBOOK_JOBS.path(release.namespace))
    assert jobs["items"] == []
    logs = proxy.process.logs()
    assert "Forbidden" not in logs, logs[-2000:]


async def test_the_real_proxy_as_the_charts_account_cannot_register_a_worker_outside_its_namespaces(
        cluster, release: Release, admin: KubeClient, processes, tmp_path: Path, outside_namespace: str) -> None:
    kubeconfig = service_account_kubeconfig(cluster, release.namespace, release.proxy, tmp_path)
    proxy = start_proxy(processes, kubeconfig, proxy_tls(tmp_path / "tls"), name="hrw-proxy-chart-outside")
    await Kit(outside_namespace, admin).group("pool", registration={"groupToken": True})
    token = create_registration_secret(cluster, outside_namespace, "pool")
    async with proxy.http(token) as http:
        response = await http.post(wire.register_path(outside_namespace, "pool"),
                                   json=wire.RegisterRequest("w1", "test-host", "test", ("bash",)).to_dict())
    # Refused as an unknown token: the proxy's own lookup of the group's token is forbidden there,
    # and that is none of the caller's business (no word of the proxy's ServiceAccount).
    assert response.status_code == 401, response.text
    assert "serviceaccount" not in response.text.lower()
    assert response.json()["kind"] == "Status"
    # Nothing was written there: no credential Secret, no Lease.
    secrets = await admin.list(SECRETS.path(outside_namespace))
    assert [s["metadata"]["name"] for s in secrets["items"]] == [names.registration_secret_name("pool")]
    assert (await admin.list(LEASES.path(outside_namespace)))["items"] == []
