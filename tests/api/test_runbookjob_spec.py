"""A RunbookJob's spec is fixed once created (except `cancel`, one way), and its group is selectable.

The immutability is what lets the operator snapshot a job once and agents trust what they
claimed; the selectable field is what the proxy relies on to show a worker its own group's
jobs only (`fieldSelector=spec.workerGroup=NAME`).
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
metadata:
  name: {name}
  labels: {{team: {team}}}
spec:
  runbookRef: {{name: {runbook}}}
  workerGroup: {group}
{extra}
"""


def job(name: str = "job", *, runbook: str = "hello", group: str = "datacenter-a", team: str = "a",
        extra: str = "  parameters: {name: World, count: 2}\n  timeoutSeconds: 60") -> str:
    return JOB.format(name=name, runbook=runbook, group=group, team=team, extra=extra)


def apply(cluster: Cluster, namespace: str, manifest: str):
    return cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=manifest)


CHANGES = {
    "runbookRef": (job(runbook="other"), "spec.runbookRef is immutable"),
    "workerGroup": (job(group="datacenter-b"), "spec.workerGroup is immutable"),
    "parameters_changed": (job(extra="  parameters: {name: Mars, count: 2}\n  timeoutSeconds: 60"),
                           "spec.parameters is immutable"),
    "parameters_removed": (job(extra="  timeoutSeconds: 60"), "spec.parameters is immutable"),
    "timeoutSeconds_changed": (job(extra="  parameters: {name: World, count: 2}\n  timeoutSeconds: 61"),
                               "spec.timeoutSeconds is immutable"),
    "ttlSecondsAfterFinished_added": (
        job(extra="  parameters: {name: World, count: 2}\n  timeoutSeconds: 60\n  ttlSecondsAfterFinished: 5"),
        "spec.ttlSecondsAfterFinished is immutable"),
    "retryPolicy_added": (
        job(extra="  parameters: {name: World, count: 2}\n  timeoutSeconds: 60\n  retryPolicy: {maxAttempts: 5}"),
        "spec.retryPolicy is immutable"),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_changing_a_job_spec_after_creation_is_refused(
    cluster: Cluster, crds: list[CrdInfo], namespace: str, change: str
) -> None:
    manifest, message = CHANGES[change]
    assert apply(cluster, namespace, job()).returncode == 0
    result = apply(cluster, namespace, manifest)
    assert result.returncode != 0, f"changing {change} was accepted"
    assert message in result.stderr


def test_metadata_and_status_of_a_job_still_change(cluster: Cluster, crds: list[CrdInfo], namespace: str) -> None:
    assert apply(cluster, namespace, job()).returncode == 0
    assert apply(cluster, namespace, job(team="b")).returncode == 0
    cluster.kubectl("patch", "-n", namespace, "rbj", "job", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"phase": "Queued", "attempt": 1}}))
    assert cluster.kubectl("get", "-n", namespace, "rbj", "job", "-o", "jsonpath={.status.phase}") == "Queued"


def test_cancel_can_be_set_to_true_but_never_back(cluster: Cluster, crds: list[CrdInfo], namespace: str) -> None:
    base = "  parameters: {name: World, count: 2}\n  timeoutSeconds: 60"
    assert apply(cluster, namespace, job()).returncode == 0
    assert apply(cluster, namespace, job(extra=base + "\n  cancel: false")).returncode == 0
    cancelled = apply(cluster, namespace, job(extra=base + "\n  cancel: true"))
    assert cancelled.returncode == 0, cancelled.stderr
    assert apply(cluster, namespace, job(extra=base + "\n  cancel: true")).returncode == 0  # idempotent

    back = apply(cluster, namespace, job(extra=base + "\n  cancel: false"))
    assert back.returncode != 0
    assert "spec.cancel cannot be set back to false once it is true" in back.stderr
    removed = cluster.kubectl_run("patch", "-n", namespace, "rbj", "job", "--type=json",
                                  "-p", '[{"op": "remove", "path": "/spec/cancel"}]')
    assert removed.returncode != 0
    assert "spec.cancel cannot be set back to false" in removed.stderr


def test_field_selector_on_worker_group_returns_only_that_groups_jobs(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    for name, group in (("a1", "datacenter-a"), ("a2", "datacenter-a"), ("b1", "datacenter-b")):
        assert apply(cluster, namespace, job(name, group=group)).returncode == 0
    names = cluster.kubectl("get", "rbj", "-n", namespace, "--field-selector", "spec.workerGroup=datacenter-a",
                            "-o", "jsonpath={.items[*].metadata.name}").split()
    assert sorted(names) == ["a1", "a2"]
    others = cluster.kubectl("get", "rbj", "-n", namespace, "--field-selector", "spec.workerGroup!=datacenter-a",
                             "-o", "jsonpath={.items[*].metadata.name}").split()
    assert others == ["b1"]
    nothing = cluster.kubectl("get", "rbj", "-n", namespace, "--field-selector", "spec.workerGroup=elsewhere",
                              "-o", "name")
    assert nothing.strip() == ""
