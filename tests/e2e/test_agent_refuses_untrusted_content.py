"""The agent runs exactly the content a job was queued for, signed by a key its group trusts, or
nothing: a runbook signed by the wrong key, a runbook the group cannot accept unsigned, and a
runbook changed after the job was queued never run a line on the server.

Each refused script would create a marker file in a directory the test owns; the marker's
absence proves it never ran (the agent checks before the process starts, not after).
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hrw_api import content_digest
from hrw_api.kubeclient import RUNBOOKS
from tests.support.stack import Stack

GROUP = "signed"
KEY_ID = "release-2024"
MARK = 'echo "ran $HRW_JOB_NAME"\ntouch "$HRW_PARAM_MARKER"\n'
MARKER_PARAM = [{"name": "marker", "type": "string", "required": True}]


def _public_key_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _signature(content: str, key: Ed25519PrivateKey, key_id: str = KEY_ID) -> dict[str, str]:
    """spec.signature: the raw ed25519 signature over the UTF-8 bytes of the digest string `sha256:<hex>`."""
    digest = content_digest(content)
    assert digest.startswith("sha256:")
    return {"keyId": key_id, "value": base64.b64encode(key.sign(digest.encode("utf-8"))).decode()}


async def test_signed_group_runs_a_runbook_signed_by_its_trusted_key_and_refuses_others(stack: Stack,
                                                                                         scratch: Path):
    trusted = Ed25519PrivateKey.generate()
    impostor = Ed25519PrivateKey.generate()  # claims the trusted key id, signs with another key
    markers = scratch / "markers"
    markers.mkdir()
    markers.chmod(0o1777)  # the jobs' user leaves its markers here
    await stack.group(GROUP, maxJobsPerWorker=3, requireSignedRunbooks=True,
                      trustedKeys=[{"keyId": KEY_ID, "publicKey": _public_key_b64(trusted)}])
    stack.start_agent(GROUP, "w1")
    await stack.runbook("good", MARK, parameters=MARKER_PARAM, signature=_signature(MARK, trusted))
    await stack.runbook("forged", MARK, parameters=MARKER_PARAM, signature=_signature(MARK, impostor))
    await stack.runbook("unsigned", MARK, parameters=MARKER_PARAM)
    for job in ("good", "forged", "unsigned"):
        await stack.job(job, job, GROUP, parameters={"marker": str(markers / job)})

    good = await stack.wait_phase("good", "Succeeded")
    assert good["status"]["reason"] == "Completed"
    assert (markers / "good").exists()
    assert await stack.output("good") == "ran good\n"

    forged = await stack.wait_phase("forged", "Failed")
    assert forged["status"]["reason"] == "SignatureInvalid", forged["status"]
    assert KEY_ID in forged["status"]["message"]
    assert forged["status"]["claim"]["worker"] == "w1"  # the agent refused it, after its claim
    assert "exitCode" not in forged["status"]
    assert not (markers / "forged").exists()
    assert await stack.output("forged") == ""

    unsigned = await stack.wait_phase("unsigned", "Failed")
    assert unsigned["status"]["reason"] == "UnsignedRunbook", unsigned["status"]
    assert "claim" not in unsigned["status"]  # the operator refused it; no agent ever held it
    assert not (markers / "unsigned").exists()


async def test_runbook_changed_after_the_job_was_queued_never_runs(stack: Stack, scratch: Path):
    """The job snapshots `runbookDigest` when it is queued; the proxy hands out the Runbook as it is
    now. An agent that claims the job after the content changed must refuse (DigestMismatch) rather
    than run either version: the old one is gone, the new one is not what was asked for."""
    before = scratch / "before"
    after = scratch / "after"
    original = 'touch "$HRW_PARAM_MARKER"\n'
    changed = f'touch "{after}"\necho changed\n'
    await stack.group(GROUP)
    await stack.runbook("drifting", original, parameters=MARKER_PARAM)
    await stack.job("j1", "drifting", GROUP, parameters={"marker": str(before)})
    queued = await stack.wait_phase("j1", "Queued")  # no agent yet: nobody can claim it
    snapshot = queued["status"]["runbookDigest"]
    assert snapshot == content_digest(original)

    await stack.admin.patch(RUNBOOKS.path(stack.namespace, "drifting"), {"spec": {"content": changed}})
    await stack.wait_job("j1", lambda job: job["status"]["phase"] == "Queued", message="j1 still Queued")
    stack.start_agent(GROUP, "w1")

    job = await stack.wait_phase("j1", "Failed")
    status = job["status"]
    assert status["reason"] == "DigestMismatch", status
    assert status["runbookDigest"] == snapshot
    assert content_digest(changed) in status["message"] and snapshot in status["message"]
    assert not after.exists()
    assert not before.exists()
    assert await stack.output("j1") == ""
