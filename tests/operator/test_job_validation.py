"""A RunbookJob is validated once: a valid job is Queued with attempt 1 and the runbook's digest;
every invalid one ends Failed with a reason and a message that names the problem."""

from __future__ import annotations

from hrw_api import content_digest

from .conftest import Kit, ready


async def test_valid_job_is_queued_with_attempt_one_and_the_runbook_digest(kit: Kit, operator) -> None:
    await kit.runbook("hello", content="echo hello\n", parameters=[{"name": "who", "type": "string"}])
    await kit.group("pool")
    await kit.job("run-1", "hello", "pool", parameters={"who": "world"})

    job = await kit.wait_phase("run-1", "Queued")
    status = job["status"]
    assert status["attempt"] == 1
    assert status["runbookDigest"] == content_digest("echo hello\n")
    assert status["reason"] == "Queued"
    assert "queuedTime" in status
    assert not any(k.startswith("kopf.zalando.org") for k in job["metadata"].get("annotations") or {})
    event = await kit.wait_event("run-1", "NoCapableWorker")  # the only Event of a valid job: no worker yet
    assert event["type"] == "Warning" and event["regarding"]["kind"] == "RunbookJob"


async def test_each_invalid_job_fails_with_a_reason_naming_the_problem(kit: Kit, operator) -> None:
    await kit.runbook("plain", parameters=[{"name": "count", "type": "integer", "required": True},
                                           {"name": "mode", "type": "string", "enum": ["fast", "slow"]}])
    await kit.runbook("broken", configmap=("no-such-cm", "script.sh"))
    await kit.runbook("needs-asset", assets=["db-password", "missing-asset"])
    await kit.runbook("pythonic", interpreter="python3", content="print(1)\n")
    await kit.runbook("signed", signature={"keyId": "k1", "value": "c2ln"})
    await kit.asset("db-password", {"type": "Credential", "username": "app",
                                    "passwordFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
    await kit.group("pool")
    await kit.group("bash-only", interpreters=["bash"])
    await kit.group("strict", requireSignedRunbooks=True, trustedKeys=[{"keyId": "k2", "publicKey": "cHVi"}])

    cases = {
        "no-runbook": ("ghost", "pool", {}, "RunbookNotFound", ["'ghost'", "not found"]),
        "runbook-not-ready": ("broken", "pool", {}, "RunbookNotReady", ["'broken'", "no-such-cm"]),
        "no-group": ("plain", "nowhere", {"count": 1}, "WorkerGroupNotFound", ["'nowhere'"]),
        "missing-param": ("plain", "pool", {}, "InvalidParameters", ["'count'", "required"]),
        "wrong-type": ("plain", "pool", {"count": "three"}, "InvalidParameters", ["'count'", "integer"]),
        "undeclared": ("plain", "pool", {"count": 1, "colour": "red"}, "InvalidParameters", ["'colour'"]),
        "not-in-enum": ("plain", "pool", {"count": 1, "mode": "warp"}, "InvalidParameters", ["'mode'", "warp"]),
        "asset-not-ready": ("needs-asset", "pool", {}, "AssetNotReady", ["'missing-asset'", "'db-password'", "'db'"]),
        "interpreter": ("pythonic", "bash-only", {}, "InterpreterNotAllowed", ["python3", "'bash-only'"]),
        "unsigned": ("plain", "strict", {"count": 1}, "UnsignedRunbook", ["'strict'", "signature"]),
        "untrusted-key": ("signed", "strict", {}, "UnsignedRunbook", ["'k1'"]),
    }
    for name, (runbook, group, parameters, _, _) in cases.items():
        await kit.job(name, runbook, group, parameters=parameters)
    await kit.job("cancelled-early", "plain", "pool", parameters={"count": 1}, cancel=True)

    for name, (_, _, _, reason, needles) in cases.items():
        job = await kit.wait_job(name, lambda s: s.get("phase") not in (None, "Pending"), message=f"{name} decided")
        status = job["status"]
        assert (name, status["phase"], status["reason"]) == (name, "Failed", reason), status
        for needle in needles:
            assert needle in status["message"], (name, needle, status["message"])
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert failed["status"] == "True" and failed["reason"] == reason
        event = await kit.wait_event(name, "Rejected")
        assert reason in event["note"]
    cancelled = await kit.wait_phase("cancelled-early", "Cancelled")
    assert cancelled["status"]["reason"] == "Cancelled"
    runbook = await kit.admin.get(f"/apis/hrw.dev/v1alpha1/namespaces/{kit.namespace}/runbooks/broken")
    assert ready(runbook["status"])["reason"] == "ConfigMapNotFound"
