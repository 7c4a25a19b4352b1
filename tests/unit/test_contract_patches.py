"""The status patch builders fence what they change, apply as documented, and the proxy's reader of
an agent's patch (`intents.read_agent_patch`) accepts exactly the builders' shapes.

The fence is the claim protocol: a patch whose `test`s do not hold fails whole, so of two racing
parties exactly one wins. These tests apply the patches to plain dicts with a tiny RFC 6902
helper; tests/api checks the same patches against the real API server's status schema.
"""

from __future__ import annotations

import pytest

from hrw_api import Condition, OutputSummary, PatchRefused, RetryOn, RunbookJob, patches, read_agent_patch
from hrw_api.intents import ClaimIntent, FinishIntent, GiveBackIntent, Intent, agent_may
from hrw_api.patches import JobResult
from hrw_api.phases import JobPhase, Reason
from tests.unit.jsonpatch_helper import PatchTestFailed, apply_patch

NOW = "2026-11-25T22:00:00Z"


def job(status: dict | None = None) -> dict:
    return {
        "apiVersion": "hrw.dev/v1alpha1", "kind": "RunbookJob",
        "metadata": {"name": "j", "namespace": "ns", "resourceVersion": "7", "generation": 1},
        "spec": {"runbookRef": {"name": "hello"}, "workerGroup": "dc"},
        "status": status if status is not None else {},
    }


def queued(attempt: int = 1) -> dict:
    return job({"phase": "Queued", "attempt": attempt, "runbookDigest": "sha256:ab", "queuedTime": NOW})


def running(worker: str = "w1", attempt: int = 1) -> dict:
    """Claimed by `worker`: the claim is the start."""
    return apply_patch(queued(attempt), patches.claim(attempt, worker, now=NOW))


def claimed(worker: str = "w1", attempt: int = 1) -> dict:
    """A job an agent of before issue 10 claimed in two steps (Claimed, not started)."""
    held = running(worker, attempt)
    held["status"] = {**held["status"], "phase": "Claimed", "reason": "Claimed"}
    del held["status"]["startTime"]
    return held


def leading_tests(patch: list[dict]) -> dict[str, object]:
    tests = {}
    for op in patch:
        if op["op"] != "test":
            break
        tests[op["path"]] = op["value"]
    return tests


RESULT = JobResult(JobPhase.SUCCEEDED, Reason.COMPLETED, "exit 0", exit_code=0, outputs={"greeted": "World"},
                   output=OutputSummary(bytes=12, lines=1, chunks=1, tail="Hello, World", truncated=False))

# ------------------------------------------------------------------------------------ agent patches


def test_claim_tests_phase_and_attempt_before_it_sets_the_claim_and_starts_the_job() -> None:
    patch = patches.claim(3, "w1", now=NOW)
    assert leading_tests(patch) == {"/status/phase": "Queued", "/status/attempt": 3}
    status = apply_patch(queued(3), patch)["status"]
    assert (status["phase"], status["startTime"], status["reason"]) == ("Running", NOW, "Started")
    assert status["claim"] == {"worker": "w1", "attempt": 3, "claimedAt": NOW}
    assert status["attempt"] == 3
    assert RunbookJob.parse(job(status)).holder == "w1"


def test_of_two_agents_claiming_one_attempt_only_the_first_patch_applies() -> None:
    won = apply_patch(queued(), patches.claim(1, "w1", now=NOW))
    with pytest.raises(PatchTestFailed):
        apply_patch(won, patches.claim(1, "w2", now=NOW))


def test_claim_of_a_superseded_attempt_fails() -> None:
    with pytest.raises(PatchTestFailed):
        apply_patch(queued(attempt=2), patches.claim(1, "w1", now=NOW))


def test_finish_writes_the_result_fenced_on_the_claimers_attempt() -> None:
    patch = patches.finish(1, "w1", RESULT, now=NOW)
    assert leading_tests(patch) == {"/status/phase": "Running", "/status/attempt": 1, "/status/claim/worker": "w1"}
    status = apply_patch(running(), patch)["status"]
    assert status["phase"] == "Succeeded"
    assert (status["exitCode"], status["outputs"], status["completionTime"]) == (0, {"greeted": "World"}, NOW)
    assert status["output"] == RESULT.output.to_dict()  # type: ignore[union-attr]
    assert RunbookJob.parse(job(status)).status.output == RESULT.output


def test_finish_from_claimed_for_a_job_an_older_agent_claimed() -> None:
    result = JobResult(JobPhase.FAILED, Reason.DIGEST_MISMATCH, "content changed")
    status = apply_patch(claimed(), patches.finish(1, "w1", result, from_phase=JobPhase.CLAIMED, now=NOW))["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "DigestMismatch")
    assert "exitCode" not in status


def test_finish_by_a_stale_attempt_or_another_worker_fails() -> None:
    retried = apply_patch(running(), patches.retry(1, "w1", "NonZeroExit", "exit 1", now=NOW))
    now_running = apply_patch(retried, patches.claim(2, "w2", now=NOW))
    with pytest.raises(PatchTestFailed):
        apply_patch(now_running, patches.finish(1, "w1", RESULT, now=NOW))
    with pytest.raises(PatchTestFailed):
        apply_patch(now_running, patches.finish(2, "w1", RESULT, now=NOW))


def test_finish_refuses_a_phase_that_is_not_terminal() -> None:
    with pytest.raises(ValueError, match="terminal"):
        patches.finish(1, "w1", JobResult(JobPhase.RUNNING, "x", "y"))


def test_retry_queues_the_next_attempt_and_drops_the_claim() -> None:
    patch = patches.retry(1, "w1", "NonZeroExit", "exit 3", exit_code=3, now=NOW)
    assert leading_tests(patch) == {"/status/phase": "Running", "/status/attempt": 1, "/status/claim/worker": "w1"}
    status = apply_patch(running(), patch)["status"]
    assert (status["phase"], status["attempt"], status["reason"], status["exitCode"]) == ("Queued", 2, "Retrying", 3)
    assert "claim" not in status and "startTime" not in status
    assert "attempt 1 failed (NonZeroExit: exit 3)" in status["message"]
    assert RunbookJob.parse(job(status)).holder is None


def test_a_claimed_job_the_agent_lost_is_given_back_to_the_queue_as_worker_lost() -> None:
    patch = patches.retry(1, "w1", "WorkerLost", "restarted", cause=RetryOn.WORKER_LOST,
                          from_phase=JobPhase.CLAIMED, now=NOW)
    status = apply_patch(claimed(), patch)["status"]
    assert (status["phase"], status["attempt"], status["reason"]) == ("Queued", 2, "Requeued")
    assert "claim" not in status
    intent = _read(patch, claimed())
    assert isinstance(intent, GiveBackIntent)
    assert (intent.transition.source, intent.transition.target, intent.cause) == (
        JobPhase.CLAIMED, JobPhase.QUEUED, RetryOn.WORKER_LOST)
    with pytest.raises(ValueError, match="never started"):
        patches.retry(1, "w1", "NonZeroExit", "x", from_phase=JobPhase.CLAIMED)
    as_failure = [dict(op) for op in patch]
    for op in as_failure:
        if op["path"] == "/status/reason":
            op["value"] = "Retrying"
    with pytest.raises(PatchRefused, match="never started"):
        _read(as_failure, claimed())


# ------------------------------------------------------------------------------- operator patches


def test_queue_and_reject_are_fenced_on_the_resource_version() -> None:
    pending = job()
    status = apply_patch(pending, patches.queue("7", "sha256:ab", 1, now=NOW))["status"]
    assert (status["phase"], status["attempt"], status["runbookDigest"], status["queuedTime"]) == (
        "Queued", 1, "sha256:ab", NOW)
    with pytest.raises(PatchTestFailed):
        apply_patch(pending, patches.queue("6", "sha256:ab", 1, now=NOW))
    failed = apply_patch(pending, patches.reject("7", Reason.RUNBOOK_NOT_FOUND, "runbook hello not found", 1, now=NOW))
    parsed = RunbookJob.parse(failed)
    assert (parsed.status.phase, parsed.status.reason) == (JobPhase.FAILED, "RunbookNotFound")
    assert [(c.type, c.status) for c in parsed.status.conditions] == [("Failed", "True")]


def test_end_and_requeue_move_held_jobs() -> None:
    ended = RunbookJob.parse(apply_patch(running(), patches.end(
        JobPhase.RUNNING, 1, JobPhase.CANCELLED, Reason.CANCELLED, "cancelled", 1, now=NOW)))
    assert ended.status.phase is JobPhase.CANCELLED
    assert [(c.type, c.status) for c in ended.status.conditions] == [("Failed", "True")]
    with pytest.raises(ValueError, match="terminal"):
        patches.end(JobPhase.RUNNING, 1, JobPhase.QUEUED, "x", "y", 1)
    requeued = apply_patch(running(), patches.requeue(JobPhase.RUNNING, 1, "worker w1 lost", now=NOW))["status"]
    assert (requeued["phase"], requeued["attempt"]) == ("Queued", 2)
    assert "claim" not in requeued and "startTime" not in requeued
    from_claimed = apply_patch(claimed(), patches.requeue(JobPhase.CLAIMED, 1, "worker w1 lost", now=NOW))["status"]
    assert (from_claimed["phase"], from_claimed["attempt"]) == ("Queued", 2)


def test_finished_conditions_are_written_once() -> None:
    done = apply_patch(running(), patches.finish(1, "w1", RESULT, now=NOW))
    patch = patches.finished_conditions(JobPhase.SUCCEEDED, "Completed", "ok", 1, [])
    assert patch is not None
    with_conditions = RunbookJob.parse(apply_patch(done, patch))
    assert [(c.type, c.status) for c in with_conditions.status.conditions] == [("Complete", "True")]
    assert patches.finished_conditions(JobPhase.SUCCEEDED, "Completed", "ok", 1,
                                       with_conditions.status.conditions) is None
    assert patches.finished_conditions(JobPhase.TIMED_OUT, "Timeout", "t", 1, [
        Condition("Failed", "True", "Timeout", "t", NOW, 1)]) is None


# ------------------------------------------------------------------------ reading an agent's patch

RETRY_ALL = {"maxAttempts": 3, "retryOn": ["Failed", "WorkerLost"]}


def _read(patch: object, target: dict | None = None) -> Intent:
    """The proxy's reading of `patch` from worker w1 about `target` (a Running job w1 holds)."""
    held = target or running()
    return read_agent_patch(patch, RunbookJob.parse({**held, "spec": {**held["spec"], "retryPolicy": RETRY_ALL}}),
                            worker="w1")


@pytest.mark.parametrize(("patch", "target", "kind", "source", "to"), [
    (patches.claim(1, "w1"), queued(), ClaimIntent, JobPhase.QUEUED, JobPhase.RUNNING),
    (patches.finish(1, "w1", RESULT), None, FinishIntent, JobPhase.RUNNING, JobPhase.SUCCEEDED),
    (patches.finish(1, "w1", JobResult(JobPhase.FAILED, "DigestMismatch", "x")), None, FinishIntent,
     JobPhase.RUNNING, JobPhase.FAILED),
    (patches.finish(1, "w1", JobResult(JobPhase.FAILED, "DigestMismatch", "x"), from_phase=JobPhase.CLAIMED),
     claimed(), FinishIntent, JobPhase.CLAIMED, JobPhase.FAILED),
    (patches.retry(1, "w1", "NonZeroExit", "exit 1", exit_code=1), None, GiveBackIntent, JobPhase.RUNNING,
     JobPhase.QUEUED),
], ids=["claim", "finish", "could-not-start", "finish-from-claimed", "retry"])
def test_read_agent_patch_reads_each_builders_patch(patch, target, kind, source, to) -> None:
    intent = _read(patch, target)
    assert isinstance(intent, kind) and intent.attempt == 1
    assert (intent.transition.source, intent.transition.target) == (source, to)
    assert agent_may(source, to)


def _fenced(*ops: dict) -> list[dict]:
    return [{"op": "test", "path": "/status/phase", "value": "Running"},
            {"op": "test", "path": "/status/attempt", "value": 1},
            {"op": "test", "path": "/status/claim/worker", "value": "w1"}, *ops]


@pytest.mark.parametrize(("patch", "complaint"), [
    (_fenced({"op": "add", "path": "/spec/cancel", "value": False}), "only patch /status"),
    (_fenced({"op": "add", "path": "/metadata/labels", "value": {}}), "only patch /status"),
    (_fenced({"op": "add", "path": "/status/phase", "value": "Succeeded"},
             {"op": "add", "path": "/status/conditions", "value": []}), "may not write /status/conditions"),
    (_fenced({"op": "replace", "path": "/status/phase", "value": "Succeeded"}), "'replace' is not allowed"),
    (_fenced({"op": "move", "from": "/status/reason", "path": "/status/message"}), "'move' is not allowed"),
    (_fenced({"op": "copy", "from": "/status/reason", "path": "/status/message"}), "'copy' is not allowed"),
    ([{"op": "add", "path": "/status/phase", "value": "Succeeded"}], "must test /status/phase"),
    ([{"op": "test", "path": "/status/phase", "value": "Running"},
      {"op": "add", "path": "/status/phase", "value": "Succeeded"}], "must test /status/phase and /status/attempt"),
    (_fenced(), "set /status/phase"),
    (_fenced({"op": "add", "path": "/status/phase", "value": "Queued"}), "attempt + 1"),
    (_fenced({"op": "add", "path": "/status/phase", "value": "Queued"},
             {"op": "add", "path": "/status/attempt", "value": 3}), "attempt + 1"),
    (_fenced({"op": "add", "path": "/status/phase", "value": "Succeeded"},
             {"op": "add", "path": "/status/attempt", "value": 2}), "may not write /status/attempt"),
    ([{"op": "test", "path": "/status/phase", "value": "Queued"},
      {"op": "test", "path": "/status/attempt", "value": True},
      {"op": "add", "path": "/status/phase", "value": "Running"}], "as an integer"),
    (_fenced({"op": "add", "path": "/status/phase", "value": "Exploded"}), "set /status/phase"),
    (["not an op"], "must be an object"),
], ids=["spec", "metadata", "conditions", "replace", "move", "copy", "no-tests", "no-attempt-test", "no-target",
        "retry-without-attempt", "retry-skipping-attempts", "attempt-on-non-retry", "bool-attempt",
        "unknown-phase", "not-an-object"])
def test_read_agent_patch_refuses(patch, complaint) -> None:
    with pytest.raises(PatchRefused, match=complaint.replace("+", r"\+").replace("(", r"\(")):
        _read(patch)


def test_read_agent_patch_refuses_a_patch_that_writes_the_claim_before_testing_it() -> None:
    """Otherwise worker w2 could finish w1's job: its own `add` would make its `test` pass."""
    hijack = [
        {"op": "test", "path": "/status/phase", "value": "Running"},
        {"op": "test", "path": "/status/attempt", "value": 1},
        {"op": "add", "path": "/status/claim/worker", "value": "w2"},
        {"op": "test", "path": "/status/claim/worker", "value": "w2"},
        {"op": "add", "path": "/status/phase", "value": "Succeeded"},
    ]
    assert apply_patch(running("w1"), hijack)["status"]["phase"] == "Succeeded"  # the API server would apply it
    with pytest.raises(PatchRefused, match="test operations must come before"):
        _read(hijack)


def test_read_agent_patch_refuses_a_claim_write_outside_a_claim() -> None:
    rewrite = _fenced({"op": "add", "path": "/status/phase", "value": "Succeeded"},
                      {"op": "add", "path": "/status/claim", "value": {"worker": "w2", "attempt": 1}})
    with pytest.raises(PatchRefused, match="a finish may not write /status/claim"):
        _read(rewrite)


def test_read_agent_patch_refuses_a_claim_recording_another_attempt() -> None:
    claim = patches.claim(1, "w1")
    for op in claim:
        if op["path"] == "/status/claim":
            op["value"] = {**op["value"], "attempt": 2}
    with pytest.raises(PatchRefused, match="record the attempt it tests"):
        _read(claim, queued())


@pytest.mark.parametrize("removed", ["/status/attempt", "/status/phase", "/status/claim", "/status/claim/worker"])
def test_read_agent_patch_refuses_a_claim_or_finish_that_removes_what_fences_rely_on(removed) -> None:
    """Without its attempt (or phase, or claim) a Running job fails every fenced patch, the operator's
    timeout, cancel and worker-loss patches included: the claimer could leave it without an end."""
    unendable = [*patches.claim(1, "w1"), {"op": "remove", "path": removed}]
    with pytest.raises(PatchRefused, match="may remove only"):
        _read(unendable, queued())
    finish = [*patches.finish(1, "w1", RESULT), {"op": "remove", "path": removed}]
    with pytest.raises(PatchRefused, match="may remove only"):
        _read(finish)


def test_read_agent_patch_refuses_a_retry_that_removes_more_than_the_claim() -> None:
    retry = [*patches.retry(1, "w1", "NonZeroExit", "exit 1"), {"op": "remove", "path": "/status/runbookDigest"}]
    with pytest.raises(PatchRefused):
        _read(retry)
    assert _read(patches.retry(1, "w1", "NonZeroExit", "exit 1")).transition.target is JobPhase.QUEUED


def test_a_finished_condition_never_carries_a_reason_its_schema_refuses() -> None:
    written = patches.finished_conditions(JobPhase.FAILED, "not camel case!", "m" * 40000, 1, [])
    assert written is not None
    condition = written[1]["value"][0]
    assert condition["reason"] == "Failed" and len(condition["message"]) == 32768
