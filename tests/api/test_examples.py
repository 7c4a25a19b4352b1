"""The examples apply cleanly, and what a kubectl user sees of them is what the CRDs promise.

`kubectl apply` of each file in examples/, `kubectl get hrw` listing every kind, the printer
columns, `kubectl explain` documenting the fields, and the schema defaults the API server fills
in being the very defaults the models in api/hrw_api assume.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from hrw_api import RunbookJob, WorkerGroup, WorkerGroupSpec
from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def _contains(stored: object, written: object) -> bool:
    """Whether `stored` holds everything of `written` (the API server may add defaults, never drop)."""
    if isinstance(written, dict):
        return isinstance(stored, dict) and all(k in stored and _contains(stored[k], v) for k, v in written.items())
    if isinstance(written, list):
        return (isinstance(stored, list) and len(stored) == len(written)
                and all(_contains(a, b) for a, b in zip(stored, written, strict=True)))
    return stored == written


def _apply_all_examples(cluster: Cluster, namespace: str) -> None:
    for path in EXAMPLE_FILES:
        cluster.kubectl("apply", "-n", namespace, "-f", str(path))


def test_every_example_applies_cleanly_and_lands_as_written(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {
        "workergroup.yaml", "asset-variable.yaml", "asset-credential.yaml", "runbook.yaml",
        "runbook-configmap.yaml", "runbookjob.yaml",
    }
    _apply_all_examples(cluster, namespace)
    for path in EXAMPLE_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            kind, name = doc["kind"], doc["metadata"]["name"]
            stored = json.loads(cluster.kubectl("get", "-n", namespace, kind.lower(), name, "-o", "json"))
            for part in ("spec", "data"):
                if part in doc:
                    assert _contains(stored[part], doc[part]), f"{path.name}: {kind}/{name} {part} changed"


def test_kustomize_form_of_the_configmap_runbook_applies(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-k", str(EXAMPLES / "kustomize"))
    runbook = json.loads(cluster.kubectl("get", "-n", namespace, "runbook", "host-report", "-o", "json"))
    ref = runbook["spec"]["contentFrom"]["configMapKeyRef"]
    config_map = json.loads(cluster.kubectl("get", "-n", namespace, "configmap", ref["name"], "-o", "json"))
    assert ref["key"] in config_map["data"]


def test_get_hrw_lists_every_kind_with_its_printer_columns(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    _apply_all_examples(cluster, namespace)
    listing = cluster.kubectl("get", "hrw", "-n", namespace)
    for name in ("workergroup.hrw.dev/datacenter-a", "asset.hrw.dev/greeting", "asset.hrw.dev/example-db",
                 "runbook.hrw.dev/hello", "runbook.hrw.dev/host-report", "runbookjob.hrw.dev/hello-world",
                 "runbookschedule.hrw.dev/hello-weekdays"):
        assert name in listing
    jobs = cluster.kubectl("get", "rbj", "-n", namespace, "-o", "wide").splitlines()
    assert jobs[0].split() == ["NAME", "PHASE", "RUNBOOK", "GROUP", "RUN", "AS", "WORKER", "ATTEMPT", "WORKERS",
                               "REASON", "EXIT", "AGE"]
    assert jobs[1].split()[:3] == ["hello-world", "hello", "datacenter-a"]  # no status yet: phase is blank
    assert cluster.kubectl("get", "rb", "-n", namespace, "-o", "wide").split()[:4] == [
        "NAME", "INTERPRETER", "READY", "DIGEST"]
    assert cluster.kubectl("get", "ast", "-n", namespace).split()[:3] == ["NAME", "TYPE", "READY"]
    assert cluster.kubectl("get", "wg", "-n", namespace).splitlines()[0].split()[:4] == [
        "NAME", "READY", "WORKERS", "AVAILABLE"]
    schedules = cluster.kubectl("get", "rbs", "-n", namespace).splitlines()
    assert schedules[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert schedules[1].split()[:7] == ["hello-weekdays", "30", "6", "*", "*", "1-5", "Europe/Berlin"]


def test_printer_columns_read_the_status_the_contract_writes(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    from hrw_api import patches

    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "runbookjob.yaml"))
    job = json.loads(cluster.kubectl("get", "-n", namespace, "rbj", "hello-world", "-o", "json"))
    for patch in (patches.queue(job["metadata"]["resourceVersion"], "sha256:" + "a" * 64, 1,
                                run_as={"user": "hrw-job"}),
                  patches.claim(1, "worker-1")):
        cluster.kubectl("patch", "-n", namespace, "rbj", "hello-world", "--subresource=status",
                        "--type=json", "-p", json.dumps(patch))
    row = cluster.kubectl("get", "rbj", "-n", namespace, "hello-world", "-o", "wide", "--no-headers").split()
    assert row[:8] == ["hello-world", "Running", "hello", "datacenter-a", "hrw-job", "worker-1", "1", "Started"]


def test_kubectl_explain_documents_the_job_parameters(cluster: Cluster, crds: list[CrdInfo]) -> None:
    text = " ".join(cluster.kubectl("explain", "runbookjob.spec.parameters").split())
    assert "The parameter values, by name" in text
    assert "HRW_PARAM_<NAME>" in text
    recursive = cluster.kubectl("explain", "runbookjob.spec", "--recursive")
    for field in ("runbookRef", "workerGroup", "retryPolicy", "maxAttempts", "retryOn", "cancel"):
        assert field in recursive


def test_kubectl_explain_documents_the_self_fencing_margin(cluster: Cluster, crds: list[CrdInfo]) -> None:
    text = " ".join(cluster.kubectl("explain", "workergroup.spec.selfFencingMarginSeconds").split())
    assert "an agent that cannot renew its Lease stops its jobs" in text
    assert "Less than leaseDurationSeconds; default a third of it" in text


def test_kubectl_explain_documents_run_as(cluster: Cluster, crds: list[CrdInfo]) -> None:
    group = " ".join(cluster.kubectl("explain", "workergroup.spec.runAs").split())
    for promise in ("hrw-job", "never the agent's own user", "spec.allowedRunAs", "spec.allowRoot", "RunAsUnknown"):
        assert promise in group, promise
    assert "user" in group and "group" in group
    root = " ".join(cluster.kubectl("explain", "workergroup.spec.allowRoot").split())
    assert "The only way to let jobs of this group run as root" in root
    runbook = " ".join(cluster.kubectl("explain", "runbook.spec.runAs").split())
    assert "RunAsNotAllowed" in runbook
    status = " ".join(cluster.kubectl("explain", "runbookjob.status.runAs").split())
    assert "snapshotted when it was queued" in status


def test_schema_defaults_are_the_defaults_the_models_assume(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=(
        "apiVersion: hrw.dev/v1alpha1\nkind: WorkerGroup\nmetadata: {name: bare}\n"
    ))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=(
        "apiVersion: hrw.dev/v1alpha1\nkind: RunbookJob\nmetadata: {name: bare}\n"
        "spec: {runbookRef: {name: hello}, workerGroup: bare, retryPolicy: {}}\n"
    ))
    group = json.loads(cluster.kubectl("get", "-n", namespace, "wg", "bare", "-o", "json"))
    assert set(group["spec"]) == {"maxJobsPerWorker", "leaseDurationSeconds", "requireSignedRunbooks",
                                  "jobGracePeriodSeconds", "outputLimitBytes", "allowRoot",
                                  "registration"}  # {groupToken: false}: the long-lived token is opt-in
    assert WorkerGroup.parse(group).spec == WorkerGroupSpec()
    job = json.loads(cluster.kubectl("get", "-n", namespace, "rbj", "bare", "-o", "json"))
    assert job["spec"]["queueTimeoutSeconds"] == 3600
    assert job["spec"]["retryPolicy"] == {"maxAttempts": 3, "retryOn": ["WorkerLost"]}
    parsed = RunbookJob.parse(job).spec
    defaults = RunbookJob.parse({"metadata": {"name": "x"}, "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"}})
    assert (parsed.queue_timeout_seconds, parsed.retry_policy) == (
        defaults.spec.queue_timeout_seconds, defaults.spec.retry_policy)
