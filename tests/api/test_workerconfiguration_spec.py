"""A WorkerConfiguration (and a WorkerGroup's spec.configuration) that cannot mean anything is
refused by `kubectl apply` itself, with a message naming the rule; a good one lands as written
and `kubectl get wcfg` shows its columns (issue 16)."""

from __future__ import annotations

import pytest

from hrw_dev.controlplane import ControlPlane, ExistingCluster
from hrw_dev.crds import CrdInfo

Cluster = ControlPlane | ExistingCluster

CONFIGURATION = """
apiVersion: hrw.dev/v1alpha1
kind: WorkerConfiguration
metadata: {{name: {name}}}
spec:
{spec}
"""
INLINE = "{name: motd, interpreter: bash, test: 'true', set: 'true'}"

BAD = {
    "both_inline_scripts_and_a_runbook": (
        CONFIGURATION.format(name="both", spec="  resources: [{name: r, runbookRef: {name: x}, interpreter: bash, "
                                               "test: 'true', set: 'true'}]"),
        ("either runbookRef, or interpreter, test and set",)),
    "neither_inline_scripts_nor_a_runbook": (
        CONFIGURATION.format(name="neither", spec="  resources: [{name: r, interpreter: bash, test: 'true'}]"),
        ("either runbookRef, or interpreter, test and set",)),
    "assets_beside_a_runbook": (
        CONFIGURATION.format(name="assets", spec="  resources: [{name: r, runbookRef: {name: x}, assets: [db]}]"),
        ("spec.resources[0].assets", "reads the Runbook's assets")),
    "an_unknown_mode": (
        CONFIGURATION.format(name="mode", spec=f"  mode: ApplyAndForget\n  resources: [{INLINE}]"),
        ("spec.mode", "Unsupported value")),
    "no_resources": (
        CONFIGURATION.format(name="empty", spec="  resources: []"),
        ("spec.resources", "should have at least 1 items")),
    "a_refresh_period_too_short": (
        "apiVersion: hrw.dev/v1alpha1\nkind: WorkerGroup\nmetadata: {name: dc}\n"
        "spec: {configuration: {name: baseline, refreshSeconds: 1}}\n",
        ("spec.configuration.refreshSeconds", "greater than or equal to 5")),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_configuration_that_cannot_mean_anything_is_refused(
    cluster: Cluster, crds: list[CrdInfo], namespace: str, case: str
) -> None:
    manifest, says = BAD[case]
    result = cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=manifest)
    assert result.returncode != 0, f"{case} was accepted:\n{result.stdout}"
    for text in says:
        assert text in result.stderr, f"{case}: {text!r} not in kubectl's stderr:\n{result.stderr}"


def test_a_good_configuration_lands_with_its_default_mode_and_columns(
    cluster: Cluster, crds: list[CrdInfo], namespace: str
) -> None:
    applied = cluster.kubectl_run("apply", "-n", namespace, "-f", "-", input=CONFIGURATION.format(
        name="good", spec=f"  resources: [{INLINE}, {{name: tools, runbookRef: {{name: ensure-tools}}, "
                          "parameters: {list: [jq, curl]}}]"))
    assert applied.returncode == 0, applied.stderr
    mode = cluster.kubectl("get", "wcfg", "-n", namespace, "good", "-o", "jsonpath={.spec.mode}")
    assert mode == "ApplyAndMonitor"
    header = cluster.kubectl("get", "wcfg", "-n", namespace).splitlines()[0].split()
    assert header == ["NAME", "MODE", "RESOURCES", "READY", "REASON", "AGE"]
