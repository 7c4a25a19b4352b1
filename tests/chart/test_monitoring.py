"""The chart's PrometheusRule and Grafana dashboard (issue 14), held to the operator they watch:
every expression parses as PromQL (promql-parser, the Python binding of a maintained Rust
parser), and every metric they read is exported by a real operator's `/metrics` after jobs ran.
Only the leading replica exports the fleet's figures; a standby says it does not lead."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import promql_parser
from prometheus_client.parser import text_string_to_metric_families

from hrw_dev.controlplane import free_port
from tests.support.processes import ProcessFactory
from tests.support.proxy import ProxyTLS
from tests.support.stack import LEADER_ELECTION_ARGS, Stack
from tests.support.waiting import wait_until

from .conftest import Helm, find

ENABLED = ("monitoring.prometheusRule.enabled=true", "monitoring.grafanaDashboard.enabled=true")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$group": ".*", "${datasource}": "prometheus"}
ALERTS = {"HrwWorkerGroupNoReadyWorker", "HrwJobQueueStalled", "HrwWorkerMissing", "HrwOperatorNoLeader"}


def rule_exprs(objects: list[dict]) -> dict[str, str]:
    rule = find(objects, "PrometheusRule")
    return {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}


def dashboard(objects: list[dict]) -> dict:
    config_map = find(objects, "ConfigMap", "hrw-dashboard")
    return json.loads(config_map["data"]["hrw-fleet.json"])


def dashboard_exprs(board: dict) -> list[str]:
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    found += [variable["query"]["query"] for variable in board["templating"]["list"] if variable["type"] == "query"]
    return found


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if expr.startswith("label_values("):  # Grafana's query function: its first argument is a selector
        expr = expr.removeprefix("label_values(").rsplit(",", 1)[0]
    return expr


def metric_names(node: object) -> Iterator[str]:
    """The metric names an expression's syntax tree selects."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
    elif isinstance(node, promql_parser.MatrixSelector):
        yield from metric_names(node.vector_selector)
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from metric_names(node.lhs)
        yield from metric_names(node.rhs)
    elif isinstance(node, promql_parser.Call):
        for argument in node.args:
            yield from metric_names(argument)
    elif isinstance(node, promql_parser.AggregateExpr | promql_parser.ParenExpr | promql_parser.UnaryExpr
                    | promql_parser.SubqueryExpr):
        yield from metric_names(node.expr)


def used_metrics(objects: list[dict]) -> dict[str, set[str]]:
    """Every metric name per expression of the rule and the dashboard (each must parse)."""
    used = {}
    for expr in [*rule_exprs(objects).values(), *dashboard_exprs(dashboard(objects))]:
        used[expr] = set(metric_names(promql_parser.parse(grafana_to_promql(expr))))
    return used


def test_monitoring_is_off_by_default(helm: Helm) -> None:
    objects = helm.render()
    assert not [o for o in objects if o["kind"] == "PrometheusRule"]
    assert not [o for o in objects if o["kind"] == "ConfigMap"]


def test_the_rule_alerts_on_the_four_failures_and_every_expression_parses(helm: Helm) -> None:
    objects = helm.render(*ENABLED, "monitoring.prometheusRule.queuedJobMaxAgeMinutes=30",
                          "monitoring.prometheusRule.labels.release=kube-prometheus-stack")
    rule = find(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for each in rules:
        assert each["labels"]["severity"] in {"critical", "warning"}, each
        assert each["annotations"]["summary"] and each["annotations"]["description"], each
        assert each["for"], each
    assert rule_exprs(objects)["HrwJobQueueStalled"].endswith("> 1800")
    used = used_metrics(objects)  # raises on an expression that does not parse
    assert all(names for names in used.values()), used
    try:  # and the parser refuses what is broken

        promql_parser.parse("max by (group (hrw_operator_queued_jobs)")
    except ValueError:
        pass
    else:
        raise AssertionError("promql-parser accepted a broken expression")


def test_the_dashboard_is_a_grafana_config_map_with_every_panel_queried(helm: Helm) -> None:
    objects = helm.render(*ENABLED, "monitoring.grafanaDashboard.namespace=monitoring")
    config_map = find(objects, "ConfigMap", "hrw-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    board = dashboard(objects)
    assert board["uid"] == "hrw-fleet" and board["panels"]
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    for panel in board["panels"]:
        assert panel["targets"] and panel["title"], panel
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel


def scrape(url: str) -> dict[str, list]:
    """Sample name -> samples of one scrape."""
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    matches = [s.value for s in samples.get(name, []) if labels.items() <= s.labels.items()]
    assert len(matches) == 1, (name, labels, samples.get(name))
    return float(matches[0])


async def test_every_metric_the_rule_and_dashboard_read_is_exported_by_the_leader(
        helm: Helm, cluster, crds, namespace: str, processes: ProcessFactory, tmp_path: Path,
        proxy_sa_kubeconfig: Path, tls: ProxyTLS, job_user: str) -> None:
    leader_metrics, standby_metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    election = (*LEADER_ELECTION_ARGS, "--leader-elect-resource-namespace", namespace)
    stack = await Stack.create(cluster, namespace, processes, tmp_path, proxy_sa_kubeconfig, tls,
                               operator_args=(*election, "--metrics-listen", leader_metrics))
    try:
        standby = processes.start("hrw-operator", "--namespace", namespace, "--kubeconfig",
                                  str(cluster.kubeconfig_path), *election, "--metrics-listen", standby_metrics,
                                  name="hrw-operator-standby")
        standby.wait_for_log(r"leader\.waiting", timeout=30)
        await stack.group("mon")
        stack.start_agent("mon", "w1")
        await stack.runbook("ok", "echo fine\n")
        await stack.runbook("bad", "exit 4\n")
        await stack.job("good", "ok", "mon")
        await stack.job("broken", "bad", "mon")
        await stack.wait_phase("good", "Succeeded")
        await stack.wait_phase("broken", "Failed")
        await stack.job("orphan", "ok", "nobody-runs-this")  # a group that does not exist: rejected
        await stack.wait_phase("orphan", "Failed")

        url = f"http://{leader_metrics}/metrics"
        wait_until(lambda: "hrw_operator_jobs_finished_total" in httpx.get(url, timeout=10).text
                   and value(scrape(url), "hrw_operator_jobs_finished_total", phase="Failed", reason="NonZeroExit"),
                   timeout=30, ignore=(httpx.HTTPError, AssertionError), message="the outcomes are counted")
        samples = scrape(url)
        used = used_metrics(helm.render(*ENABLED))
        missing = {expr: names - set(samples) for expr, names in used.items() if names - set(samples)}
        assert not missing, f"read by the rule or the dashboard but not exported: {missing}"

        group = {"namespace": namespace, "group": "mon"}
        assert value(samples, "hrw_operator_leader") == 1
        assert value(samples, "hrw_operator_group_ready_workers", **group) == 1
        assert value(samples, "hrw_operator_worker_state", **group, worker="w1", state="ready") == 1
        assert value(samples, "hrw_operator_worker_state", **group, worker="w1", state="missing") == 0
        assert value(samples, "hrw_operator_queued_jobs", **group) == 0
        assert value(samples, "hrw_operator_oldest_queued_job_age_seconds", **group) == 0
        assert value(samples, "hrw_operator_jobs_finished_total", **group, phase="Succeeded", reason="Completed") == 1
        assert value(samples, "hrw_operator_jobs_finished_total", **group, phase="Failed", reason="NonZeroExit") == 1
        assert value(samples, "hrw_operator_jobs_finished_total", namespace=namespace, group="nobody-runs-this",
                     phase="Failed", reason="WorkerGroupNotFound") == 1
        assert value(samples, "hrw_operator_job_pickup_seconds_count", **group) == 2
        assert value(samples, "hrw_operator_job_run_seconds_count", **group, phase="Succeeded") == 1

        standby_samples = scrape(f"http://{standby_metrics}/metrics")
        assert value(standby_samples, "hrw_operator_leader") == 0
        assert not {name for name in standby_samples if name.startswith(("hrw_operator_group", "hrw_operator_worker",
                                                                         "hrw_operator_queued"))}
        assert not [s for s in standby_samples.get("hrw_operator_jobs_finished_total", [])]
    finally:
        await stack.close()
