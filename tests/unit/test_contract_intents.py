"""One table of agent moves drives both sides: every intent builds a patch that reads back as the
same intent, nothing outside the table is built or read, and `read_agent_patch` refuses what the
proxy must refuse (with a reason a person can act on).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from hrw_api import (
    AGENT_TRANSITIONS,
    ClaimIntent,
    FinishIntent,
    GiveBackIntent,
    Intent,
    JobPhase,
    JobResult,
    OutputSummary,
    PatchInvalid,
    PatchRefused,
    Reason,
    RetryOn,
    RunbookJob,
    Step,
    patches,
    read_agent_patch,
)
from tests.unit.jsonpatch_helper import apply_patch

AT = datetime(2026, 11, 25, 22, 0, 0, tzinfo=UTC)
RETRY_ALL = {"maxAttempts": 3, "retryOn": ["Failed", "WorkerLost"]}


def job(phase: str = "Queued", *, attempt: int = 1, claimer: str | None = None, claim_attempt: int | None = None,
        retry: dict | None = None) -> RunbookJob:
    status: dict = {"phase": phase, "attempt": attempt}
    if claimer:
        status["claim"] = {"worker": claimer, "attempt": claim_attempt or attempt, "claimedAt": "2026-11-25T21:59:00Z"}
    return RunbookJob.parse({"metadata": {"name": "j", "namespace": "ns"},
                             "spec": {"runbookRef": {"name": "rb"}, "workerGroup": "g1",
                                      "retryPolicy": retry or RETRY_ALL},
                             "status": status})


SUMMARY = OutputSummary(bytes=12, lines=1, chunks=1, tail="Hello, World", truncated=False)

# One intent per move of the table, with the job it applies to.
EVERY_MOVE: list[tuple[Intent, RunbookJob]] = [
    (ClaimIntent(1, "w1", at=AT), job("Queued")),
    (FinishIntent(1, "w1", JobResult(JobPhase.FAILED, Reason.DIGEST_MISMATCH, "bad digest"),
                  from_phase=JobPhase.CLAIMED, at=AT), job("Claimed", claimer="w1")),
    (FinishIntent(1, "w1", JobResult(JobPhase.SUCCEEDED, Reason.COMPLETED, "exit 0", exit_code=0,
                                     outputs={"greeted": "World"}, output=SUMMARY), at=AT),
     job("Running", claimer="w1")),
    (FinishIntent(1, "w1", JobResult(JobPhase.FAILED, Reason.NON_ZERO_EXIT, "exit 3", exit_code=3), at=AT),
     job("Running", claimer="w1")),
    (FinishIntent(1, "w1", JobResult(JobPhase.TIMED_OUT, Reason.TIMEOUT, "timed out", output=SUMMARY), at=AT),
     job("Running", claimer="w1")),
    (GiveBackIntent(1, "w1", RetryOn.FAILED, "attempt 1 failed; queued again", exit_code=1, at=AT),
     job("Running", claimer="w1")),
    (GiveBackIntent(1, "w1", RetryOn.WORKER_LOST, "given up", from_phase=JobPhase.CLAIMED, at=AT),
     job("Claimed", claimer="w1")),
]


def test_every_move_of_the_table_has_an_intent_here() -> None:
    assert {intent.transition for intent, _ in EVERY_MOVE} == set(AGENT_TRANSITIONS.values())


@pytest.mark.parametrize(("intent", "target"), EVERY_MOVE, ids=lambda v: type(v).__name__)
def test_each_intent_reads_back_from_its_own_patch_without_the_agents_clock(intent: Intent,
                                                                            target: RunbookJob) -> None:
    assert read_agent_patch(intent.to_patch(), target, worker="w1") == replace(intent, at=None)


@pytest.mark.parametrize(("intent", "target"), EVERY_MOVE, ids=lambda v: type(v).__name__)
def test_each_patch_tests_the_moves_phase_and_attempt_first_and_the_claimer_unless_it_claims(
        intent: Intent, target: RunbookJob) -> None:
    patch = intent.to_patch()
    transition = intent.transition
    expected = [{"op": "test", "path": "/status/phase", "value": transition.source.value},
                {"op": "test", "path": "/status/attempt", "value": 1}]
    if transition.step is not Step.CLAIM:
        expected.append({"op": "test", "path": "/status/claim/worker", "value": "w1"})
    assert patch[:len(expected)] == expected
    assert patch[len(expected)] == {"op": "add", "path": "/status/phase", "value": transition.target.value}
    members = {op["path"].removeprefix("/status/") for op in patch[len(expected):]}
    assert members <= transition.writes | transition.removes


def test_the_builders_are_the_intents_patches() -> None:
    now = "2026-11-25T22:00:00Z"
    assert patches.claim(1, "w1", now=now) == ClaimIntent(1, "w1", at=AT).to_patch()
    result = JobResult(JobPhase.SUCCEEDED, "Completed", "ok", exit_code=0)
    assert patches.finish(1, "w1", result, now=now) == FinishIntent(1, "w1", result, at=AT).to_patch()
    assert patches.retry(1, "w1", "NonZeroExit", "exit 1", exit_code=1, now=now) == GiveBackIntent(
        1, "w1", RetryOn.FAILED, "attempt 1 failed (NonZeroExit: exit 1); queued again", exit_code=1,
        at=AT).to_patch()


def test_a_give_back_applies_as_a_new_attempt_in_the_queue() -> None:
    running = {"metadata": {"name": "j"}, "status": {"phase": "Running", "attempt": 1, "startTime": "x",
                                                     "claim": {"worker": "w1", "attempt": 1}}}
    status = apply_patch(running, GiveBackIntent(1, "w1", RetryOn.WORKER_LOST, "shutdown", at=AT).to_patch())["status"]
    assert (status["phase"], status["attempt"], status["reason"]) == ("Queued", 2, "Requeued")
    assert "claim" not in status and "startTime" not in status


@pytest.mark.parametrize("intent", [
    FinishIntent(1, "w1", JobResult(JobPhase.SUCCEEDED, "Completed", "ok"), from_phase=JobPhase.CLAIMED),
    FinishIntent(1, "w1", JobResult(JobPhase.CANCELLED, "Cancelled", "no")),
    FinishIntent(1, "w1", JobResult(JobPhase.RUNNING, "Started", "no")),
    GiveBackIntent(1, "w1", RetryOn.FAILED, "never started", from_phase=JobPhase.CLAIMED),
    GiveBackIntent(1, "w1", RetryOn.FAILED, "not held", from_phase=JobPhase.QUEUED),
])
def test_a_move_outside_the_table_is_never_built(intent: Intent) -> None:
    with pytest.raises(ValueError):
        intent.to_patch()


def _finish_with(*extra: dict) -> list[dict]:
    return [*FinishIntent(1, "w1", JobResult(JobPhase.SUCCEEDED, "Completed", "ok")).to_patch(), *extra]


@pytest.mark.parametrize(("patch", "target", "complaint"), [
    ({"status": {"phase": "Running"}}, job(), "must be a JSON Patch"),
    ([{"op": "add", "path": "/spec/cancel", "value": True}], job(), "only patch /status"),
    ([{"op": "test", "path": "/status/phase", "value": "Queued"}, {"op": "test", "path": "/status/attempt", "value": 1},
      {"op": "add", "path": "/status/phase", "value": "Succeeded"}], job(), "from Queued to Succeeded"),
    (ClaimIntent(1, "w2").to_patch(), job(), "must name the calling worker 'w1'"),
    (_finish_with(), job("Running", claimer="w2"), "claimed by w2"),
    ([op if op["path"] != "/status/claim/worker" else {**op, "value": "w2"} for op in _finish_with()],
     job("Running", claimer="w2"), "must test /status/claim/worker == 'w1'"),
    (_finish_with(), job("Running", attempt=2, claimer="w1", claim_attempt=2), "is stale"),
    ([*ClaimIntent(1, "w1").to_patch(), {"op": "add", "path": "/status/outputs", "value": {"a": "b"}}], job(),
     "a claim may not write /status/outputs"),
    (_finish_with({"op": "add", "path": "/status/claim", "value": {"worker": "w2", "attempt": 1}}),
     job("Running", claimer="w1"), "a finish may not write /status/claim"),
    (_finish_with({"op": "remove", "path": "/status/claim"}), job("Running", claimer="w1"), "may remove only []"),
    (_finish_with({"op": "test", "path": "/status/claim/worker", "value": "w1"}), job("Running", claimer="w1"),
     "test operations must come before"),
    (_finish_with({"op": "replace", "path": "/status/reason", "value": "x"}), job("Running", claimer="w1"),
     "'replace' is not allowed"),
    ([*ClaimIntent(1, "w1").to_patch()[:-4], {"op": "add", "path": "/status/claim", "value": {"worker": "w1",
                                                                                              "attempt": 2}}],
     job(), "record the attempt it tests"),
    (GiveBackIntent(1, "w1", RetryOn.FAILED, "x").to_patch(),
     job("Running", claimer="w1", retry={"maxAttempts": 3, "retryOn": ["WorkerLost"]}),
     "may not be retried for Failed"),
    (GiveBackIntent(2, "w1", RetryOn.WORKER_LOST, "x").to_patch(),
     job("Running", attempt=2, claimer="w1", retry={"maxAttempts": 2, "retryOn": ["WorkerLost"]}), "after attempt 2"),
    ([*GiveBackIntent(1, "w1", RetryOn.WORKER_LOST, "x", from_phase=JobPhase.CLAIMED).to_patch()[:5],
      {"op": "add", "path": "/status/reason", "value": "Retrying"}], job("Claimed", claimer="w1"),
     "can only be given up"),
    ([op if op["path"] != "/status/attempt" or op["op"] == "test" else {**op, "value": 7}
      for op in GiveBackIntent(1, "w1", RetryOn.FAILED, "x").to_patch()], job("Running", claimer="w1"),
     "attempt + 1"),
    ([op if op["path"] != "/status/exitCode" else {**op, "value": "3"}
      for op in FinishIntent(1, "w1", JobResult(JobPhase.FAILED, "NonZeroExit", "x", exit_code=3)).to_patch()],
     job("Running", claimer="w1"), "exitCode must be an integer"),
    ([op if op["path"] != "/status/output" else {**op, "value": {"bytes": -1}}
      for op in FinishIntent(1, "w1", JobResult(JobPhase.FAILED, "NonZeroExit", "x", output=SUMMARY)).to_patch()],
     job("Running", claimer="w1"), "output.bytes"),
])
def test_read_agent_patch_refuses_with_a_reason(patch: object, target: RunbookJob, complaint: str) -> None:
    with pytest.raises(PatchRefused) as refused:
        read_agent_patch(patch, target, worker="w1")
    assert complaint in str(refused.value)


def _finish_setting(member: str, value: object) -> list:
    result = JobResult(JobPhase.FAILED, "NonZeroExit", "x", exit_code=3, outputs={"a": "b"}, output=SUMMARY)
    return [op if op["path"] != f"/status/{member}" else {**op, "value": value}
            for op in FinishIntent(1, "w1", result).to_patch()]


@pytest.mark.parametrize(("member", "value", "field"), [
    ("reason", "not camel case!", "/status/reason"),
    ("reason", "A" * 1025, "/status/reason"),
    ("message", "m" * 32769, "/status/message"),
    ("exitCode", 2**31, "/status/exitCode"),
    ("exitCode", True, "/status/exitCode"),
    ("outputs", {f"k{i}": "v" for i in range(1025)}, "/status/outputs"),
    ("outputs", {"k": "v" * (128 * 1024)}, "/status/outputs"),
    ("outputs", {"k": 1}, "/status/outputs"),
    ("output", {"tail": "t" * 8193}, "/status/output.tail"),
])
def test_a_value_out_of_the_contracts_bounds_is_invalid_naming_the_field(member: str, value: object,
                                                                         field: str) -> None:
    with pytest.raises(PatchInvalid) as refused:
        read_agent_patch(_finish_setting(member, value), job("Running", claimer="w1"), worker="w1")
    assert refused.value.field == field
