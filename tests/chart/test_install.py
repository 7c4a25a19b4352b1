"""charts/hrw on the real control plane: the rendered objects pass the apiserver's own validation,
`helm install` creates the cloud side, and the ServiceAccounts it creates are enough for the real
`hrw-operator` and `hrw-proxy` processes (run locally with those accounts' tokens: there is no
kubelet, so the chart's pods themselves never start)."""

from __future__ import annotations

import json
from pathlib import Path

from hrw_api.kubeclient import RUNBOOK_JOBS, KubeClient
from tests.operator.conftest import Kit
from tests.support.proxy import create_registration_secret, proxy_tls, register_worker, start_proxy

from .conftest import Helm, Release, rbac_source, service_account_kubeconfig

CRD_NAMES = {"runbooks.hrw.dev", "assets.hrw.dev", "workergroups.hrw.dev", "runbookjobs.hrw.dev"}


def test_rendered_chart_passes_server_side_validation(helm: Helm, cluster, crds, namespace: str) -> None:
    manifest = helm.template("proxy.service.type=LoadBalancer", "operator.namespaces={a,b}",
                             namespace=namespace, release="hrw-dry-run", include_crds=True)
    result = cluster.kubectl_run("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest)
    assert result.returncode == 0, result.stderr
    created = set(result.stdout.split("\n"))
    for expected in ("deployment.apps/hrw-dry-run-operator", "deployment.apps/hrw-dry-run-proxy",
                     "service/hrw-dry-run-proxy", "poddisruptionbudget.policy/hrw-dry-run-proxy",
                     "clusterrole.rbac.authorization.k8s.io/hrw-dry-run-operator",
                     "clusterrolebinding.rbac.authorization.k8s.io/hrw-dry-run-proxy",
                     "customresourcedefinition.apiextensions.k8s.io/runbookjobs.hrw.dev"):
        assert any(line.startswith(expected + " ") for line in created), (expected, result.stdout)


def get(cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def test_helm_install_creates_crds_deployments_service_accounts_and_rbac(cluster, release: Release) -> None:
    ns = release.namespace
    crds = get(cluster, "customresourcedefinitions")
    established = {c["metadata"]["name"] for c in crds["items"]
                   if any(k["type"] == "Established" and k["status"] == "True" for k in c["status"]["conditions"])}
    assert established >= CRD_NAMES
    operator = get(cluster, "deployment", release.operator, "-n", ns)
    proxy = get(cluster, "deployment", release.proxy, "-n", ns)
    assert operator["spec"]["replicas"] == 1 and proxy["spec"]["replicas"] == 2
    assert operator["spec"]["template"]["spec"]["containers"][0]["args"][0] == "--all-namespaces"
    service = get(cluster, "service", release.proxy, "-n", ns)
    assert service["spec"]["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https"), (9090, "metrics")]
    get(cluster, "poddisruptionbudget", release.proxy, "-n", ns)
    for component, name in (("operator", release.operator), ("proxy", release.proxy)):
        get(cluster, "serviceaccount", name, "-n", ns)
        role = get(cluster, "clusterrole", name)
        assert role["rules"] == next(o for o in rbac_source(component) if o["kind"] == "ClusterRole")["rules"]
        binding = get(cluster, "clusterrolebinding", name)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
        assert role["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # The API server itself agrees on what each account may do.
    def can(account: str, verb: str, resource: str, *extra: str) -> bool:
        return cluster.kubectl_run("auth", "can-i", verb, resource, *extra, "-n", ns,
                                   f"--as=system:serviceaccount:{ns}:{account}").stdout.strip() == "yes"
    assert can(release.operator, "patch", "runbookjobs.hrw.dev", "--subresource=status")
    assert can(release.operator, "create", "secrets")
    assert not can(release.operator, "patch", "runbookjobs.hrw.dev")
    assert can(release.proxy, "create", "leases.coordination.k8s.io")
    assert not can(release.proxy, "list", "secrets")
    assert not can(release.proxy, "delete", "runbookjobs.hrw.dev")
    assert not can("default", "get", "runbookjobs.hrw.dev")  # a control: only the chart's accounts


async def test_the_real_operator_queues_a_job_as_the_charts_service_account(
        cluster, release: Release, admin: KubeClient, processes, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(cluster, release.namespace, release.operator, tmp_path)
    proc = processes.start("hrw-operator", "--namespace", release.namespace, "--kubeconfig", str(kubeconfig),
                           "--log-format", "json", name="hrw-operator-chart-sa")
    proc.wait_for_log(r"operator\.started", timeout=30)
    kit = Kit(release.namespace, admin)
    await kit.runbook("rb")
    await kit.group("pool")
    await kit.job("j", "rb", "pool")
    job = await kit.wait_phase("j", "Queued")
    assert job["status"]["attempt"] == 1
    await kit.wait_event("j", "Queued")
    logs = proc.logs()
    assert "Forbidden" not in logs and "403" not in logs, logs[-2000:]


async def test_the_real_proxy_registers_a_worker_as_the_charts_service_account(
        cluster, release: Release, admin: KubeClient, processes, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(cluster, release.namespace, release.proxy, tmp_path)
    proxy = start_proxy(processes, kubeconfig, proxy_tls(tmp_path / "tls"), name="hrw-proxy-chart-sa")
    kit = Kit(release.namespace, admin)
    await kit.group("pool")
    token = create_registration_secret(cluster, release.namespace, "pool")
    credential = register_worker(proxy, release.namespace, "pool", "w1", token)
    async with proxy.client(credential) as kube:
        jobs = await kube.list(RUNBOOK_JOBS.path(release.namespace))
    assert jobs["items"] == []
    logs = proxy.process.logs()
    assert "Forbidden" not in logs, logs[-2000:]
