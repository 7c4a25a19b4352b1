"""What `helm lint` and `helm template` make of charts/hrw, without a cluster: the RBAC rules are
deploy/rbac's and granted per watched namespace, the CRDs are crds/'s, only 443 is public, and
each value changes what it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import CHART, RBAC_DIR, REPO_ROOT, Helm, find, rbac_source, role_source


def container(objects, deployment: str) -> dict:
    return find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def test_helm_lint_passes_with_the_default_values(helm: Helm) -> None:
    result = helm.run("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout


def of_kind(objects: list[dict], *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] in kinds]


@pytest.mark.parametrize("component", ["operator", "proxy"])
def test_each_watched_namespace_gets_a_role_with_the_rules_of_deploy_rbac(helm: Helm, component: str) -> None:
    objects = helm.render("watchNamespaces={ops,batch}", "operator.serviceAccount.name=op-sa",
                          "proxy.serviceAccount.name=px-sa", namespace="elsewhere", release="prod")
    source = find(role_source(component), "Role")
    account = {"operator": "op-sa", "proxy": "px-sa"}[component]
    name = f"prod-hrw-{component}"
    roles = [o for o in of_kind(objects, "Role") if o["metadata"]["name"] == name]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["batch", "ops"]
    for namespace in ("ops", "batch"):
        role = find([r for r in roles if r["metadata"]["namespace"] == namespace], "Role")
        assert role["rules"] == source["rules"]
        binding = find([o for o in of_kind(objects, "RoleBinding") if o["metadata"]["namespace"] == namespace],
                       "RoleBinding", name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
        # Only the names and the namespaces are the chart's.
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "elsewhere"}]
    assert find(objects, "ServiceAccount", account)["metadata"]["namespace"] == "elsewhere"
    assert find(objects, "Deployment", name)["spec"]["template"]["spec"]["serviceAccountName"] == account


def test_nothing_is_granted_cluster_wide_but_the_operators_read_only_discovery(helm: Helm) -> None:
    objects = helm.render("watchNamespaces={ops}")
    cluster_roles = of_kind(objects, "ClusterRole")
    assert [r["metadata"]["name"] for r in cluster_roles] == ["hrw-operator-discovery"]
    assert cluster_roles[0]["rules"] == find(rbac_source("operator"), "ClusterRole")["rules"]
    assert {verb for rule in cluster_roles[0]["rules"] for verb in rule["verbs"]} == {"get", "list", "watch"}
    assert {resource for rule in cluster_roles[0]["rules"] for resource in rule["resources"]} == {
        "customresourcedefinitions", "namespaces"}
    binding = find(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "hrw-operator-discovery"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hrw-operator", "namespace": "hrw-system"}]
    # Outside the watched namespaces: only the operator's leader-election Role, in its own namespace.
    assert {(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"])
            for o in of_kind(objects, "Role", "RoleBinding") if o["metadata"]["namespace"] != "ops"} == {
        ("Role", "hrw-operator-leader-election", "hrw-system"),
        ("RoleBinding", "hrw-operator-leader-election", "hrw-system")}


def test_without_a_list_the_roles_are_in_the_release_namespace(helm: Helm) -> None:
    objects = helm.render(namespace="hrw-here")
    assert {(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"])
            for o in of_kind(objects, "Role", "RoleBinding")} == {
        (kind, name, "hrw-here") for kind in ("Role", "RoleBinding")
        for name in ("hrw-operator", "hrw-proxy", "hrw-operator-leader-election")}


def test_all_namespaces_mode_binds_the_same_rules_cluster_wide(helm: Helm) -> None:
    objects = helm.render("allNamespaces=true", "watchNamespaces={ignored}")
    assert {o["metadata"]["name"] for o in of_kind(objects, "Role", "RoleBinding")} == {
        "hrw-operator-leader-election"}  # the Lease's Role stays in the operator's own namespace
    for component in ("operator", "proxy"):
        role = find(objects, "ClusterRole", f"hrw-{component}")
        assert role["rules"] == find(role_source(component), "Role")["rules"]
        binding = find(objects, "ClusterRoleBinding", f"hrw-{component}")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": f"hrw-{component}"}
    find(objects, "ClusterRole", "hrw-operator-discovery")
    assert container(objects, "hrw-operator")["args"][0] == "--all-namespaces"


def test_rendered_roles_carry_the_comment_of_each_rule(helm: Helm) -> None:
    text = helm.template("watchNamespaces={ops}")
    for component in ("operator", "proxy"):
        source = (RBAC_DIR / "per-namespace" / f"{component}.yaml").read_text()
        comments = [line.strip() for line in source[source.index("\nrules:"):].splitlines()
                    if line.strip().startswith("#")]
        assert comments
        for comment in comments:
            assert comment in text, comment


@pytest.mark.parametrize("path", sorted(RBAC_DIR.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_rule_of_deploy_rbac_says_why_it_exists(path) -> None:
    """Each rule (`- apiGroups:`) right under a comment of its own: the chart copies them with it."""
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    rules = [i for i, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert [lines[i] for i in rules if not lines[i - 1].startswith("#")] == []


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_the_clusters_own_namespaces_cannot_be_watched(helm: Helm, namespace: str) -> None:
    result = helm.run("template", "hrw", str(CHART), "--set", f"watchNamespaces={{ops,{namespace}}}", check=False)
    assert result.returncode != 0
    assert f"watchNamespaces must not list {namespace}" in result.stderr


def test_the_old_operator_namespaces_value_is_refused_with_its_new_name(helm: Helm) -> None:
    result = helm.run("template", "hrw", str(CHART), "--set", "operator.namespaces={a}", check=False)
    assert result.returncode != 0
    assert "operator.namespaces is now watchNamespaces" in result.stderr


def test_release_named_hrw_gets_the_names_of_deploy_rbac(helm: Helm) -> None:
    objects = helm.render()
    for component in ("operator", "proxy"):
        source = find(rbac_source(component), "ServiceAccount")
        assert find(objects, "ServiceAccount", source["metadata"]["name"])["metadata"]["namespace"] == \
            source["metadata"]["namespace"]
        for kind in ("Role", "RoleBinding"):
            source = find(role_source(component), kind)
            rendered = find(objects, kind, source["metadata"]["name"])
            assert rendered["metadata"]["namespace"] == "hrw-system"
        assert find(objects, "RoleBinding", f"hrw-{component}")["subjects"] == \
            find(role_source(component), "RoleBinding")["subjects"]
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        source = find(rbac_source("operator"), kind)
        rendered = find(objects, kind, source["metadata"]["name"])
        assert rendered.get("subjects") == source.get("subjects")
        assert rendered.get("rules") == source.get("rules")


@pytest.mark.parametrize("all_namespaces", ["false", "true"])
def test_the_leader_election_role_grants_the_one_lease_the_operator_is_told_to_use(
        helm: Helm, all_namespaces: str) -> None:
    objects = helm.render(f"allNamespaces={all_namespaces}", namespace="elsewhere", release="prod")
    role = find(objects, "Role", "prod-hrw-operator-leader-election")
    assert role["metadata"]["namespace"] == "elsewhere"
    source = find(rbac_source("operator"), "Role")["rules"]
    named = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert named == [{**rule, "resourceNames": ["prod-hrw-operator"]} for rule in source if rule.get("resourceNames")]
    assert [r for r in role["rules"] if not r.get("resourceNames")] == [r for r in source if not r.get("resourceNames")]
    args = container(objects, "prod-hrw-operator")["args"]
    flags = {flag: value for flag, value in zip(args, [*args[1:], None], strict=True) if flag.startswith("--leader")}
    assert flags["--leader-elect-resource-name"] == "prod-hrw-operator"
    assert flags["--leader-elect-resource-namespace"] == "elsewhere"
    binding = find(objects, "RoleBinding", "prod-hrw-operator-leader-election")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prod-hrw-operator", "namespace": "elsewhere"}]


def test_chart_crds_are_the_repository_crds(helm: Helm) -> None:
    rendered = [doc for doc in yaml.safe_load_all(helm.template(include_crds=True)) if doc]
    crds = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "CustomResourceDefinition"}
    source = {}
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                source[doc["metadata"]["name"]] = doc
    assert len(source) == 7
    assert crds == source
    # One source, no copy: the chart's crds/ and files/rbac are links into the repository.
    assert (CHART / "crds").resolve() == (REPO_ROOT / "crds").resolve()
    assert (CHART / "files" / "rbac").resolve() == (REPO_ROOT / "deploy" / "rbac").resolve()


def test_operator_serves_the_release_namespace_by_default_and_the_listed_ones_when_given(helm: Helm) -> None:
    default = container(helm.render(namespace="hrw-here"), "hrw-operator")
    assert default["command"] == ["python", "-m", "hrw_operator"]
    liveness = ["--liveness", "http://0.0.0.0:8080/healthz", "--metrics-listen", "0.0.0.0:9090",
                "--leader-elect", "--leader-elect-resource-name", "hrw-operator",
                "--leader-elect-resource-namespace", "hrw-here", "--leader-elect-lease-duration", "15",
                "--leader-elect-renew-deadline", "10", "--leader-elect-retry-period", "2"]
    assert default["args"] == ["--namespace", "hrw-here", "--log-format", "json", *liveness]
    listed = container(helm.render("watchNamespaces={a,b}", "operator.logFormat=text",
                                   "operator.verbose=true"), "hrw-operator")
    assert listed["args"] == ["--namespace", "a", "--namespace", "b", "--log-format", "text", "--verbose",
                              *[arg.replace("hrw-here", "hrw-system") for arg in liveness]]
    assert listed["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080} in listed["ports"]
    assert {"name": "metrics", "containerPort": 9090} in listed["ports"]


def test_operator_runs_two_replicas_that_elect_a_leader_with_a_disruption_budget(helm: Helm) -> None:
    objects = helm.render("operator.leaderElection.leaseDurationSeconds=30",
                          "operator.leaderElection.renewDeadlineSeconds=20")
    deployment = find(objects, "Deployment", "hrw-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    args = container(objects, "hrw-operator")["args"]
    assert "--leader-elect" in args
    assert args[args.index("--leader-elect-lease-duration") + 1] == "30"
    assert args[args.index("--leader-elect-renew-deadline") + 1] == "20"
    pdb = find(objects, "PodDisruptionBudget", "hrw-operator")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"] == deployment["spec"]["selector"]
    # One replica: no budget (1 of 1 would block every drain); still elected, so rollouts stay safe.
    single = helm.render("operator.replicas=1")
    assert not [o for o in single if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "hrw-operator"]
    assert "--leader-elect" in container(single, "hrw-operator")["args"]


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
        "--tls-reload-seconds": "10",
        "--metrics-listen": "0.0.0.0:9090", "--max-body-bytes": "1048576", "--rate-limit-rps": "5",
        "--rate-limit-burst": "7", "--upstream-timeout": "10", "--max-watch-seconds": "300",
        "--credential-cache-ttl": "2", "--log-format": "json", "--log-level": "INFO",
        "--webhook-max-body-bytes": "65536", "--webhook-rate-limit-rps": "1", "--webhook-rate-limit-burst": "10",
    }
    assert {p["name"]: p["containerPort"] for p in proxy["ports"]} == {"https": 8443, "metrics": 9090}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "from-cert-manager"}
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in proxy["volumeMounts"]
    default_volumes = find(helm.render(), "Deployment", "hrw-proxy")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "hrw-proxy-tls"}} in default_volumes


def ports(service: dict) -> dict:
    return {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}


def test_proxy_service_is_443_to_8443_only_and_its_type_follows_the_value(helm: Helm) -> None:
    objects = helm.render()
    service = find(objects, "Service", "hrw-proxy")
    assert service["spec"]["type"] == "ClusterIP"
    assert ports(service) == {"https": (443, "https")}
    assert service["spec"]["selector"] == find(objects, "Deployment", "hrw-proxy")["spec"]["selector"]["matchLabels"]
    balanced = find(helm.render("proxy.service.type=LoadBalancer",
                                "proxy.service.loadBalancerSourceRanges={10.0.0.0/8}",
                                "proxy.service.externalTrafficPolicy=Local"), "Service", "hrw-proxy")
    assert balanced["spec"]["type"] == "LoadBalancer"
    assert balanced["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert balanced["spec"]["externalTrafficPolicy"] == "Local"


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_a_public_service_exposes_only_443_and_metrics_stay_on_a_cluster_ip_service(
        helm: Helm, service_type: str) -> None:
    objects = helm.render(f"proxy.service.type={service_type}")
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    assert set(services) == {"hrw-proxy", "hrw-proxy-metrics", "hrw-operator-metrics"}
    public = services["hrw-proxy"]
    assert public["spec"]["type"] == service_type
    assert [(p["port"], p["targetPort"]) for p in public["spec"]["ports"]] == [(443, "https")]
    assert services["hrw-operator-metrics"]["spec"]["type"] == "ClusterIP"
    # Every port any non-ClusterIP Service of the chart publishes: 443 alone.
    published = {p["port"] for s in services.values() if s["spec"]["type"] != "ClusterIP" for p in s["spec"]["ports"]}
    assert published == {443}
    metrics = services["hrw-proxy-metrics"]
    assert metrics["spec"]["type"] == "ClusterIP"
    assert ports(metrics) == {"metrics": (9090, "metrics")}
    assert metrics["spec"]["selector"] == public["spec"]["selector"]


def test_service_monitor_selects_the_metrics_service_and_not_the_public_one(helm: Helm) -> None:
    objects = helm.render("proxy.metrics.serviceMonitor.enabled=true", "proxy.service.type=LoadBalancer")
    selector = find(objects, "ServiceMonitor", "hrw-proxy")["spec"]["selector"]["matchLabels"]

    def selected(service: dict) -> bool:
        return selector.items() <= service["metadata"]["labels"].items()

    assert selected(find(objects, "Service", "hrw-proxy-metrics"))
    assert not selected(find(objects, "Service", "hrw-proxy"))


def test_network_policies_admit_agents_on_https_and_metrics_from_inside_only(helm: Helm) -> None:
    objects = helm.render()
    proxy = find(objects, "NetworkPolicy", "hrw-proxy")["spec"]
    assert proxy["podSelector"] == find(objects, "Deployment", "hrw-proxy")["spec"]["selector"]
    assert proxy["policyTypes"] == ["Ingress"]
    https, metrics = proxy["ingress"]
    assert https == {"ports": [{"port": "https", "protocol": "TCP"}]}  # from anywhere: agents are outside
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [{"podSelector": {}}]}
    operator = find(objects, "NetworkPolicy", "hrw-operator")["spec"]
    assert operator["podSelector"] == find(objects, "Deployment", "hrw-operator")["spec"]["selector"]
    assert operator["policyTypes"] == ["Ingress"]
    assert operator["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [{"podSelector": {}}]}]


def test_network_policy_values_restrict_sources_and_egress_or_turn_it_off(helm: Helm) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ingress = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    egress = [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443}, {"port": 6443}]}]
    values = {"networkPolicy": {"metricsFrom": [monitoring], "httpsFrom": [ingress], "egress": egress}}
    objects = helm.render(values=values)
    proxy = find(objects, "NetworkPolicy", "hrw-proxy")["spec"]
    assert [rule.get("from") for rule in proxy["ingress"]] == [[ingress], [monitoring]]
    for name in ("hrw-proxy", "hrw-operator"):
        spec = find(objects, "NetworkPolicy", name)["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == egress
    assert not of_kind(helm.render("networkPolicy.enabled=false"), "NetworkPolicy")


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
    assert not [o for o in monitored if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "hrw-proxy"]


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


def test_operator_metrics_service_and_its_service_monitor(helm: Helm) -> None:
    objects = helm.render("operator.metrics.serviceMonitor.enabled=true")
    service = find(objects, "Service", "hrw-operator-metrics")
    assert service["spec"]["type"] == "ClusterIP" and ports(service) == {"metrics": (9090, "metrics")}
    assert service["spec"]["selector"] == find(objects, "Deployment", "hrw-operator")["spec"]["selector"]["matchLabels"]
    monitor = find(objects, "ServiceMonitor", "hrw-operator")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    # The jobs' namespace label must survive the scrape (the target's would replace it otherwise).
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http",
                                             "interval": "30s", "honorLabels": True}]
