"""`spec.fanOut` is checked by the API server when applied: exactly one of `all` and a selector with
at least one label, a well-formed budget (maxConcurrency at least 1, percents up to 100%), selector
requirements that fit their operator; it is immutable, and it excludes `spec.pinnedWorker`.
The printer column `Workers` reads the operator's summary.
"""

from __future__ import annotations

import json

import pytest

from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster

JOB = """
apiVersion: hrw.dev/v1alpha1
kind: RunbookJob
metadata: {{name: {name}}}
spec:
  runbookRef: {{name: hello}}
  workerGroup: datacenter-a
{spec}
"""

REFUSED = {
    "neither_all_nor_selector": ("  fanOut: {maxConcurrency: 2}", "spec.fanOut must set exactly one of all: true"),
    "all_and_selector": ("  fanOut: {all: true, selector: {matchLabels: {role: web}}}",
                         "spec.fanOut must set exactly one of all: true"),
    "empty_selector": ("  fanOut: {selector: {}}", "spec.fanOut.selector must name at least one label"),
    "max_concurrency_zero": ("  fanOut: {all: true, maxConcurrency: 0}",
                             "spec.fanOut.maxConcurrency must be a count of at least 1"),
    "max_concurrency_zero_percent": ("  fanOut: {all: true, maxConcurrency: '0%'}",
                                     "spec.fanOut.maxConcurrency must be a count of at least 1"),
    "max_errors_over_100_percent": ("  fanOut: {all: true, maxErrors: '150%'}",
                                    "spec.fanOut.maxErrors must be a count of at least 0 or a percent"),
    "max_errors_negative": ("  fanOut: {all: true, maxErrors: -1}",
                            "spec.fanOut.maxErrors must be a count of at least 0"),
    "in_without_values": ("  fanOut: {selector: {matchExpressions: [{key: zone, operator: In}]}}",
                          "with operator In or NotIn needs values"),
    "unknown_operator": ("  fanOut: {selector: {matchExpressions: [{key: zone, operator: Near}]}}",
                         "Unsupported value"),
    "fan_out_and_pinned": ("  fanOut: {all: true}\n  pinnedWorker: w1", "spec.fanOut and spec.pinnedWorker exclude"),
}


def _apply(cluster: Cluster, namespace: str, manifest: str):
    return cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=manifest)


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_a_bad_fan_out_is_refused_with_a_message_naming_the_field(
        cluster: Cluster, crds: list[CrdInfo], namespace: str, case: str) -> None:
    spec, says = REFUSED[case]
    result = _apply(cluster, namespace, JOB.format(name="bad", spec=spec))
    assert result.returncode != 0, f"{case} was accepted:\n{result.stdout}"
    assert says in result.stderr, result.stderr


def test_a_good_fan_out_gets_the_ssm_defaults_and_cannot_change(
        cluster: Cluster, crds: list[CrdInfo], namespace: str) -> None:
    good = JOB.format(name="fleet", spec="  fanOut:\n    selector:\n      matchLabels: {role: web}\n"
                                         "      matchExpressions: [{key: zone, operator: In, values: [a, b]}]")
    result = _apply(cluster, namespace, good)
    assert result.returncode == 0, result.stderr
    job = json.loads(cluster.kubectl("get", "-n", namespace, "rbj", "fleet", "-o", "json"))
    assert (job["spec"]["fanOut"]["maxConcurrency"], job["spec"]["fanOut"]["maxErrors"]) == (50, 0)
    changed = _apply(cluster, namespace, good.replace("role: web", "role: db"))
    assert changed.returncode != 0 and "spec.fanOut is immutable" in changed.stderr
    percents = _apply(cluster, namespace, JOB.format(name="percents", spec="  fanOut: {all: true, "
                                                                          "maxConcurrency: '25%', maxErrors: '10%'}"))
    assert percents.returncode == 0, percents.stderr


def test_the_workers_column_shows_a_fan_out_jobs_progress(
        cluster: Cluster, crds: list[CrdInfo], namespace: str) -> None:
    assert _apply(cluster, namespace, JOB.format(name="fleet", spec="  fanOut: {all: true}")).returncode == 0
    status = {"phase": "Running", "attempt": 1, "fanOut": {"targets": 3, "progress": "2/3 done, 1 failed",
                                                          "workers": [{"worker": "w1", "phase": "Succeeded"}]}}
    cluster.kubectl("patch", "-n", namespace, "rbj", "fleet", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))
    header, row = cluster.kubectl("get", "-n", namespace, "rbj", "fleet").splitlines()
    assert "WORKERS" in header.split()
    assert "2/3 done, 1 failed" in row
