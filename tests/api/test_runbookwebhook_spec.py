"""The RunbookWebhook CRD: its job template stays a RunbookSchedule's (hence a RunbookJob spec), a
bad manifest is refused by `kubectl apply` with a message a person understands, and `kubectl get`
shows the columns that matter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hrw_api import RunbookWebhook
from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster
CRDS = Path(__file__).resolve().parents[2] / "crds"
WEBHOOK = """
apiVersion: hrw.dev/v1alpha1
kind: RunbookWebhook
metadata: {{name: {name}}}
spec:
  jobTemplate:
    runbookRef: {{name: deploy}}
    workerGroup: dc
    parameters: {{env: staging}}
{spec}
"""


def _schema(file: str) -> dict:
    return yaml.safe_load((CRDS / file).read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_the_job_template_is_the_schedules_job_template() -> None:
    schedule = _schema("runbookschedules.yaml")["properties"]["spec"]["properties"]["jobTemplate"]
    webhook = _schema("runbookwebhooks.yaml")["properties"]["spec"]["properties"]["jobTemplate"]
    assert webhook["properties"] == schedule["properties"], "copy runbookschedules.yaml's jobTemplate properties"
    assert webhook["required"] == schedule["required"]


@pytest.mark.parametrize(("name", "spec", "says"), [
    ("bad-expiry", "  expiresAt: next tuesday", ("spec.expiresAt",)),
    ("bad-param-name", "  allowedParameters: ['$(rm -rf)']", ("spec.allowedParameters",)),
    ("dotted.name", "", ("must be a DNS-1123 label", "/hooks/v1/<namespace>/<name>")),
])
def test_a_bad_webhook_is_refused_naming_the_field(cluster: Cluster, crds: list[CrdInfo], namespace: str,
                                                    name: str, spec: str, says: tuple[str, ...]) -> None:
    result = cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=WEBHOOK.format(name=name, spec=spec))
    assert result.returncode != 0, result.stdout
    for text in says:
        assert text in result.stderr, result.stderr


def test_a_good_webhook_is_stored_parsed_and_shown_with_its_runbook_group_and_expiry(
        cluster: Cluster, crds: list[CrdInfo], namespace: str) -> None:
    spec = "  allowedParameters: [version]\n  expiresAt: '2030-01-01T00:00:00Z'"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=WEBHOOK.format(name="ci", spec=spec))
    stored = json.loads(cluster.kubectl("get", "-n", namespace, "runbookwebhook", "ci", "-o", "json"))
    hook = RunbookWebhook.parse(stored)
    assert hook.spec.allowed_parameters == ("version",)
    assert hook.spec.job_template.queue_timeout_seconds == 3600  # the schema's default, as for a job
    table = cluster.kubectl("get", "-n", namespace, "rbw")
    header, row = table.splitlines()
    assert header.split() == ["NAME", "RUNBOOK", "GROUP", "EXPIRES", "READY", "AGE"]
    assert row.split()[:3] == ["ci", "deploy", "dc"]
    assert "runbookwebhooks" in cluster.kubectl("api-resources", "--categories=hrw", "-o", "name")
