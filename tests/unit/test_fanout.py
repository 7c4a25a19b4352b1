"""Fan-out jobs without a cluster: the spec block, budgets, selectors, child names, worker labels,
and the operator's pure `plan` (targets fixed at the start, concurrency, the error budget, cancel, the end)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hrw_agent.config import ConfigError, _coerce, from_values
from hrw_api import InvalidObject, RunbookJob, WorkerInfo, content_digest, names
from hrw_api.fanout import Budget, FanOut, FanOutStatus, LabelSelector, RunPhase, WorkerRun, child_name
from hrw_api.phases import JobPhase
from hrw_operator.fanout import Child, FanOutFacts, child_body, plan
from hrw_operator.jobs.decide import JobFacts, Queue, Reject, StartFanOut, decide
from hrw_operator.jobs.writes import build_patch

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _job(name: str = "patch", *, fan_out: dict[str, Any] | None = None, cancel: bool = False,
         phase: str = "Running", **spec: Any) -> RunbookJob:
    body: dict[str, Any] = {"runbookRef": {"name": "rb"}, "workerGroup": "dc", "cancel": cancel, **spec}
    if fan_out is not None:
        body["fanOut"] = fan_out
    return RunbookJob.parse({
        "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "generation": 1, "resourceVersion": "7",
                     "creationTimestamp": "2026-12-01T08:59:00Z"},
        "spec": body,
        "status": {"phase": phase, "attempt": 1, "runbookDigest": "sha256:" + "a" * 64},
    })


READY = {"w1": {"role": "web"}, "w2": {"role": "db"}, "w3": {"role": "web"}}


# ------------------------------------------------------------------------------------ the spec


@pytest.mark.parametrize(("text", "targets", "concurrency", "errors"), [
    (1, 10, 1, 1), ("3", 10, 3, 3), ("25%", 10, 3, 2), ("10%", 5, 1, 0), ("100%", 3, 3, 3), ("0%", 4, 1, 0),
])
def test_a_budget_is_a_count_or_a_percent_rounded_up_for_concurrency_and_down_for_errors(
        text: Any, targets: int, concurrency: int, errors: int) -> None:
    budget = Budget.parse(text, "x")
    assert budget.resolve(targets, at_least_one=True) == concurrency
    assert budget.resolve(targets, at_least_one=False) == errors


@pytest.mark.parametrize("bad", ["-1", "1.5", "ten", "%", True, None])
def test_a_budget_that_is_neither_a_count_nor_a_percent_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidObject, match="must be a count"):
        Budget.parse(bad, "spec.fanOut.maxErrors")


def test_a_selector_matches_as_a_kubernetes_label_selector() -> None:
    selector = LabelSelector.parse({"matchLabels": {"role": "web"}, "matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a", "b"]},
        {"key": "retired", "operator": "DoesNotExist"}]}, "s")
    assert selector.matches({"role": "web", "zone": "a"})
    assert not selector.matches({"role": "web", "zone": "c"})
    assert not selector.matches({"role": "web", "zone": "a", "retired": "yes"})
    assert not selector.matches({"zone": "a"})
    assert LabelSelector.parse({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]},
                               "s").matches({})


def test_fan_out_sets_exactly_one_of_all_and_selector_with_ssm_defaults() -> None:
    fan = FanOut.parse({"all": True})
    assert (fan.max_concurrency, fan.max_errors) == (Budget(50), Budget(0))
    for bad in ({}, {"all": False}, {"all": True, "selector": {"matchLabels": {"a": "b"}}}):
        with pytest.raises(InvalidObject, match="exactly one of all: true or selector"):
            FanOut.parse(bad)


def test_child_names_fit_a_label_value_and_differ_per_parent_uid() -> None:
    assert child_name("patch", "w1", "uid-1").startswith("patch-w1-")
    assert child_name("patch", "w1", "uid-1") == child_name("patch", "w1", "uid-1")
    assert child_name("patch", "w1", "uid-1") != child_name("patch", "w1", "uid-2")
    long = child_name("p" * 63, "w" * 63, "uid")
    assert len(long) <= 63 and long.startswith("p") and "-w" in long


def test_worker_labels_travel_on_the_lease_and_bad_ones_are_refused() -> None:
    info = WorkerInfo(hostname="h", labels={"role": "web", "example.com/zone": "a"})
    assert WorkerInfo.from_annotations(info.to_annotations()).labels == {"role": "web", "example.com/zone": "a"}
    assert WorkerInfo.from_annotations({}).labels == {}
    for bad in ('{"role": "web server"}', '{"-x": "y"}', "[1]", "not json"):
        with pytest.raises(InvalidObject, match=names.ANNOTATION_WORKER_LABELS):
            WorkerInfo.from_annotations({names.ANNOTATION_WORKER_LABELS: bad})


def test_the_agent_config_refuses_labels_that_are_not_kubernetes_labels() -> None:
    base = {"proxy_url": "https://proxy", "namespace": "ns", "group": "dc"}
    assert from_values({**base, "labels": {"role": "web"}}).labels == {"role": "web"}
    with pytest.raises(ConfigError, match="labels"):
        _coerce("labels", {"role": "web server"})


# ------------------------------------------------------------------------------------ the plan


def test_the_target_set_is_fixed_from_the_ready_workers_that_match_and_children_start_up_to_max_concurrency() -> None:
    parent = _job(fan_out={"selector": {"matchLabels": {"role": "web"}}, "maxConcurrency": 1})
    decided = plan(parent, None, FanOutFacts(ready_workers=READY))
    assert [r.worker for r in decided.summary.workers] == ["w1", "w3"]
    assert decided.create == ("w1",)
    assert decided.summary.workers[0].job == child_name("patch", "w1", "uid-1")
    assert decided.summary.workers[1].phase is RunPhase.PENDING
    assert decided.end is None


def test_a_worker_that_joins_later_is_not_a_target() -> None:
    parent = _job(fan_out={"all": True})
    summary = FanOutStatus.of_targets(["w1"])
    decided = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.RUNNING)},
                                                ready_workers=READY))
    assert [r.worker for r in decided.summary.workers] == ["w1"]
    assert decided.create == ()


def test_the_next_child_starts_only_when_one_ends() -> None:
    parent = _job(fan_out={"all": True, "maxConcurrency": 1})
    summary = FanOutStatus.of_targets(["w1", "w2", "w3"])
    running = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.QUEUED)}))
    assert running.create == ()
    ended = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.SUCCEEDED)}))
    assert ended.create == ("w2",)


def test_after_more_than_max_errors_failures_no_child_starts_and_the_rest_are_skipped() -> None:
    parent = _job(fan_out={"all": True, "maxConcurrency": 1, "maxErrors": 1})
    summary = FanOutStatus.of_targets(["w1", "w2", "w3"])
    within = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.FAILED, "NonZeroExit")}))
    assert within.create == ("w2",)
    over = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.FAILED),
                                                       "w2": Child("c2", JobPhase.TIMED_OUT)}))
    assert over.create == ()
    assert over.summary.workers[2] == WorkerRun("w3", RunPhase.SKIPPED, "", "MaxErrorsExceeded")
    assert over.end is not None and over.end.phase is JobPhase.FAILED and over.end.reason == "MaxErrorsExceeded"


def test_failures_within_the_budget_still_fail_the_parent_once_all_are_done() -> None:
    parent = _job(fan_out={"all": True, "maxErrors": "50%"})
    decided = plan(parent, FanOutStatus.of_targets(["w1", "w2"]),
                   FanOutFacts(children={"w1": Child("c1", JobPhase.FAILED), "w2": Child("c2", JobPhase.SUCCEEDED)}))
    assert decided.end is not None and (decided.end.phase, decided.end.reason) == (JobPhase.FAILED, "WorkersFailed")


def test_every_child_succeeded_is_success_and_no_target_is_failure() -> None:
    parent = _job(fan_out={"all": True})
    done = plan(parent, FanOutStatus.of_targets(["w1"]), FanOutFacts(children={"w1": Child("c1", JobPhase.SUCCEEDED)}))
    assert done.end is not None and done.end.phase is JobPhase.SUCCEEDED
    assert done.summary.to_dict()["progress"] == "1/1 done"
    nobody = plan(_job(fan_out={"selector": {"matchLabels": {"role": "gpu"}}}), None, FanOutFacts(ready_workers=READY))
    assert nobody.end is not None and nobody.end.reason == "NoMatchingWorkers"


def test_cancelling_the_parent_cancels_running_children_and_skips_the_rest() -> None:
    parent = _job(fan_out={"all": True, "maxConcurrency": 1}, cancel=True)
    summary = FanOutStatus.of_targets(["w1", "w2"])
    decided = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.RUNNING)}))
    assert decided.cancel == ("c1",)
    assert decided.create == ()
    assert decided.summary.workers[1].phase is RunPhase.SKIPPED
    assert decided.end is None  # until w1's child has ended
    ended = plan(parent, summary, FanOutFacts(children={"w1": Child("c1", JobPhase.CANCELLED, cancel=True)}))
    assert ended.cancel == () and ended.end is not None and ended.end.phase is JobPhase.CANCELLED


def test_a_child_is_the_parents_spec_pinned_to_its_worker_and_owned_by_the_parent() -> None:
    parent = _job(fan_out={"all": True}, parameters={"x": 1}, timeoutSeconds=30, ttlSecondsAfterFinished=60)
    body = child_body(parent, "w2")
    assert body["spec"]["pinnedWorker"] == "w2"
    assert "fanOut" not in body["spec"] and "ttlSecondsAfterFinished" not in body["spec"]
    assert body["spec"]["parameters"] == {"x": 1} and body["spec"]["timeoutSeconds"] == 30
    meta = body["metadata"]
    assert meta["labels"] == {names.LABEL_FAN_OUT_JOB: "patch", names.LABEL_WORKER: "w2"}
    assert meta["ownerReferences"][0] == {"apiVersion": names.API_VERSION, "kind": "RunbookJob", "name": "patch",
                                          "uid": "uid-1", "controller": True}
    assert meta["annotations"][names.ANNOTATION_RUNBOOK_DIGEST] == parent.status.runbook_digest


# ---------------------------------------------------------------------------- the job decision


def test_a_job_that_sets_pinned_worker_itself_is_rejected() -> None:
    decision = decide(_job(phase="Pending", pinnedWorker="w1"), JobFacts(), NOW)
    assert decision.action is not None
    assert getattr(decision.action, "reason", None) == "PinnedWorkerNotAllowed"


def test_the_job_controller_leaves_a_running_fan_out_parent_to_the_fan_out_controller() -> None:
    decision = decide(_job(fan_out={"all": True}, cancel=True, timeoutSeconds=1), JobFacts(), NOW)
    assert decision.action is None


def test_a_valid_fan_out_job_starts_running_instead_of_being_queued_and_its_children_keep_its_digest() -> None:
    from tests.unit.test_operator_jobs import NOW as JOB_NOW
    from tests.unit.test_operator_jobs import job as pending_job
    from tests.unit.test_operator_jobs import meta, pending_facts

    decision = decide(pending_job(fanOut={"all": True, "maxConcurrency": 2}), pending_facts(), JOB_NOW)
    assert isinstance(decision.action, StartFanOut)
    assert decision.action.digest == content_digest("x")
    patch = build_patch(pending_job(fanOut={"all": True}), decision.action)
    assert patch is not None and patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert patch[1]["value"]["phase"] == "Running" and patch[1]["value"]["reason"] == "FanningOut"

    def child(digest: str) -> RunbookJob:
        return RunbookJob.parse({
            "metadata": meta("child", labels={names.LABEL_FAN_OUT_JOB: "parent"},
                             annotations={names.ANNOTATION_RUNBOOK_DIGEST: digest},
                             ownerReferences=[{"uid": "uid-parent", "controller": True}]),
            "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "pool", "pinnedWorker": "w1"}})

    assert isinstance(decide(child(content_digest("x")), pending_facts(), JOB_NOW).action, Queue)
    changed = decide(child(content_digest("y")), pending_facts(), JOB_NOW).action
    assert isinstance(changed, Reject) and changed.reason == "RunbookChanged"
