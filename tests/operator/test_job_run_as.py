"""Run As at queue time (issue 12): the operator snapshots the identity a job will run as, and
refuses, before any agent sees the job, an identity its worker group does not allow."""

from __future__ import annotations

from .conftest import Kit


async def test_a_queued_job_carries_the_identity_it_will_run_as(kit: Kit, operator) -> None:
    await kit.group("pool", runAs={"user": "app", "group": "app"}, allowedRunAs=[{"user": "backup"}])
    await kit.runbook("plain")
    await kit.runbook("backup", run_as={"user": "backup"})
    await kit.job("default", "plain", "pool")
    await kit.job("asked", "backup", "pool")
    assert (await kit.wait_phase("default", "Queued"))["status"]["runAs"] == {"user": "app", "group": "app"}
    assert (await kit.wait_phase("asked", "Queued"))["status"]["runAs"] == {"user": "backup"}
    # A later change of the group does not change what a queued job runs as.
    await kit.admin.patch(f"/apis/hrw.dev/v1alpha1/namespaces/{kit.namespace}/workergroups/pool",
                          {"spec": {"runAs": {"user": "other", "group": None}}})
    assert (await kit.get_job("default"))["status"]["runAs"] == {"user": "app", "group": "app"}


async def test_an_identity_the_group_does_not_allow_fails_the_job_before_it_is_queued(kit: Kit, operator) -> None:
    await kit.group("pool")
    await kit.runbook("as-root", run_as={"user": "root"})
    await kit.runbook("as-backup", run_as={"user": "backup"})
    await kit.job("root", "as-root", "pool")
    await kit.job("backup", "as-backup", "pool")
    root = (await kit.wait_phase("root", "Failed"))["status"]
    assert root["reason"] == "RunAsNotAllowed"
    assert root["message"] == ("runbook 'as-root' runs as root, which worker group 'pool' does not allow: root is "
                               "allowed only where the worker group sets spec.allowRoot: true")
    backup = (await kit.wait_phase("backup", "Failed"))["status"]
    assert backup["reason"] == "RunAsNotAllowed" and "allows hrw-job" in backup["message"]
    assert backup["attempt"] == 0 and "runAs" not in backup and "runbookDigest" not in backup
    await kit.wait_event("root", "Rejected")
