"""The typed models parse the example manifests, name the field of a bad object, and the CRDs
in crds/ describe every field the models read (and nothing the models do not know).

The last part is checked on the YAML itself, without a cluster: a field the CRD lacks would be
pruned by the API server before any model saw it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hrw_api import (
    Asset,
    AssetType,
    Condition,
    Interpreter,
    ParameterType,
    Runbook,
    RunbookJob,
    WorkerGroup,
    conditions,
)
from hrw_api.errors import InvalidObject
from hrw_api.phases import JobPhase

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise LookupError(f"{kind}/{name} not in examples/")


def crd(plural: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "crds" / f"{plural}.yaml").read_text())
    return doc["spec"]["versions"][0]


def schema(plural: str) -> dict[str, Any]:
    return crd(plural)["schema"]["openAPIV3Schema"]


# ------------------------------------------------------------------------------- the examples


def test_example_runbook_parses_with_its_parameters_and_assets() -> None:
    runbook = Runbook.parse(example("Runbook", "hello"))
    assert runbook.spec.interpreter is Interpreter.BASH
    assert runbook.spec.content and "$HRW_OUTPUTS" in runbook.spec.content
    params = {p.name: p for p in runbook.spec.parameters}
    assert (params["name"].type, params["name"].required) == (ParameterType.STRING, True)
    assert (params["count"].type, params["count"].default) == (ParameterType.INTEGER, 1)
    assert runbook.spec.assets == ("greeting", "example-db")


def test_example_configmap_runbook_reads_its_content_from_the_configmap() -> None:
    runbook = Runbook.parse(example("Runbook", "host-report"))
    assert runbook.spec.interpreter is Interpreter.PYTHON3
    assert runbook.spec.content is None
    assert runbook.spec.content_from is not None
    config_map = example("ConfigMap", runbook.spec.content_from.name)
    assert runbook.spec.content_from.key in config_map["data"]


def test_example_assets_parse_to_their_fields() -> None:
    variable = Asset.parse(example("Asset", "greeting"))
    assert variable.type is AssetType.VARIABLE
    assert [(f.name, f.value) for f in variable.fields] == [("value", "Hello")]
    credential = Asset.parse(example("Asset", "example-db"))
    assert credential.type is AssetType.CREDENTIAL
    password = credential.fields[1]
    assert password.name == "password" and password.value is None
    assert password.secret_key_ref is not None and password.secret_key_ref.name == "example-db-secret"
    assert password.secret_key_ref.key in example("Secret", "example-db-secret")["stringData"]


def test_example_worker_group_and_job_parse() -> None:
    group = WorkerGroup.parse(example("WorkerGroup", "datacenter-a"))
    assert group.spec.max_jobs_per_worker == 2
    assert group.spec.interpreters == (Interpreter.BASH, Interpreter.SH, Interpreter.PYTHON3)
    job = RunbookJob.parse(example("RunbookJob", "hello-world"))
    assert (job.spec.runbook, job.spec.worker_group) == ("hello", "datacenter-a")
    assert job.spec.parameters == {"name": "World", "count": 3}
    assert job.status.phase is JobPhase.PENDING and job.holder is None


# ------------------------------------------------------------------------------ bad objects


@pytest.mark.parametrize(("model", "obj", "field"), [
    (Runbook, {"metadata": {"name": "r"}, "spec": {"interpreter": "perl", "content": "x"}}, "spec.interpreter"),
    (Runbook, {"metadata": {"name": "r"}, "spec": {"interpreter": "sh"}}, "spec"),
    (Runbook, {"metadata": {"name": "r"}, "spec": {"interpreter": "sh", "content": "x",
                                                     "parameters": [{"name": "a", "type": "date"}]}},
     "spec.parameters[0].type"),
    (Asset, {"metadata": {"name": "a"}, "spec": {"type": "Credential", "username": "u"}}, "spec.passwordFrom"),
    (Asset, {"metadata": {"name": "a"}, "spec": {"type": "Connection", "fields": []}}, "spec.fields"),
    (WorkerGroup, {"metadata": {"name": "g"}, "spec": {"maxJobsPerWorker": "2"}}, "spec.maxJobsPerWorker"),
    (RunbookJob, {"metadata": {"name": "j"}, "spec": {"workerGroup": "g"}}, "spec.runbookRef.name"),
    (RunbookJob, {"metadata": {"name": "j"}, "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g"},
                  "status": {"phase": "Exploded"}}, "status.phase"),
    (RunbookJob, {"metadata": {"name": "j"}, "spec": {"runbookRef": {"name": "r"}, "workerGroup": "g",
                                                       "retryPolicy": {"retryOn": ["Timeout"]}}},
     "spec.retryPolicy.retryOn"),
])
def test_a_bad_object_is_refused_naming_the_field(model: Any, obj: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidObject) as caught:
        model.parse(obj)
    assert caught.value.field == field


# ------------------------------------------------------------------------------- conditions


def test_merging_an_unchanged_condition_keeps_its_transition_time() -> None:
    old = Condition("Ready", "True", "Found", "ok", "2026-01-01T00:00:00Z", 1)
    merged = conditions.merge([old], conditions.make(conditions.READY, True, "Found", "still ok", 2))
    assert merged[0].last_transition_time == "2026-01-01T00:00:00Z"
    assert (merged[0].message, merged[0].observed_generation) == ("still ok", 2)
    flipped = conditions.merge(merged, conditions.make(conditions.READY, False, "Missing", "gone", 3))
    assert flipped[0].status == "False" and flipped[0].last_transition_time != "2026-01-01T00:00:00Z"
    assert conditions.same(merged, [old]) is False
    assert conditions.same([old], [Condition("Ready", "True", "Found", "ok", "later", 1)])


def test_conditions_round_trip_through_the_status_shape() -> None:
    made = conditions.make(conditions.AVAILABLE, True, "WorkersReady", "1 ready", 4)
    assert Condition.parse(made.to_dict()) == made
    assert conditions.is_true([made], "Available") and not conditions.is_true([made], "Ready")


# ------------------------------------------------------------------ the CRDs match the models


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for key, child in (node.get("properties") or {}).items():
        out += walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[]")
    return out


@pytest.mark.parametrize("plural", ["runbooks", "assets", "workergroups", "runbookjobs"])
def test_every_crd_field_has_a_description(plural: str) -> None:
    undocumented = [path for path, node in walk(schema(plural))
                    if path not in {".metadata"} and not node.get("description")]
    assert undocumented == []


@pytest.mark.parametrize(("plural", "paths"), [
    ("runbooks", [".spec.interpreter", ".spec.content", ".spec.contentFrom.configMapKeyRef.name",
                  ".spec.contentFrom.configMapKeyRef.key", ".spec.parameters[].name", ".spec.parameters[].type",
                  ".spec.parameters[].required", ".spec.parameters[].default", ".spec.parameters[].enum",
                  ".spec.parameters[].pattern", ".spec.parameters[].description", ".spec.assets",
                  ".spec.timeoutSeconds", ".spec.signature.keyId", ".spec.signature.value", ".spec.description",
                  ".status.digest", ".status.observedGeneration", ".status.conditions"]),
    ("assets", [".spec.type", ".spec.value", ".spec.valueFrom.secretKeyRef.name", ".spec.valueFrom.secretKeyRef.key",
                ".spec.username", ".spec.passwordFrom.secretKeyRef.key", ".spec.certificateFrom.secretRef.name",
                ".spec.fields[].name", ".spec.fields[].value", ".spec.fields[].valueFrom.secretKeyRef.name",
                ".status.conditions"]),
    ("workergroups", [".spec.maxJobsPerWorker", ".spec.leaseDurationSeconds", ".spec.requireSignedRunbooks",
                      ".spec.trustedKeys[].keyId", ".spec.trustedKeys[].publicKey", ".spec.interpreters",
                      ".spec.jobGracePeriodSeconds", ".spec.outputLimitBytes", ".spec.selfFencingMarginSeconds",
                      ".spec.registration.groupToken", ".status.workers[].name",
                      ".status.workers[].hostname", ".status.workers[].agentVersion",
                      ".status.workers[].interpreters", ".status.workers[].capacity", ".status.workers[].ready",
                      ".status.workers[].draining", ".spec.minAgentVersion", ".status.workers[].platform",
                      ".status.workers[].runningJobs", ".status.workers[].outdated", ".status.workers[].reason",
                      ".status.workers[].message", ".status.workers[].lastHeartbeatTime",
                      ".status.workers[].lastError", ".status.workers[].lastErrorTime",
                      ".status.readyWorkers", ".status.registrationTokenSecret",
                      ".status.conditions"]),
    ("runbookjobs", [".spec.runbookRef.name", ".spec.workerGroup", ".spec.parameters", ".spec.timeoutSeconds",
                     ".spec.queueTimeoutSeconds", ".spec.retryPolicy.maxAttempts", ".spec.retryPolicy.retryOn",
                     ".spec.ttlSecondsAfterFinished", ".spec.cancel", ".status.phase", ".status.attempt",
                     ".status.claim.worker", ".status.claim.attempt", ".status.claim.claimedAt",
                     ".status.runbookDigest", ".status.queuedTime", ".status.startTime", ".status.completionTime",
                     ".status.exitCode", ".status.reason", ".status.message", ".status.outputs",
                     ".status.output.bytes", ".status.output.lines", ".status.output.chunks", ".status.output.tail",
                     ".status.output.truncated", ".status.observedGeneration", ".status.conditions"]),
])
def test_crd_declares_every_field_the_models_read(plural: str, paths: list[str]) -> None:
    declared = {path for path, _ in walk(schema(plural))}
    assert [p for p in paths if p not in declared] == []


def test_crd_enums_are_the_models_enums() -> None:
    runbook, jobs = dict(walk(schema("runbooks"))), dict(walk(schema("runbookjobs")))
    assert runbook[".spec.interpreter"]["enum"] == [i.value for i in Interpreter]
    assert runbook[".spec.parameters[].type"]["enum"] == [t.value for t in ParameterType]
    assert dict(walk(schema("assets")))[".spec.type"]["enum"] == [t.value for t in AssetType]
    assert dict(walk(schema("workergroups")))[".spec.interpreters[]"]["enum"] == [i.value for i in Interpreter]
    assert jobs[".status.phase"]["enum"] == [p.value for p in JobPhase]
    assert jobs[".spec.retryPolicy.retryOn[]"]["enum"] == ["WorkerLost", "Failed"]


def test_every_crd_has_the_status_subresource_short_name_and_category() -> None:
    short = {"runbooks": "rb", "assets": "ast", "workergroups": "wg", "runbookjobs": "rbj"}
    for plural, name in short.items():
        doc = yaml.safe_load((ROOT / "crds" / f"{plural}.yaml").read_text())
        assert doc["spec"]["group"] == "hrw.dev" and doc["spec"]["scope"] == "Namespaced"
        assert doc["spec"]["names"]["shortNames"] == [name]
        assert doc["spec"]["names"]["categories"] == ["hrw"]
        version = doc["spec"]["versions"][0]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
    assert crd("runbookjobs")["selectableFields"] == [{"jsonPath": ".spec.workerGroup"}]
