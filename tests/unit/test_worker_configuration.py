"""Worker configurations without a cluster (issue 16): the contract's model and report, the
operator's verdict and compliance summary, the proxy's claim rule, the CLI's table."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hrw_api import InvalidObject, Runbook, WorkerGroup, WorkerLease, names
from hrw_api.times import format_micro_time
from hrw_api.workerconfiguration import (
    MAX_REPORT_BYTES,
    ComplianceReport,
    Mode,
    ResourceResult,
    ResourceState,
    WorkerCompliance,
    WorkerConfiguration,
)
from hrw_cli.compliance import table
from hrw_operator import configurations
from hrw_operator.frame import Observed
from hrw_operator.scripts import SyntaxChecker
from hrw_proxy.configuration import claim_refusal

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
INLINE = {"name": "motd", "interpreter": "bash", "test": "true\n", "set": "true\n", "parameters": {"a": 1}}


def config_body(*resources: dict[str, Any], mode: str = "ApplyAndMonitor") -> dict[str, Any]:
    return {"metadata": {"name": "files", "namespace": "ns", "generation": 1},
            "spec": {"mode": mode, "resources": list(resources)}}


def runbook_observed(name: str, *, ready: bool = True, interpreter: str = "bash",
                     parameters: list[dict[str, Any]] | None = None) -> Observed[Runbook]:
    body = {"metadata": {"name": name, "namespace": "ns"},
            "spec": {"interpreter": interpreter, "content": "true\n", "parameters": parameters or []},
            "status": {"digest": "sha256:" + "a" * 64,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "reason": "ContentResolved" if ready else "ConfigMapNotFound",
                                       "message": "m"}]}}
    return Observed.parse(body, Runbook.parse)


def group(**configuration: Any) -> WorkerGroup:
    spec: dict[str, Any] = {"interpreters": ["bash"]}
    if configuration:
        spec["configuration"] = {"name": "files", **configuration}
    return WorkerGroup.parse({"metadata": {"name": "dc", "namespace": "ns"}, "spec": spec})


def report(*states: ResourceState, digest: str = "sha256:" + "d" * 64) -> ComplianceReport:
    return ComplianceReport("files", digest, NOW, NOW,
                            tuple(ResourceResult(f"r{i}", s, "why" if s is not ResourceState.COMPLIANT else "")
                                  for i, s in enumerate(states)))


def lease(worker: str, compliance: ComplianceReport | None, *, renewed: datetime = NOW) -> WorkerLease:
    annotations = {names.ANNOTATION_COMPLIANCE: compliance.to_annotation() if compliance else ""}
    return WorkerLease.parse({"metadata": {"name": names.lease_name("dc", worker), "namespace": "ns",
                                           "labels": {names.LABEL_WORKER_GROUP: "dc", names.LABEL_WORKER: worker},
                                           "annotations": annotations},
                              "spec": {"holderIdentity": worker, "leaseDurationSeconds": 30,
                                       "renewTime": format_micro_time(renewed)}})


# ------------------------------------------------------------------------------------ the model


def test_a_configuration_parses_inline_and_runbook_resources_in_order():
    parsed = WorkerConfiguration.parse(config_body(INLINE, {"name": "ref", "runbookRef": {"name": "ensure"}}))
    assert parsed.spec.mode is Mode.APPLY_AND_MONITOR
    assert [r.name for r in parsed.spec.resources] == ["motd", "ref"]
    assert parsed.spec.resources[0].inline and parsed.spec.resources[1].runbook == "ensure"
    assert parsed.spec.runbooks == ("ensure",)


@pytest.mark.parametrize(("resource", "field"), [
    ({**INLINE, "runbookRef": {"name": "x"}}, "spec.resources[0]"),
    ({"name": "half", "interpreter": "bash", "test": "true"}, "spec.resources[0].set"),
    ({**INLINE, "interpreter": "perl"}, "spec.resources[0].interpreter"),
])
def test_a_resource_that_is_neither_inline_nor_a_runbook_is_refused_naming_the_field(resource, field):
    with pytest.raises(InvalidObject) as refused:
        WorkerConfiguration.parse(config_body(resource))
    assert refused.value.field == field


def test_resource_names_are_unique():
    with pytest.raises(InvalidObject, match="used twice"):
        WorkerConfiguration.parse(config_body(INLINE, INLINE))


def test_a_report_travels_in_the_lease_and_a_bad_one_is_refused():
    sent = report(ResourceState.COMPLIANT, ResourceState.DRIFTED)
    assert lease("w1", sent).info.compliance == sent
    assert lease("w1", None).info.compliance is None
    oversized = ComplianceReport("files", sent.digest, NOW, NOW,
                                 tuple(ResourceResult(f"r{i}", ResourceState.FAILED, "x" * 256) for i in range(60)))
    with pytest.raises(InvalidObject):
        lease("w1", oversized)
    with pytest.raises(InvalidObject, match="state"):
        ComplianceReport.from_annotation('{"configuration":"f","digest":"sha256:x","appliedTime":"2026-12-02T03:00:00Z",'
                                         '"checkedTime":"2026-12-02T03:00:00Z","resources":[{"name":"a","state":"Fine"}]}',
                                         "a")
    assert len(sent.to_annotation()) < MAX_REPORT_BYTES


# --------------------------------------------------------------------------- the operator's verdict


def facts(**kwargs: Any) -> configurations.ConfigurationFacts:
    return configurations.ConfigurationFacts(**kwargs)


def test_a_configuration_naming_a_missing_or_unready_runbook_is_not_ready_with_the_reason():
    parsed = WorkerConfiguration.parse(config_body({"name": "ref", "runbookRef": {"name": "ensure"}}))
    missing = configurations.evaluate(parsed, facts(runbooks={"ensure": None}))
    assert (missing.ready, missing.reason) == (False, "RunbookNotFound")
    assert "spec.resources[0] (ref): Runbook 'ensure' not found" in missing.message and missing.digest is None
    unready = configurations.evaluate(parsed, facts(runbooks={"ensure": runbook_observed("ensure", ready=False)}))
    assert unready.reason == "RunbookNotReady" and "ConfigMapNotFound" in unready.message


def test_parameters_must_fit_the_runbook_and_assets_must_exist():
    parsed = WorkerConfiguration.parse(config_body({"name": "ref", "runbookRef": {"name": "ensure"},
                                                    "parameters": {"path": 3}}, {**INLINE, "assets": ["db"]}))
    runbook = runbook_observed("ensure", parameters=[{"name": "path", "type": "string", "required": True}])
    verdict = configurations.evaluate(parsed, facts(runbooks={"ensure": runbook}, assets={"db": None}))
    assert verdict.reason == "InvalidParameters"
    assert "parameter 'path' must be of type string" in verdict.message
    assert "Asset 'db' not found" in verdict.message


def test_an_interpreter_a_group_using_it_does_not_allow_is_reported():
    parsed = WorkerConfiguration.parse(config_body({**INLINE, "interpreter": "python3"}))
    verdict = configurations.evaluate(parsed, facts(groups=[group(refreshSeconds=60)]))
    assert verdict.reason == "InterpreterNotAllowed" and "WorkerGroup 'dc' does not allow" in verdict.message


def test_a_valid_configuration_has_a_digest_that_moves_with_what_it_runs():
    parsed = WorkerConfiguration.parse(config_body(INLINE, {"name": "ref", "runbookRef": {"name": "ensure"}}))
    first = configurations.evaluate(parsed, facts(runbooks={"ensure": runbook_observed("ensure")}))
    assert first.ready and first.reason == "Valid" and first.digest and first.digest.startswith("sha256:")
    assert first.runbook_digests == {"ensure": "sha256:" + "a" * 64}
    again = configurations.evaluate(parsed, facts(runbooks={"ensure": runbook_observed("ensure")}))
    assert again.digest == first.digest
    changed = WorkerConfiguration.parse(config_body({**INLINE, "parameters": {"a": 2}},
                                                    {"name": "ref", "runbookRef": {"name": "ensure"}}))
    assert configurations.evaluate(changed, facts(runbooks={"ensure": runbook_observed("ensure")})).digest \
        != first.digest


def test_scripts_that_do_not_parse_are_found_without_running_them():
    checker = SyntaxChecker()
    from hrw_api import Interpreter

    assert "python3 syntax error (line 1)" in (asyncio.run(checker.problem(Interpreter.PYTHON3, "def (:\n")) or "")
    assert asyncio.run(checker.problem(Interpreter.PYTHON3, "print('ok')\n")) is None
    if shutil.which("bash"):
        assert "bash syntax error" in (asyncio.run(checker.problem(Interpreter.BASH, "if then fi\n")) or "")
        assert asyncio.run(checker.problem(Interpreter.BASH, "echo ok\n")) is None


# --------------------------------------------------------------------------------- the compliance


def test_a_worker_is_compliant_only_with_the_current_digest_and_every_resource_in_place():
    digest = "sha256:" + "d" * 64
    judge = configurations.judge
    assert judge("w1", report(ResourceState.COMPLIANT, ResourceState.CORRECTED), "files", digest).state \
        is WorkerCompliance.COMPLIANT
    assert judge("w1", report(ResourceState.DRIFTED), "files", digest).state is WorkerCompliance.DRIFTED
    assert judge("w1", report(ResourceState.DRIFTED, ResourceState.FAILED), "files", digest).state \
        is WorkerCompliance.FAILED
    assert judge("w1", report(ResourceState.COMPLIANT, digest="sha256:old"), "files", digest).state \
        is WorkerCompliance.PENDING
    assert judge("w1", None, "files", digest).state is WorkerCompliance.PENDING
    entry = judge("w1", report(ResourceState.COMPLIANT, ResourceState.DRIFTED), "files", digest)
    assert [r.name for r in entry.resources] == ["r1"]  # only what was not simply compliant


def test_the_summary_counts_ready_workers_and_news_comes_once_per_drift():
    digest = "sha256:" + "d" * 64
    leases = [lease("w1", report(ResourceState.COMPLIANT)), lease("w2", report(ResourceState.DRIFTED)),
              lease("w3", report(ResourceState.COMPLIANT), renewed=NOW - timedelta(minutes=5))]
    summary, news = configurations.summarise(group(refreshSeconds=60), leases, digest, NOW)
    assert summary is not None and (summary.compliant_workers, summary.ready_workers) == (1, 2)
    assert summary.summary == "1/2"
    assert [(n.reason, n.note) for n in news] == [("ConfigurationDrifted", "worker w2: resource r0 drifted: why")]
    written = WorkerGroup.parse({"metadata": {"name": "dc", "namespace": "ns"},
                                 "spec": {"configuration": {"name": "files"}},
                                 "status": {"compliance": summary.to_dict()}})
    assert configurations.summarise(written, leases, digest, NOW)[1] == []
    assert configurations.summarise(WorkerGroup.parse({"metadata": {"name": "dc"}, "spec": {}}), leases, digest,
                                    NOW) == (None, [])


def test_each_correction_is_news_once():
    corrected = lease("w1", report(ResourceState.CORRECTED))
    found = configurations.corrections([corrected], {})
    assert [(w, n.reason) for w, _, n in found] == [("w1", "ConfigurationCorrected")]
    assert configurations.corrections([corrected], {"w1": NOW}) == []


# ------------------------------------------------------------------------- the claim, the table


def with_compliance(state: str, digest: str = "sha256:" + "d" * 64) -> WorkerGroup:
    return WorkerGroup.parse({"metadata": {"name": "dc", "namespace": "ns"},
                              "spec": {"configuration": {"name": "files", "requireCompliance": True}},
                              "status": {"compliance": {"configuration": "files", "digest": "sha256:" + "d" * 64,
                                                        "readyWorkers": 1,
                                                        "compliantWorkers": int(state == "Compliant"),
                                                        "workers": [{"name": "w1", "state": state,
                                                                     "digest": digest}]}}})


def test_a_group_requiring_compliance_lets_only_compliant_workers_claim():
    assert claim_refusal(with_compliance("Compliant"), "w1") is None
    drifted = claim_refusal(with_compliance("Drifted"), "w1")
    assert drifted is not None and "requires compliance" in drifted and "is Drifted" in drifted
    assert claim_refusal(with_compliance("Compliant", digest="sha256:old"), "w1") is not None
    assert "is Pending" in (claim_refusal(with_compliance("Compliant"), "w2") or "")


def test_hrw_compliance_prints_a_line_per_worker_and_resource():
    text, compliant = table(with_compliance("Drifted"), {"w1": report(ResourceState.DRIFTED), "w2": None})
    lines = text.splitlines()
    assert lines[0].startswith("WorkerGroup dc: WorkerConfiguration files (sha256:dddddddddddd)")
    assert lines[1].split() == ["WORKER", "STATE", "APPLIED", "CHECKED", "RESOURCE", "RESULT", "MESSAGE"]
    assert lines[2].split() == ["w1", "Drifted", "2026-12-02T03:00:00Z", "2026-12-02T03:00:00Z", "r0", "Drifted",
                                "why"]
    assert lines[3].startswith("w2") and "no report on this configuration yet" in lines[3]
    assert not compliant


@pytest.mark.parametrize("text", ["not json", '{"configuration":"files"}', "x" * (MAX_REPORT_BYTES + 1)])
def test_the_proxy_refuses_a_lease_whose_compliance_report_does_not_fit(text):
    from hrw_proxy import leases
    from hrw_proxy.auth import WorkerIdentity
    from hrw_proxy.refusals import ProxyError

    patch = {"metadata": {"annotations": {names.ANNOTATION_COMPLIANCE: text}}}
    with pytest.raises(ProxyError) as refused:
        leases.sanitize_lease_patch(WorkerIdentity("ns", "dc", "w1"), patch)
    assert refused.value.code == 400 and names.ANNOTATION_COMPLIANCE in refused.value.message
    good = {"metadata": {"annotations": {names.ANNOTATION_COMPLIANCE: report(ResourceState.DRIFTED).to_annotation()}}}
    assert leases.sanitize_lease_patch(WorkerIdentity("ns", "dc", "w1"), good) == good
