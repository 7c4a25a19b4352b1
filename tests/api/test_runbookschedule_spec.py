"""A RunbookSchedule's job template is a RunbookJob spec: the two schemas stay in step, and the
defaults the API server fills in are the ones the model assumes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hrw_api import ConcurrencyPolicy, RunbookSchedule
from hrw_api.runbookschedule import DEFAULT_FAILED_JOBS_HISTORY_LIMIT, DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT
from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster
CRDS = Path(__file__).resolve().parents[2] / "crds"


def _schema(file: str) -> dict:
    return yaml.safe_load((CRDS / file).read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


NOT_IN_TEMPLATES = {"cancel", "fanOut", "pinnedWorker"}
"""A template cannot cancel; fan-out is a job's alone for now (a schedule or webhook that fans out
is not built), and only the operator pins a job to a worker."""


def test_job_template_has_the_properties_of_a_job_spec_except_cancel_and_fan_out() -> None:
    job_spec = _schema("runbookjobs.yaml")["properties"]["spec"]
    template = _schema("runbookschedules.yaml")["properties"]["spec"]["properties"]["jobTemplate"]
    expected = {name: prop for name, prop in job_spec["properties"].items() if name not in NOT_IN_TEMPLATES}
    assert template["properties"] == expected, "copy crds/runbookjobs.yaml's spec properties into jobTemplate"
    assert template["required"] == job_spec["required"]


def test_schema_defaults_are_the_defaults_the_schedule_model_assumes(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=(
        "apiVersion: hrw.dev/v1alpha1\nkind: RunbookSchedule\nmetadata: {name: bare}\n"
        "spec: {schedule: '@daily', jobTemplate: {runbookRef: {name: r}, workerGroup: g}}\n"))
    stored = json.loads(cluster.kubectl("get", "-n", namespace, "runbookschedule", "bare", "-o", "json"))
    parsed = RunbookSchedule.parse(stored).spec
    bare = RunbookSchedule.parse({"metadata": {"name": "x"}, "spec": {
        "schedule": "@daily", "jobTemplate": {"runbookRef": {"name": "r"}, "workerGroup": "g"}}}).spec
    assert stored["spec"]["concurrencyPolicy"] == "Allow" and stored["spec"]["suspend"] is False
    assert parsed.concurrency_policy is bare.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert parsed.successful_jobs_history_limit == bare.successful_jobs_history_limit \
        == DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT
    assert parsed.failed_jobs_history_limit == bare.failed_jobs_history_limit == DEFAULT_FAILED_JOBS_HISTORY_LIMIT
    assert parsed.job_template.queue_timeout_seconds == bare.job_template.queue_timeout_seconds
    assert parsed.job_template.retry_policy == bare.job_template.retry_policy
