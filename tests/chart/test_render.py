"""What `helm lint` and `helm template` make of charts/hrw, without a cluster: the RBAC rules are
deploy/rbac's, the CRDs are crds/'s, and each value changes what it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import CHART, REPO_ROOT, Helm, find, rbac_source


def container(objects, deployment: str) -> dict:
    return find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def test_helm_lint_passes_with_the_default_values(helm: Helm) -> None:
    result = helm.run("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


@pytest.mark.parametrize("component", ["operator", "proxy"])
def test_rendered_rbac_rules_equal_deploy_rbac_rules(helm: Helm, component: str) -> None:
    objects = helm.render("operator.serviceAccount.name=op-sa", "proxy.serviceAccount.name=px-sa",
                          namespace="elsewhere", release="prod")
    source = find(rbac_source(component), "ClusterRole")
    role = find(objects, "ClusterRole", f"prod-hrw-{component}")
    assert role["rules"] == source["rules"]
    # Only the names and the namespace are the chart's.
    account = {"operator": "op-sa", "proxy": "px-sa"}[component]
    binding = find(objects, "ClusterRoleBinding", f"prod-hrw-{component}")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": f"prod-hrw-{component}"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "elsewhere"}]
    assert find(objects, "ServiceAccount", account)["metadata"]["namespace"] == "elsewhere"
    assert find(objects, "Deployment", f"prod-hrw-{component}")["spec"]["template"]["spec"][
        "serviceAccountName"] == account


def test_release_named_hrw_gets_the_names_of_deploy_rbac(helm: Helm) -> None:
    objects = helm.render()
    for component in ("operator", "proxy"):
        for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            source = find(rbac_source(component), kind)
            rendered = find(objects, kind, source["metadata"]["name"])
            assert rendered["metadata"].get("namespace") == source["metadata"].get("namespace")
        assert find(objects, "ClusterRoleBinding", f"hrw-{component}")["subjects"] == \
            find(rbac_source(component), "ClusterRoleBinding")["subjects"]


def test_chart_crds_are_the_repository_crds(helm: Helm) -> None:
    rendered = [doc for doc in yaml.safe_load_all(helm.template(include_crds=True)) if doc]
    crds = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "CustomResourceDefinition"}
    source = {}
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                source[doc["metadata"]["name"]] = doc
    assert len(source) == 4
    assert crds == source
    # One source, no copy: the chart's crds/ and files/rbac are links into the repository.
    assert (CHART / "crds").resolve() == (REPO_ROOT / "crds").resolve()
    assert (CHART / "files" / "rbac").resolve() == (REPO_ROOT / "deploy" / "rbac").resolve()


def test_operator_serves_all_namespaces_by_default_and_the_listed_ones_when_given(helm: Helm) -> None:
    default = container(helm.render(), "hrw-operator")
    assert default["command"] == ["python", "-m", "hrw_operator"]
    liveness = ["--liveness", "http://0.0.0.0:8080/healthz"]
    assert default["args"] == ["--all-namespaces", "--log-format", "json", *liveness]
    listed = container(helm.render("operator.namespaces={a,b}", "operator.logFormat=text",
                                   "operator.verbose=true"), "hrw-operator")
    assert listed["args"] == ["--namespace", "a", "--namespace", "b", "--log-format", "text", "--verbose",
                              *liveness]
    assert listed["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080} in listed["ports"]


def test_operator_refuses_more_than_one_replica(helm: Helm) -> None:
    result = helm.run("template", "hrw", str(CHART), "--set", "operator.replicas=2", check=False)
    assert result.returncode != 0
    assert "without leader election" in result.stderr
    deployment = find(helm.render(), "Deployment", "hrw-operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_proxy_listens_with_tls_from_the_secret_and_is_probed_on_the_metrics_port(helm: Helm) -> None:
    objects = helm.render("proxy.tls.secretName=from-cert-manager", "proxy.rateLimit.rps=5",
                          "proxy.rateLimit.burst=7", "proxy.maxBodyBytes=1048576")
    deployment = find(objects, "Deployment", "hrw-proxy")
    assert deployment["spec"]["replicas"] == 2
    proxy = deployment["spec"]["template"]["spec"]["containers"][0]
    args = proxy["args"]
    flags = dict(zip(args[::2], args[1::2], strict=True))
    assert flags == {
        "--listen": "0.0.0.0:8443", "--tls-cert": "/tls/tls.crt", "--tls-key": "/tls/tls.key",
        "--metrics-listen": "0.0.0.0:9090", "--max-body-bytes": "1048576", "--rate-limit-rps": "5",
        "--rate-limit-burst": "7", "--upstream-timeout": "10", "--max-watch-seconds": "300",
        "--credential-cache-ttl": "2", "--log-format": "json", "--log-level": "INFO",
    }
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"https": 8443, "metrics": 9090}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "from-cert-manager"}
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in proxy["volumeMounts"]
    default_volumes = find(helm.render(), "Deployment", "hrw-proxy")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "hrw-proxy-tls"}} in default_volumes


def test_proxy_service_is_443_to_8443_and_its_type_follows_the_value(helm: Helm) -> None:
    service = find(helm.render(), "Service", "hrw-proxy")
    assert service["spec"]["type"] == "ClusterIP"
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "https": (443, "https"), "metrics": (9090, "metrics")}
    assert service["spec"]["selector"] == find(helm.render(), "Deployment", "hrw-proxy")["spec"]["selector"][
        "matchLabels"]
    balanced = find(helm.render("proxy.service.type=LoadBalancer",
                                "proxy.service.loadBalancerSourceRanges={10.0.0.0/8}",
                                "proxy.service.externalTrafficPolicy=Local"), "Service", "hrw-proxy")
    assert balanced["spec"]["type"] == "LoadBalancer"
    assert balanced["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert balanced["spec"]["externalTrafficPolicy"] == "Local"


def test_proxy_disruption_budget_and_service_monitor_follow_their_values(helm: Helm) -> None:
    objects = helm.render()
    pdb = find(objects, "PodDisruptionBudget", "hrw-proxy")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == find(objects, "Deployment", "hrw-proxy")["spec"]["selector"]
    assert not [o for o in objects if o["kind"] == "ServiceMonitor"]
    monitored = helm.render("proxy.metrics.serviceMonitor.enabled=true", "proxy.podDisruptionBudget.enabled=false")
    monitor = find(monitored, "ServiceMonitor", "hrw-proxy")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http",
                                             "interval": "30s"}]
    assert not [o for o in monitored if o["kind"] == "PodDisruptionBudget"]


@pytest.mark.parametrize("deployment", ["hrw-operator", "hrw-proxy"])
def test_pods_run_non_root_read_only_without_capabilities(helm: Helm, deployment: str) -> None:
    objects = helm.render("image.repository=registry.example/hrw", "image.tag=9.9.9")
    pod = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    main = pod["containers"][0]
    assert main["image"] == "registry.example/hrw:9.9.9"
    assert main["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                       "capabilities": {"drop": ["ALL"]}}
    default_image = find(helm.render(), "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    assert default_image["image"] == "hrw:0.1.0"


def test_dockerfile_runs_as_the_uid_the_chart_expects() -> None:
    dockerfile = (Path(REPO_ROOT) / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'pip install ".[cloud]"' in dockerfile
    assert f"USER {values['podSecurityContext']['runAsUser']}:" in dockerfile
    assert "ENTRYPOINT" not in dockerfile.replace("No ENTRYPOINT", "")
