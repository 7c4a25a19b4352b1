"""The agent's configuration applier without a proxy: what each mode does on an apply and on a
refresh, what it refuses to run, and when it lets the agent claim (issue 16).

A small fake stands in for the proxy client (the applier's seam): it hands out a bundle built
from the contract's models; the scripts really run, as the job user, in a work root and a
scratch dir that user can reach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hrw_agent.configuration import ConfigurationApplier
from hrw_agent.interpreters import detect
from hrw_api import ConfigurationBundle, Interpreter, WorkerGroup, content_digest
from hrw_api.workerconfiguration import ResourceState
from tests.support.accounts import reachable_work_root, remove_work_root

TEST = '[ "$(cat "$HRW_PARAM_PATH" 2>/dev/null)" = ok ]\n'
SET = 'printf ok > "$HRW_PARAM_PATH"\n'


class FakeClient:
    namespace = "ns"
    group = "dc"
    worker = "w1"

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = bundle
        self.fetched = 0

    async def get_configuration(self) -> ConfigurationBundle:
        self.fetched += 1
        return ConfigurationBundle.parse(self.bundle)


def bundle(mode: str, resources: list[dict[str, Any]], *, runbooks: list[dict[str, Any]] | None = None,
           runbook_digests: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "WorkerConfigurationBundle",
            "configuration": {"metadata": {"name": "files", "namespace": "ns", "generation": 1},
                              "spec": {"mode": mode, "resources": resources},
                              "status": {"digest": "sha256:" + "1" * 64, "runbookDigests": runbook_digests or {}}},
            "runbooks": runbooks or [], "assets": []}


def group(**spec: Any) -> WorkerGroup:
    return WorkerGroup.parse({"metadata": {"name": "dc", "namespace": "ns"},
                              "spec": {"configuration": {"name": "files", "refreshSeconds": 5}, **spec}})


@pytest.fixture
def work_root():
    folder = reachable_work_root("hrw-unit-config-")
    yield folder
    remove_work_root(folder)


def applier(client: FakeClient, work_root: Path) -> ConfigurationApplier:
    reports: list[int] = []
    return ConfigurationApplier(client, interpreters={Interpreter.BASH: detect()[Interpreter.BASH]},  # type: ignore[arg-type]
                                work_dir=work_root, on_report=lambda: reports.append(1))


def states(app: ConfigurationApplier) -> list[tuple[str, ResourceState, str]]:
    assert app.report is not None
    return [(r.name, r.state, r.message) for r in app.report.resources]


def force_refresh(app: ConfigurationApplier) -> None:
    app._checked_at = -1e9  # the refresh period is over


async def test_monitor_applies_once_then_reports_drift_and_changes_nothing(job_user, scratch, work_root):
    target = scratch / "file"
    client = FakeClient(bundle("ApplyAndMonitor", [{"name": "f", "interpreter": "bash", "test": TEST, "set": SET,
                                                    "parameters": {"path": str(target)}}]))
    app = applier(client, work_root)
    app.observe(group())
    await app.run_once()
    assert states(app) == [("f", ResourceState.CORRECTED, "test exited with code 1; set corrected it")]
    assert target.read_text() == "ok"
    await app.run_once()  # nothing due: no fetch
    assert client.fetched == 1
    target.write_text("changed")
    force_refresh(app)
    await app.run_once()
    assert states(app) == [("f", ResourceState.DRIFTED, "test exited with code 1")]
    assert target.read_text() == "changed"


async def test_auto_correct_sets_on_a_refresh_and_apply_only_does_not_test_again(job_user, scratch, work_root):
    target = scratch / "file"
    resource = {"name": "f", "interpreter": "bash", "test": TEST, "set": SET, "parameters": {"path": str(target)}}
    client = FakeClient(bundle("ApplyAndAutoCorrect", [resource]))
    app = applier(client, work_root)
    app.observe(group())
    await app.run_once()
    target.write_text("changed")
    force_refresh(app)
    await app.run_once()
    assert states(app)[0][1] is ResourceState.CORRECTED and target.read_text() == "ok"

    target.unlink()
    client.bundle = bundle("ApplyOnly", [resource])
    only = applier(client, work_root)
    only.observe(group())
    await only.run_once()
    target.write_text("changed")
    force_refresh(only)
    await only.run_once()
    assert states(only)[0][1] is ResourceState.CORRECTED  # the report of the apply, not a new test
    assert target.read_text() == "changed"


async def test_changed_runbook_content_and_inline_scripts_in_a_signing_group_are_refused(job_user, scratch,
                                                                                         work_root):
    runbook = {"metadata": {"name": "ensure", "namespace": "ns"},
               "spec": {"interpreter": "bash", "content": "exit 0\n"}}
    client = FakeClient(bundle("ApplyAndMonitor", [{"name": "r", "runbookRef": {"name": "ensure"}}],
                               runbooks=[runbook], runbook_digests={"ensure": content_digest("exit 1\n")}))
    app = applier(client, work_root)
    app.observe(group())
    await app.run_once()
    (_, state, message), = states(app)
    assert state is ResourceState.FAILED and "not running changed content" in message

    client.bundle = bundle("ApplyAndMonitor", [{"name": "i", "interpreter": "bash", "test": "true", "set": "true"}])
    signing = applier(client, work_root)
    signing.observe(group(requireSignedRunbooks=True, trustedKeys=[{"keyId": "k", "publicKey": "QUJD"}]))
    await signing.run_once()
    assert states(signing)[0][1] is ResourceState.FAILED
    assert "requires signed runbooks" in states(signing)[0][2]


def test_a_worker_claims_only_while_its_group_shows_it_compliant_where_compliance_is_required(work_root):
    app = applier(FakeClient(bundle("ApplyOnly", [])), work_root)
    assert app.may_claim()  # no group read yet: nothing required
    required = {"configuration": {"name": "files", "requireCompliance": True}}
    digest = "sha256:" + "1" * 64

    def with_state(state: str) -> WorkerGroup:
        return WorkerGroup.parse({"metadata": {"name": "dc"}, "spec": required, "status": {"compliance": {
            "configuration": "files", "digest": digest, "workers": [{"name": "w1", "state": state,
                                                                     "digest": digest}]}}})

    assert app.observe(with_state("Drifted")) is True and not app.may_claim()
    assert app.observe(with_state("Compliant")) is True and app.may_claim()
    assert app.observe(group()) is False and app.may_claim()  # not required

