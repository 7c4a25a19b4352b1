"""Run As on the agent's side: identities resolved by name on this server, refused with a reason
naming them, the job's files given to its identity, and nothing of the job's trusted blindly.

The tests run as root (as CI does) and use the system's `nobody` account as a job identity."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from hrw_agent import identity, runner
from hrw_agent.identity import IdentityRefused, JobIdentity
from hrw_api import AssetType, InvalidObject, ResolvedAsset, RunAs, RunAsPolicy
from tests.support.accounts import reachable_work_root, remove_work_root

NOBODY = pwd.getpwnam("nobody")
AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not AS_ROOT, reason="switching identity needs root (CI runs as root)")


def _refused(run_as: RunAs, *, allow_root: bool = False) -> IdentityRefused:
    with pytest.raises(IdentityRefused) as caught:
        identity.resolve(run_as, allow_root=allow_root, worker="w1")
    return caught.value


def test_an_unknown_user_or_group_is_refused_naming_it() -> None:
    unknown = _refused(RunAs("hrw-no-such-user"))
    assert unknown.reason == "RunAsUnknown"
    assert unknown.message == "user 'hrw-no-such-user' (the job's runAs) does not exist on worker w1"
    group = _refused(RunAs("nobody", "hrw-no-such-group"))
    assert group.reason == "RunAsUnknown" and "group 'hrw-no-such-group'" in group.message


def test_uid_0_is_refused_unless_the_group_allows_root() -> None:
    refused = _refused(RunAs("root"))
    assert refused.reason == "RunAsNotAllowed" and "allowRoot" in refused.message


@needs_root
def test_a_root_agent_switches_to_the_users_uid_primary_group_and_supplementary_groups() -> None:
    resolved = identity.resolve(RunAs("nobody"), allow_root=False, worker="w1")
    assert resolved == JobIdentity("nobody", NOBODY.pw_uid, NOBODY.pw_gid, resolved.extra_groups, switch=True)
    assert resolved.spawn_options() == {"user": NOBODY.pw_uid, "group": NOBODY.pw_gid,
                                        "extra_groups": list(resolved.extra_groups), "umask": 0o022}
    assert identity.resolve(RunAs("root"), allow_root=True, worker="w1").uid == 0


def test_an_unprivileged_agent_runs_only_its_own_identity_unless_told_to_run_all_as_itself() -> None:
    nobody = (NOBODY.pw_uid, NOBODY.pw_gid)
    own = identity.resolve(RunAs("nobody"), allow_root=False, worker="w1", agent_ids=nobody)
    assert (own.uid, own.switch, own.spawn_options()) == (NOBODY.pw_uid, False, {})
    with pytest.raises(IdentityRefused) as caught:
        identity.resolve(RunAs("root"), allow_root=True, worker="w1", agent_ids=nobody)
    assert caught.value.reason == "RunAsUnavailable"
    assert "runs as root" in caught.value.message and "is not root" in caught.value.message
    anyone = identity.resolve(RunAs("hrw-no-such-user"), allow_root=False, worker="w1", agent_ids=nobody,
                              run_all_as_agent_user=True)
    assert (anyone.user, anyone.switch) == ("nobody", False)
    rooted = identity.resolve(RunAs("nobody"), allow_root=False, worker="w1", agent_ids=(0, 0),
                              run_all_as_agent_user=True)
    assert rooted.switch  # a root agent ignores the development switch: it runs jobs as their users


def test_a_policy_allows_its_default_its_list_and_root_only_with_allow_root() -> None:
    policy = RunAsPolicy.parse({"runAs": {"user": "app"}, "allowedRunAs": [{"user": "backup", "group": "disk"}]})
    assert policy.refusal(RunAs("app")) is None and policy.refusal(RunAs("backup", "disk")) is None
    assert policy.refusal(RunAs("backup")) == "it allows app, backup:disk"  # identities compare exactly
    assert "allowRoot" in (policy.refusal(RunAs("root")) or "")
    assert RunAsPolicy.parse({"allowRoot": True}).refusal(RunAs("root")) is None
    assert RunAsPolicy.parse({}).default == RunAs("hrw-job")
    with pytest.raises(InvalidObject, match="allowRoot"):
        RunAsPolicy.parse({"runAs": {"user": "root"}})
    with pytest.raises(InvalidObject, match=r"spec\.allowedRunAs"):
        RunAsPolicy.parse({"allowedRunAs": [{"user": "Not A User"}]})


@needs_root
def test_the_jobs_files_belong_to_its_identity_under_a_work_root_only_the_agent_lists(tmp_path: Path) -> None:
    job = JobIdentity("nobody", NOBODY.pw_uid, NOBODY.pw_gid, (), switch=True)
    assets = [ResolvedAsset("db", AssetType.CREDENTIAL, {"username": "u", "password": "p"}, frozenset({"password"}))]
    files = runner.prepare(tmp_path / "work", namespace="ns", job="j", attempt=1, worker="w1", script="echo",
                           parameters={"a": 1}, assets=assets, identity=job)
    assert stat.S_IMODE(os.stat(tmp_path / "work").st_mode) == 0o711
    assert os.stat(tmp_path / "work").st_uid == os.geteuid()
    for path, mode in ((files.root, 0o700), (files.assets, 0o700), (files.assets / "db", 0o700),
                       (files.script, 0o600), (files.parameters, 0o600), (files.outputs, 0o600),
                       (files.assets / "db" / "password", 0o600)):
        info = os.stat(path)
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, mode), path
    assert files.env["USER"] == "nobody"
    assert len(files.root.name.rsplit(".", 1)[1]) == 32  # unguessable: the root cannot be listed by jobs


def test_outputs_the_job_swapped_for_a_link_or_someone_elses_file_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "agent-secret"
    secret.write_text("credential=abc\n")
    link = tmp_path / "outputs"
    link.symlink_to(secret)
    assert runner.read_outputs(link) == {}
    assert runner.read_outputs(secret, owner_uid=os.geteuid() + 1) == {}
    assert runner.read_outputs(secret, owner_uid=os.geteuid()) == {"credential": "abc"}
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert runner.read_outputs(fifo) == {}  # a FIFO would block the agent


def test_a_work_root_under_a_folder_others_cannot_pass_is_found() -> None:
    base = reachable_work_root("hrw-unit-")
    try:
        closed = base / "closed"
        closed.mkdir(mode=0o700)
        assert identity.closed_ancestor(closed / "work") == closed
        assert identity.closed_ancestor(base / "work") is None
    finally:
        remove_work_root(base)
