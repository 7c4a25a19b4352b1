"""Run As (issue 12) through the real operator, proxy and root agent processes: each job runs as
the identity its group (or, where the group allows it, its runbook) declares, its files belong
to that identity, and it can reach neither the agent's secrets nor another identity's job.

The users are created on this machine for the session (`useradd`, removed afterwards); the
agents run as root, as in CI, so the identity switch is real.
"""

from __future__ import annotations

import os
import pwd
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from hrw_api.kubeclient import RUNBOOK_JOBS
from tests.support.accounts import reachable_work_root, remove_work_root, session_user
from tests.support.stack import Stack
from tests.support.waiting import wait_until

GROUP = "dc"


@pytest.fixture(scope="session")
def other_user() -> Iterator[str]:
    """A second job identity, unique to this session."""
    with session_user(f"hrwt-{secrets.token_hex(3)}-ops") as name:
        yield name


def _uid(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def _process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _read_int(path: Path) -> int:
    text = wait_until(lambda: path.exists() and path.read_text().strip(), timeout=20, message=f"{path}")
    return int(text)


HOLDER = """\
id -un > "$HRW_PARAM_SCRATCH/holder.user"
echo $$ > "$HRW_PARAM_SCRATCH/holder.pid.tmp" && mv "$HRW_PARAM_SCRATCH/holder.pid.tmp" "$HRW_PARAM_SCRATCH/holder.pid"
pwd > "$HRW_PARAM_SCRATCH/holder.dir"
while [ ! -e "$HRW_PARAM_SCRATCH/go" ]; do sleep 0.1; done
"""

# Tries to read each path it is given and to signal the holder; reports what happened per target.
PROBER = """\
echo "me=$(id -un)" >> "$HRW_OUTPUTS"
probe() {
  name="$1"; shift
  if out=$("$@" 2>&1 >/dev/null); then
    echo "$name=READ"; echo "$name=READ" >> "$HRW_OUTPUTS"
  else
    echo "$name: $out"
    case "$out" in
      *"Permission denied"*|*"Operation not permitted"*) echo "$name=denied" >> "$HRW_OUTPUTS" ;;
      *) echo "$name=other" >> "$HRW_OUTPUTS" ;;
    esac
  fi
}
probe credential cat "$HRW_PARAM_CREDENTIAL"
probe spool ls "$HRW_PARAM_SPOOL"
probe statedir ls "$HRW_PARAM_STATEDIR"
probe workroot ls "$HRW_PARAM_WORKROOT"
probe otherdir ls "$HRW_PARAM_OTHERDIR"
probe otherasset cat "$HRW_PARAM_OTHERDIR/assets/db/password"
probe otherscript cat "$HRW_PARAM_OTHERDIR/script"
probe signal kill -TERM "$HRW_PARAM_OTHERPID"
"""


async def test_a_job_as_the_default_job_user_cannot_read_the_credential_the_spool_or_another_jobs_files(
        stack: Stack, scratch: Path, job_user: str, other_user: str):
    await stack.secret("db", {"password": "s3cr3t-" + secrets.token_hex(8)})
    await stack.asset("db", {"type": "Credential", "username": "app",
                             "passwordFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
    await stack.group(GROUP, maxJobsPerWorker=2, allowedRunAs=[{"user": other_user}])
    # The agent's state dir where any user could pass through to it, so that only its own mode keeps jobs out.
    home = stack.work_root("w1-home")
    state, work = home / "state", home / "work"
    stack.start_agent(GROUP, "w1", stateDir=str(state), workRoot=str(work))
    await stack.runbook("holder", HOLDER, assets=["db"], runAs={"user": other_user},
                        parameters=[{"name": "scratch", "type": "string"}])
    await stack.job("holder", "holder", GROUP, parameters={"scratch": str(scratch)})
    holder_pid = _read_int(scratch / "holder.pid")
    other_dir = wait_until(lambda: (scratch / "holder.dir").exists() and (scratch / "holder.dir").read_text().strip(),
                           message="the holder's work dir")
    assert (scratch / "holder.user").read_text().strip() == other_user
    assert _process_uid(holder_pid) == _uid(other_user)
    assert (state / "credential").exists() and (state / "spool").is_dir()
    assert (Path(other_dir) / "assets" / "db" / "password").exists()

    names = ("credential", "spool", "statedir", "workroot", "otherdir", "otherasset", "otherscript", "signal")
    await stack.runbook("prober", PROBER, parameters=[{"name": n, "type": "string"} for n in (
        "credential", "spool", "statedir", "workroot", "otherdir", "otherpid")])
    await stack.job("prober", "prober", GROUP, parameters={
        "credential": str(state / "credential"), "spool": str(state / "spool"), "statedir": str(state),
        "workroot": str(work), "otherdir": other_dir, "otherpid": str(holder_pid)})
    probed = await stack.wait_phase("prober", "Succeeded", timeout=40)
    output = await stack.output("prober")
    assert probed["status"]["runAs"] == {"user": job_user}
    assert probed["status"]["outputs"] == {"me": job_user, **{name: "denied" for name in names}}, output
    assert "Permission denied" in output and "Operation not permitted" in output
    assert not _pid_gone(holder_pid)  # the signal never arrived

    (scratch / "go").touch()
    held = await stack.wait_phase("holder", "Succeeded", timeout=30)
    assert held["status"]["runAs"] == {"user": other_user}
    gone = Path(other_dir)
    wait_until(lambda: not gone.exists(), timeout=5, message="the holder's work dir removed with its asset files")
    assert oct(os.stat(state).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(work).st_mode & 0o777) == oct(0o711)


PATCH = 'echo "patched by $(id -un)" > "$HRW_PARAM_TARGET/managed.conf"\n'


async def test_a_group_that_allows_root_runs_a_runbook_writing_a_root_owned_dir_and_one_that_does_not_refuses_it(
        stack: Stack):
    target = reachable_work_root("hrw-root-owned-")
    try:
        os.chmod(target, 0o755)
        await stack.group("admins", allowRoot=True)
        await stack.group("plain")
        stack.start_agent("admins", "w1")
        plain_agent = stack.start_agent("plain", "w2")
        await stack.runbook("patch", PATCH, runAs={"user": "root"},
                            parameters=[{"name": "target", "type": "string"}])
        await stack.job("refused", "patch", "plain", parameters={"target": str(target)})
        refused = await stack.wait_phase("refused", "Failed")
        status = refused["status"]
        assert status["reason"] == "RunAsNotAllowed"
        assert "runs as root" in status["message"] and "'plain'" in status["message"]
        assert "allowRoot" in status["message"]
        assert "claim" not in status and "runAs" not in status
        assert not (target / "managed.conf").exists()

        await stack.job("allowed", "patch", "admins", parameters={"target": str(target)})
        done = await stack.wait_phase("allowed", "Succeeded", timeout=40)
        assert done["status"]["runAs"] == {"user": "root"}
        written = target / "managed.conf"
        assert written.read_text() == "patched by root\n"
        assert written.stat().st_uid == 0
        assert "event=job.claimed job=refused" not in plain_agent.logs()  # never claimed, never started
    finally:
        remove_work_root(target)


async def test_an_unlisted_identity_is_refused_before_it_runs_and_an_unknown_user_fails_naming_it(
        stack: Stack, other_user: str):
    missing = f"hrwt-{secrets.token_hex(3)}-nobody"
    await stack.group(GROUP, allowedRunAs=[{"user": missing}])
    agent = stack.start_agent(GROUP, "w1")
    await stack.runbook("as-other", "echo ran\n", runAs={"user": other_user})
    await stack.runbook("as-missing", "echo ran\n", runAs={"user": missing})

    await stack.job("unlisted", "as-other", GROUP)
    unlisted = (await stack.wait_phase("unlisted", "Failed"))["status"]
    assert unlisted["reason"] == "RunAsNotAllowed"
    assert f"runs as {other_user}" in unlisted["message"] and f"allows hrw-job, {missing}" in unlisted["message"]
    assert "claim" not in unlisted

    await stack.job("unknown", "as-missing", GROUP)
    unknown = (await stack.wait_phase("unknown", "Failed", timeout=40))["status"]
    assert unknown["runAs"] == {"user": missing}
    assert unknown["reason"] == "RunAsUnknown"
    assert f"user '{missing}'" in unknown["message"] and "does not exist on worker w1" in unknown["message"]
    assert await stack.output("unknown") == ""
    assert "event=job.claimed job=unlisted" not in agent.logs()
    assert "event=job.started job=unknown" not in agent.logs()


OWNERSHIP = """\
for f in "$HRW_PARAMETERS_FILE" "$HRW_ASSETS_DIR/db/password" "$HRW_ASSETS_DIR/db" "$HRW_OUTPUTS" script .; do
  echo "$(stat -c '%U %a' "$f")"
done
echo "files=$(stat -c '%U:%a' "$HRW_PARAMETERS_FILE" "$HRW_ASSETS_DIR/db/password" | tr '\\n' ' ')" >> "$HRW_OUTPUTS"
echo "dirs=$(stat -c '%U:%a' . "$HRW_ASSETS_DIR/db" | tr '\\n' ' ')" >> "$HRW_OUTPUTS"
echo "param=$(tr -d ' \\n' < "$HRW_PARAMETERS_FILE")" >> "$HRW_OUTPUTS"
echo "secret: $(cat "$HRW_ASSETS_DIR/db/password")"
"""


async def test_assets_and_parameters_arrive_owned_by_the_jobs_identity_and_secrets_stay_masked(
        stack: Stack, other_user: str):
    secret = "pw-" + secrets.token_hex(12)
    await stack.secret("db", {"password": secret})
    await stack.asset("db", {"type": "Credential", "username": "app",
                             "passwordFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
    await stack.group(GROUP, runAs={"user": other_user})
    stack.start_agent(GROUP, "w1")
    await stack.runbook("owned", OWNERSHIP, assets=["db"], parameters=[{"name": "n", "type": "integer"}])
    await stack.job("j1", "owned", GROUP, parameters={"n": 7})
    job = await stack.wait_phase("j1", "Succeeded", timeout=40)
    output = await stack.output("j1")
    status = job["status"]
    assert status["runAs"] == {"user": other_user}
    assert status["outputs"] == {"files": f"{other_user}:600 {other_user}:600 ",
                                 "dirs": f"{other_user}:700 {other_user}:700 ", "param": '{"n":7}'}, output
    assert "secret: ***" in output and secret not in output


TREE = """\
sleep 300 &
echo $! > "$HRW_PARAM_SCRATCH/$HRW_JOB_NAME.child"
echo $$ > "$HRW_PARAM_SCRATCH/$HRW_JOB_NAME.parent"
while true; do sleep 0.2; done
"""


async def test_timeout_and_cancel_kill_the_whole_process_tree_of_a_job_run_as_another_user(
        stack: Stack, scratch: Path, other_user: str):
    await stack.group(GROUP, runAs={"user": other_user}, maxJobsPerWorker=2, jobGracePeriodSeconds=2)
    stack.start_agent(GROUP, "w1")
    await stack.runbook("tree", TREE, parameters=[{"name": "scratch", "type": "string"}])
    await stack.job("slow", "tree", GROUP, timeoutSeconds=3, parameters={"scratch": str(scratch)})
    await stack.job("stopped", "tree", GROUP, parameters={"scratch": str(scratch)})
    pids = {name: (_read_int(scratch / f"{name}.parent"), _read_int(scratch / f"{name}.child"))
            for name in ("slow", "stopped")}
    for parent, child in pids.values():
        assert _process_uid(parent) == _uid(other_user) and _process_uid(child) == _uid(other_user)

    await stack.admin.patch(RUNBOOK_JOBS.path(stack.namespace, "stopped"), {"spec": {"cancel": True}})
    assert (await stack.wait_phase("stopped", "Cancelled"))["status"]["reason"] == "Cancelled"
    assert (await stack.wait_phase("slow", "TimedOut", timeout=40))["status"]["runAs"] == {"user": other_user}
    for name, (parent, child) in pids.items():
        wait_until(lambda p=parent, c=child: _pid_gone(p) and _pid_gone(c), timeout=20,
                   message=f"job {name}'s script {parent} and its child {child} gone")
